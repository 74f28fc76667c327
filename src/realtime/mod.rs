//! Events about committed changes, fanned out to every subscriber of every instance.
//!
//! Every event is serialized once when it is published and gets a sequence number. In
//! embedded mode the sequence is a counter of this process and events go straight to this
//! process's listeners; with `REDIS_URL` they travel through a Redis stream (see
//! [`redis_bus`]), which numbers them for the whole cluster and which one reader per
//! instance fans out to that instance's listeners.
//!
//! Each instance keeps the events of the last few minutes (`MAILOPS_EVENT_REPLAY_WINDOW`,
//! at most `MAILOPS_EVENT_REPLAY_MAX` of them) so that a subscription can resume after a
//! sequence number. A listener that falls behind the shared channel is told that it lagged
//! and is dropped: it never makes the publisher wait or buffer without bound.

pub mod after_commit;
mod redis_bus;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::mailflow::MailCounts;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    NodeStatusChanged(NodeStatusChanged),
    MetricsIngested(MetricsIngested),
    IpReputationChanged(IpReputationChanged),
    AlertEvent(AlertEvent),
    /// A committed batch of mail events; the mail flow ticker folds these into ticks.
    MailEventsIngested(MailEventsIngested),
    MailFlowTick(MailFlowTick),
    AuditRecorded(AuditRecorded),
    /// A user's sessions ended (logout, disabled, role or password changed), or a node's
    /// key was revoked or replaced: their open WebSockets close. Never shown to a
    /// subscription.
    SessionsRevoked(SessionsRevoked),
    /// What the agents of these nodes apply changed (an IP's status, pool or node): their
    /// `agentConfigChanged` subscriptions look again. Never shown to users.
    IpsChanged(IpsChanged),
}

/// Nodes whose IPs changed; the subscription reads the new configuration itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpsChanged {
    pub node_ids: Vec<Uuid>,
}

impl IpsChanged {
    /// The event for the nodes given (once each, in order), or none when there are none.
    pub fn of(node_ids: impl IntoIterator<Item = Uuid>) -> Option<Event> {
        let mut node_ids: Vec<Uuid> = node_ids.into_iter().collect();
        node_ids.sort_unstable();
        node_ids.dedup();
        (!node_ids.is_empty()).then_some(Event::IpsChanged(IpsChanged { node_ids }))
    }
}

/// A committed metrics batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsIngested {
    pub node_id: Uuid,
    pub hostname: String,
    pub batch_id: String,
    pub samples: i32,
    /// The metric names in the batch (the first 64, sorted).
    pub names: Vec<String>,
    /// The newest sample of each series in the batch (the first 256 series, by name and
    /// labels), so live views need not re-query.
    #[serde(default)]
    pub readings: Vec<SeriesReading>,
}

/// The newest sample of one series in a committed batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesReading {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub ts: DateTime<Utc>,
    pub value: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusChanged {
    pub node_id: Uuid,
    pub hostname: String,
    /// `None` for a node's first status.
    pub from: Option<crate::nodes::NodeStatus>,
    pub to: crate::nodes::NodeStatus,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A sending IP's listing on a DNS blocklist zone changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// An alert changed state (PENDING → FIRING → RESOLVED) or was acknowledged.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    pub alert_id: Uuid,
    pub rule_id: Uuid,
    /// The rule's name.
    pub rule: String,
    /// `WARNING` or `CRITICAL`.
    pub severity: String,
    /// `PENDING`, `FIRING` or `RESOLVED`, after the change.
    pub state: String,
    /// The state before; `None` for a new alert. Equal to `state` for an acknowledgement.
    pub previous_state: Option<String>,
    pub acknowledged: bool,
    /// Whether a silence covers the alert.
    pub silenced: bool,
    pub node_id: Option<Uuid>,
    pub ip: Option<String>,
    pub value: Option<f64>,
    pub threshold: f64,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// A committed batch of mail events, counted by status.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailEventsIngested {
    pub node_id: Uuid,
    pub batch_id: String,
    pub counts: MailCounts,
    /// When the batch committed.
    pub at: DateTime<Utc>,
}

/// The mail events committed in one second, for the cluster and per node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFlowTick {
    /// The start of the second the counters cover.
    pub second: DateTime<Utc>,
    /// The whole cluster's counts.
    pub counts: MailCounts,
    /// The counts of each node that committed events in that second.
    pub nodes: Vec<(Uuid, MailCounts)>,
}

impl MailFlowTick {
    /// A tick of this second counting only `queued` messages, for the whole cluster: what a
    /// test publishes to follow a subscription.
    pub fn queued_now(queued: i64) -> Event {
        Event::MailFlowTick(MailFlowTick {
            second: Utc::now(),
            counts: MailCounts {
                queued,
                ..MailCounts::default()
            },
            nodes: Vec::new(),
        })
    }
}

/// An audit entry, as committed (the same JSON as before it was a row: camelCase fields).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditRecorded(pub entity::audit_log::Model);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsRevoked {
    pub holder: CredentialHolder,
    /// Shown as the close reason of the holder's WebSockets.
    pub reason: String,
}

/// Whose credentials a revocation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "camelCase")]
pub enum CredentialHolder {
    /// Every session of a user.
    User(Uuid),
    /// One node key.
    NodeKey(Uuid),
    /// Every key of a node.
    Node(Uuid),
}

/// An event, its sequence number and its JSON, made once.
#[derive(Debug)]
pub struct Published {
    pub sequence: u64,
    /// The first sequence of the numbering this event belongs to; a new epoch starts when
    /// the numbering starts over (Redis lost its data, or this process restarted), with
    /// sequences above those of the epochs before.
    pub epoch: u64,
    pub event: Event,
    pub json: Arc<str>,
    /// When this instance received it; the replay window is measured from here.
    pub received_at: std::time::Instant,
}

/// An event's place in the cluster's order.
#[derive(Clone, Copy, Debug)]
struct Numbered {
    sequence: u64,
    epoch: u64,
}

/// Where a new numbering starts: the current time in ms × 1024, above every sequence of
/// an earlier numbering that gave out fewer than 1,024 numbers per ms, and below 2^53 (the
/// largest whole number a JavaScript client reads exactly) until the year 2248.
pub fn new_epoch() -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now_ms.saturating_mul(1024)
}

/// What a subscription receives: events in sequence order, or the news that it missed some.
#[derive(Clone, Debug)]
pub enum Delivery {
    Event(Arc<Published>),
    /// Events after `last_sequence` were lost to this subscriber; it ends here and the
    /// client re-queries (or resubscribes with `after: last_sequence`).
    Lagged {
        last_sequence: u64,
        missed: u64,
    },
}

/// How long and how many events each instance keeps for `after:`, and how far a listener
/// may fall behind.
#[derive(Clone, Copy, Debug)]
pub struct BusLimits {
    pub replay_window: Duration,
    pub replay_max: usize,
    pub subscriber_buffer: usize,
}

impl Default for BusLimits {
    fn default() -> Self {
        BusLimits {
            replay_window: Duration::from_secs(300),
            replay_max: 10_000,
            subscriber_buffer: 1024,
        }
    }
}

/// Revocations kept for WebSockets that have not looked yet; they are rare.
const REVOCATION_CAPACITY: usize = 256;

struct Shared {
    events: broadcast::Sender<Arc<Published>>,
    revocations: broadcast::Sender<Arc<SessionsRevoked>>,
    replay: Mutex<VecDeque<Arc<Published>>>,
    limits: BusLimits,
    transport: Transport,
}

enum Transport {
    Local {
        epoch: u64,
        sequence: AtomicU64,
    },
    Redis {
        outbox: mpsc::Sender<redis_bus::Outgoing>,
    },
}

#[derive(Clone)]
pub struct EventBus {
    shared: Arc<Shared>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::local(BusLimits::default())
    }
}

impl EventBus {
    /// The in-process bus of embedded mode.
    pub fn local(limits: BusLimits) -> Self {
        // Numbered from a new epoch, so that a client resuming with `after:` from before
        // a restart of this process neither skips new events nor waits for old numbers.
        let epoch = new_epoch();
        EventBus::with_transport(
            limits,
            Transport::Local {
                epoch,
                sequence: AtomicU64::new(epoch),
            },
        )
    }

    /// A bus whose events travel through Redis, so every instance sees every event. Starts
    /// this instance's publisher and its one reader; neither needs Redis to be up yet.
    pub fn redis(limits: BusLimits, client: redis::Client, prefix: &str) -> Self {
        let (outbox, pending) = mpsc::channel(redis_bus::OUTBOX_CAPACITY);
        let bus = EventBus::with_transport(limits, Transport::Redis { outbox });
        let keys = redis_bus::Keys::new(prefix);
        tokio::spawn(redis_bus::publish_loop(
            client.clone(),
            keys.clone(),
            limits.replay_max,
            limits.replay_window,
            pending,
        ));
        tokio::spawn(redis_bus::read_loop(
            client,
            keys,
            limits.replay_window,
            Arc::downgrade(&bus.shared),
        ));
        bus
    }

    /// Publishes one event through Redis from a process that runs no bus (the CLI), so
    /// that every instance sees it; waits until Redis has it.
    pub async fn publish_once(
        client: &redis::Client,
        prefix: &str,
        limits: BusLimits,
        event: &Event,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(event)?;
        redis_bus::append_once(
            client,
            &redis_bus::Keys::new(prefix),
            limits.replay_max,
            &json,
        )
        .await?;
        Ok(())
    }

    fn with_transport(limits: BusLimits, transport: Transport) -> Self {
        EventBus {
            shared: Arc::new(Shared {
                events: broadcast::channel(limits.subscriber_buffer.max(1)).0,
                revocations: broadcast::channel(REVOCATION_CAPACITY).0,
                replay: Mutex::new(VecDeque::new()),
                limits,
                transport,
            }),
        }
    }

    /// Publishes an event. Call it only after the change it describes is committed. Never
    /// waits: when Redis is unreachable and the outbox is full the event is dropped (and
    /// logged), so queries and ingestion carry on.
    pub fn publish(&self, event: Event) {
        let json: Arc<str> = match serde_json::to_string(&event) {
            Ok(json) => json.into(),
            Err(e) => {
                tracing::error!(error = %e, "an event could not be serialized");
                return;
            }
        };
        match &self.shared.transport {
            Transport::Local { epoch, sequence } => {
                // The first event of an epoch is numbered with the epoch itself.
                let sequence = sequence.fetch_add(1, Ordering::Relaxed);
                let number = Numbered {
                    sequence,
                    epoch: *epoch,
                };
                self.shared.deliver(number, event, json);
            }
            Transport::Redis { outbox } => {
                let outgoing = redis_bus::Outgoing {
                    id: Uuid::now_v7(),
                    json,
                    confirm: None,
                };
                if outbox.try_send(outgoing).is_err() {
                    tracing::warn!(
                        "event outbox is full (Redis unreachable?); an event was dropped"
                    );
                }
            }
        }
    }

    /// Publishes an event and waits (at most `within`) until Redis has it, so that an
    /// answer sent after this (an agent's acknowledgement) implies subscribers on every
    /// instance will hear of it, even if this process dies right after. Without Redis it is
    /// delivered at once. When Redis does not answer in time the event stays queued and
    /// the caller goes on.
    pub async fn publish_confirmed(&self, event: Event, within: Duration) {
        let Transport::Redis { outbox } = &self.shared.transport else {
            self.publish(event);
            return;
        };
        let json: Arc<str> = match serde_json::to_string(&event) {
            Ok(json) => json.into(),
            Err(e) => {
                tracing::error!(error = %e, "an event could not be serialized");
                return;
            }
        };
        let (confirm, confirmed) = tokio::sync::oneshot::channel();
        let outgoing = redis_bus::Outgoing {
            id: Uuid::now_v7(),
            json,
            confirm: Some(confirm),
        };
        if outbox.try_send(outgoing).is_err() {
            tracing::warn!("event outbox is full (Redis unreachable?); an event was dropped");
            return;
        }
        let _ = tokio::time::timeout(within, confirmed).await;
    }

    /// Publishes each event in order; for the events a transaction collected, after it
    /// committed.
    pub fn publish_all(&self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.publish(event);
        }
    }

    /// Every event from now on, as this instance receives it.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.shared.events.subscribe()
    }

    /// Revocations of sessions, for open WebSockets.
    pub fn revocations(&self) -> broadcast::Receiver<Arc<SessionsRevoked>> {
        self.shared.revocations.subscribe()
    }

    /// The events after `after` still in the replay window, then live ones; ends with
    /// [`Delivery::Lagged`] when the subscriber missed any.
    pub fn deliveries(&self, after: Option<u64>) -> impl Stream<Item = Delivery> + Send + use<> {
        let mut live = self.subscribe();
        let backlog: Vec<Arc<Published>> = match after {
            Some(after) => self
                .shared
                .lock_replay()
                .iter()
                .filter(|p| {
                    p.sequence > after
                        && p.received_at.elapsed() <= self.shared.limits.replay_window
                })
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        async_stream::stream! {
            let mut last = after;
            let mut last_epoch = None;
            for published in backlog {
                // A jump into a new epoch is not a loss: the numbering started over there.
                let same_epoch = last_epoch.is_none_or(|epoch| epoch == published.epoch);
                last_epoch = Some(published.epoch);
                if let Some(last) = last
                    && same_epoch
                    && published.sequence > last + 1
                    && published.sequence != published.epoch
                {
                    yield Delivery::Lagged { last_sequence: last, missed: published.sequence - last - 1 };
                    return;
                }
                last = Some(published.sequence);
                yield Delivery::Event(published);
            }
            loop {
                match live.recv().await {
                    Ok(published) => {
                        if last.is_some_and(|last| published.sequence <= last) {
                            continue;
                        }
                        last = Some(published.sequence);
                        yield Delivery::Event(published);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        yield Delivery::Lagged { last_sequence: last.unwrap_or(0), missed };
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

impl Shared {
    fn lock_replay(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Published>>> {
        // A panic while holding the lock cannot leave the queue half-changed.
        self.replay.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a numbered event to this instance's listeners and keeps it for replay.
    fn deliver(&self, number: Numbered, event: Event, json: Arc<str>) {
        if let Event::SessionsRevoked(revoked) = event {
            let _ = self.revocations.send(Arc::new(revoked));
            return;
        }
        let published = Arc::new(Published {
            sequence: number.sequence,
            epoch: number.epoch,
            event,
            json,
            received_at: std::time::Instant::now(),
        });
        {
            let mut replay = self.lock_replay();
            replay.push_back(published.clone());
            let now = std::time::Instant::now();
            while replay.len() > self.limits.replay_max
                || replay
                    .front()
                    .is_some_and(|p| now.duration_since(p.received_at) > self.limits.replay_window)
            {
                replay.pop_front();
            }
        }
        // No listener is not an error.
        let _ = self.events.send(published);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    fn received(delivery: Delivery) -> i64 {
        match delivery {
            Delivery::Event(published) => match &published.event {
                Event::MailFlowTick(tick) => tick.counts.queued,
                other => panic!("unexpected {other:?}"),
            },
            Delivery::Lagged { .. } => panic!("lagged"),
        }
    }

    #[tokio::test]
    async fn a_resumed_subscriber_gets_what_it_missed_then_live_events() {
        let bus = EventBus::local(BusLimits::default());
        let mut live = bus.subscribe();
        bus.publish_all([
            MailFlowTick::queued_now(1),
            MailFlowTick::queued_now(2),
            MailFlowTick::queued_now(3),
        ]);
        let first = live.try_recv().unwrap().sequence;
        let mut resumed = Box::pin(bus.deliveries(Some(first)));
        bus.publish(MailFlowTick::queued_now(4));
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(received(resumed.next().await.unwrap()));
        }
        assert_eq!(seen, [2, 3, 4]);
    }

    #[tokio::test]
    async fn a_resume_point_older_than_the_window_is_reported_as_a_lag() {
        let bus = EventBus::local(BusLimits {
            replay_max: 2,
            ..BusLimits::default()
        });
        let mut live = bus.subscribe();
        bus.publish_all([
            MailFlowTick::queued_now(1),
            MailFlowTick::queued_now(2),
            MailFlowTick::queued_now(3),
            MailFlowTick::queued_now(4),
        ]);
        let first = live.try_recv().unwrap().sequence;
        let mut resumed = Box::pin(bus.deliveries(Some(first)));
        match resumed.next().await.unwrap() {
            Delivery::Lagged {
                last_sequence,
                missed,
            } => assert_eq!((last_sequence, missed), (first, 1)),
            Delivery::Event(p) => panic!("replayed {p:?} across a gap"),
        }
        assert!(resumed.next().await.is_none());
    }

    #[tokio::test]
    async fn numbering_starts_above_earlier_epochs_and_a_new_epoch_is_not_a_gap() {
        let earlier = EventBus::local(BusLimits::default());
        let mut before = earlier.subscribe();
        earlier.publish(MailFlowTick::queued_now(1));
        let old = before.try_recv().unwrap().sequence;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        // The process restarted: a new bus, a new epoch, numbers above the old ones.
        let bus = EventBus::local(BusLimits::default());
        bus.publish_all([MailFlowTick::queued_now(2), MailFlowTick::queued_now(3)]);
        let mut resumed = Box::pin(bus.deliveries(Some(old)));
        assert_eq!(received(resumed.next().await.unwrap()), 2);
        assert_eq!(received(resumed.next().await.unwrap()), 3);
        assert!(old < new_epoch() && new_epoch() < 1 << 53);
    }

    #[tokio::test]
    async fn sessions_revoked_go_to_sockets_not_to_subscriptions() {
        let bus = EventBus::default();
        let mut revocations = bus.revocations();
        let mut events = bus.subscribe();
        let holder = CredentialHolder::User(Uuid::now_v7());
        bus.publish(Event::SessionsRevoked(SessionsRevoked {
            holder,
            reason: "signed out".into(),
        }));
        assert_eq!(revocations.recv().await.unwrap().holder, holder);
        assert!(events.try_recv().is_err());
    }
}
