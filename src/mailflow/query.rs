//! Reads over the mail flow counters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

use super::{
    bounces::BounceCategory,
    model::{MailCounts, MailFlow, MailFlowGroup, MailFlowGroupBy, MailFlowPoint},
    store::{
        self,
        counters::{CounterFilter, GroupColumn, GroupKey, Tier},
    },
};

/// Steps `mailFlow` picks from when none is given: the smallest that gives at most
/// `DEFAULT_MAX_POINTS` points.
const DEFAULT_STEPS: [i64; 6] = [60, 300, 900, 3_600, 21_600, 86_400];
const DEFAULT_MAX_POINTS: i64 = 1_000;
pub const MAX_POINTS: i64 = 1_500;
/// The longest step: the longest retention of the counters, 400 days.
pub const MAX_STEP_SECONDS: i64 = 400 * 86_400;
pub const MAX_GROUPS: usize = 100;
pub const MAX_NODES: usize = 500;
const MAX_SPAN: chrono::Duration = chrono::Duration::days(400);

pub struct FlowQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step_seconds: Option<i64>,
    pub group_by: MailFlowGroupBy,
    /// A second split of each group.
    pub then_by: Option<MailFlowGroupBy>,
    pub node_ids: Option<Vec<Uuid>>,
    /// Sending IPs, as given.
    pub sending_ips: Option<Vec<String>>,
    pub pools: Option<Vec<String>>,
    pub providers: Option<Vec<String>>,
    pub categories: Option<Vec<BounceCategory>>,
    pub top: usize,
}

/// The most entries of each filter list.
pub const MAX_FILTER_ENTRIES: usize = 100;
/// The longest pool or provider name a filter may give (pools hold at most 64).
const MAX_KEY_CHARS: usize = 64;

fn check_list<T>(field: &str, list: &Option<Vec<T>>) -> AppResult<()> {
    if list
        .as_ref()
        .is_some_and(|l| l.is_empty() || l.len() > MAX_FILTER_ENTRIES)
    {
        return Err(AppError::bad_input(
            field,
            format!("give 1 to {MAX_FILTER_ENTRIES}, or leave it out"),
        ));
    }
    Ok(())
}

/// The counter column a split reads; a pool split reads IPs and folds them.
fn column_of(group_by: MailFlowGroupBy) -> Option<GroupColumn> {
    match group_by {
        MailFlowGroupBy::None => None,
        MailFlowGroupBy::Ip | MailFlowGroupBy::Pool => Some(GroupColumn::SendingIp),
        MailFlowGroupBy::Node => Some(GroupColumn::Node),
        MailFlowGroupBy::Provider => Some(GroupColumn::Provider),
        MailFlowGroupBy::Category => Some(GroupColumn::Category),
    }
}

/// One level's key of a counter row: its text, and the node when it is one.
fn key_text(
    group_by: MailFlowGroupBy,
    key: Option<&GroupKey>,
    pools: &HashMap<String, String>,
) -> (String, Option<Uuid>) {
    match (group_by, key) {
        (MailFlowGroupBy::None, _) | (_, None) => ("all".to_owned(), None),
        (_, Some(GroupKey::Node(node))) => (node.to_string(), Some(*node)),
        (MailFlowGroupBy::Pool, Some(GroupKey::Text(ip))) => {
            (pools.get(ip).cloned().unwrap_or_default(), None)
        }
        (_, Some(GroupKey::Text(text))) => (text.clone(), None),
    }
}

/// A group being counted: its node (when keyed by node), its totals, and its own groups.
type Tally<V> = (Option<Uuid>, MailCounts, V);
/// A group kept for the answer: key, node, totals.
type Kept = (String, Option<Uuid>, MailCounts);

/// Groups by total, largest first, then by key; the `top` largest.
fn largest<V>(groups: HashMap<String, Tally<V>>, top: usize) -> (usize, Vec<(String, Tally<V>)>) {
    let mut ordered: Vec<_> = groups.into_iter().collect();
    ordered.sort_by(|a, b| {
        b.1.1
            .total()
            .cmp(&a.1.1.total())
            .then_with(|| a.0.cmp(&b.0))
    });
    let count = ordered.len();
    ordered.truncate(top);
    (count, ordered)
}

/// The six status sums of a counter query, as selected by `SUMS`.
pub(super) fn tier_for_range(from: DateTime<Utc>, minute_retention: std::time::Duration) -> Tier {
    let minute_oldest =
        Utc::now() - chrono::Duration::from_std(minute_retention).unwrap_or(chrono::Duration::MAX);
    if from < minute_oldest {
        Tier::Hour
    } else {
        Tier::Minute
    }
}

/// The step and tier a flow query reads.
fn plan(query: &FlowQuery, minute_retention: std::time::Duration) -> AppResult<(i64, Tier)> {
    let span_ms = (query.to - query.from).num_milliseconds();
    let points = |step: i64| (span_ms + step * 1_000 - 1) / (step * 1_000);
    let step = match query.step_seconds {
        Some(step) => {
            if !(60..=MAX_STEP_SECONDS).contains(&step) || step % 60 != 0 {
                return Err(AppError::bad_input(
                    "step",
                    format!(
                        "must be a whole number of minutes, in seconds (60, 300, 3600, …), at most {MAX_STEP_SECONDS} (400 days)"
                    ),
                ));
            }
            if points(step) > MAX_POINTS {
                return Err(AppError::bad_input(
                    "step",
                    format!("gives {} points; at most {MAX_POINTS}", points(step)),
                ));
            }
            step
        }
        None => DEFAULT_STEPS
            .into_iter()
            .find(|step| points(*step) <= DEFAULT_MAX_POINTS)
            .unwrap_or(86_400),
    };
    if step % 3_600 == 0 {
        return Ok((step, Tier::Hour));
    }
    if tier_for_range(query.from, minute_retention) == Tier::Hour {
        return Err(AppError::bad_input(
            "step",
            "a range reaching past the 1-minute counters' retention needs a step of whole hours",
        ));
    }
    Ok((step, Tier::Minute))
}

/// Mail flow over a range: counts per step and group. The counters of every minute (or
/// hour) the range touches are counted, and every step of the range is returned.
pub async fn flow(
    db: &impl ConnectionTrait,
    query: &FlowQuery,
    config: &super::MailFlowConfig,
    budget: &crate::input::PointBudget,
) -> AppResult<MailFlow> {
    if query.to <= query.from {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if query.to - query.from > MAX_SPAN {
        return Err(AppError::bad_input("from", "ranges are at most 400 days"));
    }
    if query.top == 0 || query.top > MAX_GROUPS {
        return Err(AppError::bad_input(
            "top",
            format!("must be between 1 and {MAX_GROUPS}"),
        ));
    }
    if query
        .node_ids
        .as_ref()
        .is_some_and(|ids| ids.is_empty() || ids.len() > MAX_NODES)
    {
        return Err(AppError::bad_input(
            "nodeIds",
            format!("give 1 to {MAX_NODES} nodes, or leave it out"),
        ));
    }
    check_list("sendingIps", &query.sending_ips)?;
    check_list("pools", &query.pools)?;
    check_list("providers", &query.providers)?;
    check_list("categories", &query.categories)?;
    if let Some(then_by) = query.then_by
        && (then_by == query.group_by
            || then_by == MailFlowGroupBy::None
            || query.group_by == MailFlowGroupBy::None)
    {
        return Err(AppError::bad_input(
            "thenBy",
            "splits each group of groupBy by another dimension: give a groupBy, and a different thenBy",
        ));
    }
    let mut sending_ips = query
        .sending_ips
        .as_ref()
        .map(|ips| {
            ips.iter()
                .map(|ip| Ok(crate::ips::parse_address("sendingIps", ip)?.text))
                .collect::<AppResult<Vec<String>>>()
        })
        .transpose()?;
    if let Some(pools) = &query.pools {
        for pool in pools {
            crate::input::required_line("pools", pool, MAX_KEY_CHARS)?;
        }
        let in_pools = crate::ips::addresses_in_pools(db, pools).await?;
        sending_ips = Some(match sending_ips {
            // Both given: the IPs of the list that are in the pools.
            Some(ips) => ips.into_iter().filter(|ip| in_pools.contains(ip)).collect(),
            None => in_pools,
        });
    }
    let providers: Option<Vec<String>> = query
        .providers
        .as_ref()
        .map(|providers| {
            providers
                .iter()
                .map(|p| {
                    crate::input::required_line("providers", p, MAX_KEY_CHARS)
                        .map(|p| p.to_ascii_lowercase())
                })
                .collect::<AppResult<_>>()
        })
        .transpose()?;
    let categories: Option<Vec<&'static str>> = query
        .categories
        .as_ref()
        .map(|c| c.iter().map(|c| c.as_str()).collect());
    let (step, tier) = plan(query, config.minute_retention)?;
    let step_ms = step * 1_000;
    let start = query.from.timestamp_millis().div_euclid(tier.span_ms()) * tier.span_ms();
    let end = query.to.timestamp_millis();
    let first_point = start.div_euclid(step_ms) * step_ms;
    let last_point = (end - 1).div_euclid(step_ms) * step_ms;
    let point_count = ((last_point - first_point) / step_ms + 1) as usize;

    let at = |i: usize| {
        DateTime::<Utc>::from_timestamp_millis(first_point + i as i64 * step_ms).unwrap_or_default()
    };
    let empty = |totals| MailFlow {
        from: at(0),
        to: at(point_count),
        step,
        group_by: query.group_by,
        then_by: query.then_by,
        totals,
        group_count: 0,
        groups: Vec::new(),
    };
    // Pools that hold no IP: nothing sent from them.
    if sending_ips.as_ref().is_some_and(Vec::is_empty) {
        return Ok(empty(MailCounts::default()));
    }
    let then_by = query.then_by.unwrap_or(MailFlowGroupBy::None);
    let columns: Vec<GroupColumn> = [column_of(query.group_by), column_of(then_by)]
        .into_iter()
        .flatten()
        .collect();
    let filter = CounterFilter {
        node_ids: query.node_ids.as_deref(),
        sending_ips: sending_ips.as_deref(),
        providers: providers.as_deref(),
        categories: categories.as_deref(),
    };
    let rows = store::counters::steps(db, tier, step_ms, start, end, &columns, &filter).await?;
    let pools = if query.group_by == MailFlowGroupBy::Pool || then_by == MailFlowGroupBy::Pool {
        crate::ips::pools_by_address(db).await?
    } else {
        HashMap::new()
    };
    // Each row's group and subgroup keys (with their nodes), made once.
    let keyed: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                key_text(query.group_by, row.keys.first(), &pools),
                key_text(then_by, row.keys.get(1), &pools),
                row,
            )
        })
        .collect();

    // Totals first, so that only the groups shown get a series of points: split by IP,
    // a cluster can have thousands of groups, each of up to 1,500 points.
    let mut totals_of: HashMap<String, Tally<HashMap<String, Tally<()>>>> = HashMap::new();
    let mut totals = MailCounts::default();
    for ((key, node), (sub_key, sub_node), row) in &keyed {
        totals.add(&row.counts);
        let group =
            totals_of
                .entry(key.clone())
                .or_insert((*node, MailCounts::default(), HashMap::new()));
        group.1.add(&row.counts);
        if query.then_by.is_some() {
            group
                .2
                .entry(sub_key.clone())
                .or_insert((*sub_node, MailCounts::default(), ()))
                .1
                .add(&row.counts);
        }
    }
    let (group_count, ordered) = largest(totals_of, query.top);
    let ordered: Vec<(Kept, Vec<Kept>)> = ordered
        .into_iter()
        .map(|(key, (node, counts, subgroups))| {
            let (_, subgroups) = largest(subgroups, query.top);
            let subgroups = subgroups
                .into_iter()
                .map(|(key, (node, counts, ()))| (key, node, counts))
                .collect();
            ((key, node, counts), subgroups)
        })
        .collect();
    let series = ordered.len() + ordered.iter().map(|g| g.1.len()).sum::<usize>();
    budget.take("top", (series * point_count) as u64)?;
    // The points of each group shown, and of each of its subgroups shown.
    type Points = Vec<MailCounts>;
    let mut points_of: HashMap<String, (Points, HashMap<String, Points>)> = ordered
        .iter()
        .map(|((key, _, _), subgroups)| {
            let subgroups = subgroups
                .iter()
                .map(|(sub_key, _, _)| (sub_key.clone(), vec![MailCounts::default(); point_count]))
                .collect();
            (
                key.clone(),
                (vec![MailCounts::default(); point_count], subgroups),
            )
        })
        .collect();
    for ((key, _), (sub_key, _), row) in &keyed {
        let Some((points, subgroups)) = points_of.get_mut(key.as_str()) else {
            continue;
        };
        let index = ((row.step - first_point) / step_ms) as usize;
        if let Some(point) = points.get_mut(index) {
            point.add(&row.counts);
        }
        if let Some(point) = subgroups
            .get_mut(sub_key.as_str())
            .and_then(|p| p.get_mut(index))
        {
            point.add(&row.counts);
        }
    }
    let series_of = |counts: Points| -> Vec<MailFlowPoint> {
        counts
            .into_iter()
            .enumerate()
            .map(|(i, counts)| MailFlowPoint { ts: at(i), counts })
            .collect()
    };
    let groups = ordered
        .into_iter()
        .map(|((key, node_id, totals), subgroups)| {
            let (points, mut sub_points) = points_of.remove(&key).unwrap_or_default();
            MailFlowGroup {
                groups: subgroups
                    .into_iter()
                    .map(|(sub_key, node_id, totals)| MailFlowGroup {
                        points: series_of(sub_points.remove(&sub_key).unwrap_or_default()),
                        key: sub_key,
                        totals,
                        groups: Vec::new(),
                        node_id,
                    })
                    .collect(),
                points: series_of(points),
                key,
                totals,
                node_id,
            }
        })
        .collect();
    Ok(MailFlow {
        group_count: group_count as i32,
        groups,
        ..empty(totals)
    })
}

/// The counts of each of `ips` over the minutes (or hours) `from..to` touches.
pub async fn counts_by_ip(
    db: &impl ConnectionTrait,
    ips: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    minute_retention: std::time::Duration,
) -> AppResult<HashMap<String, MailCounts>> {
    let tier = tier_for_range(from, minute_retention);
    store::counters::counts_by_ip(db, ips, from, to, tier).await
}

/// A window of `ip.sendingStats`, in epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpWindow {
    pub ip: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The counts of many IPs over their windows, in one query per distinct window.
pub async fn sending_stats(
    db: &impl ConnectionTrait,
    keys: &[IpWindow],
    minute_retention: std::time::Duration,
) -> AppResult<HashMap<IpWindow, MailCounts>> {
    let mut windows: HashMap<(i64, i64), Vec<String>> = HashMap::new();
    for key in keys {
        windows
            .entry((key.from_ms, key.to_ms))
            .or_default()
            .push(key.ip.clone());
    }
    let mut answer = HashMap::with_capacity(keys.len());
    for ((from_ms, to_ms), ips) in windows {
        let (Some(from), Some(to)) = (
            DateTime::<Utc>::from_timestamp_millis(from_ms),
            DateTime::<Utc>::from_timestamp_millis(to_ms),
        ) else {
            continue;
        };
        let counts = counts_by_ip(db, &ips, from, to, minute_retention).await?;
        for ip in ips {
            let value = counts.get(&ip).copied().unwrap_or_default();
            answer.insert(IpWindow { ip, from_ms, to_ms }, value);
        }
    }
    Ok(answer)
}
