//! Mail event ingestion: every event is checked before anything is written; the batch,
//! its raw events and the counters they feed are then written in one transaction that
//! also records the batch by id, so a retry is answered from that record.

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, Utc};
use entity::mail_event::Model as EventRow;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::AgentNode,
    db::batch::{self, Admission, BatchRecord, Outcome},
    error::{AppError, AppResult},
    realtime::{Event, MailEventsIngested},
    state::AppState,
};

use super::{
    bounces::Classified,
    model::{MailCounts, MailEventBatchInput, MailEventInput, MailEventStatus},
    store::{
        self,
        counters::{CounterKey, Tier},
    },
};

pub const MAX_EVENTS: usize = 5_000;
const MAX_MESSAGE_ID_BYTES: usize = 255;
const MAX_RESPONSE_BYTES: usize = 2_048;
const MAX_ZONE_BYTES: usize = 64;
const MAX_FUTURE: ChronoDuration = ChronoDuration::minutes(5);
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// An event as it will be stored.
struct CheckedEvent {
    ts: i64,
    status: MailEventStatus,
    sending_ip: String,
    recipient_domain: String,
    provider: String,
    /// Why a DEFERRED or BOUNCED event was refused.
    refusal: Option<Classified>,
}

fn invalid(index: usize, field: &str, reason: impl Into<String>) -> AppError {
    AppError::bad_input(format!("batch.events[{index}].{field}"), reason)
}

fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

fn check_domain(index: usize, domain: &str) -> AppResult<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(domain)
    } else {
        Err(invalid(
            index,
            "recipientDomain",
            "is not a domain name (letters, digits, '-' and '_' in dot-separated labels, at most 253 bytes)",
        ))
    }
}

fn check_event(
    state: &AppState,
    index: usize,
    event: &MailEventInput,
    oldest: chrono::DateTime<Utc>,
    newest: chrono::DateTime<Utc>,
) -> AppResult<CheckedEvent> {
    if event.ts > newest {
        return Err(invalid(index, "ts", "is more than 5 minutes in the future"));
    }
    if event.ts < oldest {
        return Err(invalid(
            index,
            "ts",
            "is older than the raw-event retention",
        ));
    }
    if event.message_id.is_empty()
        || event.message_id.len() > MAX_MESSAGE_ID_BYTES
        || !printable(&event.message_id)
    {
        return Err(invalid(
            index,
            "messageId",
            format!("must be 1 to {MAX_MESSAGE_ID_BYTES} bytes without control characters"),
        ));
    }
    let sending_ip = match &event.sending_ip {
        None => String::new(),
        // The field's name is built only for an error: this runs for every event.
        Some(ip) => match ip.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => {
                return Err(invalid(
                    index,
                    "sendingIp",
                    format!(
                        "'{}' is not an IP address",
                        ip.chars().take(64).collect::<String>()
                    ),
                ));
            }
        },
    };
    let recipient_domain = match &event.recipient_domain {
        None => String::new(),
        Some(domain) => check_domain(index, domain)?,
    };
    if let Some(zone) = &event.zone
        && (zone.is_empty()
            || zone.len() > MAX_ZONE_BYTES
            || !zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    {
        return Err(invalid(
            index,
            "zone",
            format!("must be 1 to {MAX_ZONE_BYTES} letters, digits, '.', '_' or '-'"),
        ));
    }
    if let Some(code) = event.smtp_code
        && !(200..=599).contains(&code)
    {
        return Err(invalid(index, "smtpCode", "must be between 200 and 599"));
    }
    if let Some(response) = &event.response {
        if response.len() > MAX_RESPONSE_BYTES {
            return Err(invalid(
                index,
                "response",
                format!("is longer than {MAX_RESPONSE_BYTES} bytes"),
            ));
        }
        // Multi-line SMTP replies keep their line breaks; NUL and the like mean nothing.
        if response
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(invalid(
                index,
                "response",
                "holds control characters other than line breaks and tabs",
            ));
        }
    }
    let provider = if recipient_domain.is_empty() {
        super::config::OTHER_PROVIDER.to_owned()
    } else {
        state
            .config
            .mail
            .providers
            .classify(&recipient_domain)
            .to_owned()
    };
    let refusal = (state.config.mail.classify_refusals
        && matches!(
            event.status,
            MailEventStatus::Deferred | MailEventStatus::Bounced
        ))
    .then(|| {
        state
            .config
            .mail
            .bounce_rules
            .classify(event.smtp_code, event.response.as_deref())
    });
    Ok(CheckedEvent {
        ts: event.ts.timestamp_millis(),
        status: event.status,
        sending_ip,
        recipient_domain,
        provider,
        refusal,
    })
}

fn hash_event(hash: &mut Sha256, event: &MailEventInput, checked: &CheckedEvent) {
    let field = |hash: &mut Sha256, text: &str| {
        hash.update((text.len() as u32).to_be_bytes());
        hash.update(text.as_bytes());
    };
    hash.update(checked.ts.to_be_bytes());
    field(hash, &event.message_id);
    field(hash, checked.status.as_str());
    field(hash, &checked.sending_ip);
    field(hash, &checked.recipient_domain);
    field(hash, event.zone.as_deref().unwrap_or("\u{0}"));
    hash.update(event.smtp_code.unwrap_or(-1).to_be_bytes());
    field(hash, event.response.as_deref().unwrap_or("\u{0}"));
}

/// Stores a batch for the agent's node (`Admission::Live` for agents, `Backfill` for the
/// seed). Nothing is written unless every event is valid;
/// a batch id seen before is answered from its record (or refused when its content
/// differs); success is answered only after the commit.
pub async fn store_batch(
    state: &AppState,
    agent: &AgentNode,
    batch: &MailEventBatchInput,
    admission: Admission,
) -> AppResult<Outcome> {
    let mut record = BatchRecord::start(store::BATCHES, agent.node_id, &batch.batch_id)?;
    batch::check_size("events", batch.events.len(), MAX_EVENTS)?;
    let now = record.received_at();
    let config = &state.config.mail;
    let (raw_oldest, oldest) = batch::oldest_allowed(
        now,
        admission,
        config.events_retention,
        config.hour_retention,
    )?;
    let (minute_oldest, _) = batch::oldest_allowed(
        now,
        Admission::Live,
        config.minute_retention,
        config.minute_retention,
    )?;
    let minute_oldest = minute_oldest.timestamp_millis();
    let newest = now + MAX_FUTURE;

    let mut checked = Vec::with_capacity(batch.events.len());
    for (index, event) in batch.events.iter().enumerate() {
        let event_checked = check_event(state, index, event, oldest, newest)?;
        hash_event(record.content(), event, &event_checked);
        checked.push(event_checked);
    }
    let accepted = checked.len() as i32;

    let mut minutes: BTreeMap<CounterKey, MailCounts> = BTreeMap::new();
    let mut hours: BTreeMap<CounterKey, MailCounts> = BTreeMap::new();
    let mut counts = MailCounts::default();
    for event in &checked {
        counts.count(event.status);
        let category = event.refusal.map_or("", |r| r.category.as_str());
        if event.ts >= minute_oldest {
            let minute = event.ts.div_euclid(MINUTE_MS) * MINUTE_MS;
            minutes
                .entry((
                    minute,
                    event.sending_ip.clone(),
                    event.provider.clone(),
                    category,
                ))
                .or_default()
                .count(event.status);
        }
        let hour = event.ts.div_euclid(HOUR_MS) * HOUR_MS;
        hours
            .entry((
                hour,
                event.sending_ip.clone(),
                event.provider.clone(),
                category,
            ))
            .or_default()
            .count(event.status);
    }

    let txn = match record.begin(&state.db, accepted).await? {
        Ok(txn) => txn,
        Err(earlier) => return Ok(earlier),
    };

    let raw_oldest_ms = raw_oldest.timestamp_millis();
    let rows: Vec<EventRow> = batch
        .events
        .iter()
        .zip(checked)
        .filter(|(_, event)| event.ts >= raw_oldest_ms)
        .map(|(input, event)| EventRow {
            id: Uuid::now_v7(),
            node_id: agent.node_id,
            ts: event.ts,
            message_id: input.message_id.clone(),
            status: event.status.as_str().to_owned(),
            sending_ip: event.sending_ip,
            recipient_domain: event.recipient_domain,
            provider: event.provider,
            zone: input.zone.clone(),
            smtp_code: input.smtp_code,
            response: input.response.clone(),
            category: event.refusal.map(|r| r.category.as_str().to_owned()),
            enhanced_code: event
                .refusal
                .and_then(|r| r.enhanced)
                .map(|code| code.to_string()),
        })
        .collect();
    store::events::insert(&txn, agent.node_id, rows).await?;
    store::counters::add(&txn, Tier::Minute, agent.node_id, &minutes).await?;
    store::counters::add(&txn, Tier::Hour, agent.node_id, &hours).await?;
    let (_, status_event) = crate::nodes::record_contact(&txn, agent.node_id, None).await?;
    txn.commit().await?;

    state.events.publish_all(status_event);
    // Not published again for a batch sent again: the per-second counts would count it
    // twice.
    let event = Event::MailEventsIngested(MailEventsIngested {
        node_id: agent.node_id,
        batch_id: batch.batch_id.clone(),
        counts,
        at: now,
    });
    state
        .events
        .publish_confirmed(event, std::time::Duration::from_secs(1))
        .await;
    Ok(Outcome {
        accepted,
        duplicate: false,
    })
}
