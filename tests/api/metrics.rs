use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::{TestApp, duration, error_code};

const INGEST: &str =
    "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { batchId accepted duplicate } }";

/// A node with its key.
async fn agent(app: &TestApp, hostname: &str) -> (String, String) {
    let enrollment = app.enrollment_key(None).await;
    app.register_node(&enrollment, hostname, &[]).await
}

fn ts(seconds_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(seconds_ago)).to_rfc3339()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = &app.state.db;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

on_both_backends! {
    async fn a_batch_is_stored_once_however_often_it_is_sent(backend) {
        let app = TestApp::spawn(backend).await;
        let (node_id, key) = agent(&app, "mx1.example.com").await;
        let batch = json!({ "batchId": "b-1", "samples": [
            { "name": "system.cpu.used_percent", "ts": ts(30), "value": 12.5 },
            { "name": "system.disk.used_percent", "labels": [{ "key": "mount", "value": "/" }], "ts": ts(30), "value": 40.0 },
            { "name": "haraka.connections", "ts": ts(15), "value": 3.0 },
        ] });
        let first = app.gql_key(&key, INGEST, json!({ "b": batch })).await;
        assert_eq!(first["data"]["ingestMetrics"], json!({ "batchId": "b-1", "accepted": 3, "duplicate": false }), "{first}");

        // The same batch again, as after a dropped connection: the first answer, nothing written.
        let again = app.gql_key(&key, INGEST, json!({ "b": batch })).await;
        assert_eq!(again["data"]["ingestMetrics"], json!({ "batchId": "b-1", "accepted": 3, "duplicate": true }));
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_samples").await, 3);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_series").await, 3);

        // The same id with other content is a conflict.
        let mut changed = batch.clone();
        changed["samples"][0]["value"] = json!(99.0);
        let conflict = app.gql_key(&key, INGEST, json!({ "b": changed })).await;
        assert_eq!(error_code(&conflict), "CONFLICT");
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_samples").await, 3);

        // Ingesting is agent contact.
        let admin = app.admin_token().await;
        let node = app.gql(Some(&admin), "query($id: ID) { node(id: $id) { lastSeenAt } }", json!({ "id": node_id })).await;
        let seen = chrono::DateTime::parse_from_rfc3339(node["data"]["node"]["lastSeenAt"].as_str().unwrap()).unwrap();
        assert!(chrono::Utc::now() - seen.to_utc() < chrono::Duration::seconds(10));
    }
}

on_both_backends! {
    async fn a_batch_whose_connection_dropped_is_stored_once_on_retry(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, key) = agent(&app, "mx2.example.com").await;
        let samples: Vec<Value> = (0..500).map(|i| json!({ "name": "system.load1", "ts": ts(600 - i), "value": i as f64 })).collect();
        let body = json!({ "query": INGEST, "variables": { "b": { "batchId": "dropped", "samples": samples } } }).to_string();
        {
            use tokio::io::AsyncWriteExt as _;
            let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
            let head = format!(
                "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: ApiKey {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                app.addr,
                body.len()
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(body.as_bytes()).await.unwrap();
            // Hang up without reading the answer.
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let retry = app.gql_key(&key, INGEST, json!({ "b": { "batchId": "dropped", "samples": samples } })).await;
        assert_eq!(retry["data"]["ingestMetrics"]["accepted"], 500, "{retry}");
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_samples").await, 500);
        assert_eq!(count(&app, "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM metric_rollups_1m").await, 500);
    }
}

on_both_backends! {
    async fn concurrent_batches_from_many_agents_all_land(backend) {
        let app = TestApp::spawn(backend).await;
        let mut keys = Vec::new();
        for n in 0..6 {
            keys.push(agent(&app, &format!("mta{n}.example.com")).await.1);
        }
        let mut sends = Vec::new();
        for (n, key) in keys.iter().enumerate() {
            for b in 0..4i64 {
                let samples: Vec<Value> = (0..50i64).map(|i| json!({
                    "name": "zonemta.queue.active", "labels": [{ "key": "zone", "value": "default" }],
                    "ts": ts(3000 - (b * 50 + i)), "value": (n as i64 * 1000 + b * 50 + i) as f64
                })).collect();
                let batch = json!({ "batchId": format!("n{n}-b{b}"), "samples": samples });
                sends.push(app.gql_key(key, INGEST, json!({ "b": batch })));
            }
        }
        for answer in futures_util::future::join_all(sends).await {
            assert_eq!(answer["data"]["ingestMetrics"]["accepted"], 50, "{answer}");
        }
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_samples").await, 6 * 4 * 50);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_series").await, 6);
        assert_eq!(count(&app, "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM metric_rollups_1h").await, 6 * 4 * 50);
    }
}

on_both_backends! {
    async fn rollups_equal_aggregates_of_the_raw_samples(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, key) = agent(&app, "db1.example.com").await;
        // Three batches over a few minutes, out of order, with one sample repeated.
        let values = [5.0, -2.5, 7.25, 1.0, 3.0, 9.5, 0.0, 4.0];
        for (b, chunk) in values.chunks(3).enumerate() {
            let samples: Vec<Value> = chunk.iter().enumerate().map(|(i, v)| json!({
                "name": "redis.clients", "ts": ts(400 - ((2 - b as i64) * 90 + i as i64 * 37)), "value": v
            })).collect();
            let answer = app.gql_key(&key, INGEST, json!({ "b": { "batchId": format!("r{b}"), "samples": samples } })).await;
            assert!(answer["errors"].is_null(), "{answer}");
        }
        for (table, width) in [("metric_rollups_1m", 60_000), ("metric_rollups_1h", 3_600_000)] {
            let sql = format!(
                "SELECT r.bucket, r.min, r.max, r.sum, r.count, r.last,
                        MIN(s.value), MAX(s.value), SUM(s.value), COUNT(*)
                 FROM {table} r JOIN metric_samples s
                   ON s.series_id = r.series_id AND s.ts >= r.bucket AND s.ts < r.bucket + {width}
                 GROUP BY r.series_id, r.bucket, r.min, r.max, r.sum, r.count, r.last"
            );
            let db = &app.state.db;
            let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
            assert!(!rows.is_empty());
            let mut total = 0;
            for row in rows {
                let get = |i: usize| row.try_get_by_index::<f64>(i).unwrap();
                assert_eq!((get(1), get(2), get(3)), (get(6), get(7), get(8)), "{table}");
                let (count, raw_count) = (row.try_get_by_index::<i64>(4).unwrap(), row.try_get_by_index::<i64>(9).unwrap());
                assert_eq!(count, raw_count, "{table}");
                total += count;
            }
            assert_eq!(total, values.len() as i64, "{table}");
            let last_sql = format!(
                "SELECT r.last, s.value FROM {table} r JOIN metric_samples s ON s.series_id = r.series_id AND s.ts = r.last_ts"
            );
            for row in db.query_all_raw(Statement::from_string(db.get_database_backend(), last_sql)).await.unwrap() {
                assert_eq!(row.try_get_by_index::<f64>(0).unwrap(), row.try_get_by_index::<f64>(1).unwrap());
            }
        }
    }
}

on_both_backends! {
    async fn a_batch_with_any_bad_sample_writes_nothing_and_names_it(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, key) = agent(&app, "bad.example.com").await;
        let good = json!({ "name": "system.load1", "ts": ts(10), "value": 1.0 });
        let many_labels: Vec<Value> = (0..100).map(|i| json!({ "key": format!("k{i}"), "value": "v" })).collect();
        let cases = [
            ("future", json!({ "name": "system.load1", "ts": (chrono::Utc::now() + chrono::Duration::minutes(6)).to_rfc3339(), "value": 1.0 }), "ts"),
            ("too old", json!({ "name": "system.load1", "ts": ts(49 * 3600), "value": 1.0 }), "ts"),
            ("bad name", json!({ "name": "System Load", "ts": ts(10), "value": 1.0 }), "name"),
            ("bad label key", json!({ "name": "custom.thing", "labels": [{ "key": "Bad-Key", "value": "v" }], "ts": ts(10), "value": 1.0 }), "labels"),
            ("catalog labels", json!({ "name": "system.disk.used_percent", "ts": ts(10), "value": 1.0 }), "labels"),
            ("100 labels", json!({ "name": "custom.thing", "labels": many_labels, "ts": ts(10), "value": 1.0 }), "labels"),
        ];
        for (case, bad, field) in cases {
            let batch = json!({ "batchId": "bad", "samples": [good, good, bad] });
            let body = app.gql_key(&key, INGEST, json!({ "b": batch })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{case}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], format!("batch.samples[2].{field}"), "{case}: {body}");
        }
        let too_many: Vec<Value> = (0..10_001).map(|_| good.clone()).collect();
        let body = app.gql_key(&key, INGEST, json!({ "b": { "batchId": "big", "samples": too_many } })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        let body = app.gql_key(&key, INGEST, json!({ "b": { "batchId": "no spaces", "samples": [good] } })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_samples").await, 0);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_batches").await, 0);

        // A full batch of 10,000 fits in one request.
        let full: Vec<Value> = (0..10_000).map(|i| json!({ "name": "system.load1", "ts": ts(20_000 - i), "value": 1.0 })).collect();
        let body = app.gql_key(&key, INGEST, json!({ "b": { "batchId": "full", "samples": full } })).await;
        assert_eq!(body["data"]["ingestMetrics"]["accepted"], 10_000, "{}", &body.to_string()[..body.to_string().len().min(300)]);
    }
}

#[tokio::test]
async fn the_catalog_documents_the_standard_metrics() {
    let app = TestApp::spawn(testkit::Backend::Sqlite).await;
    let admin = app.admin_token().await;
    let body = app
        .gql(
            Some(&admin),
            "{ metricCatalog { name service kind unit labels } }",
            json!({}),
        )
        .await;
    let catalog = body["data"]["metricCatalog"].as_array().unwrap();
    let disk = catalog
        .iter()
        .find(|m| m["name"] == "system.disk.used_percent")
        .unwrap();
    assert_eq!(disk["labels"], json!(["mount"]));
    assert_eq!(disk["unit"], "percent");
    for service in ["SYSTEM", "MONGODB", "REDIS", "ZONEMTA", "RSPAMD"] {
        assert!(catalog.iter().any(|m| m["service"] == service), "{service}");
    }
}

on_both_backends! {
    async fn range_queries_aggregate_per_step_and_rates_survive_a_counter_reset(backend) {
        let app = TestApp::spawn(backend).await;
        let (node_id, key) = agent(&app, "scan.example.com").await;
        let start = chrono::Utc::now() - chrono::Duration::minutes(10);
        let start = chrono::DateTime::from_timestamp(start.timestamp(), 0).unwrap();
        let at = |i: i64| (start + chrono::Duration::seconds(i * 10)).to_rfc3339();
        // A counter that restarts after its fourth sample.
        let counter = [0.0, 100.0, 200.0, 50.0, 150.0];
        let gauge = [1.0, 3.0, 5.0, 7.0, 9.0];
        let mut samples = Vec::new();
        for i in 0..5 {
            samples.push(json!({ "name": "rspamd.scanned", "ts": at(i as i64), "value": counter[i] }));
            samples.push(json!({ "name": "rspamd.latency_ms", "ts": at(i as i64), "value": gauge[i] }));
        }
        let answer = app.gql_key(&key, INGEST, json!({ "b": { "batchId": "q", "samples": samples } })).await;
        assert!(answer["errors"].is_null(), "{answer}");

        let viewer = app.user_with_role("val", "VIEWER").await.1;
        let query = "query($n: [String!]!, $from: DateTime, $to: DateTime, $step: Int, $a: Aggregate) {
            metrics(names: $n, from: $from, to: $to, step: $step, aggregate: $a) {
                step resolution series { nodeId name points { ts value } } } }";
        let vars = |name: &str, step: i64, aggregate: &str| json!({
            "n": [name], "from": at(0), "to": at(5), "step": step, "a": aggregate });
        let values = |body: &Value| -> Vec<Value> {
            body["data"]["metrics"]["series"][0]["points"].as_array().unwrap_or_else(|| panic!("{body}"))
                .iter().map(|p| p["value"].clone()).collect()
        };

        let rates = app.gql(Some(&viewer), query, vars("rspamd.scanned", 10, "RATE")).await;
        assert_eq!(rates["data"]["metrics"]["resolution"], "RAW", "{rates}");
        assert_eq!(rates["data"]["metrics"]["series"][0]["nodeId"], node_id.as_str());
        assert_eq!(values(&rates), vec![Value::Null, json!(10.0), json!(10.0), json!(5.0), json!(10.0)]);

        let avg = app.gql(Some(&viewer), query, vars("rspamd.latency_ms", 20, "AVG")).await;
        assert_eq!(avg["data"]["metrics"]["step"], 20);
        assert_eq!(values(&avg), vec![json!(2.0), json!(6.0), json!(9.0)]);
        let max = app.gql(Some(&viewer), query, vars("rspamd.latency_ms", 20, "MAX")).await;
        assert_eq!(values(&max), vec![json!(3.0), json!(7.0), json!(9.0)]);
        let last = app.gql(Some(&viewer), query, vars("rspamd.latency_ms", 20, "LAST")).await;
        assert_eq!(values(&last), vec![json!(3.0), json!(7.0), json!(9.0)]);

        // A step of a minute or more reads the 1-minute rollups and agrees with the raw data.
        let minute = app.gql(Some(&viewer), query, json!({ "n": ["rspamd.latency_ms"], "from": (start - chrono::Duration::minutes(1)).to_rfc3339(), "to": at(60), "step": 120, "a": "SUM" })).await;
        assert_eq!(minute["data"]["metrics"]["resolution"], "MINUTE", "{minute}");
        let total: f64 = values(&minute).iter().map(|v| v.as_f64().unwrap()).sum();
        assert_eq!(total, 25.0);

        let names: Vec<String> = (0..51).map(|i| format!("custom.m{i}")).collect();
        let bad = app.gql(Some(&viewer), "query($n: [String!]!) { metrics(names: $n, range: H1) { step } }", json!({ "n": names })).await;
        assert_eq!(error_code(&bad), "BAD_USER_INPUT");
        let fine = app.gql(Some(&viewer), "{ metrics(names: [\"system.load1\"], range: D30, step: 1) { step } }", json!({})).await;
        assert_eq!(error_code(&fine), "BAD_USER_INPUT");
        assert_eq!(fine["errors"][0]["extensions"]["field"], "step");
        let both = app.gql(Some(&viewer), "{ metrics(names: [\"system.load1\"], range: H1, from: \"2026-01-01T00:00:00Z\") { step } }", json!({})).await;
        assert_eq!(error_code(&both), "BAD_USER_INPUT");

        // A panel's width chooses the step; `values` has every step of the range, nulls
        // where no sample fell.
        let compact = "query($n: [String!]!, $from: DateTime, $to: DateTime, $m: Int) {
            metrics(names: $n, from: $from, to: $to, maxPoints: $m) {
                from step series { values points { ts value } } } }";
        let wide = json!({ "n": ["rspamd.latency_ms"], "from": at(0), "to": at(9), "m": 5 });
        let body = app.gql(Some(&viewer), compact, wide).await;
        let metrics = &body["data"]["metrics"];
        assert_eq!(metrics["step"], 18, "90 s in at most 5 points: {body}");
        assert_eq!(metrics["series"][0]["values"], json!([2.0, 6.0, 9.0, null, null]));
        assert_eq!(metrics["series"][0]["points"].as_array().unwrap().len(), 3);
        for (m, field) in [(0, "maxPoints"), (1501, "maxPoints")] {
            let body = app.gql(Some(&viewer), compact, json!({ "n": ["rspamd.latency_ms"], "from": at(0), "to": at(9), "m": m })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field);
        }
        let both = app.gql(Some(&viewer), "{ metrics(names: [\"system.load1\"], range: H1, step: 60, maxPoints: 100) { step } }", json!({})).await;
        assert_eq!(both["errors"][0]["extensions"]["field"], "maxPoints", "{both}");
    }
}

on_both_backends! {
    async fn retention_deletes_only_what_is_due(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.metrics.raw_retention = duration("8s"))
            .spawn()
            .await;
        let (_, key) = agent(&app, "old.example.com").await;
        let now = chrono::Utc::now();
        let samples = json!([
            { "name": "system.load5", "ts": (now - chrono::Duration::seconds(5)).to_rfc3339(), "value": 1.0 },
            { "name": "system.load5", "ts": now.to_rfc3339(), "value": 2.0 },
        ]);
        let answer = app.gql_key(&key, INGEST, json!({ "b": { "batchId": "aging", "samples": samples } })).await;
        assert!(answer["errors"].is_null(), "{answer}");
        // Long enough for the older sample to pass retention, with room to spare for the newer.
        tokio::time::sleep(std::time::Duration::from_millis(4000)).await;

        let deleted = mailops::metrics::sweep_retention(&app.state).await.unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_samples").await, 1);
        let db = &app.state.db;
        let left = db.query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT value FROM metric_samples")).await.unwrap().unwrap();
        assert_eq!(left.try_get_by_index::<f64>(0).unwrap(), 2.0);
        // Rollups and the batch record are kept longer.
        assert_eq!(count(&app, "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM metric_rollups_1m").await, 2);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM metric_batches").await, 1);
    }
}

on_both_backends! {
    async fn node_latest_shows_each_reported_service_and_null_for_the_rest(backend) {
        let app = TestApp::spawn(backend).await;
        let (node_id, key) = agent(&app, "latest.example.com").await;
        let samples = json!([
            { "name": "system.cpu.used_percent", "ts": ts(120), "value": 10.0 },
            { "name": "system.cpu.used_percent", "ts": ts(5), "value": 42.0 },
            { "name": "system.disk.used_percent", "labels": [{ "key": "mount", "value": "/" }], "ts": ts(5), "value": 40.0 },
            { "name": "system.disk.used_percent", "labels": [{ "key": "mount", "value": "/var" }], "ts": ts(5), "value": 91.0 },
            { "name": "zonemta.queue.deferred", "labels": [{ "key": "zone", "value": "default" }], "ts": ts(5), "value": 7.0 },
            { "name": "zonemta.queue.deferred", "labels": [{ "key": "zone", "value": "bulk" }], "ts": ts(5), "value": 5.0 },
        ]);
        let answer = app.gql_key(&key, INGEST, json!({ "b": { "batchId": "l", "samples": samples } })).await;
        assert!(answer["errors"].is_null(), "{answer}");
        let viewer = app.user_with_role("lia", "VIEWER").await.1;
        let body = app.gql(Some(&viewer), "query($id: ID) { node(id: $id) { latest {
            system { cpuPercent diskUsedPercent load1 at } zonemta { queueDeferred } redis { clients } } } }",
            json!({ "id": node_id })).await;
        let latest = &body["data"]["node"]["latest"];
        assert_eq!(latest["system"]["cpuPercent"], 42.0, "{body}");
        assert_eq!(latest["system"]["diskUsedPercent"], 91.0);
        assert!(latest["system"]["load1"].is_null());
        assert_eq!(latest["zonemta"]["queueDeferred"], 12.0);
        assert!(latest["redis"].is_null());
    }
}

on_both_backends! {
    async fn seeding_fills_rollups_beyond_raw_retention_and_repeats_only_the_hour_under_way(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.metrics.raw_retention = duration("6h"))
            .spawn()
            .await;
        let options = mailops::seed::SeedOptions { nodes: 2, days: 1, concurrency: 2, mail_per_minute: 2 };
        let first = mailops::seed::run(&app.state, options).await.unwrap();
        assert_eq!(first.nodes, 2);
        assert_eq!(first.duplicate_batches, 0);
        assert!(first.samples >= 2 * 24 * 240 * 40, "{first:?}");
        // Seeding again stores only the hour under way, which has grown meanwhile.
        let again = mailops::seed::run(&app.state, options).await.unwrap();
        assert!(again.duplicate_batches + 2 >= again.batches, "{again:?}");

        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let nodes = app.gql(Some(&viewer), "{ nodes(first: 10) { totalCount } }", json!({})).await;
        assert_eq!(nodes["data"]["nodes"]["totalCount"], 2, "{nodes}");
        // The day reaches past the 6-hour raw retention: the answer comes from rollups,
        // which hold every seeded sample, older ones included.
        let query = "{ metrics(names: [\"rspamd.scanned\"], range: D7, aggregate: RATE) {
            resolution series { points { value } } } }";
        let week = app.gql(Some(&viewer), query, json!({})).await;
        assert_eq!(week["data"]["metrics"]["resolution"], "HOUR", "{week}");
        let series = week["data"]["metrics"]["series"].as_array().unwrap();
        assert_eq!(series.len(), 2);
        let points = series[0]["points"].as_array().unwrap();
        assert!(points.len() >= 24, "{} hourly points", points.len());
        assert!(points.iter().skip(1).all(|p| p["value"].as_f64().is_some_and(|v| v > 0.0)), "{week}");
        // Every sample is counted once in each tier, the re-sent part of that hour too.
        let hourly = count(&app, "SELECT CAST(SUM(count) AS BIGINT) FROM metric_rollups_1h").await;
        let minutely = count(&app, "SELECT CAST(SUM(count) AS BIGINT) FROM metric_rollups_1m").await;
        assert_eq!(hourly, minutely);
        assert!(hourly >= first.samples as i64);
        let since = (chrono::Utc::now().timestamp_millis() / 3_600_000 - 4) * 3_600_000;
        let raw = count(&app, &format!("SELECT COUNT(*) FROM metric_samples WHERE ts >= {since}")).await;
        let rolled = count(&app, &format!("SELECT CAST(SUM(count) AS BIGINT) FROM metric_rollups_1h WHERE bucket >= {since}")).await;
        assert_eq!(raw, rolled);

        // Mail: a day of whole hours, then the minutes of the hour under way; a second run
        // adds only minutes not yet stored, and every event is counted once.
        assert!(first.mail.events >= 2 * 24 * 60 * 2, "{first:?}");
        let seeded = (first.mail.events + again.mail.events) as i64;
        let sums = "CAST(SUM(queued + delivered + deferred + bounced + rejected + dropped) AS BIGINT)";
        assert_eq!(count(&app, "SELECT COUNT(*) FROM mail_events").await, seeded);
        assert_eq!(count(&app, &format!("SELECT {sums} FROM mail_flow_1h")).await, seeded);
        assert_eq!(count(&app, &format!("SELECT {sums} FROM mail_flow_1m")).await, seeded);
    }
}
