//! Deleting metrics past their retention.

use chrono::Utc;
use sea_orm::Value;

use crate::{
    db::{JobLock, retention::delete_before, tx},
    error::AppResult,
    state::AppState,
};

/// One pass of the retention job, on one instance at a time: raw samples, 1-minute and
/// 1-hour rollups, and batch records, each by its own retention. Returns rows deleted.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let Some(txn) = tx::try_lock(&state.db, JobLock::MetricsRetention).await? else {
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
