//! What every batch an agent pushes shares, whatever it carries (metric samples, mail
//! events): its id, how many items it may hold, how old they may be, and the record by
//! which a retry is answered instead of written again.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait, Value,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    db::sql::placeholder,
    error::{AppError, AppResult},
};

/// The answer to an ingestion: how many items the batch held, and whether it was stored
/// before (and nothing was written now).
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: i32,
    pub duplicate: bool,
}

/// Counts an agent's batch in the measurements: stored, answered from an earlier time, or
/// refused.
pub fn measure(kind: &'static str, result: &AppResult<Outcome>) {
    match result {
        Ok(outcome) if outcome.duplicate => crate::telemetry::ingested(kind, "duplicate", 0),
        Ok(outcome) => crate::telemetry::ingested(kind, "accepted", outcome.accepted as u64),
        Err(error) if !error.is_internal() => crate::telemetry::ingested(kind, "refused", 0),
        Err(_) => {}
    }
}

/// Which items a batch may carry, by age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// What agents send: nothing older than the raw retention.
    Live,
    /// History loaded by `mailops dev seed`: items up to the longest retention. Those
    /// older than the raw retention go only into the rollups or counters, as they would
    /// have if they had arrived live and been pruned since.
    Backfill,
}

/// Checks the agent's batch id: 1 to 64 letters, digits, `.`, `_`, `:` or `-`.
fn check_id(batch_id: &str) -> AppResult<()> {
    let ok = !batch_id.is_empty()
        && batch_id.len() <= 64
        && batch_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_input(
            "batch.batchId",
            "must be 1 to 64 letters, digits, '.', '_', ':' or '-'",
        ))
    }
}

/// Checks that a batch holds 1 to `max` items; `items` names them (`samples`, `events`).
pub fn check_size(items: &str, len: usize, max: usize) -> AppResult<()> {
    if len == 0 || len > max {
        return Err(AppError::bad_input(
            format!("batch.{items}"),
            format!("holds {len} {items}; a batch holds 1 to {max}"),
        ));
    }
    Ok(())
}

/// The oldest items a batch may carry at `now`: (the raw retention's limit, the
/// admission's limit).
pub fn oldest_allowed(
    now: DateTime<Utc>,
    admission: Admission,
    raw_retention: std::time::Duration,
    longest_retention: std::time::Duration,
) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let before_now = |retention: std::time::Duration| {
        ChronoDuration::from_std(retention)
            .map(|age| now - age)
            .map_err(|e| AppError::internal(format!("retention: {e}")))
    };
    let raw = before_now(raw_retention)?;
    let oldest = match admission {
        Admission::Live => raw,
        Admission::Backfill => before_now(longest_retention)?,
    };
    Ok((raw, oldest))
}

/// A batch being admitted: where its record goes, who sent it, when it arrived, and the
/// hash of its content, fed item by item while the items are checked.
pub struct BatchRecord<'a> {
    /// The table of this kind of batch: `(node_id, batch_id)` keyed, with
    /// `content_hash`, `accepted` and `received_at`.
    table: &'static str,
    node_id: Uuid,
    batch_id: &'a str,
    received_at: DateTime<Utc>,
    content: Sha256,
}

impl<'a> BatchRecord<'a> {
    /// Starts the record of a batch arriving now; a malformed id is refused.
    pub fn start(table: &'static str, node_id: Uuid, batch_id: &'a str) -> AppResult<Self> {
        check_id(batch_id)?;
        Ok(BatchRecord {
            table,
            node_id,
            batch_id,
            received_at: Utc::now(),
            content: Sha256::new(),
        })
    }

    /// When the batch arrived: the "now" its items' ages are judged by.
    pub fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }

    /// The hash of the batch's items, which tells a retry from another batch reusing
    /// the id: every item is fed into it, in order.
    pub fn content(&mut self) -> &mut Sha256 {
        &mut self.content
    }

    /// Begins the transaction that stores the batch and records the batch in it. `Ok`
    /// holds the transaction: store the items, then commit. `Err` is the answer of the
    /// earlier time the same batch was stored: nothing more is written. The same id with
    /// other content is a `CONFLICT`.
    pub async fn begin(
        self,
        db: &DatabaseConnection,
        accepted: i32,
    ) -> AppResult<Result<DatabaseTransaction, Outcome>> {
        let content_hash = format!("{:x}", self.content.clone().finalize());
        let txn = db.begin().await?;
        match record(&txn, &self, &content_hash, accepted).await? {
            None => Ok(Ok(txn)),
            Some(earlier) => {
                txn.rollback().await?;
                Ok(Err(earlier))
            }
        }
    }
}

/// Records the batch in the transaction that stores it. `None` means it is new: store it.
/// `Some` is the answer of the earlier time the same batch was stored.
async fn record(
    conn: &impl ConnectionTrait,
    batch: &BatchRecord<'_>,
    content_hash: &str,
    accepted: i32,
) -> AppResult<Option<Outcome>> {
    let backend = conn.get_database_backend();
    let table = batch.table;
    let p = |index| placeholder(backend, index);
    let inserted = conn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO {table} (node_id, batch_id, content_hash, accepted, received_at) \
                 VALUES ({}, {}, {}, {}, {}) ON CONFLICT (node_id, batch_id) DO NOTHING",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            ),
            [
                Value::from(batch.node_id),
                Value::from(batch.batch_id),
                Value::from(content_hash),
                Value::from(accepted),
                Value::from(batch.received_at),
            ],
        ))
        .await?;
    if inserted.rows_affected() > 0 {
        return Ok(None);
    }
    let earlier = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT content_hash, accepted FROM {table} WHERE node_id = {} AND batch_id = {}",
                p(1),
                p(2)
            ),
            [Value::from(batch.node_id), Value::from(batch.batch_id)],
        ))
        .await?
        .ok_or_else(|| AppError::internal("a batch record vanished"))?;
    let stored_hash: String = earlier.try_get_by_index(0)?;
    if stored_hash != content_hash {
        return Err(AppError::Conflict(format!(
            "batch '{}' was already stored with other content",
            batch.batch_id
        )));
    }
    Ok(Some(Outcome {
        accepted: earlier.try_get_by_index(1)?,
        duplicate: true,
    }))
}

/// The ids of the batches of these nodes, in `table`, that start with `prefix`.
pub async fn ids_with_prefix(
    conn: &impl ConnectionTrait,
    table: &str,
    nodes: &[Uuid],
    prefix: &str,
) -> AppResult<Vec<(Uuid, String)>> {
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    // `prefix` is ours (a seed's), never a caller's, so LIKE needs no escaping here.
    let sql = format!(
        "SELECT node_id, batch_id FROM {table} WHERE node_id IN ({}) AND batch_id LIKE {}",
        crate::db::sql::placeholders(backend, 1, nodes.len()),
        placeholder(backend, nodes.len() + 1)
    );
    let mut values: Vec<Value> = nodes.iter().map(|n| Value::from(*n)).collect();
    values.push(Value::from(format!("{prefix}%")));
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}
