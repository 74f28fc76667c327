//! The notifications domain's data: kinds of contact point, what callers send to make and
//! change them, the policy, and the states of a notification.

use std::collections::BTreeMap;

use async_graphql::{Enum, InputObject, MaybeUndefined};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    alerts::{AlertCondition, AlertSeverity},
    nodes::{Label, NodeRole},
};

/// How a contact point is reached.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContactPointKind {
    /// An HTTP POST of the Alertmanager webhook message (version 4), optionally signed.
    Webhook,
    /// Mail through an SMTP server.
    Email,
    /// A Slack incoming webhook (Mattermost and Rocket.Chat accept the same).
    Slack,
}

crate::stored_enum!(ContactPointKind, "contact point kind" {
    Webhook => "WEBHOOK", Email => "EMAIL", Slack => "SLACK",
});

/// How mailops talks to an SMTP server.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SmtpSecurity {
    /// Plain text (a relay on a trusted network).
    None,
    /// Plain, then upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where a notification stands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationState {
    /// Made, not tried yet.
    Pending,
    /// Tried and failed; tried again at `nextAttemptAt`.
    Retrying,
    /// Delivered.
    Sent,
    /// Given up: refused by the receiver, or still failing when its time ran out.
    Failed,
}

crate::stored_enum!(NotificationState, "notification state" {
    Pending => "PENDING", Retrying => "RETRYING", Sent => "SENT", Failed => "FAILED",
});

/// What a notification says of its group.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationStatus {
    /// At least one alert in it fires.
    Firing,
    /// Every alert in it resolved.
    Resolved,
}

crate::stored_enum!(NotificationStatus, "notification status" {
    Firing => "FIRING", Resolved => "RESOLVED",
});

/// How one delivery attempt ended.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[graphql(name = "NotificationAttemptOutcome")]
pub enum AttemptOutcome {
    /// The receiver took it (HTTP 2xx, SMTP 250).
    Sent,
    /// It did not get through (no answer, HTTP 5xx, 408 or 429, SMTP 4xx); tried again.
    Failed,
    /// The receiver refused it for good (another HTTP 4xx, SMTP 5xx); not tried again.
    Rejected,
}

crate::stored_enum!(AttemptOutcome, "notification attempt outcome" {
    Sent => "SENT", Failed => "FAILED", Rejected => "REJECTED",
});

/// An HTTP header a webhook sends.
#[derive(InputObject, Clone)]
#[graphql(name = "HeaderInput")]
pub struct Header {
    /// A header name (letters, digits and `-`), not one mailops sets itself.
    pub name: String,
    /// Write-only: never shown again.
    pub value: String,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// The SMTP server of an EMAIL contact point.
#[derive(InputObject, Clone)]
pub struct SmtpInput {
    /// The server's host name or address.
    pub host: String,
    /// 1 to 65535; left out: 25 for NONE, 587 for STARTTLS, 465 for TLS.
    pub port: Option<i32>,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// The user to log in as; no login when left out.
    pub username: Option<String>,
    /// Write-only. On an update, left out keeps the stored password and `null` clears it.
    pub password: MaybeUndefined<String>,
    /// The sender address, e.g. `mailops@example.com`.
    pub from: String,
}

impl std::fmt::Debug for SmtpInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpInput")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

/// A new contact point. WEBHOOK and SLACK need `url`; EMAIL needs `smtp` and `recipients`.
#[derive(InputObject, Clone)]
pub struct CreateContactPointInput {
    /// Unique, 1 to 64 characters.
    pub name: String,
    /// How it is reached.
    pub kind: ContactPointKind,
    /// WEBHOOK and SLACK: the http(s) URL posted to. Write-only beyond its origin.
    pub url: Option<String>,
    /// WEBHOOK: the key of `X-Mailops-Signature: sha256=<HMAC-SHA256 of the body>`, 16 to
    /// 256 characters. Write-only.
    pub secret: Option<String>,
    /// WEBHOOK: extra headers, at most 16. Their values are write-only.
    #[graphql(default)]
    pub headers: Vec<Header>,
    /// EMAIL: the SMTP server.
    pub smtp: Option<SmtpInput>,
    /// EMAIL: 1 to 50 addresses.
    #[graphql(default)]
    pub recipients: Vec<String>,
}

impl std::fmt::Debug for CreateContactPointInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateContactPointInput")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers)
            .field("smtp", &self.smtp)
            .field("recipients", &self.recipients)
            .finish()
    }
}

/// Changes to a contact point: a field left out stays as it is. Its kind cannot change.
#[derive(InputObject, Clone, Default)]
pub struct UpdateContactPointInput {
    /// Unique, 1 to 64 characters.
    pub name: Option<String>,
    /// WEBHOOK and SLACK: a new URL.
    pub url: Option<String>,
    /// WEBHOOK: a new signing secret; `null` stops signing.
    pub secret: MaybeUndefined<String>,
    /// WEBHOOK: replaces every extra header (values must be given again).
    pub headers: Option<Vec<Header>>,
    /// EMAIL: replaces the SMTP settings; a password left out is kept.
    pub smtp: Option<SmtpInput>,
    /// EMAIL: replaces the recipients.
    pub recipients: Option<Vec<String>>,
}

impl std::fmt::Debug for UpdateContactPointInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateContactPointInput")
            .field("name", &self.name)
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field(
                "secret",
                &(!self.secret.is_undefined()).then_some("<redacted>"),
            )
            .field("headers", &self.headers)
            .field("smtp", &self.smtp)
            .field("recipients", &self.recipients)
            .finish()
    }
}

/// Timings and grouping a route may set; left out, the default route's apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    pub group_by: Option<Vec<String>>,
    pub group_wait_seconds: Option<i32>,
    pub group_interval_seconds: Option<i32>,
    pub repeat_interval_seconds: Option<i32>,
    pub send_resolved: Option<bool>,
}

/// A route of the policy: the alerts it matches (every non-empty list must match) and
/// where they go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Route {
    pub severities: Vec<AlertSeverity>,
    pub rule_ids: Vec<Uuid>,
    pub node_roles: Vec<NodeRole>,
    pub labels: BTreeMap<String, String>,
    pub node_ids: Vec<Uuid>,
    pub conditions: Vec<AlertCondition>,
    pub contact_point_ids: Vec<Uuid>,
    #[serde(flatten)]
    pub timings: Timings,
    /// Whether routes after this one are tried too when it matches.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
}

/// The notification policy: the default route (every alert) and the routes tried first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub contact_point_ids: Vec<Uuid>,
    pub group_by: Vec<String>,
    pub group_wait_seconds: i32,
    pub group_interval_seconds: i32,
    pub repeat_interval_seconds: i32,
    pub send_resolved: bool,
    #[serde(default)]
    pub routes: Vec<Route>,
}

impl Default for Policy {
    /// Alertmanager's defaults, with nowhere to send until contact points are set.
    fn default() -> Self {
        Policy {
            contact_point_ids: Vec::new(),
            group_by: vec!["alertname".into(), "node".into()],
            group_wait_seconds: 30,
            group_interval_seconds: 300,
            repeat_interval_seconds: 4 * 3600,
            send_resolved: true,
            routes: Vec::new(),
        }
    }
}

/// What a caller sends for a route, ids as text.
#[derive(Clone, Debug, Default)]
pub struct RouteDraft {
    pub severities: Vec<AlertSeverity>,
    pub rule_ids: Vec<String>,
    pub node_roles: Vec<NodeRole>,
    pub labels: Vec<Label>,
    pub node_ids: Vec<String>,
    pub conditions: Vec<AlertCondition>,
    pub contact_point_ids: Vec<String>,
    pub timings: Timings,
    pub continue_matching: bool,
}

/// What a caller sends for the policy, ids as text; left-out timings take the defaults.
#[derive(Clone, Debug, Default)]
pub struct PolicyDraft {
    pub contact_point_ids: Vec<String>,
    pub timings: Timings,
    pub routes: Vec<RouteDraft>,
}
