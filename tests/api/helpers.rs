//! A real mailops server per test, on an ephemeral port, with its own database: a fresh
//! SQLite file, or a fresh Postgres database (plus a private Redis key prefix).

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use mailops::{Application, Config};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn postgres_server() -> String {
    std::env::var("MAILOPS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn redis_url() -> String {
    std::env::var("MAILOPS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The server's state, for tests that watch what it publishes.
    pub state: mailops::state::AppState,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    data_dir: PathBuf,
    database: Option<String>,
}

/// Variables every test server gets; tests add or override some.
fn base_vars(
    backend: Backend,
    data_dir: &std::path::Path,
    database: Option<&str>,
) -> HashMap<String, String> {
    let mut vars = HashMap::from([
        ("MAILOPS_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("MAILOPS_DATA_DIR".into(), data_dir.display().to_string()),
        ("MAILOPS_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ("MAILOPS_DATABASE_MAX_CONNECTIONS".into(), "5".into()),
        ("MAILOPS_SHUTDOWN_GRACE".into(), "5s".into()),
    ]);
    if backend == Backend::Postgres {
        let db = database.unwrap_or_default();
        vars.insert("DATABASE_URL".into(), format!("{}/{db}", postgres_server()));
        vars.insert("REDIS_URL".into(), redis_url());
        vars.insert("MAILOPS_REDIS_PREFIX".into(), format!("mailops-test:{db}:"));
        vars.insert(
            "MAILOPS_JWT_SECRET".into(),
            "test-secret-that-is-long-enough-0123456789".into(),
        );
        // Production mode, but the tests use introspection to walk the schema.
        vars.insert("MAILOPS_INTROSPECTION".into(), "true".into());
    }
    vars
}

async fn admin_connection() -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(format!("{}/postgres", postgres_server()))
        .await
        .expect("Postgres is reachable at MAILOPS_TEST_POSTGRES")
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts a server with extra (or overriding) configuration variables.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("mailops-test-{id}"));
        std::fs::create_dir_all(&data_dir).expect("temp dir");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let name = format!("mailops_test_{id}");
                use sea_orm::ConnectionTrait as _;
                admin_connection()
                    .await
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                Some(name)
            }
        };
        Self::start(backend, data_dir, database, true, extra).await
    }

    /// A second server on this test's Postgres database and Redis prefix: another instance
    /// of the same cluster.
    pub async fn spawn_sibling(&self, extra: &[(&str, &str)]) -> TestApp {
        let database = self
            .database
            .clone()
            .expect("a sibling instance needs the Postgres backend");
        let id = uuid::Uuid::now_v7().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("mailops-test-{id}"));
        std::fs::create_dir_all(&data_dir).expect("temp dir");
        Self::start(Backend::Postgres, data_dir, Some(database), false, extra).await
    }

    async fn start(
        backend: Backend,
        data_dir: PathBuf,
        database: Option<String>,
        owns_database: bool,
        extra: &[(&str, &str)],
    ) -> TestApp {
        let mut vars = base_vars(backend, &data_dir, database.as_deref());
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test config");
        let app = Application::build(config).await.expect("server starts");
        let addr = app.local_addr();
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            data_dir,
            database: if owns_database { database } else { None },
        }
    }

    /// The Postgres URL of this test's database (None on SQLite).
    pub fn database_url(&self) -> Option<String> {
        self.database
            .as_ref()
            .map(|name| format!("{}/{name}", postgres_server()))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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
        request
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON response")
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
            .gql_key(
                enrollment_key,
                "mutation($input: RegisterNodeInput!) { registerNode(input: $input) { apiKey node { id } } }",
                json!({ "input": {
                    "hostname": hostname, "roles": ["MTA"], "ipAddresses": ips,
                    "agentVersion": "1.0.0", "labels": [{ "key": "dc", "value": "fra1" }]
                } }),
            )
            .await;
        let registration = &body["data"]["registerNode"];
        assert!(registration.is_object(), "registerNode failed: {body}");
        (
            registration["node"]["id"].as_str().unwrap().to_string(),
            registration["apiKey"].as_str().unwrap().to_string(),
        )
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
                    use sea_orm::ConnectionTrait as _;
                    let conn = admin_connection().await;
                    let _ = conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
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

            async fn scenario($backend: $crate::helpers::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario($crate::helpers::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                scenario($crate::helpers::Backend::Postgres).await
            }
        }
    };
}
