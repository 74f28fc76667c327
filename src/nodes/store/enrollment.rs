//! Rows of `enrollment_keys`.

use chrono::{DateTime, Utc};
use entity::enrollment_key;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    prelude::Expr, sea_query::ExprTrait as _,
};
use uuid::Uuid;

use crate::{
    db::{Page, newest_first},
    error::AppResult,
};

/// A new enrollment key, as validated.
pub struct NewEnrollmentKey {
    pub id: Uuid,
    pub name: String,
    pub secret_hash: String,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i32>,
    /// The node a re-enrollment key is bound to.
    pub node_id: Option<Uuid>,
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    key: NewEnrollmentKey,
) -> AppResult<enrollment_key::Model> {
    Ok(enrollment_key::Entity::insert(enrollment_key::ActiveModel {
        id: Set(key.id),
        name: Set(key.name),
        secret_hash: Set(key.secret_hash),
        created_by: Set(key.created_by),
        created_at: Set(Utc::now()),
        expires_at: Set(key.expires_at),
        max_uses: Set(key.max_uses),
        uses: Set(0),
        revoked_at: Set(None),
        last_used_at: Set(None),
        node_id: Set(key.node_id),
    })
    .exec_with_returning(conn)
    .await?)
}

pub async fn find(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<enrollment_key::Model>> {
    Ok(enrollment_key::Entity::find_by_id(id).one(conn).await?)
}

/// Counts one use of the key if it is not revoked, expired or used up; says whether it did.
pub async fn count_use(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let counted = enrollment_key::Entity::update_many()
        .col_expr(
            enrollment_key::Column::Uses,
            Expr::col(enrollment_key::Column::Uses).add(1),
        )
        .col_expr(enrollment_key::Column::LastUsedAt, Expr::value(now))
        .filter(enrollment_key::Column::Id.eq(id))
        .filter(enrollment_key::Column::RevokedAt.is_null())
        .filter(
            enrollment_key::Column::ExpiresAt
                .is_null()
                .or(enrollment_key::Column::ExpiresAt.gt(now)),
        )
        .filter(enrollment_key::Column::MaxUses.is_null().or(
            Expr::col(enrollment_key::Column::Uses).lt(Expr::col(enrollment_key::Column::MaxUses)),
        ))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(counted == 1)
}

pub async fn revoke(
    conn: &impl ConnectionTrait,
    key: enrollment_key::Model,
) -> AppResult<enrollment_key::Model> {
    let mut model: enrollment_key::ActiveModel = key.into();
    model.revoked_at = Set(Some(Utc::now()));
    Ok(model.update(conn).await?)
}

pub async fn list(
    db: &impl ConnectionTrait,
    page: &Page,
    include_revoked: bool,
    count_total: bool,
) -> AppResult<crate::db::Listed<enrollment_key::Model>> {
    let mut query = enrollment_key::Entity::find();
    if !include_revoked {
        query = query.filter(enrollment_key::Column::RevokedAt.is_null());
    }
    newest_first(db, query, enrollment_key::Column::Id, page, count_total).await
}
