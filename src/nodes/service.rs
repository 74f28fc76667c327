use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::{ip_address, node, node_key, node_label, node_status_change};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    prelude::Expr,
    sea_query::{ExprTrait as _, LikeExpr, Query},
};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    auth::{AgentNode, EnrollmentCaller},
    db::{Page, fetch_page},
    error::{AppError, AppResult},
    ips::{self, ParsedAddress},
    realtime::{Event, NodeStatusChanged},
    state::AppState,
};

use super::{
    enrollment,
    keys::{self, KeyKind},
    model::{Label, NodeFilter, NodeRole, RegisterNodeInput, UpdateNodeInput},
    status::{self, NodeStatus},
};

pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_CHARS: usize = 63;
pub const MAX_LABEL_VALUE_BYTES: usize = 255;
pub const MAX_IPS_PER_NODE: usize = 64;
const MAX_AGENT_VERSION_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1024;
const MAX_REASON_CHARS: usize = 255;
const MAX_SEARCH_CHARS: usize = 253;

/// A DNS name per RFC 1123, folded to lower case.
pub fn validate_hostname(field: &str, input: &str) -> AppResult<String> {
    let name = input.trim_end_matches('.').to_ascii_lowercase();
    let bad = |reason: &str| Err(AppError::bad_input(field, reason.to_string()));
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("may hold only letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a part may not start or end with '-'");
        }
    }
    Ok(name)
}

pub fn validate_roles(field: &str, roles: &[NodeRole]) -> AppResult<i32> {
    if roles.is_empty() {
        return Err(AppError::bad_input(field, "must name at least one role"));
    }
    Ok(NodeRole::mask(roles))
}

pub fn validate_labels(field: &str, labels: &[Label]) -> AppResult<BTreeMap<String, String>> {
    if labels.len() > MAX_LABELS {
        return Err(AppError::bad_input(
            field,
            format!("{} labels; at most {MAX_LABELS}", labels.len()),
        ));
    }
    let mut map = BTreeMap::new();
    for label in labels {
        let key_ok = !label.key.is_empty()
            && label.key.chars().count() <= MAX_LABEL_KEY_CHARS
            && label.key.starts_with(|c: char| c.is_ascii_alphanumeric())
            && label
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
        if !key_ok {
            return Err(AppError::bad_input(
                field,
                format!(
                    "label key '{}' must be 1 to {MAX_LABEL_KEY_CHARS} letters, digits, '.', '_', '/' or '-', starting with a letter or digit",
                    label
                        .key
                        .chars()
                        .take(MAX_LABEL_KEY_CHARS + 1)
                        .collect::<String>()
                ),
            ));
        }
        if label.value.len() > MAX_LABEL_VALUE_BYTES {
            return Err(AppError::bad_input(
                field,
                format!(
                    "value of label '{}' is {} bytes; at most {MAX_LABEL_VALUE_BYTES}",
                    label.key,
                    label.value.len()
                ),
            ));
        }
        if map.insert(label.key.clone(), label.value.clone()).is_some() {
            return Err(AppError::bad_input(
                field,
                format!("label '{}' is given twice", label.key),
            ));
        }
    }
    Ok(map)
}

fn parse_ips(field: &str, inputs: &[String]) -> AppResult<Vec<ParsedAddress>> {
    if inputs.len() > MAX_IPS_PER_NODE {
        return Err(AppError::bad_input(
            field,
            format!("{} addresses; at most {MAX_IPS_PER_NODE}", inputs.len()),
        ));
    }
    let mut parsed: Vec<ParsedAddress> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let ip = ips::parse_address(field, input)?;
        if !parsed.iter().any(|p| p.key == ip.key) {
            parsed.push(ip);
        }
    }
    Ok(parsed)
}

fn bounded_text(field: &str, text: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > max => Err(AppError::bad_input(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(t) => Ok(Some(t.to_string())),
    }
}

fn labels_json(labels: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

async fn replace_labels(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    labels: &BTreeMap<String, String>,
) -> AppResult<()> {
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

/// Assigns the reported addresses to the node, adding the ones not yet known.
async fn attach_ips(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    ips: &[ParsedAddress],
) -> AppResult<()> {
    let now = Utc::now();
    for ip in ips {
        let existing = ip_address::Entity::find()
            .filter(ip_address::Column::Address.eq(ip.text.as_str()))
            .one(conn)
            .await?;
        match existing {
            Some(row) if row.node_id == Some(node_id) => {}
            Some(row) => {
                let mut model: ip_address::ActiveModel = row.into();
                model.node_id = Set(Some(node_id));
                model.updated_at = Set(now);
                model.update(conn).await?;
            }
            None => {
                ip_address::Entity::insert(ip_address::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    address: Set(ip.text.clone()),
                    address_key: Set(ip.key.to_vec()),
                    node_id: Set(Some(node_id)),
                    created_at: Set(now),
                    updated_at: Set(now),
                    pool: Set(None),
                    status: Set(crate::ips::IpStatus::Active.as_str().into()),
                    status_reason: Set(None),
                    status_changed_at: Set(Some(now)),
                    reverse_dns: Set(None),
                    notes: Set(None),
                })
                .exec_without_returning(conn)
                .await?;
            }
        }
    }
    Ok(())
}

async fn revoke_keys(conn: &impl ConnectionTrait, node_id: Uuid) -> AppResult<()> {
    node_key::Entity::update_many()
        .col_expr(node_key::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(node_key::Column::NodeId.eq(node_id))
        .filter(node_key::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

async fn issue_key(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
) -> AppResult<(node_key::Model, String)> {
    let id = Uuid::now_v7();
    let (key, secret_hash) = keys::generate(KeyKind::Node, id);
    let row = node_key::Entity::insert(node_key::ActiveModel {
        id: Set(id),
        node_id: Set(node_id),
        secret_hash: Set(secret_hash),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
        last_used_at: Set(None),
    })
    .exec_with_returning(conn)
    .await?;
    Ok((row, key))
}

async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<node::Model> {
    node::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no node with id {id}")))
}

pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<node::Model>> {
    Ok(node::Entity::find_by_id(id).one(conn).await?)
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

/// Registers a node for an enrollment key, or updates the node of that hostname, and
/// issues its new key (revoking the old ones). Returns the node and the key.
pub async fn register(
    state: &AppState,
    audit: &AuditContext,
    caller: &EnrollmentCaller,
    input: &RegisterNodeInput,
) -> AppResult<(node::Model, String)> {
    let change = Change::new("node.register").detail(serde_json::json!({
        "hostname": input.hostname.chars().take(253).collect::<String>(),
        "enrollmentKey": caller.key_id,
    }));
    let db = &state.db;
    let (node, key, events) = audit::audited(db, audit, change.clone(), async {
        let hostname = validate_hostname("input.hostname", &input.hostname)?;
        let roles_mask = validate_roles("input.roles", &input.roles)?;
        let labels = validate_labels("input.labels", &input.labels)?;
        let ips = parse_ips("input.ipAddresses", &input.ip_addresses)?;
        let agent_version = bounded_text(
            "input.agentVersion",
            input.agent_version.as_deref(),
            MAX_AGENT_VERSION_CHARS,
        )?;

        let txn = db.begin().await?;
        enrollment::consume(&txn, caller.key_id).await?;
        let now = Utc::now();
        let mut events = Vec::new();
        let node = match find_by_hostname(&txn, &hostname).await? {
            Some(existing) => {
                let previous = existing.clone();
                let mut model: node::ActiveModel = existing.into();
                model.roles_mask = Set(roles_mask);
                model.labels = Set(labels_json(&labels));
                model.agent_version = Set(agent_version);
                model.last_seen_at = Set(Some(now));
                model.updated_at = Set(now);
                let updated = model.update(&txn).await?;
                revoke_keys(&txn, updated.id).await?;
                if !updated.maintenance_enabled {
                    events.extend(
                        status::transition(&txn, &previous, NodeStatus::Online, "agent registered")
                            .await?,
                    );
                }
                get(&txn, updated.id).await?
            }
            None => {
                let node = node::Entity::insert(node::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    hostname: Set(hostname.clone()),
                    roles_mask: Set(roles_mask),
                    labels: Set(labels_json(&labels)),
                    status: Set(NodeStatus::Online.as_str().into()),
                    last_seen_at: Set(Some(now)),
                    agent_version: Set(agent_version),
                    description: Set(None),
                    maintenance_enabled: Set(false),
                    maintenance_reason: Set(None),
                    maintenance_since: Set(None),
                    maintenance_until: Set(None),
                    maintenance_by: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                })
                .exec_with_returning(&txn)
                .await?;
                status::record(&txn, node.id, None, NodeStatus::Online, "registered", now).await?;
                events.push(Event::NodeStatusChanged(NodeStatusChanged {
                    node_id: node.id,
                    hostname: node.hostname.clone(),
                    from: None,
                    to: NodeStatus::Online.as_str().into(),
                    at: now,
                    reason: "registered".into(),
                }));
                node
            }
        };
        replace_labels(&txn, node.id, &labels).await?;
        attach_ips(&txn, node.id, &ips).await?;
        let (_, key) = issue_key(&txn, node.id).await?;
        audit::record(&txn, audit, change.target("node", node.id)).await?;
        txn.commit().await?;
        Ok((node, key, events))
    })
    .await?;
    state.events.publish_all(events);
    Ok((node, key))
}

/// Records agent contact: `lastSeenAt` now, and back ONLINE if the node was STALE or DOWN.
pub async fn heartbeat(
    state: &AppState,
    agent: &AgentNode,
    agent_version: Option<&str>,
) -> AppResult<node::Model> {
    let agent_version = bounded_text("agentVersion", agent_version, MAX_AGENT_VERSION_CHARS)?;
    let txn = state.db.begin().await?;
    let (node, event) = record_contact(&txn, agent.node_id, agent_version).await?;
    txn.commit().await?;
    state.events.publish_all(event);
    Ok(node)
}

/// Records agent contact inside the caller's transaction: `lastSeenAt` now (and the
/// agent's version, when given), and back ONLINE if the node was STALE or DOWN. Returns
/// the node and the status event to publish after the commit.
pub async fn record_contact(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    agent_version: Option<String>,
) -> AppResult<(node::Model, Option<Event>)> {
    let mut update = node::Entity::update_many()
        .col_expr(node::Column::LastSeenAt, Expr::value(Utc::now()))
        .filter(node::Column::Id.eq(node_id));
    if let Some(version) = agent_version {
        update = update.col_expr(node::Column::AgentVersion, Expr::value(version));
    }
    update.exec(conn).await?;
    let node = get(conn, node_id).await?;
    let event = match NodeStatus::parse(&node.status) {
        NodeStatus::Stale | NodeStatus::Down => {
            status::transition(conn, &node, NodeStatus::Online, "agent reported").await?
        }
        _ => None,
    };
    let node = if event.is_some() {
        get(conn, node_id).await?
    } else {
        node
    };
    Ok((node, event))
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

/// Nodes ordered by hostname, `page.first` of them after the cursor (a hostname).
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &NodeFilter,
    page: &Page,
    count_total: bool,
) -> AppResult<(Vec<node::Model>, bool, u64)> {
    let mut condition = Condition::all();
    match &filter.statuses {
        Some(statuses) if !statuses.is_empty() => {
            // A list of any length names at most five statuses.
            let distinct: std::collections::BTreeSet<&str> =
                statuses.iter().map(|s| s.as_str()).collect();
            condition = condition.add(node::Column::Status.is_in(distinct));
        }
        _ => {
            condition = condition.add(node::Column::Status.ne(NodeStatus::Retired.as_str()));
        }
    }
    if let Some(roles) = filter.roles.as_ref().filter(|r| !r.is_empty()) {
        condition = condition.add(
            Expr::col(node::Column::RolesMask)
                .bit_and(NodeRole::mask(roles))
                .ne(0),
        );
    }
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if search.chars().count() > MAX_SEARCH_CHARS {
            return Err(AppError::bad_input(
                "filter.search",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        condition = condition.add(
            Expr::col(node::Column::Hostname)
                .like(LikeExpr::new(escape_like(&search.to_ascii_lowercase())).escape('\\')),
        );
    }
    if let Some(labels) = &filter.labels {
        let labels = validate_labels("filter.labels", labels)?;
        for (key, value) in labels {
            condition = condition.add(
                node::Column::Id.in_subquery(
                    Query::select()
                        .column(node_label::Column::NodeId)
                        .from(node_label::Entity)
                        .and_where(node_label::Column::Key.eq(key))
                        .and_where(node_label::Column::Value.eq(value))
                        .to_owned(),
                ),
            );
        }
    }
    let query = node::Entity::find().filter(condition);
    let total = if count_total {
        query.clone().count(db).await?
    } else {
        0
    };
    let mut query = query.order_by_asc(node::Column::Hostname);
    if let Some(after) = &page.after {
        query = query.filter(node::Column::Hostname.gt(after.as_str()));
    }
    let (rows, has_next) = fetch_page(db, query, page).await?;
    Ok((rows, has_next, total))
}

/// Changes labels, roles or description.
pub async fn update(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
    input: &UpdateNodeInput,
) -> AppResult<node::Model> {
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
            .map(|d| bounded_text("input.description", Some(d), MAX_DESCRIPTION_CHARS))
            .transpose()?;
        let txn = db.begin().await?;
        let node = get(&txn, id).await?;
        let mut model: node::ActiveModel = node.into();
        if let Some(labels) = &labels {
            model.labels = Set(labels_json(labels));
            replace_labels(&txn, id, labels).await?;
        }
        if let Some(mask) = roles {
            model.roles_mask = Set(mask);
        }
        if let Some(description) = description {
            model.description = Set(description);
        }
        model.updated_at = Set(Utc::now());
        let node = model.update(&txn).await?;
        audit::record(&txn, audit, change).await?;
        txn.commit().await?;
        Ok(node)
    })
    .await
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

/// Puts a node into maintenance (optionally until a time) or takes it out.
pub async fn set_maintenance(
    state: &AppState,
    audit: &AuditContext,
    id: Uuid,
    enabled: bool,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
) -> AppResult<node::Model> {
    let change = Change::new("node.maintenance")
        .target("node", id)
        .detail(serde_json::json!({
            "enabled": enabled,
            "until": until,
        }));
    let db = &state.db;
    let (node, event) = audit::audited(db, audit, change.clone(), async {
        let reason = bounded_text("reason", reason, MAX_REASON_CHARS)?;
        let now = Utc::now();
        if until.is_some_and(|at| at <= now) {
            return Err(AppError::bad_input("until", "must be in the future"));
        }
        let txn = db.begin().await?;
        let node = get(&txn, id).await?;
        if node.status == NodeStatus::Retired.as_str() {
            return Err(AppError::Conflict("this node is retired".into()));
        }
        let event = if enabled {
            let mut model: node::ActiveModel = node.clone().into();
            model.maintenance_enabled = Set(true);
            model.maintenance_reason = Set(reason);
            if !node.maintenance_enabled {
                model.maintenance_since = Set(Some(now));
            }
            model.maintenance_until = Set(until);
            model.maintenance_by = Set(Some(audit.actor.name.clone()));
            model.updated_at = Set(now);
            model.update(&txn).await?;
            status::transition(&txn, &node, NodeStatus::Maintenance, "maintenance started").await?
        } else {
            clear_maintenance(&txn, id, now).await?;
            let to = status::from_contact(state, node.last_seen_at, now);
            status::transition(&txn, &node, to, "maintenance ended").await?
        };
        let node = get(&txn, id).await?;
        audit::record(&txn, audit, change).await?;
        txn.commit().await?;
        Ok((node, event))
    })
    .await?;
    state.events.publish_all(event);
    Ok(node)
}

/// Retires a node: status RETIRED, every key revoked, hidden from lists unless asked for.
pub async fn decommission(
    state: &AppState,
    audit: &AuditContext,
    id: Uuid,
) -> AppResult<node::Model> {
    let change = Change::new("node.decommission").target("node", id);
    let db = &state.db;
    let (node, event) = audit::audited(db, audit, change.clone(), async {
        let txn = db.begin().await?;
        let node = get(&txn, id).await?;
        revoke_keys(&txn, id).await?;
        clear_maintenance(&txn, id, Utc::now()).await?;
        let event = status::transition(&txn, &node, NodeStatus::Retired, "decommissioned").await?;
        let node = get(&txn, id).await?;
        audit::record(&txn, audit, change).await?;
        txn.commit().await?;
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
) -> AppResult<(node_key::Model, String)> {
    let change = Change::new("node.rotate_key").target("node", node_id);
    audit::audited(db, audit, change.clone(), async {
        let txn = db.begin().await?;
        let node = get(&txn, node_id).await?;
        if node.status == NodeStatus::Retired.as_str() {
            return Err(AppError::Conflict("this node is retired".into()));
        }
        revoke_keys(&txn, node_id).await?;
        let issued = issue_key(&txn, node_id).await?;
        audit::record(&txn, audit, change).await?;
        txn.commit().await?;
        Ok(issued)
    })
    .await
}

/// Revokes one node key.
pub async fn revoke_key(
    db: &DatabaseConnection,
    audit: &AuditContext,
    key_id: Uuid,
) -> AppResult<node_key::Model> {
    let change = Change::new("node.revoke_key").target("node_key", key_id);
    audit::audited(db, audit, change.clone(), async {
        let txn = db.begin().await?;
        let Some(key) = node_key::Entity::find_by_id(key_id).one(&txn).await? else {
            return Err(AppError::NotFound(format!("no node key with id {key_id}")));
        };
        let key = if key.revoked_at.is_none() {
            let mut model: node_key::ActiveModel = key.into();
            model.revoked_at = Set(Some(Utc::now()));
            model.update(&txn).await?
        } else {
            key
        };
        audit::record(&txn, audit, change).await?;
        txn.commit().await?;
        Ok(key)
    })
    .await
}

pub async fn keys_of(db: &impl ConnectionTrait, node_id: Uuid) -> AppResult<Vec<node_key::Model>> {
    Ok(node_key::Entity::find()
        .filter(node_key::Column::NodeId.eq(node_id))
        .order_by_desc(node_key::Column::Id)
        .all(db)
        .await?)
}

pub async fn status_history(
    db: &impl ConnectionTrait,
    node_id: Uuid,
    first: u64,
) -> AppResult<Vec<node_status_change::Model>> {
    Ok(node_status_change::Entity::find()
        .filter(node_status_change::Column::NodeId.eq(node_id))
        .order_by_desc(node_status_change::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}
