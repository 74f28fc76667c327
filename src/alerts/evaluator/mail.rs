//! What mail-flow rules (BOUNCE_RATE, DEFERRAL_RATE, CATEGORY_COUNT) see: per node, or
//! per sending IP, pool, provider or IP at a provider, from the counter cells of their
//! window. No database access here.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::mailflow::{FlowCell, MIN_RATE_ATTEMPTS};

use super::{
    super::{AlertCondition, AlertScope},
    decide::{Observation, Rule},
    inputs::{Inputs, NodeFacts},
    messages::window_text,
};

/// Attempts and refusals of some cells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub sent: i64,
    pub deferred: i64,
    pub bounced: i64,
    /// DEFERRED and BOUNCED events of the rule's category.
    pub refused: i64,
}

impl Tally {
    fn add(&mut self, cell: &FlowCell, category: Option<&str>) {
        self.sent += cell.delivered + cell.deferred + cell.bounced;
        self.deferred += cell.deferred;
        self.bounced += cell.bounced;
        if category.is_some_and(|c| c == cell.category) {
            self.refused += cell.deferred + cell.bounced;
        }
    }
}

/// The rule's value of a tally and the words that go with it (`what`, `extra`).
pub(super) fn judge(rule: &Rule, tally: Tally) -> (Option<f64>, String, String) {
    let window = window_text(rule.window());
    let rate =
        |part: i64| (tally.sent >= MIN_RATE_ATTEMPTS).then(|| part as f64 / tally.sent as f64);
    match rule.condition {
        AlertCondition::BounceRate => (
            rate(tally.bounced),
            "bounce rate".into(),
            format!(
                " over {window} ({} of {} attempts bounced)",
                tally.bounced, tally.sent
            ),
        ),
        AlertCondition::DeferralRate => (
            rate(tally.deferred),
            "deferral rate".into(),
            format!(
                " over {window} ({} of {} attempts deferred)",
                tally.deferred, tally.sent
            ),
        ),
        _ => (
            Some(tally.refused as f64),
            format!("{} refusals", rule.category.map_or("", |c| c.as_str())),
            format!(" over {window}"),
        ),
    }
}

fn cells<'a>(rule: &Rule, inputs: &'a Inputs) -> impl Iterator<Item = &'a FlowCell> {
    inputs.flow.get(&rule.window()).into_iter().flatten()
}

/// A node-scoped rule's tally for one node (not BOUNCE_RATE, which reads per-node sums).
pub(super) fn node_tally(rule: &Rule, node: &NodeFacts, inputs: &Inputs) -> Tally {
    let category = rule.category.map(|c| c.as_str());
    let mut tally = Tally::default();
    for cell in cells(rule, inputs).filter(|c| c.node_id == node.id) {
        tally.add(cell, category);
    }
    tally
}

/// One subject of a scoped rule: what it is keyed by in alerts, and what is known of it.
struct Subject {
    ip: Option<String>,
    node_id: Option<Uuid>,
    who: String,
    tally: Tally,
}

/// Every subject a scoped rule sees, by alert subject: `192.0.2.10`, `pool:bulk`,
/// `provider:outlook` or `192.0.2.10@outlook`. Cells of nodes the rule does not select or
/// in maintenance are left out.
pub(super) fn scoped(rule: &Rule, inputs: &Inputs) -> Vec<(String, Observation)> {
    let category = rule.category.map(|c| c.as_str());
    let mut subjects: BTreeMap<String, Subject> = BTreeMap::new();
    for cell in cells(rule, inputs) {
        let Some(node) = inputs.nodes.get(&cell.node_id) else {
            continue;
        };
        if node.maintenance || !rule.selects(Some(node)) {
            continue;
        }
        let ip = cell.sending_ip.as_str();
        let named_ip = || format!("{ip} ({})", node.hostname);
        let (key, who, names_ip) = match rule.scope {
            AlertScope::Node => continue,
            AlertScope::Ip if !ip.is_empty() => (ip.to_owned(), named_ip(), true),
            AlertScope::IpProvider if !ip.is_empty() => (
                format!("{ip}@{}", cell.provider),
                format!("{} at {}", named_ip(), cell.provider),
                true,
            ),
            AlertScope::Pool => match inputs.pools.get(ip) {
                Some(pool) => (format!("pool:{pool}"), format!("pool {pool}"), false),
                None => continue,
            },
            AlertScope::Provider => (
                format!("provider:{}", cell.provider),
                format!("provider {}", cell.provider),
                false,
            ),
            AlertScope::Ip | AlertScope::IpProvider => continue,
        };
        let subject = subjects.entry(key).or_insert_with(|| Subject {
            ip: names_ip.then(|| ip.to_owned()),
            node_id: names_ip.then_some(node.id),
            who,
            tally: Tally::default(),
        });
        subject.tally.add(cell, category);
    }
    subjects
        .into_iter()
        .map(|(key, subject)| {
            let (value, what, extra) = judge(rule, subject.tally);
            (
                key,
                Observation {
                    node_id: subject.node_id,
                    ip: subject.ip,
                    value,
                    who: subject.who,
                    what,
                    extra,
                },
            )
        })
        .collect()
}
