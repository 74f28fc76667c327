//! Notifications: alerts reach people. Contact points (webhooks in the Alertmanager
//! format, mail, Slack), the policy that routes and groups alerts, and the durable outbox
//! behind them: an alert change is written with the change itself, grouped, rendered and
//! sent with retries, each attempt recorded.

mod config;
mod contact_points;
mod deliver;
mod grouping;
mod model;
mod payload;
mod policy;
mod store;
mod worker;

pub use config::NotificationsConfig;
pub use contact_points::{
    ContactPoint, MAX_CONTACT_POINTS, Settings as ContactPointSettings, SmtpSettings,
    create as create_contact_point, delete as delete_contact_point, find as find_contact_point,
    find_many as contact_points_by_ids, list as list_contact_points,
    update as update_contact_point,
};
pub use deliver::{Delivery, Sender, signature};
pub use model::*;
pub use payload::{GROUPABLE_LABELS, WebhookMessage};
pub use policy::{PolicyRecord, current as current_policy, set as set_policy};
pub use worker::{PassReport, run_once, test as test_contact_point};

use entity::{notification::Model as NotificationRow, notification_attempt::Model as AttemptRow};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{
    db::{Listed, Page},
    error::AppResult,
};

/// The most attempts listed per notification (the newest).
pub const MAX_ATTEMPTS_LISTED: usize = 10;

/// Which notifications to list; each given list narrows, ids as the caller gave them.
#[derive(Clone, Debug, Default)]
pub struct NotificationQuery {
    pub states: Option<Vec<NotificationState>>,
    pub contact_point_ids: Option<Vec<String>>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The most entries of each list of a query.
pub const MAX_FILTER_ENTRIES: usize = 100;

/// Notifications newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    query: &NotificationQuery,
    page: &Page,
    count_total: bool,
) -> AppResult<Listed<NotificationRow>> {
    let ids = query.contact_point_ids.clone().unwrap_or_default();
    if ids.len() > MAX_FILTER_ENTRIES {
        return Err(crate::error::AppError::bad_input(
            "filter.contactPointIds",
            format!("at most {MAX_FILTER_ENTRIES} ids"),
        ));
    }
    let selection = store::notifications::Selection {
        states: query.states.clone().unwrap_or_default(),
        contact_point_ids: crate::db::parse_ids("filter.contactPointIds", &ids)?,
        since: query.since,
    };
    store::notifications::list(db, &selection, page, count_total).await
}

/// One notification.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<NotificationRow>> {
    store::notifications::find(db, id).await
}

/// The newest attempts of each of these notifications, newest first.
pub async fn attempts_of(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<std::collections::HashMap<Uuid, Vec<AttemptRow>>> {
    store::notifications::attempts_of(db, ids, MAX_ATTEMPTS_LISTED).await
}
