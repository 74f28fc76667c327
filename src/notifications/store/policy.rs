//! The row of `notification_policies`.

use chrono::Utc;
use entity::notification_policy;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, sea_query::OnConflict};

use crate::error::AppResult;

/// The one policy's id.
const DEFAULT: &str = "default";

pub async fn get(conn: &impl ConnectionTrait) -> AppResult<Option<notification_policy::Model>> {
    Ok(notification_policy::Entity::find_by_id(DEFAULT.to_string())
        .one(conn)
        .await?)
}

pub async fn put(conn: &impl ConnectionTrait, spec: serde_json::Value, by: &str) -> AppResult<()> {
    let row = notification_policy::ActiveModel {
        id: Set(DEFAULT.into()),
        spec: Set(spec),
        updated_at: Set(Utc::now()),
        updated_by: Set(by.chars().take(128).collect()),
    };
    notification_policy::Entity::insert(row)
        .on_conflict(
            OnConflict::column(notification_policy::Column::Id)
                .update_columns([
                    notification_policy::Column::Spec,
                    notification_policy::Column::UpdatedAt,
                    notification_policy::Column::UpdatedBy,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
