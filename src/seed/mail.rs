//! Seeded mail events: every seeded node sends a steady, deterministic stream through
//! its two sending IPs to the usual providers, stored through the same ingestion service
//! agents use. Whole hours are one batch each; the hour under way is one batch per
//! complete minute, so seeding again adds only minutes not yet stored.

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Duration as ChronoDuration, DurationRound as _, Utc};
use futures_util::{StreamExt as _, stream};
use uuid::Uuid;

use crate::{
    auth::AgentNode,
    db::batch::Admission,
    error::{AppError, AppResult},
    mailflow::{self, MailEventBatchInput, MailEventInput, MailEventStatus},
    state::AppState,
};

const DOMAINS: [&str; 8] = [
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "yahoo.com",
    "example.org",
    "example.net",
];

/// What the seeded mail of one run added.
#[derive(Debug, Default)]
pub struct MailSeedReport {
    pub batches: usize,
    pub duplicate_batches: usize,
    pub events: u64,
}

/// A well-mixed 64-bit hash of `values`, so events are a pure function of their place.
fn mix(values: [u64; 3]) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for v in values {
        x ^= v.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    x
}

/// Events `i` of the minute starting at epoch second `minute` of node `node`.
fn event(node: usize, ips: &[String], minute: i64, i: u32) -> MailEventInput {
    let h = mix([node as u64, minute as u64, u64::from(i)]);
    let status = match h % 100 {
        0..=79 => MailEventStatus::Delivered,
        80..=87 => MailEventStatus::Deferred,
        88..=90 => MailEventStatus::Bounced,
        91..=97 => MailEventStatus::Queued,
        98 => MailEventStatus::Rejected,
        _ => MailEventStatus::Dropped,
    };
    let attempt = matches!(
        status,
        MailEventStatus::Delivered | MailEventStatus::Deferred | MailEventStatus::Bounced
    );
    let second = (h >> 8) % 60;
    let ts = DateTime::<Utc>::from_timestamp(minute + second as i64, 0).unwrap_or_default();
    MailEventInput {
        ts,
        message_id: format!("{:016x}", h),
        status,
        sending_ip: attempt.then(|| ips[((h >> 16) % ips.len() as u64) as usize].clone()),
        recipient_domain: Some(DOMAINS[((h >> 24) % DOMAINS.len() as u64) as usize].into()),
        zone: Some("default".into()),
        smtp_code: match status {
            MailEventStatus::Delivered => Some(250),
            MailEventStatus::Deferred => Some(DEFERRALS[((h >> 32) % 4) as usize].0),
            MailEventStatus::Bounced => Some(BOUNCES[((h >> 32) % 4) as usize].0),
            _ => None,
        },
        response: match status {
            MailEventStatus::Delivered => Some("250 2.0.0 OK".into()),
            MailEventStatus::Deferred => Some(DEFERRALS[((h >> 32) % 4) as usize].1.into()),
            MailEventStatus::Bounced => Some(BOUNCES[((h >> 32) % 4) as usize].1.into()),
            _ => None,
        },
    }
}

/// Refusals as receivers word them, so that seeded mail has every common category.
const DEFERRALS: [(i32, &str); 4] = [
    (
        421,
        "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. - gsmtp",
    ),
    (
        451,
        "451 4.7.650 The mail server has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://aka.ms/postmaster (S775)",
    ),
    (
        450,
        "450 4.2.0 Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
    ),
    (
        452,
        "452-4.2.2 The email account that you tried to reach is over quota.",
    ),
];
const BOUNCES: [(i32, &str); 4] = [
    (
        550,
        "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.",
    ),
    (
        550,
        "550 5.7.606 Access denied, banned sending IP. To request removal from this list please visit https://sender.office.com/ and follow the directions.",
    ),
    (
        554,
        "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/",
    ),
    (
        550,
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.",
    ),
];

/// A whole hour is named by its start, a minute of the hour under way by its start too,
/// marked as a minute.
fn batch_id(hostname: &str, start: i64, minutes: i64) -> String {
    let host = hostname.split('.').next().unwrap_or("node");
    if minutes == 60 {
        format!("seed-{host}-{start}")
    } else {
        format!("seed-{host}-{start}-m")
    }
}

/// One batch of node `node`: `minutes` minutes from epoch second `start`, `per_minute`
/// events each.
pub fn batch(
    node: usize,
    hostname: &str,
    ips: &[String],
    start: i64,
    minutes: i64,
    per_minute: u32,
) -> MailEventBatchInput {
    MailEventBatchInput {
        batch_id: batch_id(hostname, start, minutes),
        events: (0..minutes)
            .flat_map(|m| (0..per_minute).map(move |i| (start + m * 60, i)))
            .map(|(minute, i)| event(node, ips, minute, i))
            .collect(),
    }
}

/// Stores `days` days of mail for each of `agents` (whose node numbers are their
/// indexes), `per_minute` events per node and minute.
pub async fn run(
    state: &AppState,
    agents: &[(Arc<AgentNode>, Vec<String>)],
    days: u32,
    per_minute: u32,
    concurrency: usize,
    progress: super::OnProgress<'_>,
) -> AppResult<MailSeedReport> {
    if per_minute as usize * 60 > mailflow::MAX_EVENTS {
        return Err(AppError::bad_input(
            "--mail-per-minute",
            format!("at most {}", mailflow::MAX_EVENTS / 60),
        ));
    }
    let mut report = MailSeedReport::default();
    if per_minute == 0 {
        return Ok(report);
    }
    let now = Utc::now();
    let this_hour = now
        .duration_trunc(ChronoDuration::hours(1))
        .map_err(|e| AppError::internal(format!("truncating now: {e}")))?;
    let this_minute = now
        .duration_trunc(ChronoDuration::minutes(1))
        .map_err(|e| AppError::internal(format!("truncating now: {e}")))?;
    let nodes: Vec<Uuid> = agents.iter().map(|a| a.0.node_id).collect();
    let stored_before: HashSet<(Uuid, String)> =
        crate::db::batch::ids_with_prefix(&state.db, mailflow::BATCHES, &nodes, "seed-")
            .await?
            .into_iter()
            .collect();
    let hours = i64::from(days) * 24;
    let mut jobs = Vec::new();
    for (index, (agent, ips)) in agents.iter().enumerate() {
        let mut span = |start: DateTime<Utc>, minutes: i64| {
            let id = batch_id(&agent.hostname, start.timestamp(), minutes);
            if stored_before.contains(&(agent.node_id, id)) {
                report.batches += 1;
                report.duplicate_batches += 1;
            } else {
                jobs.push((index, agent.clone(), ips, start.timestamp(), minutes));
            }
        };
        for h in (1..=hours).rev() {
            span(this_hour - ChronoDuration::hours(h), 60);
        }
        let mut minute = this_hour;
        while minute < this_minute {
            span(minute, 1);
            minute += ChronoDuration::minutes(1);
        }
    }
    let total = report.batches + jobs.len();
    let mut stored = stream::iter(jobs)
        .map(|(index, agent, ips, start, minutes)| async move {
            let batch = batch(index, &agent.hostname, ips, start, minutes, per_minute);
            let events = batch.events.len() as u64;
            let outcome = mailflow::store_batch(state, &agent, &batch, Admission::Backfill).await?;
            AppResult::Ok((outcome.duplicate, events))
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(result) = stored.next().await {
        let (duplicate, events) = result?;
        report.batches += 1;
        if duplicate {
            report.duplicate_batches += 1;
        } else {
            report.events += events;
        }
        progress(super::SeedProgress {
            phase: "mail",
            done: report.batches,
            total,
            items: report.events,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_batch_holds_every_minute_and_only_attempts_name_an_ip() {
        let ips = vec!["198.18.0.1".to_string(), "2001:db8:1::25".to_string()];
        let hour = batch(
            0,
            "mta01.fra1.seed.mailops.test",
            &ips,
            1_700_000_000 / 3600 * 3600,
            60,
            10,
        );
        assert_eq!(hour.events.len(), 600);
        assert_eq!(
            hour.batch_id,
            format!("seed-mta01-{}", 1_700_000_000 / 3600 * 3600)
        );
        for event in &hour.events {
            let attempt = matches!(
                event.status,
                MailEventStatus::Delivered | MailEventStatus::Deferred | MailEventStatus::Bounced
            );
            assert_eq!(event.sending_ip.is_some(), attempt);
        }
        let again = batch(
            0,
            "mta01.fra1.seed.mailops.test",
            &ips,
            1_700_000_000 / 3600 * 3600,
            60,
            10,
        );
        assert_eq!(
            hour.events
                .iter()
                .map(|e| &e.message_id)
                .collect::<Vec<_>>(),
            again
                .events
                .iter()
                .map(|e| &e.message_id)
                .collect::<Vec<_>>()
        );
    }
}
