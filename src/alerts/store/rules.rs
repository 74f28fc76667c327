//! Rows of `alert_rules`.

use std::collections::BTreeMap;

use chrono::Utc;
use entity::alert_rule;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    nodes::{ALL_ROLES, NodeRole},
};

use super::super::{AlertAggregate, AlertComparison, AlertCondition, AlertScope, AlertSeverity};
use crate::mailflow::BounceCategory;

/// A node role as a rule's selector stores it.
pub fn role_str(role: NodeRole) -> String {
    format!("{role:?}").to_uppercase()
}

pub fn role_from_str(text: &str) -> Option<NodeRole> {
    ALL_ROLES.into_iter().find(|r| role_str(*r) == text)
}

/// A rule as validated, ready to store.
#[derive(Clone, Debug)]
pub struct RuleSpec {
    pub name: String,
    pub description: Option<String>,
    pub condition: AlertCondition,
    pub metric: Option<String>,
    pub metric_labels: BTreeMap<String, String>,
    pub aggregate: Option<AlertAggregate>,
    pub comparison: AlertComparison,
    pub threshold: f64,
    pub resolve_threshold: Option<f64>,
    pub for_seconds: i32,
    pub window_seconds: Option<i32>,
    pub scope: Option<AlertScope>,
    pub category: Option<BounceCategory>,
    pub pause_ip: bool,
    pub severity: AlertSeverity,
    pub enabled: bool,
    pub roles: Vec<NodeRole>,
    pub labels: BTreeMap<String, String>,
    pub node_ids: Vec<Uuid>,
}

fn apply(model: &mut alert_rule::ActiveModel, spec: RuleSpec, by: &str) {
    let now = Utc::now();
    model.name = Set(spec.name);
    model.description = Set(spec.description);
    model.condition = Set(spec.condition.as_str().into());
    model.metric = Set(spec.metric);
    model.metric_labels = Set(serde_json::json!(spec.metric_labels));
    model.aggregate = Set(spec.aggregate.map(|a| a.as_str().into()));
    model.comparison = Set(spec.comparison.as_str().into());
    model.threshold = Set(spec.threshold);
    model.resolve_threshold = Set(spec.resolve_threshold);
    model.for_seconds = Set(spec.for_seconds);
    model.window_seconds = Set(spec.window_seconds);
    model.scope = Set(spec.scope.map(|s| s.as_str().into()));
    model.category = Set(spec.category.map(|c| c.as_str().into()));
    model.pause_ip = Set(spec.pause_ip);
    model.severity = Set(spec.severity.as_str().into());
    model.enabled = Set(spec.enabled);
    model.selector_roles = Set(serde_json::json!(
        spec.roles.iter().map(|r| role_str(*r)).collect::<Vec<_>>()
    ));
    model.selector_labels = Set(serde_json::json!(spec.labels));
    model.selector_node_ids = Set(serde_json::json!(
        spec.node_ids
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    ));
    model.updated_at = Set(now);
    model.updated_by = Set(Some(by.chars().take(128).collect()));
}

/// Every rule, by name.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<alert_rule::Model>> {
    Ok(alert_rule::Entity::find()
        .order_by_asc(alert_rule::Column::Name)
        .all(db)
        .await?)
}

/// The rules of these ids that exist.
pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<alert_rule::Model>> {
    Ok(alert_rule::Entity::find()
        .filter(alert_rule::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<alert_rule::Model>> {
    Ok(alert_rule::Entity::find_by_id(id).one(db).await?)
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> AppResult<alert_rule::Model> {
    find(db, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no alert rule with id {id}")))
}

/// The name of a rule, or "deleted rule".
pub async fn name_of(db: &impl ConnectionTrait, id: Uuid) -> AppResult<String> {
    Ok(find(db, id)
        .await?
        .map_or_else(|| "deleted rule".into(), |r| r.name))
}

pub async fn count(db: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(alert_rule::Entity::find().count(db).await?)
}

/// Whether another rule than `except` has this name.
pub async fn name_taken(
    conn: &impl ConnectionTrait,
    name: &str,
    except: Option<Uuid>,
) -> AppResult<bool> {
    let mut query = alert_rule::Entity::find().filter(alert_rule::Column::Name.eq(name));
    if let Some(id) = except {
        query = query.filter(alert_rule::Column::Id.ne(id));
    }
    Ok(query.count(conn).await? > 0)
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    id: Uuid,
    spec: RuleSpec,
    by: &str,
) -> AppResult<alert_rule::Model> {
    let mut model = alert_rule::ActiveModel {
        id: Set(id),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    apply(&mut model, spec, by);
    Ok(model.insert(conn).await?)
}

pub async fn update(
    conn: &impl ConnectionTrait,
    current: alert_rule::Model,
    spec: RuleSpec,
    by: &str,
) -> AppResult<alert_rule::Model> {
    let mut model: alert_rule::ActiveModel = current.into();
    apply(&mut model, spec, by);
    Ok(model.update(conn).await?)
}

pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    alert_rule::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}
