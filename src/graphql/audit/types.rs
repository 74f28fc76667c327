use async_graphql::{ID, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};
use entity::audit_log::Model as AuditLogRow;

use crate::audit::AuditOutcome;
use crate::error::{AppError, AppResult};

/// One state-changing action.
#[derive(SimpleObject, Debug, Clone)]
pub struct AuditEntry {
    /// The entry's id; ids sort by time.
    pub id: ID,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// `user`, `agent`, `enrollment_key`, `cli`, `system` or `anonymous`.
    pub actor_kind: String,
    /// The acting user or node, when there is one.
    pub actor_id: Option<ID>,
    /// The acting user's name, node's hostname or key's name.
    pub actor_name: String,
    /// Dotted verb such as `user.create` or `auth.login`.
    pub action: String,
    /// What kind of thing was acted on: `user`, `node`, `session`, …
    pub target_kind: Option<String>,
    /// The id of what was acted on.
    pub target_id: Option<String>,
    /// Whether it was carried out.
    pub outcome: AuditOutcome,
    /// What changed, or why it was refused. Never holds a secret.
    pub detail: Option<Json<serde_json::Value>>,
    /// The `x-request-id` of the request that made the change.
    pub request_id: Option<String>,
}

impl TryFrom<AuditLogRow> for AuditEntry {
    type Error = AppError;

    fn try_from(m: AuditLogRow) -> AppResult<Self> {
        Ok(AuditEntry {
            id: ID(m.id.to_string()),
            occurred_at: m.occurred_at,
            actor_kind: m.actor_kind,
            actor_id: m.actor_id.map(|id| ID(id.to_string())),
            actor_name: m.actor_name,
            action: m.action,
            target_kind: m.target_kind,
            target_id: m.target_id,
            outcome: AuditOutcome::parse(&m.outcome)?,
            detail: m.detail.map(Json),
            request_id: m.request_id,
        })
    }
}

/// Narrows the audit log; all given conditions must hold.
#[derive(InputObject, Debug, Default)]
pub struct AuditFilter {
    /// Exact action, such as `user.update`.
    pub action: Option<String>,
    /// Entries by this user or node.
    pub actor_id: Option<ID>,
    /// Entries about this target.
    pub target_id: Option<String>,
    /// Only successes or only refusals.
    pub outcome: Option<AuditOutcome>,
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub until: Option<DateTime<Utc>>,
}
