use std::process::ExitCode;

use clap::Parser as _;
use mailops::{
    Application, Config,
    cli::{self, Cli, Command, MigrateAction},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", mailops::graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mailops: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    mailops::telemetry::init(config.server.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailops: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate { action } => {
                cli::migrate(&config, action.unwrap_or(MigrateAction::Up)).await
            }
            Command::User { action } => cli::user(&config, action).await,
            Command::EnrollmentKey { action } => cli::enrollment_key(&config, action).await,
            Command::Dev { action } => cli::dev(config, action).await,
            Command::Schema => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailops: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let address = app.local_addr();
    if app.state().config.server.graphiql {
        tracing::info!(%address, "mailops is listening; open GraphiQL at http://{address}/graphql");
    } else {
        tracing::info!(%address, "mailops is listening; GraphQL at http://{address}/graphql");
    }
    app.run_until_stopped(shutdown_signal()).await
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
