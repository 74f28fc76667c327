//! Alerting: rules that say when something is wrong, the evaluator that raises and
//! resolves alerts from them, and acknowledging and silencing those alerts.
//!
//! An alert is *active* while it is FIRING and not silenced (`silenced_until` is null or
//! past); the overview counts active alerts with that SQL, so the columns keep that meaning.

mod evaluator;
mod notices;
mod rules;
mod service;
mod store;

pub use evaluator::{CycleReport, evaluate_once};
pub use notices::{AlertSnapshot, Notice, remove as remove_notices, waiting as waiting_notices};
pub use rules::{
    MAX_RULES, RuleDraft, RuleSelector, create as create_rule, delete as delete_rule,
    list as list_rules, update as update_rule,
};
pub use service::{
    AlertQuery, Matcher, MatcherDraft, acknowledge, expire as expire_silence, list as list_alerts,
    silence, silences,
};
pub use store::{
    alerts::{count_active_by_severity, find as find_alert, find_many as find_alerts},
    rules::{find as find_rule, find_many as rules_by_ids},
};

use async_graphql::Enum;

/// What a rule watches.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertCondition {
    /// The latest values of a metric's series on a node, combined by the rule's aggregate.
    Metric,
    /// 1 while the node is DOWN, else 0.
    NodeDown,
    /// The share of delivery attempts that bounced over the rule's window, per node or
    /// per the rule's scope.
    BounceRate,
    /// The share of delivery attempts that were deferred over the rule's window, per node
    /// or per the rule's scope.
    DeferralRate,
    /// How many deliveries were refused for the rule's category over its window, per node
    /// or per the rule's scope (one IP at one provider, say).
    CategoryCount,
    /// 1 while a sending IP is listed on a DNSBL zone marked critical.
    IpListed,
}

/// What a mail-flow rule (BOUNCE_RATE, DEFERRAL_RATE, CATEGORY_COUNT) judges one by one.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AlertScope {
    /// Each node: its delivery attempts from every IP.
    #[default]
    Node,
    /// Each sending IP; the alert names it.
    Ip,
    /// Each IP pool, as its IPs are pooled now.
    Pool,
    /// Each recipient provider (`gmail`, …, `other`).
    Provider,
    /// Each sending IP at each provider; the alert names the IP.
    IpProvider,
}

impl AlertScope {
    /// Whether an alert of this scope is about one sending IP.
    pub fn names_ip(self) -> bool {
        matches!(self, AlertScope::Ip | AlertScope::IpProvider)
    }
}

/// How the latest values of a node's matching series combine into one.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertAggregate {
    /// The largest (the fullest disk).
    Max,
    /// The smallest.
    Min,
    /// The total (all queues).
    Sum,
    /// The mean.
    Avg,
}

/// How the value is compared with the threshold.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertComparison {
    /// Value > threshold.
    Gt,
    /// Value >= threshold.
    Gte,
    /// Value < threshold.
    Lt,
    /// Value <= threshold.
    Lte,
}

/// How urgent an alert is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertSeverity {
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

/// Where an alert stands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// The condition holds, but not yet for the rule's `for`.
    Pending,
    /// The condition has held for the rule's `for`.
    Firing,
    /// The condition cleared (past the resolve threshold), or the rule or node no longer
    /// applies. Final: a new breach raises a new alert.
    Resolved,
}

crate::stored_enum!(AlertCondition, "alert condition" { Metric => "METRIC", NodeDown => "NODE_DOWN", BounceRate => "BOUNCE_RATE", DeferralRate => "DEFERRAL_RATE", CategoryCount => "CATEGORY_COUNT", IpListed => "IP_LISTED" });
crate::stored_enum!(AlertScope, "alert scope" { Node => "NODE", Ip => "IP", Pool => "POOL", Provider => "PROVIDER", IpProvider => "IP_PROVIDER" });

impl AlertCondition {
    /// Whether the rule counts mail flow over a window, and so may have a scope.
    pub fn counts_mail(self) -> bool {
        matches!(
            self,
            AlertCondition::BounceRate
                | AlertCondition::DeferralRate
                | AlertCondition::CategoryCount
        )
    }
}
crate::stored_enum!(AlertAggregate, "alert aggregate" { Max => "MAX", Min => "MIN", Sum => "SUM", Avg => "AVG" });
crate::stored_enum!(AlertComparison, "alert comparison" { Gt => "GT", Gte => "GTE", Lt => "LT", Lte => "LTE" });
crate::stored_enum!(AlertSeverity, "alert severity" { Warning => "WARNING", Critical => "CRITICAL" });
crate::stored_enum!(AlertState, "alert state" { Pending => "PENDING", Firing => "FIRING", Resolved => "RESOLVED" });

impl AlertComparison {
    pub fn symbol(self) -> &'static str {
        match self {
            AlertComparison::Gt => ">",
            AlertComparison::Gte => ">=",
            AlertComparison::Lt => "<",
            AlertComparison::Lte => "<=",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            AlertComparison::Gt => value > threshold,
            AlertComparison::Gte => value >= threshold,
            AlertComparison::Lt => value < threshold,
            AlertComparison::Lte => value <= threshold,
        }
    }

    /// Whether a breach is a value above the threshold.
    pub fn upward(self) -> bool {
        matches!(self, AlertComparison::Gt | AlertComparison::Gte)
    }

    /// The resolve threshold a rule gets when it sets none: 5% of |threshold| back on
    /// the clear side, or the threshold itself when it is 0.
    pub fn default_resolve(self, threshold: f64) -> f64 {
        let margin = threshold.abs() * 0.05;
        if self.upward() {
            threshold - margin
        } else {
            threshold + margin
        }
    }

    /// Whether `value` is back past the resolve threshold: no longer a breach, and on
    /// the far side of (or at) `resolve`. A value between the two changes nothing.
    pub fn cleared(self, value: f64, threshold: f64, resolve: f64) -> bool {
        if self.breached(value, threshold) {
            return false;
        }
        if self.upward() {
            value <= resolve
        } else {
            value >= resolve
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_keeps_a_value_between_the_thresholds_unchanged() {
        let gt = AlertComparison::Gt;
        let resolve = gt.default_resolve(90.0);
        assert_eq!(resolve, 85.5);
        assert!(gt.breached(93.5, 90.0));
        assert!(!gt.breached(88.0, 90.0) && !gt.cleared(88.0, 90.0, resolve));
        assert!(gt.cleared(85.5, 90.0, resolve));
        assert!(gt.cleared(0.0, 0.0, gt.default_resolve(0.0)));
        assert!(!gt.cleared(1.0, 0.0, gt.default_resolve(0.0)));
        let lt = AlertComparison::Lt;
        assert_eq!(lt.default_resolve(-10.0), -9.5);
        assert!(lt.cleared(-9.5, -10.0, -9.5));
        assert!(!lt.cleared(-9.8, -10.0, -9.5));
        assert!(AlertComparison::Gte.breached(0.0, 0.0));
        assert!(!AlertComparison::Gte.cleared(0.0, 0.0, 0.0));
    }

    #[test]
    fn stored_names_round_trip() {
        for c in AlertCondition::ALL {
            assert_eq!(AlertCondition::parse(c.as_str()).ok(), Some(*c));
        }
        assert_eq!(AlertState::parse("FIRING").ok(), Some(AlertState::Firing));
        // Policies store conditions and severities through serde: the same text.
        for c in AlertCondition::ALL {
            assert_eq!(serde_json::to_value(c).ok(), Some(c.as_str().into()));
        }
        for s in AlertSeverity::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
        }
        assert!(AlertSeverity::parse("INFO").is_err());
    }
}
