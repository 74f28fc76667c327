//! The outbox of alert changes that notify someone: an alert that starts FIRING, and a
//! FIRING alert that resolves. Each change is written as a notice in the transaction that
//! makes it, so a notification can never be lost between the change and the notifier;
//! the notifier removes notices in the transaction that takes them in.

use chrono::{DateTime, Utc};
use entity::alert::Model as AlertRow;
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

use super::{AlertState, store};

/// An alert as of one change, with what a notification names: its rule, its rule's
/// condition and its node's hostname.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSnapshot {
    pub alert_id: Uuid,
    pub rule_id: Uuid,
    /// The rule's name.
    pub rule: String,
    /// The rule's condition, e.g. `NODE_DOWN`.
    pub condition: String,
    pub severity: String,
    /// FIRING or RESOLVED.
    pub state: String,
    pub node_id: Option<Uuid>,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    pub value: Option<f64>,
    pub threshold: f64,
    pub message: String,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it resolved.
    pub ends_at: Option<DateTime<Utc>>,
}

impl AlertSnapshot {
    pub fn of(alert: &AlertRow, rule: &str, condition: &str, hostname: Option<&str>) -> Self {
        AlertSnapshot {
            alert_id: alert.id,
            rule_id: alert.rule_id,
            rule: rule.to_string(),
            condition: condition.to_string(),
            severity: alert.severity.clone(),
            state: alert.state.clone(),
            node_id: alert.node_id,
            hostname: hostname.map(str::to_string),
            ip: alert.ip.clone(),
            value: alert.value,
            threshold: alert.threshold,
            message: alert.message.clone(),
            starts_at: alert.fired_at.unwrap_or(alert.pending_since),
            ends_at: alert.resolved_at,
        }
    }

    /// A FIRING alert of no rule and no node, e.g. for a contact point's test message.
    pub fn synthetic(rule: &str, message: String, at: DateTime<Utc>) -> Self {
        AlertSnapshot {
            alert_id: Uuid::nil(),
            rule_id: Uuid::nil(),
            rule: rule.to_string(),
            condition: super::AlertCondition::Metric.as_str().into(),
            severity: super::AlertSeverity::Warning.as_str().into(),
            state: AlertState::Firing.as_str().into(),
            node_id: None,
            hostname: None,
            ip: None,
            value: None,
            threshold: 0.0,
            message,
            starts_at: at,
            ends_at: None,
        }
    }

    pub fn firing(&self) -> bool {
        self.state == AlertState::Firing.as_str()
    }
}

/// Whether a move from `previous` (None for a new alert) to the alert's state is one a
/// notification tells of: into FIRING, or from FIRING to RESOLVED.
pub fn notifies(previous: Option<AlertState>, now: &str) -> bool {
    match AlertState::parse(now) {
        Ok(AlertState::Firing) => previous != Some(AlertState::Firing),
        Ok(AlertState::Resolved) => previous == Some(AlertState::Firing),
        _ => false,
    }
}

/// A notice waiting for the notifier.
#[derive(Clone, Debug)]
pub struct Notice {
    pub id: Uuid,
    pub alert: AlertSnapshot,
}

/// The oldest `limit` notices, oldest first. An unreadable one (written by a newer build)
/// is an error rather than skipped: skipping would lose it.
pub async fn waiting(conn: &impl ConnectionTrait, limit: u64) -> AppResult<Vec<Notice>> {
    store::notices::oldest(conn, limit)
        .await?
        .into_iter()
        .map(|row| {
            let alert = serde_json::from_value(row.alert)
                .map_err(|e| AppError::internal(format!("alert notice {}: {e}", row.id)))?;
            Ok(Notice { id: row.id, alert })
        })
        .collect()
}

/// Removes notices the notifier took in, in the transaction that took them in.
pub async fn remove(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<()> {
    store::notices::delete(conn, ids).await
}

/// Writes notices for these alert changes.
pub(super) async fn record(
    conn: &impl ConnectionTrait,
    alerts: Vec<AlertSnapshot>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    store::notices::insert_many(conn, alerts, at).await
}
