//! What subscriptions deliver. Every payload carries the event's `sequence`, which a client
//! passes back as `after` to resume.

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    error::AppResult,
    graphql::audit::types::AuditEntry,
    mailflow::MailCounts,
    nodes::{Label, NodeStatus},
};

use crate::realtime::{
    AlertEvent, AuditRecorded, IpReputationChanged, MailFlowTick, MetricsIngested,
    NodeStatusChanged,
};

fn id(uuid: uuid::Uuid) -> ID {
    ID(uuid.to_string())
}

/// A metrics batch a node's agent committed.
#[derive(SimpleObject, Clone, Debug)]
pub struct MetricsUpdate {
    /// The event's sequence number; pass it as `after` to resume from here.
    pub sequence: i64,
    /// The node the samples belong to.
    pub node_id: ID,
    /// The node's hostname.
    pub hostname: String,
    /// The agent's id for the batch.
    pub batch_id: String,
    /// How many samples the batch stored.
    pub samples: i32,
    /// The metric names in the batch (those asked for, when `names` was given), sorted.
    pub names: Vec<String>,
    /// The newest sample of each series in the batch (of the names asked for), by name
    /// and labels; at most 256 series of one batch.
    pub readings: Vec<MetricReading>,
}

/// The newest sample of one series.
#[derive(SimpleObject, Clone, Debug)]
pub struct MetricReading {
    /// The metric's name.
    pub name: String,
    /// The series' labels, by key.
    pub labels: Vec<Label>,
    /// When it was measured.
    pub ts: DateTime<Utc>,
    /// The value measured.
    pub value: f64,
}

impl MetricsUpdate {
    /// The update for a subscriber that wants `wanted` names (all when `None`).
    pub fn new(
        sequence: u64,
        event: &MetricsIngested,
        names: Vec<String>,
        wanted: Option<&std::collections::HashSet<String>>,
    ) -> Self {
        let readings = event
            .readings
            .iter()
            .filter(|r| wanted.is_none_or(|w| w.contains(&r.name)))
            .map(|r| MetricReading {
                name: r.name.clone(),
                labels: r
                    .labels
                    .iter()
                    .map(|(key, value)| Label {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                ts: r.ts,
                value: r.value,
            })
            .collect();
        MetricsUpdate {
            sequence: sequence as i64,
            node_id: id(event.node_id),
            hostname: event.hostname.clone(),
            batch_id: event.batch_id.clone(),
            samples: event.samples,
            names,
            readings,
        }
    }
}

/// A node moved from one status to another.
#[derive(SimpleObject, Clone, Debug)]
pub struct NodeStatusEvent {
    /// The event's sequence number; pass it as `after` to resume from here.
    pub sequence: i64,
    /// The node.
    pub node_id: ID,
    /// The node's hostname.
    pub hostname: String,
    /// `null` for the node's first status.
    pub from: Option<NodeStatus>,
    /// The status it changed to.
    pub to: NodeStatus,
    /// When it changed.
    pub at: DateTime<Utc>,
    /// Why: `registered`, `no agent contact within the stale threshold`, `maintenance started`, …
    pub reason: String,
}

impl NodeStatusEvent {
    pub fn new(sequence: u64, event: &NodeStatusChanged) -> Self {
        NodeStatusEvent {
            sequence: sequence as i64,
            node_id: id(event.node_id),
            hostname: event.hostname.clone(),
            from: event.from,
            to: event.to,
            at: event.at,
            reason: event.reason.clone(),
        }
    }
}

/// A sending IP's listing on a DNS blocklist zone changed.
#[derive(SimpleObject, Clone, Debug)]
pub struct IpReputationEvent {
    /// The event's sequence number; pass it as `after` to resume from here.
    pub sequence: i64,
    /// The IP address, in canonical text form.
    pub address: String,
    /// The node sending from it, if any.
    pub node_id: Option<ID>,
    /// The blocklist zone checked, such as `zen.spamhaus.org`.
    pub zone: String,
    /// Whether the address is listed there now.
    pub listed: bool,
    /// The address's reputation state after the change.
    pub state: String,
    /// Its state before, `null` for its first check.
    pub previous_state: Option<String>,
    /// The zone's reason text, when it gives one.
    pub reason: Option<String>,
    /// When the change was seen.
    pub at: DateTime<Utc>,
}

impl IpReputationEvent {
    pub fn new(sequence: u64, event: &IpReputationChanged) -> Self {
        IpReputationEvent {
            sequence: sequence as i64,
            address: event.address.clone(),
            node_id: event.node_id.map(id),
            zone: event.zone.clone(),
            listed: event.listed,
            state: event.state.clone(),
            previous_state: event.previous_state.clone(),
            reason: event.reason.clone(),
            at: event.at,
        }
    }
}

/// An alert changed state or was acknowledged.
#[derive(SimpleObject, Clone, Debug)]
pub struct AlertNotice {
    /// The event's sequence number; pass it as `after` to resume from here.
    pub sequence: i64,
    /// The alert; query `alert(id)` for the rest.
    pub alert_id: ID,
    /// The rule that raised it.
    pub rule_id: ID,
    /// The rule's name.
    pub rule: String,
    /// `WARNING` or `CRITICAL`.
    pub severity: String,
    /// `PENDING`, `FIRING` or `RESOLVED`, after the change.
    pub state: String,
    /// The state before the change; `null` for a new alert; the same as `state` when the
    /// change is an acknowledgement.
    pub previous_state: Option<String>,
    /// Whether someone acknowledged the alert.
    pub acknowledged: bool,
    /// Whether a silence covers the alert.
    pub silenced: bool,
    /// The node it concerns, if one.
    pub node_id: Option<ID>,
    /// The sending IP it concerns (IP_LISTED), if one.
    pub ip: Option<String>,
    /// The value evaluated.
    pub value: Option<f64>,
    /// The rule's threshold when the alert was raised.
    pub threshold: f64,
    /// What an operator reads, e.g. `mta-01: system.disk.used_percent 93.5 > 90`.
    pub message: String,
    /// When the alert changed.
    pub at: DateTime<Utc>,
}

impl AlertNotice {
    pub fn new(sequence: u64, event: &AlertEvent) -> Self {
        AlertNotice {
            sequence: sequence as i64,
            alert_id: id(event.alert_id),
            rule_id: id(event.rule_id),
            rule: event.rule.clone(),
            severity: event.severity.clone(),
            state: event.state.clone(),
            previous_state: event.previous_state.clone(),
            acknowledged: event.acknowledged,
            silenced: event.silenced,
            node_id: event.node_id.map(id),
            ip: event.ip.clone(),
            value: event.value,
            threshold: event.threshold,
            message: event.message.clone(),
            at: event.at,
        }
    }
}

/// Mail flow of one second: counters, never one message per mail.
#[derive(SimpleObject, Clone, Debug)]
pub struct MailFlowSecond {
    /// The event's sequence number; pass it as `after` to resume from here.
    pub sequence: i64,
    /// The start of the second counted.
    pub second: DateTime<Utc>,
    /// The node counted; `null` for the whole cluster.
    pub node_id: Option<ID>,
    /// The events committed in that second, by status.
    pub counts: MailCounts,
}

impl MailFlowSecond {
    /// The second's counts for the cluster (`node` is `None`) or one node; `None` when
    /// that node committed nothing in it.
    pub fn new(sequence: u64, tick: &MailFlowTick, node: Option<uuid::Uuid>) -> Option<Self> {
        let counts = match node {
            None => tick.counts,
            Some(node) => tick.nodes.iter().find(|(id, _)| *id == node)?.1,
        };
        Some(MailFlowSecond {
            sequence: sequence as i64,
            second: tick.second,
            node_id: node.map(id),
            counts,
        })
    }
}

/// An audit entry as it was committed.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditEvent {
    /// The event's sequence number; pass it as `after` to resume from here.
    pub sequence: i64,
    /// The entry.
    pub entry: AuditEntry,
}

impl AuditEvent {
    pub fn new(sequence: u64, event: &AuditRecorded) -> AppResult<Self> {
        Ok(AuditEvent {
            sequence: sequence as i64,
            entry: AuditEntry::try_from(event.0.clone())?,
        })
    }
}
