//! Login latency and `me` throughput, each against a baseline measured in the same run.
//!
//!     cargo bench --bench auth
//!
//! Starts mailops on embedded SQLite and on Postgres (`MAILOPS_BENCH_POSTGRES`, default
//! postgres://postgres@127.0.0.1:5432) and measures, over loopback HTTP:
//! - login: `login` through GraphQL against a bare argon2id verification (the floor);
//! - me: `{ me { id username role } }` through GraphQL against a plain axum handler that
//!   does the same work (verify the JWT, load the user, answer JSON) on the same pool.
//!
//! Prints a Markdown table and writes it into BENCHMARKS.md between the `auth` markers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, http::HeaderMap, routing::get};
use mailops::{Application, Config, state::AppState};
use sea_orm::ConnectionTrait as _;
use secrecy::SecretString;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "benchmark-admin-password";
const LOGINS: usize = 30;
const CONCURRENCY: usize = 32;
const WINDOW: Duration = Duration::from_secs(5);

struct Started {
    addr: std::net::SocketAddr,
    state: AppState,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(vars: HashMap<&'static str, String>) -> Started {
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let app = Application::build(config).await.expect("mailops starts");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Started { addr, state, stop }
}

/// The baseline for `me`: the same work as the resolver, without GraphQL.
async fn plain_me(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Ok(id) = state.tokens.verify_access(token) else {
        return Json(json!({ "error": "unauthenticated" }));
    };
    let user = mailops::users::service::find(&state.db, id)
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
    let router = Router::new().route("/me", get(plain_me)).with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Requests per second over `WINDOW` with `CONCURRENCY` clients in a closed loop.
async fn throughput(
    client: &reqwest::Client,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> f64 {
    let make = Arc::new(make);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Warm up the pool and connections.
    for _ in 0..50 {
        let response = make(client).send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, make, done, stop) =
                (client.clone(), make.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let body = make(&client).send().await.unwrap().bytes().await.unwrap();
                    assert!(!body.is_empty());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn measure(name: &str, vars: HashMap<&'static str, String>) -> String {
    let server = start(vars).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let graphql = format!("http://{}/graphql", server.addr);

    // Login: argon2 alone, then the whole mutation.
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
    let login_body = json!({
        "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
        "variables": { "p": ADMIN_PASSWORD }
    });
    let mut logins = Vec::new();
    let mut token = String::new();
    for _ in 0..LOGINS {
        let t = Instant::now();
        let body: Value = client
            .post(&graphql)
            .json(&login_body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        logins.push(t.elapsed());
        token = body["data"]["login"]["accessToken"]
            .as_str()
            .expect("login works")
            .to_string();
    }
    argon.sort();
    logins.sort();

    // me: GraphQL against the plain handler.
    let plain = format!("http://{}/me", serve_plain(server.state.clone()).await);
    let bearer = format!("Bearer {token}");
    let me_body = json!({ "query": "{ me { id username role } }" });
    let auth = bearer.clone();
    let gql_url = graphql.clone();
    let gql_rps = throughput(&client, move |c| {
        c.post(&gql_url)
            .header("authorization", &auth)
            .json(&me_body)
    })
    .await;
    let auth = bearer.clone();
    let plain_rps = throughput(&client, move |c| {
        c.get(&plain).header("authorization", &auth)
    })
    .await;

    let _ = server.stop.send(());
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

#[tokio::main]
async fn main() {
    let base = |dir: &std::path::Path| {
        HashMap::from([
            ("MAILOPS_BIND", "127.0.0.1:0".to_string()),
            ("MAILOPS_DATA_DIR", dir.display().to_string()),
            ("MAILOPS_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("MAILOPS_LOG_FORMAT", "json".to_string()),
            ("MAILOPS_DATABASE_MAX_CONNECTIONS", "16".to_string()),
        ])
    };
    let dir = std::env::temp_dir().join(format!("mailops-bench-{}", uuid::Uuid::now_v7()));
    let sqlite = measure("embedded (SQLite)", base(&dir)).await;

    let server = std::env::var("MAILOPS_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db = format!("mailops_bench_{}", uuid::Uuid::now_v7().simple());
    let admin = sea_orm::Database::connect(format!("{server}/postgres"))
        .await
        .expect("Postgres for the benchmark");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let mut vars = base(&dir.join("pg"));
    vars.insert("DATABASE_URL", format!("{server}/{db}"));
    vars.insert(
        "MAILOPS_JWT_SECRET",
        "benchmark-secret-that-is-long-enough-0123".into(),
    );
    let postgres = measure("production (Postgres)", vars).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let table = format!(
        "Machine: {}. {LOGINS} sequential logins; `me` with {CONCURRENCY} concurrent clients for {} s each, over loopback HTTP/1.1, client in the same process.\n\n\
         | backend | argon2id verify p50 / p95 (ms) | `login` p50 / p95 (ms) | login ÷ argon2 | `me` GraphQL (req/s) | plain axum handler (req/s) | GraphQL ÷ plain |\n\
         |---|---|---|---|---|---|---|\n{sqlite}\n{postgres}\n",
        machine(),
        WINDOW.as_secs(),
    );
    println!("{table}");
    write_section("auth", "cargo bench --bench auth", &table);
}

/// Replaces the section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`.
fn write_section(name: &str, command: &str, body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    let current = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
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
        _ => format!("{}\n{section}\n", current.trim_end()),
    };
    std::fs::write(path, updated).expect("write BENCHMARKS.md");
}
