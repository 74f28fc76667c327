//! Reads over the mail flow counters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

use super::{
    model::{MailCounts, MailFlow, MailFlowGroup, MailFlowGroupBy, MailFlowPoint},
    store::{
        self,
        counters::{GroupKey, StepCounts, Tier},
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
    pub node_ids: Option<Vec<Uuid>>,
    pub top: usize,
}

/// The six status sums of a counter query, as selected by `SUMS`.
fn tier_for_range(from: DateTime<Utc>, minute_retention: std::time::Duration) -> Tier {
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
    let (step, tier) = plan(query, config.minute_retention)?;
    let step_ms = step * 1_000;
    let start = query.from.timestamp_millis().div_euclid(tier.span_ms()) * tier.span_ms();
    let end = query.to.timestamp_millis();
    let first_point = start.div_euclid(step_ms) * step_ms;
    let last_point = (end - 1).div_euclid(step_ms) * step_ms;
    let point_count = ((last_point - first_point) / step_ms + 1) as usize;

    let rows = store::counters::steps(
        db,
        tier,
        step_ms,
        start,
        end,
        query.group_by,
        query.node_ids.as_deref(),
    )
    .await?;

    let key_of = |group: &Option<GroupKey>| match group {
        None => ("all".to_owned(), None),
        Some(GroupKey::Node(node)) => (node.to_string(), Some(*node)),
        Some(GroupKey::Text(key)) => (key.clone(), None),
    };
    // Totals first, so that only the groups shown get a series of points: split by IP,
    // a cluster can have thousands of groups, each of up to 1,500 points.
    let mut totals_of: HashMap<String, (Option<Uuid>, MailCounts)> = HashMap::new();
    for row in &rows {
        let (key, node) = key_of(&row.group);
        totals_of
            .entry(key)
            .or_insert((node, MailCounts::default()))
            .1
            .add(&row.counts);
    }
    let mut totals = MailCounts::default();
    for (_, group_totals) in totals_of.values() {
        totals.add(group_totals);
    }
    let mut ordered: Vec<_> = totals_of.into_iter().collect();
    ordered.sort_by(|a, b| {
        b.1.1
            .total()
            .cmp(&a.1.1.total())
            .then_with(|| a.0.cmp(&b.0))
    });
    let group_count = ordered.len() as i32;
    ordered.truncate(query.top);
    budget.take("top", (ordered.len() * point_count) as u64)?;
    let mut points_of: HashMap<String, Vec<MailCounts>> = ordered
        .iter()
        .map(|(key, _)| (key.clone(), vec![MailCounts::default(); point_count]))
        .collect();
    for StepCounts {
        step: bucket,
        group,
        counts,
    } in rows
    {
        let (key, _) = key_of(&group);
        let index = ((bucket - first_point) / step_ms) as usize;
        if let Some(point) = points_of.get_mut(&key).and_then(|p| p.get_mut(index)) {
            point.add(&counts);
        }
    }
    let at = |i: usize| {
        DateTime::<Utc>::from_timestamp_millis(first_point + i as i64 * step_ms).unwrap_or_default()
    };
    let groups = ordered
        .into_iter()
        .map(|(key, (node_id, totals))| MailFlowGroup {
            points: points_of
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, counts)| MailFlowPoint { ts: at(i), counts })
                .collect(),
            key,
            totals,
            node_id,
        })
        .collect();
    Ok(MailFlow {
        from: at(0),
        to: at(point_count),
        step,
        group_by: query.group_by,
        totals,
        group_count,
        groups,
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
