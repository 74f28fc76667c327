//! `overview` throughput with and without its cache, on 30 days of seeded data.
//!
//! Seeds 15 nodes × 30 days (metrics, and 10 mail events per node and minute) through
//! `mailops dev seed`'s code into the database `mailops_bench_overview` (kept between
//! runs; a later run adds only what is missing), then runs two instances on it with Redis:
//! one with the default 30 s cache, one computing every answer. Both are measured with the
//! same closed-loop load, next to a trivial query as the baseline of the HTTP and GraphQL
//! path itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use mailops::seed::SeedOptions;
use sea_orm::ConnectionTrait as _;
use serde_json::json;
use testkit::{Backend, TestApp};
use uuid::Uuid;

const DATABASE: &str = "mailops_bench_overview";
const NODES: usize = 15;
const DAYS: u32 = 30;
const MAIL_PER_MINUTE: u32 = 10;
const SEQUENTIAL_RUNS: usize = 50;
const OVERVIEW: &str = "{ overview { health reasons { level code message } nodes { total online stale down maintenance }
    lastHour { queued delivered deferred bounced rejected dropped sent deliveredRate deferredRate bounceRate }
    queue { active deferred total } blacklistedIps activeAlerts { warning critical total } generatedAt } }";

/// A server on the seeded database with its own Redis prefix and overview cache.
async fn start(cache_ttl: Option<std::time::Duration>) -> TestApp {
    TestApp::builder(Backend::Postgres)
        .on_database(DATABASE)
        .with_config(move |c| {
            testkit::for_benchmarks(c);
            c.redis.prefix = format!("mailops-bench-{}:", Uuid::now_v7().simple());
            c.overview.cache_ttl = cache_ttl;
        })
        .spawn()
        .await
}

#[tokio::main]
async fn main() {
    let mut cached = start(Some(std::time::Duration::from_secs(30))).await;

    common::seed_twice(
        &cached.state,
        SeedOptions {
            nodes: NODES,
            days: DAYS,
            concurrency: 2,
            mail_per_minute: MAIL_PER_MINUTE,
        },
    )
    .await;
    let mut uncached = start(None).await;

    let client = reqwest::Client::new();
    let graphql_cached = format!("http://{}/graphql", cached.addr);
    let graphql_uncached = format!("http://{}/graphql", uncached.addr);
    let token = cached.admin_token().await;

    let request = |url: String, query: &'static str| {
        let token = token.clone();
        move |client: &reqwest::Client| {
            client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "query": query }))
        }
    };
    let sample = testkit::json_answer(request(graphql_uncached.clone(), OVERVIEW)(&client)).await;
    println!("{sample}");
    let sent = sample["data"]["overview"]["lastHour"]["sent"]
        .as_i64()
        .unwrap_or(0);
    assert!(sent > 0, "the seeded last hour has mail: {sample}");

    let mut times = Vec::with_capacity(SEQUENTIAL_RUNS);
    for _ in 0..SEQUENTIAL_RUNS {
        let started = Instant::now();
        let body = request(graphql_uncached.clone(), OVERVIEW)(&client)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(common::graphql_ok(&body));
        times.push(started.elapsed());
    }
    times.sort();

    let baseline = common::throughput(
        &client,
        request(graphql_cached.clone(), "{ __typename }"),
        common::graphql_ok,
    )
    .await;
    let computed_before = cached.state.overview.computations();
    let with_cache = common::throughput(
        &client,
        request(graphql_cached.clone(), OVERVIEW),
        common::graphql_ok,
    )
    .await;
    let computed = cached.state.overview.computations() - computed_before;
    let without_cache = common::throughput(
        &client,
        request(graphql_uncached.clone(), OVERVIEW),
        common::graphql_ok,
    )
    .await;

    let counts = |table: &str| {
        let db = cached.state.db.clone();
        let sql = format!("SELECT COUNT(*) FROM {table}");
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get_by_index::<i64>(0).ok())
            .unwrap_or(0)
        }
    };
    let (events, minutes, hours) = (
        counts("mail_events").await,
        counts("mail_flow_1m").await,
        counts("mail_flow_1h").await,
    );
    let window = common::WINDOW.as_secs();
    let table = format!(
        "| query | requests/s | ÷ baseline |\n|---|---|---|\n\
         | `{{ __typename }}` (baseline) | {baseline:.0} | 1.00 |\n\
         | `overview`, cached 30 s (Redis) | {with_cache:.0} | {:.2} |\n\
         | `overview`, computed every time | {without_cache:.0} | {:.3} |\n",
        with_cache / baseline,
        without_cache / baseline,
    );
    print!("{table}");
    let summary = format!(
        "The cache serves {:.0}× the requests of computing every time; during the cached {window} s window the overview was computed {computed} time(s). One uncached overview, one request at a time: p50 {} ms, p95 {} ms.",
        with_cache / without_cache,
        common::ms(common::percentile(&times, 0.5)),
        common::ms(common::percentile(&times, 0.95)),
    );
    println!("{summary}");
    common::write_section(
        "overview",
        "cargo bench --bench overview",
        &format!(
            "Machine: {}. Postgres and Redis; {NODES} nodes × {DAYS} days seeded through the ingestion services: 40 metric series per node every 15 s, and {MAIL_PER_MINUTE} mail events per node and minute ({events} raw events kept for 7 days, {minutes} per-minute and {hours} per-hour counter rows). {} clients in a closed loop for {window} s per row over loopback HTTP/1.1; the full overview selection.\n\n{table}\n{summary}\n",
            common::machine(),
            common::CONCURRENCY,
        ),
    );
    cached.stop().await;
    uncached.stop().await;
}
