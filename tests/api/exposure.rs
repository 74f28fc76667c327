//! What an exposed mailops withstands: password guessing, node takeover, revoked
//! credentials on open sockets, requests that would cost too much or too long, extreme
//! numbers and text, and what its responses tell browsers.

use std::{net::IpAddr, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use testkit::on_both_backends;
use testkit::ws::{WsClient, bearer};
use testkit::{ADMIN_PASSWORD, Backend, TestApp, error_code};

const LOGIN: &str =
    "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }";

fn address(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

async fn login_from(app: &TestApp, source: IpAddr, username: &str, password: &str) -> Value {
    let body = json!({ "query": LOGIN, "variables": { "u": username, "p": password } });
    app.post_from(source, &[], &body)
        .await
        .json()
        .await
        .unwrap()
}

async fn audit_count(app: &TestApp, admin: &str, action: &str, outcome: &str) -> u64 {
    let body = app
        .gql(
            Some(admin),
            "query($a: String, $o: AuditOutcome) { auditLog(filter: { action: $a, outcome: $o }) { totalCount } }",
            json!({ "a": action, "o": outcome }),
        )
        .await;
    body["data"]["auditLog"]["totalCount"].as_u64().unwrap()
}

on_both_backends! {
    async fn guessing_an_account_from_one_address_does_not_lock_its_owner_out(backend) {
        let app = TestApp::spawn(backend).await;
        for _ in 0..30 {
            let body = login_from(&app, address(2), "admin", "not the password at all").await;
            assert!(matches!(error_code(&body).as_str(), "UNAUTHENTICATED" | "RATE_LIMITED"), "{body}");
        }
        assert_eq!(error_code(&login_from(&app, address(2), "admin", ADMIN_PASSWORD).await), "RATE_LIMITED");
        // The real admin, elsewhere, signs in at once.
        let body = login_from(&app, address(3), "admin", ADMIN_PASSWORD).await;
        assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");
    }
}

on_both_backends! {
    async fn concurrent_guesses_are_counted_before_they_are_checked(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let guesses = (0..48).map(|i| {
            let app = &app;
            async move { login_from(app, address(4), "admin", &format!("wrong password {i}")).await }
        });
        let answers = futures_util::future::join_all(guesses).await;
        let checked = answers.iter().filter(|a| error_code(a) == "UNAUTHENTICATED").count();
        let held = answers.iter().filter(|a| error_code(a) == "RATE_LIMITED").count();
        assert_eq!(checked + held, 48);
        // The backoff starts after 5 failures; a guess refused by it never reached argon2.
        assert_eq!(checked, 5, "{checked} guesses were checked");
        assert_eq!(audit_count(&app, &admin, "auth.login", "FAILURE").await, 5);
    }
}

on_both_backends! {
    async fn an_address_failing_across_accounts_must_wait(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.auth.login_failures_per_address = 4)
            .spawn()
            .await;
        for account in ["alice", "bob", "carol", "dave"] {
            let body = login_from(&app, address(5), account, "a guess at a password").await;
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
        }
        let sprayed = login_from(&app, address(5), "admin", ADMIN_PASSWORD).await;
        assert_eq!(error_code(&sprayed), "RATE_LIMITED");
        let elsewhere = login_from(&app, address(6), "admin", ADMIN_PASSWORD).await;
        assert!(elsewhere["data"]["login"]["accessToken"].is_string(), "{elsewhere}");
    }
}

on_both_backends! {
    async fn wrong_current_passwords_do_not_lock_the_account_elsewhere(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, token) = app.user_with_role("erin", "OPERATOR").await;
        let auth = format!("Bearer {token}");
        let change = json!({
            "query": "mutation { changePassword(currentPassword: \"not it at all\", newPassword: \"a new long password\") }"
        });
        for _ in 0..8 {
            let body: Value = app.post_from(address(7), &[("authorization", auth.as_str())], &change).await.json().await.unwrap();
            assert!(matches!(error_code(&body).as_str(), "BAD_USER_INPUT" | "RATE_LIMITED"), "{body}");
        }
        let body = login_from(&app, address(8), "erin", "erin-password-long").await;
        assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");
    }
}

on_both_backends! {
    async fn an_enrollment_key_cannot_take_over_a_node_or_its_addresses(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (a_id, a_key) = app.register_node(&enrollment, "a.example.com", &["192.0.2.1"]).await;
        let (_, b_key) = app.register_node(&enrollment, "b.example.com", &["192.0.2.2"]).await;

        // Node b's key does not vouch for node a.
        let hijack = app.register_node_as(&enrollment, "a.example.com", &[], Some(&b_key)).await;
        assert_eq!(error_code(&hijack), "CONFLICT", "{hijack}");
        // An address of another node is not taken by naming it.
        let grab = app.register_node_as(&enrollment, "c.example.com", &["192.0.2.1"], None).await;
        assert_eq!(error_code(&grab), "CONFLICT", "{grab}");
        assert!(grab["errors"][0]["message"].as_str().unwrap().contains("192.0.2.1"));
        let nodes = app.gql(Some(&admin), "{ nodes { totalCount } ip(address: \"192.0.2.1\") { node { hostname } } }", json!({})).await;
        assert_eq!(nodes["data"]["nodes"]["totalCount"], 2, "nothing was created: {nodes}");
        assert_eq!(nodes["data"]["ip"]["node"]["hostname"], "a.example.com");
        assert!(app.gql_key(&a_key, "mutation { agentHeartbeat { id } }", json!({})).await["errors"].is_null());

        // An admin's re-enrollment key enrolls that node, once, and nothing else.
        let created = app.gql(Some(&admin), "mutation($id: ID!) { createReenrollmentKey(nodeId: $id) { key enrollmentKey { nodeId maxUses } } }", json!({ "id": a_id })).await;
        let again = created["data"]["createReenrollmentKey"]["key"].as_str().unwrap().to_string();
        assert_eq!(created["data"]["createReenrollmentKey"]["enrollmentKey"]["maxUses"], 1);
        let other = app.register_node_as(&again, "b.example.com", &[], None).await;
        assert_eq!(error_code(&other), "CONFLICT", "{other}");
        let new = app.register_node_as(&again, "d.example.com", &[], None).await;
        assert_eq!(error_code(&new), "CONFLICT", "{new}");
        let reenrolled = app.register_node_as(&again, "a.example.com", &["192.0.2.1"], None).await;
        assert_eq!(reenrolled["data"]["registerNode"]["node"]["id"], a_id.as_str(), "{reenrolled}");
        assert_eq!(error_code(&app.gql_key(&a_key, "mutation { agentHeartbeat { id } }", json!({})).await), "UNAUTHENTICATED");
        let twice = app.register_node_as(&again, "a.example.com", &[], None).await;
        assert_eq!(error_code(&twice), "UNAUTHENTICATED", "a re-enrollment key works once: {twice}");

        // Every refused attempt is in the audit log.
        assert_eq!(audit_count(&app, &admin, "node.register", "FAILURE").await, 4);
    }
}

on_both_backends! {
    async fn a_retired_node_stays_retired(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (id, key) = app.register_node(&enrollment, "old.example.com", &[]).await;
        app.gql(Some(&admin), "mutation($id: ID!) { decommissionNode(id: $id) { status } }", json!({ "id": id })).await;
        let back = app.register_node_as(&enrollment, "old.example.com", &[], Some(&key)).await;
        assert_eq!(error_code(&back), "CONFLICT", "{back}");
        let again = app.gql(Some(&admin), "mutation($id: ID!) { createReenrollmentKey(nodeId: $id) { key } }", json!({ "id": id })).await;
        assert_eq!(error_code(&again), "CONFLICT", "{again}");
        let node = app.gql(Some(&admin), "query($id: ID) { node(id: $id) { status } }", json!({ "id": id })).await;
        assert_eq!(node["data"]["node"]["status"], "RETIRED");
    }
}

/// A node key's socket, subscribed to something that never ends on its own.
/// Rotates the node's key and answers the new one.
async fn rotate_key(app: &TestApp, admin: &str, node_id: &str) -> String {
    let rotated = app
        .gql(
            Some(admin),
            "mutation($id: ID!) { rotateNodeKey(nodeId: $id) { apiKey } }",
            json!({ "id": node_id }),
        )
        .await;
    rotated["data"]["rotateNodeKey"]["apiKey"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn agent_socket(app: &TestApp, key: &str) -> WsClient {
    let mut socket = WsClient::ready(app.addr, Some(format!("ApiKey {key}"))).await;
    socket.barrier().await;
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_rotating_or_retiring_a_node_closes_its_sockets_on_every_instance() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().spawn().await;
    let admin = a.admin_token().await;
    let enrollment = a.enrollment_key(None).await;
    let (node_id, key) = a.register_node(&enrollment, "ws.example.com", &[]).await;

    // Revoked by id on instance A; the socket is on B.
    let mut socket = agent_socket(&b, &key).await;
    let keys = a
        .gql(
            Some(&admin),
            "query($id: ID) { node(id: $id) { keys { id revokedAt } } }",
            json!({ "id": node_id }),
        )
        .await;
    let key_id = keys["data"]["node"]["keys"][0]["id"].clone();
    a.gql(
        Some(&admin),
        "mutation($id: ID!) { revokeNodeKey(id: $id) { id } }",
        json!({ "id": key_id }),
    )
    .await;
    assert_eq!(
        socket.close_frame().await,
        (4403, "this node key was revoked".into())
    );

    // Rotated.
    let new_key = rotate_key(&a, &admin, &node_id).await;
    let mut socket = agent_socket(&b, &new_key).await;
    rotate_key(&a, &admin, &node_id).await;
    assert_eq!(socket.close_frame().await.0, 4403);

    // Retired.
    let keys = a
        .gql(
            Some(&admin),
            "query($id: ID) { node(id: $id) { keys { revokedAt } } }",
            json!({ "id": node_id }),
        )
        .await;
    assert_eq!(
        keys["data"]["node"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["revokedAt"].is_null())
            .count(),
        1
    );
    let last_key = rotate_key(&a, &admin, &node_id).await;
    let mut socket = agent_socket(&b, &last_key).await;
    a.gql(
        Some(&admin),
        "mutation($id: ID!) { decommissionNode(id: $id) { status } }",
        json!({ "id": node_id }),
    )
    .await;
    assert_eq!(
        socket.close_frame().await,
        (4403, "this node was decommissioned".into())
    );
}

fn cli_passwd(app: &TestApp, username: &str) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mailops"));
    command
        .args(["user", "passwd", username])
        .env("MAILOPS_DATA_DIR", app.data_dir())
        .env("MAILOPS_LOG_FORMAT", "json")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    match app.database_url() {
        Some(url) => {
            command
                .env("DATABASE_URL", url)
                .env("REDIS_URL", testkit::redis_url())
                .env("MAILOPS_REDIS_PREFIX", app.redis_prefix())
                .env("MAILOPS_JWT_SECRET", testkit::JWT_SECRET);
        }
        None => {
            command
                .env_remove("DATABASE_URL")
                .env_remove("MAILOPS_MODE");
        }
    }
    let mut child = command.spawn().expect("run mailops");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a password set by the cli\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clis_password_change_closes_the_users_sockets_and_ends_its_tokens() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.sibling().spawn().await;
    let (_, token) = app.user_with_role("frank", "VIEWER").await;
    let mut socket = WsClient::ready(other.addr, bearer(&token)).await;
    socket.barrier().await;
    cli_passwd(&app, "frank");
    assert_eq!(socket.close_frame().await.0, 4403);
    let body = app
        .gql(Some(&token), "{ me { username } }", json!({}))
        .await;
    assert_eq!(
        error_code(&body),
        "UNAUTHENTICATED",
        "the old access token ends at once: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_embedded_mode_the_clis_password_change_closes_sockets_at_their_next_ping() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(|c| c.realtime.ws_ping_interval = testkit::duration("300ms"))
        .spawn()
        .await;
    let (_, token) = app.user_with_role("gina", "VIEWER").await;
    let mut socket = WsClient::ready(app.addr, bearer(&token)).await;
    socket.barrier().await;
    cli_passwd(&app, "gina");
    assert_eq!(socket.close_frame().await.0, 4403);
}

on_both_backends! {
    async fn a_request_too_costly_is_refused_before_it_runs(backend) {
        let app = TestApp::spawn(backend).await;
        let viewer = app.user_with_role("costly", "VIEWER").await.1;
        let names: Vec<String> = (0..50).map(|i| format!("custom.metric_{i}")).collect();
        let names = serde_json::to_string(&names).unwrap();
        let aliases: String = (0..30)
            .map(|i| format!("m{i}: metrics(range: D30, names: {names}) {{ series {{ points {{ value }} }} }} "))
            .collect();
        let body = app.gql(Some(&viewer), &format!("{{ {aliases} }}"), json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("complex"), "{body}");

        // What passes the static limit is still held to the points one operation may read.
        let enrollment = app.enrollment_key(None).await;
        let (node_id, key) = app.register_node(&enrollment, "points.example.com", &[]).await;
        let now = chrono::Utc::now();
        let samples: Vec<Value> = (0..200)
            .map(|i| json!({ "name": "custom.wide", "labels": [{ "key": "n", "value": i.to_string() }], "ts": now.to_rfc3339(), "value": 1.0 }))
            .collect();
        let ingested = app.gql_key(&key, "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }", json!({ "b": { "batchId": "wide", "samples": samples } })).await;
        assert_eq!(ingested["data"]["ingestMetrics"]["accepted"], 200, "{ingested}");
        // 200 series × 1,440 steps of one minute over a day is 288,000 points.
        let wide = app.gql(Some(&viewer), "query($n: [ID!]) { metrics(names: [\"custom.wide\"], nodeIds: $n, range: H24, step: 60) { series { name } } }", json!({ "n": [node_id] })).await;
        assert_eq!(error_code(&wide), "BAD_USER_INPUT", "{wide}");
        assert!(wide["errors"][0]["message"].as_str().unwrap().contains("points"), "{wide}");
        let narrow = app.gql(Some(&viewer), "query($n: [ID!]) { metrics(names: [\"custom.wide\"], nodeIds: $n, range: H24, step: 3600) { series { name } } }", json!({ "n": [node_id] })).await;
        assert_eq!(narrow["data"]["metrics"]["series"].as_array().map(Vec::len), Some(200), "{narrow}");
    }
}

on_both_backends! {
    async fn extreme_numbers_and_text_are_refused_and_recorded(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let cases = [
            ("{ metrics(names: [\"system.load1\"], range: H1, step: 9223372036854776) { step } }", "step"),
            ("{ mailFlow(range: H1, step: 4224304392879487320) { step } }", "step"),
            ("{ mailFlow(range: H1, step: -60) { step } }", "step"),
            ("mutation { addIps(input: { cidr: \"::/0\" }) { address } }", "input.cidr"),
            ("mutation { addIps(input: { cidr: \"0.0.0.0/0\" }) { address } }", "input.cidr"),
            ("mutation { createEnrollmentKey(input: { name: \"k\\u0000ey\" }) { key } }", "input.name"),
            ("mutation { createEnrollmentKey(input: { name: \"tab\\tbed\" }) { key } }", "input.name"),
        ];
        for (operation, field) in cases {
            let body = app.gql(Some(&admin), operation, json!({})).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{operation}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{operation}: {body}");
        }
        let rule = app.gql(Some(&admin), "mutation { createAlertRule(input: { name: \"disk\\u0000full\", condition: NODE_DOWN, severity: WARNING }) { id } }", json!({})).await;
        assert_eq!(error_code(&rule), "BAD_USER_INPUT", "{rule}");
        let label = app.register_node_as(&app.enrollment_key(None).await, "labels.example.com", &[], None).await;
        assert!(label["errors"].is_null());
        let node = app.gql(Some(&admin), "{ nodes { nodes { id } } }", json!({})).await;
        let id = node["data"]["nodes"]["nodes"][0]["id"].clone();
        let bell = app.gql(Some(&admin), "mutation($id: ID!) { updateNode(id: $id, input: { labels: [{ key: \"dc\", value: \"fra\\u0007\" }] }) { id } }", json!({ "id": id })).await;
        assert_eq!(error_code(&bell), "BAD_USER_INPUT", "{bell}");
        // The refusals are recorded even though what was refused held a NUL.
        assert!(audit_count(&app, &admin, "enrollment_key.create", "FAILURE").await >= 2);
        assert!(audit_count(&app, &admin, "alert_rule.create", "FAILURE").await >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_out_of_time_is_answered_timeout() {
    let app = TestApp::builder(Backend::Postgres)
        .with_config(|c| {
            c.limits.request_timeout = Duration::from_millis(1);
            c.overview.cache_ttl = None;
        })
        .spawn()
        .await;
    // Signing in takes longer than the timeout; the admin's token is issued directly.
    let admin = mailops::users::find_by_username(&app.state.db, "admin")
        .await
        .unwrap()
        .unwrap();
    let token = app
        .state
        .tokens
        .issue_access(admin.id, admin.session_version)
        .unwrap()
        .token;
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ overview { generatedAt } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "TIMEOUT", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_slow_with_its_headers_is_cut_off_and_connections_are_capped() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(|c| {
            c.limits.header_read_timeout = Duration::from_millis(300);
            c.limits.max_connections = 2;
        })
        .spawn()
        .await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buffer)).await;
    assert!(
        closed.is_ok(),
        "a client that never finished its headers was kept"
    );

    // Two idle connections hold both places; a third is answered only once one goes.
    let first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = app.client.get(app.url("/healthz")).send();
    tokio::pin!(third);
    assert!(
        tokio::time::timeout(Duration::from_millis(150), &mut third)
            .await
            .is_err(),
        "a third connection was served while two were open"
    );
    drop(first);
    let answered = tokio::time::timeout(Duration::from_secs(3), third).await;
    assert_eq!(
        answered
            .expect("served once a place came free")
            .unwrap()
            .status(),
        200
    );
}

on_both_backends! {
    async fn only_agents_may_send_large_bodies(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (_, key) = app.register_node(&enrollment, "big.example.com", &[]).await;
        let now = chrono::Utc::now();
        let samples: Vec<Value> = (0..3_000)
            .map(|i| json!({ "name": "custom.big", "labels": [{ "key": "i", "value": format!("{i:0>40}") }], "ts": now.to_rfc3339(), "value": 1.0 }))
            .collect();
        let body = json!({
            "query": "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }",
            "variables": { "b": { "batchId": "large", "samples": samples } }
        });
        assert!(body.to_string().len() > 256 * 1024);
        let from_agent = app.client.post(app.url("/graphql")).header("authorization", format!("ApiKey {key}")).json(&body).send().await.unwrap();
        let answer: Value = from_agent.json().await.unwrap();
        assert_eq!(answer["data"]["ingestMetrics"]["accepted"], 3_000, "{answer}");
        let from_user = app.client.post(app.url("/graphql")).bearer_auth(&admin).json(&body).send().await.unwrap();
        assert_eq!(from_user.status(), 413);
    }
}

#[tokio::test]
async fn responses_tell_browsers_not_to_sniff_frame_or_refer() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let api = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    assert_eq!(api.headers()["referrer-policy"], "no-referrer");
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(
        policy.contains("script-src https://unpkg.com 'sha256-"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    let html = page.text().await.unwrap();
    assert_eq!(
        html.matches("integrity=\"sha384-").count(),
        5,
        "every CDN file is pinned by hash"
    );
}

#[tokio::test]
async fn a_generated_first_password_goes_to_a_private_file_never_to_the_log() {
    let dir = std::env::temp_dir().join(format!("mailops-first-admin-{}", uuid::Uuid::now_v7()));
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_mailops"))
        .env("MAILOPS_DATA_DIR", &dir)
        .env("MAILOPS_BIND", "127.0.0.1:0")
        .env("MAILOPS_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .env_remove("MAILOPS_MODE")
        .env_remove("MAILOPS_ADMIN_PASSWORD")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mailops");
    let file = dir.join("admin-password");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !file.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = server.kill();
    let output = server.wait_with_output().unwrap();
    let password = std::fs::read_to_string(&file)
        .expect("the password file")
        .trim()
        .to_string();
    assert!(password.len() >= 16);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        log.contains("admin-password"),
        "the log names the file: {log}"
    );
    assert!(!log.contains(&password), "the password reached the log");
    let _ = std::fs::remove_dir_all(&dir);
}
