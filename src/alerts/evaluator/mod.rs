//! The evaluator: every `alert_evaluation_interval`, on one instance, reads what the rules
//! need in a fixed number of queries, moves alerts through PENDING → FIRING → RESOLVED,
//! writes the changes in one transaction and publishes them once committed.

mod decide;
mod inputs;
mod mail;
mod messages;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chrono::Utc;
use uuid::Uuid;

use crate::{error::AppResult, state::AppState};

use super::{
    AlertState,
    notices::{AlertSnapshot, notifies, record as record_notices},
    store,
};
use decide::{Change, decide};
use inputs::read_inputs;

pub use messages::event;

/// What one cycle did.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    /// False when another instance held the evaluator's lock.
    pub ran: bool,
    /// Enabled rules evaluated.
    pub rules: usize,
    /// (rule, subject) pairs that gave a value.
    pub observations: usize,
    /// New alerts (PENDING or straight to FIRING).
    pub raised: usize,
    /// Alerts that moved to FIRING.
    pub fired: usize,
    /// Alerts that resolved.
    pub resolved: usize,
    /// Time spent reading what the rules need.
    pub read_time: Duration,
    /// Time spent writing and committing.
    pub write_time: Duration,
    /// The whole cycle.
    pub total_time: Duration,
}

/// One evaluation of every rule. Returns what it did; `ran` is false when another
/// instance is evaluating.
pub async fn evaluate_once(state: &AppState) -> AppResult<CycleReport> {
    let started = Instant::now();
    let Some(txn) = crate::db::tx::try_lock(&state.db, crate::db::JobLock::AlertEvaluation).await?
    else {
        return Ok(CycleReport::default());
    };
    let now = Utc::now();
    let inputs = read_inputs(state, &txn, now).await?;
    let read_time = started.elapsed();

    let (changes, rules, observations, recovered) = decide(&inputs, now);
    let written = Instant::now();
    let mut report = CycleReport {
        ran: true,
        rules,
        observations,
        read_time,
        ..CycleReport::default()
    };
    let mut events = Vec::new();
    let rule_names: HashMap<Uuid, &str> = inputs
        .rules
        .iter()
        .map(|r| (r.id, r.name.as_str()))
        .collect();
    let name_of = |id: &Uuid| rule_names.get(id).copied().unwrap_or("deleted rule");
    let conditions: HashMap<Uuid, &str> = inputs
        .rules
        .iter()
        .map(|r| (r.id, r.condition.as_str()))
        .collect();
    let snapshot = |alert: &entity::alert::Model| {
        let hostname = alert
            .node_id
            .and_then(|id| inputs.nodes.get(&id))
            .map(|n| n.hostname.as_str());
        let condition = conditions.get(&alert.rule_id).copied().unwrap_or_default();
        AlertSnapshot::of(alert, name_of(&alert.rule_id), condition, hostname)
    };
    let pauses: HashMap<Uuid, &str> = inputs
        .rules
        .iter()
        .filter(|r| r.pause_ip)
        .map(|r| (r.id, r.name.as_str()))
        .collect();
    // IPs named by alerts that fire now, of rules that pause them.
    let mut to_pause: Vec<(String, String)> = Vec::new();
    let mut pause_if_asked = |alert: &entity::alert::Model| {
        if let (Some(rule), Some(ip)) = (pauses.get(&alert.rule_id), &alert.ip) {
            to_pause.push((ip.clone(), format!("alert '{rule}': {}", alert.message)));
        }
    };
    let mut notices = Vec::new();
    let mut inserts = Vec::new();
    for change in changes {
        match change {
            Change::New(alert) => {
                report.raised += 1;
                if alert.state == AlertState::Firing.as_str() {
                    report.fired += 1;
                    pause_if_asked(&alert);
                }
                events.push(event(&alert, name_of(&alert.rule_id), None, now));
                if notifies(None, &alert.state) {
                    notices.push(snapshot(&alert));
                }
                inserts.push(alert);
            }
            Change::Update { alert, previous } => {
                let state = AlertState::parse(&alert.state).ok();
                if previous.is_some() && previous != state {
                    match state {
                        Some(AlertState::Firing) => {
                            report.fired += 1;
                            pause_if_asked(&alert);
                        }
                        Some(AlertState::Resolved) => report.resolved += 1,
                        _ => {}
                    }
                    events.push(event(
                        &alert,
                        name_of(&alert.rule_id),
                        previous.map(|p| p.as_str().to_string()),
                        now,
                    ));
                    if notifies(previous, &alert.state) {
                        notices.push(snapshot(&alert));
                    }
                }
                store::alerts::update_evaluated(&txn, alert).await?;
            }
        }
    }
    for recover in recovered {
        store::alerts::set_silence(
            &txn,
            recover.alert_id,
            recover.silence_id,
            recover.silenced_until,
        )
        .await?;
    }
    store::alerts::insert_many(&txn, inserts).await?;
    record_notices(&txn, notices, now).await?;
    let mut paused_on = Vec::new();
    for (ip, reason) in to_pause {
        if let Some(node) = crate::ips::auto_pause(&txn, &ip, &reason).await? {
            tracing::warn!(ip, reason, "alert paused a sending IP");
            paused_on.extend(node);
        }
    }
    txn.commit().await?;
    // The paused IPs' agents take them out of their pools.
    events.extend(crate::realtime::IpsChanged::of(paused_on));
    state.events.publish_all(events);
    report.write_time = written.elapsed();
    report.total_time = started.elapsed();
    if report.raised + report.fired + report.resolved > 0 {
        tracing::info!(
            raised = report.raised,
            fired = report.fired,
            resolved = report.resolved,
            "alerts evaluated"
        );
    }
    Ok(report)
}
