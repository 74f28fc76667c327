//! Alerting as users see it: rules, the evaluator moving alerts through PENDING, FIRING
//! and RESOLVED (with hysteresis), maintenance, DNSBL listings, acknowledgements and
//! silences, and the alertEvents subscription.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::ws::WsClient;
use testkit::{Backend, TestApp, duration, error_code, zones};

const INGEST: &str = "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }";
const CREATE: &str = "mutation($i: CreateAlertRuleInput!) { createAlertRule(input: $i) {
    id name condition metric aggregate comparison threshold resolveThreshold effectiveResolveThreshold
    for windowSeconds severity enabled selector { roles labels { key value } nodeIds } updatedBy } }";
const RULES: &str = "{ alertRules { name condition metric aggregate comparison threshold for windowSeconds severity enabled } }";
const ALERTS: &str =
    "query($f: AlertFilter) { alerts(filter: $f, first: 100) { totalCount edges { node {
    id state severity message value threshold pendingSince firedAt resolvedAt ip nodeId
    acknowledged acknowledgedAt acknowledgedBy acknowledgeNote silenced silencedUntil silenceId
    node { hostname } rule { name } } } } }";
const WAIT: Duration = Duration::from_secs(15);

/// Alert evaluation every 200 ms instead of 15 s.
pub(crate) fn fast(c: &mut mailops::Config) {
    c.alerts.evaluation_interval = duration("200ms");
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Pushes the disk use of `/` (and a quiet `/var`) as the node's agent.
pub(crate) async fn push_disk(app: &TestApp, key: &str, root_percent: f64) {
    let batch = json!({ "batchId": uuid::Uuid::now_v7().to_string(), "samples": [
        { "name": "system.disk.used_percent", "labels": [{ "key": "mount", "value": "/" }], "ts": now(), "value": root_percent },
        { "name": "system.disk.used_percent", "labels": [{ "key": "mount", "value": "/var" }], "ts": now(), "value": 40.0 },
    ] });
    let body = app.gql_key(key, INGEST, json!({ "b": batch })).await;
    assert_eq!(body["data"]["ingestMetrics"]["accepted"], 2, "{body}");
}

async fn create_rule(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app.gql(Some(token), CREATE, json!({ "i": input })).await;
    assert!(body["errors"].is_null(), "createAlertRule failed: {body}");
    body["data"]["createAlertRule"].clone()
}

fn disk_rule(name: &str, for_seconds: i32) -> Value {
    json!({ "name": name, "condition": "METRIC", "metric": "system.disk.used_percent",
            "aggregate": "MAX", "comparison": "GT", "threshold": 90.0, "for": for_seconds,
            "severity": "CRITICAL" })
}

async fn alerts(app: &TestApp, token: &str, filter: Value) -> Vec<Value> {
    let body = app.gql(Some(token), ALERTS, json!({ "f": filter })).await;
    assert!(body["errors"].is_null(), "alerts failed: {body}");
    body["data"]["alerts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Polls the alerts matching `filter` until `done` holds; panics after `WAIT`.
async fn wait_for(
    app: &TestApp,
    token: &str,
    filter: Value,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = alerts(app, token, filter.clone()).await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn one_in(state: &'static str) -> impl Fn(&[Value]) -> bool {
    move |found| found.len() == 1 && found[0]["state"] == state
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .to_utc()
}

on_both_backends! {
    async fn a_new_install_starts_with_the_default_rules(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let body = app.gql(Some(&viewer), RULES, json!({})).await;
        let rules = body["data"]["alertRules"].as_array().unwrap();
        let summary: Vec<(String, String)> = rules.iter()
            .map(|r| (r["name"].as_str().unwrap().into(), r["condition"].as_str().unwrap().into()))
            .collect();
        assert_eq!(summary, [
            ("Bounce rate high".to_string(), "BOUNCE_RATE".to_string()),
            ("Deferred queue growing".into(), "METRIC".into()),
            ("Disk almost full".into(), "METRIC".into()),
            ("IP listed on a critical zone".into(), "IP_LISTED".into()),
            ("Node down".into(), "NODE_DOWN".into()),
        ]);
        let disk = &rules[2];
        assert_eq!(disk["metric"], "system.disk.used_percent");
        assert_eq!((disk["aggregate"].clone(), disk["threshold"].clone(), disk["for"].clone()), (json!("MAX"), json!(90.0), json!(300)));
        assert_eq!(rules[0]["windowSeconds"], 900);
        assert!(rules.iter().all(|r| r["enabled"] == true));
    }
}

on_both_backends! {
    async fn rule_changes_are_validated_and_a_refused_one_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let before = app.gql(Some(&viewer), RULES, json!({})).await;

        let refused = [
            (json!({ "name": "", "condition": "NODE_DOWN" }), "input.name"),
            (json!({ "name": "x".repeat(129), "condition": "NODE_DOWN" }), "input.name"),
            (json!({ "name": "no metric", "condition": "METRIC", "threshold": 1.0 }), "input.metric"),
            (json!({ "name": "bad metric", "condition": "METRIC", "metric": "Not A Metric" }), "input.metric"),
            (json!({ "name": "metric on down", "condition": "NODE_DOWN", "metric": "system.load1" }), "input.metric"),
            (json!({ "name": "agg on down", "condition": "NODE_DOWN", "aggregate": "SUM" }), "input.aggregate"),
            (json!({ "name": "window", "condition": "METRIC", "metric": "system.load1", "windowSeconds": 900 }), "input.windowSeconds"),
            (json!({ "name": "short window", "condition": "BOUNCE_RATE", "threshold": 0.1, "windowSeconds": 30 }), "input.windowSeconds"),
            (json!({ "name": "long for", "condition": "NODE_DOWN", "for": 86401 }), "input.for"),
            (json!({ "name": "wrong side", "condition": "METRIC", "metric": "system.load1", "threshold": 10.0, "resolveThreshold": 12.0 }), "input.resolveThreshold"),
            (json!({ "name": "labels", "condition": "METRIC", "metric": "system.load1", "metricLabels": (0..17).map(|i| json!({ "key": format!("k{i}"), "value": "v" })).collect::<Vec<_>>() }), "input.metricLabels"),
            (json!({ "name": "roles", "condition": "NODE_DOWN", "selector": { "nodeIds": ["not-an-id"] } }), "input.selector.nodeIds"),
            (json!({ "name": "ghost", "condition": "NODE_DOWN", "selector": { "nodeIds": ["00000000-0000-7000-8000-000000000000"] } }), "input.selector.nodeIds"),
            (json!({ "name": "many", "condition": "NODE_DOWN", "selector": { "roles": vec!["MTA"; 101] } }), "input.selector.roles"),
        ];
        for (input, field) in refused {
            let body = app.gql(Some(&operator), CREATE, json!({ "i": input })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{input}: {body}");
        }
        let clash = app.gql(Some(&operator), CREATE, json!({ "i": { "name": "Node down", "condition": "NODE_DOWN" } })).await;
        assert_eq!(error_code(&clash), "CONFLICT", "{clash}");
        let forbidden = app.gql(Some(&viewer), CREATE, json!({ "i": disk_rule("viewer's", 0) })).await;
        assert_eq!(error_code(&forbidden), "FORBIDDEN");
        assert_eq!(app.gql(Some(&viewer), RULES, json!({})).await, before, "a refused change changed the rules");

        // A valid rule gets its defaults; an update keeps what it leaves out.
        let rule = create_rule(&app, &operator, json!({ "name": "Bounces, MTAs in fra1", "condition": "BOUNCE_RATE", "threshold": 0.1,
            "selector": { "roles": ["MTA"], "labels": [{ "key": "dc", "value": "fra1" }] } })).await;
        assert_eq!(rule["windowSeconds"], 900);
        assert_eq!(rule["effectiveResolveThreshold"], 0.095);
        assert_eq!(rule["resolveThreshold"], Value::Null);
        assert_eq!(rule["selector"]["roles"], json!(["MTA"]));
        assert_eq!(rule["updatedBy"], "oscar");
        let update = "mutation($id: ID!, $i: UpdateAlertRuleInput!) { updateAlertRule(id: $id, input: $i) { name threshold windowSeconds enabled selector { roles } } }";
        let changed = app.gql(Some(&operator), update, json!({ "id": rule["id"], "i": { "threshold": 0.2, "enabled": false } })).await;
        assert_eq!(changed["data"]["updateAlertRule"], json!({ "name": "Bounces, MTAs in fra1", "threshold": 0.2, "windowSeconds": 900, "enabled": false, "selector": { "roles": ["MTA"] } }), "{changed}");
        for (input, code) in [
            (json!({ "name": "Node down" }), "CONFLICT"),
            (json!({ "windowSeconds": 10 }), "BAD_USER_INPUT"),
            (json!({ "condition": "METRIC" }), "BAD_USER_INPUT"),
        ] {
            let body = app.gql(Some(&operator), update, json!({ "id": rule["id"], "i": input })).await;
            assert_eq!(error_code(&body), code, "{input}: {body}");
        }
        let one = app.gql(Some(&viewer), "query($id: ID!) { alertRule(id: $id) { threshold enabled } }", json!({ "id": rule["id"] })).await;
        assert_eq!(one["data"]["alertRule"], json!({ "threshold": 0.2, "enabled": false }));

        let delete = "mutation($id: ID!) { deleteAlertRule(id: $id) { name } }";
        assert_eq!(error_code(&app.gql(Some(&viewer), delete, json!({ "id": rule["id"] })).await), "FORBIDDEN");
        let deleted = app.gql(Some(&operator), delete, json!({ "id": rule["id"] })).await;
        assert_eq!(deleted["data"]["deleteAlertRule"]["name"], "Bounces, MTAs in fra1");
        assert_eq!(error_code(&app.gql(Some(&operator), delete, json!({ "id": rule["id"] })).await), "NOT_FOUND");
        assert_eq!(app.gql(Some(&viewer), RULES, json!({})).await, before);

        // Each change is in the audit log, refusals included.
        let admin = app.admin_token().await;
        let audit = app.gql(Some(&admin), "{ auditLog(first: 100) { edges { node { action outcome } } } }", json!({})).await;
        let actions: Vec<(String, String)> = audit["data"]["auditLog"]["edges"].as_array().unwrap().iter()
            .map(|e| (e["node"]["action"].as_str().unwrap().into(), e["node"]["outcome"].as_str().unwrap().into()))
            .filter(|(a, _): &(String, String)| a.starts_with("alert_rule."))
            .collect();
        for wanted in [("alert_rule.create", "SUCCESS"), ("alert_rule.create", "FAILURE"), ("alert_rule.update", "SUCCESS"), ("alert_rule.delete", "SUCCESS")] {
            assert!(actions.iter().any(|(a, o)| a == wanted.0 && o.eq_ignore_ascii_case(wanted.1)), "{wanted:?} not in {actions:?}");
        }
    }
}

on_both_backends! {
    async fn a_metric_alert_fires_after_its_for_and_resolves_past_the_resolve_threshold(backend) {
        let app = TestApp::builder(backend).with_config(fast).spawn().await;
        let admin = app.admin_token().await;
        let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
        let mut ws = WsClient::ready(app.addr, Some(format!("Bearer {admin}"))).await;
        ws.subscribe("alerts", "subscription { alertEvents { alertId ruleId rule severity state previousState acknowledged silenced nodeId ip value threshold message at } }", json!({})).await;
        let enrollment = app.enrollment_key(None).await;
        let (node_id, key) = app.register_node(&enrollment, "mta-01.example.com", &[]).await;
        let rule = create_rule(&app, &operator, disk_rule("Root disk", 1)).await;
        let filter = json!({ "ruleIds": [rule["id"]] });

        push_disk(&app, &key, 93.5).await;
        let pending = wait_for(&app, &operator, filter.clone(), "PENDING", one_in("PENDING")).await;
        assert_eq!(pending[0]["firedAt"], Value::Null);
        assert_eq!(pending[0]["message"], "mta-01.example.com: system.disk.used_percent 93.5 > 90");
        assert_eq!(pending[0]["node"]["hostname"], "mta-01.example.com");
        assert_eq!(pending[0]["nodeId"], node_id.as_str());
        assert_eq!(pending[0]["rule"]["name"], "Root disk");
        assert_eq!((pending[0]["severity"].clone(), pending[0]["value"].clone()), (json!("CRITICAL"), json!(93.5)));

        let firing = wait_for(&app, &operator, filter.clone(), "FIRING", one_in("FIRING")).await;
        let held = time(&firing[0]["firedAt"]) - time(&firing[0]["pendingSince"]);
        assert!(held >= chrono::Duration::seconds(1), "fired after {held}");

        // Between the threshold (90) and the default resolve threshold (85.5): still firing.
        push_disk(&app, &key, 88.0).await;
        let between = wait_for(&app, &operator, filter.clone(), "the value 88", |a| a.len() == 1 && a[0]["value"] == 88.0).await;
        assert_eq!(between[0]["state"], "FIRING");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(alerts(&app, &operator, filter.clone()).await[0]["state"], "FIRING");

        push_disk(&app, &key, 80.0).await;
        let resolved = wait_for(&app, &operator, filter.clone(), "RESOLVED", one_in("RESOLVED")).await;
        assert!(resolved[0]["resolvedAt"].is_string());
        assert_eq!(resolved[0]["message"], "mta-01.example.com: system.disk.used_percent 80 is back below 85.5");

        // The subscription saw each transition of this rule's alert, in order.
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let message = ws.next_json().await;
            let event = &message["payload"]["data"]["alertEvents"];
            if event["rule"] == "Root disk" {
                seen.push((event["previousState"].clone(), event["state"].clone()));
                assert_eq!(event["nodeId"], node_id.as_str());
                assert_eq!(event["ruleId"], rule["id"]);
                assert_eq!(event["severity"], "CRITICAL");
                assert_eq!(event["threshold"], 90.0);
            }
        }
        assert_eq!(seen, [
            (Value::Null, json!("PENDING")),
            (json!("PENDING"), json!("FIRING")),
            (json!("FIRING"), json!("RESOLVED")),
        ]);

        // A new breach is a new alert.
        push_disk(&app, &key, 95.0).await;
        wait_for(&app, &operator, filter.clone(), "a second alert", |a| a.len() == 2 && a[0]["state"] != "RESOLVED").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_node_fires_and_maintenance_suppresses_and_resolves() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(|c| {
            fast(c);
            testkit::quick_node_status(c, "1s");
        })
        .spawn()
        .await;
    let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
    let enrollment = app.enrollment_key(None).await;
    let (quiet, _) = app
        .register_node(&enrollment, "quiet.example.com", &[])
        .await;
    let (serviced, _) = app
        .register_node(&enrollment, "serviced.example.com", &[])
        .await;
    let maintenance = "mutation($id: ID!) { setNodeMaintenance(id: $id, enabled: true, reason: \"disk swap\") { status } }";
    let body = app
        .gql(Some(&operator), maintenance, json!({ "id": serviced }))
        .await;
    assert_eq!(
        body["data"]["setNodeMaintenance"]["status"], "MAINTENANCE",
        "{body}"
    );

    let down = json!({ "ruleIds": ["0193a000-0000-7000-8000-000000000001"] });
    let firing = wait_for(
        &app,
        &operator,
        down.clone(),
        "the node-down alert",
        one_in("FIRING"),
    )
    .await;
    assert_eq!(firing[0]["nodeId"], quiet.as_str());
    assert_eq!(firing[0]["severity"], "CRITICAL");
    assert_eq!(
        firing[0]["message"],
        "quiet.example.com is DOWN: no agent contact"
    );
    // The node in maintenance went quiet too, and raised nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let none = alerts(&app, &operator, json!({ "nodeIds": [serviced] })).await;
    assert!(none.is_empty(), "{none:?}");

    let body = app
        .gql(Some(&operator), maintenance, json!({ "id": quiet }))
        .await;
    assert_eq!(
        body["data"]["setNodeMaintenance"]["status"], "MAINTENANCE",
        "{body}"
    );
    let resolved = wait_for(
        &app,
        &operator,
        down.clone(),
        "the alert resolved by maintenance",
        one_in("RESOLVED"),
    )
    .await;
    assert_eq!(
        resolved[0]["message"],
        "quiet.example.com: in maintenance; resolved"
    );
    assert_eq!(resolved[0]["firedAt"], firing[0]["firedAt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_listed_on_a_critical_zone_fires_and_resolves_once_delisted() {
    use testkit::dns_server::DnsServer;
    let dns = DnsServer::start().await;
    dns.healthy_zone("listed.test");
    dns.healthy_zone("minor.test");
    let listed: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    dns.list(listed, "listed.test", &[2], Some("spam"));
    // Listed on a zone that is not critical only: no alert.
    dns.list("192.0.2.2".parse().unwrap(), "minor.test", &[2], None);
    let nameserver = dns.addr;
    let app = TestApp::builder(Backend::Postgres)
        .with_config(move |c| {
            fast(c);
            c.dnsbl.nameserver = nameserver;
            c.dnsbl.zones = zones("listed.test;minor.test", &["listed.test"]);
            c.dnsbl.timeout = duration("300ms");
            c.dnsbl.job_poll_interval = duration("100ms");
            c.dnsbl.check_interval = duration("1h");
        })
        .spawn()
        .await;
    let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
    let enrollment = app.enrollment_key(None).await;
    let (node_id, _) = app
        .register_node(
            &enrollment,
            "mta-02.example.com",
            &["192.0.2.1", "192.0.2.2"],
        )
        .await;
    let check = "mutation { checkIpBlacklists { id } }";
    assert!(app.gql(Some(&operator), check, json!({})).await["errors"].is_null());

    let rule = json!({ "ruleIds": ["0193a000-0000-7000-8000-000000000005"] });
    let firing = wait_for(
        &app,
        &operator,
        rule.clone(),
        "the listing alert",
        one_in("FIRING"),
    )
    .await;
    assert_eq!(firing[0]["ip"], "192.0.2.1");
    assert_eq!(firing[0]["nodeId"], node_id.as_str());
    assert_eq!(
        firing[0]["message"],
        "192.0.2.1 (mta-02.example.com) is listed on listed.test"
    );

    dns.delist(listed, "listed.test");
    assert!(app.gql(Some(&operator), check, json!({})).await["errors"].is_null());
    let resolved = wait_for(&app, &operator, rule, "the delisting", one_in("RESOLVED")).await;
    assert_eq!(
        resolved[0]["message"],
        "192.0.2.1 is no longer listed on a critical DNSBL zone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_acknowledge_and_silence_alerts() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(fast)
        .spawn()
        .await;
    let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
    let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
    let enrollment = app.enrollment_key(None).await;
    let (first_node, first_key) = app
        .register_node(&enrollment, "mta-01.example.com", &[])
        .await;
    let (_, second_key) = app
        .register_node(&enrollment, "mta-02.example.com", &[])
        .await;
    let rule = create_rule(&app, &operator, disk_rule("Disk now", 0)).await;
    let filter = json!({ "ruleIds": [rule["id"]] });
    push_disk(&app, &first_key, 97.0).await;
    let firing = wait_for(&app, &operator, filter.clone(), "FIRING", one_in("FIRING")).await;
    let alert_id = firing[0]["id"].clone();

    // Acknowledging.
    let ack = "mutation($id: ID!, $note: String) { acknowledgeAlert(id: $id, note: $note) { state acknowledged acknowledgedAt acknowledgedBy acknowledgeNote } }";
    let refused = app
        .gql(
            Some(&viewer),
            ack,
            json!({ "id": alert_id, "note": "mine" }),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let long = app
        .gql(
            Some(&operator),
            ack,
            json!({ "id": alert_id, "note": "x".repeat(1001) }),
        )
        .await;
    assert_eq!(error_code(&long), "BAD_USER_INPUT");
    let first = app
        .gql(
            Some(&operator),
            ack,
            json!({ "id": alert_id, "note": "cleaning /var/log" }),
        )
        .await;
    let acked = &first["data"]["acknowledgeAlert"];
    assert_eq!(
        (
            acked["acknowledged"].clone(),
            acked["acknowledgedBy"].clone(),
            acked["acknowledgeNote"].clone(),
            acked["state"].clone()
        ),
        (
            json!(true),
            json!("oscar"),
            json!("cleaning /var/log"),
            json!("FIRING")
        ),
        "{first}"
    );
    let again = app
        .gql(
            Some(&operator),
            ack,
            json!({ "id": alert_id, "note": "other" }),
        )
        .await;
    assert_eq!(
        &again["data"]["acknowledgeAlert"], acked,
        "a second acknowledgement changed it"
    );

    // Silencing: bad matchers and times change nothing.
    let silence = "mutation($m: SilenceMatcherInput!, $u: DateTime!, $r: String!) { silenceAlerts(matcher: $m, until: $u, reason: $r) {
        covered silence { id active endsAt reason createdBy matcher { ruleIds } } } }";
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for (matcher, until, reason, field) in [
        (json!({}), soon.clone(), "maintenance", "matcher"),
        (
            json!({ "ruleIds": [] }),
            soon.clone(),
            "maintenance",
            "matcher",
        ),
        (
            json!({ "ruleIds": ["nope"] }),
            soon.clone(),
            "maintenance",
            "matcher.ruleIds",
        ),
        (
            json!({ "nodeIds": vec![first_node.clone(); 101] }),
            soon.clone(),
            "maintenance",
            "matcher.nodeIds",
        ),
        (
            json!({ "ips": ["not an ip"] }),
            soon.clone(),
            "maintenance",
            "matcher.ips",
        ),
        (
            json!({ "ruleIds": [rule["id"]] }),
            (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
            "maintenance",
            "until",
        ),
        (
            json!({ "ruleIds": [rule["id"]] }),
            (chrono::Utc::now() + chrono::Duration::days(91)).to_rfc3339(),
            "maintenance",
            "until",
        ),
        (
            json!({ "ruleIds": [rule["id"]] }),
            soon.clone(),
            " ",
            "reason",
        ),
    ] {
        let body = app
            .gql(
                Some(&operator),
                silence,
                json!({ "m": matcher, "u": until, "r": reason }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{matcher}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{matcher}: {body}"
        );
    }
    let listed = app
        .gql(Some(&viewer), "{ alertSilences { id } }", json!({}))
        .await;
    assert_eq!(listed["data"]["alertSilences"], json!([]));
    let forbidden = app
        .gql(
            Some(&viewer),
            silence,
            json!({ "m": { "ruleIds": [rule["id"]] }, "u": soon, "r": "x" }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");

    let body = app
        .gql(
            Some(&operator),
            silence,
            json!({ "m": { "ruleIds": [rule["id"]] }, "u": soon, "r": "replacing disks" }),
        )
        .await;
    let silenced = &body["data"]["silenceAlerts"];
    assert_eq!(silenced["covered"], 1, "{body}");
    assert_eq!(silenced["silence"]["active"], true);
    assert_eq!(silenced["silence"]["createdBy"], "oscar");
    let silence_id = silenced["silence"]["id"].clone();
    let covered = alerts(&app, &operator, filter.clone()).await;
    assert_eq!(
        (
            covered[0]["silenced"].clone(),
            covered[0]["silenceId"].clone()
        ),
        (json!(true), silence_id.clone())
    );
    assert_eq!(time(&covered[0]["silencedUntil"]), time(&json!(soon)));

    // An alert raised while the silence is on is silenced from the start.
    push_disk(&app, &second_key, 99.0).await;
    let both = wait_for(
        &app,
        &operator,
        filter.clone(),
        "the second node's alert",
        |a| a.len() == 2,
    )
    .await;
    assert!(both.iter().all(|a| a["silenced"] == true), "{both:?}");
    let quiet = alerts(
        &app,
        &operator,
        json!({ "ruleIds": [rule["id"]], "silenced": false }),
    )
    .await;
    assert!(quiet.is_empty());
    assert_eq!(
        active_silences(&app, &viewer).await,
        json!([{ "id": silence_id, "reason": "replacing disks" }])
    );

    // A shorter silence of the first node: it matches, but the longer one stays in charge.
    let shorter = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let body = app
        .gql(
            Some(&operator),
            silence,
            json!({ "m": { "ruleIds": [rule["id"]], "nodeIds": [first_node] }, "u": shorter, "r": "first node only" }),
        )
        .await;
    assert_eq!(body["data"]["silenceAlerts"]["covered"], 1, "{body}");
    let shorter_id = body["data"]["silenceAlerts"]["silence"]["id"].clone();
    let first_alert = alerts(
        &app,
        &operator,
        json!({ "ruleIds": [rule["id"]], "nodeIds": [first_node] }),
    )
    .await;
    assert_eq!(first_alert[0]["silenceId"], silence_id);

    let expire = "mutation($id: ID!) { expireSilence(id: $id) { active } }";
    assert_eq!(
        error_code(
            &app.gql(Some(&viewer), expire, json!({ "id": silence_id }))
                .await
        ),
        "FORBIDDEN"
    );
    let expired = app
        .gql(Some(&operator), expire, json!({ "id": silence_id }))
        .await;
    assert_eq!(
        expired["data"]["expireSilence"]["active"], false,
        "{expired}"
    );
    // The second node's alert is no longer silenced; the first node's is, by the shorter one.
    let loud = alerts(
        &app,
        &operator,
        json!({ "ruleIds": [rule["id"]], "silenced": false }),
    )
    .await;
    assert_eq!(loud.len(), 1, "{loud:?}");
    assert_eq!(loud[0]["node"]["hostname"], "mta-02.example.com");
    assert!(loud[0]["silencedUntil"].is_null());
    let still = alerts(
        &app,
        &operator,
        json!({ "ruleIds": [rule["id"]], "silenced": true }),
    )
    .await;
    assert_eq!(
        (still.len(), still[0]["silenceId"].clone()),
        (1, shorter_id.clone()),
        "{still:?}"
    );
    assert_eq!(time(&still[0]["silencedUntil"]), time(&json!(shorter)));
    assert_eq!(
        active_silences(&app, &viewer).await,
        json!([{ "id": shorter_id, "reason": "first node only" }])
    );
    app.gql(Some(&operator), expire, json!({ "id": shorter_id }))
        .await;
    let loud = alerts(
        &app,
        &operator,
        json!({ "ruleIds": [rule["id"]], "silenced": false }),
    )
    .await;
    assert_eq!(loud.len(), 2, "{loud:?}");
    let active = app
        .gql(
            Some(&viewer),
            "{ alertSilences(active: true) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(active["data"]["alertSilences"], json!([]));

    // A resolved alert cannot be acknowledged.
    push_disk(&app, &first_key, 10.0).await;
    wait_for(
        &app,
        &operator,
        json!({ "ruleIds": [rule["id"]], "nodeIds": [first_node], "states": ["RESOLVED"] }),
        "RESOLVED",
        |a| a.len() == 1,
    )
    .await;
    let late = app
        .gql(Some(&operator), ack, json!({ "id": alert_id }))
        .await;
    assert_eq!(error_code(&late), "CONFLICT", "{late}");

    // Paging, newest first.
    let page = app.gql(Some(&viewer), "query($f: AlertFilter) { alerts(filter: $f, first: 1) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }", json!({ "f": filter })).await;
    let connection = &page["data"]["alerts"];
    assert_eq!(connection["totalCount"], 2);
    assert_ne!(
        connection["edges"][0]["node"]["id"], alert_id,
        "the newest alert comes first"
    );
    let next = app.gql(Some(&viewer), "query($f: AlertFilter, $c: String) { alerts(filter: $f, first: 1, after: $c) { pageInfo { hasNextPage } edges { node { id } } } }",
        json!({ "f": filter, "c": connection["pageInfo"]["endCursor"] })).await;
    assert_eq!(next["data"]["alerts"]["edges"][0]["node"]["id"], alert_id);
    assert_eq!(next["data"]["alerts"]["pageInfo"]["hasNextPage"], false);
}

on_both_backends! {
    async fn a_high_bounce_rate_fires_from_ingested_mail_and_counts_in_the_overview(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| {
                fast(c);
                c.overview.cache_ttl = None;
            })
            .spawn()
            .await;
        let enrollment = app.enrollment_key(None).await;
        let (node_id, key) = app.register_node(&enrollment, "mta1.example.com", &["192.0.2.10"]).await;
        let (_, operator) = app.user_with_role("olga", "OPERATOR").await;
        let overview = "{ overview { health reasons { level code } activeAlerts { warning critical total } } }";

        // 2 of 20 attempts bounced: 10%, over the default rule's 5%.
        let ts = chrono::Utc::now().to_rfc3339();
        let mut mail = crate::mailflow::events(18, &ts, "DELIVERED", Some("192.0.2.10"), Some("gmail.com"));
        mail.extend(crate::mailflow::events(2, &ts, "BOUNCED", Some("192.0.2.10"), Some("gmail.com")));
        let body = crate::mailflow::ingest(&app, &key, "m-1", mail).await;
        assert_eq!(body["data"]["ingestMailEvents"]["accepted"], 20, "{body}");
        let firing = wait_for(&app, &operator, json!({ "nodeIds": [node_id] }), "the bounce alert", one_in("FIRING")).await;
        assert_eq!(firing[0]["rule"]["name"], "Bounce rate high");
        assert_eq!(firing[0]["severity"], "WARNING");
        assert_eq!(firing[0]["value"], 0.1);

        let body = app.gql(Some(&operator), overview, json!({})).await;
        assert_eq!(body["data"]["overview"], json!({
            "health": "DEGRADED",
            "reasons": [{ "level": "DEGRADED", "code": "WARNING_ALERTS" }, { "level": "DEGRADED", "code": "BOUNCE_RATE" }],
            "activeAlerts": { "warning": 1, "critical": 0, "total": 1 },
        }), "{body}");

        // A silenced alert no longer counts as active.
        let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let body = app.gql(Some(&operator),
            "mutation($m: SilenceMatcherInput!, $u: DateTime!) { silenceAlerts(matcher: $m, until: $u, reason: \"known bad list\") { covered } }",
            json!({ "m": { "nodeIds": [node_id] }, "u": until })).await;
        assert_eq!(body["data"]["silenceAlerts"]["covered"], 1, "{body}");
        let body = app.gql(Some(&operator), overview, json!({})).await;
        assert_eq!(body["data"]["overview"]["activeAlerts"]["total"], 0, "{body}");
        assert_eq!(body["data"]["overview"]["reasons"], json!([{ "level": "DEGRADED", "code": "BOUNCE_RATE" }]));

        // Enough good mail brings the rate under the resolve threshold.
        let good = crate::mailflow::events(400, &ts, "DELIVERED", Some("192.0.2.10"), Some("gmail.com"));
        assert_eq!(crate::mailflow::ingest(&app, &key, "m-2", good).await["data"]["ingestMailEvents"]["accepted"], 400);
        wait_for(&app, &operator, json!({ "nodeIds": [node_id] }), "the bounce alert to resolve", one_in("RESOLVED")).await;
        let body = app.gql(Some(&operator), overview, json!({})).await;
        assert_eq!(body["data"]["overview"]["health"], "HEALTHY", "{body}");
    }
}

/// The silences in force, as a viewer reads them.
async fn active_silences(app: &TestApp, viewer: &str) -> Value {
    let body = app
        .gql(
            Some(viewer),
            "{ alertSilences(active: true) { id reason } }",
            json!({}),
        )
        .await;
    body["data"]["alertSilences"].clone()
}
