//! GraphQL types of the overview. They are also what the cache stores, as JSON.

use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::mailflow::MailCounts;

/// How the cluster is doing, worst first.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClusterHealth {
    /// Nothing needs attention.
    Healthy,
    /// Something needs attention; mail still flows.
    Degraded,
    /// Act now: a critical alert fires, or most nodes are down.
    Critical,
}

/// One fact that made the cluster less than healthy.
#[derive(SimpleObject, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReason {
    /// The health this fact alone would give.
    pub level: ClusterHealth,
    /// A stable code: `CRITICAL_ALERTS`, `NODES_DOWN`, `WARNING_ALERTS`, `NODES_STALE`,
    /// `IPS_BLACKLISTED`, `BOUNCE_RATE`, or `IP_BLOCKED_IP` / `IP_THROTTLED` (one sending
    /// IP refused at one provider: 10 BLOCKED_IP or 20 THROTTLED refusals in 15 minutes).
    pub code: String,
    /// What an operator reads.
    pub message: String,
}

/// Nodes by status; retired nodes are not counted.
#[derive(SimpleObject, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    /// Every node not retired.
    pub total: i64,
    /// Reporting on time.
    pub online: i64,
    /// Late by two push intervals.
    pub stale: i64,
    /// Silent past the DOWN threshold.
    pub down: i64,
    /// In a maintenance window.
    pub maintenance: i64,
}

/// Messages waiting in the ZoneMTA queues, from each node's latest queue metrics.
#[derive(SimpleObject, Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueSize {
    /// `zonemta.queue.active`, summed over nodes and zones.
    pub active: f64,
    /// `zonemta.queue.deferred`, summed over nodes and zones.
    pub deferred: f64,
    /// Both.
    pub total: f64,
}

/// Firing alerts that no silence covers, by severity.
#[derive(SimpleObject, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertCounts {
    /// Firing WARNING alerts.
    pub warning: i64,
    /// Firing CRITICAL alerts.
    pub critical: i64,
    /// Both.
    pub total: i64,
}

/// The cluster at a glance.
#[derive(SimpleObject, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// The worst level among `reasons`; HEALTHY when there are none.
    pub health: ClusterHealth,
    /// Why the cluster is not healthy, worst first.
    pub reasons: Vec<HealthReason>,
    /// Nodes by status.
    pub nodes: NodeCounts,
    /// Mail events of the last hour (every minute it touches), with the delivery rates;
    /// `lastHour.sent` is the emails sent.
    pub last_hour: MailCounts,
    /// Messages waiting in the ZoneMTA queues.
    pub queue: QueueSize,
    /// Sending IPs listed on at least one DNSBL zone.
    pub blacklisted_ips: i64,
    /// Firing alerts no silence covers, by severity.
    pub active_alerts: AlertCounts,
    /// When this answer was computed; it is served to every caller until the cache time
    /// (30 s by default) has passed.
    pub generated_at: DateTime<Utc>,
}
