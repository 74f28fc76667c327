//! Looking up raw mail events: what happened to one message, or the latest events of a
//! node or sending IP.

use entity::mail_event::Model as EventRow;
use sea_orm::ConnectionTrait;

use crate::{
    db::Page,
    error::{AppError, AppResult},
};

use super::{
    bounces::BounceCategory,
    model::MailEventStatus,
    store::{self, events::EventQuery},
};

/// Which raw events to list; every condition given must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub message_id: Option<String>,
    /// As given in `filter.nodeIds`.
    pub node_ids: Option<Vec<String>>,
    pub sending_ip: Option<String>,
    pub recipient_domain: Option<String>,
    pub statuses: Option<Vec<MailEventStatus>>,
    pub categories: Option<Vec<BounceCategory>>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

const MAX_NODES: usize = 500;
/// A message id or domain is at most this long; longer filters match nothing anyway.
const MAX_FILTER_TEXT_BYTES: usize = 1024;

/// One page of the events matching `filter`, newest arrival first, and the total when
/// `count_total`.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &EventFilter,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<EventRow>> {
    for (field, text) in [
        ("filter.messageId", &filter.message_id),
        ("filter.recipientDomain", &filter.recipient_domain),
    ] {
        if let Some(text) = text {
            if text.len() > MAX_FILTER_TEXT_BYTES {
                return Err(AppError::bad_input(
                    field,
                    format!("must be at most {MAX_FILTER_TEXT_BYTES} bytes"),
                ));
            }
            crate::input::check_text(field, text, crate::input::TextKind::Line)?;
        }
    }
    let mut query = EventQuery {
        message_id: filter.message_id.clone(),
        statuses: filter.statuses.clone(),
        categories: filter.categories.clone(),
        since: filter.since.map(|t| t.timestamp_millis()),
        until: filter.until.map(|t| t.timestamp_millis()),
        recipient_domain: filter
            .recipient_domain
            .as_deref()
            .map(|d| d.trim().to_ascii_lowercase()),
        ..EventQuery::default()
    };
    if let Some(nodes) = &filter.node_ids {
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(AppError::bad_input(
                "filter.nodeIds",
                format!("give 1 to {MAX_NODES} nodes, or leave it out"),
            ));
        }
        query.node_ids = Some(crate::db::parse_ids("filter.nodeIds", nodes)?);
    }
    if let Some(ip) = &filter.sending_ip {
        query.sending_ip = Some(crate::ips::parse_address("filter.sendingIp", ip)?.text);
    }
    store::events::list(conn, &query, page, count_total).await
}
