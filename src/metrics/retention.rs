//! Deleting metrics past their retention.

use crate::db::{JobLock, retention};
use crate::{error::AppResult, state::AppState};

/// One pass of the retention job, on one instance at a time: raw samples, batch records,
/// 1-minute and 1-hour rollups, each by its own retention. Returns rows deleted.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let keep = &state.config.metrics;
    let cutoffs = retention::Cutoffs::ago(
        keep.raw_retention,
        keep.minute_retention,
        keep.hour_retention,
    );
    let tables = &super::store::retention::TABLES;
    retention::sweep(&state.db, JobLock::MetricsRetention, tables, &cutoffs).await
}
