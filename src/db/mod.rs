//! The database layer every domain builds on: connecting and migrating, transactions and
//! the named job locks, bind placeholders, keyset pages, chunked retention deletes and
//! the record of agent batches. Nothing here knows a domain's tables; each domain's
//! store passes its own.

pub mod batch;
mod health;
pub mod page;
pub mod retention;
pub mod sql;
pub mod stored;
pub mod tx;

pub use health::Health;
pub use page::{Listed, Page, fetch_page, newest_first};
pub use tx::{JobLock, begin_write};

use std::time::Duration;

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};

use crate::config::Config;

/// Opens the pool. For the embedded SQLite file, creates its directory and turns on WAL
/// with a busy timeout, so that readers never block the writer.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    if config.database.url.is_none() {
        std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
            format!(
                "creating data directory {}",
                config.server.data_dir.display()
            )
        })?;
    }
    let url = config.effective_database_url();
    let statement_timeout = config.limits.statement_timeout;
    let synchronous = if config.database.sqlite_synchronous_full {
        sea_orm::sqlx::sqlite::SqliteSynchronous::Full
    } else {
        sea_orm::sqlx::sqlite::SqliteSynchronous::Normal
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(config.database.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // A statement running longer than this is cancelled by Postgres and answered
        // TIMEOUT, so no request can hold a connection (or a lock) indefinitely.
        .map_sqlx_postgres_opts(move |opts| {
            opts.options([(
                "statement_timeout",
                format!("{}ms", statement_timeout.as_millis()),
            )])
        })
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(options)
        .await
        .context("connecting to the database (DATABASE_URL)")
}

/// Applies the pending migrations one by one, logging each: a migration that rewrites a
/// large table can take a while, and the log says which one runs and how far along it is.
async fn apply_pending<C>(conn: &C) -> anyhow::Result<()>
where
    C: ConnectionTrait,
    for<'c> &'c C: migration::IntoSchemaManagerConnection<'c>,
{
    let pending: Vec<String> = Migrator::get_pending_migrations(conn)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    for (index, name) in pending.iter().enumerate() {
        tracing::info!(
            migration = name,
            step = index + 1,
            of = pending.len(),
            "applying migration"
        );
        let started = std::time::Instant::now();
        Migrator::up(conn, Some(1)).await?;
        tracing::info!(
            migration = name,
            seconds = started.elapsed().as_secs_f64(),
            "migration applied"
        );
    }
    Ok(())
}

/// Applies pending migrations. On Postgres several instances may start at once, so the
/// migrations run in one transaction under an advisory lock: one applies them, the others
/// wait and then find nothing to do.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            // A migration may rewrite large tables: it is not held to the statement
            // timeout requests are.
            txn.execute_unprepared("SET LOCAL statement_timeout = 0")
                .await?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({})",
                JobLock::Migrations.id()
            ))
            .await?;
            apply_pending(&txn).await?;
            txn.commit().await?;
        }
        _ => apply_pending(db).await?,
    }
    Ok(())
}

/// Whether the database answers, for `/readyz`.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

/// Parses the text of an id that names a row.
pub fn parse_id(field: &str, text: &str) -> crate::error::AppResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| crate::error::AppError::bad_input(field, "is not a valid id"))
}

/// Parses a list of ids that name rows; the first bad one is named by `field`.
pub fn parse_ids(field: &str, texts: &[String]) -> crate::error::AppResult<Vec<uuid::Uuid>> {
    texts.iter().map(|text| parse_id(field, text)).collect()
}
