//! Deleting mail events and counters past their retention, in bounded chunks like the
//! metrics retention.

use crate::{db::retention::Cutoffs, error::AppResult, state::AppState};

use super::store;

/// One pass, on one instance at a time: raw events, batch records, 1-minute and 1-hour
/// counters, each by its own retention. Returns rows deleted.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let keep = &state.config.mail;
    let cutoffs = Cutoffs::ago(
        keep.events_retention,
        keep.minute_retention,
        keep.hour_retention,
    );
    let Some(txn) = crate::db::tx::try_lock(&state.db, crate::db::JobLock::MailRetention).await?
    else {
        return Ok(0);
    };
    let deleted = store::retention::delete_expired(&txn, &cutoffs).await?;
    txn.commit().await?;
    Ok(deleted)
}
