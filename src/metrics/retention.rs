//! Deleting metrics past their retention, a bounded number of rows per statement and per
//! pass, so that a large backlog never becomes one long-running transaction.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::{error::AppResult, jobs, state::AppState};

/// Rows one statement deletes at most.
const CHUNK: i64 = 10_000;
/// Statements one pass runs at most per table; the rest waits for the next pass.
const CHUNKS_PER_PASS: usize = 50;

/// Deletes up to one pass's worth of rows of `table` whose `column` is below `cutoff`
/// (epoch milliseconds). Returns how many it deleted.
pub(crate) async fn delete_before(
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
    let mut deleted = 0;
    for _ in 0..CHUNKS_PER_PASS {
        let result = conn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                &sql,
                [cutoff.clone(), Value::from(CHUNK)],
            ))
            .await?;
        deleted += result.rows_affected();
        if result.rows_affected() < CHUNK as u64 {
            break;
        }
    }
    Ok(deleted)
}

/// One pass of the retention job, on one instance at a time: raw samples, 1-minute and
/// 1-hour rollups, and batch records, each by its own retention. Returns rows deleted.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let Some(txn) = jobs::begin_exclusive(&state.db, jobs::lock::METRICS_RETENTION).await? else {
        return Ok(0);
    };
    let now = Utc::now();
    let cutoff = |keep: std::time::Duration| {
        now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX)
    };
    let config = &state.config;
    let raw = cutoff(config.metrics_raw_retention);
    let mut deleted = 0;
    deleted += delete_before(
        &txn,
        "metric_samples",
        "ts",
        Value::from(raw.timestamp_millis()),
    )
    .await?;
    // A rollup bucket goes once its whole span is past retention.
    let minute = cutoff(config.metrics_minute_retention).timestamp_millis() - 60_000;
    deleted += delete_before(&txn, "metric_rollups_1m", "bucket", Value::from(minute)).await?;
    let hour = cutoff(config.metrics_hour_retention).timestamp_millis() - 3_600_000;
    deleted += delete_before(&txn, "metric_rollups_1h", "bucket", Value::from(hour)).await?;
    // A batch older than raw retention can no longer be sent again: its samples would be refused.
    deleted += delete_before(&txn, "metric_batches", "received_at", Value::from(raw)).await?;
    txn.commit().await?;
    Ok(deleted)
}
