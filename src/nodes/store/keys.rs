//! Rows of `node_keys`.

use chrono::{DateTime, Utc};
use entity::node_key;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, prelude::Expr,
};
use uuid::Uuid;

use crate::error::AppResult;

pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<node_key::Model>> {
    Ok(node_key::Entity::find_by_id(id).one(conn).await?)
}

/// Stores a new key of the node by its secret's hash.
pub async fn insert(
    conn: &impl ConnectionTrait,
    id: Uuid,
    node_id: Uuid,
    secret_hash: String,
) -> AppResult<node_key::Model> {
    Ok(node_key::Entity::insert(node_key::ActiveModel {
        id: Set(id),
        node_id: Set(node_id),
        secret_hash: Set(secret_hash),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
        last_used_at: Set(None),
    })
    .exec_with_returning(conn)
    .await?)
}

/// Revokes every key of the node that is not revoked yet.
pub async fn revoke_all_of_node(conn: &impl ConnectionTrait, node_id: Uuid) -> AppResult<()> {
    node_key::Entity::update_many()
        .col_expr(node_key::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(node_key::Column::NodeId.eq(node_id))
        .filter(node_key::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn revoke(
    conn: &impl ConnectionTrait,
    key: node_key::Model,
) -> AppResult<node_key::Model> {
    let mut model: node_key::ActiveModel = key.into();
    model.revoked_at = Set(Some(Utc::now()));
    Ok(model.update(conn).await?)
}

/// The node's keys, newest first.
pub async fn of_node(db: &impl ConnectionTrait, node_id: Uuid) -> AppResult<Vec<node_key::Model>> {
    Ok(node_key::Entity::find()
        .filter(node_key::Column::NodeId.eq(node_id))
        .order_by_desc(node_key::Column::Id)
        .all(db)
        .await?)
}

pub async fn set_last_used(
    conn: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
) -> AppResult<()> {
    node_key::Entity::update_many()
        .col_expr(node_key::Column::LastUsedAt, Expr::value(at))
        .filter(node_key::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}
