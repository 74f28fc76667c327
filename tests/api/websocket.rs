use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};

use testkit::on_both_backends;
use testkit::{TestApp, token_of, ws::upgrade_request};

async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("socket open")
            .expect("valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON message");
        }
    }
}

on_both_backends! {
    async fn the_websocket_speaks_graphql_transport_ws_with_the_callers_identity(backend) {
        let app = TestApp::spawn(backend).await;
        let token = token_of(&app.login("admin", testkit::ADMIN_PASSWORD).await);
        let (mut socket, response) = tokio_tungstenite::connect_async(upgrade_request(app.addr, "graphql-transport-ws")).await.expect("upgrade");
        assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-transport-ws");

        socket.send(Message::text(json!({
            "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") }
        }).to_string())).await.unwrap();
        assert_eq!(next_json(&mut socket).await["type"], "connection_ack");

        socket.send(Message::text(json!({
            "id": "1", "type": "subscribe", "payload": { "query": "{ me { username role } }" }
        }).to_string())).await.unwrap();
        let next = next_json(&mut socket).await;
        assert_eq!(next["type"], "next", "{next}");
        assert_eq!(next["payload"]["data"]["me"]["username"], "admin");
        assert_eq!(next_json(&mut socket).await["type"], "complete");
    }
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let app = TestApp::spawn(testkit::Backend::Sqlite).await;
    let mut request = upgrade_request(app.addr, "graphql-transport-ws");
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_static("https://evil.example"));
    let refused = tokio_tungstenite::connect_async(request).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test]
async fn a_websocket_message_over_64_kib_closes_the_socket() {
    let app = TestApp::spawn(testkit::Backend::Sqlite).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(upgrade_request(app.addr, "graphql-transport-ws"))
            .await
            .expect("upgrade");
    socket
        .send(Message::text(
            json!({ "type": "connection_init", "payload": {} }).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");

    let huge = json!({ "id": "1", "type": "subscribe", "payload": { "query": format!("{{ me {{ id }} }} #{}", "x".repeat(70 * 1024)) } });
    let _ = socket.send(Message::text(huge.to_string())).await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(Message::Text(text))) => {
                    let reply: Value = serde_json::from_str(&text).unwrap();
                    assert_ne!(reply["type"], "next", "an oversized message was executed");
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the server closes the socket");
    assert!(closed);
}
