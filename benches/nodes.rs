//! Node reads through GraphQL against baselines measured in the same run, on Postgres.
//!
//!     cargo bench --bench nodes
//!
//! Registers 1,000 nodes with 4 IP addresses each through `registerNode`, then measures over loopback HTTP:
//! - `node(id)` through GraphQL against a plain axum handler serving the same row as
//!   JSON from the same pool, behind the same middleware and after the same
//!   authentication (JWT and user lookup); the plain handler without authentication is
//!   shown too;
//! - `nodes(first: 50) { … ips { … } }` against the same query without `ips`: all 50
//!   nodes' addresses come from one query.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    routing::get,
};
use common::{CONCURRENCY, WINDOW, graphql_ok};
use entity::node;
use mailops::{auth::Principal, auth::Role, state::AppState};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use testkit::{Backend, TestApp};
use uuid::Uuid;

const NODES: usize = 1_000;
const IPS_PER_NODE: usize = 4;

/// Reads the node's row and serializes it as the GraphQL answer would.
async fn node_json(state: &AppState, id: Uuid) -> Value {
    let n = node::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    json!({ "data": { "node": {
        "id": n.id, "hostname": n.hostname, "roles": n.roles_mask, "status": n.status,
        "lastSeenAt": n.last_seen_at, "agentVersion": n.agent_version, "labels": n.labels,
        "description": n.description, "createdAt": n.created_at,
    } } })
}

/// The baseline: authenticate like the GraphQL endpoint does, then read and serialize the row.
async fn plain_node(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Json<Value> {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let principal = Principal::resolve(&state, authorization)
        .await
        .ok()
        .unwrap();
    if principal.require(Role::Viewer).is_err() {
        return Json(json!({ "errors": [{ "message": "unauthenticated" }] }));
    }
    Json(node_json(&state, id).await)
}

async fn plain_node_without_auth(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Json<Value> {
    Json(node_json(&state, id).await)
}

async fn serve_plain(state: AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = state.config.clone();
    let router = Router::new()
        .route("/node/{id}", get(plain_node))
        .route("/open/node/{id}", get(plain_node_without_auth))
        .with_state(state);
    // Behind the same middleware as /graphql, so the ratio measures GraphQL alone.
    let router = mailops::app::with_middleware(router, &config);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Cycles through the seeded ids so that every request reads another row.
fn next_id(ids: &Arc<Vec<Uuid>>, counter: &Arc<AtomicUsize>) -> Uuid {
    ids[counter.fetch_add(1, Ordering::Relaxed) % ids.len()]
}

#[tokio::main]
async fn main() {
    let mut server = TestApp::builder(Backend::Postgres)
        .with_config(testkit::for_benchmarks)
        .spawn()
        .await;
    let ids = Arc::new(common::register_bench_nodes(&server, NODES, IPS_PER_NODE).await);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let graphql = format!("http://{}/graphql", server.addr);
    let bearer = format!("Bearer {}", server.admin_token().await);
    let plain = serve_plain(server.state.clone()).await;
    let counter = Arc::new(AtomicUsize::new(0));

    let node_query = "query($id: ID) { node(id: $id) { id hostname roles status lastSeenAt agentVersion labels { key value } description createdAt } }";
    let (url, auth, ids_, counter_) = (
        graphql.clone(),
        bearer.clone(),
        ids.clone(),
        counter.clone(),
    );
    let gql_node = common::throughput(
        &client,
        move |c| {
            c.post(&url).header("authorization", &auth).json(&json!({
                "query": node_query, "variables": { "id": next_id(&ids_, &counter_) } }))
        },
        graphql_ok,
    )
    .await;
    let (auth, ids_, counter_) = (bearer.clone(), ids.clone(), counter.clone());
    let plain_node = common::throughput(
        &client,
        move |c| {
            c.get(format!("http://{plain}/node/{}", next_id(&ids_, &counter_)))
                .header("authorization", &auth)
        },
        graphql_ok,
    )
    .await;
    let (ids_, counter_) = (ids.clone(), counter.clone());
    let open_node = common::throughput(
        &client,
        move |c| {
            c.get(format!(
                "http://{plain}/open/node/{}",
                next_id(&ids_, &counter_)
            ))
        },
        graphql_ok,
    )
    .await;

    let list = |with_ips: bool| {
        let ips = if with_ips { "ips { id address }" } else { "" };
        format!(
            "{{ nodes(first: 50) {{ edges {{ node {{ id hostname status roles labels {{ key value }} {ips} }} }} }} }}"
        )
    };
    let mut lists = Vec::new();
    for with_ips in [true, false] {
        let (url, auth, query) = (graphql.clone(), bearer.clone(), list(with_ips));
        let make = move |c: &reqwest::Client| {
            c.post(&url)
                .header("authorization", &auth)
                .json(&json!({ "query": query }))
        };
        lists.push(common::throughput(&client, make, graphql_ok).await);
    }
    let (with_ips, without_ips) = (lists[0], lists[1]);

    server.stop().await;

    let table = format!(
        "Machine: {}. Postgres, {NODES} nodes × {IPS_PER_NODE} IPs; {CONCURRENCY} concurrent clients for {} s per row, over loopback HTTP/1.1, load generator in the same process.\n\n\
         | operation | req/s | ratio | goal |\n|---|---|---|---|\n\
         | `node(id)` through GraphQL | {gql_node:.0} | | |\n\
         | same row, plain axum handler behind mailops's own middleware and authentication (the GraphQL layer's cost alone, not a peer: see `--bench peers`) | {plain_node:.0} | GraphQL = {:.0}% of it | ≥ 70% |\n\
         | same row, plain axum handler, no authentication | {open_node:.0} | GraphQL = {:.0}% of it | |\n\
         | `nodes(first: 50)` with `ips` (one query for the page's IPs) | {with_ips:.0} | {:.0}% of the query without `ips` | ≥ 50% |\n\
         | `nodes(first: 50)` without `ips` | {without_ips:.0} | | |\n",
        common::machine(),
        WINDOW.as_secs(),
        100.0 * gql_node / plain_node,
        100.0 * gql_node / open_node,
        100.0 * with_ips / without_ips,
    );
    println!("{table}");
    common::write_section("nodes", "cargo bench --bench nodes", &table);
}
