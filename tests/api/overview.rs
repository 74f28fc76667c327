use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::mailflow::{events, ingest};
use testkit::on_both_backends;
use testkit::{Backend, TestApp, duration};

const OVERVIEW: &str = "{ overview {
    health reasons { level code message }
    nodes { total online stale down maintenance }
    lastHour { queued delivered deferred bounced rejected dropped sent deliveredRate deferredRate bounceRate }
    queue { active deferred total }
    blacklistedIps activeAlerts { warning critical total } generatedAt } }";

async fn overview(app: &TestApp, token: &str) -> Value {
    let body = app.gql(Some(token), OVERVIEW, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["overview"].clone()
}

fn generated_at(overview: &Value) -> DateTime<Utc> {
    overview["generatedAt"].as_str().unwrap().parse().unwrap()
}

fn queue_sample(name: &str, zone: &str, value: f64) -> Value {
    json!({ "name": name, "labels": [{ "key": "zone", "value": zone }], "ts": Utc::now().to_rfc3339(), "value": value })
}

on_both_backends! {
    async fn the_overview_adds_up_what_the_cluster_reported(backend) {
        // No alert evaluation and no caching during the test: the numbers come only from
        // what the test sends.
        let app = TestApp::builder(backend)
            .with_config(|c| {
                c.overview.cache_ttl = None;
                c.alerts.evaluation_interval = duration("1h");
            })
            .spawn()
            .await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let empty = overview(&app, &viewer).await;
        assert_eq!(empty["health"], "HEALTHY");
        assert_eq!(empty["reasons"], json!([]));
        assert_eq!(empty["lastHour"]["bounceRate"], Value::Null);

        let enrollment = app.enrollment_key(None).await;
        let (_, key_1) = app.register_node(&enrollment, "mta1.example.com", &["192.0.2.10"]).await;
        let (_, key_2) = app.register_node(&enrollment, "mta2.example.com", &["192.0.2.20"]).await;
        let (resting, _) = app.register_node(&enrollment, "mta3.example.com", &[]).await;
        let (_, operator) = app.user_with_role("olga", "OPERATOR").await;
        let body = app.gql(Some(&operator), "mutation($id: ID!) { setNodeMaintenance(id: $id, enabled: true, reason: \"disk swap\") { status } }", json!({ "id": resting })).await;
        assert_eq!(body["data"]["setNodeMaintenance"]["status"], "MAINTENANCE", "{body}");

        let ts = (Utc::now() - TimeDelta::minutes(2)).to_rfc3339();
        let mut mail = events(16, &ts, "DELIVERED", Some("192.0.2.10"), Some("gmail.com"));
        mail.extend(events(4, &ts, "BOUNCED", Some("192.0.2.10"), Some("gmail.com")));
        mail.extend(events(5, &ts, "QUEUED", None, None));
        assert_eq!(ingest(&app, &key_1, "m-1", mail).await["data"]["ingestMailEvents"]["accepted"], 25);
        let mut mail = events(3, &ts, "DELIVERED", Some("192.0.2.20"), Some("yahoo.com"));
        mail.extend(events(2, &ts, "DEFERRED", Some("192.0.2.20"), Some("yahoo.com")));
        mail.extend(events(1, &ts, "REJECTED", None, None));
        // Older than an hour: not in the last hour's numbers.
        mail.extend(events(7, &(Utc::now() - TimeDelta::minutes(90)).to_rfc3339(), "DELIVERED", Some("192.0.2.20"), None));
        assert_eq!(ingest(&app, &key_2, "m-2", mail).await["data"]["ingestMailEvents"]["accepted"], 13);

        let metrics = "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }";
        let body = app.gql_key(&key_1, metrics, json!({ "b": { "batchId": "q-1", "samples": [
            queue_sample("zonemta.queue.active", "default", 10.0),
            queue_sample("zonemta.queue.active", "bulk", 5.0),
            queue_sample("zonemta.queue.deferred", "default", 100.0),
        ] } })).await;
        assert_eq!(body["data"]["ingestMetrics"]["accepted"], 3, "{body}");
        let body = app.gql_key(&key_2, metrics, json!({ "b": { "batchId": "q-1", "samples": [
            queue_sample("zonemta.queue.deferred", "default", 20.0),
        ] } })).await;
        assert_eq!(body["data"]["ingestMetrics"]["accepted"], 1, "{body}");
        // A later reading of the same series replaces the earlier one.
        let body = app.gql_key(&key_2, metrics, json!({ "b": { "batchId": "q-2", "samples": [
            json!({ "name": "zonemta.queue.deferred", "labels": [{ "key": "zone", "value": "default" }], "ts": (Utc::now() + TimeDelta::seconds(1)).to_rfc3339(), "value": 30.0 }),
        ] } })).await;
        assert_eq!(body["data"]["ingestMetrics"]["accepted"], 1, "{body}");

        let now = overview(&app, &viewer).await;
        assert_eq!(now["nodes"], json!({ "total": 3, "online": 2, "stale": 0, "down": 0, "maintenance": 1 }));
        let sent = 16 + 4 + 3 + 2;
        assert_eq!(now["lastHour"], json!({
            "queued": 5, "delivered": 19, "deferred": 2, "bounced": 4, "rejected": 1, "dropped": 0, "sent": sent,
            "deliveredRate": 19.0 / sent as f64, "deferredRate": 2.0 / sent as f64, "bounceRate": 4.0 / sent as f64,
        }));
        assert_eq!(now["queue"], json!({ "active": 15.0, "deferred": 130.0, "total": 145.0 }));
        assert_eq!(now["blacklistedIps"], 0);
        assert_eq!(now["activeAlerts"], json!({ "warning": 0, "critical": 0, "total": 0 }));
        // 4 of 25 attempts bounced: 16%.
        assert_eq!(now["health"], "DEGRADED");
        assert_eq!(now["reasons"], json!([{
            "level": "DEGRADED", "code": "BOUNCE_RATE",
            "message": "16.0% of the last hour's delivery attempts bounced (limit 5%)",
        }]));
        assert!(Utc::now() - generated_at(&now) < TimeDelta::seconds(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn most_nodes_down_makes_the_cluster_critical() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(|c| {
            c.overview.cache_ttl = None;
            c.alerts.evaluation_interval = duration("1h");
            testkit::quick_node_status(c, "1s");
        })
        .spawn()
        .await;
    let enrollment = app.enrollment_key(None).await;
    app.register_node(&enrollment, "mta1.example.com", &[])
        .await;
    app.register_node(&enrollment, "mta2.example.com", &[])
        .await;
    let admin = app.admin_token().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = overview(&app, &admin).await;
        if now["nodes"]["down"] == 2 {
            assert_eq!(now["health"], "CRITICAL");
            assert_eq!(
                now["reasons"],
                json!([{ "level": "CRITICAL", "code": "NODES_DOWN", "message": "2 nodes of 2 down" }])
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes never went down: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

on_both_backends! {
    async fn the_cached_overview_is_served_until_its_time_is_up(backend) {
        let ttl = TimeDelta::seconds(4);
        let app = TestApp::builder(backend)
            .with_config(|c| c.overview.cache_ttl = Some(duration("4s")))
            .spawn()
            .await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (_, key) = app.register_node(&enrollment, "mta1.example.com", &[]).await;

        let first = overview(&app, &admin).await;
        let started = generated_at(&first);
        assert_eq!(first["lastHour"]["queued"], 0);
        let ts = Utc::now().to_rfc3339();
        assert_eq!(ingest(&app, &key, "q", events(3, &ts, "QUEUED", None, None)).await["data"]["ingestMailEvents"]["accepted"], 3);

        let cached = overview(&app, &admin).await;
        assert!(Utc::now() - started < ttl, "the test machine was too slow to observe the cache");
        assert_eq!(cached, first, "within its time the same answer is served");

        while Utc::now() - started <= ttl {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let fresh = overview(&app, &admin).await;
        assert!(generated_at(&fresh) > started);
        assert_eq!(fresh["lastHour"]["queued"], 3);
        assert_eq!(app.state.overview.computations(), 2);
    }
}

on_both_backends! {
    async fn concurrent_callers_share_one_computation(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let calls = (0..24).map(|_| overview(&app, &admin));
        let answers = futures_util::future::join_all(calls).await;
        assert!(answers.iter().all(|a| a == &answers[0]), "every caller got the same answer");
        assert_eq!(app.state.overview.computations(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_cached_overview_through_redis() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().spawn().await;
    let admin_a = a.admin_token().await;
    let admin_b = b.admin_token().await;
    let (on_a, on_b) = tokio::join!(
        futures_util::future::join_all((0..10).map(|_| overview(&a, &admin_a))),
        futures_util::future::join_all((0..10).map(|_| overview(&b, &admin_b))),
    );
    assert!(on_a.iter().chain(&on_b).all(|o| o == &on_a[0]));
    assert_eq!(
        a.state.overview.computations() + b.state.overview.computations(),
        1
    );
}
