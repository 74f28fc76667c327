//! The latest value of every series of a node, shaped per service for `node.latest`.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{SimpleObject, dataloader::Loader};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};
use uuid::Uuid;

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

/// Loads the latest reading of every series of many nodes in one query.
pub struct LatestByNode {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for LatestByNode {
    type Value = Readings;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Readings>, Self::Error> {
        let backend = self.db.get_database_backend();
        let placeholders = crate::db::sql::placeholders(backend, 1, keys.len());
        // The newest 1-minute bucket of each series holds its latest sample as `last`.
        let sql = format!(
            "SELECT s.node_id, s.name, r.last, r.last_ts FROM metric_series s \
             JOIN metric_rollups_1m r ON r.series_id = s.id \
             WHERE s.node_id IN ({}) \
               AND r.bucket = (SELECT MAX(bucket) FROM metric_rollups_1m m WHERE m.series_id = s.id)",
            placeholders
        );
        let values: Vec<Value> = keys.iter().map(|k| Value::from(*k)).collect();
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(Arc::new)?;
        let mut by_node: HashMap<Uuid, Readings> = HashMap::new();
        for row in rows {
            let node: Uuid = row.try_get("", "node_id").map_err(Arc::new)?;
            let name: String = row.try_get("", "name").map_err(Arc::new)?;
            let reading = (
                row.try_get("", "last").map_err(Arc::new)?,
                row.try_get("", "last_ts").map_err(Arc::new)?,
            );
            by_node
                .entry(node)
                .or_default()
                .0
                .entry(name)
                .or_default()
                .push(reading);
        }
        Ok(by_node)
    }
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
