//! The GraphQL shape of rules, alerts and silences.

use crate::graphql::pagination::found;
use async_graphql::{ComplexObject, Context, ID, InputObject, MaybeUndefined, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    alert::Model as AlertRow, alert_rule::Model as AlertRuleRow,
    alert_silence::Model as AlertSilenceRow,
};
use uuid::Uuid;

use crate::{
    auth::Role,
    error::{AppError, AppResult},
    graphql::{
        alerts::loaders::RulesById, guards::RoleGuard, loaders::load_one,
        nodes::loaders::NodesById, nodes::types::Node, pagination::id_texts,
    },
    nodes::{Label, NodeRole},
};

use crate::alerts::{
    AlertAggregate, AlertComparison, AlertCondition, AlertQuery, AlertScope, AlertSeverity,
    AlertState, MatcherDraft, RuleDraft, RuleSelector,
};
use crate::mailflow::BounceCategory;

fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}

/// Which nodes a rule applies to. Each non-empty list narrows it; all empty means every
/// node.
#[derive(SimpleObject, Clone, Debug)]
pub struct AlertSelector {
    /// The node must have at least one of these roles.
    pub roles: Vec<NodeRole>,
    /// The node must carry every one of these labels.
    pub labels: Vec<Label>,
    /// The node must be one of these.
    pub node_ids: Vec<ID>,
}

/// When an alert is raised: a condition, a threshold and how long it must hold, for the
/// nodes the selector picks.
#[derive(SimpleObject, Clone, Debug)]
pub struct AlertRule {
    /// The rule's id.
    pub id: ID,
    /// Unique, 1 to 128 characters.
    pub name: String,
    /// What the rule is for, as an operator reads it.
    pub description: Option<String>,
    /// What the rule watches.
    pub condition: AlertCondition,
    /// The metric a METRIC rule watches (a catalog or custom name); null otherwise.
    pub metric: Option<String>,
    /// Labels a series must carry to count for a METRIC rule (e.g. `mount=/`).
    pub metric_labels: Vec<Label>,
    /// How a METRIC rule combines the latest values of a node's matching series.
    pub aggregate: Option<AlertAggregate>,
    /// How the value is compared with the threshold.
    pub comparison: AlertComparison,
    /// The value that is a breach (a ratio from 0 to 1 for BOUNCE_RATE and DEFERRAL_RATE,
    /// a number of refusals for CATEGORY_COUNT; 0 for NODE_DOWN and IP_LISTED, whose
    /// values are 0 or 1).
    pub threshold: f64,
    /// The value an alert must get back past to resolve, as set; null means the default.
    pub resolve_threshold: Option<f64>,
    /// The resolve threshold in force: as set, or 5% of |threshold| back on the clear
    /// side (the threshold itself when it is 0).
    pub effective_resolve_threshold: f64,
    /// Seconds the breach must hold before the alert fires; 0 fires at once.
    #[graphql(name = "for")]
    pub for_seconds: i32,
    /// The window a BOUNCE_RATE, DEFERRAL_RATE or CATEGORY_COUNT rule counts over, in
    /// seconds; null for other rules.
    pub window_seconds: Option<i32>,
    /// What a mail-flow rule judges one by one (NODE, IP, POOL, PROVIDER, IP_PROVIDER);
    /// null for other rules.
    pub scope: Option<AlertScope>,
    /// The refusal category a CATEGORY_COUNT rule counts; null for other rules.
    pub category: Option<BounceCategory>,
    /// Whether an alert of this rule pauses the IP it names when it fires.
    pub pause_ip: bool,
    /// Severity of the alerts it raises.
    pub severity: AlertSeverity,
    /// A disabled rule raises nothing and its open alerts resolve.
    pub enabled: bool,
    /// Which nodes the rule applies to (for IP_LISTED: the nodes of the IPs).
    pub selector: AlertSelector,
    /// When the rule was created.
    pub created_at: DateTime<Utc>,
    /// When the rule last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it; null for the rules a new install starts with.
    pub updated_by: Option<String>,
}

impl TryFrom<AlertRuleRow> for AlertRule {
    type Error = AppError;

    fn try_from(m: AlertRuleRow) -> AppResult<Self> {
        let draft = RuleDraft::of(&m)?;
        Ok(AlertRule {
            id: id(m.id),
            effective_resolve_threshold: draft
                .resolve_threshold
                .unwrap_or_else(|| draft.comparison.default_resolve(draft.threshold)),
            name: draft.name,
            description: draft.description,
            condition: draft.condition,
            metric: draft.metric,
            metric_labels: draft.metric_labels,
            aggregate: draft.aggregate,
            comparison: draft.comparison,
            threshold: draft.threshold,
            resolve_threshold: draft.resolve_threshold,
            for_seconds: draft.for_seconds,
            window_seconds: draft.window_seconds,
            scope: draft.scope,
            category: draft.category,
            pause_ip: draft.pause_ip,
            severity: draft.severity,
            enabled: draft.enabled,
            selector: AlertSelector {
                roles: draft.selector.roles,
                labels: draft.selector.labels,
                node_ids: draft.selector.node_ids.into_iter().map(ID).collect(),
            },
            created_at: m.created_at,
            updated_at: m.updated_at,
            updated_by: m.updated_by,
        })
    }
}

/// Which nodes a rule applies to; each list at most 100 entries, empty or left out
/// means any.
#[derive(InputObject, Clone, Debug, Default)]
pub struct AlertSelectorInput {
    /// The node must have at least one of these roles.
    #[graphql(default)]
    pub roles: Vec<NodeRole>,
    /// The node must carry every one of these labels.
    #[graphql(default)]
    pub labels: Vec<Label>,
    /// The node must be one of these.
    #[graphql(default)]
    pub node_ids: Vec<ID>,
}

/// A new alert rule.
#[derive(InputObject, Clone, Debug)]
pub struct CreateAlertRuleInput {
    /// Unique, 1 to 128 characters.
    pub name: String,
    /// What the rule is for; at most 1,000 characters.
    pub description: Option<String>,
    /// What the rule watches.
    pub condition: AlertCondition,
    /// Required for METRIC (a catalog or custom metric name), refused otherwise.
    pub metric: Option<String>,
    /// METRIC only: labels a series must carry to count (at most 16).
    #[graphql(default)]
    pub metric_labels: Vec<Label>,
    /// METRIC only: how the latest values of a node's series combine; MAX when left out.
    pub aggregate: Option<AlertAggregate>,
    /// How the value is compared with the threshold.
    #[graphql(default_with = "AlertComparison::Gt")]
    pub comparison: AlertComparison,
    /// The value that is a breach; finite.
    #[graphql(default)]
    pub threshold: f64,
    /// The value an alert must get back past to resolve; on the clear side of the
    /// threshold. Left out: 5% of |threshold| back (the threshold itself when it is 0).
    pub resolve_threshold: Option<f64>,
    /// Seconds the breach must hold before the alert fires, 0 to 86,400.
    #[graphql(name = "for", default)]
    pub for_seconds: i32,
    /// BOUNCE_RATE, DEFERRAL_RATE and CATEGORY_COUNT only: the window counted, 60 to
    /// 86,400 seconds; 900 when left out.
    pub window_seconds: Option<i32>,
    /// BOUNCE_RATE, DEFERRAL_RATE and CATEGORY_COUNT only: what is judged one by one;
    /// NODE when left out. IP and IP_PROVIDER alerts name the IP.
    pub scope: Option<AlertScope>,
    /// CATEGORY_COUNT only (and required there): the refusal category counted.
    pub category: Option<BounceCategory>,
    /// IP and IP_PROVIDER scopes only: pause the IP when an alert of the rule fires (it
    /// leaves its MTA's pools like any paused IP; resume it by hand). Off by default.
    #[graphql(default)]
    pub pause_ip: bool,
    /// Severity of the alerts it raises.
    #[graphql(default_with = "AlertSeverity::Warning")]
    pub severity: AlertSeverity,
    /// Whether it is evaluated.
    #[graphql(default = true)]
    pub enabled: bool,
    /// Which nodes it applies to; all when left out.
    #[graphql(default)]
    pub selector: AlertSelectorInput,
}

/// Changes to a rule: a field left out stays as it is; `null` clears an optional one.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateAlertRuleInput {
    /// Unique, 1 to 128 characters.
    pub name: Option<String>,
    /// What the rule is for; null clears it.
    pub description: MaybeUndefined<String>,
    /// What the rule watches.
    pub condition: Option<AlertCondition>,
    /// The metric of a METRIC rule; null clears it (needed when leaving METRIC).
    pub metric: MaybeUndefined<String>,
    /// Labels a series must carry; replaces the list.
    pub metric_labels: Option<Vec<Label>>,
    /// How a METRIC rule's series combine; null clears it.
    pub aggregate: MaybeUndefined<AlertAggregate>,
    /// How the value is compared with the threshold.
    pub comparison: Option<AlertComparison>,
    /// The value that is a breach.
    pub threshold: Option<f64>,
    /// The resolve threshold; null returns to the default.
    pub resolve_threshold: MaybeUndefined<f64>,
    /// Seconds the breach must hold before the alert fires.
    #[graphql(name = "for")]
    pub for_seconds: Option<i32>,
    /// The window of a mail-flow rule; null clears it.
    pub window_seconds: MaybeUndefined<i32>,
    /// The scope of a mail-flow rule; null clears it (needed when leaving one).
    pub scope: MaybeUndefined<AlertScope>,
    /// The category of a CATEGORY_COUNT rule; null clears it.
    pub category: MaybeUndefined<BounceCategory>,
    /// Whether an alert that fires pauses the IP it names.
    pub pause_ip: Option<bool>,
    /// Severity of the alerts it raises from now on.
    pub severity: Option<AlertSeverity>,
    /// Whether it is evaluated; disabling resolves its open alerts.
    pub enabled: Option<bool>,
    /// Which nodes it applies to; replaces the selector.
    pub selector: Option<AlertSelectorInput>,
}

impl From<AlertSelectorInput> for RuleSelector {
    fn from(input: AlertSelectorInput) -> RuleSelector {
        RuleSelector {
            roles: input.roles,
            labels: input.labels,
            node_ids: id_texts(input.node_ids),
        }
    }
}

impl From<CreateAlertRuleInput> for RuleDraft {
    fn from(input: CreateAlertRuleInput) -> RuleDraft {
        RuleDraft {
            name: input.name,
            description: input.description,
            condition: input.condition,
            metric: input.metric,
            metric_labels: input.metric_labels,
            aggregate: input.aggregate,
            comparison: input.comparison,
            threshold: input.threshold,
            resolve_threshold: input.resolve_threshold,
            for_seconds: input.for_seconds,
            window_seconds: input.window_seconds,
            scope: input.scope,
            category: input.category,
            pause_ip: input.pause_ip,
            severity: input.severity,
            enabled: input.enabled,
            selector: input.selector.into(),
        }
    }
}

/// A nullable field of an update: left out keeps `current`, `null` clears it.
fn keep<T>(given: MaybeUndefined<T>, current: Option<T>) -> Option<T> {
    match given {
        MaybeUndefined::Undefined => current,
        MaybeUndefined::Null => None,
        MaybeUndefined::Value(v) => Some(v),
    }
}

impl UpdateAlertRuleInput {
    /// The stored rule with this update's fields changed.
    pub fn apply_to(self, current: RuleDraft) -> RuleDraft {
        RuleDraft {
            name: self.name.unwrap_or(current.name),
            description: keep(self.description, current.description),
            condition: self.condition.unwrap_or(current.condition),
            metric: keep(self.metric, current.metric),
            metric_labels: self.metric_labels.unwrap_or(current.metric_labels),
            aggregate: keep(self.aggregate, current.aggregate),
            comparison: self.comparison.unwrap_or(current.comparison),
            threshold: self.threshold.unwrap_or(current.threshold),
            resolve_threshold: keep(self.resolve_threshold, current.resolve_threshold),
            for_seconds: self.for_seconds.unwrap_or(current.for_seconds),
            window_seconds: keep(self.window_seconds, current.window_seconds),
            scope: keep(self.scope, current.scope),
            category: keep(self.category, current.category),
            pause_ip: self.pause_ip.unwrap_or(current.pause_ip),
            severity: self.severity.unwrap_or(current.severity),
            enabled: self.enabled.unwrap_or(current.enabled),
            selector: self.selector.map_or(current.selector, Into::into),
        }
    }
}

/// One rule's alert about one node or IP, from PENDING to RESOLVED.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Alert {
    /// The alert's id.
    pub id: ID,
    /// The id of the rule that raised it.
    pub rule_id: ID,
    /// Where it stands.
    pub state: AlertState,
    /// The rule's severity when the alert was raised.
    pub severity: AlertSeverity,
    /// The node it is about (for IP_LISTED, the IP's node), if any.
    pub node_id: Option<ID>,
    /// The sending IP it is about (IP_LISTED, and mail-flow rules of scope IP or
    /// IP_PROVIDER), if any.
    pub ip: Option<String>,
    /// The value last evaluated.
    pub value: Option<f64>,
    /// The rule's threshold when the alert was raised.
    pub threshold: f64,
    /// What an operator reads, e.g. `mta-01: system.disk.used_percent 93.5 > 90`.
    pub message: String,
    /// When the breach was first seen.
    pub pending_since: DateTime<Utc>,
    /// When it fired; null while PENDING and for alerts resolved before firing.
    pub fired_at: Option<DateTime<Utc>>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Whether someone acknowledged it.
    pub acknowledged: bool,
    /// When it was acknowledged.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// The note left with the acknowledgement.
    pub acknowledge_note: Option<String>,
    /// Whether a silence covers it now.
    pub silenced: bool,
    /// Until when a silence covers it; null when none does.
    pub silenced_until: Option<DateTime<Utc>>,
    /// The silence that covers (or covered) it.
    pub silence_id: Option<ID>,
    #[graphql(skip)]
    pub rule_uuid: Uuid,
    #[graphql(skip)]
    pub node_uuid: Option<Uuid>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = AppError;

    fn try_from(m: AlertRow) -> AppResult<Self> {
        let now = Utc::now();
        Ok(Alert {
            id: id(m.id),
            rule_id: id(m.rule_id),
            state: AlertState::parse(&m.state)?,
            severity: AlertSeverity::parse(&m.severity)?,
            node_id: m.node_id.map(id),
            ip: m.ip,
            value: m.value,
            threshold: m.threshold,
            message: m.message,
            pending_since: m.pending_since,
            fired_at: m.fired_at,
            resolved_at: m.resolved_at,
            acknowledged: m.acknowledged_at.is_some(),
            acknowledged_at: m.acknowledged_at,
            acknowledged_by: m.acknowledged_by,
            acknowledge_note: m.acknowledge_note,
            silenced: m.silenced_until.is_some_and(|until| until > now),
            silenced_until: m.silenced_until,
            silence_id: m.silence_id.map(id),
            rule_uuid: m.rule_id,
            node_uuid: m.node_id,
        })
    }
}

#[ComplexObject]
impl Alert {
    /// The rule that raised it.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn rule(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AlertRule>> {
        let rule = load_one::<RulesById, _>(ctx, self.rule_uuid).await?;
        Ok(found(rule)?)
    }

    /// The node it is about, if any.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn node(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Node>> {
        let Some(node_id) = self.node_uuid else {
            return Ok(None);
        };
        let node = load_one::<NodesById, _>(ctx, node_id).await?;
        Ok(found(node)?)
    }
}

/// Which alerts to list; each list narrows, left out or empty means any.
#[derive(InputObject, Clone, Debug, Default)]
pub struct AlertFilter {
    /// Only alerts in these states.
    pub states: Option<Vec<AlertState>>,
    /// Only alerts of these severities.
    pub severities: Option<Vec<AlertSeverity>>,
    /// Only alerts about these nodes (at most 100).
    pub node_ids: Option<Vec<ID>>,
    /// Only alerts of these rules (at most 100).
    pub rule_ids: Option<Vec<ID>>,
    /// Only alerts a silence covers now (true), or none covers (false).
    pub silenced: Option<bool>,
}

impl From<AlertFilter> for AlertQuery {
    fn from(filter: AlertFilter) -> AlertQuery {
        AlertQuery {
            states: filter.states,
            severities: filter.severities,
            node_ids: filter.node_ids.map(id_texts),
            rule_ids: filter.rule_ids.map(id_texts),
            silenced: filter.silenced,
        }
    }
}

/// Which alerts a silence covers: an alert matches when it matches every list given.
/// At least one list; each at most 100 entries.
#[derive(InputObject, Clone, Debug, Default)]
pub struct SilenceMatcherInput {
    /// Alerts of these rules.
    pub rule_ids: Option<Vec<ID>>,
    /// Alerts about these nodes.
    pub node_ids: Option<Vec<ID>>,
    /// Alerts of these severities.
    pub severities: Option<Vec<AlertSeverity>>,
    /// Alerts about these sending IPs.
    pub ips: Option<Vec<String>>,
}

impl From<SilenceMatcherInput> for MatcherDraft {
    fn from(input: SilenceMatcherInput) -> MatcherDraft {
        MatcherDraft {
            rule_ids: input.rule_ids.map(id_texts),
            node_ids: input.node_ids.map(id_texts),
            severities: input.severities,
            ips: input.ips,
        }
    }
}

/// Which alerts a silence covers; empty lists match any.
#[derive(SimpleObject, Clone, Debug)]
pub struct SilenceMatcher {
    /// Alerts of these rules.
    pub rule_ids: Vec<ID>,
    /// Alerts about these nodes.
    pub node_ids: Vec<ID>,
    /// Alerts of these severities.
    pub severities: Vec<AlertSeverity>,
    /// Alerts about these sending IPs.
    pub ips: Vec<String>,
}

/// Quiets the alerts its matcher picks, from `startsAt` until `endsAt`: they still
/// change state, but show as silenced and do not count as active.
#[derive(SimpleObject, Clone, Debug)]
pub struct AlertSilence {
    /// The silence's id.
    pub id: ID,
    /// Which alerts it covers.
    pub matcher: SilenceMatcher,
    /// When it started.
    pub starts_at: DateTime<Utc>,
    /// When it ends (or ended, when expired early).
    pub ends_at: DateTime<Utc>,
    /// Whether it is in force now.
    pub active: bool,
    /// Why, as the operator put it.
    pub reason: String,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl TryFrom<AlertSilenceRow> for AlertSilence {
    type Error = AppError;

    fn try_from(m: AlertSilenceRow) -> AppResult<Self> {
        let matcher = crate::alerts::Matcher::from_json(&m.matcher);
        let now = Utc::now();
        Ok(AlertSilence {
            id: id(m.id),
            matcher: SilenceMatcher {
                rule_ids: matcher.rule_ids.into_iter().map(id).collect(),
                node_ids: matcher.node_ids.into_iter().map(id).collect(),
                severities: matcher
                    .severities
                    .iter()
                    .map(|s| AlertSeverity::parse(s))
                    .collect::<AppResult<_>>()?,
                ips: matcher.ips,
            },
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            active: m.starts_at <= now && now < m.ends_at,
            reason: m.reason,
            created_by: m.created_by,
            created_at: m.created_at,
        })
    }
}

/// A new silence and how many open alerts it covered at once.
#[derive(SimpleObject, Clone, Debug)]
pub struct SilenceAlertsResult {
    /// The silence.
    pub silence: AlertSilence,
    /// How many open (PENDING or FIRING) alerts it covered when created; alerts raised
    /// later are covered as they are raised.
    pub covered: i32,
}
