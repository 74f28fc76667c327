//! `mailops dev seed`: a cluster of outbound mail nodes with weeks of plausible metrics,
//! for demos and benchmarks. Nodes are registered and samples stored through the same
//! services agents use, so the data has the shape real data has: raw samples for the raw
//! retention, 1-minute and 1-hour rollups beyond it.
//!
//! Every value is a pure function of (node, series, time), and each batch covers one whole
//! UTC hour with an id naming it, so seeding again stores only the hours not yet stored.

use std::{collections::HashSet, f64::consts::TAU, sync::Arc, time::Instant};

use chrono::{DateTime, Duration as ChronoDuration, DurationRound as _, Utc};
use futures_util::{StreamExt as _, stream};
use uuid::Uuid;

pub mod mail;

use crate::{
    audit::{Actor, AuditContext},
    auth::{AgentNode, EnrollmentCaller},
    db::batch::Admission,
    error::{AppError, AppResult},
    metrics::{self, MetricBatchInput, MetricSampleInput},
    nodes::{self, Label, NodeRole, RegisterNodeInput},
    state::AppState,
};

/// Seconds between two samples of a series, as agents report.
pub const INTERVAL_SECONDS: i64 = 15;
pub const STEPS_PER_HOUR: i64 = 3_600 / INTERVAL_SECONDS;
/// Series each seeded node reports.
pub const SERIES_PER_NODE: usize = 40;
const SITES: [&str; 3] = ["fra1", "ams1", "nyc1"];
const ZONES: [&str; 4] = ["default", "gmail", "outlook", "bulk"];
const MOUNTS: [(&str, f64); 2] = [("/", 80e9), ("/var/spool/zonemta", 400e9)];
const MEMORY_BYTES: f64 = 32.0 * 1024.0 * 1024.0 * 1024.0;
/// Agents restart (and their counters start over) about this often.
const RESTART_EVERY_SECONDS: i64 = 9 * 86_400;

#[derive(Clone, Copy, Debug)]
pub struct SeedOptions {
    pub nodes: usize,
    pub days: u32,
    /// Batches stored at once.
    pub concurrency: usize,
    /// Mail events each node sends per minute; 0 seeds no mail.
    pub mail_per_minute: u32,
}

/// How far seeding has come: hour batches of one phase (`metrics`, then `mail`) done out
/// of all, and the samples or events stored so far.
#[derive(Clone, Copy, Debug)]
pub struct SeedProgress {
    pub phase: &'static str,
    pub done: usize,
    pub total: usize,
    pub items: u64,
}

/// Where progress goes while seeding.
pub type OnProgress<'a> = &'a (dyn Fn(SeedProgress) + Sync);

#[derive(Debug, Default)]
pub struct SeedReport {
    pub nodes: usize,
    pub batches: usize,
    pub duplicate_batches: usize,
    pub samples: u64,
    pub mail: mail::MailSeedReport,
    pub seconds: f64,
}

pub fn hostname(index: usize) -> String {
    format!(
        "mta{:02}.{}.seed.mailops.test",
        index + 1,
        SITES[index % SITES.len()]
    )
}

/// Registers the nodes (again, if they exist: that only rotates their keys) and stores
/// every complete hour of the last `days` days for each of them.
pub async fn run(state: &AppState, options: SeedOptions) -> AppResult<SeedReport> {
    run_with_progress(state, options, &|_| {}).await
}

/// [`run`], telling `progress` of every batch stored.
pub async fn run_with_progress(
    state: &AppState,
    options: SeedOptions,
    progress: OnProgress<'_>,
) -> AppResult<SeedReport> {
    if options.nodes == 0 || options.nodes > 1_000 {
        return Err(AppError::bad_input("--nodes", "give 1 to 1000 nodes"));
    }
    let retention_days = state.config.metrics.hour_retention.as_secs() / 86_400;
    if options.days == 0 || u64::from(options.days) > retention_days {
        return Err(AppError::bad_input(
            "--days",
            format!("give 1 to {retention_days} days (the 1-hour tier's retention)"),
        ));
    }
    let started = Instant::now();
    let agents: Vec<Arc<AgentNode>> = register_nodes(state, 0..options.nodes)
        .await?
        .into_iter()
        .map(|node| Arc::new(node.agent))
        .collect();
    let senders: Vec<(Arc<AgentNode>, Vec<String>)> = agents
        .iter()
        .enumerate()
        .map(|(index, agent)| (agent.clone(), registration(index).ip_addresses))
        .collect();

    // Whole hours up to now, then the hour under way up to its latest step: its id names
    // its length, and its samples are still within raw retention, where stored samples
    // are skipped, so a later, longer version of that hour adds only what is new.
    let now = Utc::now();
    let this_hour = now
        .duration_trunc(ChronoDuration::hours(1))
        .map_err(|e| AppError::internal(format!("truncating now: {e}")))?;
    let steps_this_hour = (now - this_hour).num_seconds() / INTERVAL_SECONDS;
    let hours = i64::from(options.days) * 24;
    // Hours stored by an earlier run are skipped without being generated again.
    let nodes: Vec<Uuid> = agents.iter().map(|a| a.node_id).collect();
    let stored_before: HashSet<(Uuid, String)> =
        crate::db::batch::ids_with_prefix(&state.db, metrics::BATCHES, &nodes, "seed-")
            .await?
            .into_iter()
            .collect();
    let mut report = SeedReport {
        nodes: agents.len(),
        ..SeedReport::default()
    };
    let mut jobs = Vec::new();
    for (index, agent) in agents.iter().enumerate() {
        for h in 0..=hours {
            let hour = this_hour - ChronoDuration::hours(hours - h);
            let steps = if h == hours {
                steps_this_hour
            } else {
                STEPS_PER_HOUR
            };
            if steps == 0 {
                continue;
            }
            let id = batch_id(&agent.hostname, hour, steps);
            if stored_before.contains(&(agent.node_id, id)) {
                report.batches += 1;
                report.duplicate_batches += 1;
            } else {
                jobs.push((index, agent.clone(), hour, steps));
            }
        }
    }
    let total = report.batches + jobs.len();
    let mut stored = stream::iter(jobs)
        .map(|(index, agent, hour, steps)| async move {
            let batch = hour_batch(index, &agent.hostname, hour, steps);
            let samples = batch.samples.len() as u64;
            let outcome = metrics::store_batch(state, &agent, &batch, Admission::Backfill).await?;
            AppResult::Ok((outcome.duplicate, samples))
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some(result) = stored.next().await {
        let (duplicate, samples) = result?;
        report.batches += 1;
        if duplicate {
            report.duplicate_batches += 1;
        } else {
            report.samples += samples;
        }
        progress(SeedProgress {
            phase: "metrics",
            done: report.batches,
            total,
            items: report.samples,
        });
    }
    report.mail = mail::run(
        state,
        &senders,
        options.days,
        options.mail_per_minute,
        options.concurrency,
        progress,
    )
    .await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A registered node and the key its agent authenticates with.
pub struct SeededNode {
    pub agent: AgentNode,
    pub key: String,
}

/// Registers the outbound mail nodes numbered `indices` (again, if they exist: that
/// rotates their keys) with an enrollment key made for them.
pub async fn register_nodes(
    state: &AppState,
    indices: std::ops::Range<usize>,
) -> AppResult<Vec<SeededNode>> {
    let count = indices.len();
    let audit = AuditContext::with_actor(Actor::cli());
    let (enrollment, _) = nodes::create_enrollment_key(
        &state.db,
        &audit,
        "mailops dev seed",
        Some(Utc::now() + ChronoDuration::minutes(10)),
        Some(count as i32),
    )
    .await?;
    let caller = EnrollmentCaller {
        key_id: enrollment.id,
        name: enrollment.name,
        node_id: None,
    };
    let mut registered = Vec::with_capacity(count);
    for index in indices {
        let input = registration(index);
        // A node seeded before is enrolled again as an admin would: with a one-time key
        // for that node.
        let (node, key) = match nodes::find_by_hostname(&state.db, &input.hostname).await? {
            Some(existing) => {
                let (again, _) =
                    nodes::create_reenrollment_key(&state.db, &audit, existing.id).await?;
                let caller = EnrollmentCaller {
                    key_id: again.id,
                    name: again.name,
                    node_id: again.node_id,
                };
                nodes::register(state, &audit, &caller, &input).await?
            }
            None => nodes::register(state, &audit, &caller, &input).await?,
        };
        let key_id = nodes::parse_key(&key)
            .map(|k| k.id)
            .ok_or_else(|| AppError::internal("a new node key did not parse"))?;
        registered.push(SeededNode {
            agent: AgentNode {
                node_id: node.id,
                key_id,
                hostname: node.hostname,
            },
            key,
        });
    }
    Ok(registered)
}

fn registration(index: usize) -> RegisterNodeInput {
    let label = |key: &str, value: &str| Label {
        key: key.into(),
        value: value.into(),
    };
    RegisterNodeInput {
        hostname: hostname(index),
        roles: vec![NodeRole::Mta, NodeRole::Rspamd],
        ip_addresses: vec![
            format!("198.18.{}.{}", index / 250, index % 250 + 1),
            format!("2001:db8:{:x}::25", index + 1),
        ],
        agent_version: Some("seed".into()),
        node_key: None,
        labels: vec![
            label("site", SITES[index % SITES.len()]),
            label(
                "pool",
                if index % 4 == 3 {
                    "bulk"
                } else {
                    "transactional"
                },
            ),
        ],
    }
}

/// The first `steps` steps of one hour of every series of one node, as one batch.
pub fn hour_batch(
    node: usize,
    hostname: &str,
    hour: DateTime<Utc>,
    steps: i64,
) -> MetricBatchInput {
    let mut samples = Vec::with_capacity(steps as usize * SERIES_PER_NODE);
    let start = hour.timestamp();
    for step in 0..steps {
        let t = start + step * INTERVAL_SECONDS;
        let ts = DateTime::<Utc>::from_timestamp(t, 0).unwrap_or(hour);
        readings(node, t, |name, labels, value| {
            samples.push(MetricSampleInput {
                name: name.to_string(),
                labels: labels
                    .iter()
                    .map(|(key, value)| Label {
                        key: key.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                ts,
                value,
            });
        });
    }
    MetricBatchInput {
        batch_id: batch_id(hostname, hour, steps),
        samples,
    }
}

/// The id of a node's batch of `steps` steps from `hour`: a whole hour is named by its
/// start, the hour under way also by its length.
fn batch_id(hostname: &str, hour: DateTime<Utc>, steps: i64) -> String {
    let host = hostname.split('.').next().unwrap_or("node");
    let start = hour.timestamp();
    if steps == STEPS_PER_HOUR {
        format!("seed-{host}-{start}")
    } else {
        format!("seed-{host}-{start}-{steps}")
    }
}

/// The 40 readings of node `node` at epoch second `t`.
fn readings(node: usize, t: i64, mut emit: impl FnMut(&str, &[(&str, &str)], f64)) {
    let shape = Shape::new(node, t);
    let busy = shape.busy;
    let cpu = (8.0 + 55.0 * busy + 6.0 * shape.noise(1)).clamp(0.0, 100.0);
    emit("system.cpu.used_percent", &[], cpu);
    emit("system.load1", &[], cpu / 12.5 + shape.noise(2));
    emit("system.load5", &[], cpu / 12.5 + 0.5 * shape.noise(3));
    emit("system.load15", &[], cpu / 12.5 + 0.2 * shape.noise(4));
    let memory = (48.0 + 20.0 * busy + 2.0 * shape.noise(5)).clamp(0.0, 100.0);
    emit("system.memory.used_percent", &[], memory);
    emit(
        "system.memory.used_bytes",
        &[],
        (memory / 100.0 * MEMORY_BYTES).round(),
    );
    emit(
        "system.swap.used_percent",
        &[],
        (1.5 + 0.5 * shape.noise(6)).max(0.0),
    );
    for (i, (mount, size)) in MOUNTS.into_iter().enumerate() {
        // The root disk fills slowly over the weeks; the spool with the queue.
        let used = if i == 0 {
            35.0 + 10.0 * shape.age_fraction()
        } else {
            10.0 + 30.0 * busy + shape.noise(7 + i as u64)
        };
        emit("system.disk.used_percent", &[("mount", mount)], used);
        emit(
            "system.disk.used_bytes",
            &[("mount", mount)],
            (used / 100.0 * size).round(),
        );
    }
    emit(
        "system.network.rx_bytes",
        &[("interface", "eth0")],
        shape.counter(4.0e6, 0.0),
    );
    emit(
        "system.network.tx_bytes",
        &[("interface", "eth0")],
        shape.counter(12.0e6, 0.3),
    );
    emit(
        "system.connections.open",
        &[],
        (150.0 + 900.0 * busy + 40.0 * shape.noise(10)).round(),
    );
    for (i, zone) in ZONES.into_iter().enumerate() {
        let weight = [0.2, 0.4, 0.3, 0.1][i];
        let z = [("zone", zone)];
        let salt = 20 + 10 * i as u64;
        emit(
            "zonemta.queue.active",
            &z,
            (weight * 400.0 * busy + 10.0 * shape.noise(salt))
                .max(0.0)
                .round(),
        );
        emit(
            "zonemta.queue.deferred",
            &z,
            (weight * (300.0 + 500.0 * busy) + 30.0 * shape.noise(salt + 1))
                .max(0.0)
                .round(),
        );
        for (name, per_step, noise) in [
            ("zonemta.delivered", 60.0, 0.1),
            ("zonemta.deferred", 3.0, 0.4),
            ("zonemta.bounced", 1.2, 0.7),
            ("zonemta.rejected", 0.4, 0.9),
        ] {
            emit(name, &z, shape.counter(weight * per_step, noise).round());
        }
    }
    emit("rspamd.scanned", &[], shape.counter(70.0, 0.2).round());
    emit(
        "rspamd.latency_ms",
        &[],
        (25.0 + 60.0 * busy + 8.0 * shape.noise(60)).max(1.0),
    );
}

/// The daily rhythm of one node at one moment, and deterministic noise around it.
struct Shape {
    node: u64,
    t: i64,
    /// 0 at night to 1 at the afternoon peak.
    busy: f64,
}

impl Shape {
    fn new(node: usize, t: i64) -> Shape {
        let day_phase = (t.rem_euclid(86_400) as f64) / 86_400.0;
        // Peaks at 14:00 UTC, lowest at 02:00; each node a little offset.
        let busy = 0.5 + 0.5 * (TAU * (day_phase - 8.0 / 24.0) + node as f64 * 0.1).sin();
        Shape {
            node: node as u64,
            t,
            busy: busy.clamp(0.0, 1.0),
        }
    }

    /// Uniform in [-1, 1), a pure function of (node, salt, t).
    fn noise(&self, salt: u64) -> f64 {
        let mut x = self.node.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9)
            ^ (self.t as u64).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x ^= x >> 32;
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// How far through the restart cycle this moment is, 0 to 1.
    fn age_fraction(&self) -> f64 {
        self.since_restart() as f64 / RESTART_EVERY_SECONDS as f64
    }

    fn since_restart(&self) -> i64 {
        (self.t + self.node as i64 * 86_400).rem_euclid(RESTART_EVERY_SECONDS)
    }

    /// A counter growing at `per_second` on average, faster in busy hours, and starting
    /// over from zero when the agent restarts: the integral of
    /// `per_second * (1 + 0.8 sin(ωt + phase))` since the last restart.
    fn counter(&self, per_second: f64, phase: f64) -> f64 {
        let omega = TAU / 86_400.0;
        let elapsed = self.since_restart() as f64;
        let restarted = (self.t - self.since_restart()) as f64;
        let angle = |at: f64| omega * at + phase + self.node as f64 * 0.1;
        per_second * (elapsed + 0.8 / omega * (angle(restarted).cos() - angle(self.t as f64).cos()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_batch_holds_every_series_at_every_step_within_the_batch_limit() {
        let hour = DateTime::<Utc>::from_timestamp(1_700_000_000 / 3600 * 3600, 0).unwrap();
        let batch = hour_batch(3, &hostname(3), hour, STEPS_PER_HOUR);
        assert_eq!(batch.samples.len(), SERIES_PER_NODE * 240);
        assert!(batch.samples.len() <= metrics::MAX_SAMPLES);
        assert_eq!(batch.batch_id, format!("seed-mta04-{}", hour.timestamp()));
        let again = hour_batch(3, &hostname(3), hour, STEPS_PER_HOUR);
        assert_eq!(
            batch
                .samples
                .iter()
                .map(|s| s.value.to_bits())
                .collect::<Vec<_>>(),
            again
                .samples
                .iter()
                .map(|s| s.value.to_bits())
                .collect::<Vec<_>>(),
        );
        let partial = hour_batch(3, &hostname(3), hour, 10);
        assert_eq!(partial.samples.len(), SERIES_PER_NODE * 10);
        assert_ne!(partial.batch_id, batch.batch_id);
    }

    #[test]
    fn counters_only_grow_between_restarts() {
        let mut previous = None;
        let mut resets = 0;
        for t in (0..30 * 86_400).step_by(INTERVAL_SECONDS as usize) {
            let value = Shape::new(2, t).counter(10.0, 0.5);
            if previous.is_some_and(|p| value < p) {
                resets += 1;
            }
            previous = Some(value);
        }
        assert!((3..=4).contains(&resets), "{resets} resets in 30 days");
    }
}
