//! The IP domain's data: what callers send to list, add, change and act on IPs, and what
//! a bulk action and a DNSBL check answer.

use async_graphql::{Enum, InputObject, SimpleObject};
use serde::{Deserialize, Serialize};

use super::IpStatus;

/// Which IPs to act on or list; all conditions given must hold.
#[derive(Clone, Debug, Default)]
pub struct IpQuery {
    pub statuses: Option<Vec<IpStatus>>,
    /// As given in `filter.nodeIds`; parsed (and refused) by the domain.
    pub node_ids: Option<Vec<String>>,
    pub pool: Option<String>,
    pub subnet: Option<String>,
    pub listed: Option<bool>,
}

/// Addresses to add to the inventory: a list, a CIDR block, or both.
#[derive(Clone, Debug)]
pub struct NewIps {
    pub addresses: Option<Vec<String>>,
    pub cidr: Option<String>,
    pub pool: Option<String>,
}

/// One action on many IPs, named by address or by query (exactly one).
#[derive(Clone, Debug)]
pub struct BulkAction {
    pub addresses: Option<Vec<String>>,
    pub filter: Option<IpQuery>,
    pub action: IpAction,
    pub reason: Option<String>,
    pub dry_run: bool,
}

/// Changes to an IP's descriptive fields; a field left out stays, an empty string clears it.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateIpInput {
    /// The pool it sends for.
    pub pool: Option<String>,
    /// Its reverse DNS (PTR) name.
    pub reverse_dns: Option<String>,
    /// Free text.
    pub notes: Option<String>,
}

/// What a bulk action does to each IP.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpAction {
    /// To PAUSED.
    Pause,
    /// To ACTIVE.
    Resume,
    /// To WARMING.
    Warm,
    /// To RETIRED, for good.
    Retire,
}

/// What a bulk action did (or, in a dry run, would do) to one IP.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    /// The status changes.
    Changed,
    /// The IP already had that status.
    Unchanged,
    /// The IP is RETIRED; its status cannot change.
    Refused,
    /// The address is not in the inventory.
    NotFound,
}

/// One IP's outcome in a bulk action.
#[derive(SimpleObject, Clone, Debug)]
pub struct IpActionOutcome {
    /// The address.
    pub address: String,
    /// What happened (or would happen).
    pub outcome: OutcomeKind,
    /// Its status before.
    pub from: Option<IpStatus>,
    /// Its status after (or after the real run, in a dry run).
    pub to: Option<IpStatus>,
    /// Why it was refused or not found.
    pub message: Option<String>,
}

/// The result of a bulk action.
#[derive(SimpleObject, Clone, Debug)]
pub struct BulkIpActionResult {
    /// True when nothing was changed.
    pub dry_run: bool,
    /// How many IPs change (or would change).
    pub changed: i32,
    /// One outcome per IP.
    pub outcomes: Vec<IpActionOutcome>,
}

/// Whether a zone's answers were used in a check.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ZoneHealthState {
    /// Its RFC 5782 test entries answered correctly.
    Trusted,
    /// Its test entries answered wrongly; its results are UNKNOWN.
    Untrusted,
    /// It did not answer; its results are UNKNOWN.
    Unreachable,
}

/// One zone in a check.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneCheck {
    /// The zone.
    pub zone: String,
    /// Whether its answers were used.
    pub health: ZoneHealthState,
    /// Why it was not trusted.
    pub detail: Option<String>,
}

/// What a finished check found.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpCheckSummary {
    /// IPs checked.
    pub addresses: i32,
    /// DNS queries sent.
    pub lookups: i32,
    /// IP × zone results that are LISTED.
    pub listed: i32,
    /// IP × zone results that are UNKNOWN.
    pub unknown: i32,
    /// New listings and delistings this check saw.
    pub transitions: i32,
    /// Each zone and whether it was trusted.
    pub zones: Vec<ZoneCheck>,
}

/// Where an IP stands on one zone.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsblState {
    /// The zone lists the IP.
    Listed,
    /// The zone does not list the IP.
    Clear,
    /// No usable answer: the zone failed its test entries, refused, or timed out.
    Unknown,
}

crate::stored_enum!(DnsblState, "DNSBL state" { Listed => "LISTED", Clear => "CLEAR", Unknown => "UNKNOWN" });

/// Why a DNSBL check job exists.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpCheckJobKind {
    /// Queued by `checkIpBlacklists`.
    Manual,
    /// Queued by the schedule.
    Scheduled,
}

/// Where a DNSBL check job stands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpCheckJobState {
    /// Waiting for its turn (or for its next attempt).
    Queued,
    /// Being worked on.
    Running,
    /// Done; see `result`.
    Succeeded,
    /// Given up after its last attempt; see `lastError`.
    Failed,
    /// Taken off the queue by an admin before it ran.
    Cancelled,
}

crate::stored_enum!(IpCheckJobKind, "check job kind" { Manual => "MANUAL", Scheduled => "SCHEDULED" });
crate::stored_enum!(IpCheckJobState, "check job state" {
    Queued => "QUEUED",
    Running => "RUNNING",
    Succeeded => "SUCCEEDED",
    Failed => "FAILED",
    Cancelled => "CANCELLED",
});

/// The DNSBL check queue at a glance.
#[derive(async_graphql::SimpleObject, Clone, Debug, Default, PartialEq, Eq)]
#[graphql(name = "DnsblQueue")]
pub struct QueueSummary {
    /// Jobs waiting for their turn or their next attempt.
    pub queued: i64,
    /// Jobs being worked on.
    pub running: i64,
    /// Jobs given up after their last attempt (`retryIpCheckJob` queues one again).
    pub failed: i64,
    /// When the job waiting longest was queued.
    pub oldest_queued_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a node's agent applies: the push interval and the node's sending IPs.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Changes whenever anything below changes; the agent reports the version it applied
    /// (`agentHeartbeat(appliedConfigVersion:)`).
    pub version: String,
    /// How often the agent pushes metrics.
    pub push_interval_seconds: i32,
    /// Every IP of the node, in address order, whatever its status: the MTA sends from
    /// the ACTIVE and WARMING ones.
    pub ips: Vec<AgentIp>,
}

/// A sending IP as the node's MTA uses it.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct AgentIp {
    pub address: String,
    pub status: IpStatus,
    /// The pool it sends in; none for the default pool.
    pub pool: Option<String>,
}
