//! Node status: what each value means, the transitions, and the job that notices nodes
//! going quiet.

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::node::Model as NodeRow;
use sea_orm::ConnectionTrait;

use crate::{
    error::AppResult,
    realtime::{Event, NodeStatusChanged},
    state::AppState,
};

use super::store;

/// Where a node stands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeStatus {
    /// Its agent reported within the stale threshold (two push intervals by default).
    Online,
    /// No agent contact for two push intervals.
    Stale,
    /// No agent contact for two minutes (configurable).
    Down,
    /// An operator put it in maintenance; contact is not expected.
    Maintenance,
    /// Decommissioned: its keys no longer work and lists hide it unless asked.
    Retired,
}

crate::stored_enum!(NodeStatus, "node status" {
    Online => "ONLINE",
    Stale => "STALE",
    Down => "DOWN",
    Maintenance => "MAINTENANCE",
    Retired => "RETIRED",
});

/// The status a node's last contact gives it, outside maintenance.
pub fn from_contact(
    state: &AppState,
    last_seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> NodeStatus {
    let Some(seen) = last_seen else {
        return NodeStatus::Down;
    };
    let quiet = (now - seen).to_std().unwrap_or_default();
    if quiet >= state.config.nodes.down_after {
        NodeStatus::Down
    } else if quiet >= state.config.nodes.stale_after {
        NodeStatus::Stale
    } else {
        NodeStatus::Online
    }
}

/// Moves a node from `from` to `to` if it is still in `from`, and records the change.
/// Returns the event to publish once the surrounding transaction has committed.
pub async fn transition(
    conn: &impl ConnectionTrait,
    node: &NodeRow,
    to: NodeStatus,
    reason: &str,
) -> AppResult<Option<Event>> {
    let from = NodeStatus::parse(&node.status)?;
    if from == to {
        return Ok(None);
    }
    let now = Utc::now();
    if !store::nodes::move_status(conn, node.id, from, to, now).await? {
        // Someone else moved it first; their change is the recorded one.
        return Ok(None);
    }
    store::status::record(conn, node.id, Some(from), to, reason, now).await?;
    Ok(Some(Event::NodeStatusChanged(NodeStatusChanged {
        node_id: node.id,
        hostname: node.hostname.clone(),
        from: Some(from),
        to,
        at: now,
        reason: reason.into(),
    })))
}

/// One pass of the status job: ends maintenance windows that are over, and moves nodes
/// whose agents went quiet to STALE or DOWN. Runs on one instance at a time; returns how
/// many nodes changed.
pub async fn sweep(state: &AppState) -> AppResult<usize> {
    let Some(txn) = crate::db::tx::try_lock(&state.db, crate::db::JobLock::NodeStatus).await?
    else {
        return Ok(0);
    };
    let now = Utc::now();
    let mut events = Vec::new();

    for node in store::nodes::maintenance_ended(&txn, now).await? {
        store::nodes::clear_maintenance(&txn, node.id, now).await?;
        let to = from_contact(state, node.last_seen_at, now);
        events.extend(transition(&txn, &node, to, "maintenance window ended").await?);
    }

    let stale_since =
        now - chrono::Duration::from_std(state.config.nodes.stale_after).unwrap_or_default();
    let quiet = store::nodes::quiet_since(&txn, stale_since).await?;
    for node in quiet {
        let to = from_contact(state, node.last_seen_at, now);
        let reason = match to {
            NodeStatus::Down => "no agent contact within the down threshold",
            _ => "no agent contact within the stale threshold",
        };
        events.extend(transition(&txn, &node, to, reason).await?);
    }
    txn.commit().await?;

    let changed = events.len();
    state.events.publish_all(events);
    Ok(changed)
}
