//! Operations per second per caller, over HTTP and WebSocket: users, agents and client
//! addresses each have their quota; every operation of a batch counts; the limit is shared
//! by instances through Redis and falls back to local limits without it.

use std::{net::IpAddr, time::Duration};

use mailops::config::RateQuota;
use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::redis_proxy::RedisProxy;
use testkit::ws::{WsClient, bearer};
use testkit::{ADMIN_PASSWORD, Backend, TestApp, error_code};

const ME: &str = "{ me { username } }";

fn quota(per_second: f64, burst: u32) -> Option<RateQuota> {
    Some(RateQuota { per_second, burst })
}

fn address(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn codes(batch: &Value) -> Vec<String> {
    batch.as_array().unwrap().iter().map(error_code).collect()
}

on_both_backends! {
    async fn a_user_over_its_rate_is_refused_operation_by_operation(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.limits.user_rate = quota(5.0, 6))
            .spawn()
            .await;
        let viewer = app.user_with_role("reader", "VIEWER").await.1;
        let auth = format!("Bearer {viewer}");
        let headers = [("authorization", auth.as_str())];
        // A batch of 8 against a burst of 6: each operation counts, the last two are
        // refused on their own and the others run.
        let batch = json!((0..8).map(|_| json!({ "query": ME })).collect::<Vec<_>>());
        let response = app.post_from(address(1), &headers, &batch).await;
        assert_eq!(response.status(), 200);
        let answers: Value = response.json().await.unwrap();
        let codes = codes(&answers);
        assert_eq!(codes.iter().filter(|c| c.is_empty()).count(), 6, "{answers}");
        assert_eq!(codes.iter().filter(|c| *c == "RATE_LIMITED").count(), 2, "{answers}");
        assert!(answers[7]["errors"][0]["extensions"]["retryAfterSeconds"].as_u64().unwrap() >= 1);
        // Nothing left: the whole request is refused with 429 and Retry-After.
        let refused = app.post_from(address(1), &headers, &json!({ "query": ME })).await;
        assert_eq!(refused.status(), 429);
        assert!(refused.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(refused.headers()["ratelimit-remaining"], "0");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(error_code(&body), "RATE_LIMITED");
        // The rate comes back: 5 per second.
        tokio::time::sleep(Duration::from_millis(450)).await;
        let again = app.post_from(address(1), &headers, &json!({ "query": ME })).await;
        assert_eq!(again.status(), 200);
        // Another user has a quota of its own.
        let admin = format!("Bearer {}", app.admin_token().await);
        let other = app.post_from(address(1), &[("authorization", admin.as_str())], &json!({ "query": ME })).await;
        assert_eq!(other.status(), 200);
    }
}

on_both_backends! {
    async fn anonymous_operations_count_per_client_address(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.limits.anonymous_rate = quota(0.5, 3))
            .spawn()
            .await;
        let login = json!({
            "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
            "variables": { "p": ADMIN_PASSWORD }
        });
        for _ in 0..3 {
            assert_eq!(app.post_from(address(2), &[], &login).await.status(), 200);
        }
        assert_eq!(app.post_from(address(2), &[], &login).await.status(), 429);
        // Another client address is not held back by the first.
        let elsewhere = app.post_from(address(3), &[], &login).await;
        assert_eq!(elsewhere.status(), 200);
        let body: Value = elsewhere.json().await.unwrap();
        assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(|c| {
            c.limits.anonymous_rate = quota(0.5, 1);
            c.limits.trusted_proxies = vec!["127.0.0.4/32".parse().unwrap()];
        })
        .spawn()
        .await;
    let query = json!({ "query": "{ __typename }" });
    let client = |ip: &'static str| [("x-forwarded-for", ip)];
    // Through the proxy, each forwarded client has its own quota.
    assert_eq!(
        app.post_from(address(4), &client("198.51.100.1"), &query)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_from(address(4), &client("198.51.100.1"), &query)
            .await
            .status(),
        429
    );
    assert_eq!(
        app.post_from(address(4), &client("198.51.100.2"), &query)
            .await
            .status(),
        200
    );
    // From anyone else the header is the client's own word and counts for nothing.
    assert_eq!(
        app.post_from(address(5), &client("198.51.100.3"), &query)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_from(address(5), &client("198.51.100.4"), &query)
            .await
            .status(),
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_redis_share_the_limit() {
    let a = TestApp::builder(Backend::Postgres)
        .with_config(|c| c.limits.user_rate = quota(100.0, 100))
        .spawn()
        .await;
    let b = a
        .sibling()
        .with_config(|c| c.limits.user_rate = quota(100.0, 100))
        .spawn()
        .await;
    let viewer = a.user_with_role("shared", "VIEWER").await.1;
    let auth = format!("Bearer {viewer}");
    // 150 operations within a second, spread over both instances, in batches of 10.
    let batch = json!((0..10).map(|_| json!({ "query": ME })).collect::<Vec<_>>());
    let started = std::time::Instant::now();
    let sends = (0..15).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let (auth, batch) = (auth.clone(), batch.clone());
        async move {
            let response = app
                .post_from(address(6), &[("authorization", auth.as_str())], &batch)
                .await;
            match response.status().as_u16() {
                429 => 0,
                _ => {
                    let answers: Value = response.json().await.unwrap();
                    codes(&answers).iter().filter(|c| c.is_empty()).count()
                }
            }
        }
    });
    let passed: usize = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .sum();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "the 150 operations took {elapsed:?}"
    );
    // The burst of 100 plus what the rate refilled while they ran.
    let refill = (elapsed.as_secs_f64() * 100.0).ceil() as usize;
    assert!(
        (100..=100 + refill).contains(&passed),
        "{passed} of 150 passed in {elapsed:?}; the shared limit allows about 100"
    );
    assert!(a.state.rate_limits.refused() + b.state.rate_limits.refused() >= 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_local_limits_apply_and_nothing_fails_closed() {
    let proxy = RedisProxy::start().await;
    let redis_url = format!("redis://{}", proxy.addr);
    let app = TestApp::builder(Backend::Postgres)
        .with_config(move |c| {
            c.redis.url = Some(redis_url);
            c.limits.user_rate = quota(1.0, 4);
        })
        .spawn()
        .await;
    let viewer = app.user_with_role("steady", "VIEWER").await.1;
    proxy.set_down(true);
    // Sign-in and queries keep working while Redis is away; the limit is applied here.
    let login = app.login("steady", "steady-password-long").await;
    assert!(login["accessToken"].is_string());
    let mut passed = 0;
    for _ in 0..6 {
        let body = app.gql(Some(&viewer), ME, json!({})).await;
        match error_code(&body).as_str() {
            "" => passed += 1,
            "RATE_LIMITED" => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(passed, 4, "the local limit allows the burst of 4");
    assert!(app.state.rate_limits.fallbacks() > 0);
    proxy.set_down(false);
}

on_both_backends! {
    async fn each_websocket_subscription_counts_against_its_user(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.limits.user_rate = quota(0.5, 3))
            .spawn()
            .await;
        let viewer = app.user_with_role("live", "VIEWER").await.1;
        let mut socket = WsClient::ready(app.addr, bearer(&viewer)).await;
        for id in ["a", "b", "c"] {
            socket.subscribe(id, "subscription { nodeStatusChanged { nodeId } }", json!({})).await;
        }
        socket.subscribe("d", "subscription { nodeStatusChanged { nodeId } }", json!({})).await;
        let refused = socket.next_json().await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["id"], "d");
        assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    }
}

on_both_backends! {
    async fn a_caller_holds_a_bounded_number_of_websockets(backend) {
        let app = TestApp::builder(backend)
            .with_config(|c| c.limits.websockets_per_caller = 2)
            .spawn()
            .await;
        let viewer = app.user_with_role("tabs", "VIEWER").await.1;
        let first = WsClient::ready(app.addr, bearer(&viewer)).await;
        let _second = WsClient::ready(app.addr, bearer(&viewer)).await;
        let mut third = WsClient::connect(app.addr, "graphql-transport-ws").await;
        let (code, reason) = third.init_or_close(bearer(&viewer)).await.unwrap_err();
        assert_eq!(code, 4429, "{reason}");
        // A socket that closes frees its place.
        drop(first);
        let mut freed = false;
        for _ in 0..50 {
            let mut socket = WsClient::connect(app.addr, "graphql-transport-ws").await;
            if socket.init_or_close(bearer(&viewer)).await.is_ok_and(|a| a["type"] == "connection_ack") {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(freed, "a closed socket's place was never freed");
    }
}
