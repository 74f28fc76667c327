//! Rows of the mail-flow counters `mail_flow_1m` and `mail_flow_1h`: one per bucket,
//! node, sending IP and provider, with a column per status.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

use crate::{
    db::sql::{placeholder, placeholders},
    error::AppResult,
};

use super::super::model::{MailCounts, MailFlowGroupBy};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// Counter rows one upsert writes at most.
const COUNTER_CHUNK: usize = 500;

/// One counter row's key: bucket (epoch milliseconds), sending IP, provider.
pub type CounterKey = (i64, String, String);

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
pub enum Tier {
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

    pub fn span_ms(self) -> i64 {
        match self {
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
        }
    }
}

const SUMS: &str = "CAST(SUM(queued) AS BIGINT), CAST(SUM(delivered) AS BIGINT), \
     CAST(SUM(deferred) AS BIGINT), CAST(SUM(bounced) AS BIGINT), \
     CAST(SUM(rejected) AS BIGINT), CAST(SUM(dropped) AS BIGINT)";

fn counts_at(row: &QueryResult, first: usize) -> AppResult<MailCounts> {
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

/// One group's counts in one step, as [`steps`] reads them.
pub struct StepCounts {
    /// Start of the step, epoch milliseconds.
    pub step: i64,
    /// The group's key: `None` without grouping, else the node id, IP or provider.
    pub group: Option<GroupKey>,
    pub counts: MailCounts,
}

pub enum GroupKey {
    Node(Uuid),
    Text(String),
}

/// The counts of `tier` from `start` to `end` (epoch milliseconds) summed per step of
/// `step_ms` and per group, for the nodes given (all when `None`).
pub async fn steps(
    db: &impl ConnectionTrait,
    tier: Tier,
    step_ms: i64,
    start: i64,
    end: i64,
    group_by: MailFlowGroupBy,
    node_ids: Option<&[Uuid]>,
) -> AppResult<Vec<StepCounts>> {
    let backend = db.get_database_backend();
    let group_column = match group_by {
        MailFlowGroupBy::None => None,
        MailFlowGroupBy::Ip => Some("sending_ip"),
        MailFlowGroupBy::Node => Some("node_id"),
        MailFlowGroupBy::Provider => Some("provider"),
    };
    let mut values: Vec<Value> = vec![start.into(), end.into()];
    let mut node_filter = String::new();
    if let Some(ids) = node_ids {
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

    rows.into_iter()
        .map(|row| {
            let group = match group_by {
                MailFlowGroupBy::None => None,
                MailFlowGroupBy::Node => Some(GroupKey::Node(row.try_get_by_index(1)?)),
                MailFlowGroupBy::Ip | MailFlowGroupBy::Provider => {
                    Some(GroupKey::Text(row.try_get_by_index(1)?))
                }
            };
            Ok(StepCounts {
                step: row.try_get_by_index(0)?,
                group,
                counts: counts_at(&row, 2)?,
            })
        })
        .collect()
}

/// The counts of each of `ips` over the minutes (or hours) `from..to` touches.
pub async fn counts_by_ip(
    db: &impl ConnectionTrait,
    ips: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tier: Tier,
) -> AppResult<HashMap<String, MailCounts>> {
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

/// Adds `counts` to the node's counter rows of `tier`, creating missing rows. Rows are
/// written in key order, so concurrent batches lock shared rows in the same order.
pub async fn add(
    conn: &impl ConnectionTrait,
    tier: Tier,
    node_id: Uuid,
    counts: &BTreeMap<CounterKey, MailCounts>,
) -> AppResult<()> {
    let table = tier.table();
    let backend = conn.get_database_backend();
    let add_on_conflict = format!(
        "ON CONFLICT (bucket, node_id, sending_ip, provider) DO UPDATE SET \
         queued = {table}.queued + excluded.queued, \
         delivered = {table}.delivered + excluded.delivered, \
         deferred = {table}.deferred + excluded.deferred, \
         bounced = {table}.bounced + excluded.bounced, \
         rejected = {table}.rejected + excluded.rejected, \
         dropped = {table}.dropped + excluded.dropped"
    );
    const COLUMNS: &str = "bucket, node_id, sending_ip, provider, queued, delivered, deferred, bounced, rejected, dropped";
    if backend == DbBackend::Postgres {
        // One statement of arrays, as for the raw events.
        let column =
            |f: fn(&MailCounts) -> i64| Value::from(counts.values().map(f).collect::<Vec<_>>());
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO {table} ({COLUMNS}) \
                 SELECT c.bucket, $1, c.sending_ip, c.provider, c.queued, c.delivered, \
                 c.deferred, c.bounced, c.rejected, c.dropped \
                 FROM UNNEST($2::int8[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
                 $7::int8[], $8::int8[], $9::int8[], $10::int8[]) \
                 AS c(bucket, sending_ip, provider, queued, delivered, deferred, bounced, \
                 rejected, dropped) {add_on_conflict}"
            ),
            [
                Value::from(node_id),
                Value::from(counts.keys().map(|k| k.0).collect::<Vec<_>>()),
                Value::from(counts.keys().map(|k| k.1.clone()).collect::<Vec<_>>()),
                Value::from(counts.keys().map(|k| k.2.clone()).collect::<Vec<_>>()),
                column(|c| c.queued),
                column(|c| c.delivered),
                column(|c| c.deferred),
                column(|c| c.bounced),
                column(|c| c.rejected),
                column(|c| c.dropped),
            ],
        );
        conn.execute_raw(statement).await?;
        return Ok(());
    }
    let entries: Vec<_> = counts.iter().collect();
    for chunk in entries.chunks(COUNTER_CHUNK) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 10);
        let mut tuples = Vec::with_capacity(chunk.len());
        for ((bucket, ip, provider), c) in chunk {
            let first = values.len();
            values.extend([
                Value::from(*bucket),
                Value::from(node_id),
                Value::from(ip.clone()),
                Value::from(provider.clone()),
                Value::from(c.queued),
                Value::from(c.delivered),
                Value::from(c.deferred),
                Value::from(c.bounced),
                Value::from(c.rejected),
                Value::from(c.dropped),
            ]);
            tuples.push(format!(
                "({})",
                placeholders(backend, first + 1, values.len() - first)
            ));
        }
        let sql = format!(
            "INSERT INTO {table} ({COLUMNS}) VALUES {} {add_on_conflict}",
            tuples.join(",")
        );
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}
