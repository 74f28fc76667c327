//! Deleting mail events and counters past their retention, in bounded chunks like the
//! metrics retention.

use chrono::Utc;
use sea_orm::Value;

use crate::{db::retention::delete_before, error::AppResult, state::AppState};

/// One pass, on one instance at a time: raw events, batch records, 1-minute and 1-hour
/// counters, each by its own retention. Returns rows deleted.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let Some(txn) = crate::db::tx::try_lock(&state.db, crate::db::JobLock::MailRetention).await?
    else {
        return Ok(0);
    };
    let now = Utc::now();
    let cutoff = |keep: std::time::Duration| {
        now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX)
    };
    let config = &state.config.mail;
    let raw = cutoff(config.events_retention);
    let mut deleted = 0;
    deleted += delete_before(
        &txn,
        "mail_events",
        "ts",
        Value::from(raw.timestamp_millis()),
    )
    .await?;
    // A batch older than the raw retention can no longer be sent again: its events
    // would be refused.
    deleted += delete_before(&txn, "mail_event_batches", "received_at", Value::from(raw)).await?;
    // A counter row goes once its whole span is past retention.
    let minute = cutoff(config.minute_retention).timestamp_millis() - 60_000;
    deleted += delete_before(&txn, "mail_flow_1m", "bucket", Value::from(minute)).await?;
    let hour = cutoff(config.hour_retention).timestamp_millis() - 3_600_000;
    deleted += delete_before(&txn, "mail_flow_1h", "bucket", Value::from(hour)).await?;
    txn.commit().await?;
    Ok(deleted)
}
