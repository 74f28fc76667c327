//! Prometheus remote write into mailops: the real Prometheus (Debian's 2.42) scraping the
//! real node_exporter and writing into `/api/v1/write` with a node key, and every way a
//! request can be refused.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use mailops::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message as _;
use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::json;

use testkit::on_both_backends;
use testkit::{TestApp, servers::free_port};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node_exporter(port: u16) -> Killed {
    Killed(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's prometheus-node-exporter is installed (.ci/run installs it)"),
    )
}

fn prometheus(dir: &Path, scrape_port: u16, write_url: &str, key: &str) -> Killed {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{scrape_port}']
remote_write:
  - url: {write_url}
    authorization:
      type: ApiKey
      credentials: {key}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"
        ),
    )
    .unwrap();
    Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's prometheus is installed (.ci/run installs it)"),
    )
}

const LATEST: &str = "query($id: ID!) { node(id: $id) { latest { system { load1 cpuPercent memoryUsedPercent diskUsedPercent } } } }";
const KEPT: &str =
    "query($id: ID!) { metrics(names: [\"node_memory_memfree_bytes\"], nodeIds: [$id], range: H1) {
    series { name labels { key value } points { value } } } }";

on_both_backends! {
    async fn prometheus_remote_writes_node_exporter_into_mailops(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (node_id, key) = app.register_node(&enrollment, "prom.example.com", &["192.0.2.40"]).await;
        let (other_id, _) = app.register_node(&enrollment, "other.example.com", &["192.0.2.41"]).await;
        let exporter_port = free_port();
        let _exporter = node_exporter(exporter_port);
        let dir = tempfile::tempdir().unwrap();
        let _prometheus = prometheus(dir.path(), exporter_port, &app.url("/api/v1/write"), &key);

        // Mapped names, derived figures (CPU needs two scrapes) and kept series arrive.
        let deadline = Instant::now() + Duration::from_secs(60);
        let latest = loop {
            let body = app.gql(Some(&admin), LATEST, json!({ "id": node_id })).await;
            let system = body["data"]["node"]["latest"]["system"].clone();
            if system["load1"].is_number() && system["cpuPercent"].is_number() {
                break system;
            }
            assert!(Instant::now() < deadline, "no remote-written metrics: {body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(latest["memoryUsedPercent"].as_f64().unwrap() > 0.0, "{latest}");
        assert!(latest["diskUsedPercent"].is_number(), "{latest}");
        let kept = app.gql(Some(&admin), KEPT, json!({ "id": node_id })).await;
        let series = &kept["data"]["metrics"]["series"][0];
        assert_eq!(series["name"], "node_memory_memfree_bytes", "{kept}");
        let labels: Vec<&str> = series["labels"].as_array().unwrap().iter().map(|l| l["key"].as_str().unwrap()).collect();
        assert!(labels.contains(&"instance") && labels.contains(&"job"), "{labels:?}");
        // Only the node whose key Prometheus used.
        let other = app.gql(Some(&admin), LATEST, json!({ "id": other_id })).await;
        assert!(other["data"]["node"]["latest"]["system"].is_null(), "{other}");
    }
}

fn request(series: Vec<TimeSeries>) -> Vec<u8> {
    let bytes = WriteRequest { timeseries: series }.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&bytes).unwrap()
}

fn series(name: &str, labels: &[(&str, &str)], value: f64) -> TimeSeries {
    let mut all = vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    all.extend(labels.iter().map(|(n, v)| Label {
        name: (*n).into(),
        value: (*v).into(),
    }));
    TimeSeries {
        labels: all,
        samples: vec![Sample {
            value,
            timestamp: chrono::Utc::now().timestamp_millis(),
        }],
    }
}

async fn post(app: &TestApp, authorization: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut request = app
        .client
        .post(app.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn stored_batches(app: &TestApp) -> i64 {
    let db = &app.state.db;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM metric_batches",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

on_both_backends! {
    async fn bad_remote_writes_get_the_protocols_status_and_store_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (_, key) = app.register_node(&enrollment, "rw.example.com", &["192.0.2.50"]).await;
        let node_key = format!("ApiKey {key}");
        let good = request(vec![series("node_load1", &[("instance", "x")], 0.5)]);

        let cases: Vec<(&str, Option<String>, Vec<u8>, u16)> = vec![
            ("no key", None, good.clone(), 401),
            ("a wrong key", Some("ApiKey mko_00000000000000000000000000000000_nope".into()), good.clone(), 401),
            ("a user's token", Some(format!("Bearer {admin}")), good.clone(), 403),
            ("an enrollment key", Some(format!("ApiKey {enrollment}")), good.clone(), 403),
            ("a corrupt snappy body", Some(node_key.clone()), good[..good.len() / 2].to_vec(), 400),
            ("a snappy body claiming 4 GiB", Some(node_key.clone()), b"\xff\xff\xff\xff\x0fnot snappy".to_vec(), 413),
            ("snappy around garbage", Some(node_key.clone()), snap::raw::Encoder::new().compress_vec(b"\x0a\xff\xff").unwrap(), 400),
            ("a body over the limit", Some(node_key.clone()), vec![0u8; mailops::remote_write::MAX_BODY_BYTES + 1], 413),
            ("a label set over the limit", Some(node_key.clone()), request(vec![series(
                "custom_metric",
                &(0..40).map(|i| (Box::leak(format!("l{i}").into_boxed_str()) as &str, "v")).collect::<Vec<_>>(),
                1.0,
            )]), 400),
            ("more labels than mailops keeps", Some(node_key.clone()), request(vec![series(
                "custom_metric",
                &(0..20).map(|i| (Box::leak(format!("l{i}").into_boxed_str()) as &str, "v")).collect::<Vec<_>>(),
                1.0,
            )]), 400),
            ("a series without a name", Some(node_key.clone()), request(vec![TimeSeries {
                labels: vec![Label { name: "job".into(), value: "x".into() }],
                samples: vec![Sample { value: 1.0, timestamp: 1 }],
            }]), 400),
            ("a sample too old", Some(node_key.clone()), request(vec![TimeSeries {
                labels: vec![Label { name: "__name__".into(), value: "node_load1".into() }],
                samples: vec![Sample { value: 1.0, timestamp: 1_000 }],
            }]), 400),
        ];
        for (what, authorization, body, status) in cases {
            let (got, text) = post(&app, authorization.as_deref(), body).await;
            assert_eq!(got, status, "{what}: {text}");
            assert!(!text.trim().is_empty(), "{what}: the answer says why");
        }
        assert_eq!(stored_batches(&app).await, 0, "a refused request stored something");

        // A good request is stored once; sent again (a sender's retry) it is a duplicate.
        assert_eq!(post(&app, Some(&node_key), good.clone()).await.0, 204);
        assert_eq!(post(&app, Some(&node_key), good).await.0, 204);
        assert_eq!(stored_batches(&app).await, 1);
        // Values that are no numbers are skipped, the rest stored.
        let mut stale = series("node_load5", &[], 1.0);
        stale.samples.push(Sample { value: f64::from_bits(0x7ff0_0000_0000_0002), timestamp: chrono::Utc::now().timestamp_millis() + 1 });
        assert_eq!(post(&app, Some(&node_key), request(vec![stale])).await.0, 204);
        assert_eq!(stored_batches(&app).await, 2);
    }
}
