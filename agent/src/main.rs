use clap::Parser as _;

use mailops_agent::settings::{Cli, Command, LogFormat};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    init_logging(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailops-agent: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Enroll(args) => mailops_agent::enroll::enroll(args).await,
            Command::Run(args) => mailops_agent::run::run(args.settings()?).await,
            Command::Check(args) => mailops_agent::run::check(args.settings()?.sources()).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if log_format == LogFormat::Json {
                tracing::error!(error = format!("{e:#}"), "mailops-agent failed");
            } else {
                eprintln!("mailops-agent: error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAILOPS_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
