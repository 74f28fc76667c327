//! What operators do with nodes: list and change them, maintenance, decommissioning and
//! their keys.

use chrono::{DateTime, Utc};
use entity::{node::Model as NodeRow, node_key::Model as NodeKeyRow};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    db::Page,
    error::{AppError, AppResult},
    input,
    state::AppState,
};

use super::{
    keys,
    model::{NodeFilter, NodeRole, UpdateNodeInput},
    register::issue_key,
    status::{self, NodeStatus},
    store::{self, nodes::NodeQuery},
    validate::{
        MAX_DESCRIPTION_CHARS, MAX_REASON_CHARS, MAX_SEARCH_CHARS, validate_labels, validate_roles,
    },
};

/// Nodes ordered by hostname, `page.first` of them after the cursor (a hostname).
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &NodeFilter,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<NodeRow>> {
    let statuses = filter
        .statuses
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|statuses| {
            // A list of any length names at most five statuses.
            let mut distinct = statuses.clone();
            distinct.sort_by_key(|s| s.as_str());
            distinct.dedup();
            distinct
        });
    let roles_mask = filter
        .roles
        .as_ref()
        .filter(|r| !r.is_empty())
        .map(|roles| NodeRole::mask(roles));
    let search = match filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(search) if search.chars().count() > MAX_SEARCH_CHARS => {
            return Err(AppError::bad_input(
                "filter.search",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        Some(search) => {
            input::check_text("filter.search", search, input::TextKind::Line)?;
            Some(search.to_ascii_lowercase())
        }
        None => None,
    };
    let labels = match &filter.labels {
        Some(labels) => validate_labels("filter.labels", labels)?,
        None => Default::default(),
    };
    let query = NodeQuery {
        statuses,
        roles_mask,
        search,
        labels,
    };
    store::nodes::list(db, &query, page, count_total).await
}

/// Changes labels, roles or description.
pub async fn update(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
    input: &UpdateNodeInput,
) -> AppResult<NodeRow> {
    let change = Change::new("node.update").target("node", id).detail(serde_json::json!({
        "labels": input.labels.as_ref().map(|l| l.len()),
        "roles": input.roles.as_ref().map(|r| r.iter().map(|role| format!("{role:?}").to_uppercase()).collect::<Vec<_>>()),
        "description": input.description.is_some(),
    }));
    audit::audited(db, audit, change.clone(), async {
        let labels = input
            .labels
            .as_deref()
            .map(|l| validate_labels("input.labels", l))
            .transpose()?;
        let roles = input
            .roles
            .as_deref()
            .map(|r| validate_roles("input.roles", r))
            .transpose()?;
        let description = input
            .description
            .as_deref()
            .map(|d| input::bounded_free_text("input.description", Some(d), MAX_DESCRIPTION_CHARS))
            .transpose()?;
        let txn = crate::db::begin_write(db).await?;
        store::nodes::set_details(&txn, id, roles, description).await?;
        if let Some(labels) = &labels {
            store::nodes::replace_labels(&txn, id, labels).await?;
        }
        let node = store::nodes::get(&txn, id).await?;
        audit::commit(txn, audit, change).await?;
        Ok(node)
    })
    .await
}

/// Puts a node into maintenance (optionally until a time) or takes it out.
pub async fn set_maintenance(
    state: &AppState,
    audit: &AuditContext,
    id: Uuid,
    enabled: bool,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
) -> AppResult<NodeRow> {
    let change = Change::new("node.maintenance")
        .target("node", id)
        .detail(serde_json::json!({
            "enabled": enabled,
            "until": until,
        }));
    let db = &state.db;
    let (node, event) = audit::audited(db, audit, change.clone(), async {
        let reason = input::bounded_text("reason", reason, MAX_REASON_CHARS)?;
        let now = Utc::now();
        if until.is_some_and(|at| at <= now) {
            return Err(AppError::bad_input("until", "must be in the future"));
        }
        let txn = crate::db::begin_write(db).await?;
        let node = store::nodes::get(&txn, id).await?;
        if node.status == NodeStatus::Retired.as_str() {
            return Err(AppError::Conflict("this node is retired".into()));
        }
        let event = if enabled {
            store::nodes::start_maintenance(&txn, &node, reason, until, &audit.actor.name, now)
                .await?;
            status::transition(&txn, &node, NodeStatus::Maintenance, "maintenance started").await?
        } else {
            store::nodes::clear_maintenance(&txn, id, now).await?;
            let to = status::from_contact(state, node.last_seen_at, now);
            status::transition(&txn, &node, to, "maintenance ended").await?
        };
        let node = store::nodes::get(&txn, id).await?;
        audit::commit(txn, audit, change).await?;
        Ok((node, event))
    })
    .await?;
    state.events.publish_all(event);
    Ok(node)
}

/// Retires a node: status RETIRED, every key revoked, hidden from lists unless asked for.
pub async fn decommission(state: &AppState, audit: &AuditContext, id: Uuid) -> AppResult<NodeRow> {
    let change = Change::new("node.decommission").target("node", id);
    let db = &state.db;
    let (node, event) = audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let node = store::nodes::get(&txn, id).await?;
        keys::revoke_all_of_node(&txn, id, "this node was decommissioned").await?;
        store::nodes::clear_maintenance(&txn, id, Utc::now()).await?;
        let event = status::transition(&txn, &node, NodeStatus::Retired, "decommissioned").await?;
        let node = store::nodes::get(&txn, id).await?;
        audit::commit(txn, audit, change).await?;
        Ok((node, event))
    })
    .await?;
    state.events.publish_all(event);
    Ok(node)
}

/// Revokes a node's keys and issues a new one.
pub async fn rotate_key(
    db: &DatabaseConnection,
    audit: &AuditContext,
    node_id: Uuid,
) -> AppResult<(NodeKeyRow, String)> {
    let change = Change::new("node.rotate_key").target("node", node_id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let node = store::nodes::get(&txn, node_id).await?;
        if node.status == NodeStatus::Retired.as_str() {
            return Err(AppError::Conflict("this node is retired".into()));
        }
        keys::revoke_all_of_node(&txn, node_id, "this node's key was replaced").await?;
        let issued = issue_key(&txn, node_id).await?;
        audit::commit(txn, audit, change).await?;
        Ok(issued)
    })
    .await
}

/// Revokes one node key.
pub async fn revoke_key(
    db: &DatabaseConnection,
    audit: &AuditContext,
    key_id: Uuid,
) -> AppResult<NodeKeyRow> {
    let change = Change::new("node.revoke_key").target("node_key", key_id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let Some(key) = store::keys::find(&txn, key_id).await? else {
            return Err(AppError::NotFound(format!("no node key with id {key_id}")));
        };
        let key = if key.revoked_at.is_none() {
            keys::revoke_one(&txn, key).await?
        } else {
            key
        };
        audit::commit(txn, audit, change).await?;
        Ok(key)
    })
    .await
}
