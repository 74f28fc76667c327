use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::ws::WsClient;
use testkit::{Backend, TestApp, duration, error_code};

pub const INGEST: &str = "mutation($b: MailEventBatchInput!) { ingestMailEvents(batch: $b) { batchId accepted duplicate } }";

const COUNTS: &str =
    "queued delivered deferred bounced rejected dropped sent deliveredRate deferredRate bounceRate";

/// The start of the minute ten minutes ago: events placed from here on sit in known
/// minutes of the last hour.
fn base() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() - TimeDelta::minutes(10)
}

fn at(base: DateTime<Utc>, seconds: i64) -> String {
    (base + TimeDelta::seconds(seconds)).to_rfc3339()
}

/// `n` events of one kind.
pub fn events(
    n: usize,
    ts: &str,
    status: &str,
    ip: Option<&str>,
    domain: Option<&str>,
) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "ts": ts, "messageId": format!("{status}-{ts}-{i}"), "status": status,
                "sendingIp": ip, "recipientDomain": domain, "zone": "default",
                "smtpCode": if status == "DELIVERED" { Some(250) } else { None },
                "response": if status == "BOUNCED" { Some("550 5.1.1 user unknown") } else { None },
            })
        })
        .collect()
}

pub async fn ingest(app: &TestApp, key: &str, batch_id: &str, events: Vec<Value>) -> Value {
    app.gql_key(
        key,
        INGEST,
        json!({ "b": { "batchId": batch_id, "events": events } }),
    )
    .await
}

fn counts(
    queued: i64,
    delivered: i64,
    deferred: i64,
    bounced: i64,
    rejected: i64,
    dropped: i64,
) -> Value {
    let sent = delivered + deferred + bounced;
    let rate = |part: i64| {
        if sent == 0 {
            Value::Null
        } else {
            json!(part as f64 / sent as f64)
        }
    };
    json!({
        "queued": queued, "delivered": delivered, "deferred": deferred, "bounced": bounced,
        "rejected": rejected, "dropped": dropped, "sent": sent,
        "deliveredRate": rate(delivered), "deferredRate": rate(deferred), "bounceRate": rate(bounced),
    })
}

/// Two nodes' events over three minutes, as in the scenario below.
async fn two_nodes_of_mail(app: &TestApp, base: DateTime<Utc>) -> (String, String, String) {
    let enrollment = app.enrollment_key(None).await;
    let (a, key_a) = app
        .register_node(
            &enrollment,
            "mta1.example.com",
            &["192.0.2.10", "192.0.2.11"],
        )
        .await;
    let (b, key_b) = app
        .register_node(&enrollment, "mta2.example.com", &["192.0.2.20"])
        .await;
    let minute0 = at(base, 5);
    let minute1 = at(base, 65);
    let minute2 = at(base, 150);
    let mut first = Vec::new();
    first.extend(events(
        3,
        &minute0,
        "DELIVERED",
        Some("192.0.2.10"),
        Some("gmail.com"),
    ));
    first.extend(events(
        1,
        &minute0,
        "DEFERRED",
        Some("192.0.2.10"),
        Some("yahoo.com"),
    ));
    first.extend(events(
        1,
        &minute0,
        "BOUNCED",
        Some("192.0.2.10"),
        Some("example.org"),
    ));
    first.extend(events(2, &minute0, "QUEUED", None, None));
    first.extend(events(
        2,
        &minute2,
        "DELIVERED",
        Some("192.0.2.11"),
        Some("eu.hotmail.com"),
    ));
    first.extend(events(
        1,
        &minute2,
        "BOUNCED",
        Some("192.0.2.11"),
        Some("Outlook.com"),
    ));
    let body = ingest(app, &key_a, "a-1", first).await;
    assert_eq!(
        body["data"]["ingestMailEvents"],
        json!({ "batchId": "a-1", "accepted": 10, "duplicate": false }),
        "{body}"
    );
    let mut second = Vec::new();
    second.extend(events(
        4,
        &minute1,
        "DELIVERED",
        Some("192.0.2.20"),
        Some("googlemail.com"),
    ));
    second.extend(events(1, &minute1, "REJECTED", None, None));
    second.extend(events(1, &minute1, "DROPPED", None, None));
    let body = ingest(app, &key_b, "b-1", second).await;
    assert_eq!(body["data"]["ingestMailEvents"]["accepted"], 6, "{body}");
    (a, b, key_a)
}

on_both_backends! {
    async fn ingested_events_give_exact_mail_flow_numbers(backend) {
        let app = TestApp::spawn(backend).await;
        let base = base();
        let (a, b, _) = two_nodes_of_mail(&app, base).await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let flow = |group_by: &'static str, step: i64| {
            let app = &app;
            let viewer = viewer.clone();
            async move {
                let query = format!(
                    "query($from: DateTime!, $to: DateTime!, $step: Int, $g: MailFlowGroupBy!) {{
                        mailFlow(from: $from, to: $to, step: $step, groupBy: $g) {{
                            from to step groupBy groupCount totals {{ {COUNTS} }}
                            groups {{ key node {{ hostname }} totals {{ {COUNTS} }} points {{ ts counts {{ {COUNTS} }} }} }}
                        }} }}"
                );
                let body = app
                    .gql(Some(&viewer), &query, json!({ "from": at(base, 0), "to": at(base, 300), "step": step, "g": group_by }))
                    .await;
                assert!(body["errors"].is_null(), "{body}");
                body["data"]["mailFlow"].clone()
            }
        };

        let whole = flow("NONE", 60).await;
        assert_eq!(whole["from"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), base);
        assert_eq!(whole["to"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), base + TimeDelta::minutes(5));
        assert_eq!(whole["step"], 60);
        assert_eq!(whole["totals"], counts(2, 9, 1, 2, 1, 1));
        assert_eq!(whole["groupCount"], 1);
        let group = &whole["groups"][0];
        assert_eq!(group["key"], "all");
        assert_eq!(group["node"], Value::Null);
        let points: Vec<Value> = group["points"].as_array().unwrap().iter().map(|p| p["counts"].clone()).collect();
        assert_eq!(points, vec![
            counts(2, 3, 1, 1, 0, 0),
            counts(0, 4, 0, 0, 1, 1),
            counts(0, 2, 0, 1, 0, 0),
            counts(0, 0, 0, 0, 0, 0),
            counts(0, 0, 0, 0, 0, 0),
        ]);
        assert_eq!(
            group["points"][1]["ts"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(),
            base + TimeDelta::minutes(1)
        );

        let by_ip = flow("IP", 300).await;
        let keys: Vec<&str> = by_ip["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["192.0.2.10", "", "192.0.2.20", "192.0.2.11"], "largest first, ties by key");
        assert_eq!(by_ip["groups"][0]["totals"], counts(0, 3, 1, 1, 0, 0));
        assert_eq!(by_ip["groups"][1]["totals"], counts(2, 0, 0, 0, 1, 1));
        assert_eq!(by_ip["groups"][2]["totals"], counts(0, 4, 0, 0, 0, 0));
        assert_eq!(by_ip["groups"][3]["totals"], counts(0, 2, 0, 1, 0, 0));
        // Steps are aligned to the epoch: the five minutes from `base` span one 5-minute
        // step or two.
        let steps = if base.timestamp() % 300 == 0 { 1 } else { 2 };
        assert_eq!(by_ip["groups"][0]["points"].as_array().unwrap().len(), steps);

        let by_provider = flow("PROVIDER", 60).await;
        let providers: Vec<(String, Value)> = by_provider["groups"].as_array().unwrap().iter()
            .map(|g| (g["key"].as_str().unwrap().to_string(), g["totals"].clone())).collect();
        assert_eq!(providers, vec![
            ("gmail".to_string(), counts(0, 7, 0, 0, 0, 0)),
            ("other".to_string(), counts(2, 0, 0, 1, 1, 1)),
            ("outlook".to_string(), counts(0, 2, 0, 1, 0, 0)),
            ("yahoo".to_string(), counts(0, 0, 1, 0, 0, 0)),
        ]);

        let by_node = flow("NODE", 60).await;
        let nodes: Vec<(String, String, Value)> = by_node["groups"].as_array().unwrap().iter()
            .map(|g| (g["key"].as_str().unwrap().to_string(), g["node"]["hostname"].as_str().unwrap().to_string(), g["totals"].clone())).collect();
        assert_eq!(nodes, vec![
            (a, "mta1.example.com".to_string(), counts(2, 5, 1, 2, 0, 0)),
            (b.clone(), "mta2.example.com".to_string(), counts(0, 4, 0, 0, 1, 1)),
        ]);

        // One node's flow.
        let only_b = app.gql(Some(&viewer),
            "query($from: DateTime!, $n: [ID!]) { mailFlow(from: $from, nodeIds: $n) { step totals { delivered rejected } } }",
            json!({ "from": at(base, 0), "n": [b] })).await;
        assert_eq!(only_b["data"]["mailFlow"]["totals"], json!({ "delivered": 4, "rejected": 1 }), "{only_b}");
        assert_eq!(only_b["data"]["mailFlow"]["step"], 60, "a 10-minute range defaults to 1-minute steps");

        // Per IP, over an explicit window and over a preset range.
        let stats = app.gql(Some(&viewer),
            &format!("query($from: DateTime!) {{ ip(address: \"192.0.2.10\") {{
                window: sendingStats(from: $from) {{ {COUNTS} }}
                hour: sendingStats(range: H1) {{ {COUNTS} }} }}
                ips {{ nodes {{ address sendingStats(range: H24) {{ sent bounced }} }} }} }}"),
            json!({ "from": at(base, 0) })).await;
        assert_eq!(stats["data"]["ip"]["window"], counts(0, 3, 1, 1, 0, 0), "{stats}");
        assert_eq!(stats["data"]["ip"]["hour"], counts(0, 3, 1, 1, 0, 0));
        assert_eq!(stats["data"]["ips"]["nodes"], json!([
            { "address": "192.0.2.10", "sendingStats": { "sent": 5, "bounced": 1 } },
            { "address": "192.0.2.11", "sendingStats": { "sent": 3, "bounced": 1 } },
            { "address": "192.0.2.20", "sendingStats": { "sent": 4, "bounced": 0 } },
        ]));

        // Whole-hour steps read the hourly counters: the same events.
        let hourly = app.gql(Some(&viewer),
            "query($from: DateTime!) { mailFlow(from: $from, step: 3600) { totals { queued delivered deferred bounced rejected dropped } } }",
            json!({ "from": at(base, 0) })).await;
        assert_eq!(hourly["data"]["mailFlow"]["totals"],
            json!({ "queued": 2, "delivered": 9, "deferred": 1, "bounced": 2, "rejected": 1, "dropped": 1 }), "{hourly}");
    }
}

on_both_backends! {
    async fn a_batch_is_counted_once_however_often_it_is_sent(backend) {
        let app = TestApp::spawn(backend).await;
        let enrollment = app.enrollment_key(None).await;
        let (_, key) = app.register_node(&enrollment, "mta1.example.com", &["192.0.2.10"]).await;
        let ts = at(base(), 30);
        let batch = events(3, &ts, "DELIVERED", Some("192.0.2.10"), Some("gmail.com"));
        assert_eq!(ingest(&app, &key, "b-1", batch.clone()).await["data"]["ingestMailEvents"]["duplicate"], false);
        let again = ingest(&app, &key, "b-1", batch.clone()).await;
        assert_eq!(again["data"]["ingestMailEvents"], json!({ "batchId": "b-1", "accepted": 3, "duplicate": true }));
        let mut changed = batch.clone();
        changed[0]["status"] = json!("BOUNCED");
        assert_eq!(error_code(&ingest(&app, &key, "b-1", changed).await), "CONFLICT");

        let admin = app.admin_token().await;
        let flow = app.gql(Some(&admin), "{ mailFlow(range: H1) { totals { delivered bounced } } }", json!({})).await;
        assert_eq!(flow["data"]["mailFlow"]["totals"], json!({ "delivered": 3, "bounced": 0 }), "{flow}");
    }
}

on_both_backends! {
    async fn bad_events_are_refused_and_change_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let enrollment = app.enrollment_key(None).await;
        let (_, key) = app.register_node(&enrollment, "mta1.example.com", &[]).await;
        let good = |n: usize| events(n, &at(base(), 0), "DELIVERED", Some("192.0.2.10"), Some("gmail.com"));
        let with = |field: &str, value: Value| {
            let mut events = good(2);
            events[1][field] = value;
            events
        };
        let cases: Vec<(Vec<Value>, &str)> = vec![
            (with("ts", json!((Utc::now() - TimeDelta::days(8)).to_rfc3339())), "batch.events[1].ts"),
            (with("ts", json!((Utc::now() + TimeDelta::minutes(10)).to_rfc3339())), "batch.events[1].ts"),
            (with("messageId", json!("")), "batch.events[1].messageId"),
            (with("messageId", json!("x".repeat(256))), "batch.events[1].messageId"),
            (with("sendingIp", json!("300.1.1.1")), "batch.events[1].sendingIp"),
            (with("recipientDomain", json!("not a domain")), "batch.events[1].recipientDomain"),
            (with("zone", json!("a zone")), "batch.events[1].zone"),
            (with("smtpCode", json!(99)), "batch.events[1].smtpCode"),
            (with("response", json!("x".repeat(2049))), "batch.events[1].response"),
            (Vec::new(), "batch.events"),
            (good(5_001), "batch.events"),
        ];
        for (events, field) in cases {
            let body = ingest(&app, &key, "bad", events).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{field}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        }
        let body = ingest(&app, &key, "no spaces allowed", good(1)).await;
        assert_eq!(body["errors"][0]["extensions"]["field"], "batch.batchId", "{body}");

        // People cannot push events, whatever their role.
        let admin = app.admin_token().await;
        let body = app.gql(Some(&admin), INGEST, json!({ "b": { "batchId": "x", "events": good(1) } })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");

        let flow = app.gql(Some(&admin), "{ mailFlow(range: D7, step: 3600) { totals { sent queued } groupCount } }", json!({})).await;
        assert_eq!(flow["data"]["mailFlow"], json!({ "totals": { "sent": 0, "queued": 0 }, "groupCount": 0 }), "{flow}");

        // Query arguments are checked too.
        for (variables, field) in [
            (json!({ "range": "H1", "step": 30 }), "step"),
            (json!({ "range": "H1", "step": 90 }), "step"),
            (json!({ "range": "D30", "step": 60 }), "step"),
            (json!({ "range": "H1", "top": 0 }), "top"),
            (json!({ "range": "H1", "top": 101 }), "top"),
            (json!({ "from": Utc::now().to_rfc3339(), "to": (Utc::now() - TimeDelta::hours(1)).to_rfc3339() }), "to"),
            (json!({}), "range"),
        ] {
            let body = app.gql(Some(&admin),
                "query($range: TimeRange, $from: DateTime, $to: DateTime, $step: Int, $top: Int) { mailFlow(range: $range, from: $from, to: $to, step: $step, top: $top) { step } }",
                variables.clone()).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{variables}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{variables}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mail_flow_subscription_counts_each_second_of_the_whole_cluster() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().spawn().await;
    let enrollment = a.enrollment_key(None).await;
    let (node_1, key_1) = a.register_node(&enrollment, "mta1.example.com", &[]).await;
    let (_, key_2) = a.register_node(&enrollment, "mta2.example.com", &[]).await;
    let (_, viewer) = b.user_with_role("vera", "VIEWER").await;
    let mut dashboard = WsClient::ready(b.addr, Some(format!("Bearer {viewer}"))).await;
    dashboard
        .subscribe(
            "all",
            "subscription { mailFlow { second nodeId counts { queued delivered bounced sent } } }",
            json!({}),
        )
        .await;
    dashboard
        .subscribe(
            "one",
            "subscription($n: ID) { mailFlow(nodeId: $n) { nodeId counts { delivered bounced } } }",
            json!({ "n": node_1 }),
        )
        .await;
    dashboard.barrier().await;

    let now = Utc::now().to_rfc3339();
    let mut first = events(3, &now, "DELIVERED", Some("192.0.2.10"), Some("gmail.com"));
    first.extend(events(
        1,
        &now,
        "BOUNCED",
        Some("192.0.2.10"),
        Some("gmail.com"),
    ));
    assert_eq!(
        ingest(&a, &key_1, "one", first).await["data"]["ingestMailEvents"]["accepted"],
        4
    );
    assert_eq!(
        ingest(&a, &key_2, "two", events(2, &now, "QUEUED", None, None)).await["data"]["ingestMailEvents"]
            ["accepted"],
        2
    );

    // Both batches land in one second or in two; either way every event is counted once,
    // in per-second messages, across both instances.
    let mut cluster = json!({ "queued": 0, "delivered": 0, "bounced": 0, "sent": 0 });
    let mut node = json!({ "delivered": 0, "bounced": 0 });
    let mut cluster_messages = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while cluster != json!({ "queued": 2, "delivered": 3, "bounced": 1, "sent": 4 })
        || node != json!({ "delivered": 3, "bounced": 1 })
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "counted so far: {cluster} {node}"
        );
        let message = dashboard.next_json().await;
        assert_eq!(message["type"], "next", "{message}");
        let (target, data) = match message["id"].as_str().unwrap() {
            "all" => {
                cluster_messages += 1;
                let data = &message["payload"]["data"]["mailFlow"];
                assert_eq!(data["nodeId"], Value::Null);
                let second: DateTime<Utc> = data["second"].as_str().unwrap().parse().unwrap();
                assert_eq!(
                    second,
                    second.duration_trunc(TimeDelta::seconds(1)).unwrap()
                );
                (&mut cluster, data["counts"].clone())
            }
            _ => {
                let data = &message["payload"]["data"]["mailFlow"];
                assert_eq!(data["nodeId"], node_1.as_str());
                (&mut node, data["counts"].clone())
            }
        };
        for (field, value) in data.as_object().unwrap() {
            target[field] = json!(target[field].as_i64().unwrap() + value.as_i64().unwrap());
        }
    }
    assert!(
        (1..=2).contains(&cluster_messages),
        "{cluster_messages} messages for two batches"
    );
}

on_both_backends! {
    async fn raw_events_go_after_their_retention_and_the_counters_stay(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.mail.events_retention = duration("2s"))
            .spawn()
            .await;
        let enrollment = app.enrollment_key(None).await;
        let (_, key) = app.register_node(&enrollment, "mta1.example.com", &["192.0.2.10"]).await;
        let now = Utc::now().to_rfc3339();
        let body = ingest(&app, &key, "b-1", events(4, &now, "DELIVERED", Some("192.0.2.10"), Some("gmail.com"))).await;
        assert_eq!(body["data"]["ingestMailEvents"]["accepted"], 4, "{body}");
        let raw = || async {
            use sea_orm::ConnectionTrait as _;
            let db = &app.state.db;
            db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM mail_events"))
                .await.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
        };
        assert_eq!(mailops::mailflow::sweep_retention(&app.state).await.unwrap(), 0);
        assert_eq!(raw().await, 4);

        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        // The events and the batch record go; the counters stay.
        assert_eq!(mailops::mailflow::sweep_retention(&app.state).await.unwrap(), 5);
        assert_eq!(raw().await, 0);
        let admin = app.admin_token().await;
        let flow = app.gql(Some(&admin), "{ mailFlow(range: H1) { totals { delivered } } }", json!({})).await;
        assert_eq!(flow["data"]["mailFlow"]["totals"]["delivered"], 4, "{flow}");
        // Too old to be stored now.
        let late = ingest(&app, &key, "b-2", events(1, &now, "DELIVERED", None, None)).await;
        assert_eq!(late["errors"][0]["extensions"]["field"], "batch.events[0].ts", "{late}");
    }
}

on_both_backends! {
    async fn a_messages_events_can_be_looked_up(backend) {
        let app = TestApp::spawn(backend).await;
        let enrollment = app.enrollment_key(None).await;
        let (node_id, key) = app.register_node(&enrollment, "mta1.example.com", &["192.0.2.10"]).await;
        let step = |status: &str, seconds: i64, code: Option<i32>| json!({
            "ts": at(base(), seconds), "messageId": "18c0f3a2b4e.001", "status": status,
            "sendingIp": if status == "QUEUED" { None } else { Some("192.0.2.10") },
            "recipientDomain": "Example.ORG", "zone": "default", "smtpCode": code,
            "response": code.map(|c| format!("{c} see you later")),
        });
        ingest(&app, &key, "b-1", vec![step("QUEUED", 0, None), step("DEFERRED", 10, Some(451))]).await;
        ingest(&app, &key, "b-2", vec![step("DELIVERED", 70, Some(250))]).await;
        ingest(&app, &key, "b-3", events(3, &at(base(), 80), "DELIVERED", Some("192.0.2.10"), Some("gmail.com"))).await;

        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let query = "query($f: MailEventFilter, $first: Int, $after: String) { mailEvents(filter: $f, first: $first, after: $after) {
            totalCount pageInfo { hasNextPage endCursor }
            nodes { messageId status sendingIp recipientDomain provider smtpCode response node { id hostname } } } }";
        let history = app.gql(Some(&viewer), query, json!({ "f": { "messageId": "18c0f3a2b4e.001" } })).await;
        let list = &history["data"]["mailEvents"];
        assert_eq!(list["totalCount"], 3, "{history}");
        let statuses: Vec<&str> = list["nodes"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["DELIVERED", "DEFERRED", "QUEUED"], "newest arrival first");
        assert_eq!(list["nodes"][1], json!({
            "messageId": "18c0f3a2b4e.001", "status": "DEFERRED", "sendingIp": "192.0.2.10",
            "recipientDomain": "example.org", "provider": "other", "smtpCode": 451,
            "response": "451 see you later", "node": { "id": node_id, "hostname": "mta1.example.com" },
        }));
        assert_eq!(
            (&list["nodes"][2]["sendingIp"], &list["nodes"][2]["smtpCode"], &list["nodes"][2]["response"]),
            (&Value::Null, &Value::Null, &Value::Null),
            "absent fields stay absent"
        );

        let first = app.gql(Some(&viewer), query, json!({ "f": { "statuses": ["DELIVERED"], "sendingIp": "192.0.2.10" }, "first": 3 })).await;
        let page = &first["data"]["mailEvents"];
        assert_eq!(page["totalCount"], 4, "{first}");
        assert_eq!(page["pageInfo"]["hasNextPage"], true);
        let rest = app.gql(Some(&viewer), query, json!({ "f": { "statuses": ["DELIVERED"] }, "first": 3, "after": page["pageInfo"]["endCursor"] })).await;
        assert_eq!(rest["data"]["mailEvents"]["nodes"].as_array().unwrap().len(), 1, "{rest}");
        assert_eq!(rest["data"]["mailEvents"]["nodes"][0]["messageId"], "18c0f3a2b4e.001");

        let bad = app.gql(Some(&viewer), query, json!({ "f": { "sendingIp": "not an ip" } })).await;
        assert_eq!(error_code(&bad), "BAD_USER_INPUT");
        assert_eq!(bad["errors"][0]["extensions"]["field"], "filter.sendingIp");
    }
}
