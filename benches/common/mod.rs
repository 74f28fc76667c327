//! What the benchmark programs share: starting mailops, a closed-loop load generator, and
//! writing results into BENCHMARKS.md.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use mailops::{Application, Config, state::AppState};
use sea_orm::ConnectionTrait as _;

pub const ADMIN_PASSWORD: &str = "benchmark-admin-password";
pub const CONCURRENCY: usize = 32;
pub const WINDOW: Duration = Duration::from_secs(5);

pub struct Started {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    pub stop: tokio::sync::oneshot::Sender<()>,
}

pub fn base_vars(dir: &std::path::Path) -> HashMap<&'static str, String> {
    HashMap::from([
        ("MAILOPS_BIND", "127.0.0.1:0".to_string()),
        ("MAILOPS_DATA_DIR", dir.display().to_string()),
        ("MAILOPS_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
        ("MAILOPS_LOG_FORMAT", "json".to_string()),
        ("MAILOPS_DATABASE_MAX_CONNECTIONS", "16".to_string()),
    ])
}

/// The variables of production mode on the Postgres database at `url`.
pub fn postgres_vars(dir: &std::path::Path, url: String) -> HashMap<&'static str, String> {
    let mut vars = base_vars(dir);
    vars.insert("DATABASE_URL", url);
    vars.insert(
        "MAILOPS_JWT_SECRET",
        "benchmark-secret-that-is-long-enough-0123".into(),
    );
    vars
}

pub async fn start(vars: HashMap<&'static str, String>) -> Started {
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

/// A fresh Postgres database for one run, dropped by `drop_database`.
pub struct BenchDatabase {
    server: String,
    pub name: String,
}

impl BenchDatabase {
    pub async fn create() -> BenchDatabase {
        let server = std::env::var("MAILOPS_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("mailops_bench_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(format!("{server}/postgres"))
            .await
            .expect("Postgres for the benchmark (MAILOPS_BENCH_POSTGRES)");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        BenchDatabase { server, name }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    pub async fn drop_database(self) {
        if let Ok(admin) = sea_orm::Database::connect(format!("{}/postgres", self.server)).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
                .await;
        }
    }
}

/// Logs in as the admin and returns the access token.
pub async fn admin_token(client: &reqwest::Client, graphql: &str) -> String {
    let body: serde_json::Value = client
        .post(graphql)
        .json(&serde_json::json!({
            "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
            "variables": { "p": ADMIN_PASSWORD }
        }))
        .send()
        .await
        .expect("login sent")
        .json()
        .await
        .expect("login answered");
    body["data"]["login"]["accessToken"]
        .as_str()
        .expect("login works")
        .to_string()
}

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
        let body = make(client)
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
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, make, done, stop) =
                (client.clone(), make.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let body = make(&client)
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

/// A GraphQL response with data and no errors.
pub fn graphql_ok(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v["errors"].is_null() && v["data"].is_object())
        .unwrap_or(false)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
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
        _ => format!("{}\n\n{section}\n", current.trim_end()),
    };
    std::fs::write(path, updated).expect("write BENCHMARKS.md");
}
