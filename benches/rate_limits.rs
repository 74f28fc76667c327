//! What the rate limiter costs: `me` through GraphQL with the limits on (a quota high
//! enough that nothing is refused, so every request pays for the check) against the same
//! server with them off, in one run.
//!
//!     cargo bench --bench rate_limits
//!
//! On Postgres with Redis the limiter runs its GCRA script in Redis for every request;
//! on embedded SQLite it is the in-process limiter. Each pair is measured twice, off and
//! on alternating, and the better of the two runs of each is kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONCURRENCY, WINDOW, graphql_ok};
use mailops::config::RateQuota;
use serde_json::json;
use testkit::{Backend, TestApp};

async fn me_per_second(backend: Backend, limited: bool) -> f64 {
    let mut server = TestApp::builder(backend)
        .with_config(move |c| {
            testkit::for_benchmarks(c);
            if limited {
                c.limits.user_rate = Some(RateQuota {
                    per_second: 1_000_000.0,
                    burst: 1_000_000,
                });
            }
        })
        .spawn()
        .await;
    let token = server.admin_token().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let url = format!("http://{}/graphql", server.addr);
    let auth = format!("Bearer {token}");
    let body = json!({ "query": "{ me { id username role } }" });
    let rps = common::throughput(
        &client,
        move |c| c.post(&url).header("authorization", &auth).json(&body),
        graphql_ok,
    )
    .await;
    assert_eq!(server.state.rate_limits.refused(), 0);
    server.stop().await;
    rps
}

async fn row(name: &str, backend: Backend) -> String {
    let (mut off, mut on) = (0f64, 0f64);
    for _ in 0..2 {
        off = off.max(me_per_second(backend, false).await);
        on = on.max(me_per_second(backend, true).await);
    }
    println!("{name}: off {off:.0} req/s, on {on:.0} req/s");
    format!("| {name} | {off:.0} | {on:.0} | {:.0}% |", 100.0 * on / off)
}

#[tokio::main]
async fn main() {
    let sqlite = row("embedded (SQLite), in-process limiter", Backend::Sqlite).await;
    let postgres = row("production (Postgres), limiter in Redis", Backend::Postgres).await;
    let table = format!(
        "Machine: {}. `{{ me {{ id username role }} }}` as the admin, {CONCURRENCY} concurrent clients for {} s per run over loopback HTTP/1.1, load generator in the same process; best of two runs each, off and on alternating.\n\n\
         | backend | limits off (req/s) | limits on (req/s) | on ÷ off |\n|---|---|---|---|\n{sqlite}\n{postgres}\n",
        common::machine(),
        WINDOW.as_secs(),
    );
    println!("{table}");
    common::write_section("rate_limits", "cargo bench --bench rate_limits", &table);
}
