//! DNSBL check jobs: queued by operators or by the schedule, kept in the database so a
//! restart loses none, claimed by one instance at a time, retried with backoff. A check's
//! results replace the current result per IP and zone; listings and delistings go to the
//! history and out as events once committed.

use std::{collections::HashMap, net::IpAddr};

use chrono::Utc;
use entity::{
    dnsbl_check_job::Model as JobRow, dnsbl_result::Model as ResultModel,
    ip_address::Model as IpRow,
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    error::{AppError, AppResult},
    realtime::{Event, IpReputationChanged},
    state::AppState,
};

use super::{
    IpStatus, address,
    config::DnsblConfig,
    dnsbl::{CheckReport, Checker, Verdict, ZoneHealth},
    model::{IpCheckSummary, ZoneCheck, ZoneHealthState},
    store::{
        self,
        addresses::Selection,
        dnsbl::{ResultRow, TransitionRow},
        jobs::{JobEnd, MANUAL, SCHEDULED},
    },
};

/// The most addresses one `checkIpBlacklists` names.
pub const MAX_MANUAL: usize = 10_000;

/// A job RUNNING this long was left by an instance that stopped; it is queued again.
const ABANDONED_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// Queues a check of `addresses` (every ACTIVE and WARMING IP when `None`).
pub async fn enqueue(
    db: &DatabaseConnection,
    audit: &AuditContext,
    addresses: Option<&[String]>,
) -> AppResult<JobRow> {
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
            let known = store::addresses::find_by_texts(&txn, list).await?.len();
            if known < list.len() {
                return Err(AppError::NotFound(format!(
                    "addresses: {} of the {} addresses are not in the inventory",
                    list.len() - known,
                    list.len()
                )));
            }
        }
        let job =
            store::jobs::insert(&txn, MANUAL, addresses, Some(audit.actor.name.clone())).await?;
        audit::commit(txn, audit, change.target("ip_check_job", job.id)).await?;
        Ok(job)
    })
    .await
}

pub async fn find_job(db: &impl sea_orm::ConnectionTrait, id: Uuid) -> AppResult<Option<JobRow>> {
    store::jobs::find(db, id).await
}

/// Under the job lock: requeues abandoned jobs, queues the scheduled check when it is
/// due, and claims the next due job.
async fn claim(state: &AppState) -> AppResult<Option<JobRow>> {
    let Some(txn) = crate::db::tx::try_lock(&state.db, crate::db::JobLock::DnsblChecks).await?
    else {
        return Ok(None);
    };
    let now = Utc::now();
    store::jobs::requeue_running_since(&txn, now - ABANDONED_AFTER).await?;
    let interval = chrono::Duration::from_std(state.config.dnsbl.check_interval)
        .unwrap_or(chrono::Duration::minutes(30));
    let last_scheduled = store::jobs::last_scheduled(&txn).await?;
    if last_scheduled.is_none_or(|job| job.created_at <= now - interval) {
        store::jobs::insert(&txn, SCHEDULED, None, None).await?;
    }
    let claimed = store::jobs::claim_due(&txn, now).await?;
    txn.commit().await?;
    Ok(claimed)
}

/// The check queue at a glance.
pub async fn queue_summary(db: &impl sea_orm::ConnectionTrait) -> AppResult<super::QueueSummary> {
    store::jobs::summary(db).await
}

/// What an admin does to a check job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// Queue a FAILED job again, due now, with its attempts counted afresh.
    Retry,
    /// Take a QUEUED or FAILED job off the queue (CANCELLED).
    Cancel,
}

/// Retries or cancels a check job; a job in a state the action does not apply to is a
/// `CONFLICT`.
pub async fn change_job(
    db: &sea_orm::DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
    action: JobAction,
) -> AppResult<JobRow> {
    let (name, allowed): (&str, &[&str]) = match action {
        JobAction::Retry => ("ip.check_job.retry", &[store::jobs::FAILED]),
        JobAction::Cancel => (
            "ip.check_job.cancel",
            &[store::jobs::QUEUED, store::jobs::FAILED],
        ),
    };
    let change = Change::new(name).target("ip_check_job", id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let job = store::jobs::find(&txn, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no check job with id {id}")))?;
        if !allowed.contains(&job.state.as_str()) {
            return Err(AppError::Conflict(format!(
                "the job is {}; this applies only to {} jobs",
                job.state,
                allowed.join(" or ")
            )));
        }
        let job = match action {
            JobAction::Retry => store::jobs::requeue_failed(&txn, job).await?,
            JobAction::Cancel => store::jobs::cancel(&txn, job).await?,
        };
        audit::commit(txn, audit, change).await?;
        Ok(job)
    })
    .await
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
                let result = serde_json::to_value(&summary).ok();
                store::jobs::finish(&state.db, id, JobEnd::Succeeded(result)).await?;
            }
            Err(message) => {
                tracing::warn!(job = %id, attempt = attempts, error = %message, "DNSBL check failed");
                let config = &state.config.dnsbl;
                let give_up = attempts as u32 >= config.max_attempts;
                let backoff = config.retry_base
                    * 2u32.saturating_pow((attempts as u32).saturating_sub(1).min(16));
                let end = if give_up {
                    JobEnd::Failed(message)
                } else {
                    JobEnd::Retry {
                        error: message,
                        next_run_at: Utc::now()
                            + chrono::Duration::from_std(backoff)
                                .unwrap_or(chrono::Duration::hours(1)),
                    }
                };
                store::jobs::finish(&state.db, id, end).await?;
            }
        }
    }
    Ok(ran)
}

async fn targets(db: &DatabaseConnection, job: &JobRow) -> AppResult<Vec<IpRow>> {
    let addresses: Option<Vec<String>> = job
        .addresses
        .clone()
        .and_then(|a| serde_json::from_value(a).ok());
    match addresses {
        None => {
            let sending = Selection {
                statuses: vec![IpStatus::Active, IpStatus::Warming],
                ..Selection::default()
            };
            store::addresses::select_all(db, &sending).await
        }
        Some(list) => store::addresses::find_by_texts(db, &list).await,
    }
}

/// Checks the job's IPs and stores what was found. The inner error is a failed check
/// (worth a retry), the outer one a failure of mailops itself.
async fn run(state: &AppState, job: &JobRow) -> AppResult<Result<IpCheckSummary, String>> {
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
    let (transitions, events) = store_results(state, config, &ips, &report).await?;
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
async fn store_results(
    state: &AppState,
    config: &DnsblConfig,
    ips: &[IpRow],
    report: &CheckReport,
) -> AppResult<(usize, Vec<Event>)> {
    let by_address: HashMap<IpAddr, &IpRow> = ips
        .iter()
        .filter_map(|ip| ip.address.parse().ok().map(|a| (a, ip)))
        .collect();
    let txn = crate::db::begin_write(&state.db).await?;
    // Two instances storing checks of one IP at once would both see the same previous
    // state and record the same transition twice; this waits for the other's commit.
    crate::db::tx::wait_for_lock(&txn, crate::db::JobLock::DnsblResults).await?;
    let ids: Vec<Uuid> = ips.iter().map(|ip| ip.id).collect();
    let previous: HashMap<(Uuid, String), ResultModel> = store::dnsbl::results_of(&txn, &ids)
        .await?
        .into_iter()
        .map(|row| ((row.ip_id, row.zone.clone()), row))
        .collect();
    let now = Utc::now();
    let mut rows = Vec::with_capacity(report.verdicts.len());
    let mut history = Vec::new();
    let mut events = Vec::new();
    let mut to_pause: Vec<(&IpRow, String)> = Vec::new();
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
            history.push(TransitionRow {
                ip_id: ip.id,
                zone: zone.name.clone(),
                listed,
                categories: if listed {
                    categories.clone()
                } else {
                    String::new()
                },
                reason: if listed { reason.clone() } else { None },
                at: now,
            });
            if listed && zone.critical && config.auto_pause {
                let status = IpStatus::parse(&ip.status)?;
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
        rows.push(ResultRow {
            ip_id: ip.id,
            zone: zone.name.clone(),
            state: new_state.into(),
            listed,
            listed_since,
            return_codes: codes,
            categories,
            reason,
            detail,
            checked_at: now,
        });
    }
    store::dnsbl::upsert_results(&txn, rows).await?;
    let transitions = history.len();
    store::dnsbl::insert_transitions(&txn, history).await?;
    let mut paused = std::collections::HashSet::new();
    for (ip, reason) in to_pause {
        if paused.insert(ip.id) {
            super::status::pause_by_system(&txn, ip.clone(), &reason).await?;
        }
    }
    txn.commit().await?;
    // The paused IPs' agents take them out of their pools.
    events.extend(crate::realtime::IpsChanged::of(
        ips.iter()
            .filter(|ip| paused.contains(&ip.id))
            .filter_map(|ip| ip.node_id),
    ));
    Ok((transitions, events))
}
