//! The GraphQL shape of contact points, the notification policy and notifications.

use async_graphql::{ComplexObject, Context, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{notification::Model as NotificationRow, notification_attempt::Model as AttemptRow};
use uuid::Uuid;

use crate::{
    alerts::{AlertCondition, AlertSeverity},
    auth::Role,
    error::{AppError, AppResult},
    graphql::{guards::RoleGuard, loaders::load_one, pagination::id_texts},
    nodes::{Label, NodeRole},
    notifications::{
        self, AttemptOutcome, ContactPointKind, Delivery, NotificationQuery, NotificationState,
        NotificationStatus, Policy, PolicyDraft, PolicyRecord, Route, RouteDraft, SmtpSettings,
        Timings,
    },
};

use super::loaders::{AttemptsByNotification, ContactPointsById};

fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}

fn ids(uuids: &[Uuid]) -> Vec<ID> {
    uuids.iter().copied().map(id).collect()
}

/// Where notifications go. What could let someone else send or read them (the URL beyond
/// its origin, the signing secret, header values, the SMTP password) is never shown.
#[derive(SimpleObject, Clone, Debug)]
pub struct ContactPoint {
    /// The contact point's id.
    pub id: ID,
    /// Unique, 1 to 64 characters.
    pub name: String,
    /// How it is reached.
    pub kind: ContactPointKind,
    /// WEBHOOK and SLACK: the URL's origin, with `/…` when the URL goes on (the rest may
    /// hold a token). OPERATOR and up.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    pub url: Option<String>,
    /// WEBHOOK: whether requests are signed (`X-Mailops-Signature`). OPERATOR and up.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    pub has_secret: bool,
    /// WEBHOOK: the names of the extra headers sent. OPERATOR and up.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    pub header_names: Vec<String>,
    /// EMAIL: the SMTP server. OPERATOR and up.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    pub smtp: Option<SmtpSettings>,
    /// EMAIL: who gets the mail. OPERATOR and up.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    pub recipients: Vec<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: String,
}

impl From<notifications::ContactPoint> for ContactPoint {
    fn from(p: notifications::ContactPoint) -> Self {
        ContactPoint {
            id: id(p.id),
            name: p.name,
            kind: p.kind,
            url: p.settings.url_shown,
            has_secret: p.settings.has_secret,
            header_names: p.settings.header_names,
            smtp: p.settings.smtp,
            recipients: p.settings.recipients,
            created_at: p.created_at,
            updated_at: p.updated_at,
            updated_by: p.updated_by,
        }
    }
}

/// How one delivery attempt went.
#[derive(SimpleObject, Clone, Debug)]
pub struct NotificationAttempt {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The HTTP status or SMTP reply code, when the receiver answered.
    pub status_code: Option<i32>,
    /// What the receiver answered (the start of it), or why nothing reached it.
    pub detail: String,
}

impl TryFrom<AttemptRow> for NotificationAttempt {
    type Error = AppError;

    fn try_from(row: AttemptRow) -> AppResult<Self> {
        Ok(NotificationAttempt {
            at: row.at,
            outcome: AttemptOutcome::parse(&row.outcome)?,
            status_code: row.status_code,
            detail: row.detail,
        })
    }
}

impl NotificationAttempt {
    pub fn of(delivery: Delivery) -> Self {
        NotificationAttempt {
            at: Utc::now(),
            outcome: delivery.outcome,
            status_code: delivery.status_code,
            detail: delivery.detail,
        }
    }
}

/// One message to one contact point about one group of alerts.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Notification {
    /// The notification's id.
    pub id: ID,
    /// Where it goes.
    pub contact_point_id: ID,
    /// The contact point's name when the notification was made.
    pub contact_point_name: String,
    /// The group it tells of, as Alertmanager keys groups: the route, then the values of
    /// its `groupBy` labels.
    pub group_key: String,
    /// The group's notification number; with `groupKey`, what a receiver drops a
    /// duplicate by (sent as `sequence` in webhook bodies and as `X-Mailops-Sequence`).
    pub sequence: i64,
    /// FIRING while any alert in it fires.
    pub status: NotificationStatus,
    /// Where it stands.
    pub state: NotificationState,
    /// The alerts it tells of.
    pub alert_ids: Vec<ID>,
    /// Attempts so far.
    pub attempt_count: i32,
    /// When it is tried (again), while PENDING or RETRYING.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was SENT or given up (FAILED).
    pub finished_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub uuid: Uuid,
    #[graphql(skip)]
    pub contact_point_uuid: Uuid,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = AppError;

    fn try_from(row: NotificationRow) -> AppResult<Self> {
        let state = NotificationState::parse(&row.state)?;
        let alert_ids: Vec<Uuid> = serde_json::from_value(row.alert_ids)
            .map_err(|e| AppError::internal(format!("notification {}: {e}", row.id)))?;
        let waiting = matches!(
            state,
            NotificationState::Pending | NotificationState::Retrying
        );
        Ok(Notification {
            id: id(row.id),
            contact_point_id: id(row.contact_point_id),
            contact_point_name: row.contact_point_name,
            group_key: row.group_key,
            sequence: row.sequence,
            status: NotificationStatus::parse(&row.status)?,
            state,
            alert_ids: ids(&alert_ids),
            attempt_count: row.attempts,
            next_attempt_at: waiting.then_some(row.next_attempt_at),
            created_at: row.created_at,
            finished_at: row.finished_at,
            uuid: row.id,
            contact_point_uuid: row.contact_point_id,
        })
    }
}

#[ComplexObject]
impl Notification {
    /// Its attempts, newest first (the newest 10; `attemptCount` counts them all).
    #[graphql(complexity = "10 * child_complexity")]
    async fn attempts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<NotificationAttempt>> {
        let rows = load_one::<AttemptsByNotification, _>(ctx, self.uuid)
            .await?
            .unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(NotificationAttempt::try_from)
            .collect::<AppResult<Vec<_>>>()?)
    }

    /// The contact point, `null` once deleted.
    async fn contact_point(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ContactPoint>> {
        Ok(
            load_one::<ContactPointsById, _>(ctx, self.contact_point_uuid)
                .await?
                .map(Into::into),
        )
    }
}

/// Which notifications to list; each list narrows, left out or empty means any.
#[derive(InputObject, Clone, Debug, Default)]
pub struct NotificationFilter {
    /// In any of these states.
    pub states: Option<Vec<NotificationState>>,
    /// To any of these contact points (at most 100).
    pub contact_point_ids: Option<Vec<ID>>,
    /// Made at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl From<NotificationFilter> for NotificationQuery {
    fn from(f: NotificationFilter) -> Self {
        NotificationQuery {
            states: f.states,
            contact_point_ids: f.contact_point_ids.map(id_texts),
            since: f.since,
        }
    }
}

/// A route of the policy: the alerts it takes (every non-empty list must match) and
/// where they go. Settings left null are the default route's.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct NotificationRoute {
    /// Alerts of these severities.
    pub severities: Vec<AlertSeverity>,
    /// Alerts of these rules.
    pub rule_ids: Vec<ID>,
    /// Alerts about nodes with any of these roles.
    pub node_roles: Vec<NodeRole>,
    /// Alerts about nodes carrying every one of these labels.
    pub labels: Vec<Label>,
    /// Alerts about these nodes.
    pub node_ids: Vec<ID>,
    /// Alerts of rules with these conditions.
    pub conditions: Vec<AlertCondition>,
    /// Where its alerts go; empty: the default route's contact points.
    pub contact_point_ids: Vec<ID>,
    /// Labels its alerts are grouped by.
    pub group_by: Option<Vec<String>>,
    /// Seconds a new group waits for more alerts before its first notification.
    pub group_wait_seconds: Option<i32>,
    /// Seconds between two notifications of a group that changed.
    pub group_interval_seconds: Option<i32>,
    /// Seconds after which a notification is sent again while its alerts still fire.
    pub repeat_interval_seconds: Option<i32>,
    /// Whether resolutions are notified.
    pub send_resolved: Option<bool>,
    /// Whether the routes after this one are tried too when it matches.
    #[graphql(name = "continue")]
    pub continue_matching: bool,
    #[graphql(skip)]
    pub contact_point_uuids: Vec<Uuid>,
}

impl From<Route> for NotificationRoute {
    fn from(r: Route) -> Self {
        NotificationRoute {
            severities: r.severities,
            rule_ids: ids(&r.rule_ids),
            node_roles: r.node_roles,
            labels: r
                .labels
                .into_iter()
                .map(|(key, value)| Label { key, value })
                .collect(),
            node_ids: ids(&r.node_ids),
            conditions: r.conditions,
            contact_point_ids: ids(&r.contact_point_ids),
            group_by: r.timings.group_by,
            group_wait_seconds: r.timings.group_wait_seconds,
            group_interval_seconds: r.timings.group_interval_seconds,
            repeat_interval_seconds: r.timings.repeat_interval_seconds,
            send_resolved: r.timings.send_resolved,
            continue_matching: r.continue_matching,
            contact_point_uuids: r.contact_point_ids,
        }
    }
}

async fn load_points(ctx: &Context<'_>, ids: &[Uuid]) -> async_graphql::Result<Vec<ContactPoint>> {
    let mut found = Vec::new();
    for id in ids {
        if let Some(point) = load_one::<ContactPointsById, _>(ctx, *id).await? {
            found.push(point.into());
        }
    }
    Ok(found)
}

#[ComplexObject]
impl NotificationRoute {
    /// The contact points of `contactPointIds`.
    async fn contact_points(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ContactPoint>> {
        load_points(ctx, &self.contact_point_uuids).await
    }
}

/// Where alerts go and how they are grouped: the default route takes every alert no route
/// takes. Alertmanager's defaults until it is set: grouped by `alertname` and `node`,
/// 30 s wait, 5 min interval, 4 h repeat, resolutions sent, and no contact point.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct NotificationPolicy {
    /// Where alerts no route takes go.
    pub contact_point_ids: Vec<ID>,
    /// Labels alerts are grouped by (`alertname`, `severity`, `condition`, `node`, `ip`,
    /// `rule_id`, `node_id`; `...` for every label).
    pub group_by: Vec<String>,
    /// Seconds a new group waits for more alerts before its first notification.
    pub group_wait_seconds: i32,
    /// Seconds between two notifications of a group that changed.
    pub group_interval_seconds: i32,
    /// Seconds after which a notification is sent again while its alerts still fire.
    pub repeat_interval_seconds: i32,
    /// Whether resolutions are notified.
    pub send_resolved: bool,
    /// Routes tried in order before the default route.
    pub routes: Vec<NotificationRoute>,
    /// When it was last set; `null` while the defaults apply.
    pub updated_at: Option<DateTime<Utc>>,
    /// Who last set it.
    pub updated_by: Option<String>,
    #[graphql(skip)]
    pub contact_point_uuids: Vec<Uuid>,
}

impl From<PolicyRecord> for NotificationPolicy {
    fn from(record: PolicyRecord) -> Self {
        let Policy {
            contact_point_ids,
            group_by,
            group_wait_seconds,
            group_interval_seconds,
            repeat_interval_seconds,
            send_resolved,
            routes,
        } = record.policy;
        NotificationPolicy {
            contact_point_ids: ids(&contact_point_ids),
            group_by,
            group_wait_seconds,
            group_interval_seconds,
            repeat_interval_seconds,
            send_resolved,
            routes: routes.into_iter().map(Into::into).collect(),
            updated_at: record.updated_at,
            updated_by: record.updated_by,
            contact_point_uuids: contact_point_ids,
        }
    }
}

#[ComplexObject]
impl NotificationPolicy {
    /// The contact points of `contactPointIds`.
    async fn contact_points(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ContactPoint>> {
        load_points(ctx, &self.contact_point_uuids).await
    }
}

/// A route: every non-empty list must match (at most 100 entries each); settings left
/// out are the default route's.
#[derive(InputObject, Clone, Debug, Default)]
pub struct NotificationRouteInput {
    /// Alerts of these severities.
    #[graphql(default)]
    pub severities: Vec<AlertSeverity>,
    /// Alerts of these rules.
    #[graphql(default)]
    pub rule_ids: Vec<ID>,
    /// Alerts about nodes with any of these roles.
    #[graphql(default)]
    pub node_roles: Vec<NodeRole>,
    /// Alerts about nodes carrying every one of these labels.
    #[graphql(default)]
    pub labels: Vec<Label>,
    /// Alerts about these nodes.
    #[graphql(default)]
    pub node_ids: Vec<ID>,
    /// Alerts of rules with these conditions.
    #[graphql(default)]
    pub conditions: Vec<AlertCondition>,
    /// Where its alerts go (at most 20); empty: the default route's contact points.
    #[graphql(default)]
    pub contact_point_ids: Vec<ID>,
    /// Labels its alerts are grouped by.
    pub group_by: Option<Vec<String>>,
    /// 0 to 86,400.
    pub group_wait_seconds: Option<i32>,
    /// 1 to 86,400.
    pub group_interval_seconds: Option<i32>,
    /// 1 to 2,592,000 (30 days).
    pub repeat_interval_seconds: Option<i32>,
    /// Whether resolutions are notified.
    pub send_resolved: Option<bool>,
    /// Whether the routes after this one are tried too when it matches.
    #[graphql(name = "continue", default)]
    pub continue_matching: bool,
}

/// The whole policy; settings left out take Alertmanager's defaults.
#[derive(InputObject, Clone, Debug, Default)]
pub struct NotificationPolicyInput {
    /// Where alerts no route takes go (at most 20).
    #[graphql(default)]
    pub contact_point_ids: Vec<ID>,
    /// Labels alerts are grouped by; `alertname` and `node` when left out.
    pub group_by: Option<Vec<String>>,
    /// 0 to 86,400; 30 when left out.
    pub group_wait_seconds: Option<i32>,
    /// 1 to 86,400; 300 when left out.
    pub group_interval_seconds: Option<i32>,
    /// 1 to 2,592,000 (30 days); 14,400 when left out.
    pub repeat_interval_seconds: Option<i32>,
    /// Whether resolutions are notified; true when left out.
    pub send_resolved: Option<bool>,
    /// Routes tried in order (at most 50).
    #[graphql(default)]
    pub routes: Vec<NotificationRouteInput>,
}

impl From<NotificationRouteInput> for RouteDraft {
    fn from(r: NotificationRouteInput) -> Self {
        RouteDraft {
            severities: r.severities,
            rule_ids: id_texts(r.rule_ids),
            node_roles: r.node_roles,
            labels: r.labels,
            node_ids: id_texts(r.node_ids),
            conditions: r.conditions,
            contact_point_ids: id_texts(r.contact_point_ids),
            timings: Timings {
                group_by: r.group_by,
                group_wait_seconds: r.group_wait_seconds,
                group_interval_seconds: r.group_interval_seconds,
                repeat_interval_seconds: r.repeat_interval_seconds,
                send_resolved: r.send_resolved,
            },
            continue_matching: r.continue_matching,
        }
    }
}

impl From<NotificationPolicyInput> for PolicyDraft {
    fn from(p: NotificationPolicyInput) -> Self {
        PolicyDraft {
            contact_point_ids: id_texts(p.contact_point_ids),
            timings: Timings {
                group_by: p.group_by,
                group_wait_seconds: p.group_wait_seconds,
                group_interval_seconds: p.group_interval_seconds,
                repeat_interval_seconds: p.repeat_interval_seconds,
                send_resolved: p.send_resolved,
            },
            routes: p.routes.into_iter().map(Into::into).collect(),
        }
    }
}
