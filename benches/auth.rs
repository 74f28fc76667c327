//! Login latency and `me` throughput, each against a baseline measured in the same run.
//!
//!     cargo bench --bench auth
//!
//! Starts mailops on embedded SQLite and on Postgres (`MAILOPS_BENCH_POSTGRES`, default
//! postgres://postgres@127.0.0.1:5432) and measures, over loopback HTTP:
//! - login: `login` through GraphQL against a bare argon2id verification (the floor);
//! - me: `{ me { id username role } }` through GraphQL against a plain axum handler that
//!   does the same work (verify the JWT, load the user, answer JSON) on the same pool,
//!   behind the same middleware.
//!
//! Prints a Markdown table and writes it into BENCHMARKS.md between the `auth` markers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use axum::{Json, Router, extract::State, http::HeaderMap, routing::get};
use common::{CONCURRENCY, WINDOW, graphql_ok, ms, percentile};
use mailops::state::AppState;
use secrecy::SecretString;
use serde_json::{Value, json};
use testkit::{ADMIN_PASSWORD, Backend, TestApp};

const LOGINS: usize = 30;

/// The baseline for `me`: the same work as the resolver, without GraphQL.
async fn plain_me(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Ok((id, _)) = state.tokens.verify_access(token) else {
        return Json(json!({ "errors": [{ "message": "unauthenticated" }] }));
    };
    let user = mailops::users::find(&state.db, id)
        .await
        .ok()
        .flatten()
        .expect("user");
    Json(
        json!({ "data": { "me": { "id": user.id, "username": user.username, "role": user.role } } }),
    )
}

async fn serve_plain(state: AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = state.config.clone();
    let router = Router::new().route("/me", get(plain_me)).with_state(state);
    // Behind the same middleware as /graphql, so the ratio measures GraphQL alone.
    let router = mailops::app::with_middleware(router, &config);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn measure(name: &str, backend: Backend) -> String {
    let mut server = TestApp::builder(backend)
        .with_config(testkit::for_benchmarks)
        .spawn()
        .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let graphql = format!("http://{}/graphql", server.addr);

    let passwords = mailops::auth::Passwords::new().unwrap();
    let hash = passwords
        .hash(&SecretString::from(ADMIN_PASSWORD))
        .await
        .unwrap();
    let mut argon = Vec::new();
    for _ in 0..LOGINS {
        let t = Instant::now();
        assert!(
            passwords
                .verify(&SecretString::from(ADMIN_PASSWORD), Some(&hash))
                .await
                .unwrap()
        );
        argon.push(t.elapsed());
    }
    let mut logins = Vec::new();
    let mut token = String::new();
    for _ in 0..LOGINS {
        let t = Instant::now();
        token = server.admin_token().await;
        logins.push(t.elapsed());
    }
    argon.sort();
    logins.sort();

    let plain = format!("http://{}/me", serve_plain(server.state.clone()).await);
    let bearer = format!("Bearer {token}");
    let me_body = json!({ "query": "{ me { id username role } }" });
    let (auth, url) = (bearer.clone(), graphql.clone());
    let gql_rps = common::throughput(
        &client,
        move |c| c.post(&url).header("authorization", &auth).json(&me_body),
        graphql_ok,
    )
    .await;
    let auth = bearer.clone();
    let plain_rps = common::throughput(
        &client,
        move |c| c.get(&plain).header("authorization", &auth),
        graphql_ok,
    )
    .await;

    server.stop().await;
    format!(
        "| {name} | {} / {} | {} / {} | {:.2} | {:.0} | {:.0} | {:.0}% |",
        ms(percentile(&argon, 0.5)),
        ms(percentile(&argon, 0.95)),
        ms(percentile(&logins, 0.5)),
        ms(percentile(&logins, 0.95)),
        percentile(&logins, 0.5).as_secs_f64() / percentile(&argon, 0.5).as_secs_f64(),
        gql_rps,
        plain_rps,
        100.0 * gql_rps / plain_rps,
    )
}

#[tokio::main]
async fn main() {
    let sqlite = measure("embedded (SQLite)", Backend::Sqlite).await;
    let postgres = measure("production (Postgres)", Backend::Postgres).await;

    let table = format!(
        "Machine: {}. {LOGINS} sequential logins; `me` with {CONCURRENCY} concurrent clients for {} s each, over loopback HTTP/1.1, load generator in the same process.\n\n\
         | backend | argon2id verify p50 / p95 (ms) | `login` p50 / p95 (ms) | login ÷ argon2 | `me` GraphQL (req/s) | plain axum handler (req/s) | GraphQL ÷ plain |\n\
         |---|---|---|---|---|---|---|\n{sqlite}\n{postgres}\n",
        common::machine(),
        WINDOW.as_secs(),
    );
    println!("{table}");
    common::write_section("auth", "cargo bench --bench auth", &table);
}
