//! Rows of `alerts`.

use chrono::{DateTime, Utc};
use entity::alert;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, prelude::Expr,
};
use uuid::Uuid;

use crate::{
    db::{Page, newest_first},
    error::AppResult,
};

use super::super::{AlertSeverity, AlertState, service::Matcher};

fn open_states() -> [&'static str; 2] {
    [AlertState::Pending.as_str(), AlertState::Firing.as_str()]
}

/// The SQL condition of [`Matcher::matches`].
fn matched_by(matcher: &Matcher) -> Condition {
    let mut c = Condition::all();
    if !matcher.rule_ids.is_empty() {
        c = c.add(alert::Column::RuleId.is_in(matcher.rule_ids.iter().copied()));
    }
    if !matcher.node_ids.is_empty() {
        c = c.add(alert::Column::NodeId.is_in(matcher.node_ids.iter().copied()));
    }
    if !matcher.severities.is_empty() {
        c = c.add(alert::Column::Severity.is_in(matcher.severities.iter().cloned()));
    }
    if !matcher.ips.is_empty() {
        c = c.add(alert::Column::Ip.is_in(matcher.ips.iter().cloned()));
    }
    c
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<alert::Model>> {
    Ok(alert::Entity::find_by_id(id).one(db).await?)
}

/// The alerts of these ids that exist.
pub async fn find_many(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<alert::Model>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        found.extend(
            alert::Entity::find()
                .filter(alert::Column::Id.is_in(chunk.iter().copied()))
                .all(db)
                .await?,
        );
    }
    Ok(found)
}

/// Which alerts a list shows, validated.
#[derive(Default)]
pub struct AlertSelection {
    pub states: Vec<AlertState>,
    pub severities: Vec<AlertSeverity>,
    pub node_ids: Vec<Uuid>,
    pub rule_ids: Vec<Uuid>,
    /// Silenced at `now` (true) or not (false).
    pub silenced: Option<bool>,
}

/// Alerts newest first, `page.first` of them after the cursor (an alert id), and how
/// many match.
pub async fn list(
    db: &impl ConnectionTrait,
    selection: &AlertSelection,
    now: DateTime<Utc>,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<alert::Model>> {
    let mut c = Condition::all();
    if !selection.states.is_empty() {
        c = c.add(alert::Column::State.is_in(selection.states.iter().map(|s| s.as_str())));
    }
    if !selection.severities.is_empty() {
        c = c.add(alert::Column::Severity.is_in(selection.severities.iter().map(|s| s.as_str())));
    }
    if !selection.node_ids.is_empty() {
        c = c.add(alert::Column::NodeId.is_in(selection.node_ids.iter().copied()));
    }
    if !selection.rule_ids.is_empty() {
        c = c.add(alert::Column::RuleId.is_in(selection.rule_ids.iter().copied()));
    }
    match selection.silenced {
        Some(true) => c = c.add(alert::Column::SilencedUntil.gt(now)),
        Some(false) => {
            c = c.add(
                Condition::any()
                    .add(alert::Column::SilencedUntil.is_null())
                    .add(alert::Column::SilencedUntil.lte(now)),
            )
        }
        None => {}
    }
    let query = alert::Entity::find().filter(c);
    newest_first(db, query, alert::Column::Id, page, count_total).await
}

/// Every PENDING or FIRING alert.
pub async fn open(conn: &impl ConnectionTrait) -> AppResult<Vec<alert::Model>> {
    Ok(alert::Entity::find()
        .filter(alert::Column::State.is_in(open_states()))
        .all(conn)
        .await?)
}

pub async fn open_of_rule(
    conn: &impl ConnectionTrait,
    rule_id: Uuid,
) -> AppResult<Vec<alert::Model>> {
    Ok(alert::Entity::find()
        .filter(alert::Column::RuleId.eq(rule_id))
        .filter(alert::Column::State.is_in(open_states()))
        .all(conn)
        .await?)
}

pub async fn delete_of_rule(conn: &impl ConnectionTrait, rule_id: Uuid) -> AppResult<()> {
    alert::Entity::delete_many()
        .filter(alert::Column::RuleId.eq(rule_id))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn acknowledge(
    conn: &impl ConnectionTrait,
    alert: alert::Model,
    by: &str,
    note: Option<String>,
    at: DateTime<Utc>,
) -> AppResult<alert::Model> {
    let mut model: alert::ActiveModel = alert.into();
    model.acknowledged_at = Set(Some(at));
    model.acknowledged_by = Set(Some(by.chars().take(128).collect()));
    model.acknowledge_note = Set(note);
    model.updated_at = Set(at);
    Ok(model.update(conn).await?)
}

/// Open alerts the matcher picks.
pub async fn count_open_matching(conn: &impl ConnectionTrait, matcher: &Matcher) -> AppResult<u64> {
    Ok(alert::Entity::find()
        .filter(alert::Column::State.is_in(open_states()))
        .filter(matched_by(matcher))
        .count(conn)
        .await?)
}

/// Puts the open alerts the matcher picks under silence `id` until `until`; an alert
/// already covered for longer keeps that silence.
pub async fn silence_open_matching(
    conn: &impl ConnectionTrait,
    matcher: &Matcher,
    id: Uuid,
    until: DateTime<Utc>,
) -> AppResult<()> {
    alert::Entity::update_many()
        .col_expr(alert::Column::SilenceId, Expr::value(id))
        .col_expr(alert::Column::SilencedUntil, Expr::value(until))
        .filter(alert::Column::State.is_in(open_states()))
        .filter(matched_by(matcher))
        .filter(
            Condition::any()
                .add(alert::Column::SilencedUntil.is_null())
                .add(alert::Column::SilencedUntil.lt(until)),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// Ends silence `id` on every alert it covered.
pub async fn unsilence(conn: &impl ConnectionTrait, silence_id: Uuid) -> AppResult<()> {
    alert::Entity::update_many()
        .col_expr(
            alert::Column::SilencedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(alert::Column::SilenceId.eq(silence_id))
        .filter(alert::Column::SilencedUntil.is_not_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Open alerts that silence `id` covered.
pub async fn open_of_silence(
    conn: &impl ConnectionTrait,
    silence_id: Uuid,
) -> AppResult<Vec<alert::Model>> {
    Ok(alert::Entity::find()
        .filter(alert::Column::SilenceId.eq(silence_id))
        .filter(alert::Column::State.is_in(open_states()))
        .all(conn)
        .await?)
}

/// Sets which silence covers an alert, and until when.
pub async fn set_silence(
    conn: &impl ConnectionTrait,
    alert_id: Uuid,
    silence_id: Option<Uuid>,
    until: Option<DateTime<Utc>>,
) -> AppResult<()> {
    alert::Entity::update_many()
        .col_expr(alert::Column::SilenceId, Expr::value(silence_id))
        .col_expr(alert::Column::SilencedUntil, Expr::value(until))
        .filter(alert::Column::Id.eq(alert_id))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn insert_many(conn: &impl ConnectionTrait, alerts: Vec<alert::Model>) -> AppResult<()> {
    let models: Vec<alert::ActiveModel> =
        alerts.into_iter().map(alert::ActiveModel::from).collect();
    for chunk in models.chunks(200) {
        alert::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Writes what an evaluation changes on an alert: state, value, message and times.
pub async fn update_evaluated(conn: &impl ConnectionTrait, alert: alert::Model) -> AppResult<()> {
    let mut model: alert::ActiveModel = alert.into();
    for column in [
        alert::Column::State,
        alert::Column::Value,
        alert::Column::Message,
        alert::Column::FiredAt,
        alert::Column::ResolvedAt,
        alert::Column::UpdatedAt,
    ] {
        model.reset(column);
    }
    model.update(conn).await?;
    Ok(())
}

/// FIRING alerts no silence covers at `now`, by severity.
pub async fn count_active_by_severity(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> AppResult<Vec<(AlertSeverity, i64)>> {
    use sea_orm::QuerySelect as _;
    let rows: Vec<(String, i64)> = alert::Entity::find()
        .select_only()
        .column(alert::Column::Severity)
        .column_as(alert::Column::Id.count(), "count")
        .filter(alert::Column::State.eq(AlertState::Firing.as_str()))
        .filter(
            Condition::any()
                .add(alert::Column::SilencedUntil.is_null())
                .add(alert::Column::SilencedUntil.lte(now)),
        )
        .group_by(alert::Column::Severity)
        .into_tuple()
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|(severity, count)| Ok((AlertSeverity::parse(&severity)?, count)))
        .collect()
}
