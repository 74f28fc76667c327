//! Rows of the mail-flow counters `mail_flow_1m` and `mail_flow_1h`: one per bucket,
//! node, sending IP, provider and refusal category (empty for events that are not
//! refusals), with a column per status.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

use crate::{
    db::sql::{placeholder, placeholders},
    error::AppResult,
};

use super::super::model::MailCounts;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// Counter rows one upsert writes at most.
const COUNTER_CHUNK: usize = 500;

/// One counter row's key: bucket (epoch milliseconds), sending IP, provider, category.
pub type CounterKey = (i64, String, String, &'static str);

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
    /// The keys of the group, one per column grouped by.
    pub keys: Vec<GroupKey>,
    pub counts: MailCounts,
}

pub enum GroupKey {
    Node(Uuid),
    Text(String),
}

/// A column counts are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupColumn {
    Node,
    SendingIp,
    Provider,
    Category,
}

impl GroupColumn {
    fn name(self) -> &'static str {
        match self {
            GroupColumn::Node => "node_id",
            GroupColumn::SendingIp => "sending_ip",
            GroupColumn::Provider => "provider",
            GroupColumn::Category => "category",
        }
    }
}

/// Which counter rows count; each list given narrows them.
#[derive(Clone, Copy, Default)]
pub struct CounterFilter<'a> {
    pub node_ids: Option<&'a [Uuid]>,
    pub sending_ips: Option<&'a [String]>,
    pub providers: Option<&'a [String]>,
    pub categories: Option<&'a [&'static str]>,
}

impl CounterFilter<'_> {
    /// ` AND column IN (…)` for each list, its values appended to `values`.
    fn sql(&self, backend: DbBackend, values: &mut Vec<Value>) -> String {
        let mut sql = String::new();
        let mut list = |column: &str, items: Vec<Value>| {
            let marks: Vec<String> = items
                .into_iter()
                .map(|value| {
                    values.push(value);
                    placeholder(backend, values.len())
                })
                .collect();
            sql.push_str(&format!(" AND {column} IN ({})", marks.join(",")));
        };
        if let Some(ids) = self.node_ids {
            list("node_id", ids.iter().map(|id| Value::from(*id)).collect());
        }
        if let Some(ips) = self.sending_ips {
            list(
                "sending_ip",
                ips.iter().map(|ip| Value::from(ip.clone())).collect(),
            );
        }
        if let Some(providers) = self.providers {
            list(
                "provider",
                providers.iter().map(|p| Value::from(p.clone())).collect(),
            );
        }
        if let Some(categories) = self.categories {
            list(
                "category",
                categories.iter().map(|c| Value::from(*c)).collect(),
            );
        }
        sql
    }
}

/// The counts of `tier` from `start` to `end` (epoch milliseconds) summed per step of
/// `step_ms` and per group of `group_by` (none, one or two columns), of the rows
/// `filter` keeps.
#[allow(clippy::too_many_arguments)]
pub async fn steps(
    db: &impl ConnectionTrait,
    tier: Tier,
    step_ms: i64,
    start: i64,
    end: i64,
    group_by: &[GroupColumn],
    filter: &CounterFilter<'_>,
) -> AppResult<Vec<StepCounts>> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = vec![start.into(), end.into()];
    let filter_sql = filter.sql(backend, &mut values);
    let mut group_select = String::new();
    let mut group_list = String::new();
    for (i, column) in group_by.iter().enumerate() {
        group_select.push_str(&format!("{}, ", column.name()));
        group_list.push_str(&format!(", {}", i + 2));
    }
    // Both backends divide integers by truncation; buckets are never negative.
    let sql = format!(
        "SELECT (bucket / {step_ms}) * {step_ms}, {group_select}{SUMS} FROM {table} \
         WHERE bucket >= {p1} AND bucket < {p2}{filter_sql} GROUP BY 1{group_list}",
        table = tier.table(),
        p1 = placeholder(backend, 1),
        p2 = placeholder(backend, 2),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;

    rows.into_iter()
        .map(|row| {
            let keys = group_by
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    Ok(match column {
                        GroupColumn::Node => GroupKey::Node(row.try_get_by_index(i + 1)?),
                        _ => GroupKey::Text(row.try_get_by_index(i + 1)?),
                    })
                })
                .collect::<AppResult<Vec<_>>>()?;
            Ok(StepCounts {
                step: row.try_get_by_index(0)?,
                counts: counts_at(&row, 1 + group_by.len())?,
                keys,
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
        "ON CONFLICT (bucket, node_id, sending_ip, provider, category) DO UPDATE SET \
         queued = {table}.queued + excluded.queued, \
         delivered = {table}.delivered + excluded.delivered, \
         deferred = {table}.deferred + excluded.deferred, \
         bounced = {table}.bounced + excluded.bounced, \
         rejected = {table}.rejected + excluded.rejected, \
         dropped = {table}.dropped + excluded.dropped"
    );
    const COLUMNS: &str = "bucket, node_id, sending_ip, provider, category, queued, delivered, deferred, bounced, rejected, dropped";
    if backend == DbBackend::Postgres {
        // One statement of arrays, as for the raw events.
        let column =
            |f: fn(&MailCounts) -> i64| Value::from(counts.values().map(f).collect::<Vec<_>>());
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO {table} ({COLUMNS}) \
                 SELECT c.bucket, $1, c.sending_ip, c.provider, c.category, c.queued, \
                 c.delivered, c.deferred, c.bounced, c.rejected, c.dropped \
                 FROM UNNEST($2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[], \
                 $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[]) \
                 AS c(bucket, sending_ip, provider, category, queued, delivered, deferred, \
                 bounced, rejected, dropped) {add_on_conflict}"
            ),
            [
                Value::from(node_id),
                Value::from(counts.keys().map(|k| k.0).collect::<Vec<_>>()),
                Value::from(counts.keys().map(|k| k.1.clone()).collect::<Vec<_>>()),
                Value::from(counts.keys().map(|k| k.2.clone()).collect::<Vec<_>>()),
                Value::from(counts.keys().map(|k| k.3.to_owned()).collect::<Vec<_>>()),
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
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 11);
        let mut tuples = Vec::with_capacity(chunk.len());
        for ((bucket, ip, provider, category), c) in chunk {
            let first = values.len();
            values.extend([
                Value::from(*bucket),
                Value::from(node_id),
                Value::from(ip.clone()),
                Value::from(provider.clone()),
                Value::from(*category),
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

/// Refusals of `category` per sending IP and provider counted in the minutes from
/// `since_ms` on, where there were at least `at_least`: the largest `limit`.
pub async fn refusal_hotspots(
    db: &impl ConnectionTrait,
    since_ms: i64,
    category: &str,
    at_least: i64,
    limit: u64,
) -> AppResult<Vec<(String, String, i64)>> {
    let backend = db.get_database_backend();
    let since = since_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
    let sql = format!(
        "SELECT sending_ip, provider, CAST(SUM(deferred + bounced) AS BIGINT) AS refused \
         FROM mail_flow_1m WHERE bucket >= {} AND category = {} AND sending_ip <> '' \
         GROUP BY sending_ip, provider HAVING SUM(deferred + bounced) >= {} \
         ORDER BY refused DESC, sending_ip, provider LIMIT {limit}",
        placeholder(backend, 1),
        placeholder(backend, 2),
        placeholder(backend, 3),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [since.into(), category.into(), at_least.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ))
        })
        .collect()
}

/// A node's counts from one sending IP at one provider, of one refusal category (empty
/// for events that are not refusals), as [`cells_since`] reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowCell {
    pub node_id: Uuid,
    pub sending_ip: String,
    pub provider: String,
    pub category: String,
    pub delivered: i64,
    pub deferred: i64,
    pub bounced: i64,
}

/// Every cell counted in the minutes from `since` on, in one query.
pub async fn cells_since(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> AppResult<Vec<FlowCell>> {
    let backend = db.get_database_backend();
    let since_minute = since.timestamp_millis().div_euclid(MINUTE_MS) * MINUTE_MS;
    let sql = format!(
        "SELECT node_id, sending_ip, provider, category, CAST(SUM(delivered) AS BIGINT), \
         CAST(SUM(deferred) AS BIGINT), CAST(SUM(bounced) AS BIGINT) FROM mail_flow_1m \
         WHERE bucket >= {} GROUP BY node_id, sending_ip, provider, category",
        placeholder(backend, 1)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [since_minute.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let count = |i: usize| -> AppResult<i64> {
                Ok(row.try_get_by_index::<Option<i64>>(i)?.unwrap_or(0))
            };
            Ok(FlowCell {
                node_id: row.try_get_by_index(0)?,
                sending_ip: row.try_get_by_index(1)?,
                provider: row.try_get_by_index(2)?,
                category: row.try_get_by_index(3)?,
                delivered: count(4)?,
                deferred: count(5)?,
                bounced: count(6)?,
            })
        })
        .collect()
}
