//! Reads over the mail flow counters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::{
    db::sql::placeholder,
    error::{AppError, AppResult},
};

use super::model::{MailCounts, MailFlow, MailFlowGroup, MailFlowGroupBy, MailFlowPoint};

/// Delivery attempts of one node: every DELIVERED, DEFERRED and BOUNCED event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    pub sent: i64,
    pub deferred: i64,
    pub bounced: i64,
}

/// Delivery attempts per node counted in the minutes from `since` on.
pub async fn attempts_by_node(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> AppResult<HashMap<Uuid, Attempts>> {
    let backend = db.get_database_backend();
    let placeholder = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let sql = format!(
        "SELECT node_id, CAST(SUM(delivered + deferred + bounced) AS BIGINT), \
         CAST(SUM(deferred) AS BIGINT), CAST(SUM(bounced) AS BIGINT) \
         FROM mail_flow_1m WHERE bucket >= {placeholder} GROUP BY node_id"
    );
    let since_minute = since.timestamp_millis().div_euclid(60_000) * 60_000;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [since_minute.into()],
        ))
        .await?;
    let mut by_node = HashMap::with_capacity(rows.len());
    for row in rows {
        let node: Uuid = row.try_get_by_index(0)?;
        by_node.insert(
            node,
            Attempts {
                sent: row.try_get_by_index::<Option<i64>>(1)?.unwrap_or(0),
                deferred: row.try_get_by_index::<Option<i64>>(2)?.unwrap_or(0),
                bounced: row.try_get_by_index::<Option<i64>>(3)?.unwrap_or(0),
            },
        );
    }
    Ok(by_node)
}

/// Counts are read from the 1-minute counters, or the 1-hour ones for whole-hour steps
/// and for ranges older than the 1-minute retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    Minute,
    Hour,
}

impl Tier {
    fn table(self) -> &'static str {
        match self {
            Tier::Minute => "mail_flow_1m",
            Tier::Hour => "mail_flow_1h",
        }
    }

    fn span_ms(self) -> i64 {
        match self {
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
        }
    }
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// Steps `mailFlow` picks from when none is given: the smallest that gives at most
/// `DEFAULT_MAX_POINTS` points.
const DEFAULT_STEPS: [i64; 6] = [60, 300, 900, 3_600, 21_600, 86_400];
const DEFAULT_MAX_POINTS: i64 = 1_000;
pub const MAX_POINTS: i64 = 1_500;
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
const SUMS: &str = "CAST(SUM(queued) AS BIGINT), CAST(SUM(delivered) AS BIGINT), \
     CAST(SUM(deferred) AS BIGINT), CAST(SUM(bounced) AS BIGINT), \
     CAST(SUM(rejected) AS BIGINT), CAST(SUM(dropped) AS BIGINT)";

fn counts_at(row: &sea_orm::QueryResult, first: usize) -> AppResult<MailCounts> {
    let at = |i: usize| -> AppResult<i64> {
        Ok(row.try_get_by_index::<Option<i64>>(first + i)?.unwrap_or(0))
    };
    Ok(MailCounts {
        queued: at(0)?,
        delivered: at(1)?,
        deferred: at(2)?,
        bounced: at(3)?,
        rejected: at(4)?,
        dropped: at(5)?,
    })
}

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
            if step < 60 || step % 60 != 0 {
                return Err(AppError::bad_input(
                    "step",
                    "must be a whole number of minutes, in seconds (60, 300, 3600, …)",
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

    let backend = db.get_database_backend();
    let group_column = match query.group_by {
        MailFlowGroupBy::None => None,
        MailFlowGroupBy::Ip => Some("sending_ip"),
        MailFlowGroupBy::Node => Some("node_id"),
        MailFlowGroupBy::Provider => Some("provider"),
    };
    let mut values: Vec<Value> = vec![start.into(), end.into()];
    let mut node_filter = String::new();
    if let Some(ids) = &query.node_ids {
        let marks: Vec<String> = ids
            .iter()
            .map(|id| {
                values.push((*id).into());
                placeholder(backend, values.len())
            })
            .collect();
        node_filter = format!(" AND node_id IN ({})", marks.join(","));
    }
    // Both backends divide integers by truncation; buckets are never negative.
    let sql = format!(
        "SELECT (bucket / {step_ms}) * {step_ms}, {group}, {SUMS} FROM {table} \
         WHERE bucket >= {p1} AND bucket < {p2}{node_filter} GROUP BY 1{group_by}",
        group = group_column.unwrap_or("NULL"),
        group_by = if group_column.is_some() { ", 2" } else { "" },
        table = tier.table(),
        p1 = placeholder(backend, 1),
        p2 = placeholder(backend, 2),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;

    let mut groups: HashMap<String, (Option<Uuid>, MailCounts, Vec<MailCounts>)> = HashMap::new();
    for row in rows {
        let bucket: i64 = row.try_get_by_index(0)?;
        let (key, node) = match query.group_by {
            MailFlowGroupBy::None => ("all".to_owned(), None),
            MailFlowGroupBy::Node => {
                let node: Uuid = row.try_get_by_index(1)?;
                (node.to_string(), Some(node))
            }
            MailFlowGroupBy::Ip | MailFlowGroupBy::Provider => {
                (row.try_get_by_index::<String>(1)?, None)
            }
        };
        let counts = counts_at(&row, 2)?;
        let index = ((bucket - first_point) / step_ms) as usize;
        let group = groups.entry(key).or_insert_with(|| {
            (
                node,
                MailCounts::default(),
                vec![MailCounts::default(); point_count],
            )
        });
        group.1.add(&counts);
        if let Some(point) = group.2.get_mut(index) {
            point.add(&counts);
        }
    }
    let mut totals = MailCounts::default();
    for (_, group_totals, _) in groups.values() {
        totals.add(group_totals);
    }
    let mut ordered: Vec<_> = groups.into_iter().collect();
    ordered.sort_by(|a, b| {
        b.1.1
            .total()
            .cmp(&a.1.1.total())
            .then_with(|| a.0.cmp(&b.0))
    });
    let group_count = ordered.len() as i32;
    ordered.truncate(query.top);
    let at = |i: usize| {
        DateTime::<Utc>::from_timestamp_millis(first_point + i as i64 * step_ms).unwrap_or_default()
    };
    let groups = ordered
        .into_iter()
        .map(|(key, (node_id, totals, points))| MailFlowGroup {
            key,
            totals,
            node_id,
            points: points
                .into_iter()
                .enumerate()
                .map(|(i, counts)| MailFlowPoint { ts: at(i), counts })
                .collect(),
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
    let start = from.timestamp_millis().div_euclid(tier.span_ms()) * tier.span_ms();
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = Vec::with_capacity(ips.len() + 2);
    let marks: Vec<String> = ips
        .iter()
        .map(|ip| {
            values.push(ip.clone().into());
            placeholder(backend, values.len())
        })
        .collect();
    values.push(start.into());
    values.push(to.timestamp_millis().into());
    let sql = format!(
        "SELECT sending_ip, {SUMS} FROM {table} WHERE sending_ip IN ({ips}) \
         AND bucket >= {p1} AND bucket < {p2} GROUP BY sending_ip",
        table = tier.table(),
        ips = marks.join(","),
        p1 = placeholder(backend, ips.len() + 1),
        p2 = placeholder(backend, ips.len() + 2),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut by_ip = HashMap::with_capacity(rows.len());
    for row in rows {
        by_ip.insert(row.try_get_by_index::<String>(0)?, counts_at(&row, 1)?);
    }
    Ok(by_ip)
}

/// The whole cluster's counts over the minutes `from..to` touches.
pub async fn cluster_counts(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<MailCounts> {
    let backend = db.get_database_backend();
    let start = from.timestamp_millis().div_euclid(MINUTE_MS) * MINUTE_MS;
    let sql = format!(
        "SELECT {SUMS} FROM mail_flow_1m WHERE bucket >= {} AND bucket < {}",
        placeholder(backend, 1),
        placeholder(backend, 2)
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [start.into(), to.timestamp_millis().into()],
        ))
        .await?;
    match row {
        Some(row) => counts_at(&row, 0),
        None => Ok(MailCounts::default()),
    }
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
