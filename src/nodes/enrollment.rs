//! Enrollment keys: created by admins, used by agents to register nodes.

use chrono::Utc;
use entity::enrollment_key::Model as EnrollmentKeyRow;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    error::{AppError, AppResult},
};

use super::{
    NodeStatus,
    keys::{self, KeyKind},
    store::{self, enrollment::NewEnrollmentKey},
};

const MAX_NAME_CHARS: usize = 128;

/// Creates a key; returns it with its secret, which is not stored and shown only now.
pub async fn create(
    db: &DatabaseConnection,
    audit: &AuditContext,
    name: &str,
    expires_at: Option<chrono::DateTime<Utc>>,
    max_uses: Option<i32>,
) -> AppResult<(EnrollmentKeyRow, String)> {
    let change = Change::new("enrollment_key.create").detail(serde_json::json!({
        "name": name.chars().take(MAX_NAME_CHARS).collect::<String>(),
        "expiresAt": expires_at,
        "maxUses": max_uses,
    }));
    audit::audited(db, audit, change.clone(), async {
        let name = crate::input::required_line("input.name", name, MAX_NAME_CHARS)?;
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AppError::bad_input(
                "input.expiresAt",
                "must be in the future",
            ));
        }
        if max_uses.is_some_and(|n| n < 1) {
            return Err(AppError::bad_input("input.maxUses", "must be at least 1"));
        }
        insert_key(db, audit, change, &name, expires_at, max_uses, None).await
    })
    .await
}

/// How long an admin's re-enrollment key stays valid.
const REENROLLMENT_VALIDITY: chrono::Duration = chrono::Duration::hours(24);

/// Creates an admin's one-time key to enroll node `node_id` again (an agent reinstalled
/// without its node key): it registers only that node's hostname, once, within 24 hours.
pub async fn create_for_node(
    db: &DatabaseConnection,
    audit: &AuditContext,
    node_id: Uuid,
) -> AppResult<(EnrollmentKeyRow, String)> {
    let change = Change::new("enrollment_key.create_for_node").target("node", node_id);
    audit::audited(db, audit, change.clone(), async {
        let Some(node) = store::nodes::find(db, node_id).await? else {
            return Err(AppError::NotFound(format!("no node with id {node_id}")));
        };
        if node.status == NodeStatus::Retired.as_str() {
            return Err(AppError::Conflict(format!(
                "node {} is retired; it cannot be enrolled again",
                node.hostname
            )));
        }
        let name = format!("re-enrollment of {}", node.hostname);
        let expires_at = Some(Utc::now() + REENROLLMENT_VALIDITY);
        insert_key(db, audit, change, &name, expires_at, Some(1), Some(node_id)).await
    })
    .await
}

async fn insert_key(
    db: &DatabaseConnection,
    audit: &AuditContext,
    change: Change,
    name: &str,
    expires_at: Option<chrono::DateTime<Utc>>,
    max_uses: Option<i32>,
    node_id: Option<Uuid>,
) -> AppResult<(EnrollmentKeyRow, String)> {
    let id = Uuid::now_v7();
    let (key, secret_hash) = keys::generate(KeyKind::Enrollment, id);
    let txn = db.begin().await?;
    let row = store::enrollment::insert(
        &txn,
        NewEnrollmentKey {
            id,
            name: name.to_string(),
            secret_hash,
            created_by: audit.actor.id,
            expires_at,
            max_uses,
            node_id,
        },
    )
    .await?;
    audit::commit(txn, audit, change.target("enrollment_key", id)).await?;
    Ok((row, key))
}

/// Counts one registration against the key, atomically: refused when the key was
/// revoked, expired or used up since the caller was authenticated.
pub async fn consume(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    if store::enrollment::count_use(conn, id, Utc::now()).await? {
        Ok(())
    } else {
        Err(AppError::Unauthenticated(
            "enrollment key is revoked, expired or used up".into(),
        ))
    }
}

pub async fn list(
    db: &impl ConnectionTrait,
    page: &crate::db::Page,
    include_revoked: bool,
    count_total: bool,
) -> AppResult<crate::db::Listed<entity::enrollment_key::Model>> {
    store::enrollment::list(db, page, include_revoked, count_total).await
}

pub async fn revoke(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
) -> AppResult<EnrollmentKeyRow> {
    let change = Change::new("enrollment_key.revoke").target("enrollment_key", id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let Some(row) = store::enrollment::find(&txn, id).await? else {
            return Err(AppError::NotFound(format!(
                "no enrollment key with id {id}"
            )));
        };
        let row = if row.revoked_at.is_none() {
            store::enrollment::revoke(&txn, row).await?
        } else {
            row
        };
        audit::commit(txn, audit, change).await?;
        Ok(row)
    })
    .await
}
