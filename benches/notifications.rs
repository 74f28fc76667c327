//! Notifications under a burst: 1,000 alerts fire in one evaluation (1,000 nodes whose
//! disks are full, then a rule that fires at once), and a webhook on loopback receives
//! what mailops sends. Printed: how many notifications the burst became under two
//! policies (grouped by rule and node, Alertmanager's default; grouped by rule), and the
//! time from each alert's FIRING (its `startsAt`) to the webhook receiving it.
//!
//!     cargo bench --bench notifications
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use testkit::receivers::HttpReceiver;
use testkit::{Backend, TestApp};

const NODES: usize = 1_000;

struct Run {
    notifications: usize,
    alerts_told: usize,
    truncated: u64,
    latencies: Vec<Duration>,
    last_delivery: Duration,
}

async fn burst(group_by: &[&str]) -> Run {
    let receiver = HttpReceiver::start().await;
    let mut server = TestApp::builder(Backend::Postgres)
        .with_config(|c| {
            testkit::for_benchmarks(c);
            c.alerts.evaluation_interval = Duration::from_secs(1);
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
    let created = Instant::now();
    let deadline = created + Duration::from_secs(300);
    let delivered = loop {
        let delivered = receiver.delivered();
        let told: usize = delivered
            .iter()
            .map(|r| {
                let m = r.json();
                m["alerts"].as_array().unwrap().len()
                    + m["truncatedAlerts"].as_u64().unwrap() as usize
            })
            .sum();
        if told >= NODES {
            break delivered;
        }
        assert!(Instant::now() < deadline, "{told} alerts told after 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let last_delivery = created.elapsed();
    let mut latencies = Vec::new();
    let mut truncated = 0;
    for request in &delivered {
        let message = request.json();
        truncated += message["truncatedAlerts"].as_u64().unwrap();
        for alert in message["alerts"].as_array().unwrap() {
            let fired: SystemTime =
                chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap())
                    .unwrap()
                    .to_utc()
                    .into();
            latencies.push(
                request
                    .received_at
                    .duration_since(fired)
                    .unwrap_or_default(),
            );
        }
    }
    latencies.sort_unstable();
    server.stop().await;
    Run {
        notifications: delivered.len(),
        alerts_told: latencies.len(),
        truncated,
        latencies,
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
        let p50 = common::percentile(&run.latencies, 0.5);
        let p99 = common::percentile(&run.latencies, 0.99);
        println!(
            "group by {name}: {} notifications for {NODES} alerts ({} listed, {} counted in truncatedAlerts); FIRING → webhook p50 {} ms, p99 {} ms; last delivery {:.1} s after the rule was made",
            run.notifications,
            run.alerts_told,
            run.truncated,
            common::ms(p50),
            common::ms(p99),
            run.last_delivery.as_secs_f64()
        );
        rows.push_str(&format!(
            "| {name} | {NODES} | {} | {} + {} | {} | {} | {:.1} |\n",
            run.notifications,
            run.alerts_told,
            run.truncated,
            common::ms(p50),
            common::ms(p99),
            run.last_delivery.as_secs_f64()
        ));
    }
    common::write_section(
        "notifications",
        "cargo bench --bench notifications",
        &format!(
            "Machine: {}; 1-minute load average {load_before} before the run. Postgres, pool of 16; evaluation every second, the notifier woken by an evaluation that fired something (else every second); `groupWait` 0; one webhook contact point on loopback answering 200 at once. {NODES} nodes report a full disk, then a rule that fires at once is made, so one evaluation fires all {NODES} alerts. Latency: each alert's `startsAt` (when it fired) to the webhook receiving the message that lists it.\n\n| grouped by | alerts firing | notifications | alerts listed + truncated | FIRING → webhook p50 (ms) | p99 (ms) | last delivery after the rule was made (s) |\n|---|---|---|---|---|---|---|\n{rows}\n",
            common::machine()
        ),
    );
}
