//! The standard metric names agents report, with units and label shapes. Other names
//! that match `^[a-z][a-z0-9_.]{0,127}$` are accepted as custom metrics with any labels.

use async_graphql::Enum;

/// Which part of the cluster a metric describes.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricService {
    /// The host: CPU, memory, disks, network.
    System,
    /// MongoDB members.
    Mongodb,
    /// Redis servers.
    Redis,
    /// ZoneMTA outbound queues and deliveries.
    Zonemta,
    /// Rspamd scanning.
    Rspamd,
    /// The mailops agent itself: its spool.
    Agent,
}

/// How a metric's values behave over time.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A level at a moment (CPU use, queue length).
    Gauge,
    /// A total that only grows, except when its process restarts; read it as a RATE.
    Counter,
}

#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub service: MetricService,
    pub kind: MetricKind,
    pub unit: &'static str,
    /// The label keys every sample of this metric carries, no more and no fewer.
    pub labels: &'static [&'static str],
    pub description: &'static str,
}

use MetricKind::{Counter, Gauge};
use MetricService::{Agent, Mongodb, Redis, Rspamd, System, Zonemta};

const fn def(
    name: &'static str,
    service: MetricService,
    kind: MetricKind,
    unit: &'static str,
    labels: &'static [&'static str],
    description: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        service,
        kind,
        unit,
        labels,
        description,
    }
}

pub static CATALOG: &[MetricDef] = &[
    def(
        "system.cpu.used_percent",
        System,
        Gauge,
        "percent",
        &[],
        "CPU time not idle, all cores",
    ),
    def(
        "system.load1",
        System,
        Gauge,
        "load",
        &[],
        "1-minute load average",
    ),
    def(
        "system.load5",
        System,
        Gauge,
        "load",
        &[],
        "5-minute load average",
    ),
    def(
        "system.load15",
        System,
        Gauge,
        "load",
        &[],
        "15-minute load average",
    ),
    def(
        "system.memory.used_percent",
        System,
        Gauge,
        "percent",
        &[],
        "memory in use",
    ),
    def(
        "system.memory.used_bytes",
        System,
        Gauge,
        "bytes",
        &[],
        "memory in use",
    ),
    def(
        "system.swap.used_percent",
        System,
        Gauge,
        "percent",
        &[],
        "swap in use",
    ),
    def(
        "system.disk.used_percent",
        System,
        Gauge,
        "percent",
        &["mount"],
        "space used per mount point",
    ),
    def(
        "system.disk.used_bytes",
        System,
        Gauge,
        "bytes",
        &["mount"],
        "space used per mount point",
    ),
    def(
        "system.network.rx_bytes",
        System,
        Counter,
        "bytes",
        &["interface"],
        "bytes received per interface",
    ),
    def(
        "system.network.tx_bytes",
        System,
        Counter,
        "bytes",
        &["interface"],
        "bytes sent per interface",
    ),
    def(
        "system.connections.open",
        System,
        Gauge,
        "connections",
        &[],
        "open TCP connections",
    ),
    def(
        "mongodb.ops",
        Mongodb,
        Counter,
        "operations",
        &["type"],
        "operations by type (insert, query, update, delete, getmore, command)",
    ),
    def(
        "mongodb.connections",
        Mongodb,
        Gauge,
        "connections",
        &[],
        "open client connections",
    ),
    def(
        "mongodb.replication.lag_seconds",
        Mongodb,
        Gauge,
        "seconds",
        &[],
        "how far this member is behind the primary",
    ),
    def(
        "redis.memory.used_bytes",
        Redis,
        Gauge,
        "bytes",
        &[],
        "memory Redis uses",
    ),
    def(
        "redis.clients",
        Redis,
        Gauge,
        "clients",
        &[],
        "connected clients",
    ),
    def(
        "redis.ops_per_second",
        Redis,
        Gauge,
        "operations/s",
        &[],
        "instantaneous operations per second",
    ),
    def(
        "redis.commands",
        Redis,
        Counter,
        "commands",
        &[],
        "commands processed (read as a RATE for commands per second)",
    ),
    def(
        "redis.keys",
        Redis,
        Gauge,
        "keys",
        &[],
        "keys in all databases",
    ),
    def(
        "redis.replication.connected_replicas",
        Redis,
        Gauge,
        "replicas",
        &[],
        "replicas connected to this Redis",
    ),
    def(
        "redis.replication.link_up",
        Redis,
        Gauge,
        "boolean",
        &[],
        "on a replica: 1 while its link to the primary is up, else 0",
    ),
    def(
        "zonemta.queue.active",
        Zonemta,
        Gauge,
        "messages",
        &["zone"],
        "messages being delivered per zone",
    ),
    def(
        "zonemta.queue.deferred",
        Zonemta,
        Gauge,
        "messages",
        &["zone"],
        "messages waiting for a retry per zone",
    ),
    def(
        "zonemta.delivered",
        Zonemta,
        Counter,
        "messages",
        &["zone"],
        "messages delivered per zone",
    ),
    def(
        "zonemta.deferred",
        Zonemta,
        Counter,
        "messages",
        &["zone"],
        "delivery attempts deferred per zone",
    ),
    def(
        "zonemta.bounced",
        Zonemta,
        Counter,
        "messages",
        &["zone"],
        "messages bounced per zone",
    ),
    def(
        "zonemta.rejected",
        Zonemta,
        Counter,
        "messages",
        &["zone"],
        "messages rejected per zone",
    ),
    def(
        "rspamd.scanned",
        Rspamd,
        Counter,
        "messages",
        &[],
        "messages scanned",
    ),
    def(
        "rspamd.actions",
        Rspamd,
        Counter,
        "messages",
        &["action"],
        "scan results by action (reject, add header, greylist, no action, …)",
    ),
    def(
        "rspamd.learned",
        Rspamd,
        Counter,
        "messages",
        &[],
        "messages learned",
    ),
    def(
        "rspamd.connections",
        Rspamd,
        Counter,
        "connections",
        &[],
        "connections the scanner accepted",
    ),
    def(
        "rspamd.latency_ms",
        Rspamd,
        Gauge,
        "milliseconds",
        &[],
        "average scan time",
    ),
    def(
        "agent.spool.batches",
        Agent,
        Gauge,
        "batches",
        &[],
        "batches the agent holds unsent (mailops away or slow)",
    ),
    def(
        "agent.spool.bytes",
        Agent,
        Gauge,
        "bytes",
        &[],
        "disk the agent's spool uses",
    ),
    def(
        "agent.spool.dropped_batches",
        Agent,
        Counter,
        "batches",
        &[],
        "batches dropped unsent because the spool was full or they were too old",
    ),
    def(
        "agent.spool.rejected_batches",
        Agent,
        Counter,
        "batches",
        &[],
        "batches mailops refused for their content",
    ),
];

pub fn find(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|def| def.name == name)
}

/// Whether `name` may name a custom metric.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for def in CATALOG {
            assert!(is_valid_name(def.name), "{}", def.name);
            assert!(seen.insert(def.name), "{} twice", def.name);
        }
    }

    #[test]
    fn custom_names_follow_the_pattern() {
        assert!(is_valid_name("haraka.connections"));
        assert!(!is_valid_name("Haraka"));
        assert!(!is_valid_name("9lives"));
        assert!(!is_valid_name(&"a".repeat(129)));
        assert!(!is_valid_name("with space"));
    }
}
