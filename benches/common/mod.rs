//! What the benchmark programs share besides the test kit (which starts mailops): a
//! closed-loop load generator, percentiles, and writing results into BENCHMARKS.md.
#![allow(dead_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

pub const CONCURRENCY: usize = 32;
pub const WINDOW: Duration = Duration::from_secs(5);

/// Requests per second over `WINDOW` with `CONCURRENCY` clients in a closed loop. Every
/// response is checked with `check` before it counts.
pub async fn throughput(
    client: &reqwest::Client,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
    check: fn(&[u8]) -> bool,
) -> f64 {
    let make = Arc::new(make);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..50 {
        send_checked(make(client), check).await;
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, make, done, stop) =
                (client.clone(), make.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    send_checked(make(&client), check).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn send_checked(request: reqwest::RequestBuilder, check: fn(&[u8]) -> bool) {
    let body = request
        .send()
        .await
        .expect("sent")
        .bytes()
        .await
        .expect("body");
    assert!(
        check(&body),
        "unexpected response: {}",
        String::from_utf8_lossy(&body)
    );
}

/// A Postgres server for the ingestion benchmarks, with `pool` database connections.
pub async fn ingest_server(pool: usize) -> testkit::TestApp {
    testkit::TestApp::builder(testkit::Backend::Postgres)
        .with_config(move |c| {
            testkit::for_benchmarks(c);
            c.database.max_connections = pool as u32;
        })
        .spawn()
        .await
}

/// Sends every agent's batches (bodies of `field`, each accepting `expected` items), all
/// agents at once; returns the time it took and how many
/// batches were sent again, as agents do, after a RATE_LIMITED answer (mailops busy) or a
/// dropped connection.
pub async fn send_agent_batches(
    graphql: &str,
    keys: &[String],
    bodies: Vec<Vec<Vec<u8>>>,
    field: &'static str,
    expected: usize,
) -> (Duration, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(keys.len())
        .build()
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = keys
        .iter()
        .zip(bodies)
        .map(|(key, bodies)| {
            let (client, graphql, auth) =
                (client.clone(), graphql.to_string(), format!("ApiKey {key}"));
            tokio::spawn(async move {
                let mut retried = 0;
                for body in bodies {
                    loop {
                        let sent = client
                            .post(&graphql)
                            .header("authorization", &auth)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        // A dropped connection is retried like a busy answer: the batch id
                        // makes resending safe.
                        let Ok(response) = sent else {
                            retried += 1;
                            continue;
                        };
                        let answer: serde_json::Value = response.json().await.expect("answered");
                        let error = &answer["errors"][0]["extensions"];
                        if error["code"] == "RATE_LIMITED" {
                            retried += 1;
                            let wait = error["retryAfterSeconds"].as_f64().unwrap_or(1.0);
                            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                            continue;
                        }
                        assert_eq!(answer["data"][field]["accepted"], expected, "{answer}");
                        break;
                    }
                }
                retried
            })
        })
        .collect();
    let mut retried = 0;
    for task in tasks {
        retried += task.await.unwrap();
    }
    (started.elapsed(), retried)
}

/// Sends each payload through `COPY … FROM STDIN` (`statement`), `connections` at once,
/// on the Postgres pool of `state`; returns the time it took.
pub async fn copy_in(
    state: &mailops::state::AppState,
    statement: &str,
    payloads: Vec<Vec<u8>>,
    connections: usize,
) -> Duration {
    use futures_util::{StreamExt as _, stream};
    let pool = state.db.get_postgres_connection_pool().clone();
    let started = Instant::now();
    stream::iter(payloads)
        .map(|payload| {
            let pool = pool.clone();
            async move {
                let mut conn = pool.acquire().await.unwrap();
                let mut copy = conn.copy_in_raw(statement).await.unwrap();
                copy.send(payload).await.unwrap();
                copy.finish().await.unwrap();
            }
        })
        .buffer_unordered(connections)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

/// A GraphQL response with data and no errors.
pub fn graphql_ok(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v["errors"].is_null() && v["data"].is_object())
        .unwrap_or(false)
}

/// Seeds the database as `mailops dev seed` does, twice: the second pass adds what
/// arrived while the first ran, so the last hour is full. Then refreshes the planner's
/// statistics.
pub async fn seed_twice(state: &mailops::state::AppState, options: mailops::seed::SeedOptions) {
    use sea_orm::ConnectionTrait as _;
    for _ in 0..2 {
        let seeded = mailops::seed::run(state, options).await.expect("seeding");
        println!("seed: {seeded:?}");
    }
    state.db.execute_unprepared("ANALYZE").await.unwrap();
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The 1-minute load average: other work on the machine shows in latencies.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// Replaces the section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`.
pub fn write_section(name: &str, command: &str, body: &str) {
    // The workspace's BENCHMARKS.md, also from a member crate's benchmark.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("BENCHMARKS.md"))
        .find(|file| file.exists())
        .expect("BENCHMARKS.md in the workspace");
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let section = format!("{open}\nCommand: `{command}`\n\n{body}{close}");
    let updated = match (current.find(&open), current.find(&close)) {
        (Some(start), Some(end)) => format!(
            "{}{section}{}",
            &current[..start],
            &current[end + close.len()..]
        ),
        _ => format!("{}\n\n{section}\n", current.trim_end()),
    };
    std::fs::write(&path, updated).expect("write BENCHMARKS.md");
}

/// The `ingestMailEvents` request of one batch, under `batch_id`.
pub fn mail_batch_body(batch: &mailops::mailflow::MailEventBatchInput, batch_id: &str) -> Vec<u8> {
    const INGEST: &str =
        "mutation($b: MailEventBatchInput!) { ingestMailEvents(batch: $b) { accepted duplicate } }";
    let events: Vec<serde_json::Value> = batch
        .events
        .iter()
        .map(|e| {
            serde_json::json!({
                "ts": e.ts.to_rfc3339(), "messageId": e.message_id,
                "status": e.status.as_str(), "sendingIp": e.sending_ip,
                "recipientDomain": e.recipient_domain, "zone": e.zone,
                "smtpCode": e.smtp_code, "response": e.response,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "query": INGEST, "variables": { "b": {
        "batchId": batch_id, "events": events } } }))
    .expect("a batch serialises")
}

/// Registers `nodes` nodes with `ips_per_node` addresses each through `registerNode`, as
/// agents do, skipping those an earlier run on the same database registered; returns every
/// node's id in hostname order.
pub async fn register_bench_nodes(
    server: &testkit::TestApp,
    nodes: usize,
    ips_per_node: usize,
) -> Vec<uuid::Uuid> {
    use sea_orm::{ConnectionTrait as _, Statement};
    let db = &server.state.db;
    let ids = || async {
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM nodes ORDER BY hostname",
        ))
        .await
        .expect("nodes read")
        .iter()
        .map(|row| row.try_get_by_index::<uuid::Uuid>(0).expect("an id"))
        .collect::<Vec<_>>()
    };
    let registered = ids().await.len();
    if registered < nodes {
        let enrollment = server.enrollment_key(None).await;
        for n in registered..nodes {
            let ips: Vec<String> = (0..ips_per_node)
                .map(|k| {
                    let host = n * ips_per_node + k;
                    std::net::Ipv4Addr::new(198, 18, (host / 256) as u8, (host % 256) as u8)
                        .to_string()
                })
                .collect();
            let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
            server
                .register_node(&enrollment, &format!("node-{n:04}.bench.example"), &ips)
                .await;
        }
    }
    ids().await
}

/// `batches_per_agent` batches of `mailops dev seed`'s mail for each agent (its IPs at the
/// same index): consecutive 20-minute spans of 50 events a minute, ending an hour ago.
pub fn seed_mail_batches(
    batches_per_agent: usize,
    ips: &[Vec<String>],
) -> Vec<Vec<mailops::mailflow::MailEventBatchInput>> {
    use chrono::{DurationRound as _, TimeDelta, Utc};
    let first = Utc::now()
        .duration_trunc(TimeDelta::hours(1))
        .expect("an hour")
        - TimeDelta::minutes((batches_per_agent * 20) as i64 + 60);
    ips.iter()
        .enumerate()
        .map(|(agent, ips)| {
            (0..batches_per_agent)
                .map(|i| {
                    let start = first + TimeDelta::minutes(i as i64 * 20);
                    mailops::seed::mail::batch(
                        agent,
                        &mailops::seed::hostname(agent),
                        ips,
                        start.timestamp(),
                        20,
                        50,
                    )
                })
                .collect()
        })
        .collect()
}

/// The `ingestMailEvents` requests of every agent's batches, named `bench-<i>`.
pub fn mail_batch_bodies(
    batches: &[Vec<mailops::mailflow::MailEventBatchInput>],
) -> Vec<Vec<Vec<u8>>> {
    batches
        .iter()
        .map(|agent| {
            agent
                .iter()
                .enumerate()
                .map(|(i, batch)| mail_batch_body(batch, &format!("bench-{i}")))
                .collect()
        })
        .collect()
}
