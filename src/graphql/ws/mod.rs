//! One WebSocket connection on `/graphql/ws`, speaking graphql-transport-ws (the protocol of
//! the `graphql-ws` client, Apollo Client and urql) or the legacy `graphql-ws` subprotocol
//! of subscriptions-transport-ws.
//!
//! async-graphql's own WebSocket handler does not close with the protocol's codes on every
//! path and knows nothing of token expiry or revoked sessions, so the protocol is spoken
//! here and only execution is left to the schema. One task per connection; it writes as it
//! goes, so a client that stops reading stops its subscriptions from being polled and they
//! lag behind the bus instead of piling up in memory.

use std::{sync::Arc, time::Duration};

use async_graphql::{Request, Response};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::Utc;
use futures_util::{StreamExt as _, stream::BoxStream};
use serde_json::{Value, json};
use tokio::{sync::broadcast, time::Instant};
use tokio_stream::StreamMap;

use crate::{
    auth::{ClientAddr, Principal, RequestId},
    error::{code, finish_errors, rate_limited_error, server_error},
    graphql::{
        AppSchema,
        http::rate_caller,
        operations::{OperationLog, kind_of_text},
    },
    ratelimit::Caller,
    realtime::CredentialHolder,
    state::AppState,
};
use secrecy::{ExposeSecret as _, SecretString};

mod protocol;

pub use protocol::{Protocol, close};

use super::shared::{Item, SharedSubscriptions};
use super::sockets::{SocketCounts, SocketSlot};
use crate::realtime::SessionsRevoked;

/// How long a client has to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Operations one connection may run at once.
pub const MAX_OPERATIONS: usize = 100;
/// Longest operation id accepted.
const MAX_ID_BYTES: usize = 128;

/// Why the connection ends: a close code and reason for the client.
struct Close(u16, String);

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Close {
        Close(code, reason.into())
    }
}

struct Session {
    principal: Principal,
    /// The credentials whose revocation ends this socket.
    holders: Vec<CredentialHolder>,
    expires_at: Option<Instant>,
    revocations: Option<broadcast::Receiver<Arc<SessionsRevoked>>>,
    /// What the rate limits count this socket's operations against.
    caller: Caller,
    /// The `Authorization` value of `connection_init`, to check again later.
    authorization: Option<SecretString>,
    /// Holds this socket's place among its caller's open sockets.
    _slot: SocketSlot,
}

/// What a socket's handler needs besides the socket: the state, the schema, and who
/// connected.
pub struct SocketContext {
    pub app: AppState,
    pub schema: AppSchema,
    pub shared: SharedSubscriptions,
    pub counts: SocketCounts,
    pub request_id: RequestId,
    pub client: ClientAddr,
}

struct Connection {
    socket: WebSocket,
    protocol: Protocol,
    app: AppState,
    schema: AppSchema,
    shared: SharedSubscriptions,
    counts: SocketCounts,
    request_id: RequestId,
    client: ClientAddr,
    session: Option<Session>,
    operations: StreamMap<String, BoxStream<'static, Option<Item>>>,
    /// Ids whose first response has not been sent: a failure there is an `error` message.
    not_started: std::collections::HashSet<String>,
    /// The log line of each operation, written with its first response.
    logs: std::collections::HashMap<String, OperationLog>,
    last_heard: Instant,
}

/// Serves one upgraded socket until either side closes it.
pub async fn serve(socket: WebSocket, protocol: Protocol, context: SocketContext) {
    let SocketContext {
        app,
        schema,
        shared,
        counts,
        request_id,
        client,
    } = context;
    let mut connection = Connection {
        socket,
        protocol,
        app,
        schema,
        shared,
        counts,
        request_id,
        client,
        session: None,
        operations: StreamMap::new(),
        not_started: Default::default(),
        logs: Default::default(),
        last_heard: Instant::now(),
    };
    crate::telemetry::websocket_opened();
    let outcome = connection.run().await;
    crate::telemetry::websocket_closed();
    crate::telemetry::subscriptions_changed(-(connection.operations.len() as f64));
    if let Err(Close(code, reason)) = outcome {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = connection.socket.send(Message::Close(Some(frame))).await;
    }
}

async fn revoked(
    revocations: &mut Option<broadcast::Receiver<Arc<SessionsRevoked>>>,
    holders: &[CredentialHolder],
) -> String {
    let Some(receiver) = revocations else {
        return std::future::pending().await;
    };
    loop {
        match receiver.recv().await {
            Ok(revoked) if holders.contains(&revoked.holder) => return revoked.reason.clone(),
            Ok(_) => {}
            // Too many revocations went by to know whether ours was one.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                return "sessions changed; reconnect".into();
            }
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn run(&mut self) -> Result<(), Close> {
        let init_deadline = Instant::now() + INIT_TIMEOUT;
        let ping_every = self.app.config.realtime.ws_ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut stopping = self.app.stopping.clone();
        let mut closing = *stopping.borrow();
        loop {
            // Shutting down: the socket closes once every query and mutation under way has
            // answered; subscriptions end here.
            if closing && self.logs.values().all(|log| log.kind() == "subscription") {
                return Err(Close::new(close::GOING_AWAY, "server shutting down"));
            }
            let (expires_at, holders) = self
                .session
                .as_ref()
                .map_or((None, Vec::new()), |s| (s.expires_at, s.holders.clone()));
            let awaiting_init = self.session.is_none();
            let mut revocations = self.session.as_mut().and_then(|s| s.revocations.take());
            let has_operations = !self.operations.is_empty();
            // Control first, then responses before new client messages: an operation's
            // first answer (a guard's refusal, say) goes out before what the client sent
            // after it is read.
            let step = tokio::select! {
                biased;
                reason = revoked(&mut revocations, &holders) => Step::Revoked(reason),
                () = until(expires_at) => Step::Expired,
                () = until(Some(init_deadline)), if awaiting_init => Step::InitTimeout,
                _ = stopping.changed(), if !closing => Step::Stopping,
                _ = ping.tick() => Step::Ping,
                Some((id, response)) = self.operations.next(), if has_operations => {
                    Step::Response(id, response)
                }
                incoming = self.socket.recv() => Step::Incoming(incoming),
            };
            if let Some(session) = &mut self.session
                && session.revocations.is_none()
            {
                session.revocations = revocations;
            }
            match step {
                Step::Incoming(None) => return Ok(()),
                Step::Incoming(Some(Err(e))) => {
                    tracing::debug!(error = %e, "websocket read failed");
                    return Err(Close::new(
                        close::BAD_MESSAGE,
                        "message too large or malformed",
                    ));
                }
                Step::Incoming(Some(Ok(message))) => {
                    self.last_heard = Instant::now();
                    if !self.on_message(message).await? {
                        return Ok(());
                    }
                }
                Step::Response(id, response) => self.on_response(id, response).await?,
                Step::InitTimeout => {
                    return Err(Close::new(
                        close::INIT_TIMEOUT,
                        "Connection initialisation timeout",
                    ));
                }
                Step::Expired => {
                    return Err(Close::new(close::FORBIDDEN, "access token has expired"));
                }
                Step::Revoked(reason) => return Err(Close::new(close::FORBIDDEN, reason)),
                Step::Stopping => closing = true,
                Step::Ping => {
                    if self.last_heard.elapsed() > ping_every * 2 {
                        return Err(Close::new(close::GOING_AWAY, "no answer to pings"));
                    }
                    self.check_credentials_again().await?;
                    self.send(Message::Ping(Default::default())).await?;
                    if self.protocol == Protocol::LegacyWs && self.session.is_some() {
                        self.send_json(json!({ "type": "ka" })).await?;
                    }
                }
            }
        }
    }

    /// Without Redis, revocations made outside this process (the CLI's `user passwd`)
    /// reach no bus this socket listens to; so at every ping the socket's credentials are
    /// checked again, and a socket whose credentials no longer work is closed.
    async fn check_credentials_again(&mut self) -> Result<(), Close> {
        if self.app.redis.is_some() {
            return Ok(());
        }
        let Some(authorization) = self.session.as_ref().and_then(|s| s.authorization.clone())
        else {
            return Ok(());
        };
        match Principal::resolve(&self.app, Some(authorization.expose_secret())).await {
            Ok(Principal::Refused(reason)) => Err(Close::new(close::FORBIDDEN, reason)),
            // A database that does not answer now is no reason to drop the client.
            _ => Ok(()),
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), Close> {
        self.socket
            .send(message)
            .await
            .map_err(|_| Close::new(close::GOING_AWAY, "write failed"))
    }

    async fn send_json(&mut self, value: Value) -> Result<(), Close> {
        self.send(Message::Text(value.to_string().into())).await
    }

    /// Handles one client message; `Ok(false)` ends the connection normally.
    async fn on_message(&mut self, message: Message) -> Result<bool, Close> {
        let text = match message {
            Message::Text(text) => text,
            Message::Ping(_) | Message::Pong(_) => return Ok(true),
            Message::Close(_) => return Ok(false),
            Message::Binary(_) => {
                return Err(Close::new(
                    close::BAD_MESSAGE,
                    "binary messages are not accepted",
                ));
            }
        };
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(&text) else {
            return Err(Close::new(
                close::BAD_MESSAGE,
                "Invalid message received: not a JSON object",
            ));
        };
        let kind = message
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let payload = message.remove("payload");
        let id = message.get("id").and_then(Value::as_str).map(str::to_owned);
        match (self.protocol, kind.as_str()) {
            (_, "connection_init") => self.on_init(payload).await?,
            (Protocol::TransportWs, "ping") => {
                self.send_json(json!({ "type": "pong" })).await?;
            }
            (Protocol::TransportWs, "pong") => {}
            (Protocol::TransportWs, "subscribe") | (Protocol::LegacyWs, "start") => {
                self.on_subscribe(id, payload).await?;
            }
            (Protocol::TransportWs, "complete") | (Protocol::LegacyWs, "stop") => {
                let id = id.ok_or_else(|| {
                    Close::new(
                        close::BAD_MESSAGE,
                        "Invalid message received: id is missing",
                    )
                })?;
                let was_running = self.remove_operation(&id);
                self.not_started.remove(&id);
                self.logs.remove(&id);
                if was_running && self.protocol == Protocol::LegacyWs {
                    self.send_json(json!({ "id": id, "type": "complete" }))
                        .await?;
                }
            }
            (Protocol::LegacyWs, "connection_terminate") => {
                return Err(Close::new(close::NORMAL, "terminated"));
            }
            _ => {
                return Err(Close::new(
                    close::BAD_MESSAGE,
                    format!("Invalid message received: unknown type '{kind}'"),
                ));
            }
        }
        Ok(true)
    }

    async fn on_init(&mut self, payload: Option<Value>) -> Result<(), Close> {
        if self.session.is_some() {
            return Err(Close::new(
                close::TOO_MANY_INITS,
                "Too many initialisation requests",
            ));
        }
        let authorization = payload.as_ref().and_then(|p| {
            p.get("Authorization")
                .or_else(|| p.get("authorization"))
                .and_then(Value::as_str)
        });
        let principal = match Principal::resolve(&self.app, authorization).await {
            Ok(principal) => principal,
            Err(error) => {
                let message = error.client_message();
                drop(async_graphql::Error::from(error));
                return Err(Close::new(close::INTERNAL, message));
            }
        };
        if let Principal::Refused(reason) = principal {
            if self.protocol == Protocol::LegacyWs {
                self.send_json(
                    json!({ "type": "connection_error", "payload": { "message": reason } }),
                )
                .await?;
            }
            return Err(Close::new(close::FORBIDDEN, reason));
        }
        let caller = rate_caller(&principal, self.client);
        let limit = self.app.config.limits.websockets_per_caller;
        let Some(slot) = self.counts.take(&caller, limit) else {
            return Err(Close::new(
                close::TOO_MANY_INITS,
                format!(
                    "this caller has {limit} WebSockets open already (MAILOPS_WEBSOCKETS_PER_CALLER)"
                ),
            ));
        };
        let (holders, expires_at) = match &principal {
            Principal::User(user) => {
                let expires_at = authorization
                    .and_then(|a| a.trim().split_once(' '))
                    .and_then(|(_, token)| self.app.tokens.access_expiry(token.trim()))
                    .map(|at| {
                        let left = (at - Utc::now()).to_std().unwrap_or_default();
                        Instant::now() + left
                    });
                (vec![CredentialHolder::User(user.id)], expires_at)
            }
            Principal::Agent(agent) => (
                vec![
                    CredentialHolder::NodeKey(agent.key_id),
                    CredentialHolder::Node(agent.node_id),
                ],
                None,
            ),
            _ => (Vec::new(), None),
        };
        self.session = Some(Session {
            principal,
            revocations: (!holders.is_empty()).then(|| self.app.events.revocations()),
            holders,
            expires_at,
            caller,
            authorization: authorization.map(|a| SecretString::from(a.to_owned())),
            _slot: slot,
        });
        self.send_json(json!({ "type": "connection_ack" })).await?;
        if self.protocol == Protocol::LegacyWs {
            self.send_json(json!({ "type": "ka" })).await?;
        }
        Ok(())
    }

    async fn on_subscribe(
        &mut self,
        id: Option<String>,
        payload: Option<Value>,
    ) -> Result<(), Close> {
        let Some(session) = &self.session else {
            return Err(Close::new(close::UNAUTHORIZED, "Unauthorized"));
        };
        let id = id
            .filter(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES)
            .ok_or_else(|| {
                Close::new(
                    close::BAD_MESSAGE,
                    "Invalid message received: id is missing or too long",
                )
            })?;
        if self.operations.contains_key(&id) {
            return Err(Close::new(
                close::DUPLICATE_ID,
                format!("Subscriber for {id} already exists"),
            ));
        }
        let request: Request = payload
            .and_then(|p| serde_json::from_value(p).ok())
            .ok_or_else(|| {
                Close::new(
                    close::BAD_MESSAGE,
                    "Invalid message received: payload is not a GraphQL request",
                )
            })?;
        let log = OperationLog::start(
            &self.request_id.0,
            request.operation_name.as_deref(),
            kind_of_text(&request.query),
            &session.principal,
            self.client.0,
        );
        let admission = self.app.rate_limits.admit(&session.caller, 1).await;
        if admission.allowed == 0 {
            let mut errors = vec![rate_limited_error(
                "too many operations; retry shortly",
                admission.retry_after,
            )];
            finish_errors(&mut errors, &self.request_id.0);
            log.finish(&errors);
            return self.send_errors(&id, &errors).await;
        }
        if self.operations.len() >= MAX_OPERATIONS {
            let mut errors = vec![server_error(
                code::RATE_LIMITED,
                format!("at most {MAX_OPERATIONS} operations may run at once on one connection"),
            )];
            finish_errors(&mut errors, &self.request_id.0);
            return self.send_errors(&id, &errors).await;
        }
        let request = request
            .data(session.principal.clone())
            .data(self.request_id.clone())
            .data(self.client)
            .data(crate::input::PointBudget::default());
        let stream = self
            .shared
            .execute(&self.schema, &session.principal, request)
            .map(Some)
            .chain(futures_util::stream::once(std::future::ready(None)))
            .boxed();
        self.not_started.insert(id.clone());
        self.logs.insert(id.clone(), log);
        crate::telemetry::subscriptions_changed(1.0);
        self.operations.insert(id, stream);
        Ok(())
    }

    /// Ends an operation; whether it was running.
    fn remove_operation(&mut self, id: &str) -> bool {
        let removed = self.operations.remove(id).is_some();
        if removed {
            crate::telemetry::subscriptions_changed(-1.0);
        }
        removed
    }

    async fn send_errors(
        &mut self,
        id: &str,
        errors: &[async_graphql::ServerError],
    ) -> Result<(), Close> {
        match self.protocol {
            Protocol::TransportWs => {
                self.send_json(json!({ "id": id, "type": "error", "payload": errors }))
                    .await
            }
            Protocol::LegacyWs => {
                self.send_json(json!({ "id": id, "type": "data", "payload": { "data": null, "errors": errors } }))
                    .await?;
                self.send_json(json!({ "id": id, "type": "complete" }))
                    .await
            }
        }
    }

    async fn on_response(&mut self, id: String, item: Option<Item>) -> Result<(), Close> {
        let first = self.not_started.remove(&id);
        let log = self.logs.remove(&id);
        if let Some(log) = log {
            match &item {
                Some(Item::Own(response)) => log.finish(&response.errors),
                Some(Item::Shared(shared)) => log.finish(&shared.response.errors),
                None => log.finish(&[]),
            }
        }
        let mut response = match item {
            None => {
                self.remove_operation(&id);
                return self
                    .send_json(json!({ "id": id, "type": "complete" }))
                    .await;
            }
            Some(Item::Own(response)) => *response,
            Some(Item::Shared(shared)) => match &shared.json {
                Some(payload) => {
                    // Built around the group's JSON, so the payload is not serialized again.
                    let id_json = serde_json::to_string(&id).unwrap_or_default();
                    let message = format!(
                        r#"{{"id":{id_json},"type":"{}","payload":{payload}}}"#,
                        self.protocol.data_type()
                    );
                    return self.send(Message::Text(message.into())).await;
                }
                None => {
                    let mut response = Response::from_errors(shared.response.errors.clone());
                    response.data = shared.response.data.clone();
                    response
                }
            },
        };
        finish_errors(&mut response.errors, &self.request_id.0);
        let refused = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && !response.errors.iter().any(is_lag_notice);
        if first && refused {
            // Refused before it ran (validation, a guard, bad arguments): the protocol's
            // `error`, and the operation is over.
            self.remove_operation(&id);
            return self.send_errors(&id, &response.errors).await;
        }
        let message = json!({ "id": id, "type": self.protocol.data_type(), "payload": response });
        self.send_json(message).await
    }
}

fn is_lag_notice(error: &async_graphql::ServerError) -> bool {
    error
        .extensions
        .as_ref()
        .and_then(|ext| ext.get("code"))
        .is_some_and(|code| *code == async_graphql::Value::from(super::realtime::resolvers::LAGGED))
}

enum Step {
    Stopping,
    Incoming(Option<Result<Message, axum::Error>>),
    Response(String, Option<Item>),
    InitTimeout,
    Expired,
    Revoked(String),
    Ping,
}
