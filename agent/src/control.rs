//! Following what mailops decides for this node: `agentConfig` read over HTTP (at start and
//! after every reconnection), then `agentConfigChanged` over graphql-transport-ws; each new
//! version is applied and the outcome reported with `agentHeartbeat`. A failed apply is
//! reported and tried again with backoff until it succeeds or a newer version comes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue};

use crate::{
    apply::{AgentConfig, Applier},
    backoff::Backoff,
    client::{Client, websocket_endpoint},
};

const FIELDS: &str = "version pushIntervalSeconds ips { address status pool }";
const HEARTBEAT: &str = "mutation($agent: String, $applied: String, $error: String) {
    agentHeartbeat(agentVersion: $agent, appliedConfigVersion: $applied, configError: $error) { id } }";

/// How often the agent pings mailops over the WebSocket, and how long a silent socket is
/// trusted before it is dropped and opened again.
const KEEPALIVE: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(75);

/// What the agent tells mailops about the configuration with each heartbeat.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reported {
    /// The last version applied completely (files written, reload succeeded).
    pub applied: Option<String>,
    /// Why the newest version is not applied.
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct Control {
    pub client: Client,
    pub applier: Applier,
    pub reported: Arc<Mutex<Reported>>,
    /// mailops's push interval, for the collector when no flag sets it.
    pub push_interval: watch::Sender<Option<Duration>>,
}

impl Control {
    pub fn new(client: Client, applier: Applier) -> Control {
        Control {
            client,
            applier,
            reported: Arc::default(),
            push_interval: watch::channel(None).0,
        }
    }

    fn reported(&self) -> Reported {
        self.reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends a heartbeat with the version applied and the error, if any.
    pub async fn report(&self) {
        let reported = self.reported();
        let error: Option<String> = reported.error.map(|e| e.chars().take(1000).collect());
        let variables =
            json!({ "agent": crate::VERSION, "applied": reported.applied, "error": error });
        if let Err(failure) = self.client.run(HEARTBEAT, variables).await {
            tracing::debug!(%failure, "heartbeat not taken");
        }
    }

    /// Applies `config` unless it is applied already; remembers a failure in `pending`.
    async fn take(&self, config: AgentConfig, pending: &mut Option<AgentConfig>) {
        self.push_interval.send_replace(Some(Duration::from_secs(
            config.push_interval_seconds.max(1),
        )));
        let reported = self.reported();
        if reported.applied.as_deref() == Some(config.version.as_str()) && reported.error.is_none()
        {
            *pending = None;
            return;
        }
        let outcome = self.applier.apply(&config).await;
        {
            let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
            match &outcome {
                Ok(()) => {
                    tracing::info!(version = %config.version, ips = config.ips.len(), "configuration applied");
                    reported.applied = Some(config.version.clone());
                    reported.error = None;
                    *pending = None;
                }
                Err(error) => {
                    tracing::error!(version = %config.version, error, "configuration not applied; trying again");
                    reported.error = Some(error.clone());
                    *pending = Some(config);
                }
            }
        }
        self.report().await;
    }

    /// Follows the configuration until `stop` turns true.
    pub async fn follow(self, mut stop: watch::Receiver<bool>) {
        let mut reconnect = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut pending: Option<AgentConfig> = None;
        while !*stop.borrow() {
            let outcome = async {
                let data = self
                    .client
                    .run(&format!("{{ agentConfig {{ {FIELDS} }} }}"), json!({}))
                    .await
                    .map_err(|f| f.to_string())?;
                let config: AgentConfig = serde_json::from_value(data["agentConfig"].clone())
                    .map_err(|e| format!("agentConfig: {e}"))?;
                let known = config.version.clone();
                self.take(config, &mut pending).await;
                self.subscription(&known, &mut pending, &mut reconnect, &mut stop)
                    .await
            }
            .await;
            if let Err(reason) = outcome {
                let wait = reconnect.next_wait(None);
                tracing::warn!(
                    reason,
                    retry_in_ms = wait.as_millis() as u64,
                    "not following mailops's configuration"
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// One WebSocket: subscribes knowing `known`, applies each change; `Ok` when stopped.
    async fn subscription(
        &self,
        known: &str,
        pending: &mut Option<AgentConfig>,
        reconnect: &mut Backoff,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let url = websocket_endpoint(self.client.endpoint());
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("{url}: {e}"))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (mut socket, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .map_err(|_| format!("{url}: no answer within 10 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
        let send = |value: Value| Message::Text(value.to_string().into());
        socket
            .send(send(json!({ "type": "connection_init",
                "payload": { "Authorization": self.client.authorization() } })))
            .await
            .map_err(|e| e.to_string())?;
        socket
            .send(send(json!({ "id": "config", "type": "subscribe", "payload": {
                "query": format!("subscription($known: String) {{ agentConfigChanged(knownVersion: $known) {{ {FIELDS} }} }}"),
                "variables": { "known": known } } })))
            .await
            .map_err(|e| e.to_string())?;

        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        let mut last_heard = Instant::now();
        let mut retry = Backoff::new(Duration::from_secs(5), Duration::from_secs(120));
        let mut retry_wait = retry.next_wait(None);
        let mut retry_at = tokio::time::Instant::now() + retry_wait;
        loop {
            tokio::select! {
                message = socket.next() => {
                    last_heard = Instant::now();
                    let text = match message {
                        None => return Err("mailops closed the WebSocket".into()),
                        Some(Err(e)) => return Err(format!("WebSocket: {e}")),
                        Some(Ok(Message::Close(frame))) => {
                            return Err(format!("mailops closed the WebSocket: {}",
                                frame.map(|f| f.reason.to_string()).unwrap_or_default()));
                        }
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                    };
                    let message: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
                    match message["type"].as_str().unwrap_or_default() {
                        "connection_ack" => {
                            reconnect.succeeded();
                            tracing::info!("following mailops's configuration for this node");
                        }
                        "next" => {
                            let data = &message["payload"]["data"]["agentConfigChanged"];
                            let config: AgentConfig = serde_json::from_value(data.clone())
                                .map_err(|_| format!("agentConfigChanged: {}", message["payload"]))?;
                            self.take(config, pending).await;
                            if pending.is_some() {
                                retry = Backoff::new(Duration::from_secs(5), Duration::from_secs(120));
                                retry_wait = retry.next_wait(None);
                                retry_at = tokio::time::Instant::now() + retry_wait;
                            }
                        }
                        "ping" => {
                            socket.send(send(json!({ "type": "pong" }))).await.map_err(|e| e.to_string())?;
                        }
                        "pong" => {}
                        "error" => return Err(format!("agentConfigChanged refused: {}", message["payload"])),
                        "complete" => return Err("agentConfigChanged ended".into()),
                        other => tracing::debug!(r#type = other, "unexpected WebSocket message"),
                    }
                }
                _ = keepalive.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        return Err(format!("mailops said nothing for {SILENCE_LIMIT:?}"));
                    }
                    socket.send(send(json!({ "type": "ping" }))).await.map_err(|e| e.to_string())?;
                }
                _ = tokio::time::sleep_until(retry_at), if pending.is_some() => {
                    if let Some(config) = pending.clone() {
                        self.take(config, pending).await;
                    }
                    retry_wait = retry.next_wait(None);
                    retry_at = tokio::time::Instant::now() + retry_wait;
                }
                _ = stop.changed() => {
                    let _ = socket.close(None).await;
                    return Ok(());
                }
            }
        }
    }
}
