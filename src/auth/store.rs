//! The only code that reads and writes the `refresh_tokens` table.

use chrono::{DateTime, Utc};
use entity::refresh_token;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, prelude::Expr,
};
use uuid::Uuid;

use crate::error::AppResult;

/// Stores a new refresh token (by its hash) in `family`.
pub async fn insert_refresh_token(
    conn: &impl ConnectionTrait,
    family: Uuid,
    user_id: Uuid,
    token_hash: String,
    expires_at: DateTime<Utc>,
) -> AppResult<()> {
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family),
        user_id: Set(user_id),
        token_hash: Set(token_hash),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Marks the token used if it is still usable, and says whether this call did. As the
/// first statement of a transaction it takes the row lock on Postgres and the write lock
/// on SQLite, so of concurrent claims exactly one wins.
pub async fn claim(
    conn: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    Ok(refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}

pub async fn find_by_hash(
    conn: &impl ConnectionTrait,
    token_hash: &str,
) -> AppResult<Option<refresh_token::Model>> {
    Ok(refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .one(conn)
        .await?)
}

pub async fn revoke_family(conn: &impl ConnectionTrait, family: Uuid) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn revoke_all_of_user(conn: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}
