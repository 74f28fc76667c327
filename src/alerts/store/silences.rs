//! Rows of `alert_silences`.

use chrono::{DateTime, Utc};
use entity::alert_silence;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::error::AppResult;

/// The silences in force at `now`.
pub async fn active(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> AppResult<Vec<alert_silence::Model>> {
    Ok(alert_silence::Entity::find()
        .filter(alert_silence::Column::StartsAt.lte(now))
        .filter(alert_silence::Column::EndsAt.gt(now))
        .all(conn)
        .await?)
}

/// A new silence, as validated.
pub struct NewSilence {
    pub id: Uuid,
    pub matcher: serde_json::Value,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    silence: NewSilence,
) -> AppResult<alert_silence::Model> {
    Ok(alert_silence::ActiveModel {
        id: Set(silence.id),
        matcher: Set(silence.matcher),
        starts_at: Set(silence.starts_at),
        ends_at: Set(silence.ends_at),
        reason: Set(silence.reason),
        created_by: Set(silence.created_by),
        created_at: Set(silence.starts_at),
    }
    .insert(conn)
    .await?)
}

pub async fn find(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<alert_silence::Model>> {
    Ok(alert_silence::Entity::find_by_id(id).one(conn).await?)
}

pub async fn end(
    conn: &impl ConnectionTrait,
    silence: alert_silence::Model,
    at: DateTime<Utc>,
) -> AppResult<alert_silence::Model> {
    let mut model: alert_silence::ActiveModel = silence.into();
    model.ends_at = Set(at);
    Ok(model.update(conn).await?)
}

/// Silences newest first: the active ones (`Some(true)`), the ended ones
/// (`Some(false)`) or all.
/// Silences listed at most, newest first.
pub const MAX_LISTED: u64 = 500;

pub async fn list(
    db: &impl ConnectionTrait,
    active: Option<bool>,
    now: DateTime<Utc>,
) -> AppResult<Vec<alert_silence::Model>> {
    let mut query = alert_silence::Entity::find();
    match active {
        Some(true) => {
            query = query
                .filter(alert_silence::Column::StartsAt.lte(now))
                .filter(alert_silence::Column::EndsAt.gt(now))
        }
        Some(false) => query = query.filter(alert_silence::Column::EndsAt.lte(now)),
        None => {}
    }
    Ok(query
        .order_by_desc(alert_silence::Column::Id)
        .limit(MAX_LISTED)
        .all(db)
        .await?)
}
