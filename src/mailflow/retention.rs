//! Deleting mail events and counters past their retention, in bounded chunks like the
//! metrics retention.

use crate::db::{JobLock, retention};
use crate::{error::AppResult, state::AppState};

/// One pass, on one instance at a time: raw events, batch records, 1-minute and 1-hour
/// counters, each by its own retention. Returns rows deleted.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let mail = &state.config.mail;
    let cutoffs = retention::Cutoffs::ago(
        mail.events_retention,
        mail.minute_retention,
        mail.hour_retention,
    );
    retention::sweep(
        &state.db,
        JobLock::MailRetention,
        &super::store::retention::TABLES,
        &cutoffs,
    )
    .await
}
