//! Why mail is refused: refusals classified at ingestion, counted by category, IP, pool and
//! provider, an IP's deliverability per provider beside its pool's, the overview naming an
//! IP refused at a provider, and alert rules scoped by IP, pool or provider that name the
//! IP and may pause it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use testkit::{TestApp, error_code, on_both_backends};

use crate::mailflow::ingest;

/// Response lines as the providers' pages quote them.
const BANNED_IP: &str = "550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this list please visit https://sender.office.com/ and follow the directions.";
const GMAIL_RATE: &str = "421-4.7.28 [192.0.2.10] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. - gsmtp";
const NO_SUCH_USER: &str = "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.";
const YAHOO_TSS04: &str = "421 4.7.0 [TSS04] Messages from 192.0.2.20 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes";

fn refusals(n: usize, status: &str, ip: &str, domain: &str, response: Option<&str>) -> Vec<Value> {
    let ts = chrono::Utc::now().to_rfc3339();
    (0..n)
        .map(|i| {
            let code = response.map_or(250, |r| r[..3].parse::<i32>().unwrap());
            json!({
                "ts": ts, "messageId": format!("{ip}-{domain}-{status}-{i}-{}", uuid::Uuid::now_v7()),
                "status": status, "sendingIp": ip, "recipientDomain": domain,
                "smtpCode": code, "response": response.unwrap_or("250 2.0.0 OK"),
            })
        })
        .collect()
}

/// mta1 sends from 192.0.2.10 and .11 (pool `bulk`) and 192.0.2.20 (pool `transactional`).
async fn cluster(app: &TestApp, admin: &str) -> String {
    let enrollment = app.enrollment_key(None).await;
    let (_, key) = app
        .register_node(
            &enrollment,
            "mta1.example.com",
            &["192.0.2.10", "192.0.2.11", "192.0.2.20"],
        )
        .await;
    for (ip, pool) in [
        ("192.0.2.10", "bulk"),
        ("192.0.2.11", "bulk"),
        ("192.0.2.20", "transactional"),
    ] {
        let body = app
            .gql(
                Some(admin),
                "mutation($a: String!, $p: String!) { updateIp(address: $a, input: { pool: $p }) { pool } }",
                json!({ "a": ip, "p": pool }),
            )
            .await;
        assert_eq!(body["data"]["updateIp"]["pool"], pool, "{body}");
    }
    key
}

/// The mail of the scenario: 40 attempts, 15 refused for four different reasons.
fn the_mail() -> Vec<Value> {
    let mut mail = Vec::new();
    mail.extend(refusals(
        5,
        "BOUNCED",
        "192.0.2.10",
        "outlook.com",
        Some(BANNED_IP),
    ));
    mail.extend(refusals(10, "DELIVERED", "192.0.2.10", "hotmail.com", None));
    mail.extend(refusals(
        3,
        "DEFERRED",
        "192.0.2.10",
        "gmail.com",
        Some(GMAIL_RATE),
    ));
    mail.extend(refusals(7, "DELIVERED", "192.0.2.10", "gmail.com", None));
    mail.extend(refusals(
        2,
        "BOUNCED",
        "192.0.2.11",
        "gmail.com",
        Some(NO_SUCH_USER),
    ));
    mail.extend(refusals(
        8,
        "DELIVERED",
        "192.0.2.11",
        "googlemail.com",
        None,
    ));
    mail.extend(refusals(
        1,
        "DEFERRED",
        "192.0.2.20",
        "yahoo.com",
        Some(YAHOO_TSS04),
    ));
    mail.extend(refusals(4, "DELIVERED", "192.0.2.20", "yahoo.com", None));
    mail
}

const FLOW: &str = "query($g: MailFlowGroupBy = NONE, $t: MailFlowGroupBy, $ips: [String!], $pools: [String!],
    $providers: [String!], $categories: [BounceCategory!]) {
    mailFlow(range: H1, groupBy: $g, thenBy: $t, sendingIps: $ips, pools: $pools, providers: $providers,
      categories: $categories) {
      groupCount totals { sent delivered deferred bounced }
      groups { key totals { sent delivered deferred bounced bounceRate }
        groups { key totals { sent deferred bounced } points { counts { sent } } } } } }";

async fn flow(app: &TestApp, token: &str, variables: Value) -> Value {
    let body = app.gql(Some(token), FLOW, variables).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["mailFlow"].clone()
}

fn group<'a>(groups: &'a Value, key: &str) -> &'a Value {
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no group {key:?} in {groups}"))
}

async fn events_of(app: &TestApp, token: &str, category: &str) -> Value {
    let body = app
        .gql(
            Some(token),
            "query($c: [BounceCategory!]) { mailEvents(filter: { categories: $c }, first: 50) {
                totalCount nodes { status category enhancedCode sendingIp } } }",
            json!({ "c": [category] }),
        )
        .await;
    body["data"]["mailEvents"].clone()
}

on_both_backends! {
    async fn refusals_are_classified_counted_and_compared_per_ip_pool_and_provider(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.overview.cache_ttl = None)
            .spawn()
            .await;
        let admin = app.admin_token().await;
        let key = cluster(&app, &admin).await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let mail = the_mail();
        let body = ingest(&app, &key, "d-1", mail.clone()).await;
        assert_eq!(body["data"]["ingestMailEvents"]["accepted"], 40, "{body}");

        // Each refusal has its category and enhanced code.
        let banned = events_of(&app, &viewer, "BLOCKED_IP").await;
        assert_eq!(banned["totalCount"], 5, "{banned}");
        for event in banned["nodes"].as_array().unwrap() {
            assert_eq!(event["enhancedCode"], "5.7.606");
            assert_eq!(event["sendingIp"], "192.0.2.10");
        }
        let throttled = events_of(&app, &viewer, "THROTTLED").await;
        assert_eq!(throttled["totalCount"], 4);
        let enhanced: Vec<&str> = throttled["nodes"].as_array().unwrap().iter()
            .map(|e| e["enhancedCode"].as_str().unwrap()).collect();
        assert!(enhanced.contains(&"4.7.28") && enhanced.contains(&"4.7.0"), "{enhanced:?}");
        let delivered = app.gql(Some(&viewer), "{ mailEvents(filter: { statuses: [DELIVERED] }, first: 1) { nodes { category enhancedCode } } }", json!({})).await;
        assert_eq!(delivered["data"]["mailEvents"]["nodes"][0]["category"], Value::Null);

        // The same batch again changes nothing; the counters agree with the raw events.
        let again = ingest(&app, &key, "d-1", mail).await;
        assert_eq!(again["data"]["ingestMailEvents"]["duplicate"], true, "{again}");
        let by_category = flow(&app, &viewer, json!({ "g": "CATEGORY" })).await;
        assert_eq!(by_category["totals"], json!({ "sent": 40, "delivered": 29, "deferred": 4, "bounced": 7 }));
        for (category, refused) in [("BLOCKED_IP", 5), ("THROTTLED", 4), ("INVALID_RECIPIENT", 2)] {
            let counted = &group(&by_category["groups"], category)["totals"];
            let raw = events_of(&app, &viewer, category).await["totalCount"].as_i64().unwrap();
            assert_eq!(counted["deferred"].as_i64().unwrap() + counted["bounced"].as_i64().unwrap(), raw);
            assert_eq!(raw, refused, "{category}");
        }
        assert_eq!(group(&by_category["groups"], "")["totals"]["delivered"], 29);

        // IP × provider.
        let split = flow(&app, &viewer, json!({ "g": "IP", "t": "PROVIDER" })).await;
        let first = group(&split["groups"], "192.0.2.10");
        assert_eq!(first["totals"]["sent"], 25);
        assert_eq!(group(&first["groups"], "outlook")["totals"], json!({ "sent": 15, "deferred": 0, "bounced": 5 }));
        assert_eq!(group(&first["groups"], "gmail")["totals"], json!({ "sent": 10, "deferred": 3, "bounced": 0 }));
        assert_eq!(group(&first["groups"], "gmail")["points"].as_array().unwrap().iter()
            .map(|p| p["counts"]["sent"].as_i64().unwrap()).sum::<i64>(), 10);

        // Pools, as the IPs are pooled now.
        let pools = flow(&app, &viewer, json!({ "g": "POOL" })).await;
        assert_eq!(group(&pools["groups"], "bulk")["totals"]["sent"], 35);
        assert_eq!(group(&pools["groups"], "transactional")["totals"]["sent"], 5);

        // Filters.
        assert_eq!(flow(&app, &viewer, json!({ "providers": ["gmail"] })).await["totals"]["sent"], 20);
        assert_eq!(flow(&app, &viewer, json!({ "pools": ["transactional"] })).await["totals"]["sent"], 5);
        assert_eq!(flow(&app, &viewer, json!({ "pools": ["nobody"] })).await["totals"]["sent"], 0);
        let one = flow(&app, &viewer, json!({ "ips": ["192.0.2.10"], "categories": ["THROTTLED"] })).await;
        assert_eq!(one["totals"], json!({ "sent": 3, "delivered": 0, "deferred": 3, "bounced": 0 }));

        // An IP at each provider, beside its pool.
        let body = app.gql(Some(&viewer), "{ ip(address: \"192.0.2.10\") { deliverability(range: H1) {
            totals { sent } pool poolTotals { sent bounced }
            providers { provider counts { sent delivered deferred bounced bounceRate deferredRate }
              topCategories { category refusals bounced } }
            poolProviders { provider counts { sent bounced } } } } }", json!({})).await;
        let d = &body["data"]["ip"]["deliverability"];
        assert_eq!(d["totals"]["sent"], 25, "{body}");
        assert_eq!(d["pool"], "bulk");
        assert_eq!(d["poolTotals"], json!({ "sent": 35, "bounced": 7 }));
        let outlook = &d["providers"][0];
        assert_eq!(outlook["provider"], "outlook");
        assert_eq!(outlook["counts"]["bounceRate"], 1.0 / 3.0);
        assert_eq!(outlook["topCategories"], json!([{ "category": "BLOCKED_IP", "refusals": 5, "bounced": 5 }]));
        let gmail = &d["providers"][1];
        assert_eq!(gmail["counts"]["deferredRate"], 0.3);
        assert_eq!(gmail["topCategories"], json!([{ "category": "THROTTLED", "refusals": 3, "bounced": 0 }]));
        assert_eq!(group(&d["poolProviders"].as_array().unwrap().iter()
            .map(|p| json!({ "key": p["provider"], "counts": p["counts"] })).collect::<Value>(), "gmail")["counts"],
            json!({ "sent": 20, "bounced": 2 }));

        // Five BLOCKED_IP refusals is not yet a pattern; eleven in 15 minutes is.
        let overview = "{ overview { health reasons { code message } } }";
        let body = app.gql(Some(&viewer), overview, json!({})).await;
        assert!(!body["data"]["overview"]["reasons"].to_string().contains("IP_BLOCKED_IP"), "{body}");
        ingest(&app, &key, "d-2", refusals(6, "BOUNCED", "192.0.2.10", "live.com", Some(BANNED_IP))).await;
        let body = app.gql(Some(&viewer), overview, json!({})).await;
        let reasons = body["data"]["overview"]["reasons"].as_array().unwrap().clone();
        let reason = reasons.iter().find(|r| r["code"] == "IP_BLOCKED_IP").unwrap_or_else(|| panic!("{body}"));
        assert_eq!(reason["message"], "192.0.2.10 is BLOCKED_IP at outlook (11 in 15 min)");
        assert_eq!(body["data"]["overview"]["health"], "DEGRADED");

        // Bad questions are refused with the field named.
        for (variables, field) in [
            (json!({ "g": "IP", "t": "IP" }), "thenBy"),
            (json!({ "t": "PROVIDER" }), "thenBy"),
            (json!({ "categories": [] }), "categories"),
            (json!({ "ips": ["not-an-ip"] }), "sendingIps"),
            (json!({ "providers": ["x".repeat(65)] }), "providers"),
            (json!({ "pools": [""] }), "pools"),
        ] {
            let body = app.gql(Some(&viewer), FLOW, variables.clone()).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{variables}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        }
        let anonymous = app.gql(None, FLOW, json!({})).await;
        assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    }
}

const CREATE: &str = "mutation($i: CreateAlertRuleInput!) { createAlertRule(input: $i) {
    id condition scope category pauseIp windowSeconds } }";
const ALERTS: &str = "query($f: AlertFilter) { alerts(filter: $f, first: 20) { nodes {
    state ip value message nodeId rule { name } } } }";

async fn wait_for_alerts(
    app: &TestApp,
    token: &str,
    rule: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = app.gql(Some(token), ALERTS, json!({ "f": {} })).await;
        let found: Vec<Value> = body["data"]["alerts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule"]["name"] == rule)
            .cloned()
            .collect();
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {rule}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_backends! {
    async fn category_and_deferral_alerts_name_the_ip_or_provider_and_may_pause_the_ip(backend) {
        let app = TestApp::builder(backend)
            .with_config(crate::alerts::fast)
            .spawn()
            .await;
        let admin = app.admin_token().await;
        let key = cluster(&app, &admin).await;
        let (_, operator) = app.user_with_role("olga", "OPERATOR").await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let blocked = json!({ "name": "Blocked at a provider", "condition": "CATEGORY_COUNT",
            "category": "BLOCKED_IP", "scope": "IP_PROVIDER", "threshold": 20, "windowSeconds": 900,
            "pauseIp": true, "severity": "CRITICAL" });

        // Viewers read rules; only operators change them.
        let body = app.gql(Some(&viewer), CREATE, json!({ "i": blocked })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        for (change, field) in [
            (json!({ "category": null }), "input.category"),
            (json!({ "condition": "METRIC", "metric": "system.load1", "category": null }), "input.windowSeconds"),
            (json!({ "scope": "NODE" }), "input.pauseIp"),
            (json!({ "condition": "DEFERRAL_RATE", "threshold": 3 }), "input.category"),
            (json!({ "condition": "DEFERRAL_RATE", "category": null, "threshold": 3 }), "input.threshold"),
        ] {
            let mut input = blocked.clone();
            input.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
            let body = app.gql(Some(&operator), CREATE, json!({ "i": input })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        }
        let rules = app.gql(Some(&viewer), "{ alertRules { name } }", json!({})).await;
        assert!(!rules.to_string().contains("Blocked at a provider"), "a refused rule is not stored");
        let body = app.gql(Some(&operator), CREATE, json!({ "i": blocked })).await;
        assert_eq!(body["data"]["createAlertRule"]["scope"], "IP_PROVIDER", "{body}");
        assert_eq!(body["data"]["createAlertRule"]["pauseIp"], true);
        let deferrals = json!({ "name": "Deferrals at a provider", "condition": "DEFERRAL_RATE",
            "scope": "PROVIDER", "threshold": 0.5, "windowSeconds": 900 });
        assert!(app.gql(Some(&operator), CREATE, json!({ "i": deferrals })).await["errors"].is_null());

        // 21 BLOCKED_IP bounces from one IP at outlook; 25 of 30 gmail attempts deferred.
        let mut mail = refusals(21, "BOUNCED", "192.0.2.10", "outlook.com", Some(BANNED_IP));
        mail.extend(refusals(5, "BOUNCED", "192.0.2.11", "outlook.com", Some(BANNED_IP)));
        mail.extend(refusals(25, "DEFERRED", "192.0.2.11", "gmail.com", Some(GMAIL_RATE)));
        mail.extend(refusals(5, "DELIVERED", "192.0.2.11", "gmail.com", None));
        assert_eq!(ingest(&app, &key, "a-1", mail).await["data"]["ingestMailEvents"]["accepted"], 56);

        let firing = wait_for_alerts(&app, &viewer, "Blocked at a provider",
            |a| a.len() == 1 && a[0]["state"] == "FIRING").await;
        assert_eq!(firing[0]["ip"], "192.0.2.10", "{firing:?}");
        assert_eq!(firing[0]["value"], 21.0);
        let message = firing[0]["message"].as_str().unwrap();
        assert!(message.starts_with("192.0.2.10 (mta1.example.com) at outlook: 21 BLOCKED_IP refusals"), "{message}");
        assert!(firing[0]["nodeId"].is_string());

        // The rule pauses the IP it names, and only that one.
        let status = |ip: &'static str| {
            let app = &app;
            let viewer = viewer.clone();
            async move {
                let body = app.gql(Some(&viewer), "query($a: String!) { ip(address: $a) { status statusReason } }", json!({ "a": ip })).await;
                body["data"]["ip"].clone()
            }
        };
        let paused = status("192.0.2.10").await;
        assert_eq!(paused["status"], "PAUSED", "{paused}");
        assert!(paused["statusReason"].as_str().unwrap().contains("Blocked at a provider"), "{paused}");
        assert_eq!(status("192.0.2.11").await["status"], "ACTIVE");
        let audit = app.gql(Some(&admin), "{ auditLog(first: 50) { nodes { action actorKind } } }", json!({})).await;
        assert!(audit.to_string().contains("ip.auto_pause"), "{audit}");

        let deferred = wait_for_alerts(&app, &viewer, "Deferrals at a provider",
            |a| a.iter().any(|a| a["state"] == "FIRING")).await;
        let gmail = deferred.iter().find(|a| a["state"] == "FIRING").unwrap();
        assert!(gmail["message"].as_str().unwrap().starts_with("provider gmail: deferral rate 83.333% > 50%"), "{gmail}");
        assert_eq!(gmail["ip"], Value::Null);
    }
}

on_both_backends! {
    async fn category_counts_outlive_the_raw_events_they_came_from(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.mail.events_retention = testkit::duration("2s"))
            .spawn()
            .await;
        let admin = app.admin_token().await;
        let key = cluster(&app, &admin).await;
        let mut mail = refusals(3, "BOUNCED", "192.0.2.10", "outlook.com", Some(BANNED_IP));
        mail.extend(refusals(2, "DEFERRED", "192.0.2.20", "yahoo.com", Some(YAHOO_TSS04)));
        assert_eq!(ingest(&app, &key, "r-1", mail).await["data"]["ingestMailEvents"]["accepted"], 5);
        let before = flow(&app, &admin, json!({ "g": "CATEGORY" })).await;
        assert_eq!(events_of(&app, &admin, "BLOCKED_IP").await["totalCount"], 3);

        tokio::time::sleep(Duration::from_millis(2_500)).await;
        mailops::mailflow::sweep_retention(&app.state).await.unwrap();
        assert_eq!(events_of(&app, &admin, "BLOCKED_IP").await["totalCount"], 0);
        let after = flow(&app, &admin, json!({ "g": "CATEGORY" })).await;
        assert_eq!(after, before);
        assert_eq!(group(&after["groups"], "BLOCKED_IP")["totals"]["bounced"], 3);
        assert_eq!(group(&after["groups"], "THROTTLED")["totals"]["deferred"], 2);
    }
}
