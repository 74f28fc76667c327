//! Deleting metrics past their retention.

use crate::{
    db::{JobLock, retention::Cutoffs, tx},
    error::AppResult,
    state::AppState,
};

use super::store;

/// One pass of the retention job, on one instance at a time: raw samples, 1-minute and
/// 1-hour rollups, and batch records, each by its own retention. Returns rows deleted.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let keep = &state.config.metrics;
    let cutoffs = Cutoffs::ago(
        keep.raw_retention,
        keep.minute_retention,
        keep.hour_retention,
    );
    let Some(txn) = tx::try_lock(&state.db, JobLock::MetricsRetention).await? else {
        return Ok(0);
    };
    let deleted = store::retention::delete_expired(&txn, &cutoffs).await?;
    txn.commit().await?;
    Ok(deleted)
}
