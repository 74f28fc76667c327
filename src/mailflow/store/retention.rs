//! Deleting what is past its retention from the mail-flow tables.

use sea_orm::{ConnectionTrait, Value};

use crate::{
    db::retention::{Cutoffs, delete_before},
    error::AppResult,
};

/// One pass: raw events, batch records and counters; returns rows deleted.
pub async fn delete_expired(conn: &impl ConnectionTrait, cutoffs: &Cutoffs) -> AppResult<u64> {
    let mut deleted = delete_before(
        conn,
        "mail_events",
        "ts",
        Value::from(cutoffs.raw.timestamp_millis()),
    )
    .await?;
    // A batch older than the raw retention can no longer be sent again: its events
    // would be refused.
    deleted += delete_before(
        conn,
        super::BATCHES,
        "received_at",
        Value::from(cutoffs.raw),
    )
    .await?;
    // A counter row goes once its whole span is past retention.
    let minute = cutoffs.minute.timestamp_millis() - 60_000;
    deleted += delete_before(conn, "mail_flow_1m", "bucket", Value::from(minute)).await?;
    let hour = cutoffs.hour.timestamp_millis() - 3_600_000;
    deleted += delete_before(conn, "mail_flow_1h", "bucket", Value::from(hour)).await?;
    Ok(deleted)
}
