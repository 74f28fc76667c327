//! The `mailops` command line. Every command but `schema` reads the same configuration as
//! the server.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use migration::{Migrator, MigratorTrait};
use secrecy::SecretString;

use crate::{
    audit::{Actor, AuditContext},
    auth::{Passwords, Role},
    config::Config,
    db,
    db::Page,
    users,
};

#[derive(Parser, Debug)]
#[command(
    name = "mailops",
    version,
    about = "GraphQL API for operating a mail cluster"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply, roll back or list database migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage dashboard users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage the keys agents register nodes with.
    EnrollmentKey {
        #[command(subcommand)]
        action: EnrollmentKeyAction,
    },
    /// Tools for demos and benchmarks.
    Dev {
        #[command(subcommand)]
        action: DevAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum DevAction {
    /// Register outbound mail nodes and fill their metrics and mail events for the last
    /// days, through the same ingestion agents use. Running it again adds only the hours
    /// (and minutes) not yet stored.
    Seed {
        #[arg(long, default_value_t = 15)]
        nodes: usize,
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Batches stored at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Mail events each node sends per minute (0 for none).
        #[arg(long, default_value_t = 10)]
        mail_per_minute: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum EnrollmentKeyAction {
    /// Create an enrollment key and print it (it is shown only this once).
    Create {
        /// What the key is for, e.g. "fra1 rollout".
        #[arg(long)]
        name: String,
        /// How long the key works, e.g. 24h or 7d; forever when left out.
        #[arg(long)]
        expires_in: Option<String>,
        /// How many nodes it may register; unlimited when left out.
        #[arg(long)]
        max_uses: Option<i32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// Roll back the latest migrations.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a user. The password is read from standard input (prompted on a terminal).
    Add {
        username: String,
        #[arg(long, value_enum, default_value_t = CliRole::Viewer)]
        role: CliRole,
    },
    /// Set a user's password and sign it out everywhere.
    Passwd { username: String },
    /// List users.
    List,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CliRole {
    Viewer,
    Operator,
    Admin,
}

impl From<CliRole> for Role {
    fn from(role: CliRole) -> Role {
        match role {
            CliRole::Viewer => Role::Viewer,
            CliRole::Operator => Role::Operator,
            CliRole::Admin => Role::Admin,
        }
    }
}

fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Repeat password: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        return Ok(SecretString::from(first));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

pub async fn enrollment_key(config: &Config, action: EnrollmentKeyAction) -> anyhow::Result<()> {
    let conn = db::connect(config).await?;
    db::migrate(&conn).await?;
    let audit = AuditContext::with_actor(Actor::cli());
    match action {
        EnrollmentKeyAction::Create {
            name,
            expires_in,
            max_uses,
        } => {
            let expires_at = match expires_in {
                None => None,
                Some(text) => {
                    let duration = crate::config::parse_duration(&text)
                        .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
                    Some(chrono::Utc::now() + chrono::Duration::from_std(duration)?)
                }
            };
            let (row, key) =
                crate::nodes::create_enrollment_key(&conn, &audit, &name, expires_at, max_uses)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.client_message()))?;
            eprintln!(
                "created enrollment key '{}' ({}); it is shown only now:",
                row.name, row.id
            );
            println!("{key}");
        }
    }
    Ok(())
}

pub async fn dev(config: Config, action: DevAction) -> anyhow::Result<()> {
    match action {
        DevAction::Seed {
            nodes,
            days,
            concurrency,
            mail_per_minute,
        } => {
            let state = crate::app::build_state(config).await?;
            let display = SeedDisplay::new();
            let report = crate::seed::run_with_progress(
                &state,
                crate::seed::SeedOptions {
                    nodes,
                    days,
                    concurrency,
                    mail_per_minute,
                },
                &|progress| display.show(progress),
            )
            .await
            .map_err(|e| anyhow::anyhow!(e.client_message()))?;
            display.finish();
            println!(
                "seeded {} nodes: {} hourly metric batches ({} already stored), {} samples; \
                 {} mail batches ({} already stored), {} mail events; in {:.0} s",
                report.nodes,
                report.batches,
                report.duplicate_batches,
                report.samples,
                report.mail.batches,
                report.mail.duplicate_batches,
                report.mail.events,
                report.seconds
            );
        }
    }
    Ok(())
}

/// Tells every running instance, through Redis, that the user's sessions ended, so its
/// open WebSockets close now. Without Redis the instances notice at their sockets' next
/// ping (`MAILOPS_WS_PING_INTERVAL`); their access tokens are refused at once either way.
async fn end_open_sockets(config: &Config, user_id: uuid::Uuid) {
    let Some(url) = &config.redis.url else {
        return;
    };
    let event = crate::realtime::Event::SessionsRevoked(crate::realtime::SessionsRevoked {
        holder: crate::realtime::CredentialHolder::User(user_id),
        reason: "the account's password changed; sign in again".into(),
    });
    let published = match redis::Client::open(url.as_str()) {
        Ok(client) => {
            crate::realtime::EventBus::publish_once(
                &client,
                &config.redis.prefix,
                crate::realtime::BusLimits {
                    replay_window: config.realtime.replay_window,
                    replay_max: config.realtime.replay_max as usize,
                    subscriber_buffer: config.realtime.subscriber_buffer as usize,
                },
                &event,
            )
            .await
        }
        Err(error) => Err(error.into()),
    };
    if let Err(error) = published {
        eprintln!(
            "mailops: open WebSockets could not be told at once ({error:#}); they close at their next ping"
        );
    }
}

/// Seeding's progress: a bar on a terminal (hours done, items per second, time left), a
/// log line every few seconds otherwise.
struct SeedDisplay {
    bar: Option<indicatif::ProgressBar>,
    phase: std::sync::Mutex<(&'static str, std::time::Instant, std::time::Instant)>,
}

/// How often progress is logged when nobody watches a bar.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl SeedDisplay {
    fn new() -> SeedDisplay {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix:>7} [{bar:40}] {pos}/{len} hours · {msg} · {eta} left",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let now = std::time::Instant::now();
        SeedDisplay {
            bar,
            phase: std::sync::Mutex::new(("", now, now)),
        }
    }

    fn show(&self, progress: crate::seed::SeedProgress) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if phase.0 != progress.phase {
            *phase = (progress.phase, now, now);
        }
        let elapsed = now.duration_since(phase.1).as_secs_f64().max(0.001);
        let rate = progress.items as f64 / elapsed;
        let unit = if progress.phase == "metrics" {
            "samples"
        } else {
            "events"
        };
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(progress.phase);
                bar.set_length(progress.total as u64);
                bar.set_position(progress.done as u64);
                bar.set_message(format!("{rate:.0} {unit}/s"));
            }
            None if now.duration_since(phase.2) >= PROGRESS_EVERY
                || progress.done == progress.total =>
            {
                phase.2 = now;
                tracing::info!(
                    phase = progress.phase,
                    hours = progress.done,
                    of = progress.total,
                    per_second = rate.round(),
                    unit,
                    "seeding"
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub async fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<()> {
    let conn = db::connect(config).await?;
    match action {
        MigrateAction::Up => {
            db::migrate(&conn).await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            Migrator::down(&conn, Some(steps)).await?;
            println!("rolled back {steps} migration(s)");
        }
        MigrateAction::Status => {
            for migration in Migrator::get_migration_with_status(&conn).await? {
                println!("{:<9} {}", migration.status(), migration.name());
            }
        }
    }
    Ok(())
}

pub async fn user(config: &Config, action: UserAction) -> anyhow::Result<()> {
    let conn = db::connect(config).await?;
    db::migrate(&conn).await?;
    let passwords = Passwords::new().map_err(|e| anyhow::anyhow!(e.client_message()))?;
    let audit = AuditContext::with_actor(Actor::cli());
    let fail = |e: crate::error::AppError| anyhow::anyhow!(e.client_message());
    match action {
        UserAction::Add { username, role } => {
            let password = read_password()?;
            let user = users::create(&conn, &passwords, &audit, &username, &password, role.into())
                .await
                .map_err(fail)?;
            let role = Role::parse(&user.role).map_err(fail)?;
            println!("created {} ({})", user.username, role.name());
        }
        UserAction::Passwd { username } => {
            let name = users::normalize_username("username", &username).map_err(fail)?;
            let Some(user) = users::find_by_username(&conn, &name).await.map_err(fail)? else {
                bail!("no user named '{name}'");
            };
            let password = read_password()?;
            users::reset_password(&conn, &passwords, &audit, user.id, &password)
                .await
                .map_err(fail)?;
            end_open_sockets(config, user.id).await;
            println!("password of {name} changed; its sessions are signed out");
        }
        UserAction::List => {
            let mut after = None;
            loop {
                let page = Page { first: 500, after };
                let listed = users::list(&conn, &page, false).await.map_err(fail)?;
                for user in &listed.rows {
                    let role = Role::parse(&user.role).map_err(fail)?;
                    println!(
                        "{:<24} {:<9} {}",
                        user.username,
                        role.name(),
                        if user.disabled { "disabled" } else { "enabled" }
                    );
                }
                match (listed.has_next, listed.rows.last()) {
                    (true, Some(last)) => after = Some(last.username.clone()),
                    _ => break,
                }
            }
        }
    }
    Ok(())
}
