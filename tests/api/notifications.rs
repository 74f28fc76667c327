//! Alerts reaching people, with real receivers: an HTTP server taking Alertmanager
//! webhooks and Slack messages, and a real SMTP server (aiosmtpd). Grouping, repeats,
//! resolutions, silences and maintenance, a receiver down for a while, mailops killed
//! with a notification unsent, two instances, and who may see and change what.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use testkit::receivers::{HttpReceiver, SmtpReceiver};
use testkit::servers::MailopsProcess;
use testkit::{Backend, TestApp, duration, error_code, on_both_backends};

use super::alerts::{now, push_disk};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "a-webhook-secret-of-some-length";
const CREATE_POINT: &str = "mutation($i: CreateContactPointInput!) { createContactPoint(input: $i) {
    id name kind url hasSecret headerNames recipients smtp { host port security username from hasPassword } } }";
const SET_POLICY: &str = "mutation($i: NotificationPolicyInput!) { setNotificationPolicy(input: $i) {
    contactPointIds groupBy groupWaitSeconds groupIntervalSeconds repeatIntervalSeconds sendResolved
    routes { severities contactPointIds continue groupWaitSeconds } contactPoints { name } updatedBy } }";
const NOTIFICATIONS: &str = "query($f: NotificationFilter) { notifications(filter: $f, first: 20) {
    totalCount edges { node { id contactPointName groupKey sequence status state alertIds attemptCount
    nextAttemptAt finishedAt contactPoint { name } attempts { at outcome statusCode detail } } } } }";

/// Evaluation every 200 ms, the notifier every 100 ms, retries from 100 ms to 500 ms.
fn fast(c: &mut mailops::Config) {
    super::alerts::fast(c);
    c.notifications.interval = duration("100ms");
    c.notifications.backoff_min = duration("100ms");
    c.notifications.backoff_max = duration("500ms");
}

/// A disk rule that fires at once above 90%.
async fn disk_rule(app: &TestApp, token: &str, name: &str) -> String {
    let body = app
        .gql(
            Some(token),
            "mutation($i: CreateAlertRuleInput!) { createAlertRule(input: $i) { id } }",
            json!({ "i": { "name": name, "condition": "METRIC", "metric": "system.disk.used_percent",
                     "aggregate": "MAX", "comparison": "GT", "threshold": 90.0, "for": 0,
                     "severity": "CRITICAL" } }),
        )
        .await;
    body["data"]["createAlertRule"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

async fn contact_point(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app
        .gql(Some(token), CREATE_POINT, json!({ "i": input }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["createContactPoint"].clone()
}

async fn webhook(app: &TestApp, token: &str, receiver: &HttpReceiver) -> String {
    let point = contact_point(
        app,
        token,
        json!({ "name": "ops webhook", "kind": "WEBHOOK", "url": receiver.url("/hook?token=t0p"),
                "secret": SECRET, "headers": [{ "name": "X-Team", "value": "mail-ops" }] }),
    )
    .await;
    point["id"].as_str().unwrap().to_string()
}

async fn set_policy(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app
        .gql(Some(token), SET_POLICY, json!({ "i": input }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["setNotificationPolicy"].clone()
}

/// A server whose policy sends every alert to a signed webhook on `receiver`, with the
/// settings of `policy`; `operator` is an OPERATOR's token.
struct Watched {
    app: TestApp,
    operator: String,
    receiver: HttpReceiver,
}

async fn watched(app: TestApp, mut policy: Value) -> Watched {
    let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
    let receiver = HttpReceiver::start().await;
    policy["contactPointIds"] = json!([webhook(&app, &operator, &receiver).await]);
    set_policy(&app, &operator, policy).await;
    Watched {
        app,
        operator,
        receiver,
    }
}

async fn notifications(app: &TestApp, token: &str, filter: Value) -> Vec<Value> {
    let body = app
        .gql(Some(token), NOTIFICATIONS, json!({ "f": filter }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["notifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Polls the notifications until `done` holds; panics after `WAIT`.
async fn wait_for_notifications(
    app: &TestApp,
    token: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = notifications(app, token, json!({})).await;
        if done(&found) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited in vain for {what}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Nodes that report through their agents, one key each.
async fn nodes(app: &TestApp, count: usize) -> Vec<(String, String)> {
    let enrollment = app.enrollment_key(None).await;
    let mut nodes = Vec::new();
    for i in 0..count {
        nodes.push(
            app.register_node(&enrollment, &format!("mta-{i:02}.example.com"), &[])
                .await,
        );
    }
    nodes
}

on_both_backends! {
    async fn five_alerts_of_a_rule_reach_a_webhook_as_one_signed_alertmanager_message(backend) {
        let app = TestApp::builder(backend).with_config(fast).spawn().await;
        let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
        let receiver = HttpReceiver::start().await;
        let point = webhook(&app, &operator, &receiver).await;
        let policy = set_policy(&app, &operator, json!({ "contactPointIds": [point],
            "groupBy": ["alertname"], "groupWaitSeconds": 2, "groupIntervalSeconds": 1 })).await;
        assert_eq!(policy["contactPoints"][0]["name"], "ops webhook");
        assert_eq!(policy["repeatIntervalSeconds"], 14400);
        assert_eq!(policy["updatedBy"], "oscar");
        let nodes = nodes(&app, 5).await;
        disk_rule(&app, &operator, "Disk full").await;
        for (_, key) in &nodes {
            push_disk(&app, key, 95.0).await;
        }

        let delivered = receiver.wait_for_delivered(1, WAIT).await;
        let request = &delivered[0];
        assert_eq!(request.path, "/hook");
        assert_eq!(request.header("x-team").as_deref(), Some("mail-ops"));
        assert_eq!(
            request.header("x-mailops-signature"),
            Some(format!("sha256={}", hmac_hex(&request.body)))
        );
        let message = request.json();
        assert_eq!(message["version"], "4");
        assert_eq!(message["status"], "firing");
        assert_eq!(message["receiver"], "ops webhook");
        assert_eq!(message["groupKey"], "{}:{alertname=\"Disk full\"}");
        assert_eq!(message["groupLabels"], json!({ "alertname": "Disk full" }));
        assert_eq!(message["truncatedAlerts"], 0);
        assert_eq!(message["commonLabels"]["severity"], "critical");
        assert!(message["externalURL"].as_str().unwrap().starts_with("http://"));
        assert_eq!(message["sequence"], 1);
        let alerts = message["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 5, "{message}");
        let mut hosts: Vec<&str> = alerts.iter().map(|a| a["labels"]["node"].as_str().unwrap()).collect();
        hosts.sort_unstable();
        assert_eq!(hosts, ["mta-00.example.com", "mta-01.example.com", "mta-02.example.com", "mta-03.example.com", "mta-04.example.com"]);
        for alert in alerts {
            assert_eq!(alert["status"], "firing");
            assert_eq!(alert["labels"]["alertname"], "Disk full");
            assert_eq!(alert["annotations"]["value"], "95");
            assert_eq!(alert["annotations"]["threshold"], "90");
            assert!(alert["annotations"]["summary"].as_str().unwrap().contains("95 > 90"));
            assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
            assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
            assert!(alert["generatorURL"].as_str().unwrap().contains("/alerts/"));
            assert!(alert["startsAt"].as_str().unwrap().ends_with('Z'));
        }

        // Resolved: one notice with the five alerts resolved.
        for (_, key) in &nodes {
            push_disk(&app, key, 50.0).await;
        }
        let delivered = receiver.wait_for_delivered(2, WAIT).await;
        let resolved = delivered[1].json();
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["sequence"], 2);
        assert_eq!(resolved["alerts"].as_array().unwrap().len(), 5);
        assert!(resolved["alerts"].as_array().unwrap().iter().all(|a| a["status"] == "resolved" && a["endsAt"] != "0001-01-01T00:00:00Z"));

        let listed = wait_for_notifications(&app, &operator, "both sent", |n| {
            n.len() == 2 && n.iter().all(|n| n["state"] == "SENT")
        })
        .await;
        assert_eq!(listed[0]["status"], "RESOLVED");
        assert_eq!(listed[1]["status"], "FIRING");
        assert_eq!(listed[1]["alertIds"].as_array().unwrap().len(), 5);
        assert_eq!(listed[1]["attemptCount"], 1);
        assert_eq!(listed[1]["attempts"][0]["outcome"], "SENT");
        assert_eq!(listed[1]["attempts"][0]["statusCode"], 200);
        assert_eq!(listed[1]["contactPoint"]["name"], "ops webhook");
        assert!(listed[1]["nextAttemptAt"].is_null() && listed[1]["finishedAt"].is_string());
        assert_eq!(receiver.received().len(), 2, "nothing was sent twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_still_firing_is_notified_again_after_the_repeat_interval() {
    let Watched {
        app,
        operator,
        receiver,
    } = watched(
        TestApp::builder(Backend::Sqlite)
            .with_config(fast)
            .spawn()
            .await,
        json!({ "groupWaitSeconds": 0, "groupIntervalSeconds": 1, "repeatIntervalSeconds": 2 }),
    )
    .await;
    let nodes = nodes(&app, 1).await;
    disk_rule(&app, &operator, "Disk full").await;
    push_disk(&app, &nodes[0].1, 95.0).await;

    let delivered = receiver.wait_for_delivered(2, WAIT).await;
    let (first, repeat) = (delivered[0].json(), delivered[1].json());
    assert_eq!(
        (first["sequence"].clone(), repeat["sequence"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(repeat["status"], "firing");
    assert_eq!(repeat["groupKey"], first["groupKey"]);
    assert_eq!(
        repeat["alerts"][0]["fingerprint"],
        first["alerts"][0]["fingerprint"]
    );
    let gap = chrono::DateTime::parse_from_rfc3339(&now()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(first["alerts"][0]["startsAt"].as_str().unwrap())
            .unwrap();
    assert!(gap >= chrono::Duration::seconds(2), "repeated after {gap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_and_maintenance_notify_nothing() {
    let Watched {
        app,
        operator,
        receiver,
    } = watched(
        TestApp::builder(Backend::Sqlite)
            .with_config(fast)
            .spawn()
            .await,
        json!({ "groupBy": ["node"], "groupWaitSeconds": 1, "groupIntervalSeconds": 1 }),
    )
    .await;
    let nodes = nodes(&app, 3).await;
    let (loud, silenced, serviced) = (&nodes[0], &nodes[1], &nodes[2]);
    let body = app
        .gql(
            Some(&operator),
            "mutation($id: ID!) { setNodeMaintenance(id: $id, enabled: true, reason: \"disk swap\") { status } }",
            json!({ "id": serviced.0 }),
        )
        .await;
    assert_eq!(
        body["data"]["setNodeMaintenance"]["status"], "MAINTENANCE",
        "{body}"
    );
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = app
        .gql(
            Some(&operator),
            "mutation($m: SilenceMatcherInput!, $u: DateTime!) { silenceAlerts(matcher: $m, until: $u, reason: \"known\") { covered } }",
            json!({ "m": { "nodeIds": [silenced.0] }, "u": until }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    disk_rule(&app, &operator, "Disk full").await;
    for (_, key) in [loud, silenced, serviced] {
        push_disk(&app, key, 95.0).await;
    }
    // Wait until the silenced node's alert fires, then for two more looks at the groups.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body = app
            .gql(Some(&operator), "query($f: AlertFilter) { alerts(filter: $f, first: 5) { edges { node { state silenced } } } }",
                json!({ "f": { "nodeIds": [silenced.0] } }))
            .await;
        let edges = body["data"]["alerts"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if edges
            .iter()
            .any(|e| e["node"]["state"] == "FIRING" && e["node"]["silenced"] == true)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silenced alert never fired: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = receiver.wait_for_delivered(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let delivered_later = receiver.delivered();
    assert_eq!(
        delivered_later.len(),
        delivered.len(),
        "only the loud node notifies"
    );
    let message = delivered[0].json();
    assert_eq!(message["groupLabels"]["node"], "mta-00.example.com");
    assert_eq!(message["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_node_is_down_only_its_node_down_alert_is_notified() {
    let Watched {
        app,
        operator,
        receiver,
    } = watched(
        TestApp::builder(Backend::Sqlite)
            .with_config(|c| {
                fast(c);
                testkit::quick_node_status(c, "1s");
            })
            .spawn()
            .await,
        json!({ "groupWaitSeconds": 3, "groupIntervalSeconds": 1 }),
    )
    .await;
    let nodes = nodes(&app, 1).await;
    let disk = disk_rule(&app, &operator, "Disk full").await;
    // The last thing the agent says is that the disk is full; then it falls silent.
    push_disk(&app, &nodes[0].1, 95.0).await;

    let delivered = receiver.wait_for_delivered(1, WAIT).await;
    let message = delivered[0].json();
    assert_eq!(
        message["commonLabels"]["alertname"], "Node down",
        "{message}"
    );
    assert_eq!(message["commonLabels"]["condition"], "node_down");
    assert_eq!(message["commonLabels"]["node"], "mta-00.example.com");
    // Both groups have been looked at more than once by now; the disk alert stayed quiet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let told: Vec<Value> = receiver.delivered().iter().map(|r| r.json()).collect();
    assert!(
        told.iter()
            .all(|m| m["commonLabels"]["alertname"] == "Node down"),
        "{told:?}"
    );
    // Not for want of a disk alert: it fired, and was muted.
    let body = app
        .gql(
            Some(&operator),
            "query($f: AlertFilter) { alerts(filter: $f, first: 5) { edges { node { firedAt } } } }",
            json!({ "f": { "ruleIds": [disk] } }),
        )
        .await;
    assert!(
        body["data"]["alerts"]["edges"][0]["node"]["firedAt"].is_string(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_the_notification_once_it_is_back() {
    let Watched {
        app,
        operator,
        receiver,
    } = watched(
        TestApp::builder(Backend::Postgres)
            .with_config(fast)
            .spawn()
            .await,
        json!({ "groupWaitSeconds": 0 }),
    )
    .await;
    receiver.answer(503);
    let nodes = nodes(&app, 1).await;
    disk_rule(&app, &operator, "Disk full").await;
    push_disk(&app, &nodes[0].1, 95.0).await;

    let retrying = wait_for_notifications(&app, &operator, "three failed attempts", |n| {
        n.len() == 1 && n[0]["attemptCount"].as_i64() >= Some(3)
    })
    .await;
    let notification = &retrying[0];
    assert_eq!(notification["state"], "RETRYING");
    assert!(notification["nextAttemptAt"].is_string());
    let attempt = &notification["attempts"][0];
    assert_eq!(attempt["outcome"], "FAILED");
    assert_eq!(attempt["statusCode"], 503);
    assert!(
        attempt["detail"].as_str().unwrap().starts_with("HTTP 503"),
        "{attempt}"
    );
    assert!(
        !attempt["detail"].as_str().unwrap().contains("t0p"),
        "no URL in the detail"
    );

    receiver.answer(200);
    let delivered = receiver.wait_for_delivered(1, WAIT).await;
    let sent = wait_for_notifications(&app, &operator, "the notification sent", |n| {
        n.len() == 1 && n[0]["state"] == "SENT"
    })
    .await;
    assert_eq!(sent[0]["attempts"][0]["outcome"], "SENT");
    let failed_bodies: Vec<Value> = receiver.received().iter().map(|r| r.json()).collect();
    assert!(
        failed_bodies.iter().all(|b| *b == delivered[0].json()),
        "every attempt sends the same message"
    );
    assert_eq!(receiver.delivered().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_receiver_is_not_tried_again_and_other_contact_points_still_get_theirs() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(fast)
        .spawn()
        .await;
    let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
    let refusing = HttpReceiver::start().await;
    refusing.answer(404);
    let fine = HttpReceiver::start().await;
    let gone = contact_point(
        &app,
        &operator,
        json!({ "name": "gone", "kind": "WEBHOOK", "url": refusing.url("/old") }),
    )
    .await;
    let slack = contact_point(
        &app,
        &operator,
        json!({ "name": "chat", "kind": "SLACK", "url": fine.url("/services/T0/B0/XYZ") }),
    )
    .await;
    assert_eq!(slack["url"], format!("http://{}/…", fine.addr));
    set_policy(
        &app,
        &operator,
        json!({ "contactPointIds": [gone["id"], slack["id"]], "groupWaitSeconds": 0 }),
    )
    .await;
    let nodes = nodes(&app, 1).await;
    disk_rule(&app, &operator, "Disk <full> & more").await;
    push_disk(&app, &nodes[0].1, 95.0).await;

    let delivered = fine.wait_for_delivered(1, WAIT).await;
    let message = delivered[0].json();
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING:1] Disk &lt;full&gt; &amp; more"),
        "{message}"
    );
    let attachment = &message["attachments"][0];
    assert_eq!(attachment["color"], "#d63232");
    assert!(
        attachment["text"]
            .as_str()
            .unwrap()
            .contains("node mta-00.example.com"),
        "{message}"
    );
    assert!(
        attachment["text"]
            .as_str()
            .unwrap()
            .contains("value 95; threshold 90"),
        "{message}"
    );

    let listed = wait_for_notifications(&app, &operator, "both finished", |n| {
        n.len() == 2
            && n.iter()
                .all(|n| n["state"] == "SENT" || n["state"] == "FAILED")
    })
    .await;
    let failed = listed
        .iter()
        .find(|n| n["contactPointName"] == "gone")
        .unwrap();
    assert_eq!(failed["state"], "FAILED");
    assert_eq!(failed["attemptCount"], 1);
    assert_eq!(failed["attempts"][0]["outcome"], "REJECTED");
    assert_eq!(refusing.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_reaches_a_real_smtp_server() {
    let smtp = SmtpReceiver::start();
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(fast)
        .spawn()
        .await;
    let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
    let point = contact_point(&app, &operator, json!({ "name": "on-call mail", "kind": "EMAIL",
        "smtp": { "host": "127.0.0.1", "port": smtp.port, "security": "NONE", "from": "mailops@example.com" },
        "recipients": ["oncall@example.com", "lead@example.com"] })).await;
    assert_eq!(
        point["smtp"],
        json!({ "host": "127.0.0.1", "port": smtp.port, "security": "NONE",
        "username": null, "from": "mailops@example.com", "hasPassword": false })
    );
    set_policy(
        &app,
        &operator,
        json!({ "contactPointIds": [point["id"]], "groupWaitSeconds": 0 }),
    )
    .await;
    let nodes = nodes(&app, 1).await;
    disk_rule(&app, &operator, "Disk full").await;
    push_disk(&app, &nodes[0].1, 95.0).await;

    let mails = smtp.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(mail.from, "mailops@example.com");
    assert_eq!(mail.to, ["oncall@example.com", "lead@example.com"]);
    assert!(
        mail.data
            .contains("Subject: [FIRING:1] Disk full mta-00.example.com"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("multipart/alternative"), "{}", mail.data);
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));
    for expected in ["mta-00.example.com", "value 95", "threshold 90", "/alerts/"] {
        assert!(mail.data.contains(expected), "{expected} in {}", mail.data);
    }
    let sent = wait_for_notifications(&app, &operator, "the mail recorded", |n| {
        n.len() == 1 && n[0]["state"] == "SENT"
    })
    .await;
    assert_eq!(sent[0]["attempts"][0]["statusCode"], 250);
    assert!(
        sent[0]["attempts"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("250")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_unsent_when_mailops_is_killed_is_delivered_once_after_restart() {
    let receiver = HttpReceiver::start().await;
    receiver.answer(503);
    let vars = [
        ("MAILOPS_ALERT_EVALUATION_INTERVAL", "200ms".to_string()),
        ("MAILOPS_NOTIFICATION_INTERVAL", "100ms".to_string()),
        ("MAILOPS_NOTIFICATION_BACKOFF_MIN", "100ms".to_string()),
        ("MAILOPS_NOTIFICATION_BACKOFF_MAX", "200ms".to_string()),
        // A notification leased when the process dies waits for its lease (four timeouts)
        // to run out: short here, so the retry comes within the test's wait.
        ("MAILOPS_NOTIFICATION_TIMEOUT", "1s".to_string()),
        ("MAILOPS_RATE_LIMIT_ANONYMOUS", "off".to_string()),
        ("MAILOPS_RATE_LIMIT_USER", "off".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ];
    let mut mailops = MailopsProcess::start(env!("CARGO_BIN_EXE_mailops"), &vars);
    let client = reqwest::Client::new();
    // The process keeps its port across restarts.
    let url = mailops.url();
    let call = |token: Option<String>, query: &'static str, variables: Value| {
        let mut request = client
            .post(&url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        testkit::json_answer(request)
    };
    let login = call(
        None,
        "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
        json!({ "p": testkit::ADMIN_PASSWORD }),
    )
    .await;
    let admin = Some(format!(
        "Bearer {}",
        login["data"]["login"]["accessToken"].as_str().unwrap()
    ));
    let point = call(
        admin.clone(),
        CREATE_POINT,
        json!({ "i": { "name": "hook", "kind": "WEBHOOK", "url": receiver.url("/hook") } }),
    )
    .await;
    let point = point["data"]["createContactPoint"]["id"].clone();
    call(
        admin.clone(),
        SET_POLICY,
        json!({ "i": { "contactPointIds": [point], "groupWaitSeconds": 0 } }),
    )
    .await;
    let key = call(
        admin.clone(),
        "mutation { createEnrollmentKey(input: { name: \"k\" }) { key } }",
        json!({}),
    )
    .await;
    let enrollment = key["data"]["createEnrollmentKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let node = call(Some(format!("ApiKey {enrollment}")),
        "mutation { registerNode(input: { hostname: \"mta-00.example.com\", roles: [MTA] }) { apiKey } }", json!({})).await;
    let node_key = Some(format!(
        "ApiKey {}",
        node["data"]["registerNode"]["apiKey"].as_str().unwrap()
    ));
    call(admin.clone(), "mutation { createAlertRule(input: { name: \"Disk full\", condition: METRIC, metric: \"system.disk.used_percent\", threshold: 90, severity: CRITICAL }) { id } }", json!({})).await;
    let batch = json!({ "b": { "batchId": "b-1", "samples": [{ "name": "system.disk.used_percent",
        "labels": [{ "key": "mount", "value": "/" }], "ts": now(), "value": 95.0 }] } });
    let pushed = call(
        node_key,
        "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }",
        batch,
    )
    .await;
    assert_eq!(pushed["data"]["ingestMetrics"]["accepted"], 1, "{pushed}");

    // The receiver refuses; mailops is killed while the notification waits for a retry.
    let deadline = tokio::time::Instant::now() + WAIT;
    while receiver.received().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing was tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mailops.kill();
    let tried = receiver.received().len();
    receiver.answer(200);
    mailops.launch();
    let delivered = receiver.wait_for_delivered(1, WAIT).await;
    assert_eq!(
        delivered[0].json()["alerts"][0]["labels"]["node"],
        "mta-00.example.com"
    );
    assert!(receiver.received().len() > tried);

    // Recorded as sent: never sent again, across another restart and many passes.
    let login = call(
        None,
        "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
        json!({ "p": testkit::ADMIN_PASSWORD }),
    )
    .await;
    let admin = Some(format!(
        "Bearer {}",
        login["data"]["login"]["accessToken"].as_str().unwrap()
    ));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = call(admin.clone(), NOTIFICATIONS, json!({})).await;
        if listed["data"]["notifications"]["edges"][0]["node"]["state"] == "SENT" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mailops.kill();
    mailops.launch();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.delivered().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_group_change_once() {
    let Watched {
        app: a,
        operator,
        receiver,
    } = watched(
        TestApp::builder(Backend::Postgres)
            .with_config(fast)
            .spawn()
            .await,
        json!({ "groupBy": ["node"], "groupWaitSeconds": 0, "groupIntervalSeconds": 1 }),
    )
    .await;
    let b = a.sibling().with_config(fast).spawn().await;
    let nodes = nodes(&a, 3).await;
    disk_rule(&a, &operator, "Disk full").await;
    for (_, key) in &nodes {
        push_disk(&b, key, 95.0).await;
    }
    receiver.wait_for_delivered(3, WAIT).await;
    for (_, key) in &nodes {
        push_disk(&a, key, 50.0).await;
    }
    receiver.wait_for_delivered(6, WAIT).await;
    wait_for_notifications(&b, &operator, "six sent", |n| {
        n.len() == 6 && n.iter().all(|n| n["state"] == "SENT")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 6);
    let mut seen: Vec<(String, i64)> = delivered
        .iter()
        .map(|r| {
            let m = r.json();
            (
                m["groupKey"].as_str().unwrap().to_string(),
                m["sequence"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "each (group, sequence) once: {seen:?}");
}

on_both_backends! {
    async fn operators_manage_contact_points_and_viewers_read_nothing_secret(backend) {
        let app = TestApp::builder(backend).with_config(fast).spawn().await;
        let admin = app.admin_token().await;
        let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let receiver = HttpReceiver::start().await;
        let created = contact_point(&app, &operator, json!({ "name": "hook", "kind": "WEBHOOK",
            "url": receiver.url("/hook/abc?token=s3cr3t-token"), "secret": SECRET,
            "headers": [{ "name": "Authorization", "value": "Bearer header-s3cr3t" }] })).await;
        assert_eq!(created["url"], format!("http://{}/…", receiver.addr));
        assert_eq!(created["hasSecret"], true);
        assert_eq!(created["headerNames"], json!(["Authorization"]));
        let id = created["id"].as_str().unwrap().to_string();

        // Viewers see that it exists, nothing of where it points.
        let body = app.gql(Some(&viewer), "{ contactPoints { id name kind } }", json!({})).await;
        assert_eq!(body["data"]["contactPoints"][0]["name"], "hook", "{body}");
        for field in ["url", "hasSecret", "headerNames", "smtp { host }", "recipients"] {
            let body = app.gql(Some(&viewer), &format!("{{ contactPoints {{ {field} }} }}"), json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{field}: {body}");
        }
        let body = app.gql(Some(&viewer), CREATE_POINT, json!({ "i": { "name": "x", "kind": "SLACK", "url": "https://example.com/x" } })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let body = app.gql(Some(&viewer), "mutation($id: ID!) { testContactPoint(id: $id) { outcome } }", json!({ "id": id })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        assert!(receiver.received().is_empty());

        // A test notification goes out now and answers the attempt.
        let body = app.gql(Some(&operator), "mutation($id: ID!) { testContactPoint(id: $id) { outcome statusCode detail at } }", json!({ "id": id })).await;
        assert_eq!(body["data"]["testContactPoint"]["outcome"], "SENT", "{body}");
        assert_eq!(body["data"]["testContactPoint"]["statusCode"], 200);
        let test = &receiver.received()[0];
        assert_eq!(test.header("authorization").as_deref(), Some("Bearer header-s3cr3t"));
        assert_eq!(test.path, "/hook/abc");
        assert!(test.json()["alerts"][0]["annotations"]["summary"].as_str().unwrap().contains("A test of contact point 'hook'"));

        // Updating keeps what is left out; null stops signing.
        let body = app.gql(Some(&operator), "mutation($id: ID!) { updateContactPoint(id: $id, input: { name: \"hook 2\", secret: null }) { name hasSecret headerNames url } }", json!({ "id": id })).await;
        assert_eq!(body["data"]["updateContactPoint"], json!({ "name": "hook 2", "hasSecret": false,
            "headerNames": ["Authorization"], "url": format!("http://{}/…", receiver.addr) }), "{body}");

        // Deleting what the policy sends to is refused; out of the policy, it goes.
        set_policy(&app, &operator, json!({ "contactPointIds": [id] })).await;
        let delete = "mutation($id: ID!) { deleteContactPoint(id: $id) { name } }";
        let body = app.gql(Some(&operator), delete, json!({ "id": id })).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        set_policy(&app, &operator, json!({})).await;
        let body = app.gql(Some(&operator), delete, json!({ "id": id })).await;
        assert_eq!(body["data"]["deleteContactPoint"]["name"], "hook 2", "{body}");

        // The audit log tells every change and no secret.
        let body = app.gql(Some(&admin), "{ auditLog(first: 50) { edges { node { action outcome detail } } } }", json!({})).await;
        let log = body["data"]["auditLog"].to_string();
        for action in ["contact_point.create", "contact_point.test", "contact_point.update", "contact_point.delete", "notification_policy.set"] {
            assert!(log.contains(action), "{action} in {log}");
        }
        for secret in [SECRET, "s3cr3t-token", "header-s3cr3t"] {
            assert!(!log.contains(secret), "{secret} in the audit log");
        }
    }
}

on_both_backends! {
    async fn bad_contact_points_and_policies_are_refused_and_change_nothing(backend) {
        let app = TestApp::builder(backend).with_config(fast).spawn().await;
        let (_, operator) = app.user_with_role("oscar", "OPERATOR").await;
        let refused = [
            (json!({ "name": "", "kind": "WEBHOOK", "url": "https://example.com" }), "input.name"),
            (json!({ "name": "x", "kind": "WEBHOOK" }), "input.url"),
            (json!({ "name": "x", "kind": "WEBHOOK", "url": "ftp://example.com/x" }), "input.url"),
            (json!({ "name": "x", "kind": "WEBHOOK", "url": "https://example.com", "secret": "short" }), "input.secret"),
            (json!({ "name": "x", "kind": "WEBHOOK", "url": "https://example.com", "headers": [{ "name": "Content-Type", "value": "x" }] }), "input.headers"),
            (json!({ "name": "x", "kind": "WEBHOOK", "url": "https://example.com", "headers": [{ "name": "X-A", "value": "a\r\nb" }] }), "input.headers"),
            (json!({ "name": "x", "kind": "SLACK", "url": "https://example.com", "secret": "0123456789abcdef" }), "input.secret"),
            (json!({ "name": "x", "kind": "EMAIL", "recipients": ["a@example.com"] }), "input.smtp"),
            (json!({ "name": "x", "kind": "EMAIL", "smtp": { "host": "smtp.example.com", "security": "TLS", "from": "not an address" }, "recipients": ["a@example.com"] }), "input.smtp.from"),
            (json!({ "name": "x", "kind": "EMAIL", "smtp": { "host": "smtp.example.com", "port": 70000, "security": "TLS", "from": "m@example.com" }, "recipients": ["a@example.com"] }), "input.smtp.port"),
            (json!({ "name": "x", "kind": "EMAIL", "smtp": { "host": "smtp.example.com", "security": "TLS", "from": "m@example.com" }, "recipients": [] }), "input.recipients"),
            (json!({ "name": "x", "kind": "EMAIL", "url": "https://example.com", "smtp": { "host": "smtp.example.com", "security": "TLS", "from": "m@example.com" }, "recipients": ["a@example.com"] }), "input.url"),
        ];
        for (input, field) in refused {
            let body = app.gql(Some(&operator), CREATE_POINT, json!({ "i": input })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{input}: {body}");
        }
        let body = app.gql(Some(&operator), "{ contactPoints { id } }", json!({})).await;
        assert_eq!(body["data"]["contactPoints"], json!([]));

        let point = contact_point(&app, &operator, json!({ "name": "x", "kind": "SLACK", "url": "https://hooks.example.com/services/abc" })).await;
        let taken = app.gql(Some(&operator), CREATE_POINT, json!({ "i": { "name": "x", "kind": "SLACK", "url": "https://example.com" } })).await;
        assert_eq!(error_code(&taken), "CONFLICT", "{taken}");
        let policies = [
            (json!({ "contactPointIds": ["00000000-0000-7000-8000-000000000000"] }), "input.contactPointIds"),
            (json!({ "contactPointIds": ["not an id"] }), "input.contactPointIds"),
            (json!({ "groupBy": ["hostname"] }), "input.groupBy"),
            (json!({ "groupWaitSeconds": -1 }), "input.groupWaitSeconds"),
            (json!({ "groupIntervalSeconds": 0 }), "input.groupIntervalSeconds"),
            (json!({ "repeatIntervalSeconds": 2147483647 }), "input.repeatIntervalSeconds"),
            (json!({ "routes": [{ "contactPointIds": [point["id"]], "labels": [{ "key": "", "value": "x" }] }] }), "input.routes[0].labels"),
            (json!({ "routes": [{ "ruleIds": ["nope"] }] }), "input.routes[0].ruleIds"),
        ];
        for (input, field) in policies {
            let body = app.gql(Some(&operator), SET_POLICY, json!({ "i": input })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{input}: {body}");
        }
        let body = app.gql(Some(&operator), "{ notificationPolicy { contactPointIds groupBy groupWaitSeconds groupIntervalSeconds repeatIntervalSeconds sendResolved routes { continue } updatedAt } }", json!({})).await;
        assert_eq!(body["data"]["notificationPolicy"], json!({ "contactPointIds": [], "groupBy": ["alertname", "node"],
            "groupWaitSeconds": 30, "groupIntervalSeconds": 300, "repeatIntervalSeconds": 14400,
            "sendResolved": true, "routes": [], "updatedAt": null }), "{body}");

        let policy = set_policy(&app, &operator, json!({ "contactPointIds": [point["id"]], "routes": [
            { "severities": ["CRITICAL"], "contactPointIds": [point["id"]], "continue": true, "groupWaitSeconds": 5 }] })).await;
        assert_eq!(policy["routes"], json!([{ "severities": ["CRITICAL"], "contactPointIds": [point["id"]], "continue": true, "groupWaitSeconds": 5 }]));
    }
}
