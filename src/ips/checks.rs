//! DNSBL check jobs: queued by operators or by the schedule, kept in the database so a
//! restart loses none, claimed by one instance at a time, retried with backoff. A check's
//! results replace the current result per IP and zone; listings and delistings go to the
//! history and out as events once committed.

use std::{collections::HashMap, net::IpAddr};

use chrono::Utc;
use entity::{dnsbl_check_job, dnsbl_result, dnsbl_transition, ip_address};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, sea_query::OnConflict,
};
use uuid::Uuid;

use crate::{
    audit::{self, Actor, AuditContext, Change},
    db::{Page, newest_first},
    error::{AppError, AppResult},
    ips::address,
    realtime::{Event, IpReputationChanged},
    state::AppState,
};

use super::{
    IpStatus,
    config::DnsblConfig,
    dnsbl::{CheckReport, Checker, Verdict, ZoneHealth},
    model::{IpCheckSummary, ZoneCheck, ZoneHealthState},
};

pub const QUEUED: &str = "QUEUED";
pub const RUNNING: &str = "RUNNING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";
pub const MANUAL: &str = "MANUAL";
pub const SCHEDULED: &str = "SCHEDULED";

/// The most addresses one `checkIpBlacklists` names.
pub const MAX_MANUAL: usize = 10_000;

/// A job RUNNING this long was left by an instance that stopped; it is queued again.
const ABANDONED_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// Queues a check of `addresses` (every ACTIVE and WARMING IP when `None`).
pub async fn enqueue(
    db: &DatabaseConnection,
    audit: &AuditContext,
    addresses: Option<&[String]>,
) -> AppResult<dnsbl_check_job::Model> {
    let change = Change::new("ip.check_blacklists")
        .detail(serde_json::json!({ "addresses": addresses.map(<[String]>::len) }));
    audit::audited(db, audit, change.clone(), async {
        let addresses = match addresses {
            None => None,
            Some(list) if list.len() > MAX_MANUAL => {
                return Err(AppError::bad_input(
                    "addresses",
                    format!("{} addresses; at most {MAX_MANUAL}", list.len()),
                ));
            }
            Some(list) => {
                let mut parsed: Vec<String> = Vec::with_capacity(list.len());
                for text in list {
                    let ip = address::parse("addresses", text)?;
                    if !parsed.contains(&ip.text) {
                        parsed.push(ip.text);
                    }
                }
                if parsed.is_empty() {
                    return Err(AppError::bad_input(
                        "addresses",
                        "name at least one address, or leave it out to check every IP",
                    ));
                }
                Some(parsed)
            }
        };
        let txn = crate::db::begin_write(db).await?;
        if let Some(list) = &addresses {
            let mut known = 0;
            for chunk in list.chunks(500) {
                known += ip_address::Entity::find()
                    .filter(ip_address::Column::Address.is_in(chunk.iter().cloned()))
                    .count(&txn)
                    .await? as usize;
            }
            if known < list.len() {
                return Err(AppError::NotFound(format!(
                    "addresses: {} of the {} addresses are not in the inventory",
                    list.len() - known,
                    list.len()
                )));
            }
        }
        let job = insert_job(&txn, MANUAL, addresses, Some(audit.actor.name.clone())).await?;
        audit::record(&txn, audit, change.target("ip_check_job", job.id)).await?;
        txn.commit().await?;
        Ok(job)
    })
    .await
}

async fn insert_job(
    conn: &impl ConnectionTrait,
    kind: &str,
    addresses: Option<Vec<String>>,
    requested_by: Option<String>,
) -> AppResult<dnsbl_check_job::Model> {
    let now = Utc::now();
    Ok(
        dnsbl_check_job::Entity::insert(dnsbl_check_job::ActiveModel {
            id: Set(Uuid::now_v7()),
            kind: Set(kind.into()),
            addresses: Set(addresses.map(|a| serde_json::json!(a))),
            state: Set(QUEUED.into()),
            attempts: Set(0),
            next_run_at: Set(now),
            last_error: Set(None),
            result: Set(None),
            requested_by: Set(requested_by),
            created_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
        })
        .exec_with_returning(conn)
        .await?,
    )
}

pub async fn find_job(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<dnsbl_check_job::Model>> {
    Ok(dnsbl_check_job::Entity::find_by_id(id).one(db).await?)
}

/// Under the job lock: requeues abandoned jobs, queues the scheduled check when it is
/// due, and claims the next due job.
async fn claim(state: &AppState) -> AppResult<Option<dnsbl_check_job::Model>> {
    let Some(txn) = crate::db::tx::try_lock(&state.db, crate::db::JobLock::DnsblChecks).await?
    else {
        return Ok(None);
    };
    let now = Utc::now();
    dnsbl_check_job::Entity::update_many()
        .col_expr(dnsbl_check_job::Column::State, QUEUED.into())
        .filter(dnsbl_check_job::Column::State.eq(RUNNING))
        .filter(dnsbl_check_job::Column::StartedAt.lt(now - ABANDONED_AFTER))
        .exec(&txn)
        .await?;
    let interval = chrono::Duration::from_std(state.config.dnsbl.check_interval)
        .unwrap_or(chrono::Duration::minutes(30));
    let last_scheduled = dnsbl_check_job::Entity::find()
        .filter(dnsbl_check_job::Column::Kind.eq(SCHEDULED))
        .order_by_desc(dnsbl_check_job::Column::CreatedAt)
        .one(&txn)
        .await?;
    if last_scheduled.is_none_or(|job| job.created_at <= now - interval) {
        insert_job(&txn, SCHEDULED, None, None).await?;
    }
    let due = dnsbl_check_job::Entity::find()
        .filter(dnsbl_check_job::Column::State.eq(QUEUED))
        .filter(dnsbl_check_job::Column::NextRunAt.lte(now))
        .order_by_asc(dnsbl_check_job::Column::NextRunAt)
        .one(&txn)
        .await?;
    let claimed = match due {
        None => None,
        Some(job) => {
            let attempts = job.attempts + 1;
            let mut model: dnsbl_check_job::ActiveModel = job.into();
            model.state = Set(RUNNING.into());
            model.attempts = Set(attempts);
            model.started_at = Set(Some(now));
            Some(model.update(&txn).await?)
        }
    };
    txn.commit().await?;
    Ok(claimed)
}

/// One pass of the job worker: runs due jobs one after another until none is left.
pub async fn tick(state: &AppState) -> AppResult<usize> {
    let mut ran = 0;
    // Bounded, so that one pass cannot starve the next tick of other work forever.
    while ran < 16 {
        let Some(job) = claim(state).await? else {
            break;
        };
        ran += 1;
        let id = job.id;
        let attempts = job.attempts;
        let outcome = match run(state, &job).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // Details of an internal error go to the log, not to the job's readers.
                error.log_if_internal();
                Err(error.client_message())
            }
        };
        match outcome {
            Ok(summary) => {
                finish(&state.db, id, |model| {
                    model.state = Set(SUCCEEDED.into());
                    model.result = Set(serde_json::to_value(&summary).ok());
                    model.last_error = Set(None);
                    model.finished_at = Set(Some(Utc::now()));
                })
                .await?;
            }
            Err(message) => {
                tracing::warn!(job = %id, attempt = attempts, error = %message, "DNSBL check failed");
                let config = &state.config.dnsbl;
                let give_up = attempts as u32 >= config.max_attempts;
                let backoff = config.retry_base
                    * 2u32.saturating_pow((attempts as u32).saturating_sub(1).min(16));
                finish(&state.db, id, |model| {
                    model.last_error = Set(Some(message.clone()));
                    if give_up {
                        model.state = Set(FAILED.into());
                        model.finished_at = Set(Some(Utc::now()));
                    } else {
                        model.state = Set(QUEUED.into());
                        model.next_run_at = Set(Utc::now()
                            + chrono::Duration::from_std(backoff)
                                .unwrap_or(chrono::Duration::hours(1)));
                    }
                })
                .await?;
            }
        }
    }
    Ok(ran)
}

async fn finish(
    db: &DatabaseConnection,
    id: Uuid,
    change: impl FnOnce(&mut dnsbl_check_job::ActiveModel),
) -> AppResult<()> {
    let Some(job) = find_job(db, id).await? else {
        return Ok(());
    };
    let mut model: dnsbl_check_job::ActiveModel = job.into();
    change(&mut model);
    model.update(db).await?;
    Ok(())
}

async fn targets(
    db: &DatabaseConnection,
    job: &dnsbl_check_job::Model,
) -> AppResult<Vec<ip_address::Model>> {
    let addresses: Option<Vec<String>> = job
        .addresses
        .clone()
        .and_then(|a| serde_json::from_value(a).ok());
    match addresses {
        None => Ok(ip_address::Entity::find()
            .filter(
                ip_address::Column::Status
                    .is_in([IpStatus::Active.as_str(), IpStatus::Warming.as_str()]),
            )
            .order_by_asc(ip_address::Column::AddressKey)
            .all(db)
            .await?),
        Some(list) => {
            let mut rows = Vec::with_capacity(list.len());
            for chunk in list.chunks(500) {
                rows.extend(
                    ip_address::Entity::find()
                        .filter(ip_address::Column::Address.is_in(chunk.iter().cloned()))
                        .all(db)
                        .await?,
                );
            }
            Ok(rows)
        }
    }
}

/// Checks the job's IPs and stores what was found. The inner error is a failed check
/// (worth a retry), the outer one a failure of mailops itself.
async fn run(
    state: &AppState,
    job: &dnsbl_check_job::Model,
) -> AppResult<Result<IpCheckSummary, String>> {
    let ips = targets(&state.db, job).await?;
    if ips.is_empty() {
        // Nothing to look up: not even the zones' test entries are worth a query.
        return Ok(Ok(IpCheckSummary {
            addresses: 0,
            lookups: 0,
            listed: 0,
            unknown: 0,
            transitions: 0,
            zones: Vec::new(),
        }));
    }
    let config = &state.config.dnsbl;
    let checker = std::sync::Arc::new(Checker::new(config)?);
    let addresses: Vec<IpAddr> = ips
        .iter()
        .filter_map(|ip| ip.address.parse().ok())
        .collect();
    let report = checker.check(&addresses).await;
    if report.nothing_answered() {
        let reason = report
            .zones
            .iter()
            .find_map(|(_, h)| match h {
                ZoneHealth::Unreachable(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_default();
        return Ok(Err(format!(
            "no zone answered; the name server may be down ({reason})"
        )));
    }
    let (transitions, events) = store(state, config, &ips, &report).await?;
    state.events.publish_all(events);
    Ok(Ok(summary(&report, addresses.len(), transitions)))
}

fn summary(report: &CheckReport, addresses: usize, transitions: usize) -> IpCheckSummary {
    let count = |state: &str| {
        report
            .verdicts
            .iter()
            .filter(|(_, _, v)| v.state() == state)
            .count() as i32
    };
    IpCheckSummary {
        addresses: addresses as i32,
        lookups: report.lookups.min(i32::MAX as u64) as i32,
        listed: count("LISTED"),
        unknown: count("UNKNOWN"),
        transitions: transitions as i32,
        zones: report
            .zones
            .iter()
            .map(|(zone, health)| {
                let (health, detail) = match health {
                    ZoneHealth::Trusted => (ZoneHealthState::Trusted, None),
                    ZoneHealth::Untrusted(d) => (ZoneHealthState::Untrusted, Some(d.clone())),
                    ZoneHealth::Unreachable(d) => (ZoneHealthState::Unreachable, Some(d.clone())),
                };
                ZoneCheck {
                    zone: zone.name.clone(),
                    health,
                    detail,
                }
            })
            .collect(),
    }
}

/// Writes the new results and the transitions in one transaction (pausing newly listed
/// IPs on critical zones when the policy is on) and returns the events to publish.
async fn store(
    state: &AppState,
    config: &DnsblConfig,
    ips: &[ip_address::Model],
    report: &CheckReport,
) -> AppResult<(usize, Vec<Event>)> {
    let by_address: HashMap<IpAddr, &ip_address::Model> = ips
        .iter()
        .filter_map(|ip| ip.address.parse().ok().map(|a| (a, ip)))
        .collect();
    let txn = crate::db::begin_write(&state.db).await?;
    // Two instances storing checks of one IP at once would both see the same previous
    // state and record the same transition twice; this waits for the other's commit.
    crate::db::tx::wait_for_lock(&txn, crate::db::JobLock::DnsblResults).await?;
    let mut previous: HashMap<(Uuid, String), dnsbl_result::Model> = HashMap::new();
    let ids: Vec<Uuid> = ips.iter().map(|ip| ip.id).collect();
    for chunk in ids.chunks(500) {
        for row in dnsbl_result::Entity::find()
            .filter(dnsbl_result::Column::IpId.is_in(chunk.iter().copied()))
            .all(&txn)
            .await?
        {
            previous.insert((row.ip_id, row.zone.clone()), row);
        }
    }
    let now = Utc::now();
    let mut rows = Vec::with_capacity(report.verdicts.len());
    let mut history = Vec::new();
    let mut events = Vec::new();
    let mut to_pause: Vec<(&ip_address::Model, String)> = Vec::new();
    for (address, zone_index, verdict) in &report.verdicts {
        let Some(ip) = by_address.get(address) else {
            continue;
        };
        let zone = &report.zones[*zone_index].0;
        let before = previous.get(&(ip.id, zone.name.clone()));
        let was_listed = before.is_some_and(|b| b.listed);
        let (listed, listed_since, codes, categories, reason, detail) = match verdict {
            Verdict::Listed {
                codes,
                categories,
                reason,
            } => (
                true,
                before
                    .and_then(|b| b.listed_since)
                    .filter(|_| was_listed)
                    .or(Some(now)),
                codes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                categories.join(","),
                reason.clone(),
                None,
            ),
            Verdict::Clear => (false, None, String::new(), String::new(), None, None),
            Verdict::Unknown(why) => (
                was_listed,
                before.and_then(|b| b.listed_since),
                before.map(|b| b.return_codes.clone()).unwrap_or_default(),
                before.map(|b| b.categories.clone()).unwrap_or_default(),
                before.and_then(|b| b.reason.clone()),
                Some(why.clone()),
            ),
        };
        let new_state = verdict.state();
        let state_changed = before.is_none_or(|b| b.state != new_state);
        if listed != was_listed {
            history.push(dnsbl_transition::ActiveModel {
                id: Set(Uuid::now_v7()),
                ip_id: Set(ip.id),
                zone: Set(zone.name.clone()),
                listed: Set(listed),
                categories: Set(if listed {
                    categories.clone()
                } else {
                    String::new()
                }),
                reason: Set(if listed { reason.clone() } else { None }),
                at: Set(now),
            });
            if listed && zone.critical && config.auto_pause {
                let status = IpStatus::parse(&ip.status);
                if matches!(status, IpStatus::Active | IpStatus::Warming) {
                    to_pause.push((ip, format!("listed on {} ({})", zone.name, categories)));
                }
            }
        }
        // A first result that finds nothing is no news; every other change of state is.
        if state_changed && (before.is_some() || new_state != "CLEAR") {
            events.push(Event::IpReputationChanged(IpReputationChanged {
                address: ip.address.clone(),
                node_id: ip.node_id,
                zone: zone.name.clone(),
                listed,
                state: new_state.into(),
                previous_state: before.map(|b| b.state.clone()),
                reason: match verdict {
                    Verdict::Unknown(why) => Some(why.clone()),
                    _ => reason.clone(),
                },
                at: now,
            }));
        }
        rows.push(dnsbl_result::ActiveModel {
            ip_id: Set(ip.id),
            zone: Set(zone.name.clone()),
            state: Set(new_state.into()),
            listed: Set(listed),
            listed_since: Set(listed_since),
            return_codes: Set(codes.chars().take(255).collect()),
            categories: Set(categories.chars().take(255).collect()),
            reason: Set(reason),
            detail: Set(detail),
            checked_at: Set(now),
        });
    }
    for chunk in rows.chunks(500) {
        dnsbl_result::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([dnsbl_result::Column::IpId, dnsbl_result::Column::Zone])
                    .update_columns([
                        dnsbl_result::Column::State,
                        dnsbl_result::Column::Listed,
                        dnsbl_result::Column::ListedSince,
                        dnsbl_result::Column::ReturnCodes,
                        dnsbl_result::Column::Categories,
                        dnsbl_result::Column::Reason,
                        dnsbl_result::Column::Detail,
                        dnsbl_result::Column::CheckedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    let transitions = history.len();
    for chunk in history.chunks(500) {
        dnsbl_transition::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    let system = AuditContext::with_actor(Actor::system());
    let mut paused = std::collections::HashSet::new();
    for (ip, reason) in to_pause {
        if !paused.insert(ip.id) {
            continue;
        }
        super::service::apply_status(&txn, ip.clone(), IpStatus::Paused, Some(reason.clone()))
            .await?;
        let change = Change::new("ip.auto_pause")
            .target("ip", ip.id)
            .detail(serde_json::json!({ "address": ip.address, "reason": reason }));
        audit::record(&txn, &system, change).await?;
    }
    txn.commit().await?;
    Ok((transitions, events))
}

/// Listings and delistings of one IP, newest first.
pub async fn history(
    db: &impl ConnectionTrait,
    ip_id: Uuid,
    page: &Page,
    count_total: bool,
) -> AppResult<(Vec<dnsbl_transition::Model>, bool, u64)> {
    let query = dnsbl_transition::Entity::find().filter(dnsbl_transition::Column::IpId.eq(ip_id));
    newest_first(db, query, dnsbl_transition::Column::Id, page, count_total).await
}
