//! mailops under faults, and what it shows of itself: Redis restarting empty, the
//! database going away, shutdown, jobs, `/metrics` and the request log.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use testkit::servers::{PgCluster, RedisServer};
use testkit::ws::{WsClient, bearer};
use testkit::{Backend, TestApp, error_code};

const INGEST: &str =
    "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted duplicate } }";
const UPDATES: &str =
    "subscription($after: Int) { metricsUpdated(after: $after) { sequence batchId } }";

fn batch(id: &str) -> Value {
    json!({ "b": { "batchId": id, "samples": [
        { "name": "system.load1", "ts": Utc::now().to_rfc3339(), "value": 0.5 }
    ] } })
}

/// The next `metricsUpdated` payload on a socket.
async fn next_update(socket: &mut WsClient) -> Value {
    let message = socket.next_json().await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["metricsUpdated"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_carry_on_across_a_redis_restart_and_resume_from_before_it() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = TestApp::builder(Backend::Postgres)
        .with_config(move |c| c.redis.url = Some(url))
        .spawn()
        .await;
    let admin = app.admin_token().await;
    let enrollment = app.enrollment_key(None).await;
    let (_, key) = app
        .register_node(&enrollment, "restart.example.com", &[])
        .await;
    let mut socket = WsClient::ready(app.addr, bearer(&admin)).await;
    socket.subscribe("m", UPDATES, json!({})).await;
    socket.barrier().await;

    let first = app.gql_key(&key, INGEST, batch("before")).await;
    assert_eq!(first["data"]["ingestMetrics"]["accepted"], 1, "{first}");
    let before = next_update(&mut socket).await;
    assert_eq!(before["batchId"], "before");

    // Redis restarts with nothing: its sequence starts over in a new, higher epoch.
    redis.restart();
    let mut delivered = None;
    for attempt in 0..50 {
        let id = format!("after-{attempt}");
        let answer = app.gql_key(&key, INGEST, batch(&id)).await;
        assert_eq!(
            answer["data"]["ingestMetrics"]["accepted"], 1,
            "ingestion goes on: {answer}"
        );
        if let Ok(update) =
            tokio::time::timeout(Duration::from_millis(500), next_update(&mut socket)).await
        {
            delivered = Some(update);
            break;
        }
    }
    let after = delivered.expect("an event after the restart reached the open subscription");
    assert!(
        after["sequence"].as_u64().unwrap() > before["sequence"].as_u64().unwrap(),
        "sequences keep growing across the restart: {before} then {after}"
    );

    // A dashboard resuming from before the restart gets what came after it, without a
    // spurious LAGGED for the jump into the new epoch.
    let mut resumed = WsClient::ready(app.addr, bearer(&admin)).await;
    resumed
        .subscribe("r", UPDATES, json!({ "after": before["sequence"] }))
        .await;
    let replayed = next_update(&mut resumed).await;
    assert!(
        replayed["batchId"].as_str().unwrap().starts_with("after-"),
        "{replayed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_instance_is_degraded_but_serves_and_without_its_database_it_is_down() {
    let cluster = PgCluster::create();
    cluster.create_database("mailops");
    let database = cluster.url("mailops");
    let mut redis = RedisServer::start();
    let redis_url = redis.url();
    let app = TestApp::builder(Backend::Postgres)
        .with_config(move |c| {
            c.database.url = Some(database);
            c.redis.url = Some(redis_url);
        })
        .spawn()
        .await;
    let admin = app.admin_token().await;
    let enrollment = app.enrollment_key(None).await;
    let (_, key) = app
        .register_node(&enrollment, "outage.example.com", &[])
        .await;
    let ready = |app: &TestApp| {
        let request = app.client.get(app.url("/readyz")).send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(ready(&app).await.1["status"], "ok");

    redis.kill();
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("degraded")),
        "{body}"
    );
    let login = app.login("admin", testkit::ADMIN_PASSWORD).await;
    assert!(login["accessToken"].is_string());
    let stored = app.gql_key(&key, INGEST, batch("no-redis")).await;
    assert_eq!(stored["data"]["ingestMetrics"]["accepted"], 1, "{stored}");

    cluster.stop();
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("down")),
        "{body}"
    );
    // Requests caught mid-way may be told the pool is busy; either way the code says
    // to retry, and soon every request is answered UNAVAILABLE at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let refused = app
            .client
            .post(app.url("/graphql"))
            .header("authorization", format!("ApiKey {key}"))
            .json(&json!({ "query": INGEST, "variables": batch("no-database") }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 503);
        assert!(refused.headers().contains_key("retry-after"));
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["errors"][0]["extensions"]["retryAfterSeconds"]
                .as_u64()
                .unwrap()
                >= 1
        );
        match error_code(&body).as_str() {
            "UNAVAILABLE" => break,
            "RATE_LIMITED" => {}
            other => panic!("{other}: {body}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never UNAVAILABLE: {body}"
        );
    }
    cluster.start();
    let mut back = Value::Null;
    for _ in 0..100 {
        back = app.gql_key(&key, INGEST, batch("no-database")).await;
        if back["data"]["ingestMetrics"]["accepted"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        back["data"]["ingestMetrics"]["duplicate"], false,
        "the refused batch was not stored: {back}"
    );
    drop(admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_websockets_as_going_away() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin_token().await;
    let mut socket = WsClient::ready(app.addr, bearer(&admin)).await;
    socket
        .subscribe(
            "s",
            "subscription { nodeStatusChanged { nodeId } }",
            json!({}),
        )
        .await;
    socket.barrier().await;
    app.signal_stop();
    assert_eq!(
        socket.close_frame().await,
        (1001, "server shutting down".into())
    );
    app.stop().await;
}

async fn job_state(app: &TestApp, admin: &str, id: &str) -> String {
    let body = app
        .gql(
            Some(admin),
            "query($id: ID!) { ipCheckJob(id: $id) { state } }",
            json!({ "id": id }),
        )
        .await;
    body["data"]["ipCheckJob"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_the_jobs_and_manage_the_check_queue() {
    let app = TestApp::builder(Backend::Postgres)
        .with_config(|c| {
            testkit::quick_node_status(c, "2s");
            // A name server that never answers: a check fails after its one attempt.
            c.dnsbl.nameserver = "127.0.0.1:9".parse().unwrap();
            c.dnsbl.timeout = Duration::from_millis(100);
            c.dnsbl.max_attempts = 1;
            c.dnsbl.job_poll_interval = Duration::from_millis(200);
        })
        .spawn()
        .await;
    let admin = app.admin_token().await;
    app.gql(
        Some(&admin),
        "mutation { addIps(input: { addresses: [\"192.0.2.77\"] }) { address } }",
        json!({}),
    )
    .await;
    let queued = app
        .gql(
            Some(&admin),
            "mutation { checkIpBlacklists(addresses: [\"192.0.2.77\"]) { id } }",
            json!({}),
        )
        .await;
    let job_id = queued["data"]["checkIpBlacklists"]["id"]
        .as_str()
        .expect("a job")
        .to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while job_state(&app, &admin, &job_id).await != "FAILED" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the check never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let jobs = app
        .gql(Some(&admin), "{ jobs { recurring { name intervalSeconds lastOutcome runs failures instance nextRunAt } dnsblQueue { queued running failed } } }", json!({}))
        .await;
    let recurring = jobs["data"]["jobs"]["recurring"]
        .as_array()
        .expect("jobs")
        .clone();
    let names: Vec<&str> = recurring
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    for expected in [
        "node-status",
        "dnsbl-checks",
        "metrics-retention",
        "mail-retention",
        "alert-evaluation",
        "mail-flow-ticker",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let status = recurring
        .iter()
        .find(|j| j["name"] == "node-status")
        .unwrap();
    assert!(status["runs"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["lastOutcome"], "SUCCEEDED");
    assert!(status["instance"].as_str().unwrap().contains(':'));
    assert!(status["nextRunAt"].is_string());
    assert!(
        jobs["data"]["jobs"]["dnsblQueue"]["failed"]
            .as_u64()
            .unwrap()
            >= 1,
        "{jobs}"
    );

    let retried = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { retryIpCheckJob(id: $id) { state attempts } }",
            json!({ "id": job_id }),
        )
        .await;
    assert_eq!(
        retried["data"]["retryIpCheckJob"]["attempts"], 0,
        "{retried}"
    );
    // Queued again, it fails again; a failed job can also be cancelled, and a cancelled
    // one is not retried.
    while job_state(&app, &admin, &job_id).await != "FAILED" {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { cancelIpCheckJob(id: $id) { state } }",
            json!({ "id": job_id }),
        )
        .await;
    assert_eq!(
        cancelled["data"]["cancelIpCheckJob"]["state"], "CANCELLED",
        "{cancelled}"
    );
    let again = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { retryIpCheckJob(id: $id) { state } }",
            json!({ "id": job_id }),
        )
        .await;
    assert_eq!(error_code(&again), "CONFLICT");
    let viewer = app.user_with_role("onlooker", "VIEWER").await.1;
    assert_eq!(
        error_code(
            &app.gql(Some(&viewer), "{ jobs { recurring { name } } }", json!({}))
                .await
        ),
        "FORBIDDEN"
    );
}

/// `promtool check metrics` when Prometheus' tools are installed (`.ci/run` installs
/// them), else a line-by-line check of the exposition format.
fn check_exposition(text: &str) {
    use std::io::Write as _;
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let problems = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        // Lint findings about naming are reported too; errors fail the parse.
        assert!(
            !problems.contains("error while linting") && !problems.contains("parse error"),
            "{problems}"
        );
        return;
    }
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "not a sample: {line}"
        );
    }
}

/// The value of the first sample of `name` whose labels hold every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_in_the_prometheus_format_and_move() {
    let app = TestApp::builder(Backend::Postgres)
        .with_config(|c| {
            c.server.metrics_token = Some("scrape-token-0123456789".to_string().into())
        })
        .spawn()
        .await;
    let scrape = || async {
        let response = app
            .client
            .get(app.url("/metrics"))
            .bearer_auth("scrape-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let unauthorized = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);

    let admin = app.admin_token().await;
    let before = scrape().await;
    let enrollment = app.enrollment_key(None).await;
    let (_, key) = app
        .register_node(&enrollment, "scraped.example.com", &[])
        .await;
    let scraped = batch("scraped");
    app.gql_key(&key, INGEST, scraped.clone()).await;
    // The same batch again is answered from its record.
    app.gql_key(&key, INGEST, scraped).await;
    app.gql(
        Some(&admin),
        "query Dashboard { me { username } }",
        json!({}),
    )
    .await;
    let _socket = WsClient::ready(app.addr, bearer(&admin)).await;
    let after = scrape().await;
    check_exposition(&after);

    let grew =
        |name: &str, labels: &[&str]| sample(&after, name, labels) - sample(&before, name, labels);
    assert!(
        grew(
            "mailops_graphql_operations_total",
            &[
                "operation=\"Dashboard\"",
                "type=\"query\"",
                "outcome=\"OK\""
            ]
        ) >= 1.0
    );
    assert!(
        grew(
            "mailops_ingest_batches_total",
            &["kind=\"metrics\"", "result=\"accepted\""]
        ) >= 1.0
    );
    assert!(
        grew(
            "mailops_ingest_batches_total",
            &["kind=\"metrics\"", "result=\"duplicate\""]
        ) >= 1.0
    );
    assert!(grew("mailops_ingested_samples_total", &[]) >= 1.0);
    assert!(grew("mailops_http_requests_total", &["status=\"200\""]) >= 4.0);
    assert!(
        sample(
            &after,
            "mailops_graphql_operation_duration_seconds_count",
            &[]
        ) >= 1.0
    );
    assert!(sample(&after, "mailops_websockets_open", &[]) >= 1.0);
    assert!(sample(&after, "mailops_db_pool_connections", &["state=\"max\""]) >= 1.0);
    assert!(
        after.contains("mailops_job_runs_total"),
        "job runs are counted"
    );
}

#[tokio::test]
async fn each_operation_is_logged_once_without_its_variables() {
    let dir = std::env::temp_dir().join(format!("mailops-log-{}", uuid::Uuid::now_v7()));
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_mailops"))
        .env("MAILOPS_BIND", "127.0.0.1:0")
        .env("MAILOPS_DATA_DIR", &dir)
        .env("MAILOPS_ADMIN_PASSWORD", testkit::ADMIN_PASSWORD)
        .env("MAILOPS_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("mailops logs that it listens").unwrap();
        let entry: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(address) = entry["fields"]["address"].as_str() {
            break address.to_string();
        }
    };
    let client = reqwest::Client::new();
    let login = testkit::json_answer(
        client
            .post(format!("http://{address}/graphql"))
            .header("x-request-id", "trace-me-42")
            .json(&json!({
                "query": "mutation SignIn($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
                "variables": { "p": testkit::ADMIN_PASSWORD },
                "operationName": "SignIn"
            })),
    )
    .await;
    assert!(login["data"]["login"]["accessToken"].is_string());
    let _ = server.kill();
    let mut logged = Vec::new();
    for line in lines.map_while(Result::ok) {
        assert!(
            !line.contains(testkit::ADMIN_PASSWORD),
            "a variable reached the log: {line}"
        );
        let entry: Value = serde_json::from_str(&line).unwrap_or_default();
        if entry["fields"]["message"] == "graphql operation" {
            logged.push(entry["fields"].clone());
        }
    }
    let _ = server.wait();
    assert_eq!(logged.len(), 1, "{logged:?}");
    let entry = &logged[0];
    assert_eq!(entry["request_id"], "trace-me-42");
    assert_eq!(entry["operation"], "SignIn");
    assert_eq!(entry["kind"], "mutation");
    assert_eq!(entry["caller"], "anonymous");
    assert_eq!(entry["client"], "127.0.0.1");
    assert_eq!(entry["outcome"], "OK");
    assert!(entry["duration_ms"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn embedded_mode_commits_to_disk_before_answering() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    use sea_orm::ConnectionTrait as _;
    let row = app
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA synchronous",
        ))
        .await
        .unwrap()
        .unwrap();
    let level: i32 = row.try_get_by_index(0).unwrap();
    assert_eq!(level, 2, "synchronous = FULL");
}

#[test]
fn the_shipped_alert_rules_and_dashboard_are_valid_and_name_real_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("deploy/prometheus/alerts.yml");
    if let Ok(output) = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
    {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/mailops.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .chain(
            std::fs::read_to_string(&rules)
                .unwrap()
                .lines()
                .filter_map(|l| l.trim().strip_prefix("expr: ").map(str::to_string)),
        )
        .collect();
    // Every mailops metric they read is one mailops exports.
    let source = std::fs::read_to_string(root.join("src/telemetry/metrics.rs")).unwrap();
    for expr in exprs {
        for name in expr
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("mailops_"))
        {
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                source.contains(&format!("\"{base}\"")),
                "{name} in `{expr}` is not exported"
            );
        }
    }
}
