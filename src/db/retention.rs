//! Deleting rows past their retention, a bounded number of rows per statement and per
//! pass, so that a large backlog never becomes one long-running transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};

use crate::{
    db::{JobLock, tx},
    error::AppResult,
};

/// What a tiered table keeps: raw rows (and batch records) from `raw`, 1-minute rows that
/// end after `minute`, 1-hour rows that end after `hour`.
pub struct Cutoffs {
    pub raw: DateTime<Utc>,
    pub minute: DateTime<Utc>,
    pub hour: DateTime<Utc>,
}

impl Cutoffs {
    /// The cutoffs of these retentions, counted back from now. A retention longer than
    /// time goes back keeps everything.
    pub fn ago(raw: Duration, minute: Duration, hour: Duration) -> Cutoffs {
        let now = Utc::now();
        let cutoff = |keep: Duration| {
            chrono::Duration::from_std(keep)
                .ok()
                .and_then(|keep| now.checked_sub_signed(keep))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        Cutoffs {
            raw: cutoff(raw),
            minute: cutoff(minute),
            hour: cutoff(hour),
        }
    }
}

/// Rows one statement (and one transaction) deletes at most.
const CHUNK: u64 = 10_000;
/// Chunks one pass deletes at most per table; the rest waits for the next pass.
const CHUNKS_PER_PASS: usize = 50;

/// The tables of a domain that keeps raw rows, 1-minute and 1-hour rollups of them, and
/// the records of the batches that brought them.
pub struct TieredTables {
    /// Raw rows, by `ts` in epoch milliseconds.
    pub raw: &'static str,
    /// 1-minute rows, by the epoch milliseconds their `bucket` starts at.
    pub minute: &'static str,
    /// 1-hour rows, likewise.
    pub hour: &'static str,
    /// Batch records, by `received_at`.
    pub batches: &'static str,
}

/// Deletes what is past its retention from `tables`, one chunk per short transaction, so
/// that neither a large backlog nor SQLite's single writer holds ingestion up for long.
/// Each chunk's transaction takes `lock`: while another instance holds it, that instance
/// is doing this pass and this one stops. Returns rows deleted.
pub async fn sweep(
    db: &DatabaseConnection,
    lock: JobLock,
    tables: &TieredTables,
    cutoffs: &Cutoffs,
) -> AppResult<u64> {
    let targets = [
        (
            tables.raw,
            "ts",
            Value::from(cutoffs.raw.timestamp_millis()),
        ),
        // A batch older than the raw retention can no longer be sent again: its items
        // would be refused.
        (tables.batches, "received_at", Value::from(cutoffs.raw)),
        // A rollup row goes once its whole span is past retention.
        (
            tables.minute,
            "bucket",
            Value::from(cutoffs.minute.timestamp_millis().saturating_sub(60_000)),
        ),
        (
            tables.hour,
            "bucket",
            Value::from(cutoffs.hour.timestamp_millis().saturating_sub(3_600_000)),
        ),
    ];
    let mut deleted = 0;
    for (table, column, cutoff) in targets {
        let mut from_table = 0;
        for _ in 0..CHUNKS_PER_PASS {
            let Some(txn) = tx::try_lock(db, lock).await? else {
                return Ok(deleted + from_table);
            };
            let chunk = delete_chunk(&txn, table, column, cutoff.clone()).await?;
            txn.commit().await?;
            from_table += chunk;
            if chunk < CHUNK {
                break;
            }
        }
        // A backlog (retention shortened, a long outage) takes several passes: say how
        // each goes.
        if from_table >= CHUNK {
            tracing::info!(
                table,
                deleted = from_table,
                "retention: deleted rows past their retention"
            );
        }
        deleted += from_table;
    }
    Ok(deleted)
}

/// Deletes up to `CHUNK` rows of `table` whose `column` is below `cutoff`.
async fn delete_chunk(
    conn: &impl ConnectionTrait,
    table: &str,
    column: &str,
    cutoff: Value,
) -> AppResult<u64> {
    let backend = conn.get_database_backend();
    // Postgres addresses rows by ctid, SQLite by rowid; both let one statement delete a
    // bounded batch.
    let (row_id, placeholder, limit) = match backend {
        DbBackend::Postgres => ("ctid", "$1", "$2"),
        _ => ("rowid", "?", "?"),
    };
    let sql = format!(
        "DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM {table} WHERE {column} < {placeholder} LIMIT {limit})"
    );
    let result = conn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            &sql,
            [cutoff, Value::from(CHUNK as i64)],
        ))
        .await?;
    Ok(result.rows_affected())
}
