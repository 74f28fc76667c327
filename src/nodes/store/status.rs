//! Rows of `node_status_changes`: each node's status history.

use chrono::{DateTime, Utc};
use entity::node_status_change;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::error::AppResult;

use super::super::NodeStatus;

/// Adds a row to a node's status history.
pub async fn record(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    from: Option<NodeStatus>,
    to: NodeStatus,
    reason: &str,
    at: DateTime<Utc>,
) -> AppResult<()> {
    node_status_change::Entity::insert(node_status_change::ActiveModel {
        id: Set(Uuid::now_v7()),
        node_id: Set(node_id),
        from_status: Set(from.map(|s| s.as_str().into())),
        to_status: Set(to.as_str().into()),
        changed_at: Set(at),
        reason: Set(reason.chars().take(255).collect()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// The node's latest `first` status changes, newest first.
pub async fn history(
    db: &impl ConnectionTrait,
    node_id: Uuid,
    first: u64,
) -> AppResult<Vec<node_status_change::Model>> {
    Ok(node_status_change::Entity::find()
        .filter(node_status_change::Column::NodeId.eq(node_id))
        .order_by_desc(node_status_change::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}
