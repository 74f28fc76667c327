//! mailops against its peers on the same database, loaded from outside by `wrk`:
//! PostGraphile v4 serving mailops's own tables, and a plain axum handler that reads the
//! same row with the same driver (sea-orm over sqlx) and has none of mailops's middleware
//! nor authentication: the physical limit of a `node(id)` answer here.
//!
//!     cargo bench --bench peers
//!
//! Needs `wrk` (Debian's package), Node.js and npm: PostGraphile 4 is installed with npm
//! into the target directory the first time. 1,000 nodes × 4 IPs are registered through
//! `registerNode`. Each row is `wrk -t1 -c16 -d8s`, best of two. mailops is asked with an
//! admin's Bearer token, once reading the user row on every request
//! (`MAILOPS_AUTH_CACHE_TTL=0`, as before the principal cache) and once with the cache;
//! PostGraphile is asked anonymously.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
    routing::get,
};
use entity::node;
use mailops::state::AppState;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use testkit::{Backend, TestApp};
use uuid::Uuid;

const NODES: usize = 1_000;
const IPS_PER_NODE: usize = 4;
const DATABASE: &str = "mailops_bench_peers";

/// The row as JSON, read with the same driver mailops uses; nothing else.
async fn plain_node(State(state): State<AppState>, UrlPath(id): UrlPath<Uuid>) -> Json<Value> {
    let n = node::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    Json(json!({ "data": { "node": { "id": n.id, "hostname": n.hostname, "status": n.status } } }))
}

async fn serve_plain(state: AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/node/{id}", get(plain_node))
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// PostGraphile 4 under the target directory, installed once.
fn postgraphile() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-peers");
    let bin = dir.join("node_modules/.bin/postgraphile");
    if !bin.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("postgraphile@4")
            .status()
            .expect("npm (Node.js) to install PostGraphile");
        assert!(status.success(), "npm install postgraphile@4 failed");
    }
    bin
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// PostGraphile on mailops's database. Its Relay `Node` interface would clash with the
/// `nodes` table's type, so that plugin is left out, as its error message suggests.
fn start_postgraphile(database_url: &str) -> (Running, String) {
    let port = testkit::servers::free_port();
    let child = Command::new(postgraphile())
        .args(["-c", database_url, "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args([
            "--disable-query-log",
            "--skip-plugins",
            "graphile-build:NodePlugin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("PostGraphile starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "PostGraphile did not listen");
        std::thread::sleep(Duration::from_millis(200));
    }
    (Running(child), format!("http://127.0.0.1:{port}/graphql"))
}

/// One request as wrk sends it.
#[derive(Clone)]
struct Request {
    url: String,
    /// A GraphQL query to POST, or none for a GET.
    query: Option<String>,
    authorization: Option<String>,
}

impl Request {
    fn graphql(url: &str, query: &str, authorization: Option<&str>) -> Request {
        Request {
            url: url.into(),
            query: Some(query.into()),
            authorization: authorization.map(str::to_owned),
        }
    }

    /// Sends it once and checks that the answer has data and no errors.
    async fn check(&self, client: &reqwest::Client) {
        let request = match &self.query {
            Some(query) => client.post(&self.url).json(&json!({ "query": query })),
            None => client.get(&self.url),
        };
        let request = match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        };
        let body = request.send().await.unwrap().bytes().await.unwrap();
        assert!(
            common::graphql_ok(&body),
            "{}: {}",
            self.url,
            String::from_utf8_lossy(&body)
        );
    }

    /// `wrk -t1 -c16 -d8s`, best of two: requests per second.
    fn wrk(&self, dir: &Path) -> f64 {
        let script = dir.join(format!("{}.lua", Uuid::now_v7()));
        let mut lua = String::new();
        if let Some(query) = &self.query {
            let body = serde_json::to_string(&json!({ "query": query })).unwrap();
            lua.push_str(&format!(
                "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
                lua_string(&body)
            ));
        }
        if let Some(value) = &self.authorization {
            lua.push_str(&format!(
                "wrk.headers[\"Authorization\"] = {}\n",
                lua_string(value)
            ));
        }
        std::fs::write(&script, lua).unwrap();
        let mut best = 0.0_f64;
        for _ in 0..2 {
            let out = Command::new("wrk")
                .args(["-t1", "-c16", "-d8s", "-s"])
                .arg(&script)
                .arg(&self.url)
                .output()
                .expect("wrk (apt-get install wrk)");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains("Non-2xx"),
                "{}: answers that are not 2xx:\n{text}",
                self.url
            );
            let rate = text
                .lines()
                .find_map(|l| l.strip_prefix("Requests/sec:"))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("wrk said:\n{text}"));
            best = best.max(rate);
        }
        rate_settle();
        best
    }
}

/// A Lua string literal of `text`.
fn lua_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A moment between runs, so that one run's connections are closed before the next.
fn rate_settle() {
    std::thread::sleep(Duration::from_millis(500));
}

/// mailops on the benchmark's database with this principal cache.
async fn mailops(cache_ttl: &'static str) -> TestApp {
    TestApp::builder(Backend::Postgres)
        .on_database(DATABASE)
        .with_config(move |c| {
            testkit::for_benchmarks(c);
            c.auth.principal_cache_ttl = if cache_ttl == "0" {
                Duration::ZERO
            } else {
                testkit::duration(cache_ttl)
            };
        })
        .spawn()
        .await
}

#[tokio::main]
async fn main() {
    let scratch = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = mailops("5s").await;
    let database_url = server.database_url().unwrap();
    let id = common::register_bench_nodes(&server, NODES, IPS_PER_NODE).await[0];
    let plain = serve_plain(server.state.clone()).await;
    let (_postgraphile, peer) = start_postgraphile(&database_url);

    let node_query = format!("{{ node(id: \"{id}\") {{ id hostname status }} }}");
    let list = |ips: bool| {
        format!(
            "{{ nodes(first: 50) {{ edges {{ node {{ id hostname status {} }} }} }} }}",
            if ips { "ips { id address }" } else { "" }
        )
    };
    let peer_node = format!("{{ nodeById(id: \"{id}\") {{ id hostname status }} }}");
    let peer_list = |ips: bool| {
        format!(
            "{{ allNodes(first: 50, orderBy: ID_ASC) {{ nodes {{ id hostname status {} }} }} }}",
            if ips {
                "ipAddressesByNodeId { nodes { id address } }"
            } else {
                ""
            }
        )
    };

    let questions = [
        (
            "`node(id) { id hostname status }`",
            node_query.clone(),
            peer_node,
        ),
        ("list of 50 with their IPs", list(true), peer_list(true)),
        ("list of 50, no IPs", list(false), peer_list(false)),
        (
            "`{ __typename }`",
            "{ __typename }".to_string(),
            "{ __typename }".to_string(),
        ),
    ];
    // [user read each request, principal cache, PostGraphile]
    let mut measured: Vec<[f64; 3]> = vec![[0.0; 3]; questions.len()];
    for (i, (_, _, query)) in questions.iter().enumerate() {
        let request = Request::graphql(&peer, query, None);
        request.check(&client).await;
        measured[i][2] = request.wrk(scratch.path());
    }
    let plain_request = Request {
        url: format!("http://{plain}/node/{id}"),
        query: None,
        authorization: None,
    };
    plain_request.check(&client).await;
    let plain_rate = plain_request.wrk(scratch.path());
    server.stop().await;

    // mailops without and with the principal cache, on the same database, one after the
    // other, alone on the machine but for the idle PostGraphile.
    let mut anonymous_typename = [0.0_f64; 2];
    for (pass, ttl) in ["0", "5s"].into_iter().enumerate() {
        let mut server = mailops(ttl).await;
        let graphql = server.url("/graphql");
        let bearer = format!("Bearer {}", server.admin_token().await);
        for (i, (_, query, _)) in questions.iter().enumerate() {
            let request = Request::graphql(&graphql, query, Some(&bearer));
            request.check(&client).await;
            measured[i][pass] = request.wrk(scratch.path());
        }
        let anonymous = Request::graphql(&graphql, "{ __typename }", None);
        anonymous.check(&client).await;
        anonymous_typename[pass] = anonymous.wrk(scratch.path());
        server.stop().await;
    }
    let rows: Vec<(String, [f64; 2])> = questions
        .iter()
        .zip(&measured)
        .map(|((label, _, _), rates)| (label.to_string(), [rates[0], rates[1]]))
        .collect();

    let mut table = String::from(
        "| query | mailops, user read each request (req/s) | mailops, principal cache (req/s) | PostGraphile 4, anonymous (req/s) | cache ÷ PostGraphile | goal |\n|---|---|---|---|---|---|\n",
    );
    for (i, (label, [before, after])) in rows.iter().enumerate() {
        let peer = measured[i][2];
        let goal = if i < 3 { "≥ 3×" } else { "" };
        table.push_str(&format!(
            "| {label} | {before:.0} | {after:.0} | {peer:.0} | {:.2}× | {goal} |\n",
            after / peer
        ));
    }
    table.push_str(&format!(
        "| `{{ __typename }}` anonymous | {:.0} | {:.0} | | | |\n\n\
         | `node(id)` | req/s | mailops (cache) ÷ it | goal |\n|---|---|---|---|\n\
         | plain axum handler: same row, same driver, no middleware, no authentication | {plain_rate:.0} | {:.2}× | ≥ 0.6× |\n",
        anonymous_typename[0],
        anonymous_typename[1],
        measured[0][1] / plain_rate,
    ));
    print!("{table}");
    common::write_section(
        "peers",
        "cargo bench --bench peers",
        &format!(
            "Machine: {}. Release build; Postgres on the same machine; {NODES} nodes × {IPS_PER_NODE} IPs registered through `registerNode`; `wrk -t1 -c16 -d8s` from outside the process, best of two. mailops asked with an admin's Bearer token (its guards, limits and audit as always), PostGraphile {} anonymously on the same database (`--skip-plugins graphile-build:NodePlugin`: its Relay `Node` type clashes with the `nodes` table), the plain handler in the benchmark's process on mailops's own pool.\n\n{table}",
            common::machine(),
            postgraphile_version(),
        ),
    );
}

fn postgraphile_version() -> String {
    let package = postgraphile()
        .parent()
        .and_then(Path::parent)
        .map(|modules| modules.join("postgraphile/package.json"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    package.unwrap_or_else(|| "4".into())
}
