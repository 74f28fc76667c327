//! The latest value of every series of a node, shaped per service for `node.latest`.

use std::collections::HashMap;

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::error::AppResult;

use super::store::{self, series::SeriesOf};

/// A series' latest value: (value, epoch milliseconds).
type Reading = (f64, i64);

/// The latest readings of one node, by metric name; several series of one name (per
/// mount, per zone) are all kept.
#[derive(Clone, Debug, Default)]
pub struct Readings(HashMap<String, Vec<Reading>>);

impl Readings {
    fn values(&self, name: &str) -> &[Reading] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    fn one(&self, name: &str) -> Option<f64> {
        self.values(name).iter().max_by_key(|r| r.1).map(|r| r.0)
    }

    fn sum(&self, name: &str) -> Option<f64> {
        let values = self.values(name);
        (!values.is_empty()).then(|| values.iter().map(|r| r.0).sum())
    }

    fn max(&self, name: &str) -> Option<f64> {
        self.values(name).iter().map(|r| r.0).reduce(f64::max)
    }

    /// The newest reading among `names`, or `None` when none of them is reported.
    fn at(&self, names: &[&str]) -> Option<DateTime<Utc>> {
        names
            .iter()
            .flat_map(|n| self.values(n))
            .map(|r| r.1)
            .max()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
    }
}

/// The latest reading of every series of these nodes, by node, in one query.
pub async fn latest_by_node(
    conn: &impl ConnectionTrait,
    nodes: &[Uuid],
) -> AppResult<HashMap<Uuid, Readings>> {
    let mut by_node: HashMap<Uuid, Readings> = HashMap::new();
    for latest in store::series::latest_values(conn, SeriesOf::Nodes(nodes)).await? {
        by_node
            .entry(latest.node_id)
            .or_default()
            .0
            .entry(latest.name)
            .or_default()
            .push((latest.value, latest.ts));
    }
    Ok(by_node)
}

/// Host health from the system metrics.
#[derive(SimpleObject, Debug, Clone)]
pub struct SystemSnapshot {
    /// CPU time not idle, percent.
    pub cpu_percent: Option<f64>,
    /// Memory in use, percent.
    pub memory_used_percent: Option<f64>,
    /// Swap in use, percent.
    pub swap_used_percent: Option<f64>,
    /// 1-minute load average.
    pub load1: Option<f64>,
    /// 5-minute load average.
    pub load5: Option<f64>,
    /// 15-minute load average.
    pub load15: Option<f64>,
    /// The fullest mount point.
    pub disk_used_percent: Option<f64>,
    /// Open TCP connections.
    pub open_connections: Option<f64>,
    /// When the newest of these was measured.
    pub at: DateTime<Utc>,
}

/// ZoneMTA queues, summed over zones.
#[derive(SimpleObject, Debug, Clone)]
pub struct ZonemtaSnapshot {
    /// Messages being delivered.
    pub queue_active: Option<f64>,
    /// Messages waiting for a retry.
    pub queue_deferred: Option<f64>,
    /// When the newest of these was measured.
    pub at: DateTime<Utc>,
}

/// Rspamd scanning.
#[derive(SimpleObject, Debug, Clone)]
pub struct RspamdSnapshot {
    /// Average scan time, milliseconds.
    pub latency_ms: Option<f64>,
    /// When the newest of these was measured.
    pub at: DateTime<Utc>,
}

/// The MongoDB member on the node.
#[derive(SimpleObject, Debug, Clone)]
pub struct MongodbSnapshot {
    /// Open client connections.
    pub connections: Option<f64>,
    /// How far this member is behind the primary.
    pub replication_lag_seconds: Option<f64>,
    /// When the newest of these was measured.
    pub at: DateTime<Utc>,
}

/// The Redis server on the node.
#[derive(SimpleObject, Debug, Clone)]
pub struct RedisSnapshot {
    /// Memory Redis uses, bytes.
    pub memory_used_bytes: Option<f64>,
    /// Connected clients.
    pub clients: Option<f64>,
    /// Operations per second.
    pub ops_per_second: Option<f64>,
    /// Keys in all databases.
    pub keys: Option<f64>,
    /// When the newest of these was measured.
    pub at: DateTime<Utc>,
}

/// The latest reading per service; a service is null when the node does not report it.
#[derive(SimpleObject, Debug, Clone)]
pub struct NodeLatest {
    /// CPU, memory, load, disk and connections.
    pub system: Option<SystemSnapshot>,
    /// Outbound queues.
    pub zonemta: Option<ZonemtaSnapshot>,
    /// Scanning latency.
    pub rspamd: Option<RspamdSnapshot>,
    /// Connections and replication lag.
    pub mongodb: Option<MongodbSnapshot>,
    /// Memory, clients, throughput and keys.
    pub redis: Option<RedisSnapshot>,
}

impl From<&Readings> for NodeLatest {
    fn from(r: &Readings) -> Self {
        const SYSTEM: &[&str] = &[
            "system.cpu.used_percent",
            "system.memory.used_percent",
            "system.swap.used_percent",
            "system.load1",
            "system.load5",
            "system.load15",
            "system.disk.used_percent",
            "system.connections.open",
        ];
        const ZONEMTA: &[&str] = &["zonemta.queue.active", "zonemta.queue.deferred"];
        const RSPAMD: &[&str] = &["rspamd.latency_ms"];
        const MONGODB: &[&str] = &["mongodb.connections", "mongodb.replication.lag_seconds"];
        const REDIS: &[&str] = &[
            "redis.memory.used_bytes",
            "redis.clients",
            "redis.ops_per_second",
            "redis.keys",
        ];
        NodeLatest {
            system: r.at(SYSTEM).map(|at| SystemSnapshot {
                cpu_percent: r.one("system.cpu.used_percent"),
                memory_used_percent: r.one("system.memory.used_percent"),
                swap_used_percent: r.one("system.swap.used_percent"),
                load1: r.one("system.load1"),
                load5: r.one("system.load5"),
                load15: r.one("system.load15"),
                disk_used_percent: r.max("system.disk.used_percent"),
                open_connections: r.one("system.connections.open"),
                at,
            }),
            zonemta: r.at(ZONEMTA).map(|at| ZonemtaSnapshot {
                queue_active: r.sum("zonemta.queue.active"),
                queue_deferred: r.sum("zonemta.queue.deferred"),
                at,
            }),
            rspamd: r.at(RSPAMD).map(|at| RspamdSnapshot {
                latency_ms: r.one("rspamd.latency_ms"),
                at,
            }),
            mongodb: r.at(MONGODB).map(|at| MongodbSnapshot {
                connections: r.one("mongodb.connections"),
                replication_lag_seconds: r.one("mongodb.replication.lag_seconds"),
                at,
            }),
            redis: r.at(REDIS).map(|at| RedisSnapshot {
                memory_used_bytes: r.one("redis.memory.used_bytes"),
                clients: r.one("redis.clients"),
                ops_per_second: r.one("redis.ops_per_second"),
                keys: r.one("redis.keys"),
                at,
            }),
        }
    }
}
