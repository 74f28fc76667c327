//! Prometheus remote write into mailops against `ingestMetrics` of the same samples, in
//! one run: 4 nodes each send 40 scrapes of node_exporter (its real output, recorded from
//! Debian's 1.5.0, about 1,070 series, each scrape a second apart), all nodes at once.
//! Remote write sends each scrape as Prometheus does (protobuf, snappy); the baseline
//! sends the same samples, already mapped to mailops's names, as `ingestMetrics` JSON. Both
//! store the same rows; the remote-write side also decompresses, decodes and maps.
//!
//!     cargo bench --bench remote_write
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use exporters::{Mapper, parse_text};
use mailops::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message as _;
use serde_json::json;

const NODE_EXPORTER: &str = include_str!("../exporters/testdata/node_exporter-1.5.0.prom");
const NODES: usize = 4;
const SCRAPES: usize = 40;

/// One scrape of node `n` at `at_ms`, as a compressed WriteRequest.
fn remote_write_body(at_ms: i64) -> Vec<u8> {
    let series = parse_text(NODE_EXPORTER, at_ms).unwrap();
    let request = WriteRequest {
        timeseries: series
            .into_iter()
            .map(|s| {
                let mut labels = vec![Label {
                    name: "__name__".into(),
                    value: s.name,
                }];
                labels.extend(
                    s.labels
                        .into_iter()
                        .map(|(name, value)| Label { name, value }),
                );
                TimeSeries {
                    labels,
                    samples: s
                        .samples
                        .into_iter()
                        .map(|(timestamp, value)| Sample { value, timestamp })
                        .collect(),
                }
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

/// The same scrape, mapped, as an `ingestMetrics` request; and how many samples it holds.
fn ingest_body(mapper: &mut Mapper, at_ms: i64, batch: &str) -> (Vec<u8>, usize) {
    let mapped = mapper
        .map(parse_text(NODE_EXPORTER, at_ms).unwrap())
        .unwrap();
    let samples: Vec<_> = mapped
        .samples
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "labels": s.labels.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
                "ts": chrono::DateTime::<chrono::Utc>::from_timestamp_millis(s.ts_ms).unwrap(),
                "value": s.value,
            })
        })
        .collect();
    let count = samples.len();
    let body = json!({
        "query": "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted duplicate } }",
        "variables": { "b": { "batchId": batch, "samples": samples } },
    });
    (serde_json::to_vec(&body).unwrap(), count)
}

async fn register(app: &testkit::TestApp, prefix: &str) -> Vec<String> {
    let enrollment = app.enrollment_key(None).await;
    let mut keys = Vec::new();
    for n in 0..NODES {
        let (_, key) = app
            .register_node(
                &enrollment,
                &format!("{prefix}{n}.example.com"),
                &[&format!(
                    "192.0.2.{}",
                    n + 1 + if prefix == "rw" { 0 } else { 100 }
                )],
            )
            .await;
        keys.push(key);
    }
    keys
}

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let app = common::ingest_server(16).await;
    let start = chrono::Utc::now().timestamp_millis() - (SCRAPES as i64 + 5) * 1000;

    // ingestMetrics of the mapped samples.
    let keys = register(&app, "gql").await;
    let mut samples_per_scrape = 0;
    let bodies: Vec<Vec<Vec<u8>>> = (0..NODES)
        .map(|n| {
            let mut mapper = Mapper::new();
            (0..SCRAPES)
                .map(|i| {
                    let (body, count) =
                        ingest_body(&mut mapper, start + i as i64 * 1000, &format!("b{n}-{i}"));
                    samples_per_scrape = samples_per_scrape.max(count);
                    body
                })
                .collect()
        })
        .collect();
    // Every batch is checked to be accepted whole; the first of each node has no CPU figure.
    let graphql_time = send_all(
        &app.url("/graphql"),
        &keys,
        bodies,
        GRAPHQL,
        |status, body| {
            let answer: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert!(status == 200 && answer["errors"].is_null(), "{answer}");
        },
    )
    .await;

    // Remote write of the same scrapes.
    let keys = register(&app, "rw").await;
    let bodies: Vec<Vec<Vec<u8>>> = (0..NODES)
        .map(|_| {
            (0..SCRAPES)
                .map(|i| remote_write_body(start + i as i64 * 1000))
                .collect()
        })
        .collect();
    let compressed: usize = bodies[0].iter().map(Vec::len).sum::<usize>() / SCRAPES;
    let remote_time = send_all(
        &app.url("/api/v1/write"),
        &keys,
        bodies,
        REMOTE_WRITE,
        |status, body| {
            assert_eq!(status, 204, "{}", String::from_utf8_lossy(body));
        },
    )
    .await;

    let total = (NODES * SCRAPES * samples_per_scrape) as f64;
    let rate = |d: Duration| total / d.as_secs_f64();
    let body = format!(
        "Machine: {}. Release build, Postgres, {NODES} nodes × {SCRAPES} scrapes of node_exporter 1.5.0 \
         ({samples_per_scrape} samples each after mapping; {compressed} bytes per remote-write body), \
         all nodes at once, load generator in the same process. Load average at the end: {}.\n\n\
         | path | samples/s | ratio |\n|---|---|---|\n\
         | `POST /api/v1/write` (snappy protobuf, decoded and mapped by mailops) | {:.0} | {:.0}% of `ingestMetrics` |\n\
         | `ingestMetrics` of the same samples, mapped beforehand (JSON) | {:.0} | |\n",
        common::machine(),
        common::load_average(),
        rate(remote_time),
        rate(remote_time) / rate(graphql_time) * 100.0,
        rate(graphql_time),
    );
    print!("{body}");
    common::write_section("remote_write", "cargo bench --bench remote_write", &body);
}

const REMOTE_WRITE: &[(&str, &str)] = &[
    ("content-encoding", "snappy"),
    ("content-type", "application/x-protobuf"),
];
const GRAPHQL: &[(&str, &str)] = &[("content-type", "application/json")];

/// Posts every node's bodies in order, all nodes at once; `check` sees each answer.
async fn send_all(
    url: &str,
    keys: &[String],
    bodies: Vec<Vec<Vec<u8>>>,
    headers: &'static [(&'static str, &'static str)],
    check: fn(u16, &[u8]),
) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = keys
        .iter()
        .zip(bodies)
        .map(|(key, bodies)| {
            let (client, url, auth) = (client.clone(), url.to_string(), format!("ApiKey {key}"));
            tokio::spawn(async move {
                for body in bodies {
                    let mut request = client.post(&url).header("authorization", &auth).body(body);
                    for (name, value) in headers {
                        request = request.header(*name, *value);
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    check(status, &response.bytes().await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}
