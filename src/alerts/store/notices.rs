//! Rows of `alert_notices`.

use chrono::{DateTime, Utc};
use entity::alert_notice;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

use super::super::notices::AlertSnapshot;

pub async fn insert_many(
    conn: &impl ConnectionTrait,
    alerts: Vec<AlertSnapshot>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let rows = alerts
        .into_iter()
        .map(|alert| {
            Ok(alert_notice::ActiveModel::from(alert_notice::Model {
                id: Uuid::now_v7(),
                alert_id: alert.alert_id,
                state: alert.state.clone(),
                alert: serde_json::to_value(&alert)
                    .map_err(|e| AppError::internal(e.to_string()))?,
                created_at: at,
            }))
        })
        .collect::<AppResult<Vec<_>>>()?;
    for chunk in rows.chunks(200) {
        alert_notice::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

pub async fn oldest(
    conn: &impl ConnectionTrait,
    limit: u64,
) -> AppResult<Vec<alert_notice::Model>> {
    Ok(alert_notice::Entity::find()
        .order_by_asc(alert_notice::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

pub async fn delete(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<()> {
    for chunk in ids.chunks(500) {
        alert_notice::Entity::delete_many()
            .filter(alert_notice::Column::Id.is_in(chunk.iter().copied()))
            .exec(conn)
            .await?;
    }
    Ok(())
}
