//! The notifier's pass: group new alert changes and make the notifications due (one
//! instance at a time, under its lock), then send what is due (any instance; each
//! notification is leased by the one sending it), and forget old notifications.

use chrono::{DateTime, Utc};
use entity::{notification::Model as NotificationRow, notification_attempt::Model as AttemptRow};
use futures_util::StreamExt as _;
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    error::{AppError, AppResult},
    state::AppState,
};

use super::{
    contact_points::{self, ContactPoint},
    deliver::Delivery,
    grouping,
    model::{AttemptOutcome, ContactPointKind, NotificationState},
    payload::{MessageParts, WebhookMessage},
    policy, store,
};

/// Notifications looked at for sending per pass.
const SEND_BATCH: u64 = 500;
/// Batches sent per pass at most.
const MAX_SEND_ROUNDS: usize = 20;
/// Finished notifications forgotten per pass.
const PRUNE_BATCH: u64 = 1_000;

/// What one pass did.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Alert changes taken into groups.
    pub taken_in: usize,
    /// Notifications made.
    pub made: usize,
    /// Attempts, by outcome.
    pub sent: usize,
    pub failed: usize,
    pub rejected: usize,
}

/// One pass of the notifier.
pub async fn run_once(state: &AppState) -> AppResult<PassReport> {
    let config = &state.config.notifications;
    let mut report = PassReport::default();
    if let Some(txn) = crate::db::tx::try_lock(&state.db, crate::db::JobLock::Notifications).await?
    {
        let now = Utc::now();
        let policy = policy::current(&txn).await?.policy;
        report.taken_in = grouping::take_in(&txn, &policy, now).await?;
        report.made = grouping::flush_due(&txn, &policy, config, now).await?.len();
        let forget_before = now - chrono::Duration::from_std(config.retention).unwrap_or_default();
        store::notifications::delete_finished_before(&txn, forget_before, PRUNE_BATCH).await?;
        store::groups::delete_idle_before(&txn, forget_before).await?;
        txn.commit().await?;
    }
    // A full batch may leave more due: send until what is due fits in one (within reason:
    // the next pass goes on).
    for _ in 0..MAX_SEND_ROUNDS {
        if send_due(state, &mut report).await? < SEND_BATCH as usize {
            break;
        }
    }
    if report.taken_in + report.made + report.sent + report.failed + report.rejected > 0 {
        tracing::info!(
            taken_in = report.taken_in,
            made = report.made,
            sent = report.sent,
            failed = report.failed,
            rejected = report.rejected,
            "notifications"
        );
    }
    Ok(report)
}

/// Attempts recorded per transaction, as they complete.
const RECORD_BATCH: usize = 64;

/// Sends the due notifications this instance can lease (up to `SEND_BATCH`), several at
/// once, recording the attempts in batches as they complete. Answers how many were due.
async fn send_due(state: &AppState, report: &mut PassReport) -> AppResult<usize> {
    let config = &state.config.notifications;
    let now = Utc::now();
    let due = store::notifications::sendable(&state.db, now, SEND_BATCH).await?;
    let found = due.len();
    if due.is_empty() {
        return Ok(0);
    }
    // A lease outlives the slowest attempt (an SMTP exchange may take three timeouts).
    let lease = chrono::Duration::from_std(config.timeout * 4).unwrap_or_default()
        + chrono::Duration::seconds(30);
    let ids: Vec<Uuid> = due.iter().map(|n| n.id).collect();
    let taken =
        store::notifications::lease(&state.db, &ids, Uuid::now_v7(), now, now + lease).await?;
    let due: Vec<NotificationRow> = due.into_iter().filter(|n| taken.contains(&n.id)).collect();
    let mut point_ids: Vec<Uuid> = due.iter().map(|n| n.contact_point_id).collect();
    point_ids.sort_unstable();
    point_ids.dedup();
    let points = contact_points::find_many(&state.db, &point_ids).await?;
    let mut attempts = futures_util::stream::iter(due)
        .map(|notification| {
            let point = points
                .iter()
                .find(|p| p.id == notification.contact_point_id)
                .cloned();
            async move {
                let delivery = match &point {
                    Some(point) => deliver(state, point, &notification).await,
                    None => Delivery {
                        outcome: AttemptOutcome::Rejected,
                        status_code: None,
                        detail: "the contact point was deleted".into(),
                        retry_after: None,
                    },
                };
                (notification, point.map(|p| p.kind), delivery)
            }
        })
        .buffer_unordered(config.concurrency as usize)
        .ready_chunks(RECORD_BATCH);
    while let Some(done) = attempts.next().await {
        for (_, _, delivery) in &done {
            match delivery.outcome {
                AttemptOutcome::Sent => report.sent += 1,
                AttemptOutcome::Failed => report.failed += 1,
                AttemptOutcome::Rejected => report.rejected += 1,
            }
        }
        record(state, done).await?;
    }
    Ok(found)
}

async fn deliver(
    state: &AppState,
    point: &ContactPoint,
    notification: &NotificationRow,
) -> Delivery {
    match serde_json::from_value::<WebhookMessage>(notification.payload.clone()) {
        Ok(message) => state.notifier.send(point, &message).await,
        Err(e) => Delivery {
            outcome: AttemptOutcome::Rejected,
            status_code: None,
            detail: format!("unreadable payload: {e}"),
            retry_after: None,
        },
    }
}

/// Where a notification stands after `attempts` attempts, the last one `delivery`.
fn after(
    config: &super::NotificationsConfig,
    notification: &NotificationRow,
    delivery: &Delivery,
    at: DateTime<Utc>,
) -> store::notifications::AfterAttempt {
    let attempts = notification.attempts.saturating_add(1);
    let give_up_at =
        notification.created_at + chrono::Duration::from_std(config.retry_for).unwrap_or_default();
    let wait = delivery
        .retry_after
        .map(|asked| asked.clamp(config.backoff_min, config.backoff_max))
        .unwrap_or_else(|| config.backoff(attempts.max(0) as u32));
    let next = at + chrono::Duration::from_std(wait).unwrap_or_default();
    let (state, finished_at) = match delivery.outcome {
        AttemptOutcome::Sent => (NotificationState::Sent, Some(at)),
        AttemptOutcome::Rejected => (NotificationState::Failed, Some(at)),
        AttemptOutcome::Failed if next > give_up_at => (NotificationState::Failed, Some(at)),
        AttemptOutcome::Failed => (NotificationState::Retrying, None),
    };
    store::notifications::AfterAttempt {
        state,
        attempts,
        next_attempt_at: if finished_at.is_some() { at } else { next },
        finished_at,
    }
}

async fn record(
    state: &AppState,
    done: Vec<(NotificationRow, Option<ContactPointKind>, Delivery)>,
) -> AppResult<()> {
    let at = Utc::now();
    let mut attempts = Vec::with_capacity(done.len());
    for (notification, kind, delivery) in done {
        let after = after(&state.config.notifications, &notification, &delivery, at);
        crate::telemetry::notification(
            match kind {
                Some(ContactPointKind::Webhook) => "webhook",
                Some(ContactPointKind::Email) => "email",
                Some(ContactPointKind::Slack) => "slack",
                None => "deleted",
            },
            match delivery.outcome {
                AttemptOutcome::Sent => "sent",
                AttemptOutcome::Failed => "failed",
                AttemptOutcome::Rejected => "rejected",
            },
        );
        if delivery.outcome != AttemptOutcome::Sent {
            tracing::warn!(
                contact_point = notification.contact_point_name,
                group = notification.group_key,
                sequence = notification.sequence,
                detail = delivery.detail,
                state = after.state.as_str(),
                "a notification was not delivered"
            );
        }
        let row = AttemptRow {
            id: Uuid::now_v7(),
            notification_id: notification.id,
            at,
            outcome: delivery.outcome.as_str().into(),
            status_code: delivery.status_code,
            detail: delivery.detail,
        };
        attempts.push((row, after));
    }
    let txn = crate::db::begin_write(&state.db).await?;
    store::notifications::record_attempts(&txn, attempts).await?;
    txn.commit().await?;
    Ok(())
}

/// Sends a test message to a contact point now and answers how it went; nothing is
/// stored but the audit entry.
pub async fn test(state: &AppState, audit: &AuditContext, id: Uuid) -> AppResult<Delivery> {
    let change = Change::new("contact_point.test").target("contact_point", id);
    audit::audited(&state.db, audit, change.clone(), async {
        let Some(point) = contact_points::find(&state.db, id).await? else {
            return Err(AppError::NotFound(format!("no contact point with id {id}")));
        };
        let now = Utc::now();
        let alert = crate::alerts::AlertSnapshot::synthetic(
            "mailops test notification",
            format!(
                "A test of contact point '{}', sent by {}.",
                point.name, audit.actor.name
            ),
            now,
        );
        let labels =
            std::collections::BTreeMap::from([("alertname".to_string(), alert.rule.clone())]);
        let message = super::payload::message(
            MessageParts {
                receiver: &point.name,
                group_key: "{}/{test=\"true\"}:{}",
                group_labels: labels,
                external_url: &state.config.notifications.public_url,
                sequence: 0,
            },
            &[alert],
        );
        let delivery = state.notifier.send(&point, &message).await;
        let mut change = change.clone();
        change.detail = Some(serde_json::json!({
            "name": point.name, "outcome": delivery.outcome.as_str(),
        }));
        let txn = crate::db::begin_write(&state.db).await?;
        audit::commit(txn, audit, change).await?;
        Ok(delivery)
    })
    .await
}
