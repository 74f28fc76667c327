//! The decisions of one evaluation, from what was read alone: which alerts are raised,
//! fire, resolve or change silence. No database access here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{alert::Model as AlertRow, alert_rule::Model as RuleRow};
use uuid::Uuid;

use crate::{
    error::AppResult,
    mailflow::{Attempts, BounceCategory, MIN_RATE_ATTEMPTS},
};

use super::{
    super::{
        AlertAggregate, AlertComparison, AlertCondition, AlertScope, AlertSeverity, AlertState,
        rules::DEFAULT_WINDOW_SECONDS, store::rules::role_from_str,
    },
    inputs::{Inputs, NodeFacts},
    messages::{message, window_text},
};

/// A rule, parsed once per cycle.
pub(super) struct Rule {
    pub(super) model: RuleRow,
    pub(super) condition: AlertCondition,
    pub(super) aggregate: AlertAggregate,
    pub(super) comparison: AlertComparison,
    pub(super) resolve: f64,
    pub(super) roles_mask: i32,
    pub(super) node_ids: Vec<Uuid>,
    pub(super) scope: AlertScope,
    pub(super) category: Option<BounceCategory>,
}

impl Rule {
    fn parse(model: RuleRow) -> AppResult<Rule> {
        let condition = AlertCondition::parse(&model.condition)?;
        let comparison = AlertComparison::parse(&model.comparison)?;
        // Validated here so that an alert raised from the rule copies a known value.
        AlertSeverity::parse(&model.severity)?;
        let aggregate = model
            .aggregate
            .as_deref()
            .map(AlertAggregate::parse)
            .transpose()?
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
        let scope = model
            .scope
            .as_deref()
            .map(AlertScope::parse)
            .transpose()?
            .unwrap_or_default();
        let category = model
            .category
            .as_deref()
            .map(BounceCategory::parse)
            .transpose()?;
        Ok(Rule {
            scope,
            category,
            condition,
            aggregate,
            comparison,
            resolve,
            roles_mask,
            node_ids,
            model,
        })
    }

    pub(super) fn selects(&self, node: Option<&NodeFacts>) -> bool {
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

    pub(super) fn window(&self) -> i32 {
        self.model.window_seconds.unwrap_or(DEFAULT_WINDOW_SECONDS)
    }
}

/// What a rule saw about one subject this cycle.
pub(super) struct Observation {
    pub(super) node_id: Option<Uuid>,
    pub(super) ip: Option<String>,
    /// `None`: nothing to judge by (no series, too few attempts); the alert stays as it is.
    pub(super) value: Option<f64>,
    /// Who or what the message is about, e.g. `mta-01` or `192.0.2.1 (mta-01)`.
    pub(super) who: String,
    /// What is measured, e.g. `system.disk.used_percent`.
    pub(super) what: String,
    /// Extra words for the message, e.g. `(30 of 400 attempts)`.
    pub(super) extra: String,
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
        AlertCondition::DeferralRate | AlertCondition::CategoryCount => {
            let (value, what, extra) =
                super::mail::judge(rule, super::mail::node_tally(rule, node, inputs));
            observation.value = value;
            observation.what = what;
            observation.extra = extra;
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
    (attempts.sent >= MIN_RATE_ATTEMPTS).then(|| attempts.bounced as f64 / attempts.sent as f64)
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

/// What the cycle decided for one alert.
pub(super) enum Change {
    New(AlertRow),
    Update {
        alert: AlertRow,
        previous: Option<AlertState>,
    },
}

/// A new silence state of an open alert.
pub(super) struct Recover {
    pub alert_id: Uuid,
    pub silence_id: Option<Uuid>,
    pub silenced_until: Option<DateTime<Utc>>,
}

fn silence_for(inputs: &Inputs, alert: &AlertRow) -> Option<(Uuid, DateTime<Utc>)> {
    inputs
        .silences
        .iter()
        .filter(|(_, m)| m.matches(alert))
        .max_by_key(|(s, _)| s.ends_at)
        .map(|(s, _)| (s.id, s.ends_at))
}

fn resolve(mut alert: AlertRow, message: String, now: DateTime<Utc>) -> Change {
    // Open alerts' states were checked when they were read.
    let previous = AlertState::parse(&alert.state).ok();
    alert.state = AlertState::Resolved.as_str().into();
    alert.resolved_at = Some(now);
    alert.updated_at = now;
    alert.message = message;
    Change::Update { alert, previous }
}

/// Decides every change of one cycle from what was read: no database access here.
pub(super) fn decide(
    inputs: &Inputs,
    now: DateTime<Utc>,
) -> (Vec<Change>, usize, usize, Vec<Recover>) {
    let rules: HashMap<Uuid, Rule> = inputs
        .rules
        .iter()
        .filter_map(|m| match Rule::parse(m.clone()) {
            Ok(rule) => Some(rule),
            // A rule whose stored text this build does not know is left out, loudly,
            // rather than evaluated as something else or stopping every other rule.
            Err(error) => {
                error.log_if_internal();
                None
            }
        })
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
        } else if rule.condition.counts_mail() && rule.scope != AlertScope::Node {
            for (subject, observation) in super::mail::scoped(rule, inputs) {
                observed.insert((rule.model.id, subject), observation);
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
            if rule.condition == AlertCondition::CategoryCount {
                // Nothing counted in the window: no refusals at all.
                if !rule
                    .comparison
                    .cleared(0.0, rule.model.threshold, rule.resolve)
                {
                    continue;
                }
                let o = Observation {
                    node_id: open.node_id,
                    ip: open.ip.clone(),
                    value: Some(0.0),
                    who: host.clone(),
                    what: format!("{} refusals", rule.category.map_or("", |c| c.as_str())),
                    extra: String::new(),
                };
                let mut alert = open.clone();
                alert.value = Some(0.0);
                changes.push(resolve(alert, message(rule, &o, 0.0, true), now));
            } else if rule.condition == AlertCondition::IpListed {
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
        let state = AlertState::parse(&open.state).ok();
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
    let updated: HashMap<Uuid, &AlertRow> = changes
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
        let mut alert = AlertRow {
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
            severity: rule.model.severity.clone(),
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

#[cfg(test)]
mod tests {
    use entity::alert_silence;

    use super::{
        super::{
            super::service::Matcher,
            messages::{number, percent},
        },
        *,
    };

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

    fn bounce_rule(enabled: bool) -> RuleRow {
        let now = Utc::now();
        RuleRow {
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
            scope: None,
            category: None,
            pause_ip: false,
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

    fn inputs(rule: RuleRow, bounced: i64, open: Vec<AlertRow>) -> (Inputs, Uuid) {
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
            flow: HashMap::new(),
            pools: HashMap::new(),
            listed: HashMap::new(),
            open,
            silences: Vec::new(),
        };
        (inputs, node)
    }

    fn only(changes: Vec<Change>) -> (AlertRow, Option<AlertState>, bool) {
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
