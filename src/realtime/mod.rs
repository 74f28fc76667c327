//! Events about committed changes, fanned out to whoever listens in this process.
//!
//! Every event is serialized once when it is published; listeners share that JSON.
//! A listener that falls behind loses the oldest events (and is told so by the channel),
//! it never makes the publisher wait or buffer without bound.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Events kept for a slow listener before it starts losing the oldest.
const CHANNEL_CAPACITY: usize = 1024;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    NodeStatusChanged(NodeStatusChanged),
    MetricsIngested(MetricsIngested),
    IpReputationChanged(IpReputationChanged),
}

/// An IP's standing on a DNSBL zone changed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpReputationChanged {
    pub address: String,
    pub node_id: Option<Uuid>,
    pub zone: String,
    /// Whether the zone lists the IP (an UNKNOWN result keeps the last definite answer).
    pub listed: bool,
    /// LISTED, CLEAR or UNKNOWN.
    pub state: String,
    /// `None` for the first result of the IP on the zone.
    pub previous_state: Option<String>,
    /// The zone's TXT record for a listing, or why the result is UNKNOWN.
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A committed metrics batch.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsIngested {
    pub node_id: Uuid,
    pub hostname: String,
    pub batch_id: String,
    pub samples: i32,
    /// The metric names in the batch (the first 64, sorted).
    pub names: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusChanged {
    pub node_id: Uuid,
    pub hostname: String,
    /// `None` for a node's first status.
    pub from: Option<String>,
    pub to: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// An event and its JSON, made once.
#[derive(Debug)]
pub struct Published {
    pub sequence: u64,
    pub event: Event,
    pub json: Arc<str>,
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Published>>,
    sequence: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::channel(CHANNEL_CAPACITY).0,
            sequence: Arc::default(),
        }
    }
}

impl EventBus {
    /// Publishes an event. Call it only after the change it describes is committed.
    pub fn publish(&self, event: Event) {
        let json = match serde_json::to_string(&event) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "an event could not be serialized");
                return;
            }
        };
        let sequence = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        // No listener is not an error.
        let _ = self.sender.send(Arc::new(Published {
            sequence,
            event,
            json: json.into(),
        }));
    }

    /// Publishes each event in order; for the events a transaction collected, after it
    /// committed.
    pub fn publish_all(&self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.publish(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }
}
