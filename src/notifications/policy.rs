//! The notification policy: where alerts go and how they are grouped and repeated, as
//! Alertmanager's routing tree with one level of routes under the default route.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::{
    alerts::AlertSnapshot,
    audit::{self, AuditContext, Change},
    db::parse_ids,
    error::{AppError, AppResult},
    input,
    nodes::NodeRole,
};

use super::{
    model::{Policy, PolicyDraft, Route, RouteDraft, Timings},
    payload::GROUPABLE_LABELS,
    store,
};

pub const MAX_ROUTES: usize = 50;
pub const MAX_MATCHER_ENTRIES: usize = 100;
pub const MAX_CONTACT_POINTS_PER_ROUTE: usize = 20;
pub const GROUP_WAIT_SECONDS: std::ops::RangeInclusive<i32> = 0..=86_400;
pub const GROUP_INTERVAL_SECONDS: std::ops::RangeInclusive<i32> = 1..=86_400;
pub const REPEAT_INTERVAL_SECONDS: std::ops::RangeInclusive<i32> = 1..=30 * 86_400;

/// The policy in force and who set it.
#[derive(Clone, Debug)]
pub struct PolicyRecord {
    pub policy: Policy,
    /// None while the defaults apply.
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

pub async fn current(conn: &impl ConnectionTrait) -> AppResult<PolicyRecord> {
    match store::policy::get(conn).await? {
        None => Ok(PolicyRecord {
            policy: Policy::default(),
            updated_at: None,
            updated_by: None,
        }),
        Some(row) => Ok(PolicyRecord {
            policy: serde_json::from_value(row.spec)
                .map_err(|e| AppError::internal(format!("the notification policy: {e}")))?,
            updated_at: Some(row.updated_at),
            updated_by: Some(row.updated_by),
        }),
    }
}

/// The node facts routes match on.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub roles: Vec<NodeRole>,
    pub labels: BTreeMap<String, String>,
}

/// A route with the default route's settings filled in where it sets none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveRoute {
    /// `default`, or the route's index.
    pub key: String,
    pub contact_point_ids: Vec<Uuid>,
    pub group_by: Vec<String>,
    pub group_wait_seconds: i32,
    pub group_interval_seconds: i32,
    pub repeat_interval_seconds: i32,
    pub send_resolved: bool,
}

fn listed_or_any<T: PartialEq>(list: &[T], value: Option<&T>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.contains(v))
}

impl Route {
    /// Whether the alert (on `node`, if it has one) is one this route takes.
    pub fn matches(&self, alert: &AlertSnapshot, node: Option<&NodeFacts>) -> bool {
        let severity = crate::alerts::AlertSeverity::parse(&alert.severity).ok();
        let condition = crate::alerts::AlertCondition::parse(&alert.condition).ok();
        listed_or_any(&self.severities, severity.as_ref())
            && listed_or_any(&self.conditions, condition.as_ref())
            && listed_or_any(&self.rule_ids, Some(&alert.rule_id))
            && listed_or_any(&self.node_ids, alert.node_id.as_ref())
            && (self.node_roles.is_empty()
                || node.is_some_and(|n| n.roles.iter().any(|r| self.node_roles.contains(r))))
            && (self.labels.is_empty()
                || node
                    .is_some_and(|n| self.labels.iter().all(|(k, v)| n.labels.get(k) == Some(v))))
    }
}

impl Policy {
    fn effective(&self, key: String, route: Option<&Route>) -> EffectiveRoute {
        let t = route.map(|r| r.timings.clone()).unwrap_or_default();
        let contact_point_ids = match route {
            Some(r) if !r.contact_point_ids.is_empty() => r.contact_point_ids.clone(),
            _ => self.contact_point_ids.clone(),
        };
        EffectiveRoute {
            key,
            contact_point_ids,
            group_by: t.group_by.unwrap_or_else(|| self.group_by.clone()),
            group_wait_seconds: t.group_wait_seconds.unwrap_or(self.group_wait_seconds),
            group_interval_seconds: t
                .group_interval_seconds
                .unwrap_or(self.group_interval_seconds),
            repeat_interval_seconds: t
                .repeat_interval_seconds
                .unwrap_or(self.repeat_interval_seconds),
            send_resolved: t.send_resolved.unwrap_or(self.send_resolved),
        }
    }

    /// The routes an alert takes: the routes that match, in order, up to the first that
    /// does not `continue`; the default route when none matches.
    pub fn routes_for(
        &self,
        alert: &AlertSnapshot,
        node: Option<&NodeFacts>,
    ) -> Vec<EffectiveRoute> {
        let mut taken = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            if route.matches(alert, node) {
                taken.push(self.effective(index.to_string(), Some(route)));
                if !route.continue_matching {
                    break;
                }
            }
        }
        if taken.is_empty() {
            taken.push(self.effective("default".into(), None));
        }
        taken
    }

    /// The route a group was formed on, as the policy now sets it; the default route when
    /// the policy no longer has it.
    pub fn route_by_key(&self, key: &str) -> EffectiveRoute {
        match key.parse::<usize>().ok().and_then(|i| self.routes.get(i)) {
            Some(route) => self.effective(key.to_string(), Some(route)),
            None => self.effective("default".into(), None),
        }
    }

    /// Where the policy names contact point `id`, if it does.
    pub fn routes_sending_to(&self, id: Uuid) -> Option<String> {
        if self.contact_point_ids.contains(&id) {
            return Some("the default route".into());
        }
        self.routes
            .iter()
            .position(|r| r.contact_point_ids.contains(&id))
            .map(|i| format!("route {i}"))
    }
}

fn bounded_list<T>(field: &str, list: Vec<T>, max: usize) -> AppResult<Vec<T>> {
    if list.len() > max {
        return Err(AppError::bad_input(
            field,
            format!("{} entries; at most {max}", list.len()),
        ));
    }
    Ok(list)
}

fn group_by(field: &str, names: Vec<String>) -> AppResult<Vec<String>> {
    let names = bounded_list(field, names, GROUPABLE_LABELS.len() + 1)?;
    for name in &names {
        if name != "..." && !GROUPABLE_LABELS.contains(&name.as_str()) {
            return Err(AppError::bad_input(
                field,
                format!(
                    "'{}' is not a label; use {} or '...' (every label)",
                    name.chars().take(64).collect::<String>(),
                    GROUPABLE_LABELS.join(", ")
                ),
            ));
        }
    }
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(unique)
}

fn timings(field: &str, t: Timings) -> AppResult<Timings> {
    let seconds = |name: &str, v: Option<i32>, range: std::ops::RangeInclusive<i32>| {
        v.map(|v| input::in_range(&format!("{field}.{name}"), v, range))
            .transpose()
    };
    Ok(Timings {
        group_by: t
            .group_by
            .map(|g| group_by(&format!("{field}.groupBy"), g))
            .transpose()?,
        group_wait_seconds: seconds("groupWaitSeconds", t.group_wait_seconds, GROUP_WAIT_SECONDS)?,
        group_interval_seconds: seconds(
            "groupIntervalSeconds",
            t.group_interval_seconds,
            GROUP_INTERVAL_SECONDS,
        )?,
        repeat_interval_seconds: seconds(
            "repeatIntervalSeconds",
            t.repeat_interval_seconds,
            REPEAT_INTERVAL_SECONDS,
        )?,
        send_resolved: t.send_resolved,
    })
}

async fn contact_points(
    conn: &impl ConnectionTrait,
    field: &str,
    ids: &[String],
) -> AppResult<Vec<Uuid>> {
    let ids = bounded_list(field, parse_ids(field, ids)?, MAX_CONTACT_POINTS_PER_ROUTE)?;
    let found = store::contact_points::find_many(conn, &ids).await?;
    if let Some(missing) = ids.iter().find(|id| !found.iter().any(|c| c.id == **id)) {
        return Err(AppError::bad_input(
            field,
            format!("there is no contact point with id {missing}"),
        ));
    }
    let mut unique = ids;
    unique.sort_unstable();
    unique.dedup();
    Ok(unique)
}

async fn route(conn: &impl ConnectionTrait, index: usize, draft: RouteDraft) -> AppResult<Route> {
    let field = format!("input.routes[{index}]");
    let named = |name: &str| format!("{field}.{name}");
    Ok(Route {
        severities: bounded_list(&named("severities"), draft.severities, MAX_MATCHER_ENTRIES)?,
        rule_ids: bounded_list(
            &named("ruleIds"),
            parse_ids(&named("ruleIds"), &draft.rule_ids)?,
            MAX_MATCHER_ENTRIES,
        )?,
        node_roles: bounded_list(&named("nodeRoles"), draft.node_roles, MAX_MATCHER_ENTRIES)?,
        labels: crate::nodes::validate_labels(&named("labels"), &draft.labels)?,
        node_ids: bounded_list(
            &named("nodeIds"),
            parse_ids(&named("nodeIds"), &draft.node_ids)?,
            MAX_MATCHER_ENTRIES,
        )?,
        conditions: bounded_list(&named("conditions"), draft.conditions, MAX_MATCHER_ENTRIES)?,
        contact_point_ids: contact_points(
            conn,
            &named("contactPointIds"),
            &draft.contact_point_ids,
        )
        .await?,
        timings: timings(&field, draft.timings)?,
        continue_matching: draft.continue_matching,
    })
}

/// Replaces the policy.
pub async fn set(
    db: &DatabaseConnection,
    audit: &AuditContext,
    draft: PolicyDraft,
) -> AppResult<PolicyRecord> {
    let change = Change::new("notification_policy.set")
        .detail(serde_json::json!({ "routes": draft.routes.len() }));
    audit::audited(db, audit, change.clone(), async {
        let routes = bounded_list("input.routes", draft.routes, MAX_ROUTES)?;
        let txn = crate::db::begin_write(db).await?;
        let defaults = Policy::default();
        let t = timings("input", draft.timings)?;
        let mut policy = Policy {
            contact_point_ids: contact_points(
                &txn,
                "input.contactPointIds",
                &draft.contact_point_ids,
            )
            .await?,
            group_by: t.group_by.unwrap_or(defaults.group_by),
            group_wait_seconds: t.group_wait_seconds.unwrap_or(defaults.group_wait_seconds),
            group_interval_seconds: t
                .group_interval_seconds
                .unwrap_or(defaults.group_interval_seconds),
            repeat_interval_seconds: t
                .repeat_interval_seconds
                .unwrap_or(defaults.repeat_interval_seconds),
            send_resolved: t.send_resolved.unwrap_or(defaults.send_resolved),
            routes: Vec::new(),
        };
        for (index, draft) in routes.into_iter().enumerate() {
            policy.routes.push(route(&txn, index, draft).await?);
        }
        let spec = serde_json::to_value(&policy).map_err(|e| AppError::internal(e.to_string()))?;
        store::policy::put(&txn, spec, &audit.actor.name).await?;
        audit::commit(txn, audit, change.clone()).await?;
        current(db).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(severity: &str, condition: &str) -> AlertSnapshot {
        AlertSnapshot {
            condition: condition.into(),
            severity: severity.into(),
            node_id: Some(Uuid::nil()),
            hostname: Some("mta-01".into()),
            ..AlertSnapshot::synthetic("Disk", String::new(), Utc::now())
        }
    }

    #[test]
    fn routes_match_in_order_and_continue_goes_on() {
        let pager = Uuid::now_v7();
        let chat = Uuid::now_v7();
        let mut policy = Policy {
            contact_point_ids: vec![Uuid::nil()],
            ..Policy::default()
        };
        policy.routes = vec![
            Route {
                severities: vec![crate::alerts::AlertSeverity::Critical],
                contact_point_ids: vec![pager],
                continue_matching: true,
                ..Route::default()
            },
            Route {
                node_roles: vec![NodeRole::Mta],
                labels: BTreeMap::from([("dc".into(), "fra1".into())]),
                contact_point_ids: vec![chat],
                timings: Timings {
                    group_wait_seconds: Some(5),
                    ..Timings::default()
                },
                ..Route::default()
            },
        ];
        let mta = NodeFacts {
            roles: vec![NodeRole::Mta],
            labels: BTreeMap::from([("dc".into(), "fra1".into())]),
        };
        let both = policy.routes_for(&alert("CRITICAL", "METRIC"), Some(&mta));
        assert_eq!(
            both.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["0", "1"]
        );
        assert_eq!(both[1].group_wait_seconds, 5);
        assert_eq!(both[0].group_wait_seconds, 30);
        let warning = policy.routes_for(&alert("WARNING", "METRIC"), Some(&mta));
        assert_eq!(warning[0].contact_point_ids, [chat]);
        let elsewhere = policy.routes_for(&alert("WARNING", "METRIC"), Some(&NodeFacts::default()));
        assert_eq!(elsewhere[0].key, "default");
        assert_eq!(elsewhere[0].contact_point_ids, [Uuid::nil()]);
        assert_eq!(policy.routes_sending_to(chat).as_deref(), Some("route 1"));
    }

    #[test]
    fn the_stored_policy_keeps_its_shape() {
        let policy = Policy {
            routes: vec![Route {
                severities: vec![crate::alerts::AlertSeverity::Warning],
                conditions: vec![crate::alerts::AlertCondition::NodeDown],
                node_roles: vec![NodeRole::Mongodb],
                continue_matching: true,
                ..Route::default()
            }],
            ..Policy::default()
        };
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["routes"][0]["severities"][0], "WARNING");
        assert_eq!(json["routes"][0]["conditions"][0], "NODE_DOWN");
        assert_eq!(json["routes"][0]["nodeRoles"][0], "MONGODB");
        assert_eq!(json["routes"][0]["continue"], true);
        let back: Policy = serde_json::from_value(json).unwrap();
        assert_eq!(back, policy);
    }
}
