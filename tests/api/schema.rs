use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};
use crate::on_both_backends;

#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let current = mailops::graphql::sdl();
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != current {
        std::fs::write(path, &current).expect("rewrite schema.graphql");
        panic!("schema.graphql was stale; it has been rewritten, rerun the tests and commit it");
    }
}

/// Who may call a root field: anyone, or at least this role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    Public,
    Viewer,
    Operator,
    Admin,
}

/// Every root field, the decision on who may call it, and an operation that calls it
/// without changing anything that matters. A field missing here fails the test.
fn decisions() -> Vec<(&'static str, Access, &'static str)> {
    use Access::*;
    vec![
        ("Query.me", Viewer, "{ me { id } }"),
        ("Query.users", Admin, "{ users(first: 1) { totalCount } }"),
        (
            "Query.user",
            Admin,
            "{ user(id: \"00000000-0000-7000-8000-000000000000\") { id } }",
        ),
        (
            "Query.auditLog",
            Admin,
            "{ auditLog(first: 1) { totalCount } }",
        ),
        (
            "Mutation.login",
            Public,
            "mutation { login(username: \"\", password: \"x\") { accessToken } }",
        ),
        (
            "Mutation.refreshToken",
            Public,
            "mutation { refreshToken(refreshToken: \"unknown\") { accessToken } }",
        ),
        (
            "Mutation.logout",
            Public,
            "mutation { logout(refreshToken: \"unknown\") }",
        ),
        (
            "Mutation.changePassword",
            Viewer,
            "mutation { changePassword(currentPassword: \"wrong password\", newPassword: \"x\") }",
        ),
        (
            "Mutation.createUser",
            Admin,
            "mutation { createUser(input: { username: \"\", password: \"x\", role: VIEWER }) { id } }",
        ),
        (
            "Mutation.updateUser",
            Admin,
            "mutation { updateUser(id: \"00000000-0000-7000-8000-000000000000\", input: {}) { id } }",
        ),
        (
            "Mutation.resetUserPassword",
            Admin,
            "mutation { resetUserPassword(id: \"00000000-0000-7000-8000-000000000000\", password: \"x\") { id } }",
        ),
    ]
}

async fn root_fields(app: &TestApp) -> BTreeSet<String> {
    let body = app
        .gql(
            None,
            "{ __schema {
            queryType { fields { name } }
            mutationType { fields { name } }
            subscriptionType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mut fields = BTreeSet::new();
    for (root, key) in [
        ("Query", "queryType"),
        ("Mutation", "mutationType"),
        ("Subscription", "subscriptionType"),
    ] {
        for field in body["data"]["__schema"][key]["fields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            fields.insert(format!("{root}.{}", field["name"].as_str().unwrap()));
        }
    }
    fields
}

fn refused_by_guard(body: &Value) -> Option<&'static str> {
    let code = error_code(body);
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    match code.as_str() {
        "FORBIDDEN" => Some("FORBIDDEN"),
        "UNAUTHENTICATED" if message.starts_with("sign in first") => Some("UNAUTHENTICATED"),
        _ => None,
    }
}

on_both_backends! {
    async fn every_root_field_admits_exactly_the_roles_decided_for_it(backend) {
        let app = TestApp::spawn(backend).await;
        let decided: BTreeSet<String> = decisions().iter().map(|(f, ..)| f.to_string()).collect();
        assert_eq!(root_fields(&app).await, decided, "a root field has no access decision here");

        let (_, viewer) = app.user_with_role("matrix-viewer", "VIEWER").await;
        let (_, operator) = app.user_with_role("matrix-operator", "OPERATOR").await;
        let admin = app.admin_token().await;
        let callers = [
            (Access::Public, None),
            (Access::Viewer, Some(viewer.as_str())),
            (Access::Operator, Some(operator.as_str())),
            (Access::Admin, Some(admin.as_str())),
        ];
        for (field, needed, operation) in decisions() {
            for (level, token) in callers {
                let body = app.gql(token, operation, json!({})).await;
                let expected = if level >= needed {
                    None
                } else if token.is_none() {
                    Some("UNAUTHENTICATED")
                } else {
                    Some("FORBIDDEN")
                };
                assert_eq!(refused_by_guard(&body), expected, "{field} as {level:?}: {body}");
            }
        }
    }
}
