use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::{TestApp, error_code};

const CREATE: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { id username role disabled } }";
const UPDATE: &str = "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { role disabled } }";
const COUNT: &str = "{ users { totalCount } }";

async fn user_count(app: &TestApp, admin: &str) -> u64 {
    app.gql(Some(admin), COUNT, json!({})).await["data"]["users"]["totalCount"]
        .as_u64()
        .expect("totalCount")
}

on_both_backends! {
    async fn viewer_gets_forbidden_on_create_user(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, viewer) = app.user_with_role("vera", "VIEWER").await;
        let body = app.gql(Some(&viewer), CREATE, json!({ "input": {
            "username": "mallory", "password": "a long enough password", "role": "ADMIN" } })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        let admin = app.admin_token().await;
        assert_eq!(user_count(&app, &admin).await, 2);
    }
}

on_both_backends! {
    async fn admin_creates_and_pages_through_users(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        for name in ["zed", "Bob", "amy", "carl"] {
            let body = app.gql(Some(&admin), CREATE, json!({ "input": {
                "username": name, "password": "a long enough password", "role": "OPERATOR" } })).await;
            assert_eq!(body["data"]["createUser"]["username"], name.to_lowercase(), "{body}");
        }
        let page = "query($after: String) { users(first: 2, after: $after) {
            totalCount pageInfo { hasNextPage endCursor } edges { node { username } } } }";
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let body = app.gql(Some(&admin), page, json!({ "after": after })).await;
            let users = &body["data"]["users"];
            assert_eq!(users["totalCount"], 5, "{body}");
            for edge in users["edges"].as_array().unwrap() {
                seen.push(edge["node"]["username"].as_str().unwrap().to_string());
            }
            if users["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = users["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen, ["admin", "amy", "bob", "carl", "zed"]);

        let duplicate = app.gql(Some(&admin), CREATE, json!({ "input": {
            "username": "AMY", "password": "a long enough password", "role": "VIEWER" } })).await;
        assert_eq!(error_code(&duplicate), "CONFLICT");
        assert_eq!(user_count(&app, &admin).await, 5);
    }
}

on_both_backends! {
    async fn bad_user_input_is_refused_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let cases = [
            ("", "a long enough password", "input.username"),
            ("has space", "a long enough password", "input.username"),
            (".dot-first", "a long enough password", "input.username"),
            (&"u".repeat(65), "a long enough password", "input.username"),
            ("erin", "short", "password"),
            ("erin-the-user", "erin-the-user", "password"),
        ];
        for (username, password, field) in cases {
            let body = app.gql(Some(&admin), CREATE, json!({ "input": {
                "username": username, "password": password, "role": "VIEWER" } })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{username}: {body}");
            let reported = body["errors"][0]["extensions"]["field"].as_str().unwrap_or_default();
            assert!(field.ends_with(reported) && !reported.is_empty(), "{username}: {body}");
        }
        let unknown_role = app.gql(Some(&admin), CREATE, json!({ "input": {
            "username": "erin", "password": "a long enough password", "role": "ROOT" } })).await;
        assert_eq!(error_code(&unknown_role), "BAD_USER_INPUT");
        let bad_id = app.gql(Some(&admin), UPDATE, json!({ "id": "not-an-id", "input": { "role": "ADMIN" } })).await;
        assert_eq!(error_code(&bad_id), "BAD_USER_INPUT");
        let missing = app.gql(Some(&admin), UPDATE, json!({ "id": uuid::Uuid::now_v7().to_string(), "input": { "role": "ADMIN" } })).await;
        assert_eq!(error_code(&missing), "NOT_FOUND");

        // A 10 MB username never reaches the resolver: the body is refused once it passes
        // the limit. The client stops sending right after the limit, so the server has read
        // everything sent and its answer cannot be lost to a reset connection.
        let limit = mailops::graphql::http::MAX_CALLER_BODY_BYTES;
        let prefix = r#"{"query": "mutation { createUser(input: { username: \"#;
        let mut body = prefix.as_bytes().to_vec();
        body.resize(limit + 1, b'x');
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            app.addr,
            10 * 1024 * 1024
        );
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        assert!(response.contains("\"code\":\"BAD_USER_INPUT\""), "{response}");

        assert_eq!(user_count(&app, &admin).await, 1);
    }
}

on_both_backends! {
    async fn the_last_admin_can_be_neither_demoted_nor_disabled(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let me = app.gql(Some(&admin), "{ me { id } }", json!({})).await;
        let admin_id = me["data"]["me"]["id"].as_str().unwrap().to_string();
        for input in [json!({ "role": "OPERATOR" }), json!({ "disabled": true })] {
            let body = app.gql(Some(&admin), UPDATE, json!({ "id": admin_id, "input": input })).await;
            assert_eq!(error_code(&body), "CONFLICT", "{body}");
        }
        // With a second admin, one of them may step down.
        let (second_id, second) = app.user_with_role("second", "ADMIN").await;
        let body = app.gql(Some(&second), UPDATE, json!({ "id": admin_id, "input": { "role": "VIEWER" } })).await;
        assert_eq!(body["data"]["updateUser"]["role"], "VIEWER", "{body}");
        let body = app.gql(Some(&second), UPDATE, json!({ "id": second_id, "input": { "disabled": true } })).await;
        assert_eq!(error_code(&body), "CONFLICT");
    }
}

on_both_backends! {
    async fn two_admins_demoting_each_other_at_once_leave_one_admin(backend) {
        let app = TestApp::spawn(backend).await;
        let (a_id, a) = app.user_with_role("admin-a", "ADMIN").await;
        let (b_id, b) = app.user_with_role("admin-b", "ADMIN").await;
        // Leave exactly these two admins.
        let root = app.admin_token().await;
        let me = app.gql(Some(&root), "{ me { id } }", json!({})).await;
        let body = app.gql(Some(&a), UPDATE, json!({ "id": me["data"]["me"]["id"], "input": { "role": "VIEWER" } })).await;
        assert!(body["errors"].is_null(), "{body}");

        let (ra, rb) = tokio::join!(
            app.gql(Some(&a), UPDATE, json!({ "id": b_id, "input": { "role": "VIEWER" } })),
            app.gql(Some(&b), UPDATE, json!({ "id": a_id, "input": { "role": "VIEWER" } })),
        );
        let oks = [&ra, &rb].iter().filter(|r| r["errors"].is_null()).count();
        assert_eq!(oks, 1, "{ra} {rb}");
        let refused = if ra["errors"].is_null() { &rb } else { &ra };
        // The loser either saw no other admin left, or was itself demoted before it acted.
        assert!(["CONFLICT", "FORBIDDEN"].contains(&error_code(refused).as_str()), "{refused}");
    }
}

on_both_backends! {
    async fn a_role_change_revokes_refresh_tokens_and_applies_at_once(backend) {
        let app = TestApp::spawn(backend).await;
        let (id, token) = app.user_with_role("olga", "OPERATOR").await;
        let session = app.login("olga", "olga-password-long").await;
        let admin = app.admin_token().await;
        let body = app.gql(Some(&admin), UPDATE, json!({ "id": id, "input": { "role": "VIEWER" } })).await;
        assert_eq!(body["data"]["updateUser"]["role"], "VIEWER");
        let me = app.gql(Some(&token), "{ me { role } }", json!({})).await;
        assert_eq!(me["data"]["me"]["role"], "VIEWER");
        let refresh = app.gql(None, "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({ "t": session["refreshToken"] })).await;
        assert_eq!(error_code(&refresh), "UNAUTHENTICATED");
    }
}

on_both_backends! {
    async fn reset_user_password_replaces_the_old_one(backend) {
        let app = TestApp::spawn(backend).await;
        let (id, _) = app.user_with_role("pete", "VIEWER").await;
        let admin = app.admin_token().await;
        let reset = "mutation($id: ID!, $p: String!) { resetUserPassword(id: $id, password: $p) { username } }";
        let weak = app.gql(Some(&admin), reset, json!({ "id": id, "p": "pete" })).await;
        assert_eq!(error_code(&weak), "BAD_USER_INPUT");
        let ok = app.gql(Some(&admin), reset, json!({ "id": id, "p": "a fresh password for pete" })).await;
        assert_eq!(ok["data"]["resetUserPassword"]["username"], "pete", "{ok}");
        app.login("pete", "a fresh password for pete").await;
        let old = app.gql(None, "mutation { login(username: \"pete\", password: \"pete-password-long\") { accessToken } }", json!({})).await;
        assert_eq!(error_code(&old), "UNAUTHENTICATED");
    }
}
