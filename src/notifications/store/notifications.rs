//! Rows of `notifications` and `notification_attempts`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{notification, notification_attempt as attempt};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    prelude::Expr,
};
use uuid::Uuid;

use crate::{
    db::{Listed, Page, newest_first},
    error::AppResult,
};

use super::super::model::NotificationState;

fn unfinished() -> [&'static str; 2] {
    [
        NotificationState::Pending.as_str(),
        NotificationState::Retrying.as_str(),
    ]
}

pub async fn insert_many(
    conn: &impl ConnectionTrait,
    rows: Vec<notification::Model>,
) -> AppResult<()> {
    let models: Vec<notification::ActiveModel> = rows.into_iter().map(Into::into).collect();
    for chunk in models.chunks(200) {
        notification::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Notifications that may be sent at `now`: due, not being sent by anyone, and each the
/// oldest unfinished one of its group and contact point (a group's notifications reach a
/// receiver in order).
pub async fn sendable(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<notification::Model>> {
    let due = notification::Entity::find()
        .filter(notification::Column::State.is_in(unfinished()))
        .filter(notification::Column::NextAttemptAt.lte(now))
        .filter(
            Condition::any()
                .add(notification::Column::LeaseUntil.is_null())
                .add(notification::Column::LeaseUntil.lt(now)),
        )
        .order_by_asc(notification::Column::NextAttemptAt)
        .limit(limit)
        .all(conn)
        .await?;
    if due.is_empty() {
        return Ok(due);
    }
    let mut groups: Vec<Uuid> = due.iter().map(|n| n.group_id).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut first: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for chunk in groups.chunks(500) {
        let queued: Vec<(Uuid, Uuid, i64)> = notification::Entity::find()
            .select_only()
            .column(notification::Column::GroupId)
            .column(notification::Column::ContactPointId)
            .column(notification::Column::Sequence)
            .filter(notification::Column::State.is_in(unfinished()))
            .filter(notification::Column::GroupId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(conn)
            .await?;
        for (group, contact_point, sequence) in queued {
            let lowest = first.entry((group, contact_point)).or_insert(sequence);
            *lowest = (*lowest).min(sequence);
        }
    }
    Ok(due
        .into_iter()
        .filter(|n| first.get(&(n.group_id, n.contact_point_id)) == Some(&n.sequence))
        .collect())
}

/// Takes these notifications for sending until `until`, as lease `owner`; answers the
/// ones it took (another instance may have taken some first).
pub async fn lease(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    owner: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    let mut taken = Vec::new();
    for chunk in ids.chunks(500) {
        notification::Entity::update_many()
            .col_expr(notification::Column::LeaseUntil, Expr::value(until))
            .col_expr(notification::Column::LeaseOwner, Expr::value(owner))
            .filter(notification::Column::Id.is_in(chunk.iter().copied()))
            .filter(notification::Column::State.is_in(unfinished()))
            .filter(
                Condition::any()
                    .add(notification::Column::LeaseUntil.is_null())
                    .add(notification::Column::LeaseUntil.lt(now)),
            )
            .exec(conn)
            .await?;
        taken.extend(
            notification::Entity::find()
                .select_only()
                .column(notification::Column::Id)
                .filter(notification::Column::Id.is_in(chunk.iter().copied()))
                .filter(notification::Column::LeaseOwner.eq(owner))
                .into_tuple::<Uuid>()
                .all(conn)
                .await?,
        );
    }
    Ok(taken)
}

/// Where a notification stands after an attempt.
pub struct AfterAttempt {
    pub state: NotificationState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Records attempts and where their notifications now stand.
pub async fn record_attempts(
    conn: &impl ConnectionTrait,
    attempts: Vec<(attempt::Model, AfterAttempt)>,
) -> AppResult<()> {
    let rows: Vec<attempt::ActiveModel> =
        attempts.iter().map(|(row, _)| row.clone().into()).collect();
    for chunk in rows.chunks(200) {
        attempt::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    for (row, after) in attempts {
        set_after(conn, row.notification_id, after).await?;
    }
    Ok(())
}

async fn set_after(conn: &impl ConnectionTrait, id: Uuid, after: AfterAttempt) -> AppResult<()> {
    notification::Entity::update_many()
        .col_expr(
            notification::Column::State,
            Expr::value(after.state.as_str()),
        )
        .col_expr(notification::Column::Attempts, Expr::value(after.attempts))
        .col_expr(
            notification::Column::NextAttemptAt,
            Expr::value(after.next_attempt_at),
        )
        .col_expr(
            notification::Column::FinishedAt,
            Expr::value(after.finished_at),
        )
        .col_expr(
            notification::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            notification::Column::LeaseOwner,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(notification::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Gives up every unfinished notification to a contact point that is being deleted.
pub async fn fail_unfinished_of(
    conn: &impl ConnectionTrait,
    contact_point_id: Uuid,
    at: DateTime<Utc>,
) -> AppResult<u64> {
    let failed = notification::Entity::update_many()
        .col_expr(
            notification::Column::State,
            Expr::value(NotificationState::Failed.as_str()),
        )
        .col_expr(notification::Column::FinishedAt, Expr::value(at))
        .filter(notification::Column::ContactPointId.eq(contact_point_id))
        .filter(notification::Column::State.is_in(unfinished()))
        .exec(conn)
        .await?;
    Ok(failed.rows_affected)
}

/// Removes up to `limit` finished notifications older than `before`; returns how many.
pub async fn delete_finished_before(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
    limit: u64,
) -> AppResult<u64> {
    let ids: Vec<Uuid> = notification::Entity::find()
        .select_only()
        .column(notification::Column::Id)
        .filter(notification::Column::FinishedAt.lt(before))
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    attempt::Entity::delete_many()
        .filter(attempt::Column::NotificationId.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    let deleted = notification::Entity::delete_many()
        .filter(notification::Column::Id.is_in(ids))
        .exec(conn)
        .await?;
    Ok(deleted.rows_affected)
}

pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<notification::Model>> {
    Ok(notification::Entity::find_by_id(id).one(conn).await?)
}

/// Which notifications a list shows, validated.
#[derive(Default)]
pub struct Selection {
    pub states: Vec<NotificationState>,
    pub contact_point_ids: Vec<Uuid>,
    pub since: Option<DateTime<Utc>>,
}

pub async fn list(
    conn: &impl ConnectionTrait,
    selection: &Selection,
    page: &Page,
    count_total: bool,
) -> AppResult<Listed<notification::Model>> {
    let mut c = Condition::all();
    if !selection.states.is_empty() {
        c = c.add(notification::Column::State.is_in(selection.states.iter().map(|s| s.as_str())));
    }
    if !selection.contact_point_ids.is_empty() {
        c = c.add(
            notification::Column::ContactPointId.is_in(selection.contact_point_ids.iter().copied()),
        );
    }
    if let Some(since) = selection.since {
        c = c.add(notification::Column::CreatedAt.gte(since));
    }
    let query = notification::Entity::find().filter(c);
    newest_first(conn, query, notification::Column::Id, page, count_total).await
}

/// The newest `per_notification` attempts of each notification, newest first.
pub async fn attempts_of(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    per_notification: usize,
) -> AppResult<HashMap<Uuid, Vec<attempt::Model>>> {
    let mut found: HashMap<Uuid, Vec<attempt::Model>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows = attempt::Entity::find()
            .filter(attempt::Column::NotificationId.is_in(chunk.iter().copied()))
            .order_by_desc(attempt::Column::At)
            .all(conn)
            .await?;
        for row in rows {
            let list = found.entry(row.notification_id).or_default();
            if list.len() < per_notification {
                list.push(row);
            }
        }
    }
    Ok(found)
}
