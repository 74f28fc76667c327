//! Looking up raw mail events: what happened to one message, or the latest events of a
//! node or sending IP.

use entity::mail_event;
use sea_orm::{ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _};

use crate::{
    db::{Page, newest_first},
    error::{AppError, AppResult},
};

use super::model::MailEventStatus;

/// Which raw events to list; every condition given must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub message_id: Option<String>,
    /// As given in `filter.nodeIds`.
    pub node_ids: Option<Vec<String>>,
    pub sending_ip: Option<String>,
    pub recipient_domain: Option<String>,
    pub statuses: Option<Vec<MailEventStatus>>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

const MAX_NODES: usize = 500;

/// One page of the events matching `filter`, newest arrival first, and the total when
/// `count_total`.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &EventFilter,
    page: &Page,
    count_total: bool,
) -> AppResult<(Vec<mail_event::Model>, bool, u64)> {
    let mut query = mail_event::Entity::find();
    if let Some(message_id) = &filter.message_id {
        query = query.filter(mail_event::Column::MessageId.eq(message_id.as_str()));
    }
    if let Some(nodes) = &filter.node_ids {
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(AppError::bad_input(
                "filter.nodeIds",
                format!("give 1 to {MAX_NODES} nodes, or leave it out"),
            ));
        }
        let ids = crate::db::parse_ids("filter.nodeIds", nodes)?;
        query = query.filter(mail_event::Column::NodeId.is_in(ids));
    }
    if let Some(ip) = &filter.sending_ip {
        let ip = crate::ips::parse_address("filter.sendingIp", ip)?;
        query = query.filter(mail_event::Column::SendingIp.eq(ip.text));
    }
    if let Some(domain) = &filter.recipient_domain {
        query = query
            .filter(mail_event::Column::RecipientDomain.eq(domain.trim().to_ascii_lowercase()));
    }
    if let Some(statuses) = &filter.statuses {
        query = query.filter(mail_event::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(since) = filter.since {
        query = query.filter(mail_event::Column::Ts.gte(since.timestamp_millis()));
    }
    if let Some(until) = filter.until {
        query = query.filter(mail_event::Column::Ts.lt(until.timestamp_millis()));
    }
    newest_first(conn, query, mail_event::Column::Id, page, count_total).await
}
