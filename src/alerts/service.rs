//! Reading alerts, acknowledging them, and silencing them.

use chrono::{DateTime, Utc};
use entity::{alert::Model as AlertRow, alert_silence::Model as SilenceRow};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    db::Page,
    error::{AppError, AppResult},
    state::AppState,
};

use super::{
    AlertSeverity, AlertState,
    store::{self, alerts::AlertSelection, silences::NewSilence},
};

/// Which alerts to list; each list narrows, left out or empty means any.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub states: Option<Vec<AlertState>>,
    pub severities: Option<Vec<AlertSeverity>>,
    /// Node ids as given; parsed here.
    pub node_ids: Option<Vec<String>>,
    pub rule_ids: Option<Vec<String>>,
    pub silenced: Option<bool>,
}

/// Which alerts a new silence covers, as the caller gave it.
#[derive(Clone, Debug, Default)]
pub struct MatcherDraft {
    pub rule_ids: Option<Vec<String>>,
    pub node_ids: Option<Vec<String>>,
    pub severities: Option<Vec<AlertSeverity>>,
    pub ips: Option<Vec<String>>,
}

pub const MAX_FILTER_IDS: usize = 100;
pub const MAX_NOTE_CHARS: usize = 1000;
pub const MAX_REASON_CHARS: usize = 500;
pub const MAX_MATCHER_ENTRIES: usize = 100;
/// The longest a silence may last.
pub const MAX_SILENCE_DAYS: i64 = 90;

/// Which alerts a silence covers, as stored: an alert matches when it matches every
/// non-empty list.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Matcher {
    pub rule_ids: Vec<Uuid>,
    pub node_ids: Vec<Uuid>,
    pub severities: Vec<String>,
    pub ips: Vec<String>,
}

/// The silences in force at `now`, with their matchers.
pub async fn active_silences(
    conn: &impl sea_orm::ConnectionTrait,
    now: DateTime<Utc>,
) -> AppResult<Vec<(SilenceRow, Matcher)>> {
    Ok(store::silences::active(conn, now)
        .await?
        .into_iter()
        .map(|s| {
            let matcher = Matcher::from_json(&s.matcher);
            (s, matcher)
        })
        .collect())
}

impl Matcher {
    pub fn from_json(json: &serde_json::Value) -> Matcher {
        serde_json::from_value(json.clone()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.rule_ids.is_empty()
            && self.node_ids.is_empty()
            && self.severities.is_empty()
            && self.ips.is_empty()
    }

    pub fn matches(&self, alert: &AlertRow) -> bool {
        !self.is_empty()
            && (self.rule_ids.is_empty() || self.rule_ids.contains(&alert.rule_id))
            && (self.node_ids.is_empty()
                || alert.node_id.is_some_and(|n| self.node_ids.contains(&n)))
            && (self.severities.is_empty() || self.severities.contains(&alert.severity))
            && (self.ips.is_empty() || alert.ip.as_ref().is_some_and(|ip| self.ips.contains(ip)))
    }
}

fn ids(field: &str, given: &[String]) -> AppResult<Vec<Uuid>> {
    if given.len() > MAX_FILTER_IDS {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_FILTER_IDS} ids"),
        ));
    }
    given
        .iter()
        .map(|id| crate::db::parse_id(field, id))
        .collect()
}

fn selection(filter: &AlertQuery) -> AppResult<AlertSelection> {
    Ok(AlertSelection {
        states: filter.states.clone().unwrap_or_default(),
        severities: filter.severities.clone().unwrap_or_default(),
        node_ids: ids(
            "filter.nodeIds",
            filter.node_ids.as_deref().unwrap_or_default(),
        )?,
        rule_ids: ids(
            "filter.ruleIds",
            filter.rule_ids.as_deref().unwrap_or_default(),
        )?,
        silenced: filter.silenced,
    })
}

/// Alerts newest first, `page.first` of them after the cursor (an alert id), and how
/// many match.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &AlertQuery,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<AlertRow>> {
    store::alerts::list(db, &selection(filter)?, Utc::now(), page, count_total).await
}

/// Records who acknowledged an open alert, when, and their note. A second
/// acknowledgement changes nothing; a resolved alert cannot be acknowledged.
pub async fn acknowledge(
    state: &AppState,
    audit: &AuditContext,
    id: Uuid,
    note: Option<&str>,
) -> AppResult<AlertRow> {
    let db = &state.db;
    let change = Change::new("alert.acknowledge").target("alert", id);
    let (alert, event) = audit::audited(db, audit, change.clone(), async {
        let note = crate::input::bounded_free_text("note", note, MAX_NOTE_CHARS)?;
        let txn = crate::db::begin_write(db).await?;
        let alert = store::alerts::find(&txn, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no alert with id {id}")))?;
        if alert.state == AlertState::Resolved.as_str() {
            return Err(AppError::Conflict(
                "the alert is RESOLVED; only open alerts can be acknowledged".into(),
            ));
        }
        if alert.acknowledged_at.is_some() {
            txn.rollback().await?;
            return Ok((alert, None));
        }
        let now = Utc::now();
        let alert =
            store::alerts::acknowledge(&txn, alert, &audit.actor.name, note.clone(), now).await?;
        let mut change = change.clone();
        change.detail = Some(serde_json::json!({ "note": note }));
        audit::record(&txn, audit, change).await?;
        let name = store::rules::name_of(&txn, alert.rule_id).await?;
        txn.commit().await?;
        let event = super::evaluator::event(&alert, &name, Some(alert.state.clone()), now);
        Ok((alert, Some(event)))
    })
    .await?;
    if let Some(event) = event {
        state.events.publish(event);
    }
    Ok(alert)
}

fn validate_matcher(input: &MatcherDraft) -> AppResult<Matcher> {
    let lists = [
        ("matcher.ruleIds", input.rule_ids.as_ref().map(Vec::len)),
        ("matcher.nodeIds", input.node_ids.as_ref().map(Vec::len)),
        (
            "matcher.severities",
            input.severities.as_ref().map(Vec::len),
        ),
        ("matcher.ips", input.ips.as_ref().map(Vec::len)),
    ];
    if lists.iter().all(|(_, len)| len.unwrap_or(0) == 0) {
        return Err(AppError::bad_input(
            "matcher",
            "name at least one of ruleIds, nodeIds, severities and ips",
        ));
    }
    for (field, len) in lists {
        if len.unwrap_or(0) > MAX_MATCHER_ENTRIES {
            return Err(AppError::bad_input(
                field,
                format!("at most {MAX_MATCHER_ENTRIES} entries"),
            ));
        }
    }
    let parse = |field: &str, list: &Option<Vec<String>>| -> AppResult<Vec<Uuid>> {
        let mut ids = list
            .iter()
            .flatten()
            .map(|id| crate::db::parse_id(field, id))
            .collect::<AppResult<Vec<_>>>()?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    };
    let mut severities: Vec<String> = input
        .severities
        .iter()
        .flatten()
        .map(|s| s.as_str().to_string())
        .collect();
    severities.sort();
    severities.dedup();
    let mut ips = Vec::new();
    for ip in input.ips.iter().flatten() {
        ips.push(crate::ips::parse_address("matcher.ips", ip)?.text);
    }
    ips.sort();
    ips.dedup();
    Ok(Matcher {
        rule_ids: parse("matcher.ruleIds", &input.rule_ids)?,
        node_ids: parse("matcher.nodeIds", &input.node_ids)?,
        severities,
        ips,
    })
}

/// Creates a silence from now until `until` and covers the open alerts it matches now;
/// the evaluator covers the ones raised later. Returns it and how many it covered.
pub async fn silence(
    db: &sea_orm::DatabaseConnection,
    audit: &AuditContext,
    input: &MatcherDraft,
    until: DateTime<Utc>,
    reason: &str,
) -> AppResult<(SilenceRow, u64)> {
    let change = Change::new("alert.silence").detail(serde_json::json!({
        "until": until,
        "reason": reason.chars().take(MAX_REASON_CHARS).collect::<String>(),
    }));
    audit::audited(db, audit, change.clone(), async {
        let matcher = validate_matcher(input)?;
        let now = Utc::now();
        if until <= now {
            return Err(AppError::bad_input("until", "must be in the future"));
        }
        if until > now + chrono::Duration::days(MAX_SILENCE_DAYS) {
            return Err(AppError::bad_input(
                "until",
                format!("must be at most {MAX_SILENCE_DAYS} days ahead"),
            ));
        }
        let reason = crate::input::required_line("reason", reason, MAX_REASON_CHARS)?;
        let reason = reason.as_str();
        let txn = crate::db::begin_write(db).await?;
        let id = Uuid::now_v7();
        let silence = store::silences::insert(
            &txn,
            NewSilence {
                id,
                matcher: serde_json::to_value(&matcher)
                    .map_err(|e| AppError::internal(format!("matcher: {e}")))?,
                starts_at: now,
                ends_at: until,
                reason: reason.to_string(),
                created_by: audit.actor.name.chars().take(128).collect(),
            },
        )
        .await?;
        let covered = store::alerts::count_open_matching(&txn, &matcher).await?;
        store::alerts::silence_open_matching(&txn, &matcher, id, until).await?;
        let mut change = change.clone().target("alert_silence", id);
        if let Some(detail) = change.detail.as_mut().and_then(|d| d.as_object_mut()) {
            detail.insert("covered".into(), covered.into());
        }
        audit::commit(txn, audit, change).await?;
        Ok((silence, covered))
    })
    .await
}

/// Silences newest first: the active ones (`Some(true)`), the ended ones
/// (`Some(false)`) or all.
pub async fn silences(
    db: &impl ConnectionTrait,
    active: Option<bool>,
) -> AppResult<Vec<SilenceRow>> {
    store::silences::list(db, active, Utc::now()).await
}

/// Ends a silence now; the alerts it covered are no longer silenced.
pub async fn expire(
    db: &sea_orm::DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
) -> AppResult<SilenceRow> {
    let change = Change::new("alert_silence.expire").target("alert_silence", id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let silence = store::silences::find(&txn, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no silence with id {id}")))?;
        let now = Utc::now();
        let silence = if silence.ends_at > now {
            store::silences::end(&txn, silence, now).await?
        } else {
            silence
        };
        store::alerts::unsilence(&txn, id).await?;
        // Open alerts that another active silence also matches stay silenced by it.
        let mut others = active_silences(&txn, now).await?;
        others.retain(|(silence, _)| silence.id != id);
        if !others.is_empty() {
            let uncovered = store::alerts::open_of_silence(&txn, id).await?;
            for alert in uncovered {
                let Some((other, _)) = others
                    .iter()
                    .filter(|(_, m)| m.matches(&alert))
                    .max_by_key(|(s, _)| s.ends_at)
                else {
                    continue;
                };
                store::alerts::set_silence(&txn, alert.id, Some(other.id), Some(other.ends_at))
                    .await?;
            }
        }
        audit::commit(txn, audit, change.clone()).await?;
        Ok(silence)
    })
    .await
}
