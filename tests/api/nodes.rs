use std::time::Duration;

use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::{TestApp, duration, error_code};

const HEARTBEAT: &str =
    "mutation { agentHeartbeat(agentVersion: \"1.0.1\") { id status lastSeenAt agentVersion } }";
const NODE: &str = "query($id: ID) { node(id: $id) { id hostname status roles labels { key value } ips { address } } }";

async fn node_count(app: &TestApp, token: &str) -> u64 {
    let body = app.gql(Some(token), "{ nodes(filter: { statuses: [ONLINE, STALE, DOWN, MAINTENANCE, RETIRED] }) { totalCount } }", json!({})).await;
    body["data"]["nodes"]["totalCount"]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}"))
}

async fn status_of(app: &TestApp, token: &str, id: &str) -> String {
    let body = app
        .gql(
            Some(token),
            "query($id: ID) { node(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    body["data"]["node"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls until the node reaches `status`, for at most `limit`.
async fn wait_for_status(app: &TestApp, token: &str, id: &str, status: &str, limit: Duration) {
    let start = std::time::Instant::now();
    loop {
        if status_of(app, token, id).await == status {
            return;
        }
        assert!(start.elapsed() < limit, "node never became {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends! {
    async fn an_agent_enrolls_registers_calls_and_survives_a_key_rotation(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(Some(5)).await;
        assert!(enrollment.starts_with("mke_"));

        let (node_id, key) = app.register_node(&enrollment, "MX1.Example.com", &["192.0.2.10", "2001:db8::1"]).await;
        assert!(key.starts_with("mko_"));
        let beat = app.gql_key(&key, HEARTBEAT, json!({})).await;
        assert_eq!(beat["data"]["agentHeartbeat"]["id"], node_id.as_str(), "{beat}");
        assert_eq!(beat["data"]["agentHeartbeat"]["agentVersion"], "1.0.1");
        let own = app.gql_key(&key, NODE, json!({ "id": node_id })).await;
        let node = &own["data"]["node"];
        assert_eq!(node["hostname"], "mx1.example.com", "{own}");
        assert_eq!(node["status"], "ONLINE");
        assert_eq!(node["roles"], json!(["MTA"]));
        assert_eq!(node["labels"], json!([{ "key": "dc", "value": "fra1" }]));
        assert_eq!(node["ips"], json!([{ "address": "192.0.2.10" }, { "address": "2001:db8::1" }]));

        // An admin rotates the key: the old one stops working at once.
        let rotated = app.gql(Some(&admin), "mutation($id: ID!) { rotateNodeKey(nodeId: $id) { apiKey nodeKey { id } } }", json!({ "id": node_id })).await;
        let new_key = rotated["data"]["rotateNodeKey"]["apiKey"].as_str().unwrap().to_string();
        assert_eq!(error_code(&app.gql_key(&key, HEARTBEAT, json!({})).await), "UNAUTHENTICATED");
        assert!(app.gql_key(&new_key, HEARTBEAT, json!({})).await["errors"].is_null());

        // Registering the same hostname again needs the node's current key: an enrollment
        // key alone changes nothing.
        let taken = app.register_node_as(&enrollment, "mx1.example.com", &["192.0.2.11"], None).await;
        assert_eq!(error_code(&taken), "CONFLICT", "{taken}");
        assert!(taken["errors"][0]["message"].as_str().unwrap().contains("mx1.example.com"));
        assert!(app.gql_key(&new_key, HEARTBEAT, json!({})).await["errors"].is_null());
        // With it (an agent reinstalled on the same machine) the node is updated and its
        // key rotated.
        let again = app.register_node_as(&enrollment, "mx1.example.com", &["192.0.2.11"], Some(&new_key)).await;
        let same_id = again["data"]["registerNode"]["node"]["id"].as_str().expect("registered").to_string();
        let third_key = again["data"]["registerNode"]["apiKey"].as_str().unwrap().to_string();
        assert_eq!(same_id, node_id);
        assert_eq!(error_code(&app.gql_key(&new_key, HEARTBEAT, json!({})).await), "UNAUTHENTICATED");
        let again = app.gql_key(&third_key, NODE, json!({ "id": node_id })).await;
        assert_eq!(again["data"]["node"]["ips"], json!([{ "address": "192.0.2.10" }, { "address": "192.0.2.11" }, { "address": "2001:db8::1" }]));
        assert_eq!(node_count(&app, &admin).await, 1);

        // Keys are listed to admins without secrets; the used one remembers when.
        let keys = app.gql(Some(&admin), "query($id: ID) { node(id: $id) { keys { id revokedAt lastUsedAt } } }", json!({ "id": node_id })).await;
        let keys = keys["data"]["node"]["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.iter().filter(|k| k["revokedAt"].is_null()).count(), 1);
        assert!(!keys.iter().any(|k| k.to_string().contains("mko_")));

        let log = app.gql(Some(&admin), "{ auditLog(filter: { action: \"node.register\" }) { totalCount edges { node { actorKind outcome } } } }", json!({})).await;
        assert_eq!(log["data"]["auditLog"]["totalCount"], 3, "the refused attempt is audited too");
        assert_eq!(log["data"]["auditLog"]["edges"][1]["node"]["outcome"], "FAILURE");
        assert_eq!(log["data"]["auditLog"]["edges"][0]["node"]["actorKind"], "enrollment_key");
    }
}

on_both_backends! {
    async fn a_node_key_acts_only_for_its_own_node(backend) {
        let app = TestApp::spawn(backend).await;
        let enrollment = app.enrollment_key(None).await;
        let (a_id, a_key) = app.register_node(&enrollment, "a.example.com", &[]).await;
        let (b_id, _) = app.register_node(&enrollment, "b.example.com", &[]).await;

        let other = app.gql_key(&a_key, NODE, json!({ "id": b_id })).await;
        assert_eq!(error_code(&other), "FORBIDDEN", "{other}");
        assert!(other["data"]["node"].is_null());
        let by_name = app.gql_key(&a_key, "{ node(hostname: \"b.example.com\") { id } }", json!({})).await;
        assert_eq!(error_code(&by_name), "FORBIDDEN");
        for operation in [
            "{ nodes { totalCount } }",
            "{ me { id } }",
            "{ users { totalCount } }",
        ] {
            let body = app.gql_key(&a_key, operation, json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{operation}: {body}");
        }
        let change = app.gql_key(&a_key, "mutation($id: ID!) { updateNode(id: $id, input: { description: \"x\" }) { id } }", json!({ "id": a_id })).await;
        assert_eq!(error_code(&change), "FORBIDDEN");
        // An enrollment key registers nodes and nothing else.
        let body = app.gql_key(&enrollment, HEARTBEAT, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let body = app.gql_key(&enrollment, NODE, json!({ "id": a_id })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        // Garbage and unknown keys are refused before anything else happens.
        for key in ["garbage", &format!("mko_{}_secret", uuid::Uuid::now_v7().simple()), &"k".repeat(500)] {
            assert_eq!(error_code(&app.gql_key(key, HEARTBEAT, json!({})).await), "UNAUTHENTICATED", "{key}");
        }
    }
}

on_both_backends! {
    async fn enrollment_keys_run_out_expire_and_can_be_revoked(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let once = app.enrollment_key(Some(1)).await;
        app.register_node(&once, "first.example.com", &[]).await;
        let register = "mutation { registerNode(input: { hostname: \"second.example.com\", roles: [IMAP] }) { apiKey } }";
        let used_up = app.gql_key(&once, register, json!({})).await;
        assert_eq!(error_code(&used_up), "UNAUTHENTICATED");
        assert!(used_up["errors"][0]["message"].as_str().unwrap().contains("used up"));

        let create = "mutation($at: DateTime) { createEnrollmentKey(input: { name: \"soon\", expiresAt: $at }) { key enrollmentKey { id } } }";
        let past = app.gql(Some(&admin), create, json!({ "at": "2020-01-01T00:00:00Z" })).await;
        assert_eq!(error_code(&past), "BAD_USER_INPUT");
        let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(2000)).to_rfc3339();
        let body = app.gql(Some(&admin), create, json!({ "at": soon })).await;
        let expiring = body["data"]["createEnrollmentKey"]["key"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let expired = app.gql_key(&expiring, register, json!({})).await;
        assert_eq!(error_code(&expired), "UNAUTHENTICATED");
        assert!(expired["errors"][0]["message"].as_str().unwrap().contains("expired"));

        let body = app.gql(Some(&admin), "mutation { createEnrollmentKey(input: { name: \"to revoke\" }) { key enrollmentKey { id } } }", json!({})).await;
        let revocable = body["data"]["createEnrollmentKey"]["key"].as_str().unwrap().to_string();
        let id = body["data"]["createEnrollmentKey"]["enrollmentKey"]["id"].clone();
        let revoked = app.gql(Some(&admin), "mutation($id: ID!) { revokeEnrollmentKey(id: $id) { revokedAt } }", json!({ "id": id })).await;
        assert!(revoked["data"]["revokeEnrollmentKey"]["revokedAt"].is_string());
        assert_eq!(error_code(&app.gql_key(&revocable, register, json!({})).await), "UNAUTHENTICATED");

        let listed = app.gql(Some(&admin), "{ enrollmentKeys { totalCount } all: enrollmentKeys(includeRevoked: true) { totalCount edges { node { name uses maxUses } } } }", json!({})).await;
        assert_eq!(listed["data"]["enrollmentKeys"]["totalCount"], 2, "{listed}");
        assert_eq!(listed["data"]["all"]["totalCount"], 3);
        assert_eq!(node_count(&app, &admin).await, 1);
    }
}

on_both_backends! {
    async fn bad_registration_input_is_refused_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(Some(1)).await;
        let register = "mutation($input: RegisterNodeInput!) { registerNode(input: $input) { apiKey } }";
        let many_labels: Vec<Value> = (0..65).map(|i| json!({ "key": format!("k{i}"), "value": "v" })).collect();
        let many_ips: Vec<String> = (0..65).map(|i| format!("192.0.2.{i}")).collect();
        let cases = [
            ("bad hostname", json!({ "hostname": "not a host", "roles": ["MTA"] })),
            ("leading dash", json!({ "hostname": "-mx.example.com", "roles": ["MTA"] })),
            ("long label", json!({ "hostname": format!("{}.example.com", "a".repeat(64)), "roles": ["MTA"] })),
            ("no roles", json!({ "hostname": "mx.example.com", "roles": [] })),
            ("unknown role", json!({ "hostname": "mx.example.com", "roles": ["MAILMAN"] })),
            ("65 labels", json!({ "hostname": "mx.example.com", "roles": ["MTA"], "labels": many_labels })),
            ("256-byte value", json!({ "hostname": "mx.example.com", "roles": ["MTA"], "labels": [{ "key": "k", "value": "v".repeat(256) }] })),
            ("bad label key", json!({ "hostname": "mx.example.com", "roles": ["MTA"], "labels": [{ "key": "bad key", "value": "v" }] })),
            ("bad ip", json!({ "hostname": "mx.example.com", "roles": ["MTA"], "ipAddresses": ["300.1.2.3"] })),
            ("65 ips", json!({ "hostname": "mx.example.com", "roles": ["MTA"], "ipAddresses": many_ips })),
        ];
        for (case, input) in cases {
            let body = app.gql_key(&enrollment, register, json!({ "input": input })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{case}: {body}");
        }
        assert_eq!(node_count(&app, &admin).await, 0);
        // None of the refusals used up the single-use key.
        let keys = app.gql(Some(&admin), "{ enrollmentKeys { edges { node { uses } } } }", json!({})).await;
        assert_eq!(keys["data"]["enrollmentKeys"]["edges"][0]["node"]["uses"], 0);
        app.register_node(&enrollment, "mx.example.com", &[]).await;
    }
}

on_both_backends! {
    async fn status_goes_online_stale_down_and_back_with_history_and_events(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| {
                testkit::quick_node_status(c, "2s");
            })
            .spawn()
            .await;
        let mut events = app.state.events.subscribe();
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (id, key) = app.register_node(&enrollment, "quiet.example.com", &[]).await;

        wait_for_status(&app, &admin, &id, "STALE", Duration::from_secs(5)).await;
        wait_for_status(&app, &admin, &id, "DOWN", Duration::from_secs(5)).await;
        let beat = app.gql_key(&key, HEARTBEAT, json!({})).await;
        assert_eq!(beat["data"]["agentHeartbeat"]["status"], "ONLINE");

        let history = app.gql(Some(&admin), "query($id: ID) { node(id: $id) { statusHistory { from to reason } } }", json!({ "id": id })).await;
        let steps: Vec<(Value, Value)> = history["data"]["node"]["statusHistory"].as_array().unwrap()
            .iter().rev().map(|c| (c["from"].clone(), c["to"].clone())).collect();
        // A stalled machine may let the node go quiet again after the heartbeat; what
        // matters is this sequence up to it.
        assert_eq!(steps[..4], [
            (Value::Null, json!("ONLINE")),
            (json!("ONLINE"), json!("STALE")),
            (json!("STALE"), json!("DOWN")),
            (json!("DOWN"), json!("ONLINE")),
        ]);

        let mut seen = Vec::new();
        while let Ok(Ok(published)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            let json: Value = serde_json::from_str(&published.json).unwrap();
            // The bus also carries the audit entries of the set-up.
            if json["type"] != "NODE_STATUS_CHANGED" {
                continue;
            }
            assert_eq!(json["hostname"], "quiet.example.com");
            seen.push(json["to"].as_str().unwrap().to_string());
        }
        assert_eq!(seen[..4], ["ONLINE", "STALE", "DOWN", "ONLINE"]);
    }
}

on_both_backends! {
    async fn maintenance_holds_the_status_and_ends_by_itself(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.nodes.status_check_interval = duration("50ms"))
            .spawn()
            .await;
        let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
        let enrollment = app.enrollment_key(None).await;
        let (id, key) = app.register_node(&enrollment, "maint.example.com", &[]).await;
        let set = "mutation($id: ID!, $on: Boolean!, $until: DateTime) { setNodeMaintenance(id: $id, enabled: $on, reason: \"kernel update\", until: $until) {
            status maintenance { enabled reason since until by } } }";
        let until = (chrono::Utc::now() + chrono::Duration::milliseconds(2500)).to_rfc3339();
        let body = app.gql(Some(&operator), set, json!({ "id": id, "on": true, "until": until })).await;
        let node = &body["data"]["setNodeMaintenance"];
        assert_eq!(node["status"], "MAINTENANCE", "{body}");
        assert_eq!(node["maintenance"]["by"], "oscar");
        assert_eq!(node["maintenance"]["reason"], "kernel update");
        // Agent contact does not end maintenance.
        let beat = app.gql_key(&key, HEARTBEAT, json!({})).await;
        assert_eq!(beat["data"]["agentHeartbeat"]["status"], "MAINTENANCE");

        wait_for_status(&app, &operator, &id, "ONLINE", Duration::from_secs(5)).await;
        let body = app.gql(Some(&operator), "query($id: ID) { node(id: $id) { maintenance { enabled by } } }", json!({ "id": id })).await;
        assert_eq!(body["data"]["node"]["maintenance"], json!({ "enabled": false, "by": null }));

        let past = app.gql(Some(&operator), set, json!({ "id": id, "on": true, "until": "2020-01-01T00:00:00Z" })).await;
        assert_eq!(error_code(&past), "BAD_USER_INPUT");
        let on = app.gql(Some(&operator), set, json!({ "id": id, "on": true, "until": null })).await;
        assert_eq!(on["data"]["setNodeMaintenance"]["status"], "MAINTENANCE");
        let off = app.gql(Some(&operator), set, json!({ "id": id, "on": false, "until": null })).await;
        assert_eq!(off["data"]["setNodeMaintenance"]["status"], "ONLINE");
    }
}

on_both_backends! {
    async fn viewers_read_and_filter_nodes_operators_change_them_admins_retire_them(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, viewer) = app.user_with_role("vic", "VIEWER").await;
        let (_, operator) = app.user_with_role("otto", "OPERATOR").await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let register = "mutation($input: RegisterNodeInput!) { registerNode(input: $input) { apiKey node { id } } }";
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        for (host, roles, dc) in [
            ("imap1.example.com", json!(["IMAP"]), "fra1"),
            ("mta1.example.com", json!(["MTA", "MX"]), "fra1"),
            ("mta2.example.com", json!(["MTA"]), "ams1"),
            ("db1.example.com", json!(["MONGODB", "REDIS"]), "ams1"),
        ] {
            let body = app.gql_key(&enrollment, register, json!({ "input": {
                "hostname": host, "roles": roles, "labels": [{ "key": "dc", "value": dc }] } })).await;
            ids.push(body["data"]["registerNode"]["node"]["id"].as_str().unwrap().to_string());
            keys.push(body["data"]["registerNode"]["apiKey"].as_str().unwrap().to_string());
        }
        let hosts = |body: &Value| -> Vec<String> {
            body["data"]["nodes"]["edges"].as_array().unwrap_or_else(|| panic!("{body}"))
                .iter().map(|e| e["node"]["hostname"].as_str().unwrap().to_string()).collect()
        };
        let list = "query($f: NodeFilter, $first: Int, $after: String) { nodes(filter: $f, first: $first, after: $after) {
            totalCount pageInfo { hasNextPage endCursor } edges { node { hostname } } } }";
        let all = app.gql(Some(&viewer), list, json!({})).await;
        assert_eq!(hosts(&all), ["db1.example.com", "imap1.example.com", "mta1.example.com", "mta2.example.com"]);
        let mta = app.gql(Some(&viewer), list, json!({ "f": { "roles": ["MTA"] } })).await;
        assert_eq!(hosts(&mta), ["mta1.example.com", "mta2.example.com"]);
        let any = app.gql(Some(&viewer), list, json!({ "f": { "roles": ["MX", "REDIS"] } })).await;
        assert_eq!(hosts(&any), ["db1.example.com", "mta1.example.com"]);
        let ams = app.gql(Some(&viewer), list, json!({ "f": { "labels": [{ "key": "dc", "value": "ams1" }] } })).await;
        assert_eq!(hosts(&ams), ["db1.example.com", "mta2.example.com"]);
        let search = app.gql(Some(&viewer), list, json!({ "f": { "search": "MTA", "labels": [{ "key": "dc", "value": "fra1" }] } })).await;
        assert_eq!(hosts(&search), ["mta1.example.com"]);
        let repeated = vec!["ONLINE"; 20_000];
        let many = app.gql(Some(&viewer), list, json!({ "f": { "statuses": repeated } })).await;
        assert_eq!(hosts(&many).len(), 4, "{many}");
        let wildcard = app.gql(Some(&viewer), list, json!({ "f": { "search": "%" } })).await;
        assert_eq!(hosts(&wildcard), Vec::<String>::new());
        let page1 = app.gql(Some(&viewer), list, json!({ "first": 3 })).await;
        assert_eq!(page1["data"]["nodes"]["totalCount"], 4);
        let page2 = app.gql(Some(&viewer), list, json!({ "first": 3, "after": page1["data"]["nodes"]["pageInfo"]["endCursor"] })).await;
        assert_eq!(hosts(&page2), ["mta2.example.com"]);
        let by_name = app.gql(Some(&viewer), "{ node(hostname: \"IMAP1.example.com\") { id } }", json!({})).await;
        assert_eq!(by_name["data"]["node"]["id"], ids[0].as_str());

        let update = "mutation($id: ID!, $input: UpdateNodeInput!) { updateNode(id: $id, input: $input) { roles labels { key value } description } }";
        let input = json!({ "roles": ["MTA", "RSPAMD"], "labels": [{ "key": "dc", "value": "ams2" }], "description": "outbound" });
        assert_eq!(error_code(&app.gql(Some(&viewer), update, json!({ "id": ids[1], "input": input })).await), "FORBIDDEN");
        let maintenance = "mutation($id: ID!) { setNodeMaintenance(id: $id, enabled: true) { status } }";
        assert_eq!(error_code(&app.gql(Some(&viewer), maintenance, json!({ "id": ids[1] })).await), "FORBIDDEN");
        let keys_field = app.gql(Some(&viewer), "query($id: ID) { node(id: $id) { keys { id } } }", json!({ "id": ids[1] })).await;
        assert_eq!(error_code(&keys_field), "FORBIDDEN");
        let changed = app.gql(Some(&operator), update, json!({ "id": ids[1], "input": input })).await;
        assert_eq!(changed["data"]["updateNode"], json!({
            "roles": ["MTA", "RSPAMD"], "labels": [{ "key": "dc", "value": "ams2" }], "description": "outbound" }), "{changed}");
        let ams2 = app.gql(Some(&viewer), list, json!({ "f": { "labels": [{ "key": "dc", "value": "ams2" }] } })).await;
        assert_eq!(hosts(&ams2), ["mta1.example.com"]);
        let bad = app.gql(Some(&operator), update, json!({ "id": ids[1], "input": { "roles": [] } })).await;
        assert_eq!(error_code(&bad), "BAD_USER_INPUT");

        let retire = "mutation($id: ID!) { decommissionNode(id: $id) { status } }";
        assert_eq!(error_code(&app.gql(Some(&operator), retire, json!({ "id": ids[2] })).await), "FORBIDDEN");
        let retired = app.gql(Some(&admin), retire, json!({ "id": ids[2] })).await;
        assert_eq!(retired["data"]["decommissionNode"]["status"], "RETIRED");
        assert_eq!(hosts(&app.gql(Some(&viewer), list, json!({})).await).len(), 3);
        let asked = app.gql(Some(&viewer), list, json!({ "f": { "statuses": ["RETIRED"] } })).await;
        assert_eq!(hosts(&asked), ["mta2.example.com"]);
        let refused = app.gql_key(&keys[2], HEARTBEAT, json!({})).await;
        assert_eq!(error_code(&refused), "UNAUTHENTICATED");
        assert!(refused["errors"][0]["message"].as_str().unwrap().contains("retired"));
    }
}

#[tokio::test]
async fn the_cli_creates_enrollment_keys_that_agents_can_use() {
    let dir = std::env::temp_dir().join(format!("mailops-cli-{}", uuid::Uuid::now_v7()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mailops"))
        .args([
            "enrollment-key",
            "create",
            "--name",
            "rollout",
            "--max-uses",
            "2",
            "--expires-in",
            "1h",
        ])
        .env("MAILOPS_DATA_DIR", &dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run mailops");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("mke_"), "{key}");

    let data_dir = dir.clone();
    let app = TestApp::builder(testkit::Backend::Sqlite)
        .with_config(move |c| c.server.data_dir = data_dir)
        .spawn()
        .await;
    app.register_node(&key, "cli.example.com", &[]).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_status_job_runs_on_one_instance_at_a_time() {
    // Two instances on one Postgres database, as in production.
    // The server's own job runs its first pass at start-up and then not for an hour.
    let first = TestApp::builder(testkit::Backend::Postgres)
        .with_config(|c| c.nodes.status_check_interval = duration("1h"))
        .spawn()
        .await;
    let db = &first.state.db;
    let lock = mailops::db::JobLock::NodeStatus;
    let mut holder = None;
    for _ in 0..100 {
        holder = mailops::db::tx::try_lock(db, lock).await.unwrap();
        if holder.is_some() {
            break;
        }
        // That start-up pass still holds the lock.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let holder = holder.expect("a pass takes the lock once no other holds it");
    let other_instance = sea_orm::Database::connect(first.database_url().unwrap())
        .await
        .unwrap();
    assert!(
        mailops::db::tx::try_lock(&other_instance, lock)
            .await
            .unwrap()
            .is_none(),
        "a second instance ran the same pass"
    );
    holder.commit().await.unwrap();
    assert!(
        mailops::db::tx::try_lock(&other_instance, lock)
            .await
            .unwrap()
            .is_some()
    );
}
