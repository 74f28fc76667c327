//! The table from exporter series to catalog names, and the derivations it names.

use std::collections::{BTreeMap, HashMap};

use crate::{Labels, Sample, Series, names};

/// Where a series comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exporter {
    /// Prometheus' node_exporter (Debian's `prometheus-node-exporter`).
    NodeExporter,
    /// Rspamd's own `/metrics` on its controller (Debian's `rspamd`).
    Rspamd,
    /// oliver006/redis_exporter (Debian's `prometheus-redis-exporter`).
    RedisExporter,
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
    pub action: Action,
}

const fn same(exporter: Exporter, from: &'static str, to: &'static str) -> Rule {
    Rule {
        exporter,
        from,
        action: Action::Same {
            to,
            labels: &[],
            scale: 1.0,
        },
    }
}

const fn input(from: &'static str, input: Input) -> Rule {
    Rule {
        exporter: Exporter::NodeExporter,
        from,
        action: Action::Input(input),
    }
}

use Exporter::{NodeExporter, RedisExporter, Rspamd};

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
    Rule {
        exporter: NodeExporter,
        from: "node_network_receive_bytes_total",
        action: Action::Same {
            to: "system.network.rx_bytes",
            labels: &[("device", "interface")],
            scale: 1.0,
        },
    },
    Rule {
        exporter: NodeExporter,
        from: "node_network_transmit_bytes_total",
        action: Action::Same {
            to: "system.network.tx_bytes",
            labels: &[("device", "interface")],
            scale: 1.0,
        },
    },
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
    Rule {
        exporter: Rspamd,
        from: "rspamd_actions_total",
        action: Action::Same {
            to: "rspamd.actions",
            labels: &[("type", "action")],
            scale: 1.0,
        },
    },
    Rule {
        exporter: Rspamd,
        from: "rspamd_scan_time_average",
        action: Action::Same {
            to: "rspamd.latency_ms",
            labels: &[],
            scale: 1000.0,
        },
    },
];

fn rule_for(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.from == name)
}

/// A series mailops cannot take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapError(pub String);

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MapError {}

/// What one request or scrape became.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mapped {
    pub samples: Vec<Sample>,
    /// Series the table mapped or fed into a derivation.
    pub mapped_series: usize,
    /// Series kept under their own (normalised) names.
    pub kept_series: usize,
    /// Values that are not numbers (NaN, ±Inf, and Prometheus' staleness markers, which
    /// say a series ended): not samples, so not stored, but counted here.
    pub skipped_values: usize,
}

/// CPU time of all CPUs at one scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CpuTotals {
    total: f64,
    idle: f64,
    series: usize,
}

/// The derivations' memory from one request or scrape to the next, for one node.
#[derive(Clone, Debug, Default)]
pub struct Mapper {
    last_cpu: Option<CpuTotals>,
    mem_total: Option<f64>,
    swap_total: Option<f64>,
}

/// Inputs of the derivations within one request, by timestamp.
#[derive(Default)]
struct Inputs {
    cpu: BTreeMap<i64, CpuTotals>,
    mem_total: BTreeMap<i64, f64>,
    mem_available: BTreeMap<i64, f64>,
    swap_total: BTreeMap<i64, f64>,
    swap_free: BTreeMap<i64, f64>,
    /// (ts, mountpoint) → (size, avail)
    filesystems: BTreeMap<(i64, String), (Option<f64>, Option<f64>)>,
}

impl Mapper {
    pub fn new() -> Mapper {
        Mapper::default()
    }

    /// Maps the series of one request or scrape.
    pub fn map(&mut self, series: Vec<Series>) -> Result<Mapped, MapError> {
        let mut mapped = Mapped::default();
        let mut inputs = Inputs::default();
        let mut sums: BTreeMap<(&'static str, i64), f64> = BTreeMap::new();
        for series in series {
            if series.name.is_empty() {
                return Err(MapError("a series has no __name__ label".into()));
            }
            let finite: Vec<(i64, f64)> = series
                .samples
                .iter()
                .copied()
                .filter(|(_, value)| value.is_finite())
                .collect();
            mapped.skipped_values += series.samples.len() - finite.len();
            let Some(rule) = rule_for(&series.name) else {
                mapped.kept_series += 1;
                let name = names::metric_name(&series.name);
                let labels: Labels = series
                    .labels
                    .iter()
                    .map(|(k, v)| (names::label_name(k), v.clone()))
                    .collect();
                mapped
                    .samples
                    .extend(finite.into_iter().map(|(ts_ms, value)| Sample {
                        name: name.clone(),
                        labels: labels.clone(),
                        ts_ms,
                        value,
                    }));
                continue;
            };
            mapped.mapped_series += 1;
            match rule.action {
                Action::Same { to, labels, scale } => {
                    let mut kept = Labels::new();
                    for (from, to) in labels {
                        let value = series
                            .labels
                            .get(*from)
                            .ok_or_else(|| MapError(format!("{}: no {from} label", series.name)))?;
                        kept.insert((*to).to_string(), value.clone());
                    }
                    mapped
                        .samples
                        .extend(finite.into_iter().map(|(ts_ms, value)| Sample {
                            name: to.to_string(),
                            labels: kept.clone(),
                            ts_ms,
                            value: value * scale,
                        }));
                }
                Action::Sum { to } => {
                    for (ts, value) in finite {
                        *sums.entry((to, ts)).or_default() += value;
                    }
                }
                Action::Input(input) => inputs.add(input, &series, &finite),
            }
        }
        for ((name, ts_ms), value) in sums {
            mapped.samples.push(Sample {
                name: name.into(),
                labels: Labels::new(),
                ts_ms,
                value,
            });
        }
        self.derive(inputs, &mut mapped.samples);
        Ok(mapped)
    }

    fn derive(&mut self, inputs: Inputs, out: &mut Vec<Sample>) {
        let plain = |name: &str, ts_ms: i64, value: f64| Sample {
            name: name.into(),
            labels: Labels::new(),
            ts_ms,
            value,
        };
        for (ts, now) in inputs.cpu {
            if let Some(before) = self.last_cpu
                && before.series == now.series
                && now.total > before.total
                && now.idle >= before.idle
            {
                let busy = 1.0 - (now.idle - before.idle) / (now.total - before.total);
                out.push(plain(
                    "system.cpu.used_percent",
                    ts,
                    (busy * 100.0).clamp(0.0, 100.0),
                ));
            }
            // A restart (counters lower) or a changed set of CPUs starts over from here.
            self.last_cpu = Some(now);
        }
        if let Some((_, total)) = inputs.mem_total.iter().next_back() {
            self.mem_total = Some(*total);
        }
        for (ts, available) in inputs.mem_available {
            let total = inputs.mem_total.get(&ts).copied().or(self.mem_total);
            if let Some(total) = total.filter(|t| *t > 0.0) {
                let used = (total - available).max(0.0);
                out.push(plain("system.memory.used_bytes", ts, used));
                out.push(plain(
                    "system.memory.used_percent",
                    ts,
                    (used / total * 100.0).clamp(0.0, 100.0),
                ));
            }
        }
        if let Some((_, total)) = inputs.swap_total.iter().next_back() {
            self.swap_total = Some(*total);
        }
        for (ts, free) in inputs.swap_free {
            if let Some(total) = inputs.swap_total.get(&ts).copied().or(self.swap_total) {
                let percent = if total > 0.0 {
                    ((total - free) / total * 100.0).clamp(0.0, 100.0)
                } else {
                    0.0
                };
                out.push(plain("system.swap.used_percent", ts, percent));
            }
        }
        for ((ts, mount), (size, avail)) in inputs.filesystems {
            let (Some(size), Some(avail)) = (size, avail) else {
                continue;
            };
            if size <= 0.0 {
                continue;
            }
            let used = (size - avail).max(0.0);
            let labels: Labels = [("mount".to_string(), mount)].into();
            out.push(Sample {
                name: "system.disk.used_bytes".into(),
                labels: labels.clone(),
                ts_ms: ts,
                value: used,
            });
            out.push(Sample {
                name: "system.disk.used_percent".into(),
                labels,
                ts_ms: ts,
                value: (used / size * 100.0).clamp(0.0, 100.0),
            });
        }
    }
}

impl Inputs {
    fn add(&mut self, input: Input, series: &Series, samples: &[(i64, f64)]) {
        for &(ts, value) in samples {
            match input {
                Input::CpuSeconds => {
                    let totals = self.cpu.entry(ts).or_default();
                    totals.total += value;
                    totals.series += 1;
                    if series.labels.get("mode").map(String::as_str) == Some("idle") {
                        totals.idle += value;
                    }
                }
                Input::MemTotal => {
                    self.mem_total.insert(ts, value);
                }
                Input::MemAvailable => {
                    self.mem_available.insert(ts, value);
                }
                Input::SwapTotal => {
                    self.swap_total.insert(ts, value);
                }
                Input::SwapFree => {
                    self.swap_free.insert(ts, value);
                }
                Input::FsSize | Input::FsAvail => {
                    let Some(mount) = series.labels.get("mountpoint") else {
                        continue;
                    };
                    let entry = self.filesystems.entry((ts, mount.clone())).or_default();
                    if input == Input::FsSize {
                        entry.0 = Some(value);
                    } else {
                        entry.1 = Some(value);
                    }
                }
            }
        }
    }
}

/// Mappers by key (a node), for a process that receives from many.
#[derive(Default)]
pub struct Mappers<K> {
    by_key: HashMap<K, Mapper>,
}

impl<K: std::hash::Hash + Eq> Mappers<K> {
    pub fn get(&mut self, key: K) -> &mut Mapper {
        self.by_key.entry(key).or_default()
    }
}
