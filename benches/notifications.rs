//! Notifications under a burst: 1,000 alerts fire in one evaluation (1,000 nodes whose
//! disks are full, then a rule that fires at once), and a webhook on loopback receives
//! what mailops sends. Printed: how many notifications the burst became under two
//! policies (grouped by rule and node, Alertmanager's default; grouped by rule), the
//! evaluation's own time, and the time from each alert's FIRING (its `startsAt`) and from
//! the evaluation's commit to the webhook receiving it.
//!
//!     cargo bench --bench notifications
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use testkit::receivers::{HttpReceiver, Received};
use testkit::{Backend, TestApp};

const NODES: usize = 1_000;

struct Run {
    notifications: usize,
    alerts_listed: usize,
    truncated: u64,
    /// From each alert's `startsAt`.
    after_firing: Vec<Duration>,
    /// From the evaluation's commit.
    after_commit: Vec<Duration>,
    evaluation: Duration,
    last_delivery: Duration,
}

/// Alerts a message tells of: those it lists and those it counts as truncated.
fn told(request: &Received) -> usize {
    let message = request.json();
    message["alerts"].as_array().unwrap().len()
        + message["truncatedAlerts"].as_u64().unwrap() as usize
}

/// Time from `earlier` to `later`, nothing if the clock says otherwise.
fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

async fn burst(group_by: &[&str]) -> Run {
    let receiver = HttpReceiver::start().await;
    let mut server = TestApp::builder(Backend::Postgres)
        .with_config(|c| {
            testkit::for_benchmarks(c);
            // The benchmark runs the evaluation itself, to time it apart.
            c.alerts.evaluation_interval = Duration::from_secs(3600);
        })
        .spawn()
        .await;
    let admin = server.admin_token().await;
    let point = server
        .gql(
            Some(&admin),
            "mutation($u: String!) { createContactPoint(input: { name: \"bench\", kind: WEBHOOK, url: $u }) { id } }",
            json!({ "u": receiver.url("/hook") }),
        )
        .await;
    let point = point["data"]["createContactPoint"]["id"].clone();
    let policy = server
        .gql(
            Some(&admin),
            "mutation($i: NotificationPolicyInput!) { setNotificationPolicy(input: $i) { groupBy } }",
            json!({ "i": { "contactPointIds": [point], "groupBy": group_by, "groupWaitSeconds": 0 } }),
        )
        .await;
    assert!(policy["errors"].is_null(), "{policy}");

    let nodes = mailops::seed::register_nodes(&server.state, 0..NODES)
        .await
        .unwrap();
    let keys: Vec<String> = nodes.into_iter().map(|n| n.key).collect();
    let now = chrono::Utc::now().to_rfc3339();
    let bodies: Vec<Vec<Vec<u8>>> = keys
        .iter()
        .map(|_| {
            vec![json!({
                "query": "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }",
                "variables": { "b": { "batchId": uuid::Uuid::now_v7().to_string(), "samples": [
                    { "name": "system.disk.used_percent", "labels": [{ "key": "mount", "value": "/" }],
                      "ts": now, "value": 97.0 }] } }
            })
            .to_string()
            .into_bytes()]
        })
        .collect();
    let graphql = format!("http://{}/graphql", server.addr);
    common::send_agent_batches(&graphql, &keys, bodies, "ingestMetrics", 1).await;

    // Every disk is full before the rule exists: its first evaluation fires them all.
    let rule = server
        .gql(
            Some(&admin),
            "mutation { createAlertRule(input: { name: \"Disk full\", condition: METRIC, metric: \"system.disk.used_percent\", threshold: 90, severity: CRITICAL }) { id } }",
            json!({}),
        )
        .await;
    assert!(rule["errors"].is_null(), "{rule}");
    let started = Instant::now();
    let report = mailops::alerts::evaluate_once(&server.state).await.unwrap();
    assert_eq!(report.fired, NODES, "{report:?}");
    // What the evaluation job does after a cycle that fired something.
    server.state.jobs.wake("notifications");
    let evaluation = started.elapsed();
    let committed = Instant::now();
    let committed_at = SystemTime::now();

    let deadline = committed + Duration::from_secs(300);
    let delivered = loop {
        let delivered = receiver.delivered();
        let told: usize = delivered.iter().map(told).sum();
        if told >= NODES {
            break delivered;
        }
        assert!(Instant::now() < deadline, "{told} alerts told after 300 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let last_delivery = committed.elapsed();
    let (mut after_firing, mut after_commit, mut truncated) = (Vec::new(), Vec::new(), 0);
    for request in &delivered {
        let message = request.json();
        truncated += message["truncatedAlerts"].as_u64().unwrap();
        for alert in message["alerts"].as_array().unwrap() {
            let starts_at = alert["startsAt"].as_str().unwrap();
            let fired: SystemTime = chrono::DateTime::parse_from_rfc3339(starts_at)
                .unwrap()
                .to_utc()
                .into();
            after_firing.push(since(request.received_at, fired));
            after_commit.push(since(request.received_at, committed_at));
        }
    }
    after_firing.sort_unstable();
    after_commit.sort_unstable();
    server.stop().await;
    Run {
        notifications: delivered.len(),
        alerts_listed: after_firing.len(),
        truncated,
        after_firing,
        after_commit,
        evaluation,
        last_delivery,
    }
}

#[tokio::main]
async fn main() {
    let load_before = common::load_average();
    let mut rows = String::new();
    for (name, group_by) in [
        (
            "`alertname`, `node` (the default)",
            &["alertname", "node"][..],
        ),
        ("`alertname`", &["alertname"][..]),
    ] {
        let run = burst(group_by).await;
        let percentiles = |sorted: &[Duration]| {
            format!(
                "{} / {}",
                common::ms(common::percentile(sorted, 0.5)),
                common::ms(common::percentile(sorted, 0.99))
            )
        };
        let row = format!(
            "| {name} | {NODES} | {} | {} + {} | {} | {} | {} | {} |",
            run.notifications,
            run.alerts_listed,
            run.truncated,
            common::ms(run.evaluation),
            percentiles(&run.after_firing),
            percentiles(&run.after_commit),
            common::ms(run.last_delivery)
        );
        println!("{row}");
        rows.push_str(&row);
        rows.push('\n');
    }
    common::write_section(
        "notifications",
        "cargo bench --bench notifications",
        &format!(
            "Machine: {}; 1-minute load average {load_before} before the run. Postgres, pool of 16; `groupWait` 0; one webhook contact point on loopback answering 200 at once. {NODES} nodes report a full disk, then a rule that fires at once is made and one evaluation (run by the benchmark, then waking the notifier as the evaluation job does) fires all {NODES} alerts. FIRING → webhook: from each alert's `startsAt` (the start of the evaluation that fired it) to the webhook receiving the message that lists it; commit → webhook: from the end of that evaluation, the notifier's part.\n\n| grouped by | alerts firing | notifications | alerts listed + truncated | evaluation (ms) | FIRING → webhook p50 / p99 (ms) | commit → webhook p50 / p99 (ms) | last delivery after the commit (ms) |\n|---|---|---|---|---|---|---|---|\n{rows}\n",
            common::machine()
        ),
    );
}
