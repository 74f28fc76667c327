//! The words of alerts: their messages and the events published for them.

use chrono::{DateTime, Utc};
use entity::alert::Model as AlertRow;

use crate::realtime::{AlertEvent, Event};

use super::super::AlertCondition;

use super::decide::{Observation, Rule};

/// Formats a value for a message: at most three decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

pub(super) fn percent(ratio: f64) -> String {
    format!("{}%", number(ratio * 100.0))
}

/// The event for an alert as it now is.
pub fn event(
    alert: &AlertRow,
    rule_name: &str,
    previous_state: Option<String>,
    at: DateTime<Utc>,
) -> Event {
    Event::AlertEvent(AlertEvent {
        alert_id: alert.id,
        rule_id: alert.rule_id,
        rule: rule_name.to_string(),
        severity: alert.severity.clone(),
        state: alert.state.clone(),
        previous_state,
        acknowledged: alert.acknowledged_at.is_some(),
        silenced: alert.silenced_until.is_some_and(|until| until > at),
        node_id: alert.node_id,
        ip: alert.ip.clone(),
        value: alert.value,
        threshold: alert.threshold,
        message: alert.message.clone(),
        at,
    })
}

pub(super) fn window_text(seconds: i32) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s}s"),
    }
}

/// The message of a breach (`resolved == false`) or of a value back past the resolve
/// threshold.
pub(super) fn message(rule: &Rule, o: &Observation, value: f64, resolved: bool) -> String {
    let threshold = rule.model.threshold;
    match rule.condition {
        AlertCondition::NodeDown if resolved => format!("{} is no longer DOWN", o.who),
        AlertCondition::NodeDown => format!("{} is DOWN: no agent contact", o.who),
        AlertCondition::IpListed if resolved => {
            format!("{} is no longer listed on a critical DNSBL zone", o.who)
        }
        AlertCondition::IpListed => format!("{} is listed on {}", o.who, o.extra),
        AlertCondition::BounceRate | AlertCondition::DeferralRate => {
            let (shown, limit) = (
                percent(value),
                percent(if resolved { rule.resolve } else { threshold }),
            );
            if resolved {
                format!(
                    "{}: {} {shown} is back past {limit}{}",
                    o.who, o.what, o.extra
                )
            } else {
                format!(
                    "{}: {} {shown} {} {limit}{}",
                    o.who,
                    o.what,
                    rule.comparison.symbol(),
                    o.extra
                )
            }
        }
        // "192.0.2.10 (mta-01) at outlook: 34 BLOCKED_IP refusals over 15 min > 20"
        AlertCondition::CategoryCount if resolved => format!(
            "{}: {} {} is back past {}",
            o.who,
            number(value),
            o.what,
            number(rule.resolve)
        ),
        AlertCondition::CategoryCount => format!(
            "{}: {} {}{} {} {}",
            o.who,
            number(value),
            o.what,
            o.extra,
            rule.comparison.symbol(),
            number(threshold)
        ),
        AlertCondition::Metric if resolved => format!(
            "{}: {} {} is back {} {}",
            o.who,
            o.what,
            number(value),
            if rule.comparison.upward() {
                "below"
            } else {
                "above"
            },
            number(rule.resolve)
        ),
        AlertCondition::Metric => format!(
            "{}: {} {} {} {}",
            o.who,
            o.what,
            number(value),
            rule.comparison.symbol(),
            number(threshold)
        ),
    }
}
