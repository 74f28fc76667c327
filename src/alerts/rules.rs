//! Alert rules: listing, and creating, changing and deleting them with validation.

use std::collections::BTreeMap;

use chrono::Utc;
use entity::alert_rule::Model as RuleRow;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    error::{AppError, AppResult},
    nodes::{Label, NodeRole},
    state::AppState,
};

use crate::mailflow::BounceCategory;

use super::{
    AlertAggregate, AlertComparison, AlertCondition, AlertScope, AlertSeverity, AlertState,
    notices::{AlertSnapshot, notifies},
    store::{
        self,
        rules::{RuleSpec, role_from_str},
    },
};

/// The most rules an install may hold.
pub const MAX_RULES: u64 = 500;
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_METRIC_LABELS: usize = 16;
pub const MAX_SELECTOR_ENTRIES: usize = 100;
pub const MAX_FOR_SECONDS: i32 = 86_400;
pub const DEFAULT_WINDOW_SECONDS: i32 = 900;
pub const MIN_WINDOW_SECONDS: i32 = 60;
pub const MAX_WINDOW_SECONDS: i32 = 86_400;

/// A rule as the caller gave it, before validation (or as stored, for an update to
/// change).
#[derive(Clone, Debug)]
pub struct RuleDraft {
    pub name: String,
    pub description: Option<String>,
    pub condition: AlertCondition,
    pub metric: Option<String>,
    pub metric_labels: Vec<Label>,
    pub aggregate: Option<AlertAggregate>,
    pub comparison: AlertComparison,
    pub threshold: f64,
    pub resolve_threshold: Option<f64>,
    pub for_seconds: i32,
    pub window_seconds: Option<i32>,
    /// What a mail-flow rule judges one by one; NODE when left out.
    pub scope: Option<AlertScope>,
    /// The refusal category a CATEGORY_COUNT rule counts.
    pub category: Option<BounceCategory>,
    /// Pause the IP an alert of the rule names when it fires (IP and IP_PROVIDER scopes).
    pub pause_ip: bool,
    pub severity: AlertSeverity,
    pub enabled: bool,
    pub selector: RuleSelector,
}

/// Which nodes a rule applies to; each non-empty list narrows it.
#[derive(Clone, Debug, Default)]
pub struct RuleSelector {
    pub roles: Vec<NodeRole>,
    pub labels: Vec<Label>,
    /// Node ids as given; validation parses them.
    pub node_ids: Vec<String>,
}

impl RuleDraft {
    /// The stored rule, as a draft an update changes.
    pub fn of(m: &RuleRow) -> AppResult<RuleDraft> {
        let texts = |json: &serde_json::Value| -> Vec<String> {
            json.as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        Ok(RuleDraft {
            name: m.name.clone(),
            description: m.description.clone(),
            condition: AlertCondition::parse(&m.condition)?,
            metric: m.metric.clone(),
            metric_labels: Label::from_json(&m.metric_labels),
            aggregate: m
                .aggregate
                .as_deref()
                .map(AlertAggregate::parse)
                .transpose()?,
            comparison: AlertComparison::parse(&m.comparison)?,
            threshold: m.threshold,
            resolve_threshold: m.resolve_threshold,
            for_seconds: m.for_seconds,
            window_seconds: m.window_seconds,
            scope: m.scope.as_deref().map(AlertScope::parse).transpose()?,
            category: m
                .category
                .as_deref()
                .map(BounceCategory::parse)
                .transpose()?,
            pause_ip: m.pause_ip,
            severity: AlertSeverity::parse(&m.severity)?,
            enabled: m.enabled,
            selector: RuleSelector {
                roles: texts(&m.selector_roles)
                    .iter()
                    .filter_map(|r| role_from_str(r))
                    .collect(),
                labels: Label::from_json(&m.selector_labels),
                node_ids: texts(&m.selector_node_ids),
            },
        })
    }
}

fn labels_map(field: &str, labels: &[Label]) -> AppResult<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for label in labels {
        map.extend(crate::nodes::validate_labels(
            field,
            std::slice::from_ref(label),
        )?);
    }
    Ok(map)
}

fn validate(draft: RuleDraft) -> AppResult<RuleSpec> {
    let name = crate::input::required_line("input.name", &draft.name, MAX_NAME_CHARS)?;
    let description = crate::input::bounded_free_text(
        "input.description",
        draft.description.as_deref(),
        MAX_DESCRIPTION_CHARS,
    )?;
    let is_metric = draft.condition == AlertCondition::Metric;
    let condition = draft.condition.as_str();
    let metric = match (is_metric, draft.metric.as_deref().map(str::trim)) {
        (true, None | Some("")) => {
            return Err(AppError::bad_input(
                "input.metric",
                "a METRIC rule needs a metric name",
            ));
        }
        (true, Some(m)) if !crate::metrics::is_valid_name(m) => {
            return Err(AppError::bad_input(
                "input.metric",
                format!(
                    "'{}' is not a metric name (lower case letters, digits, '_' and '.', at most 128)",
                    m.chars().take(130).collect::<String>()
                ),
            ));
        }
        (true, Some(m)) => Some(m.to_string()),
        (false, None) => None,
        (false, Some(_)) => {
            return Err(AppError::bad_input(
                "input.metric",
                format!("only METRIC rules name a metric, not {condition}"),
            ));
        }
    };
    if draft.metric_labels.len() > MAX_METRIC_LABELS {
        return Err(AppError::bad_input(
            "input.metricLabels",
            format!("at most {MAX_METRIC_LABELS} labels"),
        ));
    }
    if !is_metric && !draft.metric_labels.is_empty() {
        return Err(AppError::bad_input(
            "input.metricLabels",
            format!("only METRIC rules filter series by labels, not {condition}"),
        ));
    }
    let metric_labels = labels_map("input.metricLabels", &draft.metric_labels)?;
    let aggregate = match (is_metric, draft.aggregate) {
        (true, a) => Some(a.unwrap_or(AlertAggregate::Max)),
        (false, None) => None,
        (false, Some(_)) => {
            return Err(AppError::bad_input(
                "input.aggregate",
                format!("only METRIC rules aggregate series, not {condition}"),
            ));
        }
    };
    if !draft.threshold.is_finite() {
        return Err(AppError::bad_input("input.threshold", "must be finite"));
    }
    if let Some(resolve) = draft.resolve_threshold {
        if !resolve.is_finite() {
            return Err(AppError::bad_input(
                "input.resolveThreshold",
                "must be finite",
            ));
        }
        let clear_side = if draft.comparison.upward() {
            resolve <= draft.threshold
        } else {
            resolve >= draft.threshold
        };
        if !clear_side {
            return Err(AppError::bad_input(
                "input.resolveThreshold",
                format!(
                    "must be on the clear side of the threshold ({} {})",
                    if draft.comparison.upward() {
                        "at most"
                    } else {
                        "at least"
                    },
                    draft.threshold
                ),
            ));
        }
    }
    if !(0..=MAX_FOR_SECONDS).contains(&draft.for_seconds) {
        return Err(AppError::bad_input(
            "input.for",
            format!("must be 0 to {MAX_FOR_SECONDS} seconds"),
        ));
    }
    let counts_mail = draft.condition.counts_mail();
    let window_seconds = match (counts_mail, draft.window_seconds) {
        (true, None) => Some(DEFAULT_WINDOW_SECONDS),
        (true, Some(w)) if (MIN_WINDOW_SECONDS..=MAX_WINDOW_SECONDS).contains(&w) => Some(w),
        (true, Some(_)) => {
            return Err(AppError::bad_input(
                "input.windowSeconds",
                format!("must be {MIN_WINDOW_SECONDS} to {MAX_WINDOW_SECONDS} seconds"),
            ));
        }
        (false, None) => None,
        (false, Some(_)) => {
            return Err(AppError::bad_input(
                "input.windowSeconds",
                format!(
                    "only BOUNCE_RATE, DEFERRAL_RATE and CATEGORY_COUNT rules count over a window, not {condition}"
                ),
            ));
        }
    };
    let scope = match (counts_mail, draft.scope) {
        (true, scope) => Some(scope.unwrap_or_default()),
        (false, None) => None,
        (false, Some(_)) => {
            return Err(AppError::bad_input(
                "input.scope",
                format!(
                    "only BOUNCE_RATE, DEFERRAL_RATE and CATEGORY_COUNT rules have a scope, not {condition}"
                ),
            ));
        }
    };
    let category = match (draft.condition, draft.category) {
        (AlertCondition::CategoryCount, Some(category)) => Some(category),
        (AlertCondition::CategoryCount, None) => {
            return Err(AppError::bad_input(
                "input.category",
                "a CATEGORY_COUNT rule counts one category (BLOCKED_IP, THROTTLED, …)",
            ));
        }
        (_, None) => None,
        (_, Some(_)) => {
            return Err(AppError::bad_input(
                "input.category",
                format!("only CATEGORY_COUNT rules count a category, not {condition}"),
            ));
        }
    };
    if draft.pause_ip && !scope.is_some_and(AlertScope::names_ip) {
        return Err(AppError::bad_input(
            "input.pauseIp",
            "only a rule whose alerts name an IP (scope IP or IP_PROVIDER) can pause it",
        ));
    }
    if draft.condition == AlertCondition::CategoryCount && !(0.0..=1e9).contains(&draft.threshold) {
        return Err(AppError::bad_input(
            "input.threshold",
            "a count: 0 to 1,000,000,000",
        ));
    }
    if matches!(
        draft.condition,
        AlertCondition::BounceRate | AlertCondition::DeferralRate
    ) && !(0.0..=1.0).contains(&draft.threshold)
    {
        return Err(AppError::bad_input(
            "input.threshold",
            "a rate: a share from 0 to 1 (0.05 is 5%)",
        ));
    }
    let selector = draft.selector;
    for (field, len) in [
        ("input.selector.roles", selector.roles.len()),
        ("input.selector.labels", selector.labels.len()),
        ("input.selector.nodeIds", selector.node_ids.len()),
    ] {
        if len > MAX_SELECTOR_ENTRIES {
            return Err(AppError::bad_input(
                field,
                format!("at most {MAX_SELECTOR_ENTRIES} entries"),
            ));
        }
    }
    let mut roles = selector.roles.clone();
    roles.sort_by_key(|r| r.bit());
    roles.dedup();
    let labels = labels_map("input.selector.labels", &selector.labels)?;
    let mut node_ids = crate::db::parse_ids("input.selector.nodeIds", &selector.node_ids)?;
    node_ids.sort();
    node_ids.dedup();
    Ok(RuleSpec {
        name,
        description,
        condition: draft.condition,
        metric,
        metric_labels,
        aggregate,
        comparison: draft.comparison,
        threshold: draft.threshold,
        resolve_threshold: draft.resolve_threshold,
        for_seconds: draft.for_seconds,
        window_seconds,
        scope,
        category,
        pause_ip: draft.pause_ip,
        severity: draft.severity,
        enabled: draft.enabled,
        roles,
        labels,
        node_ids,
    })
}

/// Refuses node ids that name no node, so a typo cannot make a rule that never matches.
async fn require_nodes(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: Vec<Uuid> = crate::nodes::find_many(conn, ids)
        .await?
        .into_iter()
        .map(|n| n.id)
        .collect();
    if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
        return Err(AppError::bad_input(
            "input.selector.nodeIds",
            format!("no node with id {missing}"),
        ));
    }
    Ok(())
}

async fn require_unique_name(
    conn: &impl ConnectionTrait,
    name: &str,
    except: Option<Uuid>,
) -> AppResult<()> {
    if store::rules::name_taken(conn, name, except).await? {
        return Err(AppError::Conflict(format!(
            "a rule named '{name}' already exists"
        )));
    }
    Ok(())
}

/// Every rule, by name.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<RuleRow>> {
    store::rules::list(db).await
}

fn change_detail(action: &'static str, name: Option<&str>) -> Change {
    Change::new(action).detail(serde_json::json!({
        "name": name.map(|n| n.chars().take(MAX_NAME_CHARS).collect::<String>()),
    }))
}

/// Creates a rule.
pub async fn create(
    db: &DatabaseConnection,
    audit: &AuditContext,
    draft: RuleDraft,
) -> AppResult<RuleRow> {
    let change = change_detail("alert_rule.create", Some(&draft.name));
    audit::audited(db, audit, change.clone(), async {
        let spec = validate(draft)?;
        let txn = crate::db::begin_write(db).await?;
        if store::rules::count(&txn).await? >= MAX_RULES {
            return Err(AppError::Conflict(format!(
                "there are already {MAX_RULES} rules, the most an install may hold; delete one first"
            )));
        }
        require_unique_name(&txn, &spec.name, None).await?;
        require_nodes(&txn, &spec.node_ids).await?;
        let id = Uuid::now_v7();
        let rule = store::rules::insert(&txn, id, spec, &audit.actor.name).await?;
        audit::commit(txn, audit, change.target("alert_rule", id)).await?;
        Ok(rule)
    })
    .await
}

/// Changes a rule: `change_draft` turns the stored rule into the new one, which is
/// validated like a new rule. The evaluator applies the change on its next cycle.
pub async fn update(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
    new_name: Option<&str>,
    change_draft: impl FnOnce(RuleDraft) -> RuleDraft + Send,
) -> AppResult<RuleRow> {
    let change = change_detail("alert_rule.update", new_name).target("alert_rule", id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let current = store::rules::get(&txn, id).await?;
        let spec = validate(change_draft(RuleDraft::of(&current)?))?;
        require_unique_name(&txn, &spec.name, Some(id)).await?;
        require_nodes(&txn, &spec.node_ids).await?;
        let rule = store::rules::update(&txn, current, spec, &audit.actor.name).await?;
        audit::commit(txn, audit, change.clone()).await?;
        Ok(rule)
    })
    .await
}

/// Deletes a rule and its alerts; its open alerts are announced as RESOLVED.
pub async fn delete(state: &AppState, audit: &AuditContext, id: Uuid) -> AppResult<RuleRow> {
    let db = &state.db;
    let change = Change::new("alert_rule.delete").target("alert_rule", id);
    let (rule, events) = audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let rule = store::rules::get(&txn, id).await?;
        let open = store::alerts::open_of_rule(&txn, id).await?;
        store::alerts::delete_of_rule(&txn, id).await?;
        store::rules::delete(&txn, id).await?;
        let now = Utc::now();
        let node_ids: Vec<Uuid> = open.iter().filter_map(|a| a.node_id).collect();
        let hostnames: std::collections::HashMap<Uuid, String> =
            crate::nodes::find_many(&txn, &node_ids)
                .await?
                .into_iter()
                .map(|n| (n.id, n.hostname))
                .collect();
        let mut notices = Vec::new();
        let mut events = Vec::new();
        for mut alert in open.iter().cloned() {
            let previous = AlertState::parse(&alert.state).ok();
            alert.state = AlertState::Resolved.as_str().into();
            alert.resolved_at = Some(now);
            alert.message = format!("rule '{}' was deleted", rule.name);
            if notifies(previous, &alert.state) {
                let hostname = alert.node_id.and_then(|n| hostnames.get(&n));
                notices.push(AlertSnapshot::of(
                    &alert,
                    &rule.name,
                    &rule.condition,
                    hostname.map(String::as_str),
                ));
            }
            events.push(super::evaluator::event(
                &alert,
                &rule.name,
                previous.map(|p| p.as_str().to_string()),
                now,
            ));
        }
        super::notices::record(&txn, notices, now).await?;
        let mut change = change.clone();
        change.detail = Some(serde_json::json!({ "name": rule.name, "openAlerts": open.len() }));
        audit::commit(txn, audit, change).await?;
        Ok((rule, events))
    })
    .await?;
    state.events.publish_all(events);
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(condition: AlertCondition) -> RuleDraft {
        RuleDraft {
            name: "disk".into(),
            description: None,
            condition,
            metric: None,
            metric_labels: vec![],
            aggregate: None,
            comparison: AlertComparison::Gt,
            threshold: 90.0,
            resolve_threshold: None,
            for_seconds: 0,
            window_seconds: None,
            scope: None,
            category: None,
            pause_ip: false,
            severity: AlertSeverity::Warning,
            enabled: true,
            selector: RuleSelector::default(),
        }
    }

    fn field_of(result: AppResult<RuleSpec>) -> String {
        match result {
            Err(AppError::BadInput { field, .. }) => field,
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn a_metric_rule_needs_a_metric_and_others_refuse_one() {
        assert_eq!(
            field_of(validate(draft(AlertCondition::Metric))),
            "input.metric"
        );
        let mut node_down = draft(AlertCondition::NodeDown);
        node_down.metric = Some("system.load1".into());
        assert_eq!(field_of(validate(node_down)), "input.metric");
        let mut metric = draft(AlertCondition::Metric);
        metric.metric = Some("system.disk.used_percent".into());
        let spec = validate(metric).unwrap();
        assert_eq!(spec.aggregate, Some(AlertAggregate::Max));
    }

    #[test]
    fn bounce_rate_rules_get_a_window_and_others_refuse_one() {
        let bounce_rate = || {
            let mut rule = draft(AlertCondition::BounceRate);
            rule.threshold = 0.05;
            rule
        };
        let spec = validate(bounce_rate()).unwrap();
        assert_eq!(spec.window_seconds, Some(900));
        assert_eq!(spec.scope, Some(AlertScope::Node), "node by default");
        let mut as_percent = bounce_rate();
        as_percent.threshold = 5.0;
        assert_eq!(field_of(validate(as_percent)), "input.threshold");
        let mut short = bounce_rate();
        short.window_seconds = Some(59);
        assert_eq!(field_of(validate(short)), "input.windowSeconds");
        let mut ip = draft(AlertCondition::IpListed);
        ip.window_seconds = Some(900);
        assert_eq!(field_of(validate(ip)), "input.windowSeconds");
    }

    #[test]
    fn a_resolve_threshold_must_be_on_the_clear_side() {
        let mut d = draft(AlertCondition::NodeDown);
        d.resolve_threshold = Some(95.0);
        assert_eq!(field_of(validate(d)), "input.resolveThreshold");
        let mut d = draft(AlertCondition::NodeDown);
        d.threshold = f64::NAN;
        assert_eq!(field_of(validate(d)), "input.threshold");
        let mut d = draft(AlertCondition::NodeDown);
        d.for_seconds = 86_401;
        assert_eq!(field_of(validate(d)), "input.for");
    }
}
