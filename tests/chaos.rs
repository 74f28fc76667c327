//! The chaos suite: nothing acknowledged is lost, nothing is stored twice, while mailops is
//! killed with SIGKILL mid-ingest, its Postgres restarts and its Redis restarts empty.
//!
//! Two real `mailops` processes share a Postgres cluster and a Redis server of the suite's
//! own (the shared ones are never touched). 20 agents send batches with unique ids to
//! instance A and resend whatever was not acknowledged, as the agent does; a dashboard stays
//! subscribed on instance B. Meanwhile A is killed and restarted twice, Postgres restarts
//! and Redis restarts. Then a checker reads the database: every acknowledged batch stored
//! exactly once, every sample once, the rollups equal to the raw samples, and the dashboard
//! told of every batch. It prints the counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use testkit::{
    servers::{MailopsProcess, PgCluster, RedisServer},
    ws::{WsClient, bearer},
};

const AGENTS: usize = 20;
const BATCHES_PER_AGENT: usize = 60;
/// How often an agent pushes, so that ingestion spans every fault.
const PUSH_EVERY: Duration = Duration::from_millis(100);
const SAMPLES_PER_BATCH: usize = 20;
const DEADLINE: Duration = Duration::from_secs(120);
const JWT_SECRET: &str = "chaos-suite-secret-that-is-long-enough-0123";
const INGEST: &str =
    "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted duplicate } }";

/// One `mailops serve` process of the suite, on the suite's Postgres and Redis.
fn instance(database: &str, redis: &str) -> MailopsProcess {
    MailopsProcess::start(
        env!("CARGO_BIN_EXE_mailops"),
        &[
            ("DATABASE_URL", database.to_owned()),
            ("REDIS_URL", redis.to_owned()),
            ("MAILOPS_JWT_SECRET", JWT_SECRET.into()),
            ("MAILOPS_INTROSPECTION", "true".into()),
            ("MAILOPS_REDIS_PREFIX", "chaos:".into()),
            ("MAILOPS_RATE_LIMIT_AGENT", "off".into()),
            ("MAILOPS_RATE_LIMIT_ANONYMOUS", "off".into()),
            ("RUST_LOG", "warn".into()),
        ],
    )
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    query: &str,
    variables: Value,
) -> Option<Value> {
    let mut request = client
        .post(url)
        .timeout(Duration::from_secs(15))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.ok()?.json().await.ok()
}

/// What the agents saw.
#[derive(Default)]
struct Counts {
    acknowledged: AtomicU64,
    duplicates_answered: AtomicU64,
    resent: AtomicU64,
    /// Refusals by code, and sends that got no answer at all (`NONE`).
    refusals: Mutex<std::collections::BTreeMap<String, u64>>,
}

fn samples(agent: usize, batch: usize) -> Vec<Value> {
    // Distinct timestamps per batch, so every sample is its own row.
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    (0..SAMPLES_PER_BATCH)
        .map(|i| {
            let ts = base + chrono::Duration::seconds((batch * SAMPLES_PER_BATCH + i) as i64);
            json!({ "name": "system.load1", "ts": ts.to_rfc3339(), "value": (agent * 1000 + batch * 10 + i) as f64 })
        })
        .collect()
}

/// One agent: sends its batches to `url` in order, each until acknowledged.
async fn agent(url: String, key: String, index: usize, counts: Arc<Counts>) {
    let client = reqwest::Client::new();
    let auth = format!("ApiKey {key}");
    for batch in 0..BATCHES_PER_AGENT {
        tokio::time::sleep(PUSH_EVERY).await;
        // The batch is made once, as the agent spools it: a resend is the same content.
        let variables = json!({ "b": { "batchId": format!("a{index}-b{batch}"), "samples": samples(index, batch) } });
        let mut attempt = 0;
        loop {
            if attempt > 0 {
                counts.resent.fetch_add(1, Ordering::Relaxed);
            }
            attempt += 1;
            match post(&client, &url, Some(&auth), INGEST, variables.clone()).await {
                Some(answer)
                    if answer["data"]["ingestMetrics"]["accepted"] == SAMPLES_PER_BATCH =>
                {
                    if answer["data"]["ingestMetrics"]["duplicate"] == true {
                        counts.duplicates_answered.fetch_add(1, Ordering::Relaxed);
                    }
                    counts.acknowledged.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(answer) => {
                    let code = answer["errors"][0]["extensions"]["code"]
                        .as_str()
                        .unwrap_or_default();
                    // Only codes that say "try again": a batch is never refused for good,
                    // and no fault shows as INTERNAL.
                    assert!(
                        matches!(code, "RATE_LIMITED" | "UNAVAILABLE" | "TIMEOUT"),
                        "a send was refused with {code}: {answer}"
                    );
                    *counts
                        .refusals
                        .lock()
                        .unwrap()
                        .entry(code.to_string())
                        .or_default() += 1;
                }
                None => {
                    *counts
                        .refusals
                        .lock()
                        .unwrap()
                        .entry("NONE".into())
                        .or_default() += 1
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_kills_and_restarts() {
    let started = Instant::now();
    let cluster = PgCluster::create();
    cluster.create_database("mailops");
    let mut redis = RedisServer::start();
    let database = cluster.url("mailops");
    let mut a = instance(&database, &redis.url());
    let b = instance(&database, &redis.url());

    let client = reqwest::Client::new();
    let login = post(
        &client,
        &b.url(),
        None,
        "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
        json!({ "p": testkit::ADMIN_PASSWORD }),
    )
    .await
    .unwrap();
    let admin = login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer_admin = format!("Bearer {admin}");
    let created = post(
        &client,
        &b.url(),
        Some(&bearer_admin),
        "mutation { createEnrollmentKey(input: { name: \"chaos\" }) { key } }",
        json!({}),
    )
    .await
    .unwrap();
    let enrollment = format!(
        "ApiKey {}",
        created["data"]["createEnrollmentKey"]["key"]
            .as_str()
            .unwrap()
    );
    let mut keys = Vec::new();
    for index in 0..AGENTS {
        let registered = post(
            &client,
            &b.url(),
            Some(&enrollment),
            "mutation($i: RegisterNodeInput!) { registerNode(input: $i) { apiKey } }",
            json!({ "i": { "hostname": format!("chaos{index}.example.com"), "roles": ["MTA"] } }),
        )
        .await
        .unwrap();
        keys.push(
            registered["data"]["registerNode"]["apiKey"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    // The dashboard on B, which nothing kills: it resumes with `after` if its socket drops.
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let dashboard = {
        let (seen, addr, admin) = (seen.clone(), b.addr(), admin.clone());
        let mut socket = WsClient::ready(addr, bearer(&admin)).await;
        socket
            .subscribe(
                "m",
                "subscription { metricsUpdated { sequence batchId } }",
                json!({}),
            )
            .await;
        socket.barrier().await;
        tokio::spawn(async move {
            loop {
                let message = socket.next_json().await;
                if let Some(batch) =
                    message["payload"]["data"]["metricsUpdated"]["batchId"].as_str()
                {
                    seen.lock().unwrap().insert(batch.to_string());
                }
            }
        })
    };

    let counts = Arc::new(Counts::default());
    let agents: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(index, key)| tokio::spawn(agent(a.url(), key.clone(), index, counts.clone())))
        .collect();

    let wait = |ms| tokio::time::sleep(Duration::from_millis(ms));
    wait(1_000).await;
    a.kill(); // mid-ingest
    wait(700).await;
    a.launch();
    wait(1_000).await;
    cluster.restart();
    wait(1_200).await;
    redis.restart();
    wait(1_000).await;
    a.kill();
    a.launch();

    for agent in agents {
        tokio::time::timeout(DEADLINE.saturating_sub(started.elapsed()), agent)
            .await
            .expect("every batch was acknowledged in time")
            .unwrap();
    }
    let total = (AGENTS * BATCHES_PER_AGENT) as u64;
    assert_eq!(counts.acknowledged.load(Ordering::Relaxed), total);

    // The checker reads the database itself.
    let db = Database::connect(database.as_str()).await.unwrap();
    let number = |sql: &'static str| {
        let db = &db;
        async move {
            let row = db
                .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    let batches = number("SELECT count(*) FROM metric_batches WHERE batch_id LIKE 'a%-b%'").await;
    let distinct = number("SELECT count(DISTINCT (node_id, batch_id)) FROM metric_batches").await;
    let stored_samples = number("SELECT count(*) FROM metric_samples").await;
    let rollup_samples =
        number("SELECT coalesce(sum(count), 0)::bigint FROM metric_rollups_1m").await;
    let raw_sum = number("SELECT round(coalesce(sum(value), 0))::bigint FROM metric_samples").await;
    let rollup_sum =
        number("SELECT round(coalesce(sum(sum), 0))::bigint FROM metric_rollups_1m").await;
    let expected_samples = (total as usize * SAMPLES_PER_BATCH) as i64;

    // The dashboard hears of the last batches within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    let missed = loop {
        let seen = seen.lock().unwrap().clone();
        let missed: Vec<String> = (0..AGENTS)
            .flat_map(|a| (0..BATCHES_PER_AGENT).map(move |b| format!("a{a}-b{b}")))
            .filter(|id| !seen.contains(id))
            .collect();
        if missed.is_empty() || Instant::now() > deadline {
            break missed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    dashboard.abort();

    println!(
        "chaos: {total} batches acknowledged ({} answered as duplicates of an earlier store), {} sends repeated; \
         stored {batches} batches ({distinct} distinct), {stored_samples} samples of {expected_samples}, \
         rollups count {rollup_samples}; retryable refusals {:?}; the dashboard missed {}; lost: {}; in {:.1} s",
        counts.duplicates_answered.load(Ordering::Relaxed),
        counts.resent.load(Ordering::Relaxed),
        counts.refusals.lock().unwrap(),
        missed.len(),
        total as i64 - batches,
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(batches, total as i64, "every acknowledged batch is stored");
    assert_eq!(distinct, batches, "no batch is stored twice");
    assert_eq!(stored_samples, expected_samples, "every sample once");
    assert_eq!(
        rollup_samples, stored_samples,
        "the rollups count every raw sample"
    );
    assert_eq!(rollup_sum, raw_sum, "the rollups add up to the raw samples");
    assert!(
        missed.is_empty(),
        "the dashboard was not told of {missed:?}"
    );
}
