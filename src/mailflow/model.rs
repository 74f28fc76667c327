//! The mail-flow domain's data: events as agents send them, counts, and the answer of a
//! flow query.

use async_graphql::{ComplexObject, Enum, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A bounce or deferral rate is given only over at least this many delivery attempts:
/// a handful of messages says nothing about a rate.
pub const MIN_RATE_ATTEMPTS: i64 = 20;

/// What happened to a message at one step of its way.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailEventStatus {
    /// Accepted into the MTA's queue.
    Queued,
    /// Accepted by the recipient's server.
    Delivered,
    /// Refused for now; the MTA will try again.
    Deferred,
    /// Refused for good, or given up on.
    Bounced,
    /// Refused by the MTA at SMTP time.
    Rejected,
    /// Discarded by policy (spam, a suppression list) without a delivery attempt.
    Dropped,
}

crate::stored_enum!(MailEventStatus, "mail event status" {
    Queued => "QUEUED",
    Delivered => "DELIVERED",
    Deferred => "DEFERRED",
    Bounced => "BOUNCED",
    Rejected => "REJECTED",
    Dropped => "DROPPED",
});

/// One event an MTA reports about one message.
#[derive(InputObject, Debug, Clone)]
pub struct MailEventInput {
    /// When it happened: at most 5 minutes ahead, and within the raw-event retention.
    pub ts: DateTime<Utc>,
    /// The message's id in the MTA's queue: 1 to 255 printable characters.
    pub message_id: String,
    /// What happened.
    pub status: MailEventStatus,
    /// The local address the MTA sent from, if any.
    pub sending_ip: Option<String>,
    /// The recipient's domain; it decides the provider group (`gmail`, `outlook`, …).
    pub recipient_domain: Option<String>,
    /// The ZoneMTA sending zone: up to 64 letters, digits, `.`, `_` and `-`.
    pub zone: Option<String>,
    /// The SMTP reply code, 200 to 599.
    pub smtp_code: Option<i32>,
    /// The remote server's reply text, up to 2,048 bytes.
    pub response: Option<String>,
}

/// A batch of mail events from one agent.
#[derive(InputObject, Debug, Clone)]
pub struct MailEventBatchInput {
    /// Chosen by the agent, unique per node: 1–64 characters of letters, digits, `.`,
    /// `_`, `:` and `-`. Sending the same batch again is safe.
    pub batch_id: String,
    /// 1 to 5,000 events.
    pub events: Vec<MailEventInput>,
}

/// The answer to `ingestMailEvents`, given only after the batch is committed.
#[derive(SimpleObject, Debug, Clone)]
pub struct MailIngestResult {
    /// The batch's id, as sent.
    pub batch_id: String,
    /// How many events the batch held; all of them are counted.
    pub accepted: i32,
    /// True when this batch was stored before and nothing was written now.
    pub duplicate: bool,
}

/// Event counts by status, with the delivery rates. A delivery attempt is a DELIVERED,
/// DEFERRED or BOUNCED event; `sent` counts them, and the rates are shares of it.
#[derive(SimpleObject, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(complex)]
pub struct MailCounts {
    /// QUEUED events: messages accepted into a queue.
    pub queued: i64,
    /// DELIVERED events.
    pub delivered: i64,
    /// DEFERRED events: attempts to be retried.
    pub deferred: i64,
    /// BOUNCED events.
    pub bounced: i64,
    /// REJECTED events: refused at SMTP time.
    pub rejected: i64,
    /// DROPPED events: discarded by policy.
    pub dropped: i64,
}

impl MailCounts {
    /// Delivery attempts: delivered + deferred + bounced.
    pub fn attempts(&self) -> i64 {
        self.delivered + self.deferred + self.bounced
    }

    fn rate(&self, part: i64) -> Option<f64> {
        let sent = self.attempts();
        (sent > 0).then(|| part as f64 / sent as f64)
    }

    pub fn bounced_share(&self) -> Option<f64> {
        self.rate(self.bounced)
    }

    pub fn add(&mut self, other: &MailCounts) {
        self.queued += other.queued;
        self.delivered += other.delivered;
        self.deferred += other.deferred;
        self.bounced += other.bounced;
        self.rejected += other.rejected;
        self.dropped += other.dropped;
    }

    pub fn count(&mut self, status: MailEventStatus) {
        match status {
            MailEventStatus::Queued => self.queued += 1,
            MailEventStatus::Delivered => self.delivered += 1,
            MailEventStatus::Deferred => self.deferred += 1,
            MailEventStatus::Bounced => self.bounced += 1,
            MailEventStatus::Rejected => self.rejected += 1,
            MailEventStatus::Dropped => self.dropped += 1,
        }
    }

    pub fn total(&self) -> i64 {
        self.queued + self.attempts() + self.rejected + self.dropped
    }
}

#[ComplexObject]
impl MailCounts {
    /// Delivery attempts: delivered + deferred + bounced.
    async fn sent(&self) -> i64 {
        self.attempts()
    }

    /// Delivered ÷ sent; `null` when nothing was sent.
    async fn delivered_rate(&self) -> Option<f64> {
        self.rate(self.delivered)
    }

    /// Deferred ÷ sent; `null` when nothing was sent.
    async fn deferred_rate(&self) -> Option<f64> {
        self.rate(self.deferred)
    }

    /// Bounced ÷ sent; `null` when nothing was sent.
    async fn bounce_rate(&self) -> Option<f64> {
        self.bounced_share()
    }
}

/// How `mailFlow` splits its counts.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MailFlowGroupBy {
    /// One group for the whole cluster, keyed `all`.
    #[default]
    None,
    /// One group per sending IP, keyed by address (`""` for events without one).
    Ip,
    /// One group per node, keyed by node id.
    Node,
    /// One group per recipient provider, keyed by group name (`gmail`, …, `other`).
    Provider,
    /// One group per refusal category (`THROTTLED`, …), keyed `""` for events that are
    /// not refusals and for refusals counted before mailops classified them.
    Category,
    /// One group per IP pool the sending IP is in now, keyed `""` for IPs in no pool.
    Pool,
}

/// The counts of one step.
#[derive(SimpleObject, Debug, Clone)]
pub struct MailFlowPoint {
    /// Start of the step.
    pub ts: DateTime<Utc>,
    pub counts: MailCounts,
}

/// One group's counts over the range.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct MailFlowGroup {
    /// The address, node id or provider, or `all`.
    pub key: String,
    /// The whole range's counts.
    pub totals: MailCounts,
    /// Every step of the range, in order, including steps with nothing counted.
    pub points: Vec<MailFlowPoint>,
    /// This group split by `thenBy`, largest first (the `top` largest); empty without it.
    pub groups: Vec<MailFlowGroup>,
    #[graphql(skip)]
    pub node_id: Option<uuid::Uuid>,
}

/// The answer to `mailFlow`.
#[derive(SimpleObject, Debug, Clone)]
pub struct MailFlow {
    /// Start of the first step.
    pub from: DateTime<Utc>,
    /// End of the last step (exclusive).
    pub to: DateTime<Utc>,
    /// The step, in seconds.
    pub step: i64,
    /// How the counts are split.
    pub group_by: MailFlowGroupBy,
    /// How each group is split again, if it is.
    pub then_by: Option<MailFlowGroupBy>,
    /// The whole cluster's counts over the range (of the nodes asked for).
    pub totals: MailCounts,
    /// How many groups had events; `groups` holds the `top` largest.
    pub group_count: i32,
    /// The largest groups by events counted, largest first.
    pub groups: Vec<MailFlowGroup>,
}
