//! Rows of `nodes` and `node_labels`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::{node, node_label};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    prelude::Expr,
    sea_query::{ExprTrait as _, LikeExpr, Query},
};
use uuid::Uuid;

use crate::{
    db::{Page, fetch_page},
    error::{AppError, AppResult},
};

use super::super::NodeStatus;

pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<node::Model>> {
    Ok(node::Entity::find_by_id(id).one(conn).await?)
}

/// The nodes of these ids that exist.
pub async fn find_many(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<node::Model>> {
    Ok(node::Entity::find()
        .filter(node::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await?)
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<node::Model> {
    find(conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no node with id {id}")))
}

pub async fn find_by_hostname(
    conn: &impl ConnectionTrait,
    hostname: &str,
) -> AppResult<Option<node::Model>> {
    Ok(node::Entity::find()
        .filter(node::Column::Hostname.eq(hostname))
        .one(conn)
        .await?)
}

fn labels_json(labels: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// What an agent's registration says about its node.
pub struct Registration<'a> {
    pub hostname: &'a str,
    pub roles_mask: i32,
    pub labels: &'a BTreeMap<String, String>,
    pub agent_version: Option<String>,
}

/// Inserts a newly registered node, ONLINE and seen now.
pub async fn insert(
    conn: &impl ConnectionTrait,
    registration: Registration<'_>,
    now: DateTime<Utc>,
) -> AppResult<node::Model> {
    Ok(node::Entity::insert(node::ActiveModel {
        id: Set(Uuid::now_v7()),
        hostname: Set(registration.hostname.to_owned()),
        roles_mask: Set(registration.roles_mask),
        labels: Set(labels_json(registration.labels)),
        status: Set(NodeStatus::Online.as_str().into()),
        last_seen_at: Set(Some(now)),
        agent_version: Set(registration.agent_version),
        description: Set(None),
        maintenance_enabled: Set(false),
        maintenance_reason: Set(None),
        maintenance_since: Set(None),
        maintenance_until: Set(None),
        maintenance_by: Set(None),
        applied_config_version: Set(None),
        applied_config_at: Set(None),
        config_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_with_returning(conn)
    .await?)
}

/// Updates an existing node from a new registration of its agent.
pub async fn reregister(
    conn: &impl ConnectionTrait,
    existing: node::Model,
    registration: Registration<'_>,
    now: DateTime<Utc>,
) -> AppResult<node::Model> {
    let mut model: node::ActiveModel = existing.into();
    model.roles_mask = Set(registration.roles_mask);
    model.labels = Set(labels_json(registration.labels));
    model.agent_version = Set(registration.agent_version);
    model.last_seen_at = Set(Some(now));
    model.updated_at = Set(now);
    Ok(model.update(conn).await?)
}

/// Replaces the node's labels, in its row and in `node_labels`.
pub async fn replace_labels(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    labels: &BTreeMap<String, String>,
) -> AppResult<()> {
    node::Entity::update_many()
        .col_expr(node::Column::Labels, Expr::value(labels_json(labels)))
        .filter(node::Column::Id.eq(node_id))
        .exec(conn)
        .await?;
    node_label::Entity::delete_many()
        .filter(node_label::Column::NodeId.eq(node_id))
        .exec(conn)
        .await?;
    if !labels.is_empty() {
        node_label::Entity::insert_many(labels.iter().map(|(k, v)| node_label::ActiveModel {
            node_id: Set(node_id),
            key: Set(k.clone()),
            value: Set(v.clone()),
        }))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

/// Sets roles and description where given.
pub async fn set_details(
    conn: &impl ConnectionTrait,
    id: Uuid,
    roles_mask: Option<i32>,
    description: Option<Option<String>>,
) -> AppResult<node::Model> {
    let mut model: node::ActiveModel = get(conn, id).await?.into();
    if let Some(mask) = roles_mask {
        model.roles_mask = Set(mask);
    }
    if let Some(description) = description {
        model.description = Set(description);
    }
    model.updated_at = Set(Utc::now());
    Ok(model.update(conn).await?)
}

/// Records agent contact: `lastSeenAt` now, and the agent's version when given.
pub async fn touch_contact(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    agent_version: Option<String>,
) -> AppResult<()> {
    let mut update = node::Entity::update_many()
        .col_expr(node::Column::LastSeenAt, Expr::value(Utc::now()))
        .filter(node::Column::Id.eq(node_id));
    if let Some(version) = agent_version {
        update = update.col_expr(node::Column::AgentVersion, Expr::value(version));
    }
    update.exec(conn).await?;
    Ok(())
}

/// Records what the node's agent reports of its configuration: the version it has
/// applied (whose time changes only when the version does) and why a newer one failed
/// (cleared when the report carries no error).
pub async fn record_applied_config(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    version: Option<&str>,
    error: Option<String>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    node::Entity::update_many()
        .col_expr(node::Column::ConfigError, Expr::value(error))
        .filter(node::Column::Id.eq(node_id))
        .exec(conn)
        .await?;
    let Some(version) = version else {
        return Ok(());
    };
    node::Entity::update_many()
        .col_expr(node::Column::AppliedConfigVersion, Expr::value(version))
        .col_expr(node::Column::AppliedConfigAt, Expr::value(at))
        .filter(node::Column::Id.eq(node_id))
        .filter(
            sea_orm::Condition::any()
                .add(node::Column::AppliedConfigVersion.is_null())
                .add(node::Column::AppliedConfigVersion.ne(version)),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// Puts a node into maintenance (keeping when it started, if it already was).
pub async fn start_maintenance(
    conn: &impl ConnectionTrait,
    node: &node::Model,
    reason: Option<String>,
    until: Option<DateTime<Utc>>,
    by: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut model: node::ActiveModel = node.clone().into();
    model.maintenance_enabled = Set(true);
    model.maintenance_reason = Set(reason);
    if !node.maintenance_enabled {
        model.maintenance_since = Set(Some(now));
    }
    model.maintenance_until = Set(until);
    model.maintenance_by = Set(Some(by.to_owned()));
    model.updated_at = Set(now);
    model.update(conn).await?;
    Ok(())
}

/// Clears a node's maintenance fields (the caller settles its status).
pub async fn clear_maintenance(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    node::Entity::update_many()
        .col_expr(node::Column::MaintenanceEnabled, Expr::value(false))
        .col_expr(
            node::Column::MaintenanceReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            node::Column::MaintenanceSince,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            node::Column::MaintenanceUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            node::Column::MaintenanceBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(node::Column::UpdatedAt, Expr::value(now))
        .filter(node::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Nodes whose maintenance window ended by `now`.
pub async fn maintenance_ended(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> AppResult<Vec<node::Model>> {
    Ok(node::Entity::find()
        .filter(node::Column::MaintenanceEnabled.eq(true))
        .filter(node::Column::MaintenanceUntil.lte(now))
        .all(conn)
        .await?)
}

/// ONLINE and STALE nodes out of maintenance without agent contact since `since`.
pub async fn quiet_since(
    conn: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> AppResult<Vec<node::Model>> {
    Ok(node::Entity::find()
        .filter(
            node::Column::Status.is_in([NodeStatus::Online.as_str(), NodeStatus::Stale.as_str()]),
        )
        .filter(node::Column::MaintenanceEnabled.eq(false))
        .filter(
            node::Column::LastSeenAt
                .lt(since)
                .or(node::Column::LastSeenAt.is_null()),
        )
        .all(conn)
        .await?)
}

/// Sets the node's status if it still has `from`; says whether it did.
pub async fn move_status(
    conn: &impl ConnectionTrait,
    id: Uuid,
    from: NodeStatus,
    to: NodeStatus,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let moved = node::Entity::update_many()
        .col_expr(node::Column::Status, Expr::value(to.as_str()))
        .col_expr(node::Column::UpdatedAt, Expr::value(now))
        .filter(node::Column::Id.eq(id))
        .filter(node::Column::Status.eq(from.as_str()))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(moved == 1)
}

/// Every node not RETIRED.
pub async fn in_service(conn: &impl ConnectionTrait) -> AppResult<Vec<node::Model>> {
    Ok(node::Entity::find()
        .filter(node::Column::Status.ne(NodeStatus::Retired.as_str()))
        .all(conn)
        .await?)
}

/// How many nodes have each status.
pub async fn count_by_status(conn: &impl ConnectionTrait) -> AppResult<Vec<(NodeStatus, i64)>> {
    use sea_orm::QuerySelect as _;
    let rows: Vec<(String, i64)> = node::Entity::find()
        .select_only()
        .column(node::Column::Status)
        .column_as(node::Column::Id.count(), "count")
        .group_by(node::Column::Status)
        .into_tuple()
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|(status, count)| Ok((NodeStatus::parse(&status)?, count)))
        .collect()
}

/// What a node list may be narrowed by, validated.
pub struct NodeQuery {
    /// Distinct statuses; `None` means every status but RETIRED.
    pub statuses: Option<Vec<NodeStatus>>,
    pub roles_mask: Option<i32>,
    /// Lower case, part of the hostname.
    pub search: Option<String>,
    pub labels: BTreeMap<String, String>,
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Nodes ordered by hostname, `page.first` of them after the cursor (a hostname). Without
/// `statuses`, retired nodes are left out.
pub async fn list(
    db: &impl ConnectionTrait,
    query: &NodeQuery,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<node::Model>> {
    let mut condition = Condition::all();
    match &query.statuses {
        Some(statuses) => {
            condition =
                condition.add(node::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
        }
        None => {
            condition = condition.add(node::Column::Status.ne(NodeStatus::Retired.as_str()));
        }
    }
    if let Some(mask) = query.roles_mask {
        condition = condition.add(Expr::col(node::Column::RolesMask).bit_and(mask).ne(0));
    }
    if let Some(search) = &query.search {
        condition = condition.add(
            Expr::col(node::Column::Hostname).like(LikeExpr::new(escape_like(search)).escape('\\')),
        );
    }
    for (key, value) in &query.labels {
        condition = condition.add(
            node::Column::Id.in_subquery(
                Query::select()
                    .column(node_label::Column::NodeId)
                    .from(node_label::Entity)
                    .and_where(node_label::Column::Key.eq(key.as_str()))
                    .and_where(node_label::Column::Value.eq(value.as_str()))
                    .to_owned(),
            ),
        );
    }
    let select = node::Entity::find().filter(condition);
    let total = if count_total {
        select.clone().count(db).await?
    } else {
        0
    };
    let mut select = select.order_by_asc(node::Column::Hostname);
    if let Some(after) = &page.after {
        select = select.filter(node::Column::Hostname.gt(after.as_str()));
    }
    fetch_page(db, select, page, total).await
}
