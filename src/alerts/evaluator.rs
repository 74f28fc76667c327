//! The evaluator: every `alert_evaluation_interval`, on one instance, reads what the rules
//! need in a fixed number of queries, moves alerts through PENDING → FIRING → RESOLVED,
//! writes the changes in one transaction and publishes them once committed.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use entity::{alert, alert_rule, alert_silence, node};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, Statement, Value, prelude::Expr,
};
use uuid::Uuid;

use crate::{
    error::AppResult,
    mailflow::Attempts,
    nodes::NodeStatus,
    realtime::{AlertEvent, Event},
    state::AppState,
};

use super::{
    AlertAggregate, AlertComparison, AlertCondition, AlertSeverity, AlertState,
    rules::role_from_str, service::Matcher,
};

/// BOUNCE_RATE gives no value below this many attempts in the window: a handful of
/// messages says nothing about a rate.
pub const MIN_ATTEMPTS: i64 = 20;

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

/// The node facts rules look at.
struct NodeFacts {
    id: Uuid,
    hostname: String,
    roles_mask: i32,
    labels: serde_json::Value,
    down: bool,
    maintenance: bool,
}

/// A rule, parsed once per cycle.
struct Rule {
    model: alert_rule::Model,
    condition: AlertCondition,
    aggregate: AlertAggregate,
    comparison: AlertComparison,
    resolve: f64,
    roles_mask: i32,
    node_ids: Vec<Uuid>,
}

impl Rule {
    fn parse(model: alert_rule::Model) -> Option<Rule> {
        let condition = AlertCondition::parse(&model.condition)?;
        let comparison = AlertComparison::parse(&model.comparison)?;
        let aggregate = model
            .aggregate
            .as_deref()
            .and_then(AlertAggregate::parse)
            .unwrap_or(AlertAggregate::Max);
        let roles_mask = model
            .selector_roles
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().and_then(role_from_str))
            .fold(0, |mask, role| mask | role.bit());
        let node_ids = model
            .selector_node_ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().and_then(|s| Uuid::parse_str(s).ok()))
            .collect();
        let resolve = model
            .resolve_threshold
            .unwrap_or_else(|| comparison.default_resolve(model.threshold));
        Some(Rule {
            condition,
            aggregate,
            comparison,
            resolve,
            roles_mask,
            node_ids,
            model,
        })
    }

    fn selects(&self, node: Option<&NodeFacts>) -> bool {
        let labels = self.model.selector_labels.as_object();
        let open =
            self.roles_mask == 0 && self.node_ids.is_empty() && labels.is_none_or(|l| l.is_empty());
        let Some(node) = node else { return open };
        (self.roles_mask == 0 || node.roles_mask & self.roles_mask != 0)
            && (self.node_ids.is_empty() || self.node_ids.contains(&node.id))
            && labels.is_none_or(|wanted| {
                wanted
                    .iter()
                    .all(|(k, v)| node.labels.get(k).is_some_and(|have| have == v))
            })
    }

    fn window(&self) -> i32 {
        self.model
            .window_seconds
            .unwrap_or(super::rules::DEFAULT_WINDOW_SECONDS)
    }
}

/// The latest value of one series.
struct SeriesValue {
    labels: serde_json::Value,
    value: f64,
}

/// A listed sending IP.
struct ListedIp {
    node_id: Option<Uuid>,
    zones: BTreeSet<String>,
}

/// What a rule saw about one subject this cycle.
struct Observation {
    node_id: Option<Uuid>,
    ip: Option<String>,
    /// `None`: nothing to judge by (no series, too few attempts); the alert stays as it is.
    value: Option<f64>,
    /// Who or what the message is about, e.g. `mta-01` or `192.0.2.1 (mta-01)`.
    who: String,
    /// What is measured, e.g. `system.disk.used_percent`.
    what: String,
    /// Extra words for the message, e.g. `(30 of 400 attempts)`.
    extra: String,
}

/// Everything one cycle reads.
struct Inputs {
    rules: Vec<alert_rule::Model>,
    nodes: HashMap<Uuid, NodeFacts>,
    readings: HashMap<Uuid, HashMap<String, Vec<SeriesValue>>>,
    attempts: HashMap<i32, HashMap<Uuid, Attempts>>,
    listed: HashMap<String, ListedIp>,
    open: Vec<alert::Model>,
    silences: Vec<(alert_silence::Model, Matcher)>,
}

/// Formats a value for a message: at most three decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

fn percent(ratio: f64) -> String {
    format!("{}%", number(ratio * 100.0))
}

/// The event for an alert as it now is.
pub fn event(
    alert: &alert::Model,
    rule_name: &str,
    previous_state: Option<String>,
    at: DateTime<Utc>,
) -> Event {
    Event::AlertEvent(AlertEvent {
        alert_id: alert.id,
        rule_id: alert.rule_id,
        rule: rule_name.to_string(),
        severity: alert.severity.clone(),
        state: alert.state.clone(),
        previous_state,
        acknowledged: alert.acknowledged_at.is_some(),
        silenced: alert.silenced_until.is_some_and(|until| until > at),
        node_id: alert.node_id,
        ip: alert.ip.clone(),
        value: alert.value,
        threshold: alert.threshold,
        message: alert.message.clone(),
        at,
    })
}

fn placeholders(backend: DbBackend, count: usize) -> String {
    crate::db::sql::placeholders(backend, 1, count)
}

/// The latest value of every series of `names`, by node and name, in one query.
async fn latest_readings(
    conn: &impl ConnectionTrait,
    names: &[String],
) -> AppResult<HashMap<Uuid, HashMap<String, Vec<SeriesValue>>>> {
    let mut by_node: HashMap<Uuid, HashMap<String, Vec<SeriesValue>>> = HashMap::new();
    if names.is_empty() {
        return Ok(by_node);
    }
    let backend = conn.get_database_backend();
    // The newest 1-minute bucket of each series holds its latest sample as `last`.
    let sql = format!(
        "SELECT s.node_id, s.name, s.labels, r.last FROM metric_series s \
         JOIN metric_rollups_1m r ON r.series_id = s.id \
         WHERE s.name IN ({}) \
           AND r.bucket = (SELECT MAX(m.bucket) FROM metric_rollups_1m m WHERE m.series_id = s.id)",
        placeholders(backend, names.len())
    );
    let values: Vec<Value> = names.iter().map(|n| Value::from(n.clone())).collect();
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    for row in rows {
        let node: Uuid = row.try_get_by_index(0)?;
        let name: String = row.try_get_by_index(1)?;
        let labels: serde_json::Value = row.try_get_by_index(2)?;
        let value: f64 = row.try_get_by_index(3)?;
        by_node
            .entry(node)
            .or_default()
            .entry(name)
            .or_default()
            .push(SeriesValue { labels, value });
    }
    Ok(by_node)
}

/// Non-retired IPs listed on a critical zone, with their node and zones, in one query.
async fn listed_ips(
    conn: &impl ConnectionTrait,
    critical: &[String],
) -> AppResult<HashMap<String, ListedIp>> {
    let mut listed: HashMap<String, ListedIp> = HashMap::new();
    if critical.is_empty() {
        return Ok(listed);
    }
    let backend = conn.get_database_backend();
    let sql = format!(
        "SELECT i.address, i.node_id, d.zone FROM dnsbl_results d \
         JOIN ip_addresses i ON i.id = d.ip_id \
         WHERE d.listed = {} AND i.status <> 'RETIRED' AND d.zone IN ({})",
        if backend == DbBackend::Postgres {
            "TRUE"
        } else {
            "1"
        },
        placeholders(backend, critical.len())
    );
    let values: Vec<Value> = critical.iter().map(|z| Value::from(z.clone())).collect();
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    for row in rows {
        let address: String = row.try_get_by_index(0)?;
        let node_id: Option<Uuid> = row.try_get_by_index(1)?;
        let zone: String = row.try_get_by_index(2)?;
        listed
            .entry(address)
            .or_insert_with(|| ListedIp {
                node_id,
                zones: BTreeSet::new(),
            })
            .zones
            .insert(zone);
    }
    Ok(listed)
}

async fn read_inputs(
    state: &AppState,
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
) -> AppResult<Inputs> {
    let rules = alert_rule::Entity::find().all(txn).await?;
    let enabled: Vec<&alert_rule::Model> = rules.iter().filter(|r| r.enabled).collect();
    let open = alert::Entity::find()
        .filter(
            alert::Column::State.is_in([AlertState::Pending.as_str(), AlertState::Firing.as_str()]),
        )
        .all(txn)
        .await?;
    let nodes = node::Entity::find()
        .filter(node::Column::Status.ne(NodeStatus::Retired.as_str()))
        .all(txn)
        .await?
        .into_iter()
        .map(|n| {
            let status = NodeStatus::parse(&n.status);
            let facts = NodeFacts {
                id: n.id,
                hostname: n.hostname,
                roles_mask: n.roles_mask,
                labels: n.labels,
                down: status == NodeStatus::Down,
                maintenance: n.maintenance_enabled || status == NodeStatus::Maintenance,
            };
            (facts.id, facts)
        })
        .collect();

    let mut names: Vec<String> = enabled
        .iter()
        .filter(|r| r.condition == AlertCondition::Metric.as_str())
        .filter_map(|r| r.metric.clone())
        .collect();
    names.sort();
    names.dedup();
    let readings = latest_readings(txn, &names).await?;

    let mut windows: Vec<i32> = enabled
        .iter()
        .filter(|r| r.condition == AlertCondition::BounceRate.as_str())
        .map(|r| {
            r.window_seconds
                .unwrap_or(super::rules::DEFAULT_WINDOW_SECONDS)
        })
        .collect();
    windows.sort();
    windows.dedup();
    let mut attempts = HashMap::with_capacity(windows.len());
    for window in windows {
        let since = now - chrono::Duration::seconds(i64::from(window));
        attempts.insert(window, crate::mailflow::attempts_by_node(txn, since).await?);
    }

    let wants_ips = enabled
        .iter()
        .any(|r| r.condition == AlertCondition::IpListed.as_str())
        || open.iter().any(|a| a.ip.is_some());
    let listed = if wants_ips {
        let critical: Vec<String> = state
            .config
            .dnsbl
            .zones
            .iter()
            .filter(|z| z.critical)
            .map(|z| z.name.clone())
            .collect();
        listed_ips(txn, &critical).await?
    } else {
        HashMap::new()
    };

    let silences = super::service::active_silences(txn, now).await?;
    Ok(Inputs {
        rules,
        nodes,
        readings,
        attempts,
        listed,
        open,
        silences,
    })
}

/// The value a rule gives for a node, and the words that go with it.
fn node_value(rule: &Rule, node: &NodeFacts, inputs: &Inputs) -> Observation {
    let mut observation = Observation {
        node_id: Some(node.id),
        ip: None,
        value: None,
        who: node.hostname.clone(),
        what: String::new(),
        extra: String::new(),
    };
    match rule.condition {
        AlertCondition::NodeDown => {
            observation.what = "down".into();
            observation.value = Some(if node.down { 1.0 } else { 0.0 });
        }
        AlertCondition::BounceRate => {
            let window = rule.window();
            observation.what = "bounce rate".into();
            let attempts = inputs
                .attempts
                .get(&window)
                .and_then(|by_node| by_node.get(&node.id))
                .copied()
                .unwrap_or_default();
            observation.value = bounce_rate(attempts);
            observation.extra = format!(
                " over {} ({} of {} attempts bounced)",
                window_text(window),
                attempts.bounced,
                attempts.sent
            );
        }
        AlertCondition::Metric => {
            let metric = rule.model.metric.clone().unwrap_or_default();
            let wanted = rule.model.metric_labels.as_object();
            let values: Vec<f64> = inputs
                .readings
                .get(&node.id)
                .and_then(|by_name| by_name.get(&metric))
                .into_iter()
                .flatten()
                .filter(|s| {
                    wanted.is_none_or(|w| {
                        w.iter()
                            .all(|(k, v)| s.labels.get(k).is_some_and(|have| have == v))
                    })
                })
                .map(|s| s.value)
                .collect();
            observation.value = aggregate(rule.aggregate, &values);
            observation.what = metric;
        }
        AlertCondition::IpListed => {}
    }
    observation
}

/// Bounced over sent, or `None` when there were too few attempts to say.
pub fn bounce_rate(attempts: Attempts) -> Option<f64> {
    (attempts.sent >= MIN_ATTEMPTS).then(|| attempts.bounced as f64 / attempts.sent as f64)
}

fn window_text(seconds: i32) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s}s"),
    }
}

/// Combines the latest values of a node's series; `None` when there are none.
pub fn aggregate(how: AlertAggregate, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match how {
        AlertAggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        AlertAggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        AlertAggregate::Sum => values.iter().sum(),
        AlertAggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
    })
}

/// The message of a breach (`resolved == false`) or of a value back past the resolve
/// threshold.
fn message(rule: &Rule, o: &Observation, value: f64, resolved: bool) -> String {
    let threshold = rule.model.threshold;
    match rule.condition {
        AlertCondition::NodeDown if resolved => format!("{} is no longer DOWN", o.who),
        AlertCondition::NodeDown => format!("{} is DOWN: no agent contact", o.who),
        AlertCondition::IpListed if resolved => {
            format!("{} is no longer listed on a critical DNSBL zone", o.who)
        }
        AlertCondition::IpListed => format!("{} is listed on {}", o.who, o.extra),
        AlertCondition::BounceRate => {
            let (shown, limit) = (
                percent(value),
                percent(if resolved { rule.resolve } else { threshold }),
            );
            if resolved {
                format!(
                    "{}: bounce rate {shown} is back past {limit}{}",
                    o.who, o.extra
                )
            } else {
                format!(
                    "{}: bounce rate {shown} {} {limit}{}",
                    o.who,
                    rule.comparison.symbol(),
                    o.extra
                )
            }
        }
        AlertCondition::Metric if resolved => format!(
            "{}: {} {} is back {} {}",
            o.who,
            o.what,
            number(value),
            if rule.comparison.upward() {
                "below"
            } else {
                "above"
            },
            number(rule.resolve)
        ),
        AlertCondition::Metric => format!(
            "{}: {} {} {} {}",
            o.who,
            o.what,
            number(value),
            rule.comparison.symbol(),
            number(threshold)
        ),
    }
}

/// What the cycle decided for one alert.
enum Change {
    New(alert::Model),
    Update {
        alert: alert::Model,
        previous: Option<AlertState>,
    },
}

/// A new silence state of an open alert.
struct Recover {
    alert_id: Uuid,
    silence_id: Option<Uuid>,
    silenced_until: Option<DateTime<Utc>>,
}

fn silence_for(inputs: &Inputs, alert: &alert::Model) -> Option<(Uuid, DateTime<Utc>)> {
    inputs
        .silences
        .iter()
        .filter(|(_, m)| m.matches(alert))
        .max_by_key(|(s, _)| s.ends_at)
        .map(|(s, _)| (s.id, s.ends_at))
}

fn resolve(mut alert: alert::Model, message: String, now: DateTime<Utc>) -> Change {
    let previous = AlertState::parse(&alert.state);
    alert.state = AlertState::Resolved.as_str().into();
    alert.resolved_at = Some(now);
    alert.updated_at = now;
    alert.message = message;
    Change::Update { alert, previous }
}

/// Decides every change of one cycle from what was read: no database access here.
fn decide(inputs: &Inputs, now: DateTime<Utc>) -> (Vec<Change>, usize, usize, Vec<Recover>) {
    let rules: HashMap<Uuid, Rule> = inputs
        .rules
        .iter()
        .filter_map(|m| Rule::parse(m.clone()))
        .map(|r| (r.model.id, r))
        .collect();
    let enabled: Vec<&Rule> = rules.values().filter(|r| r.model.enabled).collect();

    // What each enabled rule sees, by (rule, subject).
    let mut observed: HashMap<(Uuid, String), Observation> = HashMap::new();
    for rule in &enabled {
        if rule.condition == AlertCondition::IpListed {
            for (address, ip) in &inputs.listed {
                let node = ip.node_id.and_then(|n| inputs.nodes.get(&n));
                if !rule.selects(node) || node.is_some_and(|n| n.maintenance) {
                    continue;
                }
                let who = match node {
                    Some(n) => format!("{address} ({})", n.hostname),
                    None => address.clone(),
                };
                observed.insert(
                    (rule.model.id, address.clone()),
                    Observation {
                        node_id: node.map(|n| n.id),
                        ip: Some(address.clone()),
                        value: Some(1.0),
                        who,
                        what: "listed".into(),
                        extra: ip.zones.iter().cloned().collect::<Vec<_>>().join(", "),
                    },
                );
            }
        } else {
            for node in inputs.nodes.values() {
                if node.maintenance || !rule.selects(Some(node)) {
                    continue;
                }
                observed.insert(
                    (rule.model.id, node.id.to_string()),
                    node_value(rule, node, inputs),
                );
            }
        }
    }
    let observations = observed.values().filter(|o| o.value.is_some()).count();

    let mut changes = Vec::new();
    let mut seen: std::collections::HashSet<(Uuid, String)> = Default::default();
    for open in &inputs.open {
        let key = (open.rule_id, open.subject.clone());
        seen.insert(key.clone());
        let node = open.node_id.and_then(|n| inputs.nodes.get(&n));
        let host = node.map_or_else(
            || open.ip.clone().unwrap_or_else(|| open.subject.clone()),
            |n| n.hostname.clone(),
        );
        let Some(rule) = rules.get(&open.rule_id) else {
            changes.push(resolve(
                open.clone(),
                format!("{host}: the rule was deleted; resolved"),
                now,
            ));
            continue;
        };
        if !rule.model.enabled {
            changes.push(resolve(
                open.clone(),
                format!("{host}: rule '{}' was disabled; resolved", rule.model.name),
                now,
            ));
            continue;
        }
        if open.node_id.is_some() && node.is_none() {
            changes.push(resolve(
                open.clone(),
                format!("{host}: the node was retired; resolved"),
                now,
            ));
            continue;
        }
        if let Some(node) = node.filter(|n| n.maintenance) {
            changes.push(resolve(
                open.clone(),
                format!("{}: in maintenance; resolved", node.hostname),
                now,
            ));
            continue;
        }
        let Some(observation) = observed.get(&key) else {
            if rule.condition == AlertCondition::IpListed {
                // No longer listed (or no longer selected): the listing cleared.
                let o = Observation {
                    node_id: open.node_id,
                    ip: open.ip.clone(),
                    value: Some(0.0),
                    who: open.ip.clone().unwrap_or_else(|| open.subject.clone()),
                    what: "listed".into(),
                    extra: String::new(),
                };
                let mut alert = open.clone();
                alert.value = Some(0.0);
                changes.push(resolve(alert, message(rule, &o, 0.0, true), now));
            } else {
                changes.push(resolve(
                    open.clone(),
                    format!(
                        "{host}: no longer matches rule '{}'; resolved",
                        rule.model.name
                    ),
                    now,
                ));
            }
            continue;
        };
        let Some(value) = observation.value else {
            continue;
        };
        let state = AlertState::parse(&open.state);
        if rule
            .comparison
            .cleared(value, rule.model.threshold, rule.resolve)
        {
            let mut alert = open.clone();
            alert.value = Some(value);
            changes.push(resolve(alert, message(rule, observation, value, true), now));
        } else if rule.comparison.breached(value, rule.model.threshold) {
            let held = (now - open.pending_since).num_milliseconds()
                >= i64::from(rule.model.for_seconds) * 1000;
            let mut alert = open.clone();
            alert.value = Some(value);
            alert.message = message(rule, observation, value, false);
            if state == Some(AlertState::Pending) && held {
                alert.state = AlertState::Firing.as_str().into();
                alert.fired_at = Some(now);
                alert.updated_at = now;
                changes.push(Change::Update {
                    alert,
                    previous: state,
                });
            } else if open.value != Some(value) {
                alert.updated_at = now;
                changes.push(Change::Update {
                    alert,
                    previous: None,
                });
            }
        } else if open.value != Some(value) {
            // Between the threshold and the resolve threshold: the state holds.
            let mut alert = open.clone();
            alert.value = Some(value);
            alert.updated_at = now;
            changes.push(Change::Update {
                alert,
                previous: None,
            });
        }
    }

    // An open alert is silenced exactly while an active silence matches it: a silence
    // that ended gives way to another that still matches, or to none.
    let mut recovered = Vec::new();
    let updated: HashMap<Uuid, &alert::Model> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Update { alert, .. } => Some((alert.id, alert)),
            Change::New(_) => None,
        })
        .collect();
    for open in &inputs.open {
        let current = updated.get(&open.id).copied().unwrap_or(open);
        if current.state == AlertState::Resolved.as_str()
            || current.silenced_until.is_some_and(|until| until > now)
        {
            continue;
        }
        let (silence_id, silenced_until) = match silence_for(inputs, current) {
            Some((id, until)) => (Some(id), Some(until)),
            None => (current.silence_id, None),
        };
        if silenced_until != current.silenced_until {
            recovered.push(Recover {
                alert_id: open.id,
                silence_id,
                silenced_until,
            });
        }
    }

    for ((rule_id, subject), observation) in observed {
        let Some(value) = observation.value else {
            continue;
        };
        if seen.contains(&(rule_id, subject.clone())) {
            continue;
        }
        let Some(rule) = rules.get(&rule_id) else {
            continue;
        };
        if !rule.comparison.breached(value, rule.model.threshold) {
            continue;
        }
        let fires = rule.model.for_seconds == 0;
        let mut alert = alert::Model {
            id: Uuid::now_v7(),
            rule_id,
            subject,
            node_id: observation.node_id,
            ip: observation.ip.clone(),
            state: if fires {
                AlertState::Firing
            } else {
                AlertState::Pending
            }
            .as_str()
            .into(),
            severity: AlertSeverity::parse(&rule.model.severity)
                .unwrap_or(AlertSeverity::Warning)
                .as_str()
                .into(),
            value: Some(value),
            threshold: rule.model.threshold,
            message: message(rule, &observation, value, false),
            pending_since: now,
            fired_at: fires.then_some(now),
            resolved_at: None,
            updated_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            acknowledge_note: None,
            silence_id: None,
            silenced_until: None,
        };
        if let Some((silence, until)) = silence_for(inputs, &alert) {
            alert.silence_id = Some(silence);
            alert.silenced_until = Some(until);
        }
        changes.push(Change::New(alert));
    }
    (changes, enabled.len(), observations, recovered)
}

/// One evaluation of every rule. Returns what it did; `ran` is false when another
/// instance is evaluating.
pub async fn evaluate_once(state: &AppState) -> AppResult<CycleReport> {
    let started = Instant::now();
    let txn = if state.db.get_database_backend() == DbBackend::Sqlite {
        // One instance only on SQLite; take the write lock up front so that the writes
        // at the end cannot fail on a lock another writer took meanwhile.
        Some(crate::db::begin_write(&state.db).await?)
    } else {
        crate::db::tx::try_lock(&state.db, crate::db::JobLock::AlertEvaluation).await?
    };
    let Some(txn) = txn else {
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
    let mut inserts = Vec::new();
    for change in changes {
        match change {
            Change::New(alert) => {
                report.raised += 1;
                if alert.state == AlertState::Firing.as_str() {
                    report.fired += 1;
                }
                events.push(event(&alert, name_of(&alert.rule_id), None, now));
                inserts.push(alert::ActiveModel::from(alert));
            }
            Change::Update { alert, previous } => {
                let state = AlertState::parse(&alert.state);
                if previous.is_some() && previous != state {
                    match state {
                        Some(AlertState::Firing) => report.fired += 1,
                        Some(AlertState::Resolved) => report.resolved += 1,
                        _ => {}
                    }
                    events.push(event(
                        &alert,
                        name_of(&alert.rule_id),
                        previous.map(|p| p.as_str().to_string()),
                        now,
                    ));
                }
                let mut model: alert::ActiveModel = alert.into();
                for column in [
                    alert::Column::State,
                    alert::Column::Value,
                    alert::Column::Message,
                    alert::Column::FiredAt,
                    alert::Column::ResolvedAt,
                    alert::Column::UpdatedAt,
                ] {
                    model.reset(column);
                }
                model.update(&txn).await?;
            }
        }
    }
    for recover in recovered {
        alert::Entity::update_many()
            .col_expr(alert::Column::SilenceId, Expr::value(recover.silence_id))
            .col_expr(
                alert::Column::SilencedUntil,
                Expr::value(recover.silenced_until),
            )
            .filter(alert::Column::Id.eq(recover.alert_id))
            .exec(&txn)
            .await?;
    }
    for chunk in inserts.chunks(200) {
        alert::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_rate_needs_twenty_attempts() {
        let few = Attempts {
            sent: 19,
            deferred: 0,
            bounced: 19,
        };
        assert_eq!(bounce_rate(few), None);
        let enough = Attempts {
            sent: 400,
            deferred: 10,
            bounced: 30,
        };
        assert_eq!(bounce_rate(enough), Some(0.075));
    }

    #[test]
    fn aggregates_combine_the_latest_values() {
        let values = [40.0, 93.5, 10.0];
        assert_eq!(aggregate(AlertAggregate::Max, &values), Some(93.5));
        assert_eq!(aggregate(AlertAggregate::Min, &values), Some(10.0));
        assert_eq!(aggregate(AlertAggregate::Sum, &values), Some(143.5));
        assert_eq!(aggregate(AlertAggregate::Avg, &[1.0, 2.0]), Some(1.5));
        assert_eq!(aggregate(AlertAggregate::Max, &[]), None);
    }

    fn bounce_rule(enabled: bool) -> alert_rule::Model {
        let now = Utc::now();
        alert_rule::Model {
            id: Uuid::now_v7(),
            name: "Bounce rate high".into(),
            description: None,
            condition: "BOUNCE_RATE".into(),
            metric: None,
            metric_labels: serde_json::json!({}),
            aggregate: None,
            comparison: "GT".into(),
            threshold: 0.05,
            resolve_threshold: None,
            for_seconds: 0,
            window_seconds: Some(900),
            severity: "WARNING".into(),
            enabled,
            selector_roles: serde_json::json!(["MTA"]),
            selector_labels: serde_json::json!({ "dc": "fra1" }),
            selector_node_ids: serde_json::json!([]),
            created_at: now,
            updated_at: now,
            updated_by: None,
        }
    }

    const NODE: Uuid = Uuid::from_u128(0x0193a000_0000_7000_8000_0000000000aa);

    fn inputs(rule: alert_rule::Model, bounced: i64, open: Vec<alert::Model>) -> (Inputs, Uuid) {
        let node = NODE;
        let mut nodes = HashMap::new();
        nodes.insert(
            node,
            NodeFacts {
                id: node,
                hostname: "mta-01".into(),
                roles_mask: crate::nodes::NodeRole::Mta.bit(),
                labels: serde_json::json!({ "dc": "fra1" }),
                down: false,
                maintenance: false,
            },
        );
        let attempts = HashMap::from([(
            900,
            HashMap::from([(
                node,
                Attempts {
                    sent: 400,
                    deferred: 0,
                    bounced,
                },
            )]),
        )]);
        let inputs = Inputs {
            rules: vec![rule],
            nodes,
            readings: HashMap::new(),
            attempts,
            listed: HashMap::new(),
            open,
            silences: Vec::new(),
        };
        (inputs, node)
    }

    fn only(changes: Vec<Change>) -> (alert::Model, Option<AlertState>, bool) {
        assert_eq!(changes.len(), 1);
        match changes.into_iter().next() {
            Some(Change::New(a)) => (a, None, true),
            Some(Change::Update { alert, previous }) => (alert, previous, false),
            None => unreachable!(),
        }
    }

    #[test]
    fn a_bounce_rate_over_the_threshold_fires_and_resolves_past_the_resolve_threshold() {
        let rule = bounce_rule(true);
        let now = Utc::now();
        let (high, _) = inputs(rule.clone(), 30, Vec::new());
        let (alert, _, new) = only(decide(&high, now).0);
        assert!(new);
        assert_eq!(alert.state, "FIRING");
        assert_eq!(alert.value, Some(0.075));
        assert_eq!(
            alert.message,
            "mta-01: bounce rate 7.5% > 5% over 15 min (30 of 400 attempts bounced)"
        );

        // 4.9% is between 5% and the resolve threshold 4.75%: nothing changes but the value.
        let (between, node) = inputs(rule.clone(), 0, vec![alert.clone()]);
        let mut between = between;
        between.attempts.get_mut(&900).unwrap().insert(
            node,
            Attempts {
                sent: 1000,
                deferred: 0,
                bounced: 49,
            },
        );
        let (between_changes, ..) = decide(&between, now);
        let (kept, previous, _) = only(between_changes);
        assert_eq!((kept.state.as_str(), previous), ("FIRING", None));

        let (low, _) = inputs(rule.clone(), 10, vec![alert.clone()]);
        let (resolved, previous, _) = only(decide(&low, now).0);
        assert_eq!(resolved.state, "RESOLVED");
        assert_eq!(previous, Some(AlertState::Firing));

        // Too few attempts: no value, no change.
        let (mut quiet, node) = inputs(rule, 0, vec![alert]);
        quiet.attempts.get_mut(&900).unwrap().insert(
            node,
            Attempts {
                sent: 19,
                deferred: 0,
                bounced: 19,
            },
        );
        assert!(decide(&quiet, now).0.is_empty());
    }

    #[test]
    fn a_disabled_rule_resolves_its_alerts_and_a_silence_covers_new_ones() {
        let rule = bounce_rule(true);
        let now = Utc::now();
        let (mut high, _) = inputs(rule.clone(), 30, Vec::new());
        let until = now + chrono::Duration::hours(1);
        let silence = alert_silence::Model {
            id: Uuid::now_v7(),
            matcher: serde_json::json!({ "ruleIds": [rule.id] }),
            starts_at: now,
            ends_at: until,
            reason: "test".into(),
            created_by: "oscar".into(),
            created_at: now,
        };
        high.silences = vec![(silence.clone(), Matcher::from_json(&silence.matcher))];
        let (alert, ..) = only(decide(&high, now).0);
        assert_eq!(alert.silence_id, Some(silence.id));
        assert_eq!(alert.silenced_until, Some(until));

        // Once the silence has ended, the alert is no longer silenced.
        let mut ended = alert.clone();
        ended.silenced_until = Some(now - chrono::Duration::seconds(1));
        let (still, _) = inputs(rule.clone(), 30, vec![ended.clone()]);
        let recovered = decide(&still, now).3;
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].silenced_until, None);
        assert_eq!(recovered[0].silence_id, Some(silence.id));
        // Another silence that matches takes over.
        let mut covered = still;
        covered.silences = high.silences;
        assert_eq!(decide(&covered, now).3[0].silenced_until, Some(until));

        let (disabled, _) = inputs(bounce_rule(false), 30, vec![alert]);
        let mut disabled = disabled;
        disabled.rules[0].id = rule.id;
        let (resolved, ..) = only(decide(&disabled, now).0);
        assert_eq!(resolved.state, "RESOLVED");
        assert!(
            resolved.message.contains("disabled"),
            "{}",
            resolved.message
        );
    }

    #[test]
    fn numbers_read_well_in_messages() {
        assert_eq!(number(93.5), "93.5");
        assert_eq!(number(90.0), "90");
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(percent(0.075), "7.5%");
    }
}
