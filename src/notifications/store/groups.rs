//! Rows of `notification_groups` and `notification_group_alerts`.

use chrono::{DateTime, Utc};
use entity::{notification_group as group, notification_group_alert as member};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    prelude::Expr, sea_query::OnConflict,
};
use uuid::Uuid;

use crate::error::AppResult;

pub async fn find_by_keys(
    conn: &impl ConnectionTrait,
    keys: &[String],
) -> AppResult<Vec<group::Model>> {
    let mut found = Vec::new();
    for chunk in keys.chunks(500) {
        found.extend(
            group::Entity::find()
                .filter(group::Column::GroupKey.is_in(chunk.iter().cloned()))
                .all(conn)
                .await?,
        );
    }
    Ok(found)
}

pub async fn insert_many(conn: &impl ConnectionTrait, rows: Vec<group::Model>) -> AppResult<()> {
    let models: Vec<group::ActiveModel> = rows.into_iter().map(Into::into).collect();
    for chunk in models.chunks(200) {
        group::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Wakes idle groups: each is looked at `at` (its `groupWait` from now).
pub async fn wake(conn: &impl ConnectionTrait, ids: &[Uuid], at: DateTime<Utc>) -> AppResult<()> {
    for chunk in ids.chunks(500) {
        group::Entity::update_many()
            .col_expr(group::Column::NextFlushAt, Expr::value(at))
            .filter(group::Column::Id.is_in(chunk.iter().copied()))
            .filter(group::Column::NextFlushAt.is_null())
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Groups whose next look is due at `now`, the most overdue first.
pub async fn due(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<group::Model>> {
    Ok(group::Entity::find()
        .filter(group::Column::NextFlushAt.lte(now))
        .order_by_asc(group::Column::NextFlushAt)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Records what a look at these groups did: notified (`notified_at`: their sequence goes
/// up by one) or not, and when they are looked at next (None: idle until an alert comes).
pub async fn advance(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    notified_at: Option<DateTime<Utc>>,
    next_flush_at: Option<DateTime<Utc>>,
) -> AppResult<()> {
    for chunk in ids.chunks(500) {
        let mut update = group::Entity::update_many()
            .col_expr(group::Column::NextFlushAt, Expr::value(next_flush_at))
            .filter(group::Column::Id.is_in(chunk.iter().copied()));
        if let Some(at) = notified_at {
            update = update
                .col_expr(
                    group::Column::Sequence,
                    sea_orm::sea_query::ExprTrait::add(Expr::col(group::Column::Sequence), 1),
                )
                .col_expr(group::Column::LastNotifiedAt, Expr::value(at));
        }
        update.exec(conn).await?;
    }
    Ok(())
}

/// Removes idle groups last used before `before` (their numbering starts again if they
/// form again, long after any receiver kept their last number).
pub async fn delete_idle_before(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> AppResult<u64> {
    let deleted = group::Entity::delete_many()
        .filter(group::Column::NextFlushAt.is_null())
        .filter(group::Column::CreatedAt.lt(before))
        .filter(
            sea_orm::Condition::any()
                .add(group::Column::LastNotifiedAt.is_null())
                .add(group::Column::LastNotifiedAt.lt(before)),
        )
        .exec(conn)
        .await?;
    Ok(deleted.rows_affected)
}

/// Adds alerts to groups, or records their new state and snapshot, keeping what was last
/// notified of them.
pub async fn put_members(conn: &impl ConnectionTrait, rows: Vec<member::Model>) -> AppResult<()> {
    let models: Vec<member::ActiveModel> = rows.into_iter().map(Into::into).collect();
    for chunk in models.chunks(200) {
        member::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([member::Column::GroupId, member::Column::AlertId])
                    .update_columns([
                        member::Column::State,
                        member::Column::Alert,
                        member::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// The members of these groups.
pub async fn members_of(
    conn: &impl ConnectionTrait,
    group_ids: &[Uuid],
) -> AppResult<Vec<member::Model>> {
    let mut found = Vec::new();
    for chunk in group_ids.chunks(500) {
        found.extend(
            member::Entity::find()
                .filter(member::Column::GroupId.is_in(chunk.iter().copied()))
                .all(conn)
                .await?,
        );
    }
    Ok(found)
}

/// The members `(group, alerts)` name, as one condition.
fn members_in(groups: &[(Uuid, Vec<Uuid>)]) -> Condition {
    groups.iter().filter(|(_, alerts)| !alerts.is_empty()).fold(
        Condition::any(),
        |any, (group_id, alerts)| {
            any.add(
                Condition::all()
                    .add(member::Column::GroupId.eq(*group_id))
                    .add(member::Column::AlertId.is_in(alerts.iter().copied())),
            )
        },
    )
}

/// Groups at a time in one statement; each may name many alerts.
const GROUPS_PER_STATEMENT: usize = 100;

/// Records what the notifications just made told of these members.
pub async fn set_notified(
    conn: &impl ConnectionTrait,
    groups: &[(Uuid, Vec<Uuid>)],
    state: &str,
) -> AppResult<()> {
    for chunk in groups.chunks(GROUPS_PER_STATEMENT) {
        let condition = members_in(chunk);
        if condition.is_empty() {
            continue;
        }
        member::Entity::update_many()
            .col_expr(member::Column::NotifiedState, Expr::value(state))
            .filter(condition)
            .exec(conn)
            .await?;
    }
    Ok(())
}

pub async fn remove_members(
    conn: &impl ConnectionTrait,
    groups: &[(Uuid, Vec<Uuid>)],
) -> AppResult<()> {
    for chunk in groups.chunks(GROUPS_PER_STATEMENT) {
        let condition = members_in(chunk);
        if condition.is_empty() {
            continue;
        }
        member::Entity::delete_many()
            .filter(condition)
            .exec(conn)
            .await?;
    }
    Ok(())
}
