//! Enrollment keys: created by admins, used by agents to register nodes.

use chrono::Utc;
use entity::enrollment_key;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait, prelude::Expr, sea_query::ExprTrait as _,
};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    db::{Page, newest_first},
    error::{AppError, AppResult},
};

use super::keys::{self, KeyKind};

const MAX_NAME_CHARS: usize = 128;

/// Creates a key; returns it with its secret, which is not stored and shown only now.
pub async fn create(
    db: &DatabaseConnection,
    audit: &AuditContext,
    name: &str,
    expires_at: Option<chrono::DateTime<Utc>>,
    max_uses: Option<i32>,
) -> AppResult<(enrollment_key::Model, String)> {
    let change = Change::new("enrollment_key.create").detail(serde_json::json!({
        "name": name.chars().take(MAX_NAME_CHARS).collect::<String>(),
        "expiresAt": expires_at,
        "maxUses": max_uses,
    }));
    audit::audited(db, audit, change.clone(), async {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(AppError::bad_input(
                "input.name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AppError::bad_input(
                "input.expiresAt",
                "must be in the future",
            ));
        }
        if max_uses.is_some_and(|n| n < 1) {
            return Err(AppError::bad_input("input.maxUses", "must be at least 1"));
        }
        let id = Uuid::now_v7();
        let (key, secret_hash) = keys::generate(KeyKind::Enrollment, id);
        let txn = db.begin().await?;
        let row = enrollment_key::Entity::insert(enrollment_key::ActiveModel {
            id: Set(id),
            name: Set(name.to_string()),
            secret_hash: Set(secret_hash),
            created_by: Set(audit.actor.id),
            created_at: Set(Utc::now()),
            expires_at: Set(expires_at),
            max_uses: Set(max_uses),
            uses: Set(0),
            revoked_at: Set(None),
            last_used_at: Set(None),
        })
        .exec_with_returning(&txn)
        .await?;
        audit::record(&txn, audit, change.target("enrollment_key", id)).await?;
        txn.commit().await?;
        Ok((row, key))
    })
    .await
}

/// Counts one registration against the key, atomically: refused when the key was
/// revoked, expired or used up since the caller was authenticated.
pub async fn consume(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    let now = Utc::now();
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
    if counted == 1 {
        Ok(())
    } else {
        Err(AppError::Unauthenticated(
            "enrollment key is revoked, expired or used up".into(),
        ))
    }
}

pub async fn list(
    db: &impl ConnectionTrait,
    page: &Page,
    include_revoked: bool,
    count_total: bool,
) -> AppResult<(Vec<enrollment_key::Model>, bool, u64)> {
    let mut query = enrollment_key::Entity::find();
    if !include_revoked {
        query = query.filter(enrollment_key::Column::RevokedAt.is_null());
    }
    newest_first(db, query, enrollment_key::Column::Id, page, count_total).await
}

pub async fn revoke(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
) -> AppResult<enrollment_key::Model> {
    let change = Change::new("enrollment_key.revoke").target("enrollment_key", id);
    audit::audited(db, audit, change.clone(), async {
        let txn = db.begin().await?;
        let Some(row) = enrollment_key::Entity::find_by_id(id).one(&txn).await? else {
            return Err(AppError::NotFound(format!(
                "no enrollment key with id {id}"
            )));
        };
        let row = if row.revoked_at.is_none() {
            let mut model: enrollment_key::ActiveModel = row.into();
            model.revoked_at = Set(Some(Utc::now()));
            sea_orm::ActiveModelTrait::update(model, &txn).await?
        } else {
            row
        };
        audit::record(&txn, audit, change).await?;
        txn.commit().await?;
        Ok(row)
    })
    .await
}
