//! IP status: setting it for one IP, and bulk actions on many.

use entity::ip_address::Model as IpRow;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    error::{AppError, AppResult},
};

use super::{
    IpStatus,
    address::{self, ParsedAddress},
    inventory::{get, selection},
    model::{BulkAction, IpAction, IpActionOutcome, OutcomeKind},
    store,
};

/// The most IPs one bulk action may touch.
pub const MAX_BULK: usize = 10_000;
const MAX_REASON_CHARS: usize = 255;

/// Sets the status of one IP. A RETIRED IP keeps its status.
pub async fn set_status(
    db: &DatabaseConnection,
    audit: &AuditContext,
    text: &str,
    status: IpStatus,
    reason: Option<&str>,
) -> AppResult<IpRow> {
    let change = Change::new("ip.set_status").detail(serde_json::json!({
        "address": text.chars().take(64).collect::<String>(),
        "status": status.as_str(),
        "reason": reason.map(|r| r.chars().take(MAX_REASON_CHARS).collect::<String>()),
    }));
    audit::audited(db, audit, change.clone(), async {
        let reason = crate::input::bounded_text("reason", reason, MAX_REASON_CHARS)?;
        let txn = crate::db::begin_write(db).await?;
        let ip = get(&txn, text).await?;
        let id = ip.id;
        crate::realtime::after_commit::ips_changed(ip.node_id);
        let ip = apply_status(&txn, ip, status, reason).await?;
        audit::commit(txn, audit, change.target("ip", id)).await?;
        Ok(ip)
    })
    .await
}

/// Writes a status change inside the caller's transaction.
pub async fn apply_status(
    conn: &impl ConnectionTrait,
    ip: IpRow,
    status: IpStatus,
    reason: Option<String>,
) -> AppResult<IpRow> {
    if IpStatus::parse(&ip.status)? == IpStatus::Retired {
        return Err(AppError::Conflict(format!(
            "{} is RETIRED; its status cannot change",
            ip.address
        )));
    }
    store::addresses::set_status(conn, ip, status, reason).await
}

/// Pauses an ACTIVE or WARMING IP on the system's behalf (an alert rule that pauses, a
/// critical listing) inside the caller's transaction, with an `ip.auto_pause` audit entry.
/// Returns the node to tell when it paused it; an unknown, already paused or retired
/// address is left as it is.
pub async fn auto_pause(
    conn: &impl ConnectionTrait,
    address: &str,
    reason: &str,
) -> AppResult<Option<Option<Uuid>>> {
    let Some(ip) = store::addresses::find(conn, address).await? else {
        return Ok(None);
    };
    if !matches!(
        IpStatus::parse(&ip.status)?,
        IpStatus::Active | IpStatus::Warming
    ) {
        return Ok(None);
    }
    let node = ip.node_id;
    pause_by_system(conn, ip, reason).await?;
    Ok(Some(node))
}

/// Pauses `ip` for the system, with the `ip.auto_pause` audit entry: what a critical
/// listing and an alert rule that pauses both do.
pub(super) async fn pause_by_system(
    conn: &impl ConnectionTrait,
    ip: IpRow,
    reason: &str,
) -> AppResult<()> {
    let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
    let change = Change::new("ip.auto_pause")
        .target("ip", ip.id)
        .detail(serde_json::json!({ "address": ip.address, "reason": reason }));
    apply_status(conn, ip, IpStatus::Paused, Some(reason)).await?;
    audit::record(
        conn,
        &AuditContext::with_actor(crate::audit::Actor::system()),
        change,
    )
    .await
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
        let reason =
            crate::input::bounded_text("input.reason", input.reason.as_deref(), MAX_REASON_CHARS)?;
        let txn = crate::db::begin_write(db).await?;
        let mut outcomes: Vec<Outcome> = Vec::new();
        let rows: Vec<IpRow> = match (&input.addresses, &input.filter) {
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
                let rows = store::addresses::find_many(&txn, &parsed).await?;
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
                let selection = selection(filter)?;
                let count = store::addresses::count(&txn, &selection).await?;
                if count as usize > MAX_BULK {
                    return Err(AppError::bad_input(
                        "input.filter",
                        format!("matches {count} IPs; a bulk action takes at most {MAX_BULK}"),
                    ));
                }
                store::addresses::select_all(&txn, &selection).await?
            }
            _ => {
                return Err(AppError::bad_input(
                    "input",
                    "give exactly one of addresses and filter",
                ));
            }
        };
        let mut to_change: Vec<Uuid> = Vec::new();
        let mut changed_nodes: Vec<Uuid> = Vec::new();
        for row in &rows {
            let from = IpStatus::parse(&row.status)?;
            let (kind, message) = if from == IpStatus::Retired {
                (
                    OutcomeKind::Refused,
                    Some("RETIRED; its status cannot change".to_string()),
                )
            } else if from == target {
                (OutcomeKind::Unchanged, None)
            } else {
                to_change.push(row.id);
                changed_nodes.extend(row.node_id);
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
        store::addresses::set_status_many(&txn, &to_change, target, reason).await?;
        crate::realtime::after_commit::ips_changed(changed_nodes);
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
        audit::commit(txn, audit, change).await?;
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
