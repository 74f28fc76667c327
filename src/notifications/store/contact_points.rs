//! Rows of `contact_points`.

use entity::contact_point;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub async fn list(conn: &impl ConnectionTrait) -> AppResult<Vec<contact_point::Model>> {
    Ok(contact_point::Entity::find()
        .order_by_asc(contact_point::Column::Name)
        .all(conn)
        .await?)
}

pub async fn find(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<contact_point::Model>> {
    Ok(contact_point::Entity::find_by_id(id).one(conn).await?)
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<contact_point::Model> {
    find(conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no contact point with id {id}")))
}

pub async fn find_many(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<contact_point::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(contact_point::Entity::find()
        .filter(contact_point::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await?)
}

pub async fn count(conn: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(contact_point::Entity::find().count(conn).await?)
}

fn taken(name: &str) -> impl Fn(sea_orm::DbErr) -> AppError + '_ {
    move |e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            AppError::Conflict(format!("a contact point named '{name}' already exists"))
        }
        _ => e.into(),
    }
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    row: contact_point::Model,
) -> AppResult<contact_point::Model> {
    let name = row.name.clone();
    contact_point::ActiveModel::from(row)
        .insert(conn)
        .await
        .map_err(taken(&name))
}

/// Writes every column of `row` over the stored one.
pub async fn replace(
    conn: &impl ConnectionTrait,
    row: contact_point::Model,
) -> AppResult<contact_point::Model> {
    let name = row.name.clone();
    let mut model = contact_point::ActiveModel::from(row);
    for column in [
        contact_point::Column::Name,
        contact_point::Column::Settings,
        contact_point::Column::Secrets,
        contact_point::Column::UpdatedAt,
        contact_point::Column::UpdatedBy,
    ] {
        model.reset(column);
    }
    model.update(conn).await.map_err(taken(&name))
}

pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    contact_point::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}
