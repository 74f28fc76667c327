//! Deleting metrics past their retention.

use chrono::Utc;

use crate::{
    db::{JobLock, tx},
    error::AppResult,
    state::AppState,
};

use super::store::{self, retention::Cutoffs};

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
    let cutoffs = Cutoffs {
        raw: cutoff(config.metrics.raw_retention),
        minute: cutoff(config.metrics.minute_retention),
        hour: cutoff(config.metrics.hour_retention),
    };
    let deleted = store::retention::delete_expired(&txn, &cutoffs).await?;
    txn.commit().await?;
    Ok(deleted)
}
