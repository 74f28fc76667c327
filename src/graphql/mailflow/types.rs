//! GraphQL types of mail flow.

use crate::graphql::pagination::found;
use async_graphql::{ComplexObject, Context, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    graphql::{
        guards::RoleGuard, loaders::load_one, nodes::loaders::NodesById, nodes::types::Node,
        pagination::id_texts,
    },
    mailflow::{BounceCategory, EventFilter, MailEventStatus, MailFlowGroup},
};

#[ComplexObject]
impl MailFlowGroup {
    /// The node, when grouping by node.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn node(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Node>> {
        match self.node_id {
            Some(id) => load_node(ctx, id).await,
            None => Ok(None),
        }
    }
}

/// Which raw events `mailEvents` lists; every field given must match.
#[derive(InputObject, Debug, Clone, Default)]
pub struct MailEventFilter {
    /// The message's id in the MTA's queue.
    pub message_id: Option<String>,
    /// At most 500 nodes.
    pub node_ids: Option<Vec<async_graphql::ID>>,
    /// The address the MTA sent from.
    pub sending_ip: Option<String>,
    /// The recipient's domain (any case).
    pub recipient_domain: Option<String>,
    /// Any of these statuses.
    pub statuses: Option<Vec<MailEventStatus>>,
    /// Refusals of any of these categories.
    pub categories: Option<Vec<BounceCategory>>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events before this time.
    pub until: Option<DateTime<Utc>>,
}

impl From<MailEventFilter> for EventFilter {
    fn from(filter: MailEventFilter) -> EventFilter {
        EventFilter {
            node_ids: filter.node_ids.map(id_texts),
            message_id: filter.message_id,
            sending_ip: filter.sending_ip,
            recipient_domain: filter.recipient_domain,
            statuses: filter.statuses,
            categories: filter.categories,
            since: filter.since,
            until: filter.until,
        }
    }
}

/// One event as an MTA reported it.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct MailEvent {
    /// The event's id.
    pub id: async_graphql::ID,
    /// When it happened.
    pub ts: DateTime<Utc>,
    /// The message's id in the MTA's queue.
    pub message_id: String,
    /// What happened.
    pub status: MailEventStatus,
    /// The address the MTA sent from, if the event names one.
    pub sending_ip: Option<String>,
    /// The recipient's domain, lower-case, if the event names one.
    pub recipient_domain: Option<String>,
    /// The recipient's provider group, as decided when the event arrived.
    pub provider: String,
    /// The ZoneMTA sending zone.
    pub zone: Option<String>,
    /// The SMTP reply code.
    pub smtp_code: Option<i32>,
    /// The remote server's reply text.
    pub response: Option<String>,
    /// Why a DEFERRED or BOUNCED event was refused, decided when it arrived; `null` for
    /// other statuses and for refusals stored before mailops classified them.
    pub category: Option<BounceCategory>,
    /// The RFC 3463 enhanced status code its response carried, e.g. `5.1.1`.
    pub enhanced_code: Option<String>,
    #[graphql(skip)]
    pub node_id: uuid::Uuid,
}

impl From<entity::mail_event::Model> for MailEvent {
    fn from(m: entity::mail_event::Model) -> Self {
        let status = match m.status.as_str() {
            "QUEUED" => MailEventStatus::Queued,
            "DEFERRED" => MailEventStatus::Deferred,
            "BOUNCED" => MailEventStatus::Bounced,
            "REJECTED" => MailEventStatus::Rejected,
            "DROPPED" => MailEventStatus::Dropped,
            _ => MailEventStatus::Delivered,
        };
        let present = |text: String| (!text.is_empty()).then_some(text);
        MailEvent {
            id: async_graphql::ID(m.id.to_string()),
            ts: DateTime::<Utc>::from_timestamp_millis(m.ts).unwrap_or_default(),
            message_id: m.message_id,
            status,
            sending_ip: present(m.sending_ip),
            recipient_domain: present(m.recipient_domain),
            provider: m.provider,
            zone: m.zone,
            smtp_code: m.smtp_code,
            response: m.response,
            category: m
                .category
                .as_deref()
                .and_then(|c| BounceCategory::parse(c).ok()),
            enhanced_code: m.enhanced_code,
            node_id: m.node_id,
        }
    }
}

#[ComplexObject]
impl MailEvent {
    /// The node whose agent reported it.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn node(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Node>> {
        load_node(ctx, self.node_id).await
    }
}

async fn load_node(ctx: &Context<'_>, id: uuid::Uuid) -> async_graphql::Result<Option<Node>> {
    let node = load_one::<NodesById, _>(ctx, id).await?;
    Ok(found(node)?)
}
