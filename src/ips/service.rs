//! The inventory of sending IPs: adding, assigning, removing, listing, and changing status
//! one at a time or in bulk.

use std::net::{IpAddr, Ipv6Addr};

use chrono::Utc;
use entity::{dnsbl_result, dnsbl_transition, ip_address};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    prelude::Expr, sea_query::Query,
};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    db::{Page, fetch_page},
    error::{AppError, AppResult},
    ips::address::{self, ParsedAddress},
};

use super::{
    IpStatus,
    model::{BulkAction, IpAction, IpActionOutcome, IpQuery, NewIps, OutcomeKind, UpdateIpInput},
};

/// The most addresses one `addIps` may add (a /22 of IPv4, a /118 of IPv6).
pub const MAX_ADD: u128 = 1024;
/// The most IPs one bulk action may touch.
pub const MAX_BULK: usize = 10_000;
const MAX_POOL_CHARS: usize = 64;
const MAX_REASON_CHARS: usize = 255;
const MAX_NOTES_CHARS: usize = 4096;

/// A CIDR block as a range of 16-byte keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub first: u128,
    pub last: u128,
    pub v4: bool,
}

impl Cidr {
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    pub fn first_key(&self) -> Vec<u8> {
        self.first.to_be_bytes().to_vec()
    }

    pub fn last_key(&self) -> Vec<u8> {
        self.last.to_be_bytes().to_vec()
    }
}

/// Parses `192.0.2.0/24` or `2001:db8::/64` (a plain address is a block of one).
pub fn parse_cidr(field: &str, input: &str) -> AppResult<Cidr> {
    let input = input.trim();
    let shown: String = input.chars().take(64).collect();
    let (ip, prefix) = input.split_once('/').unwrap_or((input, ""));
    let ip: IpAddr = ip.parse().map_err(|_| {
        AppError::bad_input(
            field,
            format!("'{shown}' is not a CIDR block such as 192.0.2.0/24"),
        )
    })?;
    let (v4, width, key) = match ip {
        IpAddr::V4(v4) => (
            true,
            32u32,
            u128::from_be_bytes(v4.to_ipv6_mapped().octets()),
        ),
        IpAddr::V6(v6) => (false, 128u32, u128::from_be_bytes(v6.octets())),
    };
    let prefix: u32 = if prefix.is_empty() {
        width
    } else {
        prefix.parse().ok().filter(|p| *p <= width).ok_or_else(|| {
            AppError::bad_input(
                field,
                format!("'{shown}' has a prefix length outside 0..{width}"),
            )
        })?
    };
    let host_bits = width - prefix;
    let mask: u128 = match host_bits {
        0 => 0,
        128.. => u128::MAX,
        bits => (1u128 << bits) - 1,
    };
    let first = key & !mask;
    Ok(Cidr {
        first,
        last: first | mask,
        v4,
    })
}

fn key_to_text(key: u128) -> ParsedAddress {
    let v6 = Ipv6Addr::from(key);
    let ip = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    ParsedAddress {
        text: ip.to_string(),
        key: key.to_be_bytes(),
    }
}

fn validate_pool(field: &str, pool: Option<&str>) -> AppResult<Option<String>> {
    match pool.map(str::trim) {
        None | Some("") => Ok(None),
        Some(p)
            if p.chars().count() <= MAX_POOL_CHARS
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
        {
            Ok(Some(p.to_string()))
        }
        Some(_) => Err(AppError::bad_input(
            field,
            format!("must be 1 to {MAX_POOL_CHARS} letters, digits, '.', '_' or '-'"),
        )),
    }
}

fn bounded(field: &str, text: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > max => Err(AppError::bad_input(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(t) => Ok(Some(t.to_string())),
    }
}

async fn require_node(conn: &impl ConnectionTrait, field: &str, node_id: Uuid) -> AppResult<()> {
    if crate::nodes::find(conn, node_id).await?.is_none() {
        return Err(AppError::NotFound(format!(
            "{field}: no node with id {node_id}"
        )));
    }
    Ok(())
}

pub async fn find(conn: &impl ConnectionTrait, text: &str) -> AppResult<Option<ip_address::Model>> {
    let parsed = address::parse("address", text)?;
    Ok(ip_address::Entity::find()
        .filter(ip_address::Column::Address.eq(parsed.text))
        .one(conn)
        .await?)
}

async fn get(conn: &impl ConnectionTrait, text: &str) -> AppResult<ip_address::Model> {
    find(conn, text)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("{} is not in the inventory", text.trim())))
}

/// Adds addresses (listed, or every address of a CIDR block) to the inventory, ACTIVE.
pub async fn add(
    db: &DatabaseConnection,
    audit: &AuditContext,
    input: &NewIps,
    node_id: Option<Uuid>,
) -> AppResult<Vec<ip_address::Model>> {
    let change = Change::new("ip.add").detail(serde_json::json!({
        "count": input.addresses.as_ref().map_or(0, Vec::len),
        "cidr": input.cidr.as_deref().map(|c| c.chars().take(64).collect::<String>()),
        "nodeId": node_id,
        "pool": input.pool.as_deref().map(|p| p.chars().take(64).collect::<String>()),
    }));
    audit::audited(db, audit, change.clone(), async {
        let pool = validate_pool("input.pool", input.pool.as_deref())?;
        let mut parsed: Vec<ParsedAddress> = Vec::new();
        let listed = input.addresses.as_deref().unwrap_or_default();
        if listed.len() as u128 > MAX_ADD {
            return Err(AppError::bad_input(
                "input.addresses",
                format!("{} addresses; at most {MAX_ADD}", listed.len()),
            ));
        }
        for text in listed {
            parsed.push(address::parse("input.addresses", text)?);
        }
        if let Some(cidr) = &input.cidr {
            let block = parse_cidr("input.cidr", cidr)?;
            if block.size() + parsed.len() as u128 > MAX_ADD {
                return Err(AppError::bad_input(
                    "input.cidr",
                    format!(
                        "{} holds {} addresses; at most {MAX_ADD} can be added at once",
                        cidr.trim(),
                        block.size()
                    ),
                ));
            }
            parsed.extend((block.first..=block.last).map(key_to_text));
        }
        if parsed.is_empty() {
            return Err(AppError::bad_input("input", "give addresses or a cidr"));
        }
        parsed.sort_by_key(|p| p.key);
        parsed.dedup_by(|a, b| a.key == b.key);

        let txn = crate::db::begin_write(db).await?;
        if let Some(node_id) = node_id {
            require_node(&txn, "input.nodeId", node_id).await?;
        }
        let mut existing: Vec<String> = Vec::new();
        for chunk in parsed.chunks(500) {
            let found: Vec<String> = ip_address::Entity::find()
                .select_only()
                .column(ip_address::Column::Address)
                .filter(ip_address::Column::Address.is_in(chunk.iter().map(|p| p.text.clone())))
                .into_tuple()
                .all(&txn)
                .await?;
            existing.extend(found);
        }
        if !existing.is_empty() {
            let shown: Vec<&str> = existing.iter().take(10).map(String::as_str).collect();
            return Err(AppError::Conflict(format!(
                "{} of these addresses are already in the inventory: {}{}",
                existing.len(),
                shown.join(", "),
                if existing.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            )));
        }
        let now = Utc::now();
        let rows: Vec<ip_address::ActiveModel> = parsed
            .iter()
            .map(|p| ip_address::ActiveModel {
                id: Set(Uuid::now_v7()),
                address: Set(p.text.clone()),
                address_key: Set(p.key.to_vec()),
                node_id: Set(node_id),
                created_at: Set(now),
                updated_at: Set(now),
                pool: Set(pool.clone()),
                status: Set(IpStatus::Active.as_str().into()),
                status_reason: Set(None),
                status_changed_at: Set(Some(now)),
                reverse_dns: Set(None),
                notes: Set(None),
            })
            .collect();
        for chunk in rows.chunks(200) {
            ip_address::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        let mut change = change.clone();
        if let Some(detail) = change.detail.as_mut().and_then(|d| d.as_object_mut()) {
            detail.insert("added".into(), parsed.len().into());
        }
        audit::record(&txn, audit, change).await?;
        let added = ip_address::Entity::find()
            .filter(
                ip_address::Column::Address
                    .is_in(parsed.iter().take(MAX_ADD as usize).map(|p| p.text.clone())),
            )
            .order_by_asc(ip_address::Column::AddressKey)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(added)
    })
    .await
}

/// Removes an address and its DNSBL history from the inventory.
pub async fn remove(
    db: &DatabaseConnection,
    audit: &AuditContext,
    text: &str,
) -> AppResult<ip_address::Model> {
    let change = Change::new("ip.remove")
        .detail(serde_json::json!({ "address": text.chars().take(64).collect::<String>() }));
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let ip = get(&txn, text).await?;
        dnsbl_result::Entity::delete_many()
            .filter(dnsbl_result::Column::IpId.eq(ip.id))
            .exec(&txn)
            .await?;
        dnsbl_transition::Entity::delete_many()
            .filter(dnsbl_transition::Column::IpId.eq(ip.id))
            .exec(&txn)
            .await?;
        ip_address::Entity::delete_by_id(ip.id).exec(&txn).await?;
        audit::record(&txn, audit, change.target("ip", ip.id)).await?;
        txn.commit().await?;
        Ok(ip)
    })
    .await
}

/// Moves an address to a node, or detaches it (`None`).
pub async fn assign(
    db: &DatabaseConnection,
    audit: &AuditContext,
    text: &str,
    node_id: Option<Uuid>,
) -> AppResult<ip_address::Model> {
    let change = Change::new("ip.assign").detail(serde_json::json!({
        "address": text.chars().take(64).collect::<String>(), "nodeId": node_id,
    }));
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let ip = get(&txn, text).await?;
        if let Some(node_id) = node_id {
            require_node(&txn, "nodeId", node_id).await?;
        }
        let id = ip.id;
        let mut model: ip_address::ActiveModel = ip.into();
        model.node_id = Set(node_id);
        model.updated_at = Set(Utc::now());
        let ip = model.update(&txn).await?;
        audit::record(&txn, audit, change.target("ip", id)).await?;
        txn.commit().await?;
        Ok(ip)
    })
    .await
}

/// Changes pool, reverse DNS name or notes; a field left out stays, an empty one is cleared.
pub async fn update(
    db: &DatabaseConnection,
    audit: &AuditContext,
    text: &str,
    input: &UpdateIpInput,
) -> AppResult<ip_address::Model> {
    let change = Change::new("ip.update").detail(serde_json::json!({
        "address": text.chars().take(64).collect::<String>(),
        "pool": input.pool.as_deref().map(|p| p.chars().take(64).collect::<String>()),
        "reverseDns": input.reverse_dns.as_deref().map(|p| p.chars().take(253).collect::<String>()),
        "notesChanged": input.notes.is_some(),
    }));
    audit::audited(db, audit, change.clone(), async {
        let pool = input
            .pool
            .as_deref()
            .map(|p| validate_pool("input.pool", Some(p)))
            .transpose()?;
        let reverse_dns = match input.reverse_dns.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(name) => Some(Some(crate::nodes::validate_hostname(
                "input.reverseDns",
                name,
            )?)),
        };
        let notes = input
            .notes
            .as_deref()
            .map(|n| bounded("input.notes", Some(n), MAX_NOTES_CHARS))
            .transpose()?;
        let txn = crate::db::begin_write(db).await?;
        let ip = get(&txn, text).await?;
        let id = ip.id;
        let mut model: ip_address::ActiveModel = ip.into();
        if let Some(pool) = pool {
            model.pool = Set(pool);
        }
        if let Some(reverse_dns) = reverse_dns {
            model.reverse_dns = Set(reverse_dns);
        }
        if let Some(notes) = notes {
            model.notes = Set(notes);
        }
        model.updated_at = Set(Utc::now());
        let ip = model.update(&txn).await?;
        audit::record(&txn, audit, change.target("ip", id)).await?;
        txn.commit().await?;
        Ok(ip)
    })
    .await
}

/// Sets the status of one IP. A RETIRED IP keeps its status.
pub async fn set_status(
    db: &DatabaseConnection,
    audit: &AuditContext,
    text: &str,
    status: IpStatus,
    reason: Option<&str>,
) -> AppResult<ip_address::Model> {
    let change = Change::new("ip.set_status").detail(serde_json::json!({
        "address": text.chars().take(64).collect::<String>(),
        "status": status.as_str(),
        "reason": reason.map(|r| r.chars().take(MAX_REASON_CHARS).collect::<String>()),
    }));
    audit::audited(db, audit, change.clone(), async {
        let reason = bounded("reason", reason, MAX_REASON_CHARS)?;
        let txn = crate::db::begin_write(db).await?;
        let ip = get(&txn, text).await?;
        let id = ip.id;
        let ip = apply_status(&txn, ip, status, reason).await?;
        audit::record(&txn, audit, change.target("ip", id)).await?;
        txn.commit().await?;
        Ok(ip)
    })
    .await
}

/// Writes a status change inside the caller's transaction.
pub async fn apply_status(
    conn: &impl ConnectionTrait,
    ip: ip_address::Model,
    status: IpStatus,
    reason: Option<String>,
) -> AppResult<ip_address::Model> {
    if IpStatus::parse(&ip.status) == IpStatus::Retired {
        return Err(AppError::Conflict(format!(
            "{} is RETIRED; its status cannot change",
            ip.address
        )));
    }
    let now = Utc::now();
    let mut model: ip_address::ActiveModel = ip.into();
    model.status = Set(status.as_str().into());
    model.status_reason = Set(reason);
    model.status_changed_at = Set(Some(now));
    model.updated_at = Set(now);
    Ok(model.update(conn).await?)
}

fn filter_condition(filter: &IpQuery) -> AppResult<Condition> {
    let mut condition = Condition::all();
    if let Some(statuses) = filter.statuses.as_ref().filter(|s| !s.is_empty()) {
        let mut names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        condition = condition.add(ip_address::Column::Status.is_in(names));
    }
    if let Some(nodes) = filter.node_ids.as_ref().filter(|n| !n.is_empty()) {
        if nodes.len() > 500 {
            return Err(AppError::bad_input(
                "filter.nodeIds",
                "at most 500 node ids",
            ));
        }
        let ids = crate::db::parse_ids("filter.nodeIds", nodes)?;
        condition = condition.add(ip_address::Column::NodeId.is_in(ids));
    }
    if let Some(pool) = &filter.pool {
        let pool = validate_pool("filter.pool", Some(pool))?;
        condition = condition.add(ip_address::Column::Pool.eq(pool));
    }
    if let Some(subnet) = &filter.subnet {
        let block = parse_cidr("filter.subnet", subnet)?;
        condition = condition
            .add(ip_address::Column::AddressKey.between(block.first_key(), block.last_key()));
    }
    if let Some(listed) = filter.listed {
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
    Ok(condition)
}

fn decode_key_cursor(after: &str) -> AppResult<Vec<u8>> {
    let invalid = || AppError::bad_input("after", "is not a cursor returned by this list");
    if after.len() != 32 {
        return Err(invalid());
    }
    (0..16)
        .map(|i| u8::from_str_radix(&after[2 * i..2 * i + 2], 16).map_err(|_| invalid()))
        .collect()
}

/// The cursor of an IP in a list: its key in hex.
pub fn key_cursor(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// IPs in address order, `page.first` of them after the cursor.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &IpQuery,
    page: &Page,
    count_total: bool,
) -> AppResult<(Vec<ip_address::Model>, bool, u64)> {
    let condition = filter_condition(filter)?;
    let query = ip_address::Entity::find().filter(condition);
    let total = if count_total {
        query.clone().count(db).await?
    } else {
        0
    };
    let query = match &page.after {
        Some(after) => query.filter(ip_address::Column::AddressKey.gt(decode_key_cursor(after)?)),
        None => query,
    };
    let (rows, has_next) =
        fetch_page(db, query.order_by_asc(ip_address::Column::AddressKey), page).await?;
    Ok((rows, has_next, total))
}

/// One outcome of a bulk action, before it is shown.
pub struct Outcome {
    pub address: String,
    pub kind: OutcomeKind,
    pub from: Option<IpStatus>,
    pub to: Option<IpStatus>,
    pub message: Option<String>,
}

/// Applies (or, in a dry run, only plans) one action to many IPs: one outcome per IP.
pub async fn bulk_action(
    db: &DatabaseConnection,
    audit: &AuditContext,
    input: &BulkAction,
) -> AppResult<Vec<Outcome>> {
    let target = input.action.target();
    let change = Change::new("ip.bulk_action").detail(serde_json::json!({
        "action": format!("{:?}", input.action).to_uppercase(),
        "reason": input.reason.as_deref().map(|r| r.chars().take(MAX_REASON_CHARS).collect::<String>()),
        "addresses": input.addresses.as_ref().map(Vec::len),
        "byFilter": input.filter.is_some(),
    }));
    let work = async {
        let reason = bounded("input.reason", input.reason.as_deref(), MAX_REASON_CHARS)?;
        let txn = crate::db::begin_write(db).await?;
        let mut outcomes: Vec<Outcome> = Vec::new();
        let rows: Vec<ip_address::Model> = match (&input.addresses, &input.filter) {
            (Some(addresses), None) => {
                if addresses.len() > MAX_BULK {
                    return Err(AppError::bad_input(
                        "input.addresses",
                        format!(
                            "{} addresses; a bulk action takes at most {MAX_BULK}",
                            addresses.len()
                        ),
                    ));
                }
                let mut parsed: Vec<ParsedAddress> = Vec::with_capacity(addresses.len());
                for text in addresses {
                    let ip = address::parse("input.addresses", text)?;
                    if !parsed.iter().any(|p| p.key == ip.key) {
                        parsed.push(ip);
                    }
                }
                let mut rows = Vec::with_capacity(parsed.len());
                for chunk in parsed.chunks(500) {
                    rows.extend(
                        ip_address::Entity::find()
                            .filter(
                                ip_address::Column::Address
                                    .is_in(chunk.iter().map(|p| p.text.clone())),
                            )
                            .all(&txn)
                            .await?,
                    );
                }
                for p in &parsed {
                    if !rows.iter().any(|r| r.address == p.text) {
                        outcomes.push(Outcome {
                            address: p.text.clone(),
                            kind: OutcomeKind::NotFound,
                            from: None,
                            to: None,
                            message: Some("not in the inventory".into()),
                        });
                    }
                }
                rows
            }
            (None, Some(filter)) => {
                let query = ip_address::Entity::find().filter(filter_condition(filter)?);
                let count = query.clone().count(&txn).await?;
                if count as usize > MAX_BULK {
                    return Err(AppError::bad_input(
                        "input.filter",
                        format!("matches {count} IPs; a bulk action takes at most {MAX_BULK}"),
                    ));
                }
                query
                    .order_by_asc(ip_address::Column::AddressKey)
                    .all(&txn)
                    .await?
            }
            _ => {
                return Err(AppError::bad_input(
                    "input",
                    "give exactly one of addresses and filter",
                ));
            }
        };
        let mut to_change: Vec<Uuid> = Vec::new();
        for row in &rows {
            let from = IpStatus::parse(&row.status);
            let (kind, message) = if from == IpStatus::Retired {
                (
                    OutcomeKind::Refused,
                    Some("RETIRED; its status cannot change".to_string()),
                )
            } else if from == target {
                (OutcomeKind::Unchanged, None)
            } else {
                to_change.push(row.id);
                (OutcomeKind::Changed, None)
            };
            outcomes.push(Outcome {
                address: row.address.clone(),
                kind,
                from: Some(from),
                to: Some(if kind == OutcomeKind::Changed {
                    target
                } else {
                    from
                }),
                message,
            });
        }
        if input.dry_run {
            txn.rollback().await?;
            return Ok(outcomes);
        }
        let now = Utc::now();
        for chunk in to_change.chunks(1000) {
            ip_address::Entity::update_many()
                .col_expr(ip_address::Column::Status, Expr::value(target.as_str()))
                .col_expr(
                    ip_address::Column::StatusReason,
                    Expr::value(reason.clone()),
                )
                .col_expr(ip_address::Column::StatusChangedAt, Expr::value(now))
                .col_expr(ip_address::Column::UpdatedAt, Expr::value(now))
                .filter(ip_address::Column::Id.is_in(chunk.iter().copied()))
                .exec(&txn)
                .await?;
        }
        let count = |kind: OutcomeKind| outcomes.iter().filter(|o| o.kind == kind).count();
        let mut change = change.clone();
        if let Some(detail) = change.detail.as_mut().and_then(|d| d.as_object_mut()) {
            detail.insert("changed".into(), count(OutcomeKind::Changed).into());
            detail.insert("unchanged".into(), count(OutcomeKind::Unchanged).into());
            detail.insert("refused".into(), count(OutcomeKind::Refused).into());
            detail.insert("notFound".into(), count(OutcomeKind::NotFound).into());
            let changed: Vec<&str> = outcomes
                .iter()
                .filter(|o| o.kind == OutcomeKind::Changed)
                .take(100)
                .map(|o| o.address.as_str())
                .collect();
            detail.insert("changedAddresses".into(), changed.into());
        }
        audit::record(&txn, audit, change).await?;
        txn.commit().await?;
        Ok(outcomes)
    };
    if input.dry_run {
        // A dry run changes nothing, the audit log included.
        work.await
    } else {
        audit::audited(db, audit, change.clone(), work).await
    }
}

impl IpAction {
    pub fn target(self) -> IpStatus {
        match self {
            IpAction::Pause => IpStatus::Paused,
            IpAction::Resume => IpStatus::Active,
            IpAction::Warm => IpStatus::Warming,
            IpAction::Retire => IpStatus::Retired,
        }
    }
}

impl IpActionOutcome {
    pub fn from_outcome(o: Outcome) -> Self {
        IpActionOutcome {
            address: o.address,
            outcome: o.kind,
            from: o.from,
            to: o.to,
            message: o.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks_become_key_ranges() {
        let block = parse_cidr("cidr", "192.0.2.77/30").unwrap();
        assert_eq!(block.size(), 4);
        assert_eq!(key_to_text(block.first).text, "192.0.2.76");
        assert_eq!(key_to_text(block.last).text, "192.0.2.79");
        let v6 = parse_cidr("cidr", "2001:db8::/120").unwrap();
        assert_eq!(v6.size(), 256);
        assert_eq!(key_to_text(v6.last).text, "2001:db8::ff");
        assert_eq!(parse_cidr("cidr", "10.0.0.0/8").unwrap().size(), 1 << 24);
        assert!(parse_cidr("cidr", "192.0.2.0/33").is_err());
        assert!(parse_cidr("cidr", "192.0.2/24").is_err());
        assert_eq!(parse_cidr("cidr", "::/0").unwrap().size(), u128::MAX);
    }
}
