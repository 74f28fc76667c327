//! Grouping: alert changes taken in from the outbox into groups (by route and `groupBy`
//! labels), and each due group's look: whether to notify now, and of which alerts, as
//! Alertmanager decides it (`groupWait`, `groupInterval`, `repeatInterval`,
//! `sendResolved`), after leaving out what silences, maintenance, disabled rules and DOWN
//! nodes mute.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use entity::{
    notification::Model as NotificationRow, notification_group::Model as GroupRow,
    notification_group_alert::Model as MemberRow,
};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use crate::{
    alerts::{AlertCondition, AlertSnapshot, AlertState},
    error::{AppError, AppResult},
    nodes::{Label, NodeRole, NodeStatus},
};

use super::{
    config::NotificationsConfig,
    model::{NotificationState, NotificationStatus, Policy},
    payload::{self, MessageParts},
    policy::{EffectiveRoute, NodeFacts},
    store,
};

/// Alert changes taken in per transaction.
const TAKE_IN_BATCH: u64 = 2_000;
/// Groups looked at per transaction.
const FLUSH_BATCH: u64 = 1_000;

fn seconds(s: i32) -> Duration {
    Duration::seconds(i64::from(s))
}

fn json<T: serde::Serialize>(value: &T) -> AppResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| AppError::internal(e.to_string()))
}

/// Takes waiting alert changes into their groups, forming (or waking) groups as needed,
/// and removes them from the outbox, all in `txn`. Returns how many were taken in.
pub(super) async fn take_in(
    txn: &DatabaseTransaction,
    policy: &Policy,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let notices = crate::alerts::waiting_notices(txn, TAKE_IN_BATCH).await?;
    if notices.is_empty() {
        return Ok(0);
    }
    let mut node_ids: Vec<Uuid> = notices.iter().filter_map(|n| n.alert.node_id).collect();
    node_ids.sort_unstable();
    node_ids.dedup();
    let nodes: HashMap<Uuid, NodeFacts> = crate::nodes::find_many(txn, &node_ids)
        .await?
        .into_iter()
        .map(|n| {
            let facts = NodeFacts {
                roles: NodeRole::from_mask(n.roles_mask),
                labels: Label::from_json(&n.labels)
                    .into_iter()
                    .map(|l| (l.key, l.value))
                    .collect(),
            };
            (n.id, facts)
        })
        .collect();

    // Each change goes to every route it takes, into the group of its labels there.
    struct Placement<'a> {
        key: String,
        route: EffectiveRoute,
        group_labels: BTreeMap<String, String>,
        alert: &'a AlertSnapshot,
    }
    let mut placements = Vec::new();
    for notice in &notices {
        let node = notice.alert.node_id.and_then(|id| nodes.get(&id));
        let labels = payload::labels(&notice.alert);
        for route in policy.routes_for(&notice.alert, node) {
            let group_labels = payload::group_labels(&labels, &route.group_by);
            placements.push(Placement {
                key: payload::group_key(&route.key, &group_labels),
                route,
                group_labels,
                alert: &notice.alert,
            });
        }
    }
    let mut keys: Vec<String> = placements.iter().map(|p| p.key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut groups: HashMap<String, GroupRow> = store::groups::find_by_keys(txn, &keys)
        .await?
        .into_iter()
        .map(|g| (g.group_key.clone(), g))
        .collect();
    let mut formed = Vec::new();
    let mut woken: HashMap<i32, Vec<Uuid>> = HashMap::new();
    for placement in &placements {
        match groups.get_mut(&placement.key) {
            Some(group) if group.next_flush_at.is_none() => {
                let wait = placement.route.group_wait_seconds;
                woken.entry(wait).or_default().push(group.id);
                group.next_flush_at = Some(now + seconds(wait));
            }
            Some(_) => {}
            None => {
                let group = GroupRow {
                    id: Uuid::now_v7(),
                    group_key: placement.key.clone(),
                    route: placement.route.key.clone(),
                    group_labels: json(&placement.group_labels)?,
                    sequence: 0,
                    next_flush_at: Some(now + seconds(placement.route.group_wait_seconds)),
                    last_notified_at: None,
                    created_at: now,
                };
                formed.push(group.clone());
                groups.insert(placement.key.clone(), group);
            }
        }
    }
    store::groups::insert_many(txn, formed).await?;
    for (wait, ids) in woken {
        store::groups::wake(txn, &ids, now + seconds(wait)).await?;
    }
    // One row per (group, alert): a later change of the same alert wins.
    let mut members: HashMap<(Uuid, Uuid), MemberRow> = HashMap::new();
    for placement in &placements {
        let group_id = groups[&placement.key].id;
        members.insert(
            (group_id, placement.alert.alert_id),
            MemberRow {
                group_id,
                alert_id: placement.alert.alert_id,
                state: placement.alert.state.clone(),
                notified_state: None,
                alert: json(placement.alert)?,
                updated_at: now,
            },
        );
    }
    store::groups::put_members(txn, members.into_values().collect()).await?;
    let ids: Vec<Uuid> = notices.iter().map(|n| n.id).collect();
    crate::alerts::remove_notices(txn, &ids).await?;
    Ok(notices.len())
}

/// Why an alert is left out of notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Muted {
    /// A silence covers it: neither its firing nor its resolution is told.
    Silenced,
    /// Its node is in maintenance.
    Maintenance,
    /// Its rule is disabled.
    RuleDisabled,
    /// Its node is DOWN, and it is not the node-down alert (inhibition).
    Inhibited,
}

/// An alert of a group as the look sees it.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub alert: AlertSnapshot,
    /// Whether the last notification told it as firing.
    pub notified_firing: bool,
    pub muted: Option<Muted>,
}

/// What a look at a group decided.
#[derive(Debug, Default)]
pub(super) struct Look {
    /// The alerts to notify of now, if a notification is due.
    pub notify: Option<Vec<AlertSnapshot>>,
    /// Alerts now told as firing.
    pub told_firing: Vec<Uuid>,
    /// Resolved alerts done with.
    pub removed: Vec<Uuid>,
    /// No alert is left: the group idles until one comes.
    pub idle: bool,
}

/// Decides a group's look: notify when an unmuted alert fires that the last notification
/// did not tell, when an alert told as firing resolved (and resolutions are sent), or
/// when `repeatInterval` passed since the last notification and something still fires.
/// Muted firing alerts are left out; a silenced alert's resolution is left out too, but a
/// resolution closes what was told before maintenance, a disabled rule or a DOWN node.
pub(super) fn look(
    members: &[Member],
    route: &EffectiveRoute,
    last_notified_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Look {
    let firing: Vec<&Member> = members
        .iter()
        .filter(|m| m.alert.firing() && m.muted.is_none())
        .collect();
    let resolved: Vec<&Member> = members
        .iter()
        .filter(|m| {
            !m.alert.firing()
                && m.notified_firing
                && route.send_resolved
                && m.muted != Some(Muted::Silenced)
        })
        .collect();
    let new_firing = firing.iter().any(|m| !m.notified_firing);
    let repeat_due = !firing.is_empty()
        && last_notified_at.is_none_or(|t| now >= t + seconds(route.repeat_interval_seconds));
    let removed: Vec<Uuid> = members
        .iter()
        .filter(|m| !m.alert.firing())
        .map(|m| m.alert.alert_id)
        .collect();
    let idle = removed.len() == members.len();
    if !(new_firing || repeat_due || !resolved.is_empty()) {
        return Look {
            removed,
            idle,
            ..Look::default()
        };
    }
    Look {
        notify: Some(
            firing
                .iter()
                .chain(resolved.iter())
                .map(|m| m.alert.clone())
                .collect(),
        ),
        told_firing: firing.iter().map(|m| m.alert.alert_id).collect(),
        removed,
        idle,
    }
}

/// What is known of the alerts, rules and nodes of the groups looked at.
struct Facts {
    alerts: HashMap<Uuid, entity::alert::Model>,
    rules_enabled: HashMap<Uuid, bool>,
    nodes: HashMap<Uuid, (bool, bool)>,
}

impl Facts {
    async fn read(txn: &DatabaseTransaction, snapshots: &[AlertSnapshot]) -> AppResult<Facts> {
        let unique = |mut ids: Vec<Uuid>| {
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let alert_ids = unique(snapshots.iter().map(|a| a.alert_id).collect());
        let rule_ids = unique(snapshots.iter().map(|a| a.rule_id).collect());
        let node_ids = unique(snapshots.iter().filter_map(|a| a.node_id).collect());
        let alerts = crate::alerts::find_alerts(txn, &alert_ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        let mut rules_enabled = HashMap::new();
        for chunk in rule_ids.chunks(500) {
            for rule in crate::alerts::rules_by_ids(txn, chunk).await? {
                rules_enabled.insert(rule.id, rule.enabled);
            }
        }
        let mut nodes = HashMap::new();
        for chunk in node_ids.chunks(500) {
            for node in crate::nodes::find_many(txn, chunk).await? {
                let status = NodeStatus::parse(&node.status)?;
                let maintenance = node.maintenance_enabled || status == NodeStatus::Maintenance;
                nodes.insert(node.id, (maintenance, status == NodeStatus::Down));
            }
        }
        Ok(Facts {
            alerts,
            rules_enabled,
            nodes,
        })
    }

    /// The member as it is now: a firing alert's latest value and message, and whether
    /// anything mutes it.
    fn member(&self, row: &MemberRow, mut alert: AlertSnapshot, now: DateTime<Utc>) -> Member {
        let current = self.alerts.get(&alert.alert_id);
        if alert.firing()
            && let Some(current) = current
            && current.state == AlertState::Firing.as_str()
        {
            alert.value = current.value;
            alert.message = current.message.clone();
        }
        let (maintenance, down) = alert
            .node_id
            .and_then(|id| self.nodes.get(&id).copied())
            .unwrap_or((false, false));
        let muted = if current.is_some_and(|a| a.silenced_until.is_some_and(|u| u > now)) {
            Some(Muted::Silenced)
        } else if self.rules_enabled.get(&alert.rule_id) == Some(&false) {
            Some(Muted::RuleDisabled)
        } else if maintenance {
            Some(Muted::Maintenance)
        } else if down && alert.condition != AlertCondition::NodeDown.as_str() {
            Some(Muted::Inhibited)
        } else {
            None
        };
        Member {
            alert,
            notified_firing: row.notified_state.as_deref() == Some(AlertState::Firing.as_str()),
            muted,
        }
    }
}

/// Looks at every due group and makes the notifications due, in `txn`. Returns them.
pub(super) async fn flush_due(
    txn: &DatabaseTransaction,
    policy: &Policy,
    config: &NotificationsConfig,
    now: DateTime<Utc>,
) -> AppResult<Vec<NotificationRow>> {
    let groups = store::groups::due(txn, now, FLUSH_BATCH).await?;
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
    let mut members: HashMap<Uuid, Vec<(MemberRow, AlertSnapshot)>> = HashMap::new();
    for row in store::groups::members_of(txn, &ids).await? {
        let alert: AlertSnapshot = serde_json::from_value(row.alert.clone())
            .map_err(|e| AppError::internal(format!("notification group {}: {e}", row.group_id)))?;
        members.entry(row.group_id).or_default().push((row, alert));
    }
    let snapshots: Vec<AlertSnapshot> = members
        .values()
        .flat_map(|m| m.iter().map(|(_, a)| a.clone()))
        .collect();
    let facts = Facts::read(txn, &snapshots).await?;
    let mut every_contact_point: Vec<Uuid> = policy.contact_point_ids.clone();
    for route in &policy.routes {
        every_contact_point.extend(&route.contact_point_ids);
    }
    let names: HashMap<Uuid, String> = super::contact_points::find_many(txn, &every_contact_point)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();

    let mut made = Vec::new();
    let mut told_firing: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
    let mut removed: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
    let mut advanced: HashMap<(bool, Option<DateTime<Utc>>), Vec<Uuid>> = HashMap::new();
    for group in groups {
        let route = policy.route_by_key(&group.route);
        let group_members: Vec<Member> = members
            .remove(&group.id)
            .unwrap_or_default()
            .into_iter()
            .map(|(row, alert)| facts.member(&row, alert, now))
            .collect();
        let look = look(&group_members, &route, group.last_notified_at, now);
        if let Some(alerts) = &look.notify {
            let sequence = group.sequence + 1;
            let group_labels: BTreeMap<String, String> =
                serde_json::from_value(group.group_labels.clone()).unwrap_or_default();
            let status = if alerts.iter().any(AlertSnapshot::firing) {
                NotificationStatus::Firing
            } else {
                NotificationStatus::Resolved
            };
            let alert_ids: Vec<Uuid> = alerts.iter().map(|a| a.alert_id).collect();
            for contact_point in &route.contact_point_ids {
                let Some(name) = names.get(contact_point) else {
                    continue;
                };
                let message = payload::message(
                    MessageParts {
                        receiver: name,
                        group_key: &group.group_key,
                        group_labels: group_labels.clone(),
                        external_url: &config.public_url,
                        sequence,
                    },
                    alerts,
                );
                made.push(NotificationRow {
                    id: Uuid::now_v7(),
                    group_id: group.id,
                    group_key: group.group_key.clone(),
                    contact_point_id: *contact_point,
                    contact_point_name: name.clone(),
                    sequence,
                    status: status.as_str().into(),
                    alert_ids: json(&alert_ids)?,
                    payload: json(&message)?,
                    state: NotificationState::Pending.as_str().into(),
                    attempts: 0,
                    next_attempt_at: now,
                    lease_until: None,
                    lease_owner: None,
                    created_at: now,
                    finished_at: None,
                });
            }
            told_firing.push((group.id, look.told_firing));
        }
        removed.push((group.id, look.removed));
        let next = (!look.idle).then(|| now + seconds(route.group_interval_seconds));
        advanced
            .entry((look.notify.is_some(), next))
            .or_default()
            .push(group.id);
    }
    store::groups::set_notified(txn, &told_firing, AlertState::Firing.as_str()).await?;
    store::groups::remove_members(txn, &removed).await?;
    for ((notified, next), ids) in advanced {
        store::groups::advance(txn, &ids, notified.then_some(now), next).await?;
    }
    store::notifications::insert_many(txn, made.clone()).await?;
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> EffectiveRoute {
        EffectiveRoute {
            key: "default".into(),
            contact_point_ids: vec![],
            group_by: vec![],
            group_wait_seconds: 30,
            group_interval_seconds: 300,
            repeat_interval_seconds: 3600,
            send_resolved: true,
        }
    }

    fn member(firing: bool, notified_firing: bool, muted: Option<Muted>) -> Member {
        Member {
            alert: AlertSnapshot {
                state: if firing { "FIRING" } else { "RESOLVED" }.into(),
                alert_id: Uuid::now_v7(),
                ..AlertSnapshot::synthetic("Disk", String::new(), Utc::now())
            },
            notified_firing,
            muted,
        }
    }

    #[test]
    fn new_firing_alerts_notify_and_told_ones_wait_for_the_repeat() {
        let now = Utc::now();
        let members = [member(true, false, None), member(true, true, None)];
        let first = look(&members, &route(), None, now);
        assert_eq!(first.notify.as_ref().map(Vec::len), Some(2));
        assert_eq!(first.told_firing.len(), 2);

        let told = [member(true, true, None)];
        let quiet = look(&told, &route(), Some(now - Duration::minutes(5)), now);
        assert!(quiet.notify.is_none() && !quiet.idle);
        let repeat = look(&told, &route(), Some(now - Duration::hours(1)), now);
        assert_eq!(repeat.notify.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn a_resolution_is_told_only_of_what_was_told_firing() {
        let now = Utc::now();
        let told = member(false, true, None);
        let look_told = look(std::slice::from_ref(&told), &route(), Some(now), now);
        assert_eq!(look_told.notify.as_ref().map(Vec::len), Some(1));
        assert!(look_told.idle);
        assert_eq!(look_told.removed, [told.alert.alert_id]);

        let untold = [member(false, false, None)];
        let quiet = look(&untold, &route(), None, now);
        assert!(quiet.notify.is_none() && quiet.idle);

        let no_resolved = EffectiveRoute {
            send_resolved: false,
            ..route()
        };
        assert!(
            look(&[member(false, true, None)], &no_resolved, Some(now), now)
                .notify
                .is_none()
        );
    }

    #[test]
    fn muted_alerts_notify_nothing_but_a_resolution_closes_what_was_told() {
        let now = Utc::now();
        for muted in [
            Muted::Silenced,
            Muted::Maintenance,
            Muted::RuleDisabled,
            Muted::Inhibited,
        ] {
            let firing = look(&[member(true, false, Some(muted))], &route(), None, now);
            assert!(firing.notify.is_none(), "{muted:?}");
            assert!(!firing.idle);
        }
        let silenced = look(
            &[member(false, true, Some(Muted::Silenced))],
            &route(),
            Some(now),
            now,
        );
        assert!(silenced.notify.is_none());
        let maintenance = look(
            &[member(false, true, Some(Muted::Maintenance))],
            &route(),
            Some(now),
            now,
        );
        assert_eq!(maintenance.notify.as_ref().map(Vec::len), Some(1));
    }
}
