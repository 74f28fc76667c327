use serde_json::json;

use testkit::on_both_backends;
use testkit::{ADMIN_PASSWORD, TestApp, error_code};

const LOG: &str =
    "query($filter: AuditFilter) { auditLog(first: 50, filter: $filter) { totalCount edges { node {
    action outcome actorName actorKind targetKind targetId detail requestId occurredAt } } } }";

on_both_backends! {
    async fn every_change_is_in_the_audit_log_without_secrets(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let created = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&admin)
            .header("x-request-id", "audit-test-request")
            .json(&json!({
                "query": "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
                "variables": { "i": { "username": "quinn", "password": "quinn secret password", "role": "VIEWER" } }
            }))
            .send().await.unwrap()
            .json::<serde_json::Value>().await.unwrap();
        let quinn_id = created["data"]["createUser"]["id"].as_str().unwrap().to_string();
        let duplicate = app.gql(Some(&admin), "mutation { createUser(input: { username: \"quinn\", password: \"another long password\", role: VIEWER }) { id } }", json!({})).await;
        assert_eq!(error_code(&duplicate), "CONFLICT");
        app.gql(None, "mutation { login(username: \"quinn\", password: \"wrong guess here\") { accessToken } }", json!({})).await;

        let body = app.gql(Some(&admin), LOG, json!({ "filter": { "action": "user.create" } })).await;
        let entries = body["data"]["auditLog"]["edges"].as_array().unwrap().clone();
        // Newest first: the refused duplicate, quinn, then the first admin made at start-up.
        assert_eq!(entries.len(), 3, "{body}");
        let refused = &entries[0]["node"];
        assert_eq!(refused["outcome"], "FAILURE");
        assert_eq!(refused["detail"]["code"], "CONFLICT");
        let made = &entries[1]["node"];
        assert_eq!(made["outcome"], "SUCCESS");
        assert_eq!(made["actorName"], "admin");
        assert_eq!(made["actorKind"], "user");
        assert_eq!(made["targetKind"], "user");
        assert_eq!(made["targetId"], quinn_id);
        assert_eq!(made["requestId"], "audit-test-request");
        assert_eq!(entries[2]["node"]["actorKind"], "system");

        let failures = app.gql(Some(&admin), LOG, json!({ "filter": { "action": "auth.login", "outcome": "FAILURE" } })).await;
        assert_eq!(failures["data"]["auditLog"]["totalCount"], 1);
        assert_eq!(failures["data"]["auditLog"]["edges"][0]["node"]["actorName"], "quinn");

        let everything = app.gql(Some(&admin), LOG, json!({})).await.to_string();
        for secret in ["quinn secret password", "another long password", "wrong guess here", ADMIN_PASSWORD] {
            assert!(!everything.contains(secret), "audit log holds a password");
        }
    }
}

on_both_backends! {
    async fn only_admins_read_the_audit_log(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, operator) = app.user_with_role("opal", "OPERATOR").await;
        let body = app.gql(Some(&operator), LOG, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let bad_cursor = app.gql(Some(&app.admin_token().await), "{ auditLog(after: \"%%%\") { totalCount } }", json!({})).await;
        assert_eq!(error_code(&bad_cursor), "BAD_USER_INPUT");
    }
}
