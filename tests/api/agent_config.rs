//! The control feed: what a node's agent applies (`agentConfig`, `agentConfigChanged`), the
//! version it reports back, and that a node key learns nothing of other nodes.

use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::ws::WsClient;
use testkit::{TestApp, error_code};

const CONFIG: &str = "{ agentConfig { version pushIntervalSeconds ips { address status pool } } }";
const CHANGED: &str = "subscription($known: String) { agentConfigChanged(knownVersion: $known) {
    version ips { address status pool } } }";
const BULK: &str =
    "mutation($input: BulkIpActionInput!) { bulkIpAction(input: $input) { changed } }";
const HEARTBEAT: &str = "mutation($v: String, $e: String) {
    agentHeartbeat(agentVersion: \"test\", appliedConfigVersion: $v, configError: $e) { id } }";
const NODE: &str = "query($id: ID!) { node(id: $id) {
    configVersion appliedConfigVersion appliedConfigAt configError } }";

/// Two nodes with two IPs each; answers (admin token, (node id, key) of each).
async fn two_nodes(app: &TestApp) -> (String, (String, String), (String, String)) {
    let admin = app.admin_token().await;
    let enrollment = app.enrollment_key(None).await;
    let a = app
        .register_node(&enrollment, "a.example.com", &["192.0.2.1", "192.0.2.2"])
        .await;
    let b = app
        .register_node(
            &enrollment,
            "b.example.com",
            &["198.51.100.1", "198.51.100.2"],
        )
        .await;
    (admin, a, b)
}

fn config_addresses(config: &Value) -> Vec<&str> {
    config["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("{config}"))
        .iter()
        .map(|ip| ip["address"].as_str().unwrap())
        .collect()
}

async fn agent_socket(app: &TestApp, key: &str) -> WsClient {
    WsClient::ready(app.addr, Some(format!("ApiKey {key}"))).await
}

/// The next `next` payload of the subscription.
async fn next_config(socket: &mut WsClient) -> Value {
    let message = socket.next_json().await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["agentConfigChanged"].clone()
}

on_both_backends! {
    async fn a_node_key_reads_its_own_nodes_configuration_and_nothing_of_others(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, (a_id, a_key), (b_id, _)) = two_nodes(&app).await;

        let body = app.gql_key(&a_key, CONFIG, json!({})).await;
        let config = &body["data"]["agentConfig"];
        assert_eq!(config_addresses(config), ["192.0.2.1", "192.0.2.2"], "{body}");
        assert_eq!(config["pushIntervalSeconds"], 15);
        assert_eq!(config["ips"][0]["status"], "ACTIVE");

        // Every other way to B's IPs is closed to A's key.
        for (query, variables) in [
            ("query($id: ID!) { node(id: $id) { ips { address } } }", json!({ "id": b_id })),
            ("{ node(hostname: \"b.example.com\") { id } }", json!({})),
            ("{ ip(address: \"198.51.100.1\") { status } }", json!({})),
            ("{ ips(first: 10) { edges { node { address } } } }", json!({})),
            ("{ nodes(first: 10) { edges { node { ips { address } } } } }", json!({})),
        ] {
            let body = app.gql_key(&a_key, query, variables).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
            assert!(!body.to_string().contains("198.51.100"), "{query} leaked: {body}");
        }
        for query in [
            "subscription { ipReputationChanged { address } }",
            "subscription { nodeStatusChanged { nodeId } }",
        ] {
            let mut socket = agent_socket(&app, &a_key).await;
            socket.subscribe("s", query, json!({})).await;
            let answer = socket.next_message().await;
            assert_eq!(answer["type"], "error", "{query}: {answer}");
        }
        // Users have no agentConfig: it is a node key's alone.
        let body = app.gql(Some(&admin), CONFIG, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        // A viewer reads what the agent applied; an anonymous caller reads nothing.
        let (_, viewer) = app.user_with_role("watcher", "VIEWER").await;
        let body = app.gql(Some(&viewer), NODE, json!({ "id": a_id })).await;
        assert_eq!(body["data"]["node"]["configVersion"], config["version"], "{body}");
        let body = app.gql(None, NODE, json!({ "id": a_id })).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
        // A known version that no agent could hold is refused when subscribing.
        let mut socket = agent_socket(&app, &a_key).await;
        socket.subscribe("c", CHANGED, json!({ "known": "v".repeat(65) })).await;
        let refused = socket.next_json().await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_USER_INPUT", "{refused}");

        // A's own node answers with its own IPs.
        let body = app
            .gql_key(&a_key, "query($id: ID!) { node(id: $id) { ips { address } configVersion } }", json!({ "id": a_id }))
            .await;
        assert_eq!(body["data"]["node"]["configVersion"], config["version"], "{body}");
    }
}

on_both_backends! {
    async fn a_pause_reaches_the_agent_at_once_and_the_applied_version_follows(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, (a_id, a_key), (_, b_key)) = two_nodes(&app).await;
        let first = app.gql_key(&a_key, CONFIG, json!({})).await["data"]["agentConfig"].clone();

        // Subscribing without a version gives the current configuration first.
        let mut a = agent_socket(&app, &a_key).await;
        a.subscribe("c", CHANGED, json!({})).await;
        assert_eq!(next_config(&mut a).await["version"], first["version"]);
        // With the version it knows, nothing comes until something changes.
        let mut b = agent_socket(&app, &b_key).await;
        let b_version = app.gql_key(&b_key, CONFIG, json!({})).await["data"]["agentConfig"]["version"].clone();
        b.subscribe("c", CHANGED, json!({ "known": b_version })).await;
        b.barrier().await;

        let body = app
            .gql(Some(&admin), BULK, json!({ "input": {
                "addresses": ["192.0.2.2"], "action": "PAUSE", "reason": "listed" } }))
            .await;
        assert_eq!(body["data"]["bulkIpAction"]["changed"], 1, "{body}");
        let paused = next_config(&mut a).await;
        assert_ne!(paused["version"], first["version"]);
        assert_eq!(paused["ips"][1], json!({ "address": "192.0.2.2", "status": "PAUSED", "pool": null }));
        assert_eq!(config_addresses(&paused), ["192.0.2.1", "192.0.2.2"]);

        // A change to B's IP reaches B only: A's next message is its own pool change.
        app.gql(Some(&admin), "mutation { updateIp(address: \"198.51.100.1\", input: { pool: \"bulk\" }) { id } }", json!({}))
            .await;
        let b_changed = next_config(&mut b).await;
        assert_eq!(b_changed["ips"][0]["pool"], "bulk");
        assert_eq!(config_addresses(&b_changed), ["198.51.100.1", "198.51.100.2"]);
        app.gql(Some(&admin), "mutation { updateIp(address: \"192.0.2.1\", input: { pool: \"transactional\" }) { id } }", json!({}))
            .await;
        let pooled = next_config(&mut a).await;
        assert_eq!(pooled["ips"][0]["pool"], "transactional", "{pooled}");
        assert!(!pooled.to_string().contains("198.51.100"));

        // Operators see what the agent applied.
        let node = app.gql(Some(&admin), NODE, json!({ "id": a_id })).await;
        assert_eq!(node["data"]["node"]["configVersion"], pooled["version"], "{node}");
        assert!(node["data"]["node"]["appliedConfigVersion"].is_null());
        let body = app
            .gql_key(&a_key, HEARTBEAT, json!({ "v": paused["version"], "e": "reload failed: exit status 1" }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let node = app.gql(Some(&admin), NODE, json!({ "id": a_id })).await["data"]["node"].clone();
        assert_eq!(node["appliedConfigVersion"], paused["version"]);
        assert_eq!(node["configError"], "reload failed: exit status 1");
        let applied_at = node["appliedConfigAt"].clone();
        assert!(applied_at.is_string());

        // The same version again keeps its time; a report without an error clears it.
        app.gql_key(&a_key, HEARTBEAT, json!({ "v": paused["version"] })).await;
        let node = app.gql(Some(&admin), NODE, json!({ "id": a_id })).await["data"]["node"].clone();
        assert_eq!(node["appliedConfigAt"], applied_at);
        assert!(node["configError"].is_null());
        app.gql_key(&a_key, HEARTBEAT, json!({ "v": pooled["version"] })).await;
        let node = app.gql(Some(&admin), NODE, json!({ "id": a_id })).await["data"]["node"].clone();
        assert_eq!(node["appliedConfigVersion"], node["configVersion"]);

        // Bad reports are refused and change nothing.
        for (variables, field) in [
            (json!({ "v": "x".repeat(65) }), "appliedConfigVersion"),
            (json!({ "v": "abc", "e": "e".repeat(1001) }), "configError"),
            (json!({ "v": "abc\u{7}" }), "appliedConfigVersion"),
        ] {
            let body = app.gql_key(&a_key, HEARTBEAT, variables).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
            assert!(body["errors"][0]["message"].as_str().unwrap().starts_with(field), "{body}");
        }
        let after = app.gql(Some(&admin), NODE, json!({ "id": a_id })).await["data"]["node"].clone();
        assert_eq!(after, node);
    }
}

on_both_backends! {
    async fn moving_an_ip_between_nodes_reaches_both_agents(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, (_, a_key), (b_id, b_key)) = two_nodes(&app).await;
        let mut a = agent_socket(&app, &a_key).await;
        a.subscribe("c", CHANGED, json!({})).await;
        next_config(&mut a).await;
        let mut b = agent_socket(&app, &b_key).await;
        b.subscribe("c", CHANGED, json!({})).await;
        next_config(&mut b).await;

        let body = app
            .gql(Some(&admin), "mutation($n: ID) { assignIp(address: \"192.0.2.2\", nodeId: $n) { id } }", json!({ "n": b_id }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        assert_eq!(config_addresses(&next_config(&mut a).await), ["192.0.2.1"]);
        assert_eq!(
            config_addresses(&next_config(&mut b).await),
            ["192.0.2.2", "198.51.100.1", "198.51.100.2"]
        );
    }
}
