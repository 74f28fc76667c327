//! Deleting rows past their retention, a bounded number of rows per statement and per
//! pass, so that a large backlog never becomes one long-running transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::error::AppResult;

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

/// Rows one statement deletes at most.
const CHUNK: i64 = 10_000;
/// Statements one pass runs at most per table; the rest waits for the next pass.
const CHUNKS_PER_PASS: usize = 50;

/// Deletes up to one pass's worth of rows of `table` whose `column` is below `cutoff`.
/// Returns how many it deleted.
pub async fn delete_before(
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
