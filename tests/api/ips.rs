use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use serde_json::{Value, json};

use testkit::dns_server::DnsServer;
use testkit::on_both_backends;
use testkit::{Backend, TestApp, duration, error_code, zones};

const ADD: &str =
    "mutation($input: AddIpsInput!) { addIps(input: $input) { address status pool nodeId } }";
const IPS: &str = "query($filter: IpFilter, $first: Int, $after: String) { ips(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { address status pool version node { hostname } } } } }";
const IP: &str = "query($a: String!) { ip(address: $a) { address status statusReason pool reverseDns notes listed
    blacklist { zone state listed listedSince returnCodes categories reason detail }
    blacklistHistory(first: 10) { totalCount edges { node { zone listed categories reason } } } } }";
const BULK: &str = "mutation($input: BulkIpActionInput!) { bulkIpAction(input: $input) { dryRun changed outcomes { address outcome from to message } } }";
const CHECK: &str =
    "mutation($a: [String!]) { checkIpBlacklists(addresses: $a) { id state kind } }";
const JOB: &str = "query($id: ID!) { ipCheckJob(id: $id) { state attempts lastError result { addresses listed unknown transitions zones { zone health detail } } } }";

fn addresses(body: &Value) -> Vec<String> {
    body["data"]["ips"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["address"].as_str().unwrap().to_string())
        .collect()
}

async fn ip_count(app: &TestApp, token: &str) -> u64 {
    let body = app
        .gql(Some(token), "{ ips { totalCount } }", json!({}))
        .await;
    body["data"]["ips"]["totalCount"]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}"))
}

/// Polls the job until it leaves QUEUED and RUNNING (bounded, so a hung job fails the test).
async fn finished_job(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let body = app.gql(Some(token), JOB, json!({ "id": id })).await;
        let job = body["data"]["ipCheckJob"].clone();
        if job["state"] == "SUCCEEDED" || job["state"] == "FAILED" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} never finished");
}

async fn check(app: &TestApp, token: &str, addresses: Option<&[&str]>) -> Value {
    let body = app.gql(Some(token), CHECK, json!({ "a": addresses })).await;
    let job = &body["data"]["checkIpBlacklists"];
    assert_eq!(job["state"], "QUEUED", "{body}");
    assert_eq!(job["kind"], "MANUAL");
    finished_job(app, token, job["id"].as_str().unwrap()).await
}

on_both_backends! {
    async fn admins_build_the_inventory_and_viewers_filter_it(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (node_id, _) = app.register_node(&enrollment, "mx1.example.com", &["198.51.100.7"]).await;
        // Addresses the agent reported are in the inventory, ACTIVE.
        let reported = app.gql(Some(&admin), IP, json!({ "a": "198.51.100.7" })).await;
        assert_eq!(reported["data"]["ip"]["status"], "ACTIVE", "{reported}");

        let added = app.gql(Some(&admin), ADD, json!({ "input": {
            "addresses": ["2001:DB8::10", "192.0.2.200"], "cidr": "192.0.2.0/30", "nodeId": node_id, "pool": "bulk"
        } })).await;
        let rows = added["data"]["addIps"].as_array().unwrap_or_else(|| panic!("{added}"));
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().all(|r| r["status"] == "ACTIVE" && r["pool"] == "bulk" && r["nodeId"] == node_id.as_str()));

        let (_, viewer) = app.user_with_role("ip-viewer", "VIEWER").await;
        let all = app.gql(Some(&viewer), IPS, json!({})).await;
        assert_eq!(all["data"]["ips"]["totalCount"], 7, "{all}");
        assert_eq!(addresses(&all), ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.200", "198.51.100.7", "2001:db8::10"]);
        assert_eq!(all["data"]["ips"]["edges"][6]["node"]["version"], 6);
        assert_eq!(all["data"]["ips"]["edges"][0]["node"]["node"]["hostname"], "mx1.example.com");

        // Keyset pages in address order.
        let first = app.gql(Some(&viewer), IPS, json!({ "first": 4 })).await;
        assert_eq!(first["data"]["ips"]["pageInfo"]["hasNextPage"], true);
        let cursor = first["data"]["ips"]["pageInfo"]["endCursor"].clone();
        let second = app.gql(Some(&viewer), IPS, json!({ "first": 4, "after": cursor })).await;
        assert_eq!(addresses(&second), ["192.0.2.200", "198.51.100.7", "2001:db8::10"]);

        let subnet = app.gql(Some(&viewer), IPS, json!({ "filter": { "subnet": "192.0.2.0/25" } })).await;
        assert_eq!(addresses(&subnet), ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        let v6 = app.gql(Some(&viewer), IPS, json!({ "filter": { "subnet": "2001:db8::/32", "pool": "bulk" } })).await;
        assert_eq!(addresses(&v6), ["2001:db8::10"]);
        let of_node = app.gql(Some(&viewer), IPS, json!({ "filter": { "nodeIds": [node_id], "statuses": ["ACTIVE"] } })).await;
        assert_eq!(of_node["data"]["ips"]["totalCount"], 7);

        let (_, operator) = app.user_with_role("ip-operator", "OPERATOR").await;
        let paused = app.gql(Some(&operator), "mutation { setIpStatus(address: \"192.0.2.1\", status: PAUSED, reason: \"complaints\") { status statusReason } }", json!({})).await;
        assert_eq!(paused["data"]["setIpStatus"]["status"], "PAUSED", "{paused}");
        let updated = app.gql(Some(&operator), "mutation { updateIp(address: \"192.0.2.1\", input: { reverseDns: \"Out1.Example.com.\", notes: \"shared with marketing\", pool: \"\" }) { reverseDns notes pool } }", json!({})).await;
        assert_eq!(updated["data"]["updateIp"], json!({ "reverseDns": "out1.example.com", "notes": "shared with marketing", "pool": null }), "{updated}");
        let by_status = app.gql(Some(&viewer), IPS, json!({ "filter": { "statuses": ["PAUSED"] } })).await;
        assert_eq!(addresses(&by_status), ["192.0.2.1"]);

        let detached = app.gql(Some(&admin), "mutation { assignIp(address: \"192.0.2.2\") { nodeId } }", json!({})).await;
        assert_eq!(detached["data"]["assignIp"]["nodeId"], Value::Null, "{detached}");
        let removed = app.gql(Some(&admin), "mutation { removeIp(address: \"192.0.2.3\") { address } }", json!({})).await;
        assert_eq!(removed["data"]["removeIp"]["address"], "192.0.2.3", "{removed}");
        assert_eq!(ip_count(&app, &viewer).await, 6);
        let gone = app.gql(Some(&viewer), IP, json!({ "a": "192.0.2.3" })).await;
        assert_eq!(gone["data"]["ip"], Value::Null);

        let log = app.gql(Some(&admin), "{ auditLog(first: 50) { edges { node { action outcome actorName } } } }", json!({})).await;
        let actions: Vec<&str> = log["data"]["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["action"].as_str().unwrap()).collect();
        for action in ["ip.add", "ip.set_status", "ip.update", "ip.assign", "ip.remove"] {
            assert!(actions.contains(&action), "{action} missing from {actions:?}");
        }
    }
}

on_both_backends! {
    async fn bad_input_gets_a_clear_error_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        app.gql(Some(&admin), ADD, json!({ "input": { "addresses": ["192.0.2.1", "192.0.2.2"] } })).await;
        app.gql(Some(&admin), "mutation { setIpStatus(address: \"192.0.2.2\", status: RETIRED) { status } }", json!({})).await;

        let cases = [
            (json!({ "addresses": ["192.0.2.300"] }), "BAD_USER_INPUT", "input.addresses"),
            (json!({ "addresses": ["192.0.2.9", "mx.example.com"] }), "BAD_USER_INPUT", "input.addresses"),
            (json!({ "cidr": "10.0.0.0/8" }), "BAD_USER_INPUT", "input.cidr"),
            (json!({ "cidr": "192.0.2.0/21" }), "BAD_USER_INPUT", "input.cidr"),
            (json!({ "cidr": "192.0.2.0/40" }), "BAD_USER_INPUT", "input.cidr"),
            (json!({ "addresses": ["192.0.2.9"], "nodeId": "00000000-0000-7000-8000-000000000000" }), "NOT_FOUND", ""),
            (json!({ "addresses": ["192.0.2.9"], "pool": "no spaces allowed" }), "BAD_USER_INPUT", "input.pool"),
            (json!({ "addresses": ["192.0.2.9", "192.0.2.1"] }), "CONFLICT", ""),
        ];
        for (input, code, field) in cases {
            let body = app.gql(Some(&admin), ADD, json!({ "input": input })).await;
            assert_eq!(error_code(&body), code, "{input}: {body}");
            if !field.is_empty() {
                assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
            }
        }
        let message = app.gql(Some(&admin), ADD, json!({ "input": { "cidr": "10.0.0.0/8" } })).await;
        assert!(message["errors"][0]["message"].as_str().unwrap().contains("16777216 addresses; at most 1024"), "{message}");
        assert_eq!(ip_count(&app, &admin).await, 2);

        let retired = app.gql(Some(&admin), "mutation { setIpStatus(address: \"192.0.2.2\", status: ACTIVE) { status } }", json!({})).await;
        assert_eq!(error_code(&retired), "CONFLICT", "{retired}");
        let unknown = app.gql(Some(&admin), "mutation { setIpStatus(address: \"192.0.2.77\", status: ACTIVE) { status } }", json!({})).await;
        assert_eq!(error_code(&unknown), "NOT_FOUND");
        let malformed = app.gql(Some(&admin), "mutation { setIpStatus(address: \"192.0.2\", status: ACTIVE) { status } }", json!({})).await;
        assert_eq!(error_code(&malformed), "BAD_USER_INPUT");
        let assign = app.gql(Some(&admin), "mutation { assignIp(address: \"192.0.2.1\", nodeId: \"00000000-0000-7000-8000-000000000000\") { nodeId } }", json!({})).await;
        assert_eq!(error_code(&assign), "NOT_FOUND");

        let many: Vec<String> = (0..10_001).map(|n| format!("10.{}.{}.{}", n / 65_536, (n / 256) % 256, n % 256)).collect();
        let too_many = app.gql(Some(&admin), BULK, json!({ "input": { "addresses": many, "action": "PAUSE" } })).await;
        assert_eq!(error_code(&too_many), "BAD_USER_INPUT", "{too_many}");
        assert!(too_many["errors"][0]["message"].as_str().unwrap().contains("at most 10000"));
        let both = app.gql(Some(&admin), BULK, json!({ "input": { "addresses": ["192.0.2.1"], "filter": {}, "action": "PAUSE" } })).await;
        assert_eq!(error_code(&both), "BAD_USER_INPUT");
        let check = app.gql(Some(&admin), CHECK, json!({ "a": ["not-an-ip"] })).await;
        assert_eq!(error_code(&check), "BAD_USER_INPUT");
        let bad_filter = app.gql(Some(&admin), IPS, json!({ "filter": { "subnet": "192.0.2.0/99" } })).await;
        assert_eq!(error_code(&bad_filter), "BAD_USER_INPUT");

        let active = app.gql(Some(&admin), IPS, json!({ "filter": { "statuses": ["ACTIVE"] } })).await;
        assert_eq!(addresses(&active), ["192.0.2.1"]);
        let failures = app.gql(Some(&admin), "{ auditLog(first: 50, filter: { outcome: FAILURE }) { totalCount } }", json!({})).await;
        assert!(failures["data"]["auditLog"]["totalCount"].as_u64().unwrap() >= 8, "{failures}");
    }
}

on_both_backends! {
    async fn a_bulk_action_reports_one_outcome_per_ip_and_a_dry_run_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        app.gql(Some(&admin), ADD, json!({ "input": { "cidr": "192.0.2.0/29", "pool": "outbound" } })).await;
        app.gql(Some(&admin), "mutation { setIpStatus(address: \"192.0.2.6\", status: RETIRED) { status } }", json!({})).await;
        app.gql(Some(&admin), "mutation { setIpStatus(address: \"192.0.2.5\", status: PAUSED) { status } }", json!({})).await;
        let (_, operator) = app.user_with_role("bulk-operator", "OPERATOR").await;

        let input = json!({ "filter": { "subnet": "192.0.2.4/30" }, "action": "PAUSE", "reason": "listed", "dryRun": true });
        let dry = app.gql(Some(&operator), BULK, json!({ "input": input })).await;
        let result = &dry["data"]["bulkIpAction"];
        assert_eq!(result["dryRun"], true, "{dry}");
        assert_eq!(result["changed"], 2);
        let outcomes: Vec<(String, String)> = result["outcomes"].as_array().unwrap().iter()
            .map(|o| (o["address"].as_str().unwrap().to_string(), o["outcome"].as_str().unwrap().to_string())).collect();
        assert_eq!(outcomes, [
            ("192.0.2.4".into(), "CHANGED".into()),
            ("192.0.2.5".into(), "UNCHANGED".into()),
            ("192.0.2.6".into(), "REFUSED".into()),
            ("192.0.2.7".into(), "CHANGED".into()),
        ]);
        let still = app.gql(Some(&operator), IPS, json!({ "filter": { "statuses": ["PAUSED"] } })).await;
        assert_eq!(addresses(&still), ["192.0.2.5"], "a dry run changed something");

        let real = app.gql(Some(&operator), BULK, json!({ "input": {
            "addresses": ["192.0.2.4", "192.0.2.6", "192.0.2.99"], "action": "WARM", "reason": "new range"
        } })).await;
        let result = &real["data"]["bulkIpAction"];
        assert_eq!(result["dryRun"], false, "{real}");
        assert_eq!(result["changed"], 1);
        let by_address = |a: &str| result["outcomes"].as_array().unwrap().iter().find(|o| o["address"] == a).unwrap().clone();
        assert_eq!(by_address("192.0.2.4")["to"], "WARMING");
        assert_eq!(by_address("192.0.2.6")["outcome"], "REFUSED");
        assert_eq!(by_address("192.0.2.99")["outcome"], "NOT_FOUND");
        let warming = app.gql(Some(&operator), IP, json!({ "a": "192.0.2.4" })).await;
        assert_eq!(warming["data"]["ip"]["status"], "WARMING");
        assert_eq!(warming["data"]["ip"]["statusReason"], "new range");

        let log = app.gql(Some(&admin), "{ auditLog(first: 10, filter: { action: \"ip.bulk_action\" }) { totalCount edges { node { actorName detail } } } }", json!({})).await;
        assert_eq!(log["data"]["auditLog"]["totalCount"], 1, "only the real run is recorded: {log}");
        let detail = &log["data"]["auditLog"]["edges"][0]["node"]["detail"];
        assert_eq!(detail["changed"], 1);
        assert_eq!(detail["refused"], 1);
        assert_eq!(detail["notFound"], 1);
    }
}

const V4_LISTED: &str = "192.0.2.1";
const V4_CLEAN: &str = "192.0.2.2";
const V6_LISTED: &str = "2001:db8::1";

/// Zones: `listed.test` (lists the two *_LISTED addresses; critical), `clear.test`,
/// `errors.test` (answers an error code), `broken.test` (wrong test entries) and
/// `slow.test` (answers after the look-up timeout).
async fn dns_for_checks() -> DnsServer {
    let dns = DnsServer::start().await;
    for zone in ["listed.test", "clear.test", "errors.test"] {
        dns.healthy_zone(zone);
    }
    dns.broken_zone("broken.test");
    dns.slow_zone("slow.test", Duration::from_secs(2));
    let v4: IpAddr = V4_LISTED.parse().unwrap();
    dns.list(
        v4,
        "listed.test",
        &[2, 4],
        Some("Listed for spam, see https://listed.test/192.0.2.1"),
    );
    dns.list(V6_LISTED.parse().unwrap(), "listed.test", &[3], None);
    dns.list_answers(
        v4,
        "errors.test",
        &[Ipv4Addr::new(127, 255, 255, 254)],
        None,
    );
    dns.list(v4, "broken.test", &[2], None);
    dns
}

/// Checks against the test zones of `nameserver`, polled every 100 ms, with no schedule.
fn check_config(c: &mut mailops::Config, nameserver: std::net::SocketAddr) {
    c.dnsbl.nameserver = nameserver;
    c.dnsbl.zones = zones(
        "listed.test=127.0.0.2:SPAM,127.0.0.4:EXPLOITED;clear.test;errors.test;broken.test;slow.test",
        &["listed.test"],
    );
    c.dnsbl.timeout = duration("300ms");
    c.dnsbl.job_poll_interval = duration("100ms");
    c.dnsbl.check_interval = duration("1h");
}

async fn spawn_for_checks(backend: Backend, dns: &DnsServer, auto_pause: bool) -> TestApp {
    let nameserver = dns.addr;
    let app = TestApp::builder(backend)
        .with_config(move |c| {
            check_config(c, nameserver);
            c.dnsbl.auto_pause = auto_pause;
        })
        .spawn()
        .await;
    startup_check_done(&app).await;
    app
}

/// Waits for the scheduled check that a server queues when it starts (over an empty
/// inventory), so that it cannot see the addresses a test adds next.
async fn startup_check_done(app: &TestApp) {
    use entity::dnsbl_check_job::{Column, Entity};
    use sea_orm::{ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _};
    for _ in 0..600 {
        let done = Entity::find()
            .filter(Column::Kind.eq("SCHEDULED"))
            .filter(Column::State.eq("SUCCEEDED"))
            .count(&app.state.db)
            .await
            .unwrap();
        if done > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the start-up check never finished");
}

fn zone<'a>(ip: &'a Value, name: &str) -> &'a Value {
    ip["blacklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone"] == name)
        .unwrap_or_else(|| panic!("no {name} in {ip}"))
}

on_both_backends! {
    async fn an_auto_pause_reaches_the_nodes_agent_at_once(backend) {
        let dns = dns_for_checks().await;
        let app = spawn_for_checks(backend, &dns, true).await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (_, key) = app.register_node(&enrollment, "mta.example.com", &[V4_LISTED, V4_CLEAN]).await;
        let mut agent = testkit::ws::WsClient::ready(app.addr, Some(format!("ApiKey {key}"))).await;
        agent
            .subscribe("c", "subscription { agentConfigChanged { version ips { address status } } }", json!({}))
            .await;
        let first = agent.next_json().await;
        assert_eq!(first["payload"]["data"]["agentConfigChanged"]["ips"][0]["status"], "ACTIVE", "{first}");

        let job = check(&app, &admin, Some(&[V4_LISTED, V4_CLEAN])).await;
        assert_eq!(job["state"], "SUCCEEDED", "{job}");
        let paused = agent.next_json().await;
        assert_eq!(
            paused["payload"]["data"]["agentConfigChanged"]["ips"],
            json!([{ "address": V4_LISTED, "status": "PAUSED" }, { "address": V4_CLEAN, "status": "ACTIVE" }]),
            "{paused}"
        );
    }
}

on_both_backends! {
    async fn a_check_reads_each_zone_keeps_history_and_publishes_transitions(backend) {
        let dns = dns_for_checks().await;
        let app = spawn_for_checks(backend, &dns, true).await;
        let admin = app.admin_token().await;
        app.gql(Some(&admin), ADD, json!({ "input": { "addresses": [V4_LISTED, V4_CLEAN, V6_LISTED] } })).await;
        app.gql(Some(&admin), "mutation { setIpStatus(address: \"2001:db8::1\", status: WARMING) { status } }", json!({})).await;
        let mut events = app.state.events.subscribe();

        let job = check(&app, &admin, Some(&[V4_LISTED, V4_CLEAN, V6_LISTED])).await;
        assert_eq!(job["state"], "SUCCEEDED", "{job}");
        let summary = &job["result"];
        assert_eq!(summary["addresses"], 3);
        assert_eq!(summary["listed"], 2, "{summary}");
        assert_eq!(summary["transitions"], 2);
        let health: Vec<(String, String)> = summary["zones"].as_array().unwrap().iter()
            .map(|z| (z["zone"].as_str().unwrap().into(), z["health"].as_str().unwrap().into())).collect();
        assert_eq!(health, [
            ("listed.test".into(), "TRUSTED".into()),
            ("clear.test".into(), "TRUSTED".into()),
            ("errors.test".into(), "TRUSTED".into()),
            ("broken.test".into(), "UNTRUSTED".into()),
            ("slow.test".into(), "UNREACHABLE".into()),
        ]);

        let body = app.gql(Some(&admin), IP, json!({ "a": V4_LISTED })).await;
        let ip = &body["data"]["ip"];
        assert_eq!(ip["listed"], true, "{body}");
        let listed = zone(ip, "listed.test");
        assert_eq!(listed["state"], "LISTED");
        assert_eq!(listed["returnCodes"], json!(["127.0.0.2", "127.0.0.4"]));
        assert_eq!(listed["categories"], json!(["SPAM", "EXPLOITED"]));
        assert_eq!(listed["reason"], "Listed for spam, see https://listed.test/192.0.2.1");
        assert!(listed["listedSince"].is_string());
        assert_eq!(zone(ip, "clear.test")["state"], "CLEAR");
        let refused = zone(ip, "errors.test");
        assert_eq!(refused["state"], "UNKNOWN", "an error code is never a listing: {refused}");
        assert!(refused["detail"].as_str().unwrap().contains("open resolver"));
        let broken = zone(ip, "broken.test");
        assert_eq!(broken["state"], "UNKNOWN");
        assert!(broken["detail"].as_str().unwrap().contains("test entry 127.0.0.2 is not listed"), "{broken}");
        assert_eq!(zone(ip, "slow.test")["state"], "UNKNOWN");
        assert!(zone(ip, "slow.test")["detail"].as_str().unwrap().contains("timed out"));
        assert_eq!(ip["blacklistHistory"]["totalCount"], 1);
        // The critical zone's listing paused the IP, recorded as done by the system.
        assert_eq!(ip["status"], "PAUSED");
        assert!(ip["statusReason"].as_str().unwrap().contains("listed.test"));
        let log = app.gql(Some(&admin), "{ auditLog(first: 5, filter: { action: \"ip.auto_pause\" }) { totalCount edges { node { actorKind } } } }", json!({})).await;
        assert_eq!(log["data"]["auditLog"]["totalCount"], 2, "{log}");
        assert_eq!(log["data"]["auditLog"]["edges"][0]["node"]["actorKind"], "system");

        let v6 = app.gql(Some(&admin), IP, json!({ "a": V6_LISTED })).await;
        assert_eq!(zone(&v6["data"]["ip"], "listed.test")["categories"], json!(["127.0.0.3"]), "{v6}");
        let clean = app.gql(Some(&admin), IP, json!({ "a": V4_CLEAN })).await;
        assert_eq!(clean["data"]["ip"]["listed"], false);
        assert_eq!(clean["data"]["ip"]["status"], "ACTIVE");

        let blacklisted = app.gql(Some(&admin), "{ blacklistedIps { totalCount edges { node { address } } } }", json!({})).await;
        assert_eq!(blacklisted["data"]["blacklistedIps"]["totalCount"], 2, "{blacklisted}");
        let not_listed = app.gql(Some(&admin), IPS, json!({ "filter": { "listed": false } })).await;
        assert_eq!(addresses(&not_listed), [V4_CLEAN]);

        // Delisted: the next check records the delisting and clears listedSince.
        dns.delist(V4_LISTED.parse().unwrap(), "listed.test");
        let again = check(&app, &admin, Some(&[V4_LISTED])).await;
        assert_eq!(again["result"]["transitions"], 1, "{again}");
        let body = app.gql(Some(&admin), IP, json!({ "a": V4_LISTED })).await;
        let ip = &body["data"]["ip"];
        assert_eq!(zone(ip, "listed.test")["state"], "CLEAR");
        assert_eq!(zone(ip, "listed.test")["listedSince"], Value::Null);
        let history: Vec<bool> = ip["blacklistHistory"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["listed"].as_bool().unwrap()).collect();
        assert_eq!(history, [false, true], "newest first: {body}");
        let page = app.gql(Some(&admin), "query($a: String!) { ip(address: $a) { blacklistHistory(first: 1) { pageInfo { hasNextPage endCursor } } } }", json!({ "a": V4_LISTED })).await;
        let cursor = page["data"]["ip"]["blacklistHistory"]["pageInfo"]["endCursor"].clone();
        let older = app.gql(Some(&admin), "query($a: String!, $c: String) { ip(address: $a) { blacklistHistory(first: 1, after: $c) { edges { node { listed } } } } }", json!({ "a": V4_LISTED, "c": cursor })).await;
        assert_eq!(older["data"]["ip"]["blacklistHistory"]["edges"][0]["node"]["listed"], true, "{older}");

        let mut seen = Vec::new();
        while let Ok(published) = events.try_recv() {
            let event: Value = serde_json::from_str(&published.json).unwrap();
            if event["type"] == "IP_REPUTATION_CHANGED" && event["zone"] == "listed.test" {
                seen.push((event["address"].as_str().unwrap().to_string(), event["state"].as_str().unwrap().to_string(), event["previousState"].clone()));
            }
        }
        assert!(seen.contains(&(V4_LISTED.into(), "LISTED".into(), Value::Null)), "{seen:?}");
        assert!(seen.contains(&(V6_LISTED.into(), "LISTED".into(), Value::Null)), "{seen:?}");
        assert!(seen.contains(&(V4_LISTED.into(), "CLEAR".into(), json!("LISTED"))), "{seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_whose_name_server_does_not_answer_is_retried_then_failed() {
    // Nothing listens on this port: every look-up fails.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    drop(silent);
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(move |c| {
            c.dnsbl.nameserver = addr;
            c.dnsbl.zones = zones("listed.test", &[]);
            c.dnsbl.timeout = duration("200ms");
            c.dnsbl.job_poll_interval = duration("100ms");
            c.dnsbl.retry_base = duration("100ms");
            c.dnsbl.max_attempts = 3;
            c.dnsbl.check_interval = duration("1h");
        })
        .spawn()
        .await;
    startup_check_done(&app).await;
    let admin = app.admin_token().await;
    app.gql(
        Some(&admin),
        ADD,
        json!({ "input": { "addresses": ["192.0.2.1"] } }),
    )
    .await;
    let job = check(&app, &admin, None).await;
    assert_eq!(job["state"], "FAILED", "{job}");
    assert_eq!(job["attempts"], 3);
    assert!(
        job["lastError"]
            .as_str()
            .unwrap()
            .contains("no zone answered"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_checks_cover_active_and_warming_ips_and_resume_abandoned_jobs() {
    use sea_orm::{ActiveValue::Set, EntityTrait as _};
    let dns = dns_for_checks().await;
    let app = spawn_for_checks(Backend::Sqlite, &dns, false).await;
    let admin = app.admin_token().await;
    app.gql(
        Some(&admin),
        ADD,
        json!({ "input": { "addresses": [V4_LISTED, V4_CLEAN, V6_LISTED] } }),
    )
    .await;
    app.gql(
        Some(&admin),
        "mutation { setIpStatus(address: \"192.0.2.2\", status: PAUSED) { status } }",
        json!({}),
    )
    .await;
    app.gql(
        Some(&admin),
        "mutation { setIpStatus(address: \"2001:db8::1\", status: WARMING) { status } }",
        json!({}),
    )
    .await;

    // A scheduled job that an instance started and never finished (it stopped).
    let id = uuid::Uuid::now_v7();
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    entity::dnsbl_check_job::Entity::insert(entity::dnsbl_check_job::ActiveModel {
        id: Set(id),
        kind: Set("SCHEDULED".into()),
        addresses: Set(None),
        state: Set("RUNNING".into()),
        attempts: Set(1),
        next_run_at: Set(long_ago),
        last_error: Set(None),
        result: Set(None),
        requested_by: Set(None),
        created_at: Set(long_ago),
        started_at: Set(Some(long_ago)),
        finished_at: Set(None),
    })
    .exec_without_returning(&app.state.db)
    .await
    .unwrap();

    let job = finished_job(&app, &admin, &id.to_string()).await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["attempts"], 2);
    assert_eq!(
        job["result"]["addresses"], 2,
        "ACTIVE and WARMING only: {job}"
    );
    let paused = app.gql(Some(&admin), IP, json!({ "a": V4_CLEAN })).await;
    assert_eq!(paused["data"]["ip"]["blacklist"], json!([]), "{paused}");
    let warming = app.gql(Some(&admin), IP, json!({ "a": V6_LISTED })).await;
    assert_eq!(
        zone(&warming["data"]["ip"], "listed.test")["state"],
        "LISTED"
    );
    // The auto-pause policy is off by default.
    assert_eq!(warming["data"]["ip"]["status"], "WARMING");
}
