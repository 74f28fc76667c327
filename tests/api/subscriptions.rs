//! Subscriptions over real WebSockets: both subprotocols, every close code, sessions that
//! end, slow clients, resuming, and events crossing instances through Redis.

use std::time::Duration;

use chrono::Utc;
use mailops::realtime::MailFlowTick as Tick;
use serde_json::json;
use testkit::redis_proxy::RedisProxy;

use testkit::on_both_backends;
use testkit::{
    ADMIN_PASSWORD, Backend, TestApp, duration, token_of,
    ws::{WsClient, bearer},
};

const NODE_STATUS: &str = "subscription { nodeStatusChanged { nodeId } }";

const MAIL_FLOW: &str =
    "subscription($after: Int) { mailFlow(after: $after) { sequence counts { queued } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_ingesting_on_one_instance_reaches_a_dashboard_on_another() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().spawn().await;
    let enrollment = a.enrollment_key(None).await;
    let (node_id, key) = a.register_node(&enrollment, "mx1.example.com", &[]).await;
    let mut dashboard = b.viewer_socket().await;
    dashboard
        .subscribe(
            "m",
            "subscription($n: [ID!]) { metricsUpdated(nodeIds: $n, names: [\"system.load1\"]) { nodeId hostname batchId samples names readings { name labels { key value } value } } }",
            json!({ "n": [node_id] }),
        )
        .await;
    dashboard.barrier().await;

    let ingested = a
        .gql_key(
            &key,
            "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }",
            json!({ "b": { "batchId": "b-1", "samples": [
                { "name": "system.load1", "ts": Utc::now().to_rfc3339(), "value": 0.5 },
                { "name": "system.load5", "ts": Utc::now().to_rfc3339(), "value": 0.4 }
            ] } }),
        )
        .await;
    assert_eq!(
        ingested["data"]["ingestMetrics"]["accepted"], 2,
        "{ingested}"
    );

    let next = dashboard.next_json().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["data"]["metricsUpdated"],
        json!({ "nodeId": node_id, "hostname": "mx1.example.com", "batchId": "b-1", "samples": 2, "names": ["system.load1"],
            "readings": [{ "name": "system.load1", "labels": [], "value": 0.5 }] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_redis_is_unreachable_do_not_stop_ingestion_and_delivery_resumes() {
    let proxy = RedisProxy::start().await;
    let redis_url = format!("redis://{}", proxy.addr);
    let app = TestApp::builder(Backend::Postgres)
        .with_config(move |c| c.redis.url = Some(redis_url))
        .spawn()
        .await;
    let enrollment = app.enrollment_key(None).await;
    let (_, key) = app.register_node(&enrollment, "mx2.example.com", &[]).await;
    let viewer = app.user_with_role("watcher", "VIEWER").await.1;
    let mut dashboard = WsClient::ready(app.addr, bearer(&viewer)).await;
    dashboard
        .subscribe(
            "m",
            "subscription { metricsUpdated { batchId } }",
            json!({}),
        )
        .await;
    dashboard.barrier().await;
    let ingest = |batch: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.gql_key(
                &key,
                "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }",
                json!({ "b": { "batchId": batch, "samples": [
                    { "name": "system.load1", "ts": Utc::now().to_rfc3339(), "value": 1.0 }
                ] } }),
            )
            .await
        }
    };

    proxy.set_down(true);
    let during = ingest("during-outage").await;
    assert_eq!(during["data"]["ingestMetrics"]["accepted"], 1, "{during}");
    let nodes = app
        .gql(
            Some(&viewer),
            "{ nodes(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(nodes["data"]["nodes"]["totalCount"], 1, "{nodes}");

    proxy.set_down(false);
    // Once Redis is back, new events flow again (an event published in the outage may or
    // may not survive it, depending on when the publisher noticed).
    let mut attempt = 0;
    loop {
        attempt += 1;
        let batch: &'static str = Box::leak(format!("after-outage-{attempt}").into_boxed_str());
        ingest(batch).await;
        let next = tokio::time::timeout(Duration::from_secs(3), dashboard.next_json()).await;
        if let Ok(next) = next {
            let delivered = next["payload"]["data"]["metricsUpdated"]["batchId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if delivered.starts_with("after-outage") {
                break;
            }
        }
        assert!(attempt < 10, "no delivery after Redis came back");
    }
}

on_both_backends! {
    async fn a_viewer_cannot_subscribe_to_audit_events_and_an_admin_sees_them_as_they_commit(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, viewer) = app.user_with_role("auditor", "VIEWER").await;
        let mut watcher = WsClient::ready(app.addr, bearer(&viewer)).await;
        watcher.subscribe("a", "subscription { auditEvents { sequence } }", json!({})).await;
        let refused = watcher.next_json().await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["id"], "a");
        assert_eq!(refused["payload"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");

        let admin = app.admin_token().await;
        let mut admin_socket = WsClient::ready(app.addr, bearer(&admin)).await;
        admin_socket
            .subscribe("a", "subscription { auditEvents { entry { action targetKind outcome actorName } } }", json!({}))
            .await;
        admin_socket.barrier().await;
        let created = app
            .gql(
                Some(&admin),
                "mutation { createUser(input: { username: \"newcomer\", password: \"newcomer-password-long\", role: VIEWER }) { id } }",
                json!({}),
            )
            .await;
        assert!(created["errors"].is_null(), "{created}");
        // The admin's own sign-in may still be on its way; the new user follows it.
        let mut next = admin_socket.next_json().await;
        while next["payload"]["data"]["auditEvents"]["entry"]["action"] == "auth.login" {
            next = admin_socket.next_json().await;
        }
        assert_eq!(
            next["payload"]["data"]["auditEvents"]["entry"],
            json!({ "action": "user.create", "targetKind": "user", "outcome": "SUCCESS", "actorName": "admin" }),
            "{next}"
        );
    }
}

on_both_backends! {
    async fn logging_out_closes_the_users_websocket_at_once(backend) {
        let app = TestApp::spawn(backend).await;
        let login = app.login("admin", ADMIN_PASSWORD).await;
        let mut socket = WsClient::ready(app.addr, bearer(&token_of(&login))).await;
        socket.subscribe("s", "subscription { nodeStatusChanged { nodeId } }", json!({})).await;
        socket.barrier().await;

        let out = app
            .gql(None, "mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": login["refreshToken"] }))
            .await;
        assert_eq!(out["data"]["logout"], true, "{out}");
        assert_eq!(socket.close_frame().await, (4403, "signed out".to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_closes_its_websocket() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (id, viewer) = app.user_with_role("leaver", "VIEWER").await;
    let mut socket = WsClient::ready(app.addr, bearer(&viewer)).await;
    socket.barrier().await;
    let admin = app.admin_token().await;
    let body = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { updateUser(id: $id, input: { disabled: true }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (code, _) = socket.close_frame().await;
    assert_eq!(code, 4403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_closes_when_the_access_token_expires() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(|c| c.auth.access_token_ttl = duration("2s"))
        .spawn()
        .await;
    let token = app.admin_token().await;
    let mut socket = WsClient::ready(app.addr, bearer(&token)).await;
    socket.subscribe("s", NODE_STATUS, json!({})).await;
    assert_eq!(
        socket.close_frame().await,
        (4403, "access token has expired".to_string())
    );
}

#[tokio::test]
async fn each_protocol_violation_closes_with_its_code() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.admin_token().await;

    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws").await;
    socket.send_text("not json").await;
    assert_eq!(socket.close_frame().await.0, 4400, "invalid message");

    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws").await;
    socket.send(json!({ "type": "who-knows" })).await;
    assert_eq!(socket.close_frame().await.0, 4400, "unknown message type");

    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws").await;
    socket
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ me { id } }" } }))
        .await;
    assert_eq!(socket.close_frame().await, (4401, "Unauthorized".into()));

    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws").await;
    socket.send(json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-token" } })).await;
    assert_eq!(
        socket.close_frame().await,
        (4403, "access token is malformed".into())
    );

    let mut socket = WsClient::ready(app.addr, bearer(&token)).await;
    socket.subscribe("dup", NODE_STATUS, json!({})).await;
    socket.subscribe("dup", NODE_STATUS, json!({})).await;
    assert_eq!(
        socket.close_frame().await,
        (4409, "Subscriber for dup already exists".into())
    );

    let mut socket = WsClient::ready(app.addr, bearer(&token)).await;
    socket
        .send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(socket.close_frame().await.0, 4429, "second connection_init");

    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws").await;
    assert_eq!(
        socket.close_frame().await,
        (4408, "Connection initialisation timeout".into()),
        "no connection_init within 3 s"
    );
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_runs_operations_too() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.admin_token().await;
    let mut socket = WsClient::connect(app.addr, "graphql-ws").await;
    assert_eq!(socket.init(bearer(&token)).await["type"], "connection_ack");
    assert_eq!(socket.next_json().await["type"], "ka");
    socket
        .send(json!({ "id": "1", "type": "start", "payload": { "query": "{ me { username } }" } }))
        .await;
    let data = socket.next_json().await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["payload"]["data"]["me"]["username"], "admin");
    assert_eq!(
        socket.next_json().await,
        json!({ "id": "1", "type": "complete" })
    );

    socket
        .send(json!({ "id": "2", "type": "start", "payload": { "query": "subscription { mailFlow { counts { queued } } }" } }))
        .await;
    // The server starts operations in order, so once the query after it has answered the
    // subscription is listening.
    socket
        .send(json!({ "id": "3", "type": "start", "payload": { "query": "{ __typename }" } }))
        .await;
    assert_eq!(socket.next_json().await["id"], "3");
    assert_eq!(
        socket.next_json().await,
        json!({ "id": "3", "type": "complete" })
    );
    app.state.events.publish(Tick::queued_now(7));
    let data = socket.next_json().await;
    assert_eq!(
        data,
        json!({ "id": "2", "type": "data", "payload": { "data": { "mailFlow": { "counts": { "queued": 7 } } } } })
    );
    socket.send(json!({ "id": "2", "type": "stop" })).await;
    assert_eq!(
        socket.next_json().await,
        json!({ "id": "2", "type": "complete" })
    );

    let mut refused = WsClient::connect(app.addr, "graphql-ws").await;
    let error = refused.init(Some("Bearer expired.or.wrong".into())).await;
    assert_eq!(error["type"], "connection_error", "{error}");
    assert_eq!(refused.close_frame().await.0, 4403);
}

on_both_backends! {
    async fn a_subscription_resumes_after_a_sequence_number(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.admin_token().await;
        let mut first = WsClient::ready(app.addr, bearer(&token)).await;
        first.subscribe("f", MAIL_FLOW, json!({})).await;
        first.barrier().await;
        for received in 1..=3 {
            app.state.events.publish(Tick::queued_now(received));
        }
        let mut sequences = Vec::new();
        for _ in 0..3 {
            sequences.push(first.next_json().await["payload"]["data"]["mailFlow"]["sequence"].as_i64().unwrap());
        }

        // A client that saw only the first of them resumes after it.
        let mut resumed = WsClient::ready(app.addr, bearer(&token)).await;
        resumed.subscribe("r", MAIL_FLOW, json!({ "after": sequences[0] })).await;
        let mut replayed = Vec::new();
        for _ in 0..2 {
            replayed.push(resumed.next_json().await["payload"]["data"]["mailFlow"].clone());
        }
        assert_eq!(replayed, vec![
            json!({ "sequence": sequences[1], "counts": { "queued": 2 } }),
            json!({ "sequence": sequences[2], "counts": { "queued": 3 } }),
        ]);
        app.state.events.publish(Tick::queued_now(4));
        assert_eq!(resumed.next_json().await["payload"]["data"]["mailFlow"]["counts"]["queued"], 4);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_told_it_lagged_instead_of_being_buffered_for() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(|c| c.realtime.subscriber_buffer = 16)
        .spawn()
        .await;
    let token = app.admin_token().await;
    let mut stalled = WsClient::ready(app.addr, bearer(&token)).await;
    stalled.subscribe("f", MAIL_FLOW, json!({})).await;
    stalled.barrier().await;

    // Far more than the buffer and the socket's buffers hold, while the client reads nothing.
    const PUBLISHED: i64 = 200_000;
    for received in 0..PUBLISHED {
        app.state.events.publish(Tick::queued_now(received));
    }

    let mut delivered = 0;
    loop {
        let message = stalled.next_json().await;
        match message["type"].as_str() {
            Some("next") if message["payload"]["errors"].is_array() => {
                let error = &message["payload"]["errors"][0];
                assert_eq!(error["extensions"]["code"], "LAGGED", "{message}");
                assert!(error["extensions"]["missed"].as_i64().unwrap() > 0);
                assert!(error["extensions"]["lastSequence"].is_i64());
            }
            Some("next") => delivered += 1,
            Some("complete") => break,
            _ => panic!("unexpected {message}"),
        }
    }
    assert!(
        delivered < PUBLISHED,
        "every event was buffered for a stalled client"
    );
}

/// A TCP proxy in front of the test Redis that can be switched off: switching it off cuts
/// every open connection and refuses new ones.
#[tokio::test]
async fn dashboards_with_the_same_subscription_each_receive_every_event() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, viewer) = app.user_with_role("wall", "VIEWER").await;
    let admin = app.admin_token().await;
    let mut sockets = Vec::new();
    for token in [&viewer, &viewer, &admin] {
        let mut socket = WsClient::ready(app.addr, bearer(token)).await;
        socket
            .subscribe(
                "f",
                "subscription { mailFlow { counts { queued } } }",
                json!({}),
            )
            .await;
        socket.barrier().await;
        sockets.push(socket);
    }
    // One of them leaves; the others keep their subscription.
    sockets[0]
        .send(json!({ "id": "f", "type": "complete" }))
        .await;
    sockets[0].barrier().await;

    app.state.events.publish(Tick::queued_now(1));
    app.state.events.publish(Tick::queued_now(2));
    for socket in &mut sockets[1..] {
        for received in [1, 2] {
            assert_eq!(
                socket.next_json().await,
                json!({ "id": "f", "type": "next", "payload": { "data": { "mailFlow": { "counts": { "queued": received } } } } })
            );
        }
    }
}
