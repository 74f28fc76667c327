//! What mailops's integration tests and benchmarks share: a real mailops server on an
//! ephemeral port with a database of its own (a fresh SQLite file, or a Postgres database
//! cloned from a migrated template, plus a private Redis key prefix), configured through
//! the typed [`Config`]; GraphQL helpers; and a loopback DNS server.
//!
//! Code that only tests run: a failed set-up is the test's failure, so it panics.
#![allow(clippy::unwrap_used)]

pub mod database;
pub mod dns_server;
pub mod receivers;
pub mod redis_proxy;
pub mod servers;
pub mod ws;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use mailops::{Application, Config};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use database::{postgres_server, redis_url};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// The JWT secret of every Postgres (production mode) test server.
pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-0123456789";

/// A duration as the configuration writes it: `50ms`, `2s`, `1h`.
pub fn duration(text: &str) -> Duration {
    mailops::config::parse_duration(text).expect("a duration such as 50ms")
}

/// Node status that moves within seconds: agents expected every 200 ms, STALE after
/// 400 ms, DOWN after `down_after`, looked at every 50 ms.
pub fn quick_node_status(c: &mut Config, down_after: &str) {
    c.nodes.push_interval = duration("200ms");
    c.nodes.stale_after = duration("400ms");
    c.nodes.down_after = duration(down_after);
    c.nodes.status_check_interval = duration("50ms");
}

/// DNSBL zones as `MAILOPS_DNSBL_ZONES` writes them, with `critical` marked critical.
pub fn zones(spec: &str, critical: &[&str]) -> Vec<mailops::ips::ZoneSpec> {
    let mut zones = mailops::ips::parse_zones(spec).expect("zones such as listed.test;clear.test");
    for zone in &mut zones {
        zone.critical = critical.contains(&zone.name.as_str());
    }
    zones
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The server's state, for tests that watch what it publishes.
    pub state: mailops::state::AppState,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    data_dir: PathBuf,
    /// The Postgres database this server owns (dropped with it).
    database: Option<String>,
    /// The Postgres database it runs on, owned or shared with a sibling.
    database_name: Option<String>,
    /// What it was started with, to start it again ([`TestApp::stop_for`]).
    config: Config,
}

type Configure = Box<dyn FnOnce(&mut Config) + Send>;

/// How a test server is set up before it starts.
pub struct TestAppBuilder {
    backend: Backend,
    /// A sibling's database (another instance of the same cluster), or a benchmark's.
    shared_database: Option<String>,
    /// Create `shared_database` from the template when it does not exist.
    create_shared: bool,
    configure: Vec<Configure>,
}

/// The configuration every test server starts from: embedded mode on SQLite, or
/// production mode on Postgres and Redis (with introspection on, which the tests use to
/// walk the schema).
fn base_config(backend: Backend, data_dir: &std::path::Path, database: Option<&str>) -> Config {
    let data_dir = data_dir.display().to_string();
    let mut vars = vec![
        ("MAILOPS_BIND", "127.0.0.1:0".to_string()),
        ("MAILOPS_DATA_DIR", data_dir),
        ("MAILOPS_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ("MAILOPS_DATABASE_MAX_CONNECTIONS", "5".into()),
        ("MAILOPS_SHUTDOWN_GRACE", "5s".into()),
        // Tests of other features make many requests from one address at once; the rate
        // limit tests turn the limits on.
        ("MAILOPS_RATE_LIMIT_USER", "off".into()),
        ("MAILOPS_RATE_LIMIT_AGENT", "off".into()),
        ("MAILOPS_RATE_LIMIT_ANONYMOUS", "off".into()),
    ];
    if backend == Backend::Postgres {
        let db = database.unwrap_or_default();
        vars.extend([
            ("DATABASE_URL", database::database_url(db)),
            ("REDIS_URL", redis_url()),
            ("MAILOPS_REDIS_PREFIX", format!("mailops-test:{db}:")),
            ("MAILOPS_JWT_SECRET", JWT_SECRET.into()),
            ("MAILOPS_INTROSPECTION", "true".into()),
        ]);
    }
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("valid test configuration")
}

/// What benchmarks run with: JSON logs (which a terminal does not have to render) and a
/// pool of 16 connections.
pub fn for_benchmarks(c: &mut Config) {
    c.server.log_format = mailops::config::LogFormat::Json;
    c.database.max_connections = 16;
}

impl TestAppBuilder {
    /// Runs on the Postgres database `name`, which outlives the server (a benchmark's seeded
    /// data); it is created from the template when it does not exist yet.
    pub fn on_database(mut self, name: &str) -> Self {
        self.shared_database = Some(name.to_owned());
        self.create_shared = true;
        self
    }

    /// Changes the typed configuration before the server starts.
    pub fn with_config(mut self, change: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.configure.push(Box::new(change));
        self
    }

    pub async fn spawn(self) -> TestApp {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("mailops-test-{id}"));
        std::fs::create_dir_all(&data_dir).expect("temp dir");
        let (database_name, owned) = match (self.backend, self.shared_database) {
            (Backend::Sqlite, _) => (None, None),
            (Backend::Postgres, Some(shared)) => {
                if self.create_shared {
                    database::create_named_database_if_missing(&shared).await;
                }
                (Some(shared), None)
            }
            (Backend::Postgres, None) => {
                let name = database::create_database("mailops_test").await;
                (Some(name.clone()), Some(name))
            }
        };
        let mut config = base_config(self.backend, &data_dir, database_name.as_deref());
        for change in self.configure {
            change(&mut config);
        }
        let (app, shutdown, server) = launch(config.clone()).await;
        TestApp {
            addr: app.addr,
            state: app.state,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            server: Some(server),
            data_dir,
            database: owned,
            database_name,
            config,
        }
    }
}

struct Launched {
    addr: SocketAddr,
    state: mailops::state::AppState,
}

type Server = tokio::task::JoinHandle<anyhow::Result<()>>;

async fn launch(config: Config) -> (Launched, oneshot::Sender<()>, Server) {
    let app = Application::build(config).await.expect("server starts");
    let launched = Launched {
        addr: app.local_addr(),
        state: app.state().clone(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (launched, tx, server)
}

impl TestApp {
    /// Stops the server, waits `pause`, and starts it again on the same address, database
    /// and data directory: mailops away for a while, as its clients see it.
    pub async fn stop_for(&mut self, pause: Duration) {
        self.stop().await;
        tokio::time::sleep(pause).await;
        let mut config = self.config.clone();
        config.server.bind = self.addr;
        let (app, shutdown, server) = launch(config).await;
        self.state = app.state;
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    pub async fn spawn(backend: Backend) -> TestApp {
        Self::builder(backend).spawn().await
    }

    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            shared_database: None,
            create_shared: false,
            configure: Vec::new(),
        }
    }

    /// A second server on this test's Postgres database and Redis prefix: another instance
    /// of the same cluster.
    pub fn sibling(&self) -> TestAppBuilder {
        TestAppBuilder {
            backend: Backend::Postgres,
            shared_database: Some(
                self.database_name
                    .clone()
                    .expect("a sibling instance needs the Postgres backend"),
            ),
            create_shared: false,
            configure: Vec::new(),
        }
    }

    /// The Postgres URL of this test's database (None on SQLite).
    pub fn database_url(&self) -> Option<String> {
        self.database_name.as_deref().map(database::database_url)
    }

    /// The server's data directory (the SQLite file, generated secrets).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The prefix of the server's Redis keys.
    pub fn redis_prefix(&self) -> String {
        self.state.config.redis.prefix.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GETs a path and answers the body, whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Tells the server to shut down, without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(&mut self) {
        self.signal_stop();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }

    /// Posts one GraphQL operation as a user (bearer token) and returns the whole body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql_as(token.map(|t| format!("Bearer {t}")), query, variables)
            .await
    }

    /// Posts one GraphQL operation as an agent (`ApiKey`) and returns the whole body.
    pub async fn gql_key(&self, key: &str, query: &str, variables: Value) -> Value {
        self.gql_as(Some(format!("ApiKey {key}")), query, variables)
            .await
    }

    /// Posts one GraphQL operation with the given `Authorization` value.
    pub async fn gql_as(
        &self,
        authorization: Option<String>,
        query: &str,
        variables: Value,
    ) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        json_answer(request).await
    }

    /// Logs in and returns the `login` payload; panics on an error.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let body = self
            .gql(
                None,
                "mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
                    accessToken refreshToken accessTokenExpiresAt user { id username role } } }",
                json!({ "u": username, "p": password }),
            )
            .await;
        assert!(body["errors"].is_null(), "login failed: {body}");
        body["data"]["login"].clone()
    }

    pub async fn admin_token(&self) -> String {
        token_of(&self.login("admin", ADMIN_PASSWORD).await)
    }

    /// Creates a user with `role` (VIEWER, OPERATOR, ADMIN) and returns its id and an
    /// access token.
    pub async fn user_with_role(&self, username: &str, role: &str) -> (String, String) {
        let admin = self.admin_token().await;
        let password = format!("{username}-password-long");
        let body = self
            .gql(
                Some(&admin),
                "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
                json!({ "input": { "username": username, "password": password, "role": role } }),
            )
            .await;
        assert!(body["errors"].is_null(), "createUser failed: {body}");
        let id = body["data"]["createUser"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let token = token_of(&self.login(username, &password).await);
        (id, token)
    }
}

impl TestApp {
    /// A new enrollment key, created by the admin.
    pub async fn enrollment_key(&self, max_uses: Option<i32>) -> String {
        let admin = self.admin_token().await;
        let body = self
            .gql(
                Some(&admin),
                "mutation($m: Int) { createEnrollmentKey(input: { name: \"tests\", maxUses: $m }) { key } }",
                json!({ "m": max_uses }),
            )
            .await;
        body["data"]["createEnrollmentKey"]["key"]
            .as_str()
            .unwrap_or_else(|| panic!("createEnrollmentKey failed: {body}"))
            .to_string()
    }

    /// Registers `hostname` with an enrollment key; returns the node id and its API key.
    pub async fn register_node(
        &self,
        enrollment_key: &str,
        hostname: &str,
        ips: &[&str],
    ) -> (String, String) {
        let body = self
            .register_node_as(enrollment_key, hostname, ips, None)
            .await;
        let registration = &body["data"]["registerNode"];
        assert!(registration.is_object(), "registerNode failed: {body}");
        (
            registration["node"]["id"].as_str().unwrap().to_string(),
            registration["apiKey"].as_str().unwrap().to_string(),
        )
    }
}

impl TestApp {
    /// Posts a body to `/graphql` from the loopback address `source` (any 127/8 address is
    /// this machine), with the given headers; returns the response as it came.
    pub async fn post_from(
        &self,
        source: std::net::IpAddr,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> reqwest::Response {
        let client = reqwest::Client::builder()
            .local_address(source)
            .build()
            .expect("client");
        let mut request = client.post(self.url("/graphql")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    /// A user `watcher` with the VIEWER role, and a WebSocket it opened, ready to
    /// subscribe.
    pub async fn viewer_socket(&self) -> ws::WsClient {
        let viewer = self.user_with_role("watcher", "VIEWER").await.1;
        ws::WsClient::ready(self.addr, ws::bearer(&viewer)).await
    }
}

impl TestApp {
    /// Sends `registerNode` for `hostname` (presenting `node_key`, the node's current
    /// key, when given) and returns the whole body.
    pub async fn register_node_as(
        &self,
        enrollment_key: &str,
        hostname: &str,
        ips: &[&str],
        node_key: Option<&str>,
    ) -> Value {
        self.gql_key(
            enrollment_key,
            "mutation($input: RegisterNodeInput!) { registerNode(input: $input) { apiKey node { id } } }",
            json!({ "input": {
                "hostname": hostname, "roles": ["MTA"], "ipAddresses": ips,
                "agentVersion": "1.0.0", "labels": [{ "key": "dc", "value": "fra1" }],
                "nodeKey": node_key,
            } }),
        )
        .await
    }
}

/// Sends the admin's login over raw HTTP/1.1 in two halves and runs `between` while the
/// server holds the first half: the request is then certainly in flight. Returns the
/// whole response.
pub async fn login_in_two_halves(
    addr: SocketAddr,
    between: impl std::future::Future<Output = ()>,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = json!({
        "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
        "variables": { "p": ADMIN_PASSWORD }
    })
    .to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send headers");
    stream
        .write_all(first.as_bytes())
        .await
        .expect("send first half");
    // Long enough for the server to have read the headers and be waiting for the rest.
    tokio::time::sleep(Duration::from_millis(200)).await;
    between.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(second.as_bytes())
        .await
        .expect("send second half");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    String::from_utf8_lossy(&response).into_owned()
}

/// Sends a request and answers its JSON body; panics when either fails.
pub async fn json_answer(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("request sent");
    response.json().await.expect("JSON response")
}

pub fn token_of(login: &Value) -> String {
    login["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_string()
}

/// The `extensions.code` of the first error, or "" when there is none.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(name) = self.database.take() {
            // Drop runs outside async; a helper thread with its own runtime removes the
            // database (FORCE ends the server's remaining connections).
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    database::drop_database(&name).await;
                    // The event stream and its counter live under the test's Redis prefix.
                    if let Ok(client) = redis::Client::open(redis_url())
                        && let Ok(mut redis) = client.get_multiplexed_async_connection().await
                    {
                        let prefix = format!("mailops-test:{name}:");
                        let _: Result<(), _> = redis::cmd("DEL")
                            .arg(format!("{prefix}events"))
                            .arg(format!("{prefix}events:sequence"))
                            .query_async(&mut redis)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Defines one test per backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($backend: $crate::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario($crate::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                scenario($crate::Backend::Postgres).await
            }
        }
    };
}
