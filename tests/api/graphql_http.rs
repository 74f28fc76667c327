use serde_json::{Value, json};

use mailops::config::GraphiqlAssets;
use testkit::on_both_backends;
use testkit::{Backend, TestApp, error_code, login_in_two_halves};

async fn post_raw(app: &TestApp, body: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

on_both_backends! {
    async fn health_and_readiness_report_the_backends(backend) {
        let app = TestApp::spawn(backend).await;
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready: Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ok");
        assert_eq!(ready["database"], "ok");
        let expected_redis = if backend == Backend::Postgres { "ok" } else { "not configured" };
        assert_eq!(ready["redis"], expected_redis);
    }
}

on_both_backends! {
    async fn malformed_requests_get_coded_errors(backend) {
        let app = TestApp::spawn(backend).await;
        let (status, body) = post_raw(&app, "{not json").await;
        assert_eq!(status, 400);
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert!(body["errors"][0]["extensions"]["requestId"].is_string());

        let cases = [
            r#"{"query": "{ me { username "}"#,
            r#"{"query": "{ noSuchField }"}"#,
            r#"{"query": "{ me { noSuchField } }"}"#,
            r#"{"query": "mutation { login(username: 42, password: true) { accessToken } }"}"#,
            r#"{"query": "mutation($u: String!) { login(username: $u, password: \"x\") { accessToken } }", "variables": {"u": 5}}"#,
        ];
        for case in cases {
            let (_, body) = post_raw(&app, case).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{case}: {body}");
            assert!(body["errors"][0]["extensions"]["requestId"].is_string());
        }
    }
}

on_both_backends! {
    async fn query_limits_are_enforced(backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;

    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let body = app
        .gql(Some(&admin), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases"),
        "{body}"
    );
    let thirty: String = (0..30).map(|i| format!("a{i}: me {{ id }} ")).collect();
    assert!(
        app.gql(Some(&admin), &format!("{{ {thirty} }}"), json!({}))
            .await["errors"]
            .is_null()
    );

    let deep = format!("{{ me {} id {} }}", "{ a ".repeat(12), "} ".repeat(12));
    let body = app.gql(Some(&admin), &deep, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("too deep"), "{body}");

    // GraphiQL's introspection nests ofType deeper than data queries may; it still works.
    let type_ref = format!("kind name {}", "ofType { kind name ".repeat(8) + &"}".repeat(8));
    let introspection = format!("{{ __schema {{ types {{ name fields {{ name args {{ name type {{ {type_ref} }} }} type {{ {type_ref} }} }} }} }} }}");
    let body = app.gql(None, &introspection, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let too_deep = format!("{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}", "ofType { ".repeat(17), "} ".repeat(17));
    let body = app.gql(None, &too_deep, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");

    let directives: String = (0..51).map(|_| "@include(if: true) ").collect();
    let body = app
        .gql(
            Some(&admin),
            &format!("{{ me {directives} {{ id }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    let long = format!("{{ me {{ id }} }} # {}", "x".repeat(33 * 1024));
    let body = app.gql(Some(&admin), &long, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bytes")
    );

    let body = app
        .gql(
            Some(&admin),
            "{ users(first: 501) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "first");

    let batch: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, body) = post_raw(&app, &serde_json::to_string(&batch).unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, body) = post_raw(&app, &serde_json::to_string(&batch).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 10);
    }
}

on_both_backends! {
    async fn request_ids_are_kept_when_plain_and_made_otherwise(backend) {
    let app = TestApp::spawn(backend).await;
    let send = |id: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .json(&json!({ "query": "{ me { id } }" }));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let kept = send(Some("dashboard-7f3a")).await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "dashboard-7f3a");
    let body: Value = kept.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"],
        "dashboard-7f3a"
    );

    let made = send(None).await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    let replaced = send(Some(&"x".repeat(500))).await.unwrap();
    assert_ne!(
        replaced.headers()["x-request-id"].to_str().unwrap(),
        "x".repeat(500)
    );
    }
}

#[tokio::test]
async fn embedded_mode_serves_graphiql_pointed_at_the_websocket() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql@3.8.3/graphiql.min.js"));
    assert!(html.contains("https://unpkg.com/"));
    assert!(html.contains("'/ws'"));
}

#[tokio::test]
async fn graphiql_can_load_its_scripts_from_a_local_directory() {
    let dir = std::env::temp_dir().join(format!("mailops-assets-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(dir.join("graphiql@3.8.3")).unwrap();
    std::fs::write(dir.join("graphiql@3.8.3/graphiql.min.js"), "/* graphiql */").unwrap();
    let directory = dir.clone();
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(move |c| c.server.graphiql_assets = GraphiqlAssets::Directory(directory))
        .spawn()
        .await;
    let html = app.get_text("/graphql").await;
    assert!(html.contains("/graphiql/assets/graphiql@3.8.3/graphiql.min.js"));
    assert!(!html.contains("unpkg"));
    let script = app
        .client
        .get(app.url("/graphiql/assets/graphiql@3.8.3/graphiql.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.text().await.unwrap(), "/* graphiql */");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn production_mode_hides_graphiql_and_introspection_unless_enabled() {
    let app = TestApp::builder(Backend::Postgres)
        .with_config(|c| c.server.introspection = false)
        .spawn()
        .await;
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let body = app
        .gql(None, "{ __schema { types { name } } }", json!({}))
        .await;
    assert!(
        body["errors"].is_array() || body["data"]["__schema"].is_null(),
        "{body}"
    );
    // Field suggestions are off too: an unknown field does not hint at real ones.
    let body = app.gql(None, "{ mee { id } }", json!({})).await;
    assert!(!body.to_string().contains("Did you mean"), "{body}");

    let enabled = TestApp::builder(Backend::Postgres)
        .with_config(|c| c.server.graphiql = true)
        .spawn()
        .await;
    assert_eq!(
        enabled
            .client
            .get(enabled.url("/graphql"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

on_both_backends! {
    async fn shutdown_lets_in_flight_requests_finish(backend) {
        let mut app = TestApp::spawn(backend).await;
        let addr = app.addr;
        let response = login_in_two_halves(addr, async { app.signal_stop() }).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("accessToken"), "{response}");
        app.stop().await;
        assert!(app.client.get(app.url("/healthz")).send().await.is_err(), "server still accepting");
    }
}
