//! The table: which exporter series becomes which catalog name.

/// Where a series comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exporter {
    /// Prometheus' node_exporter (Debian's `prometheus-node-exporter`).
    NodeExporter,
    /// Rspamd's own `/metrics` on its controller (Debian's `rspamd`).
    Rspamd,
    /// oliver006/redis_exporter (Debian's `prometheus-redis-exporter`).
    RedisExporter,
    /// percona/mongodb_exporter, in its own names (`mongodb_ss_*`) and in its
    /// `--compatible-mode` names of the older exporter.
    MongodbExporter,
    /// ZoneMTA's own `/metrics` on its API port (prom-client).
    ZoneMta,
}

/// An input of a figure the catalog names but no exporter gives as such.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// `node_cpu_seconds_total{cpu,mode}`: `system.cpu.used_percent` is the non-idle share
    /// of the time all CPUs spent between two scrapes.
    CpuSeconds,
    /// `system.memory.used_bytes` = MemTotal − MemAvailable, and its percentage of MemTotal.
    MemTotal,
    MemAvailable,
    /// `system.swap.used_percent` = (SwapTotal − SwapFree) ÷ SwapTotal (0 without swap).
    SwapTotal,
    SwapFree,
    /// `system.disk.used_bytes{mount}` = size − avail, and its percentage of size, per
    /// `mountpoint`.
    FsSize,
    FsAvail,
}

/// What a row does with its series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// The value as it is, under `to`. `labels` renames the exporter's labels the catalog
    /// keeps (exporter's, catalog's); the others (`instance`, `job`, …) say which target it
    /// was, which mailops knows from the node key, and are left out.
    Same {
        to: &'static str,
        labels: &'static [(&'static str, &'static str)],
        /// The value times this (seconds to the catalog's milliseconds).
        scale: f64,
    },
    /// The sum of all series of the name at each timestamp (keys of every Redis database).
    Sum { to: &'static str },
    /// Feeds a derived figure.
    Input(Input),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    pub exporter: Exporter,
    pub from: &'static str,
    /// Only the series of `from` whose label has this value (ZoneMTA's `status`, MongoDB's
    /// connection state); the others are kept under their own name.
    pub when: Option<(&'static str, &'static str)>,
    pub action: Action,
}

const fn same(exporter: Exporter, from: &'static str, to: &'static str) -> Rule {
    Rule {
        exporter,
        from,
        when: None,
        action: Action::Same {
            to,
            labels: &[],
            scale: 1.0,
        },
    }
}

/// `from` under `to`, keeping the labels `labels` renames.
const fn relabel(
    exporter: Exporter,
    from: &'static str,
    to: &'static str,
    labels: &'static [(&'static str, &'static str)],
) -> Rule {
    Rule {
        exporter,
        from,
        when: None,
        action: Action::Same {
            to,
            labels,
            scale: 1.0,
        },
    }
}

/// The series of `from` whose `label` is `value`, under `to`, keeping `labels`.
const fn when(
    exporter: Exporter,
    from: &'static str,
    (label, value): (&'static str, &'static str),
    to: &'static str,
    labels: &'static [(&'static str, &'static str)],
) -> Rule {
    Rule {
        exporter,
        from,
        when: Some((label, value)),
        action: Action::Same {
            to,
            labels,
            scale: 1.0,
        },
    }
}

const fn input(from: &'static str, input: Input) -> Rule {
    Rule {
        exporter: Exporter::NodeExporter,
        from,
        when: None,
        action: Action::Input(input),
    }
}

use Exporter::{MongodbExporter, NodeExporter, RedisExporter, Rspamd, ZoneMta};

/// Every exporter series mailops names otherwise. Counters stay counters (read them with
/// the RATE aggregate); only the catalog's percentages are computed.
pub static RULES: &[Rule] = &[
    // node_exporter, https://github.com/prometheus/node_exporter (recorded from 1.5.0).
    input("node_cpu_seconds_total", Input::CpuSeconds),
    same(NodeExporter, "node_load1", "system.load1"),
    same(NodeExporter, "node_load5", "system.load5"),
    same(NodeExporter, "node_load15", "system.load15"),
    input("node_memory_MemTotal_bytes", Input::MemTotal),
    input("node_memory_MemAvailable_bytes", Input::MemAvailable),
    input("node_memory_SwapTotal_bytes", Input::SwapTotal),
    input("node_memory_SwapFree_bytes", Input::SwapFree),
    input("node_filesystem_size_bytes", Input::FsSize),
    input("node_filesystem_avail_bytes", Input::FsAvail),
    relabel(
        NodeExporter,
        "node_network_receive_bytes_total",
        "system.network.rx_bytes",
        &[("device", "interface")],
    ),
    relabel(
        NodeExporter,
        "node_network_transmit_bytes_total",
        "system.network.tx_bytes",
        &[("device", "interface")],
    ),
    same(
        NodeExporter,
        "node_netstat_Tcp_CurrEstab",
        "system.connections.open",
    ),
    // redis_exporter, https://github.com/oliver006/redis_exporter (recorded from 1.45.0).
    same(
        RedisExporter,
        "redis_memory_used_bytes",
        "redis.memory.used_bytes",
    ),
    same(RedisExporter, "redis_connected_clients", "redis.clients"),
    same(
        RedisExporter,
        "redis_commands_processed_total",
        "redis.commands",
    ),
    Rule {
        exporter: RedisExporter,
        from: "redis_db_keys",
        when: None,
        action: Action::Sum { to: "redis.keys" },
    },
    same(
        RedisExporter,
        "redis_connected_slaves",
        "redis.replication.connected_replicas",
    ),
    same(
        RedisExporter,
        "redis_master_link_up",
        "redis.replication.link_up",
    ),
    // Rspamd's controller, https://rspamd.com/doc/workers/controller.html (recorded from 3.4).
    same(Rspamd, "rspamd_scanned_total", "rspamd.scanned"),
    same(Rspamd, "rspamd_learned_total", "rspamd.learned"),
    same(Rspamd, "rspamd_connections", "rspamd.connections"),
    relabel(
        Rspamd,
        "rspamd_actions_total",
        "rspamd.actions",
        &[("type", "action")],
    ),
    Rule {
        exporter: Rspamd,
        from: "rspamd_scan_time_average",
        when: None,
        action: Action::Same {
            to: "rspamd.latency_ms",
            labels: &[],
            scale: 1000.0,
        },
    },
    // percona/mongodb_exporter, https://github.com/percona/mongodb_exporter (v0.53.0's names;
    // the older names are what its --compatible-mode adds).
    relabel(
        MongodbExporter,
        "mongodb_ss_opcounters",
        "mongodb.ops",
        &[("legacy_op_type", "type")],
    ),
    relabel(
        MongodbExporter,
        "mongodb_op_counters_total",
        "mongodb.ops",
        &[("type", "type")],
    ),
    when(
        MongodbExporter,
        "mongodb_ss_connections",
        ("conn_type", "current"),
        "mongodb.connections",
        &[],
    ),
    when(
        MongodbExporter,
        "mongodb_connections",
        ("state", "current"),
        "mongodb.connections",
        &[],
    ),
    // One series per member of the set; this node's own is the one marked self="1".
    when(
        MongodbExporter,
        "mongodb_mongod_replset_member_replication_lag",
        ("self", "1"),
        "mongodb.replication.lag_seconds",
        &[],
    ),
    // ZoneMTA, https://github.com/zone-eu/zone-mta (lib/queue-server.js). A message released
    // undelivered is a bounce: ZoneMTA counts it as status="rejected", its delivery-counters
    // plugin as "bounced". Its `zonemta_queue_size{type}` has no zone, so it is not the
    // catalog's per-zone queue and stays under its own name.
    when(
        ZoneMta,
        "zonemta_delivery_status",
        ("status", "delivered"),
        "zonemta.delivered",
        &[("zone", "zone")],
    ),
    when(
        ZoneMta,
        "zonemta_delivery_status",
        ("status", "deferred"),
        "zonemta.deferred",
        &[("zone", "zone")],
    ),
    when(
        ZoneMta,
        "zonemta_delivery_status",
        ("status", "rejected"),
        "zonemta.bounced",
        &[("zone", "zone")],
    ),
];
