//! One alert evaluation cycle over a 50-node cluster.
//!
//!     cargo bench --bench alerts
//!
//! A fresh Postgres database; 50 nodes registered and each pushing a realistic batch
//! (the 40 system.* and zonemta.* series of `mailops dev seed`); 20 enabled rules (the
//! five defaults and 15 METRIC rules over various metrics, selectors and aggregates),
//! some of them firing. Times `evaluate_once`, the function the evaluator job calls, over
//! 200 cycles, and as the baseline the same cycles with only one rule enabled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use mailops::{
    alerts::{
        self, AlertAggregate, AlertComparison, AlertCondition, AlertSeverity, RuleDraft,
        RuleSelector, evaluate_once,
    },
    audit::{Actor, AuditContext},
    metrics,
    nodes::{Label, NodeRole},
    seed,
    state::AppState,
};
use sea_orm::ConnectionTrait as _;
use testkit::{Backend, TestApp};

const NODES: usize = 50;
const CYCLES: usize = 200;

struct Stats {
    p50: Duration,
    p95: Duration,
    mean: Duration,
    read_share: f64,
}

async fn cycles(state: &AppState, n: usize) -> Stats {
    let mut times = Vec::with_capacity(n);
    let mut read = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        let report = evaluate_once(state).await.expect("a cycle");
        times.push(started.elapsed());
        assert!(report.ran);
        read += report.read_time;
    }
    let total: Duration = times.iter().sum();
    times.sort();
    Stats {
        p50: common::percentile(&times, 0.5),
        p95: common::percentile(&times, 0.95),
        mean: total / n as u32,
        read_share: read.as_secs_f64() / total.as_secs_f64(),
    }
}

fn metric_rule(
    name: &str,
    metric: &str,
    aggregate: AlertAggregate,
    comparison: AlertComparison,
    threshold: f64,
    selector: RuleSelector,
    labels: Vec<Label>,
) -> RuleDraft {
    RuleDraft {
        name: name.into(),
        description: None,
        condition: AlertCondition::Metric,
        metric: Some(metric.into()),
        metric_labels: labels,
        aggregate: Some(aggregate),
        comparison,
        threshold,
        resolve_threshold: None,
        for_seconds: 60,
        window_seconds: None,
        scope: None,
        category: None,
        pause_ip: false,
        severity: AlertSeverity::Warning,
        enabled: true,
        selector,
    }
}

fn label(key: &str, value: &str) -> Label {
    Label {
        key: key.into(),
        value: value.into(),
    }
}

async fn set_defaults_enabled(state: &AppState, enabled: bool, except: &str) {
    state
        .db
        .execute_unprepared(&format!(
            "UPDATE alert_rules SET enabled = {enabled} WHERE name <> '{except}'"
        ))
        .await
        .unwrap();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

#[tokio::main]
async fn main() {
    let load_before = load_average();
    let mut server = TestApp::builder(Backend::Postgres)
        .with_config(|c| {
            testkit::for_benchmarks(c);
            // The job stays out of the way; the benchmark calls the evaluator itself.
            c.alerts.evaluation_interval = testkit::duration("1h");
        })
        .spawn()
        .await;
    let state = server.state.clone();

    let nodes = seed::register_nodes(&state, 0..NODES).await.unwrap();
    let hour = Utc::now() - chrono::Duration::minutes(10);
    let mut samples = 0;
    for (i, node) in nodes.iter().enumerate() {
        let batch = seed::hour_batch(i, &node.agent.hostname, hour, 4);
        samples += batch.samples.len();
        metrics::store_batch(
            &state,
            &node.agent,
            &batch,
            mailops::db::batch::Admission::Live,
        )
        .await
        .unwrap();
    }
    let node_ids: Vec<String> = nodes.iter().map(|n| n.agent.node_id.to_string()).collect();

    // Baseline: one METRIC rule (the default disk rule) enabled.
    set_defaults_enabled(&state, false, "Disk almost full").await;
    evaluate_once(&state).await.unwrap();
    let baseline = cycles(&state, CYCLES).await;

    // The five defaults and 15 METRIC rules.
    set_defaults_enabled(&state, true, "").await;
    let audit = AuditContext::with_actor(Actor::cli());
    let any = RuleSelector::default;
    let site = |s: &str| RuleSelector {
        labels: vec![label("site", s)],
        ..RuleSelector::default()
    };
    let mta = RuleSelector {
        roles: vec![NodeRole::Mta],
        ..RuleSelector::default()
    };
    let some_nodes = RuleSelector {
        node_ids: node_ids[..10].to_vec(),
        ..RuleSelector::default()
    };
    use AlertAggregate::*;
    use AlertComparison::*;
    let specs = vec![
        metric_rule(
            "cpu busy",
            "system.cpu.used_percent",
            Max,
            Gt,
            40.0,
            any(),
            vec![],
        ),
        metric_rule(
            "cpu fra1",
            "system.cpu.used_percent",
            Max,
            Gt,
            85.0,
            site("fra1"),
            vec![],
        ),
        metric_rule("load1", "system.load1", Avg, Gt, 3.0, mta.clone(), vec![]),
        metric_rule("load15", "system.load15", Max, Gte, 8.0, any(), vec![]),
        metric_rule(
            "memory",
            "system.memory.used_percent",
            Max,
            Gt,
            60.0,
            any(),
            vec![],
        ),
        metric_rule(
            "swap",
            "system.swap.used_percent",
            Max,
            Gt,
            50.0,
            any(),
            vec![],
        ),
        metric_rule(
            "root disk",
            "system.disk.used_percent",
            Max,
            Gt,
            40.0,
            any(),
            vec![label("mount", "/")],
        ),
        metric_rule(
            "spool disk",
            "system.disk.used_percent",
            Max,
            Gt,
            80.0,
            some_nodes.clone(),
            vec![label("mount", "/var/spool/zonemta")],
        ),
        metric_rule(
            "connections",
            "system.connections.open",
            Max,
            Gt,
            900.0,
            mta.clone(),
            vec![],
        ),
        metric_rule(
            "active queue",
            "zonemta.queue.active",
            Sum,
            Gt,
            200.0,
            any(),
            vec![],
        ),
        metric_rule(
            "deferred ams1",
            "zonemta.queue.deferred",
            Sum,
            Gt,
            500.0,
            site("ams1"),
            vec![],
        ),
        metric_rule(
            "deferred per zone",
            "zonemta.queue.deferred",
            Max,
            Gt,
            250.0,
            any(),
            vec![],
        ),
        metric_rule(
            "idle queue",
            "zonemta.queue.active",
            Min,
            Lt,
            1.0,
            some_nodes,
            vec![],
        ),
        metric_rule(
            "cpu low",
            "system.cpu.used_percent",
            Min,
            Lt,
            5.0,
            site("nyc1"),
            vec![],
        ),
        metric_rule(
            "memory bytes",
            "system.memory.used_bytes",
            Avg,
            Gt,
            60.0e9,
            any(),
            vec![],
        ),
    ];
    for spec in specs {
        alerts::create_rule(&state.db, &audit, spec).await.unwrap();
    }
    // The first cycle raises what breaches; later ones only look (PENDING alerts need 60 s).
    let first = Instant::now();
    evaluate_once(&state).await.unwrap();
    let raising = first.elapsed();
    let full = cycles(&state, CYCLES).await;
    let open: i64 = state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            state.db.get_database_backend(),
            "SELECT COUNT(*) FROM alerts WHERE state <> 'RESOLVED'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    // Make the open ones fire: the next cycle moves every PENDING alert to FIRING.
    state
        .db
        .execute_unprepared(
            "UPDATE alerts SET pending_since = pending_since - INTERVAL '2 minutes'",
        )
        .await
        .unwrap();
    let firing_cycle = Instant::now();
    let report = evaluate_once(&state).await.unwrap();
    let firing_time = firing_cycle.elapsed();
    let firing = cycles(&state, CYCLES).await;

    let ratio = |s: &Stats| s.p50.as_secs_f64() / baseline.p50.as_secs_f64();
    let row = |what: &str, s: &Stats, note: String| {
        format!(
            "| {what} | {} | {} | {} | {:.0}% | {:.2}× | {note} |\n",
            common::ms(s.p50),
            common::ms(s.p95),
            common::ms(s.mean),
            100.0 * s.read_share,
            ratio(s)
        )
    };
    let mut table = String::from(
        "| cycles | p50 (ms) | p95 (ms) | mean (ms) | reading share | p50 ÷ baseline p50 | notes |\n|---|---|---|---|---|---|---|\n",
    );
    table.push_str(&row(
        "baseline: 1 enabled rule (default disk rule), no alerts",
        &baseline,
        String::new(),
    ));
    table.push_str(&row(
        "20 enabled rules, alerts PENDING, nothing changes",
        &full,
        format!(
            "{open} open alerts; the cycle that raised them took {} ms",
            common::ms(raising)
        ),
    ));
    table.push_str(&row(
        "20 enabled rules, alerts FIRING, nothing changes",
        &firing,
        format!(
            "the cycle that fired {} took {} ms",
            report.fired,
            common::ms(firing_time)
        ),
    ));
    print!("{table}");
    common::write_section(
        "alerts",
        "cargo bench --bench alerts",
        &format!(
            "Machine: {}; 1-minute load average {load_before} before the run and {} after it (2 cores: above 2, other work competed for the CPU). Postgres; {NODES} nodes, each having pushed one batch of the seed's series ({samples} samples: system.* and zonemta.*, 40 series a node); `evaluate_once` called directly, {CYCLES} cycles per row, one after another. Each cycle takes the evaluator's advisory lock and reads rules, nodes, latest readings of the named metrics, mail attempts per window, critical listings, open alerts and active silences (a fixed number of queries), then writes what changed in one transaction. Reading share: the part of the cycle spent on those reads.\n\n{table}",
            common::machine(),
            load_average()
        ),
    );
    server.stop().await;
}
