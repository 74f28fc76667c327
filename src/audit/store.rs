//! The only code that reads and writes the `audit_log` table.

use chrono::{DateTime, Utc};
use entity::audit_log;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{
    db::{Page, newest_first},
    error::AppResult,
};

use super::{
    model::AuditOutcome,
    service::{AuditContext, Change},
};

pub async fn insert(
    conn: &impl ConnectionTrait,
    id: Uuid,
    ctx: &AuditContext,
    change: Change,
    outcome: AuditOutcome,
) -> AppResult<()> {
    audit_log::Entity::insert(entry(id, ctx, change, outcome))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The text as the log keeps it: an entry records what a caller sent, and a refusal of
/// text with NUL or other control characters must still be recorded (Postgres stores no
/// NUL at all), so each control character but line breaks and tabs becomes U+FFFD.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

fn printable_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(printable(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(printable_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (printable(&key), printable_json(value)))
                .collect(),
        ),
        other => other,
    }
}

fn entry(
    id: Uuid,
    ctx: &AuditContext,
    change: Change,
    outcome: AuditOutcome,
) -> audit_log::ActiveModel {
    audit_log::ActiveModel {
        id: Set(id),
        occurred_at: Set(Utc::now()),
        actor_kind: Set(ctx.actor.kind.into()),
        actor_id: Set(ctx.actor.id),
        actor_name: Set(printable(
            &ctx.actor.name.chars().take(128).collect::<String>(),
        )),
        action: Set(change.action.into()),
        target_kind: Set(change.target_kind.map(Into::into)),
        target_id: Set(change.target_id.as_deref().map(printable)),
        outcome: Set(outcome.as_str().into()),
        detail: Set(change.detail.map(printable_json)),
        request_id: Set(ctx.request_id.clone()),
    }
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Entries newest first, `page.first` of them after the cursor (an entry id), plus the
/// total that match.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &AuditFilter,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<audit_log::Model>> {
    let mut query = audit_log::Entity::find();
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::Column::Action.eq(action.as_str()));
    }
    if let Some(actor) = filter.actor_id {
        query = query.filter(audit_log::Column::ActorId.eq(actor));
    }
    if let Some(target) = &filter.target_id {
        query = query.filter(audit_log::Column::TargetId.eq(target.as_str()));
    }
    if let Some(outcome) = &filter.outcome {
        query = query.filter(audit_log::Column::Outcome.eq(outcome.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_log::Column::OccurredAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log::Column::OccurredAt.lt(until));
    }
    newest_first(conn, query, audit_log::Column::Id, page, count_total).await
}

/// These entries, in id order (those that exist).
pub async fn entries(
    conn: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> AppResult<Vec<audit_log::Model>> {
    use sea_orm::QueryOrder as _;
    Ok(audit_log::Entity::find()
        .filter(audit_log::Column::Id.is_in(ids))
        .order_by_asc(audit_log::Column::Id)
        .all(conn)
        .await?)
}
