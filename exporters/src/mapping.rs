//! The table from exporter series to catalog names, and the derivations it names.

use std::collections::{BTreeMap, HashMap};

use crate::{Labels, Sample, Series, names};

use crate::rules::{Action, Input, RULES, Rule};

fn rule_for(series: &Series) -> Option<&'static Rule> {
    RULES.iter().find(|rule| {
        rule.from == series.name
            && rule.when.is_none_or(|(label, value)| {
                series.labels.get(label).map(String::as_str) == Some(value)
            })
    })
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
            let Some(rule) = rule_for(&series) else {
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
