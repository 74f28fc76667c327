//! Rows of `mail_events`: raw events as agents reported them.

use entity::mail_event;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DbBackend, EntityTrait as _, QueryFilter as _, Statement,
    Value,
};
use uuid::Uuid;

use crate::{
    db::{Page, newest_first},
    error::AppResult,
};

use super::super::{bounces::BounceCategory, model::MailEventStatus};

/// Raw events one INSERT writes at most (13 values each, within both backends' limits).
const EVENT_CHUNK: usize = 1_000;

/// Writes raw events of one node. Postgres takes them as arrays through `UNNEST`: one
/// statement and one plan whatever the batch size, and far fewer bind parameters than
/// the portable multi-row `VALUES`, which SQLite gets in chunks.
pub async fn insert(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    rows: Vec<mail_event::Model>,
) -> AppResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    if backend != DbBackend::Postgres {
        for chunk in rows.chunks(EVENT_CHUNK) {
            mail_event::Entity::insert_many(
                chunk.iter().cloned().map(mail_event::ActiveModel::from),
            )
            .exec_without_returning(conn)
            .await?;
        }
        return Ok(());
    }
    // Array elements cannot be NULL here, so absent values travel as values no event
    // can hold (an empty zone, code 0) or with a flag (a response may be empty).
    let mut ids = Vec::with_capacity(rows.len());
    let mut ts = Vec::with_capacity(rows.len());
    let mut message_ids = Vec::with_capacity(rows.len());
    let mut statuses = Vec::with_capacity(rows.len());
    let mut sending_ips = Vec::with_capacity(rows.len());
    let mut domains = Vec::with_capacity(rows.len());
    let mut providers = Vec::with_capacity(rows.len());
    let mut zones = Vec::with_capacity(rows.len());
    let mut codes = Vec::with_capacity(rows.len());
    let mut has_response = Vec::with_capacity(rows.len());
    let mut responses = Vec::with_capacity(rows.len());
    let mut categories = Vec::with_capacity(rows.len());
    let mut enhanced_codes = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.id);
        ts.push(row.ts);
        message_ids.push(row.message_id);
        statuses.push(row.status);
        sending_ips.push(row.sending_ip);
        domains.push(row.recipient_domain);
        providers.push(row.provider);
        zones.push(row.zone.unwrap_or_default());
        codes.push(row.smtp_code.unwrap_or(0));
        has_response.push(row.response.is_some());
        responses.push(row.response.unwrap_or_default());
        categories.push(row.category.unwrap_or_default());
        enhanced_codes.push(row.enhanced_code.unwrap_or_default());
    }
    let statement = Statement::from_sql_and_values(
        backend,
        "INSERT INTO mail_events (id, node_id, ts, message_id, status, sending_ip, \
         recipient_domain, provider, zone, smtp_code, response, category, enhanced_code) \
         SELECT e.id, $1, e.ts, e.message_id, e.status, e.sending_ip, e.recipient_domain, \
         e.provider, NULLIF(e.zone, ''), NULLIF(e.smtp_code, 0), \
         CASE WHEN e.has_response THEN e.response END, NULLIF(e.category, ''), \
         NULLIF(e.enhanced_code, '') \
         FROM UNNEST($2::uuid[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::text[], $10::int4[], $11::bool[], $12::text[], $13::text[], \
         $14::text[]) \
         AS e(id, ts, message_id, status, sending_ip, recipient_domain, provider, zone, \
         smtp_code, has_response, response, category, enhanced_code)",
        [
            Value::from(node_id),
            Value::from(ids),
            Value::from(ts),
            Value::from(message_ids),
            Value::from(statuses),
            Value::from(sending_ips),
            Value::from(domains),
            Value::from(providers),
            Value::from(zones),
            Value::from(codes),
            Value::from(has_response),
            Value::from(responses),
            Value::from(categories),
            Value::from(enhanced_codes),
        ],
    );
    conn.execute_raw(statement).await?;
    Ok(())
}

/// Which raw events to list, validated.
#[derive(Default)]
pub struct EventQuery {
    pub message_id: Option<String>,
    pub node_ids: Option<Vec<Uuid>>,
    pub sending_ip: Option<String>,
    pub recipient_domain: Option<String>,
    pub statuses: Option<Vec<MailEventStatus>>,
    pub categories: Option<Vec<BounceCategory>>,
    /// Epoch milliseconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// One page of the matching events, newest arrival first, and the total when
/// `count_total`.
pub async fn list(
    conn: &impl ConnectionTrait,
    query: &EventQuery,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<mail_event::Model>> {
    let mut select = mail_event::Entity::find();
    if let Some(message_id) = &query.message_id {
        select = select.filter(mail_event::Column::MessageId.eq(message_id.as_str()));
    }
    if let Some(ids) = &query.node_ids {
        select = select.filter(mail_event::Column::NodeId.is_in(ids.iter().copied()));
    }
    if let Some(ip) = &query.sending_ip {
        select = select.filter(mail_event::Column::SendingIp.eq(ip.as_str()));
    }
    if let Some(domain) = &query.recipient_domain {
        select = select.filter(mail_event::Column::RecipientDomain.eq(domain.as_str()));
    }
    if let Some(statuses) = &query.statuses {
        select =
            select.filter(mail_event::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(categories) = &query.categories {
        select = select
            .filter(mail_event::Column::Category.is_in(categories.iter().map(|c| c.as_str())));
    }
    if let Some(since) = query.since {
        select = select.filter(mail_event::Column::Ts.gte(since));
    }
    if let Some(until) = query.until {
        select = select.filter(mail_event::Column::Ts.lt(until));
    }
    newest_first(conn, select, mail_event::Column::Id, page, count_total).await
}
