//! Rows of `ip_addresses`.

use std::collections::HashMap;

use chrono::Utc;
use entity::{dnsbl_result, dnsbl_transition, ip_address};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
    prelude::Expr,
    sea_query::{ExprTrait as _, Query, extension::postgres::PgFunc},
};
use uuid::Uuid;

use crate::{
    db::{Page, fetch_page},
    error::AppResult,
};

use super::super::{IpStatus, ParsedAddress, address::Cidr};

pub async fn find(
    conn: &impl ConnectionTrait,
    address: &str,
) -> AppResult<Option<ip_address::Model>> {
    Ok(ip_address::Entity::find()
        .filter(ip_address::Column::Address.eq(address))
        .one(conn)
        .await?)
}

/// The rows of these addresses, in address order within each chunk of 500.
pub async fn find_many(
    conn: &impl ConnectionTrait,
    addresses: &[ParsedAddress],
) -> AppResult<Vec<ip_address::Model>> {
    let texts: Vec<String> = addresses.iter().map(|a| a.text.clone()).collect();
    find_by_texts(conn, &texts).await
}

/// The rows of these addresses given in canonical text.
pub async fn find_by_texts(
    conn: &impl ConnectionTrait,
    addresses: &[String],
) -> AppResult<Vec<ip_address::Model>> {
    let mut rows = Vec::with_capacity(addresses.len());
    for chunk in addresses.chunks(500) {
        rows.extend(
            ip_address::Entity::find()
                .filter(ip_address::Column::Address.is_in(chunk.iter().cloned()))
                .order_by_asc(ip_address::Column::AddressKey)
                .all(conn)
                .await?,
        );
    }
    Ok(rows)
}

/// Which of these addresses are in the inventory already.
pub async fn existing(
    conn: &impl ConnectionTrait,
    addresses: &[ParsedAddress],
) -> AppResult<Vec<String>> {
    let mut existing = Vec::new();
    for chunk in addresses.chunks(500) {
        let found: Vec<String> = ip_address::Entity::find()
            .select_only()
            .column(ip_address::Column::Address)
            .filter(ip_address::Column::Address.is_in(chunk.iter().map(|p| p.text.clone())))
            .into_tuple()
            .all(conn)
            .await?;
        existing.extend(found);
    }
    Ok(existing)
}

fn new_row(
    address: &ParsedAddress,
    node_id: Option<Uuid>,
    pool: Option<String>,
) -> ip_address::ActiveModel {
    let now = Utc::now();
    ip_address::ActiveModel {
        id: Set(Uuid::now_v7()),
        address: Set(address.text.clone()),
        address_key: Set(address.key.to_vec()),
        node_id: Set(node_id),
        created_at: Set(now),
        updated_at: Set(now),
        pool: Set(pool),
        status: Set(IpStatus::Active.as_str().into()),
        status_reason: Set(None),
        status_changed_at: Set(Some(now)),
        reverse_dns: Set(None),
        notes: Set(None),
    }
}

/// Inserts new ACTIVE addresses.
pub async fn insert_many(
    conn: &impl ConnectionTrait,
    addresses: &[ParsedAddress],
    node_id: Option<Uuid>,
    pool: Option<String>,
) -> AppResult<()> {
    for chunk in addresses.chunks(200) {
        ip_address::Entity::insert_many(chunk.iter().map(|a| new_row(a, node_id, pool.clone())))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Adds the addresses not yet known to the node, as ACTIVE, and reports the ones already
/// known with the node each belongs to (`None`: no node).
pub async fn insert_missing(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    addresses: &[ParsedAddress],
) -> AppResult<Vec<ip_address::Model>> {
    let known = find_many(conn, addresses).await?;
    let missing: Vec<ParsedAddress> = addresses
        .iter()
        .filter(|a| !known.iter().any(|row| row.address == a.text))
        .cloned()
        .collect();
    insert_many(conn, &missing, Some(node_id), None).await?;
    Ok(known)
}

/// Deletes an address with its DNSBL results and history.
pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    dnsbl_result::Entity::delete_many()
        .filter(dnsbl_result::Column::IpId.eq(id))
        .exec(conn)
        .await?;
    dnsbl_transition::Entity::delete_many()
        .filter(dnsbl_transition::Column::IpId.eq(id))
        .exec(conn)
        .await?;
    ip_address::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

pub async fn set_node(
    conn: &impl ConnectionTrait,
    ip: ip_address::Model,
    node_id: Option<Uuid>,
) -> AppResult<ip_address::Model> {
    let mut model: ip_address::ActiveModel = ip.into();
    model.node_id = Set(node_id);
    model.updated_at = Set(Utc::now());
    Ok(model.update(conn).await?)
}

/// New descriptive fields; `None` keeps one, `Some(None)` clears it.
#[derive(Default)]
pub struct Details {
    pub pool: Option<Option<String>>,
    pub reverse_dns: Option<Option<String>>,
    pub notes: Option<Option<String>>,
}

pub async fn set_details(
    conn: &impl ConnectionTrait,
    ip: ip_address::Model,
    details: Details,
) -> AppResult<ip_address::Model> {
    let mut model: ip_address::ActiveModel = ip.into();
    if let Some(pool) = details.pool {
        model.pool = Set(pool);
    }
    if let Some(reverse_dns) = details.reverse_dns {
        model.reverse_dns = Set(reverse_dns);
    }
    if let Some(notes) = details.notes {
        model.notes = Set(notes);
    }
    model.updated_at = Set(Utc::now());
    Ok(model.update(conn).await?)
}

pub async fn set_status(
    conn: &impl ConnectionTrait,
    ip: ip_address::Model,
    status: IpStatus,
    reason: Option<String>,
) -> AppResult<ip_address::Model> {
    let now = Utc::now();
    let mut model: ip_address::ActiveModel = ip.into();
    model.status = Set(status.as_str().into());
    model.status_reason = Set(reason);
    model.status_changed_at = Set(Some(now));
    model.updated_at = Set(now);
    Ok(model.update(conn).await?)
}

pub async fn set_status_many(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    status: IpStatus,
    reason: Option<String>,
) -> AppResult<()> {
    let now = Utc::now();
    for chunk in ids.chunks(1000) {
        ip_address::Entity::update_many()
            .col_expr(ip_address::Column::Status, Expr::value(status.as_str()))
            .col_expr(
                ip_address::Column::StatusReason,
                Expr::value(reason.clone()),
            )
            .col_expr(ip_address::Column::StatusChangedAt, Expr::value(now))
            .col_expr(ip_address::Column::UpdatedAt, Expr::value(now))
            .filter(ip_address::Column::Id.is_in(chunk.iter().copied()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Which IPs a list or bulk action picks, validated.
#[derive(Default)]
pub struct Selection {
    pub statuses: Vec<IpStatus>,
    pub node_ids: Vec<Uuid>,
    pub pool: Option<String>,
    pub subnet: Option<Cidr>,
    pub listed: Option<bool>,
}

fn condition(selection: &Selection) -> Condition {
    let mut condition = Condition::all();
    if !selection.statuses.is_empty() {
        condition = condition
            .add(ip_address::Column::Status.is_in(selection.statuses.iter().map(|s| s.as_str())));
    }
    if !selection.node_ids.is_empty() {
        condition =
            condition.add(ip_address::Column::NodeId.is_in(selection.node_ids.iter().copied()));
    }
    if let Some(pool) = &selection.pool {
        condition = condition.add(ip_address::Column::Pool.eq(pool.as_str()));
    }
    if let Some(block) = &selection.subnet {
        condition = condition
            .add(ip_address::Column::AddressKey.between(block.first_key(), block.last_key()));
    }
    if let Some(listed) = selection.listed {
        let listed_ips = Query::select()
            .column(dnsbl_result::Column::IpId)
            .from(dnsbl_result::Entity)
            .and_where(dnsbl_result::Column::Listed.eq(true))
            .to_owned();
        condition = condition.add(if listed {
            ip_address::Column::Id.in_subquery(listed_ips)
        } else {
            ip_address::Column::Id.not_in_subquery(listed_ips)
        });
    }
    condition
}

pub async fn count(conn: &impl ConnectionTrait, selection: &Selection) -> AppResult<u64> {
    Ok(ip_address::Entity::find()
        .filter(condition(selection))
        .count(conn)
        .await?)
}

/// Every selected IP, in address order.
pub async fn select_all(
    conn: &impl ConnectionTrait,
    selection: &Selection,
) -> AppResult<Vec<ip_address::Model>> {
    Ok(ip_address::Entity::find()
        .filter(condition(selection))
        .order_by_asc(ip_address::Column::AddressKey)
        .all(conn)
        .await?)
}

/// Selected IPs in address order, `page.first` of them after the key `after`.
pub async fn list(
    db: &impl ConnectionTrait,
    selection: &Selection,
    after: Option<Vec<u8>>,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<ip_address::Model>> {
    let query = ip_address::Entity::find().filter(condition(selection));
    let total = if count_total {
        query.clone().count(db).await?
    } else {
        0
    };
    let query = match after {
        Some(after) => query.filter(ip_address::Column::AddressKey.gt(after)),
        None => query,
    };
    fetch_page(
        db,
        query.order_by_asc(ip_address::Column::AddressKey),
        page,
        total,
    )
    .await
}

/// An address as lists show it: only the columns they read.
#[derive(Clone, Debug)]
pub struct NodeIp {
    pub id: Uuid,
    pub address: String,
    /// ACTIVE, PAUSED, WARMING or RETIRED.
    pub status: String,
    pub pool: Option<String>,
}

/// id, address, node, status, pool.
type NodeIpRow = (Uuid, String, Option<Uuid>, String, Option<String>);

/// The IP addresses of `nodes`, in address order, in one query.
pub async fn ips_of_nodes(
    db: &impl ConnectionTrait,
    nodes: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<NodeIp>>> {
    let rows: Vec<NodeIpRow> = ip_address::Entity::find()
        .select_only()
        .columns([
            ip_address::Column::Id,
            ip_address::Column::Address,
            ip_address::Column::NodeId,
            ip_address::Column::Status,
            ip_address::Column::Pool,
        ])
        .filter(node_id_in(db.get_database_backend(), nodes))
        .order_by_asc(ip_address::Column::AddressKey)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_node: HashMap<Uuid, Vec<NodeIp>> = HashMap::with_capacity(nodes.len());
    for (id, address, node, status, pool) in rows {
        if let Some(node) = node {
            by_node.entry(node).or_default().push(NodeIp {
                id,
                address,
                status,
                pool,
            });
        }
    }
    Ok(by_node)
}

/// `node_id` is one of `nodes`. Postgres gets `= ANY($1)` with one array parameter: one
/// prepared statement for any number of ids, planned in microseconds, where an `IN` list
/// of 50 parameters is planned anew (about a millisecond) on every call. SQLite, without
/// arrays, gets the `IN` list.
fn node_id_in(backend: DbBackend, nodes: &[Uuid]) -> Condition {
    let condition = match backend {
        DbBackend::Postgres => {
            Expr::col(ip_address::Column::NodeId).eq(PgFunc::any(Expr::val(nodes.to_vec())))
        }
        _ => ip_address::Column::NodeId.is_in(nodes.iter().copied()),
    };
    Condition::all().add(condition)
}

/// The pool of every address that has one, by address.
pub async fn pools(db: &impl ConnectionTrait) -> AppResult<HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> = ip_address::Entity::find()
        .select_only()
        .columns([ip_address::Column::Address, ip_address::Column::Pool])
        .filter(ip_address::Column::Pool.is_not_null())
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(address, pool)| Some((address, pool?)))
        .collect())
}

/// The addresses in any of `pools`.
pub async fn addresses_in_pools(
    db: &impl ConnectionTrait,
    pools: &[String],
) -> AppResult<Vec<String>> {
    Ok(ip_address::Entity::find()
        .select_only()
        .column(ip_address::Column::Address)
        .filter(ip_address::Column::Pool.is_in(pools.iter().cloned()))
        .order_by_asc(ip_address::Column::AddressKey)
        .into_tuple()
        .all(db)
        .await?)
}
