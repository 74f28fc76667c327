//! Deleting mail events and counters past their retention, in bounded chunks like the
//! metrics retention.

use chrono::Utc;

use crate::{error::AppResult, state::AppState};

use super::store::{self, retention::Cutoffs};

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
    let cutoffs = Cutoffs {
        raw: cutoff(config.events_retention),
        minute: cutoff(config.minute_retention),
        hour: cutoff(config.hour_retention),
    };
    let deleted = store::retention::delete_expired(&txn, &cutoffs).await?;
    txn.commit().await?;
    Ok(deleted)
}
