use serde_json::json;

use testkit::on_both_backends;
use testkit::{ADMIN_PASSWORD, Backend, TestApp, duration, error_code, token_of};

const ME: &str = "{ me { id username role } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";
const LOGOUT: &str = "mutation($t: String!) { logout(refreshToken: $t) }";
const LOGIN: &str =
    "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }";

on_both_backends! {
    async fn login_me_refresh_reuse_logout(backend) {
        let app = TestApp::spawn(backend).await;

        let login = app.login("admin", ADMIN_PASSWORD).await;
        assert_eq!(login["user"]["role"], "ADMIN");
        let me = app.gql(Some(&token_of(&login)), ME, json!({})).await;
        assert_eq!(me["data"]["me"]["username"], "admin");

        let first_refresh = login["refreshToken"].as_str().unwrap();
        let rotated = app.gql(None, REFRESH, json!({ "t": first_refresh })).await;
        assert!(rotated["errors"].is_null(), "{rotated}");
        let second_refresh = rotated["data"]["refreshToken"]["refreshToken"].as_str().unwrap().to_string();
        let new_access = rotated["data"]["refreshToken"]["accessToken"].as_str().unwrap().to_string();
        assert_ne!(second_refresh, first_refresh);
        assert_eq!(app.gql(Some(&new_access), ME, json!({})).await["data"]["me"]["username"], "admin");

        // Reusing the rotated token is refused and kills the whole family.
        let reuse = app.gql(None, REFRESH, json!({ "t": first_refresh })).await;
        assert_eq!(error_code(&reuse), "UNAUTHENTICATED");
        let family_dead = app.gql(None, REFRESH, json!({ "t": second_refresh })).await;
        assert_eq!(error_code(&family_dead), "UNAUTHENTICATED", "{family_dead}");

        // A fresh login is a new family; logout ends it.
        let again = app.login("admin", ADMIN_PASSWORD).await;
        let refresh = again["refreshToken"].as_str().unwrap();
        let out = app.gql(None, LOGOUT, json!({ "t": refresh })).await;
        assert_eq!(out["data"]["logout"], true);
        let after_logout = app.gql(None, REFRESH, json!({ "t": refresh })).await;
        assert_eq!(error_code(&after_logout), "UNAUTHENTICATED");
        let unknown = app.gql(None, LOGOUT, json!({ "t": "not-a-token" })).await;
        assert_eq!(unknown["data"]["logout"], false);
    }
}

on_both_backends! {
    async fn unknown_user_and_wrong_password_answer_alike(backend) {
        let app = TestApp::spawn(backend).await;
        let wrong = app.gql(None, LOGIN, json!({ "u": "admin", "p": "wrong password here" })).await;
        let unknown = app.gql(None, LOGIN, json!({ "u": "nobody", "p": "wrong password here" })).await;
        assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
        assert_eq!(wrong["errors"][0]["message"], unknown["errors"][0]["message"]);
        assert_eq!(error_code(&unknown), "UNAUTHENTICATED");
    }
}

on_both_backends! {
    async fn repeated_failures_make_the_account_wait(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| {
                c.auth.login_failures_before_backoff = 3;
                c.auth.login_backoff_base = duration("3s");
            })
            .spawn()
            .await;
        for _ in 0..3 {
            let body = app.gql(None, LOGIN, json!({ "u": "admin", "p": "wrong password here" })).await;
            assert_eq!(error_code(&body), "UNAUTHENTICATED");
        }
        // Even the right password must wait now, and the answer says for how long.
        let locked = app.gql(None, LOGIN, json!({ "u": "admin", "p": ADMIN_PASSWORD })).await;
        assert_eq!(error_code(&locked), "RATE_LIMITED", "{locked}");
        let retry_after = locked["errors"][0]["extensions"]["retryAfterSeconds"].as_u64().unwrap();
        assert!((1..=3).contains(&retry_after), "{locked}");
        // Other accounts are not affected.
        let other = app.gql(None, LOGIN, json!({ "u": "someone", "p": "wrong password here" })).await;
        assert_eq!(error_code(&other), "UNAUTHENTICATED");

        tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
        app.login("admin", ADMIN_PASSWORD).await;
    }
}

on_both_backends! {
    async fn two_concurrent_refreshes_of_one_token_exactly_one_wins(backend) {
        let app = TestApp::spawn(backend).await;
        for _ in 0..3 {
            let login = app.login("admin", ADMIN_PASSWORD).await;
            let token = login["refreshToken"].as_str().unwrap();
            let (a, b) = tokio::join!(
                app.gql(None, REFRESH, json!({ "t": token })),
                app.gql(None, REFRESH, json!({ "t": token })),
            );
            let wins = [&a, &b].iter().filter(|r| r["errors"].is_null()).count();
            assert_eq!(wins, 1, "{a} {b}");
            let loser = if a["errors"].is_null() { &b } else { &a };
            assert_eq!(error_code(loser), "UNAUTHENTICATED", "{loser}");
        }
    }
}

on_both_backends! {
    async fn change_password_needs_the_current_one_and_signs_out_everywhere(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, token) = app.user_with_role("carol", "VIEWER").await;
        let session = app.login("carol", "carol-password-long").await;
        let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

        let wrong = app.gql(Some(&token), change, json!({ "c": "not my password!", "n": "a brand new password" })).await;
        assert_eq!(error_code(&wrong), "BAD_USER_INPUT");
        let weak = app.gql(Some(&token), change, json!({ "c": "carol-password-long", "n": "short" })).await;
        assert_eq!(error_code(&weak), "BAD_USER_INPUT");
        assert_eq!(weak["errors"][0]["extensions"]["field"], "newPassword");

        let ok = app.gql(Some(&token), change, json!({ "c": "carol-password-long", "n": "a brand new password" })).await;
        assert_eq!(ok["data"]["changePassword"], true, "{ok}");
        let old_session = app.gql(None, REFRESH, json!({ "t": session["refreshToken"] })).await;
        assert_eq!(error_code(&old_session), "UNAUTHENTICATED");
        let old_password = app.gql(None, LOGIN, json!({ "u": "carol", "p": "carol-password-long" })).await;
        assert_eq!(error_code(&old_password), "UNAUTHENTICATED");
        app.login("carol", "a brand new password").await;
    }
}

on_both_backends! {
    async fn bad_tokens_are_refused_with_unauthenticated(backend) {
        let secret = "a-known-secret-for-forging-tokens-0123456789";
        let app = TestApp::builder(backend)
            .with_config(|c| {
                c.auth.jwt_secret = Some(secret.to_string().into());
                c.auth.access_token_ttl = duration("1s");
            })
            .spawn()
            .await;
        let login = app.login("admin", ADMIN_PASSWORD).await;
        let good = token_of(&login);
        let admin_id = login["user"]["id"].as_str().unwrap().to_string();
        let now = chrono::Utc::now().timestamp();

        let forge = |claims: serde_json::Value, key: &str| {
            use base64::Engine as _;
            use hmac::Mac as _;
            let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let input = format!("{}.{}", b64(br#"{"typ":"JWT","alg":"HS256"}"#), b64(claims.to_string().as_bytes()));
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            format!("{input}.{}", b64(&mac.finalize().into_bytes()))
        };
        let claims = |aud: &str, typ: &str| json!({
            "sub": admin_id, "iss": "mailops", "aud": aud, "typ": typ, "iat": now, "exp": now + 600
        });
        let b64 = |v: serde_json::Value| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        let alg_none = format!(
            "{}.{}.",
            b64(json!({ "alg": "none", "typ": "JWT" })),
            b64(claims("mailops-api", "access"))
        );
        let cases = [
            ("tampered", tampered),
            ("alg none", alg_none),
            ("wrong audience", forge(claims("another-api", "access"), secret)),
            ("wrong type", forge(claims("mailops-api", "refresh"), secret)),
            ("other secret", forge(claims("mailops-api", "access"), "another-secret-that-is-long-enough-000")),
            ("refresh token as access token", login["refreshToken"].as_str().unwrap().to_string()),
            ("garbage", "x".repeat(5000)),
        ];
        for (case, token) in cases {
            let body = app.gql(Some(&token), ME, json!({})).await;
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{case}: {body}");
            assert!(body["data"].is_null(), "{case}");
        }
        // A forged token with the right secret and claims is accepted: the cases above
        // failed for their flaw, not for being forged.
        let valid = forge(claims("mailops-api", "access"), secret);
        assert_eq!(app.gql(Some(&valid), ME, json!({})).await["data"]["me"]["username"], "admin");

        // Lifetimes are whole seconds, so wait past the next boundary.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let expired = app.gql(Some(&good), ME, json!({})).await;
        assert_eq!(error_code(&expired), "UNAUTHENTICATED");
        assert_eq!(expired["errors"][0]["message"], "access token has expired");
    }
}

on_both_backends! {
    async fn a_disabled_user_is_refused_on_its_next_request(backend) {
        let app = TestApp::spawn(backend).await;
        let (id, token) = app.user_with_role("dave", "OPERATOR").await;
        let session = app.login("dave", "dave-password-long").await;
        let admin = app.admin_token().await;
        let disable = app.gql(
            Some(&admin),
            "mutation($id: ID!) { updateUser(id: $id, input: { disabled: true }) { disabled } }",
            json!({ "id": id }),
        ).await;
        assert_eq!(disable["data"]["updateUser"]["disabled"], true, "{disable}");

        assert_eq!(error_code(&app.gql(Some(&token), ME, json!({})).await), "UNAUTHENTICATED");
        assert_eq!(error_code(&app.gql(None, REFRESH, json!({ "t": session["refreshToken"] })).await), "UNAUTHENTICATED");
        let login = app.gql(None, LOGIN, json!({ "u": "dave", "p": "dave-password-long" })).await;
        assert_eq!(error_code(&login), "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn anonymous_caller_gets_unauthenticated_on_me() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = app.gql(None, ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(body["data"].is_null());
}

/// Polls `app` as `token` until `done` holds for the answer; panics after `within`.
async fn answer_becomes(
    app: &TestApp,
    token: &str,
    within: std::time::Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let body = app.gql(Some(token), ME, json!({})).await;
        if done(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {body} after {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_user_leaves_the_cache_of_every_instance_at_once() {
    // A minute's cache: only the revocation can end what both instances keep.
    let long = |c: &mut mailops::Config| c.auth.principal_cache_ttl = duration("60s");
    let a = TestApp::builder(Backend::Postgres)
        .with_config(long)
        .spawn()
        .await;
    let b = a.sibling().with_config(long).spawn().await;
    let admin = a.admin_token().await;
    let (id, vera) = a.user_with_role("vera", "VIEWER").await;
    for app in [&a, &b] {
        assert_eq!(
            app.gql(Some(&vera), ME, json!({})).await["data"]["me"]["role"],
            "VIEWER"
        );
    }
    let update = "mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { role disabled } }";
    let body = a
        .gql(
            Some(&admin),
            update,
            json!({ "id": id, "i": { "role": "OPERATOR" } }),
        )
        .await;
    assert_eq!(body["data"]["updateUser"]["role"], "OPERATOR", "{body}");
    // The other instance takes the new role on the next request it reads after the
    // revocation arrives, long before the cache's minute.
    let within = std::time::Duration::from_secs(2);
    answer_becomes(&b, &vera, within, |body| {
        body["data"]["me"]["role"] == "OPERATOR"
    })
    .await;
    assert_eq!(
        a.gql(Some(&vera), ME, json!({})).await["data"]["me"]["role"],
        "OPERATOR"
    );

    let body = a
        .gql(
            Some(&admin),
            update,
            json!({ "id": id, "i": { "disabled": true } }),
        )
        .await;
    assert_eq!(body["data"]["updateUser"]["disabled"], true, "{body}");
    let refused = answer_becomes(&b, &vera, within, |body| {
        error_code(body) == "UNAUTHENTICATED"
    })
    .await;
    assert!(refused.to_string().contains("disabled"), "{refused}");
    assert_eq!(
        error_code(&a.gql(Some(&vera), ME, json!({})).await),
        "UNAUTHENTICATED"
    );
}

on_both_backends! {
    async fn a_change_no_revocation_announces_ends_with_the_cache_time_to_live(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.auth.principal_cache_ttl = duration("3s"))
            .spawn()
            .await;
        let (id, vera) = app.user_with_role("vera", "VIEWER").await;
        assert_eq!(app.gql(Some(&vera), ME, json!({})).await["data"]["me"]["username"], "vera");
        // Disabled behind mailops's back: no revocation is published.
        use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, sea_query::Expr};
        let id: uuid::Uuid = id.parse().unwrap();
        entity::user::Entity::update_many()
            .col_expr(entity::user::Column::Disabled, Expr::value(true))
            .filter(entity::user::Column::Id.eq(id))
            .exec(&app.state.db)
            .await
            .unwrap();
        let refused = answer_becomes(&app, &vera, std::time::Duration::from_secs(6), |body| {
            error_code(body) == "UNAUTHENTICATED"
        })
        .await;
        assert!(refused.to_string().contains("disabled"), "{refused}");
    }
}
