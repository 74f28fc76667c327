//! Agents reporting their node: registration with an enrollment key, and contact.

use chrono::Utc;
use entity::{node::Model as NodeRow, node_key::Model as NodeKeyRow};
use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    auth::{AgentNode, EnrollmentCaller},
    error::{AppError, AppResult},
    input, ips,
    realtime::{Event, NodeStatusChanged},
    state::AppState,
};

use super::{
    enrollment,
    keys::{self, KeyKind},
    model::RegisterNodeInput,
    status::{self, NodeStatus},
    store::{self, nodes::Registration},
    validate::{
        MAX_AGENT_VERSION_CHARS, parse_ips, validate_hostname, validate_labels, validate_roles,
    },
};

/// Registers a node for an enrollment key, or updates the node of that hostname, and
/// issues its new key (revoking the old ones). Returns the node and the key.
pub async fn register(
    state: &AppState,
    audit: &AuditContext,
    caller: &EnrollmentCaller,
    input: &RegisterNodeInput,
) -> AppResult<(NodeRow, String)> {
    let change = Change::new("node.register").detail(serde_json::json!({
        "hostname": input.hostname.chars().take(253).collect::<String>(),
        "enrollmentKey": caller.key_id,
    }));
    let db = &state.db;
    let (node, key, events) = audit::audited(db, audit, change.clone(), async {
        let hostname = validate_hostname("input.hostname", &input.hostname)?;
        let roles_mask = validate_roles("input.roles", &input.roles)?;
        let labels = validate_labels("input.labels", &input.labels)?;
        let addresses = parse_ips("input.ipAddresses", &input.ip_addresses)?;
        let agent_version = input::bounded_text(
            "input.agentVersion",
            input.agent_version.as_deref(),
            MAX_AGENT_VERSION_CHARS,
        )?;

        let txn = db.begin().await?;
        enrollment::consume(&txn, caller.key_id).await?;
        let now = Utc::now();
        let mut events = Vec::new();
        let registration = Registration {
            hostname: &hostname,
            roles_mask,
            labels: &labels,
            agent_version,
        };
        let node = match store::nodes::find_by_hostname(&txn, &hostname).await? {
            Some(existing) => {
                vouch_for_existing(&txn, caller, &existing, input.node_key.as_deref()).await?;
                let previous = existing.clone();
                let updated = store::nodes::reregister(&txn, existing, registration, now).await?;
                keys::revoke_all_of_node(&txn, updated.id, "the node enrolled again").await?;
                if !updated.maintenance_enabled {
                    events.extend(
                        status::transition(&txn, &previous, NodeStatus::Online, "agent registered")
                            .await?,
                    );
                }
                store::nodes::get(&txn, updated.id).await?
            }
            None if caller.node_id.is_some() => {
                return Err(AppError::Conflict(format!(
                    "this re-enrollment key is for another node, not {hostname}"
                )));
            }
            None => {
                let node = store::nodes::insert(&txn, registration, now).await?;
                store::status::record(&txn, node.id, None, NodeStatus::Online, "registered", now)
                    .await?;
                events.push(Event::NodeStatusChanged(NodeStatusChanged {
                    node_id: node.id,
                    hostname: node.hostname.clone(),
                    from: None,
                    to: NodeStatus::Online,
                    at: now,
                    reason: "registered".into(),
                }));
                node
            }
        };
        store::nodes::replace_labels(&txn, node.id, &labels).await?;
        ips::attach_to_node(&txn, node.id, &addresses).await?;
        let (_, key) = issue_key(&txn, node.id).await?;
        audit::commit(txn, audit, change.target("node", node.id)).await?;
        Ok((node, key, events))
    })
    .await?;
    state.events.publish_all(events);
    Ok((node, key))
}

/// Whether the caller may enroll `existing` again: with the node's current key (an agent
/// reinstalled on the same machine), or with an admin's re-enrollment key for that node.
/// Holding an enrollment key is not enough, or one compromised node could take over every
/// other. A retired node stays retired.
async fn vouch_for_existing(
    conn: &impl ConnectionTrait,
    caller: &EnrollmentCaller,
    existing: &NodeRow,
    node_key: Option<&str>,
) -> AppResult<()> {
    let hostname = &existing.hostname;
    if existing.status == NodeStatus::Retired.as_str() {
        return Err(AppError::Conflict(format!(
            "node {hostname} is retired; it cannot be registered again"
        )));
    }
    if let Some(bound) = caller.node_id {
        return if bound == existing.id {
            Ok(())
        } else {
            Err(AppError::Conflict(format!(
                "this re-enrollment key is for another node, not {hostname}"
            )))
        };
    }
    let presented = node_key
        .and_then(keys::parse)
        .filter(|key| key.kind == KeyKind::Node);
    let vouched = match presented {
        Some(key) => matches!(
            keys::authenticate_node(conn, &key).await?,
            Ok((_, node)) if node.id == existing.id
        ),
        None => false,
    };
    if vouched {
        Ok(())
    } else {
        Err(AppError::Conflict(format!(
            "a node named {hostname} is registered already; enroll it again with its current \
             key (input.nodeKey) or an admin's re-enrollment key for it"
        )))
    }
}

/// What an agent reports with its heartbeat.
#[derive(Clone, Debug, Default)]
pub struct AgentReport {
    pub agent_version: Option<String>,
    /// The `agentConfig.version` it has applied on the node.
    pub applied_config_version: Option<String>,
    /// Why it could not apply the newest version (its reload command failed, say).
    pub config_error: Option<String>,
}

/// The longest `configError` kept; agents cut theirs to this.
pub const MAX_CONFIG_ERROR_CHARS: usize = 1000;
const MAX_CONFIG_VERSION_CHARS: usize = 64;

/// Records agent contact: `lastSeenAt` now, and back ONLINE if the node was STALE or DOWN;
/// with what the agent applied, when it says.
pub async fn heartbeat(
    state: &AppState,
    agent: &AgentNode,
    report: &AgentReport,
) -> AppResult<NodeRow> {
    let agent_version = input::bounded_text(
        "agentVersion",
        report.agent_version.as_deref(),
        MAX_AGENT_VERSION_CHARS,
    )?;
    let applied = input::bounded_text(
        "appliedConfigVersion",
        report.applied_config_version.as_deref(),
        MAX_CONFIG_VERSION_CHARS,
    )?;
    let error = input::bounded_free_text(
        "configError",
        report.config_error.as_deref(),
        MAX_CONFIG_ERROR_CHARS,
    )?;
    let txn = state.db.begin().await?;
    let (mut node, event) = record_contact(&txn, agent.node_id, agent_version).await?;
    // Agents report with every heartbeat; the row is written only when the report differs.
    let reported = applied.is_some() || error.is_some();
    let changed = (applied.is_some() && applied != node.applied_config_version)
        || (reported && error != node.config_error);
    if changed {
        store::nodes::record_applied_config(
            &txn,
            agent.node_id,
            applied.as_deref(),
            error,
            chrono::Utc::now(),
        )
        .await?;
        node = store::nodes::get(&txn, agent.node_id).await?;
    }
    txn.commit().await?;
    state.events.publish_all(event);
    Ok(node)
}

/// Records agent contact inside the caller's transaction: `lastSeenAt` now (and the
/// agent's version, when given), and back ONLINE if the node was STALE or DOWN. Returns
/// the node and the status event to publish after the commit.
pub async fn record_contact(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    agent_version: Option<String>,
) -> AppResult<(NodeRow, Option<Event>)> {
    store::nodes::touch_contact(conn, node_id, agent_version).await?;
    let node = store::nodes::get(conn, node_id).await?;
    let event = match NodeStatus::parse(&node.status)? {
        NodeStatus::Stale | NodeStatus::Down => {
            status::transition(conn, &node, NodeStatus::Online, "agent reported").await?
        }
        _ => None,
    };
    let node = if event.is_some() {
        store::nodes::get(conn, node_id).await?
    } else {
        node
    };
    Ok((node, event))
}

/// Issues a new key of the node; returns its row and the key, shown once.
pub(super) async fn issue_key(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
) -> AppResult<(NodeKeyRow, String)> {
    let id = Uuid::now_v7();
    let (key, secret_hash) = keys::generate(KeyKind::Node, id);
    let row = store::keys::insert(conn, id, node_id, secret_hash).await?;
    Ok((row, key))
}
