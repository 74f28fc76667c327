#![allow(clippy::unwrap_used)]

//! The mapping against each exporter's real output, recorded from the real programs:
//! Debian's prometheus-node-exporter 1.5.0, prometheus-redis-exporter 1.45.0 (reading a
//! Redis 7.0 server) and rspamd 3.4's controller `/metrics` after three scanned messages;
//! ZoneMTA 3.10.18's metric definitions (lib/queue-server.js, lib/mail-queue.js) on its
//! prom-client 15.1.3 under Node.js 20, default process metrics included, after some
//! counted deliveries (ZoneMTA itself needs MongoDB, which this machine cannot run).
//! mongodb_exporter cannot run here either: its file is written in the text its v0.53.0
//! sources produce (names, help texts and topology labels of `exporter/metrics.go` and
//! `topology_info.go`, the example values of its opcounters comment, the
//! replSetGetStatus series of `v1_compatibility.go` for a secondary of a three-member set).

use std::collections::BTreeSet;

use exporters::{Mapper, RULES, Sample, parse_text};

const NODE_EXPORTER: &str = include_str!("../testdata/node_exporter-1.5.0.prom");
const REDIS_EXPORTER: &str = include_str!("../testdata/redis_exporter-1.45.0.prom");
const RSPAMD: &str = include_str!("../testdata/rspamd-3.4.prom");
const ZONEMTA: &str = include_str!("../testdata/zonemta-3.10.18.prom");
const MONGODB_EXPORTER: &str = include_str!("../testdata/mongodb_exporter-0.53.0.prom");

fn find<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.name == name).collect()
}

fn names(samples: &[Sample]) -> BTreeSet<&str> {
    samples.iter().map(|s| s.name.as_str()).collect()
}

/// The same scrape later, with every node_cpu_seconds_total grown: busy time by 3 s per
/// CPU, idle by 1 s, so 75 % of the time was not idle.
fn later(text: &str, cpus_busy: f64, cpus_idle: f64) -> String {
    text.lines()
        .map(|line| {
            if let Some(rest) = line.strip_prefix("node_cpu_seconds_total{") {
                let (labels, value) = rest.rsplit_once(' ').unwrap();
                let grown = value.parse::<f64>().unwrap()
                    + if labels.contains("mode=\"idle\"") {
                        cpus_idle
                    } else if labels.contains("mode=\"user\"") {
                        cpus_busy
                    } else {
                        0.0
                    };
                format!("node_cpu_seconds_total{{{labels} {grown}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn node_exporter_fills_the_system_catalog() {
    let mut mapper = Mapper::new();
    let first = mapper
        .map(parse_text(NODE_EXPORTER, 1_000_000).unwrap())
        .unwrap();
    let got = names(&first.samples);
    for name in [
        "system.load1",
        "system.load5",
        "system.load15",
        "system.memory.used_bytes",
        "system.memory.used_percent",
        "system.swap.used_percent",
        "system.disk.used_bytes",
        "system.disk.used_percent",
        "system.network.rx_bytes",
        "system.network.tx_bytes",
        "system.connections.open",
    ] {
        assert!(got.contains(name), "{name} missing");
    }
    // CPU use needs two scrapes.
    assert!(!got.contains("system.cpu.used_percent"));
    assert_eq!(find(&first.samples, "system.load1")[0].value, 1.44);
    let memory = find(&first.samples, "system.memory.used_percent")[0].value;
    let expected = (1.0 - 2.3965257728e10 / 2.5276182528e10) * 100.0;
    assert!((memory - expected).abs() < 1e-9, "{memory} vs {expected}");
    let root = find(&first.samples, "system.disk.used_percent")
        .into_iter()
        .find(|s| s.labels["mount"] == "/")
        .unwrap();
    let expected = (1.0 - 5.8516455424e10 / 2.70553174016e11) * 100.0;
    assert!((root.value - expected).abs() < 1e-9);
    let eth0 = find(&first.samples, "system.network.rx_bytes")
        .into_iter()
        .find(|s| s.labels["interface"] == "eth0")
        .unwrap();
    assert_eq!(eth0.value, 6.31793319e8);
    assert_eq!(eth0.labels.len(), 1, "only the catalog's label: {eth0:?}");

    let cpus = NODE_EXPORTER
        .lines()
        .filter(|l| l.starts_with("node_cpu_seconds_total{") && l.contains("mode=\"idle\""))
        .count() as f64;
    let second = mapper
        .map(parse_text(&later(NODE_EXPORTER, 3.0, 1.0), 1_015_000).unwrap())
        .unwrap();
    let cpu = find(&second.samples, "system.cpu.used_percent");
    assert_eq!(cpu.len(), 1, "{cpus} CPUs");
    assert!((cpu[0].value - 75.0).abs() < 1e-6, "{}", cpu[0].value);
    assert_eq!(cpu[0].ts_ms, 1_015_000);

    // Nothing is dropped: every other series is kept under its normalised name.
    let kept = find(&first.samples, "node_memory_memfree_bytes");
    assert_eq!(kept.len(), 1);
    let scheduled = find(&first.samples, "go_gc_duration_seconds");
    assert!(
        scheduled
            .iter()
            .any(|s| s.labels.get("quantile").map(String::as_str) == Some("0.5"))
    );
    let series_in = parse_text(NODE_EXPORTER, 1_000_000).unwrap().len();
    assert_eq!(first.mapped_series + first.kept_series, series_in);
    for sample in &first.samples {
        assert!(
            sample
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'),
            "{}",
            sample.name
        );
    }
}

#[test]
fn a_restart_between_scrapes_gives_no_cpu_figure() {
    let mut mapper = Mapper::new();
    mapper
        .map(parse_text(&later(NODE_EXPORTER, 100.0, 100.0), 1_000).unwrap())
        .unwrap();
    let after_reboot = mapper
        .map(parse_text(NODE_EXPORTER, 2_000).unwrap())
        .unwrap();
    assert!(find(&after_reboot.samples, "system.cpu.used_percent").is_empty());
}

#[test]
fn redis_exporter_fills_the_redis_catalog() {
    let mapped = Mapper::new()
        .map(parse_text(REDIS_EXPORTER, 1_000).unwrap())
        .unwrap();
    let value = |name: &str| find(&mapped.samples, name).first().map(|s| s.value);
    assert_eq!(value("redis.memory.used_bytes"), Some(2.810064e6));
    assert_eq!(value("redis.clients"), Some(1.0));
    assert_eq!(value("redis.commands"), Some(100971.0));
    assert_eq!(value("redis.replication.connected_replicas"), Some(0.0));
    let keys: f64 = REDIS_EXPORTER
        .lines()
        .filter(|l| l.starts_with("redis_db_keys{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(value("redis.keys"), Some(keys));
    assert_eq!(find(&mapped.samples, "redis.keys").len(), 1);
}

#[test]
fn values_that_are_not_numbers_are_counted_not_stored() {
    let text = "# TYPE a gauge\na 1\na{x=\"1\"} NaN\nb +Inf\n";
    let mapped = Mapper::new().map(parse_text(text, 5).unwrap()).unwrap();
    assert_eq!(mapped.samples.len(), 1);
    assert_eq!(mapped.skipped_values, 2);
}

#[test]
fn every_rule_maps_to_a_distinct_source() {
    let sources: BTreeSet<_> = RULES.iter().map(|r| (r.from, r.when)).collect();
    assert_eq!(sources.len(), RULES.len());
}

#[test]
fn rspamd_fills_the_rspamd_catalog() {
    let mapped = Mapper::new()
        .map(parse_text(RSPAMD, 1_000).unwrap())
        .unwrap();
    let value = |name: &str| find(&mapped.samples, name).first().map(|s| s.value);
    assert_eq!(value("rspamd.scanned"), Some(3.0));
    assert_eq!(value("rspamd.learned"), Some(0.0));
    assert_eq!(value("rspamd.connections"), Some(3.0));
    let latency = value("rspamd.latency_ms").unwrap();
    assert!((latency - 43.26057434082031).abs() < 1e-9, "{latency}");
    let no_action = find(&mapped.samples, "rspamd.actions")
        .into_iter()
        .find(|s| s.labels["action"] == "no action")
        .unwrap();
    assert_eq!(no_action.value, 3.0);
    assert_eq!(find(&mapped.samples, "rspamd.actions").len(), 6);
}

fn labelled<'a>(samples: &'a [Sample], name: &str, label: (&str, &str)) -> Vec<&'a Sample> {
    find(samples, name)
        .into_iter()
        .filter(|s| s.labels.get(label.0).map(String::as_str) == Some(label.1))
        .collect()
}

#[test]
fn zonemta_fills_the_zonemta_catalog() {
    let mapped = Mapper::new()
        .map(parse_text(ZONEMTA, 1_000).unwrap())
        .unwrap();
    let one = |name: &str, zone: &str| {
        let found = labelled(&mapped.samples, name, ("zone", zone));
        assert_eq!(found.len(), 1, "{name} {zone}: {found:?}");
        assert_eq!(found[0].labels.len(), 1, "only the zone: {found:?}");
        found[0].value
    };
    assert_eq!(one("zonemta.delivered", "default"), 120.0);
    assert_eq!(one("zonemta.delivered", "bulk"), 40.0);
    assert_eq!(one("zonemta.deferred", "default"), 9.0);
    assert_eq!(one("zonemta.bounced", "default"), 3.0);
    // What the catalog has no name for stays, with its labels.
    let unknown = find(&mapped.samples, "zonemta_delivery_status");
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].labels["status"], "unknown");
    assert_eq!(
        labelled(&mapped.samples, "zonemta_queue_size", ("type", "deferred"))[0].value,
        5.0
    );
    assert!(!find(&mapped.samples, "nodejs_heap_size_total_bytes").is_empty());
    let series_in = parse_text(ZONEMTA, 1_000).unwrap().len();
    assert_eq!(mapped.mapped_series + mapped.kept_series, series_in);
    assert_eq!(mapped.mapped_series, 4);
}

#[test]
fn mongodb_exporter_fills_the_mongodb_catalog() {
    let mapped = Mapper::new()
        .map(parse_text(MONGODB_EXPORTER, 1_000).unwrap())
        .unwrap();
    // Its own names and its --compatible-mode names give the same figures.
    let ops = labelled(&mapped.samples, "mongodb.ops", ("type", "query"));
    assert_eq!(ops.len(), 2);
    assert!(ops.iter().all(|s| s.value == 2118.0 && s.labels.len() == 1));
    assert_eq!(find(&mapped.samples, "mongodb.ops").len(), 12);
    let connections = find(&mapped.samples, "mongodb.connections");
    assert_eq!(connections.len(), 2);
    assert!(
        connections
            .iter()
            .all(|s| s.value == 22.0 && s.labels.is_empty())
    );
    // The lag of this member, not of the others it sees.
    let lag = find(&mapped.samples, "mongodb.replication.lag_seconds");
    assert_eq!(lag.len(), 1);
    assert_eq!(lag[0].value, 2.0);
    let other = find(
        &mapped.samples,
        "mongodb_mongod_replset_member_replication_lag",
    );
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].labels["name"], "mongo3:27017");
    let available = labelled(
        &mapped.samples,
        "mongodb_ss_connections",
        ("conn_type", "available"),
    );
    assert_eq!(available[0].value, 838847.0);
    assert_eq!(available[0].labels["rs_nm"], "rs0");
    assert!(!find(&mapped.samples, "mongodb_ss_opcountersrepl").is_empty());
}
