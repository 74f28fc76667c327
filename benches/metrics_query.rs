//! Range queries over 30 days of 15-second data, on Postgres.
//!
//!     cargo bench --bench metrics_query
//!
//! Seeds 15 nodes × 40 series × 30 days through `mailops dev seed`'s code into the
//! database `mailops_bench_metrics` (kept between runs; a later run adds only the hours
//! since), then asks `metrics` for each preset range, one request at a time over loopback
//! HTTP, and reports p50 and p95 for two dashboard panels: one node's 40 series, and
//! CPU across all 15 nodes. The 30-day range at an explicit 30-minute step (read from the
//! 1-minute tier) is shown for comparison. Then the same panels as a dashboard asks for
//! them: `maxPoints` (the panel's width, here 300) choosing the step, and `values`
//! instead of `points`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use mailops::seed::SeedOptions;
use serde_json::json;
use testkit::{Backend, TestApp};

const DATABASE: &str = "mailops_bench_metrics";
const NODES: usize = 15;
const DAYS: u32 = 30;
const RUNS: usize = 60;
const RANGES: [&str; 5] = ["H1", "H6", "H24", "D7", "D30"];

/// Points a dashboard panel asks for: about its width in pixels.
const PANEL_POINTS: i64 = 300;

/// Every series of a seeded node, by name (labels tell the zones and mounts apart).
const NODE_NAMES: [&str; 20] = [
    "system.cpu.used_percent",
    "system.load1",
    "system.load5",
    "system.load15",
    "system.memory.used_percent",
    "system.memory.used_bytes",
    "system.swap.used_percent",
    "system.disk.used_percent",
    "system.disk.used_bytes",
    "system.network.rx_bytes",
    "system.network.tx_bytes",
    "system.connections.open",
    "zonemta.queue.active",
    "zonemta.queue.deferred",
    "zonemta.delivered",
    "zonemta.deferred",
    "zonemta.bounced",
    "zonemta.rejected",
    "rspamd.scanned",
    "rspamd.latency_ms",
];

struct Panel {
    name: &'static str,
    node_ids: Option<Vec<String>>,
    names: Vec<&'static str>,
}

struct Measured {
    resolution: String,
    step: i64,
    series: usize,
    points: usize,
    p50: Duration,
    p95: Duration,
}

async fn measure(
    client: &reqwest::Client,
    graphql: &str,
    token: &str,
    panel: &Panel,
    range: &str,
    step: Option<i64>,
    max_points: Option<i64>,
) -> Measured {
    // As a dashboard asks: the panel's width in points, and the compact form.
    let form = if max_points.is_some() {
        "values"
    } else {
        "points { ts value }"
    };
    let query = format!(
        "query($nodes: [ID!], $names: [String!]!, $range: TimeRange, $step: Int, $max: Int) {{
        metrics(nodeIds: $nodes, names: $names, range: $range, step: $step, maxPoints: $max) {{
            resolution step series {{ name {form} }} }} }}"
    );
    let body = serde_json::to_vec(&json!({ "query": query, "variables": {
        "nodes": panel.node_ids, "names": panel.names, "range": range, "step": step,
        "max": max_points } }))
    .unwrap();
    let send = || async {
        let started = Instant::now();
        let answer = testkit::json_answer(
            client
                .post(graphql)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        assert!(answer["errors"].is_null(), "{answer}");
        (started.elapsed(), answer)
    };
    let (_, answer) = send().await;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        times.push(send().await.0);
    }
    times.sort();
    let metrics = &answer["data"]["metrics"];
    let series = metrics["series"].as_array().unwrap();
    Measured {
        resolution: metrics["resolution"].as_str().unwrap().to_string(),
        step: metrics["step"].as_i64().unwrap(),
        series: series.len(),
        points: series
            .iter()
            .map(|s| {
                s["points"]
                    .as_array()
                    .or(s["values"].as_array())
                    .unwrap()
                    .len()
            })
            .max()
            .unwrap_or(0),
        p50: common::percentile(&times, 0.5),
        p95: common::percentile(&times, 0.95),
    }
}

#[tokio::main]
async fn main() {
    let mut server = TestApp::builder(Backend::Postgres)
        .on_database(DATABASE)
        .with_config(testkit::for_benchmarks)
        .spawn()
        .await;

    common::seed_twice(
        &server.state,
        SeedOptions {
            nodes: NODES,
            days: DAYS,
            concurrency: 2,
            mail_per_minute: 0,
        },
    )
    .await;

    let client = reqwest::Client::new();
    let graphql = format!("http://{}/graphql", server.addr);
    let token = server.admin_token().await;
    let nodes = server
        .gql(
            Some(&token),
            "{ nodes(first: 100, filter: { search: \"seed.mailops.test\" }) { nodes { id hostname } } }",
            json!({}),
        )
        .await;
    let first_node = nodes["data"]["nodes"]["nodes"][0]["id"]
        .as_str()
        .expect("a seeded node")
        .to_string();
    let panels = [
        Panel {
            name: "one node, all 40 series",
            node_ids: Some(vec![first_node]),
            names: NODE_NAMES.to_vec(),
        },
        Panel {
            name: "CPU of all 15 nodes",
            node_ids: None,
            names: vec!["system.cpu.used_percent"],
        },
    ];

    let mut table = String::from(
        "| panel | range | tier | step (s) | series × points | p50 (ms) | p95 (ms) | p95 ÷ 1-hour p95 |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut summary = Vec::new();
    for (panel, max_points) in panels
        .iter()
        .flat_map(|p| [(p, None), (p, Some(PANEL_POINTS))])
    {
        let mut hour_p95 = None;
        let mut rows: Vec<(String, Measured)> = Vec::new();
        for range in RANGES {
            let label = match max_points {
                Some(points) => format!("{range}, maxPoints {points}, `values`"),
                None => range.to_string(),
            };
            rows.push((
                label,
                measure(&client, &graphql, &token, panel, range, None, max_points).await,
            ));
        }
        if max_points.is_none() {
            rows.push((
                "D30, step 1800".to_string(),
                measure(&client, &graphql, &token, panel, "D30", Some(1800), None).await,
            ));
        }
        let mut worst = 0.0_f64;
        for (range, m) in rows {
            let base = *hour_p95.get_or_insert(m.p95);
            let ratio = m.p95.as_secs_f64() / base.as_secs_f64();
            let row = format!(
                "| {} | {range} | {} | {} | {} × {} | {} | {} | {ratio:.2}× |\n",
                panel.name,
                m.resolution,
                m.step,
                m.series,
                m.points,
                common::ms(m.p50),
                common::ms(m.p95)
            );
            print!("{row}");
            if !range.contains("step") {
                worst = worst.max(ratio);
            }
            table.push_str(&row);
        }
        summary.push(format!(
            "{}{}: the slowest preset range's p95 = {worst:.2}× the 1-hour p95 (goal ≤ 2×)",
            panel.name,
            if max_points.is_some() {
                ", as a dashboard asks"
            } else {
                ""
            }
        ));
    }
    print!("{table}");
    common::write_section(
        "metrics_query",
        "cargo bench --bench metrics_query",
        &format!(
            "Machine: {}. Postgres; {NODES} nodes × 40 series × {DAYS} days of 15 s samples, seeded through the ingestion service (raw samples for the last 48 h, 1-minute and 1-hour rollups for all of it). {RUNS} sequential requests per row over loopback HTTP/1.1, default aggregate (AVG), step chosen by mailops unless shown.\n\n{table}\n{}\n",
            common::machine(),
            summary.join("; ")
        ),
    );
    server.stop().await;
}
