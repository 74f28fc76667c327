//! Deleting what is past its retention from the metrics tables.

use sea_orm::{ConnectionTrait, Value};

use crate::{
    db::retention::{Cutoffs, delete_before},
    error::AppResult,
};

/// One pass: raw samples, rollups and batch records; returns rows deleted.
pub async fn delete_expired(conn: &impl ConnectionTrait, cutoffs: &Cutoffs) -> AppResult<u64> {
    let mut deleted = delete_before(
        conn,
        "metric_samples",
        "ts",
        Value::from(cutoffs.raw.timestamp_millis()),
    )
    .await?;
    // A rollup bucket goes once its whole span is past retention.
    let minute = cutoffs.minute.timestamp_millis() - 60_000;
    deleted += delete_before(conn, "metric_rollups_1m", "bucket", Value::from(minute)).await?;
    let hour = cutoffs.hour.timestamp_millis() - 3_600_000;
    deleted += delete_before(conn, "metric_rollups_1h", "bucket", Value::from(hour)).await?;
    // A batch older than raw retention can no longer be sent again: its samples would be refused.
    deleted += delete_before(
        conn,
        super::BATCHES,
        "received_at",
        Value::from(cutoffs.raw),
    )
    .await?;
    Ok(deleted)
}
