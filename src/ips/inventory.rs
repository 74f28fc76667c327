//! The inventory of sending IPs: adding, finding, listing, assigning and describing them.

use entity::ip_address::Model as IpRow;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    db::Page,
    error::{AppError, AppResult},
};

use super::{
    address::{self, ParsedAddress, key_to_text, parse_cidr},
    model::{IpQuery, NewIps, UpdateIpInput},
    store::{
        self,
        addresses::{Details, Selection},
    },
};

/// The most addresses one `addIps` may add (a /22 of IPv4, a /118 of IPv6).
pub const MAX_ADD: u128 = 1024;
const MAX_POOL_CHARS: usize = 64;
const MAX_NOTES_CHARS: usize = 4096;

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

async fn require_node(conn: &impl ConnectionTrait, field: &str, node_id: Uuid) -> AppResult<()> {
    if crate::nodes::find(conn, node_id).await?.is_none() {
        return Err(AppError::NotFound(format!(
            "{field}: no node with id {node_id}"
        )));
    }
    Ok(())
}

pub async fn find(conn: &impl ConnectionTrait, text: &str) -> AppResult<Option<IpRow>> {
    let parsed = address::parse("address", text)?;
    store::addresses::find(conn, &parsed.text).await
}

pub(super) async fn get(conn: &impl ConnectionTrait, text: &str) -> AppResult<IpRow> {
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
) -> AppResult<Vec<IpRow>> {
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
            if block.size().saturating_add(parsed.len() as u128) > MAX_ADD {
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
        let existing = store::addresses::existing(&txn, &parsed).await?;
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
        store::addresses::insert_many(&txn, &parsed, node_id, pool).await?;
        crate::realtime::after_commit::ips_changed(node_id);
        let mut change = change.clone();
        if let Some(detail) = change.detail.as_mut().and_then(|d| d.as_object_mut()) {
            detail.insert("added".into(), parsed.len().into());
        }
        audit::record(&txn, audit, change).await?;
        let added = store::addresses::find_many(&txn, &parsed).await?;
        txn.commit().await?;
        Ok(added)
    })
    .await
}

/// Removes an address and its DNSBL history from the inventory.
pub async fn remove(db: &DatabaseConnection, audit: &AuditContext, text: &str) -> AppResult<IpRow> {
    let change = Change::new("ip.remove")
        .detail(serde_json::json!({ "address": text.chars().take(64).collect::<String>() }));
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let ip = get(&txn, text).await?;
        store::addresses::delete(&txn, ip.id).await?;
        crate::realtime::after_commit::ips_changed(ip.node_id);
        audit::commit(txn, audit, change.target("ip", ip.id)).await?;
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
) -> AppResult<IpRow> {
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
        crate::realtime::after_commit::ips_changed(ip.node_id.into_iter().chain(node_id));
        let ip = store::addresses::set_node(&txn, ip, node_id).await?;
        audit::commit(txn, audit, change.target("ip", id)).await?;
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
) -> AppResult<IpRow> {
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
            .map(|n| crate::input::bounded_free_text("input.notes", Some(n), MAX_NOTES_CHARS))
            .transpose()?;
        let txn = crate::db::begin_write(db).await?;
        let ip = get(&txn, text).await?;
        let id = ip.id;
        let details = Details {
            pool,
            reverse_dns,
            notes,
        };
        crate::realtime::after_commit::ips_changed(ip.node_id);
        let ip = store::addresses::set_details(&txn, ip, details).await?;
        audit::commit(txn, audit, change.target("ip", id)).await?;
        Ok(ip)
    })
    .await
}

/// Assigns the addresses an agent reported to its node, adding the ones not yet known.
pub async fn attach_to_node(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    addresses: &[ParsedAddress],
) -> AppResult<()> {
    let known = store::addresses::insert_missing(conn, node_id, addresses).await?;
    // An address of another node stays with it: an agent cannot take it by naming it.
    if let Some(taken) = known
        .iter()
        .find(|row| row.node_id.is_some_and(|owner| owner != node_id))
    {
        return Err(AppError::Conflict(format!(
            "{} belongs to another node; an operator moves it with assignIp",
            taken.address
        )));
    }
    crate::realtime::after_commit::ips_changed([node_id]);
    for row in known {
        if row.node_id.is_none() {
            store::addresses::set_node(conn, row, Some(node_id)).await?;
        }
    }
    Ok(())
}

/// Checks a list's or bulk action's filter and turns it into what the store selects.
pub(super) fn selection(filter: &IpQuery) -> AppResult<Selection> {
    let mut selection = Selection::default();
    if let Some(statuses) = filter.statuses.as_ref().filter(|s| !s.is_empty()) {
        let mut statuses = statuses.clone();
        statuses.sort_by_key(|s| s.as_str());
        statuses.dedup();
        selection.statuses = statuses;
    }
    if let Some(nodes) = filter.node_ids.as_ref().filter(|n| !n.is_empty()) {
        if nodes.len() > 500 {
            return Err(AppError::bad_input(
                "filter.nodeIds",
                "at most 500 node ids",
            ));
        }
        selection.node_ids = crate::db::parse_ids("filter.nodeIds", nodes)?;
    }
    if let Some(pool) = &filter.pool {
        selection.pool = validate_pool("filter.pool", Some(pool))?;
    }
    if let Some(subnet) = &filter.subnet {
        selection.subnet = Some(parse_cidr("filter.subnet", subnet)?);
    }
    selection.listed = filter.listed;
    Ok(selection)
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
) -> AppResult<crate::db::Listed<IpRow>> {
    let selection = selection(filter)?;
    let after = page.after.as_deref().map(decode_key_cursor).transpose()?;
    store::addresses::list(db, &selection, after, page, count_total).await
}
