//! A WebSocket client speaking graphql-transport-ws (or the legacy graphql-ws) to a test
//! server, with the waits tests need: a message, a barrier, the close frame.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

const WAIT: Duration = Duration::from_secs(10);

/// A graphql-transport-ws (or graphql-ws) client over a real WebSocket.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages that arrived while waiting for a pong, in order.
    held: std::collections::VecDeque<Value>,
}

/// The upgrade request for mailops's WebSocket at `addr`, asking for `protocol`.
pub fn upgrade_request(
    addr: impl std::fmt::Display,
    protocol: &'static str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    request
}

impl WsClient {
    pub async fn connect(addr: std::net::SocketAddr, protocol: &'static str) -> WsClient {
        let (socket, response) = tokio_tungstenite::connect_async(upgrade_request(addr, protocol))
            .await
            .expect("upgrade");
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        WsClient {
            socket,
            held: Default::default(),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// Sends a text frame as it is, JSON or not.
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// Sends `connection_init` and returns the server's first answer.
    pub async fn init(&mut self, authorization: Option<String>) -> Value {
        let payload = match authorization {
            Some(a) => json!({ "Authorization": a }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        self.next_json().await
    }

    /// Sends `connection_init`: `Ok` with the server's answer, or `Err` with the close code
    /// and reason when the server closes instead.
    pub async fn init_or_close(
        &mut self,
        authorization: Option<String>,
    ) -> Result<Value, (u16, String)> {
        let payload = match authorization {
            Some(a) => json!({ "Authorization": a }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("an answer within 10 s");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("JSON message"));
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Err((frame.code.into(), frame.reason.to_string()));
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    return Err((0, "closed without a close frame".into()));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Connects with graphql-transport-ws and expects `connection_ack`.
    pub async fn ready(addr: std::net::SocketAddr, authorization: Option<String>) -> WsClient {
        let mut client = WsClient::connect(addr, "graphql-transport-ws").await;
        let ack = client.init(authorization).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    /// Starts an operation, then waits until the server has started it: the server answers
    /// a ping only after it has polled the operations received before it.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
        self.send(json!({ "type": "ping" })).await;
    }

    /// The next text message.
    pub async fn next_message(&mut self) -> Value {
        if let Some(held) = self.held.pop_front() {
            return held;
        }
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message within 10 s")
                .expect("socket open")
                .expect("valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON message"),
                Message::Close(frame) => panic!("closed unexpectedly: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The next text message, skipping pongs.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let value = self.next_message().await;
            if value["type"] != "pong" {
                return value;
            }
        }
    }

    /// Waits until the server answers a ping: everything sent before it has been handled.
    pub async fn barrier(&mut self) {
        self.send(json!({ "type": "ping" })).await;
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a pong within 10 s")
                .expect("socket open")
                .expect("valid frame");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "pong" {
                    return;
                }
                self.held.push_back(value);
            }
        }
    }

    /// Reads until the server closes; returns its close code and reason.
    pub async fn close_frame(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("the server closes within 10 s");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    panic!("closed without a close frame")
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The `Authorization` of a `connection_init` for a user's access token.
pub fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}
