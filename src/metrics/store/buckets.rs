//! Reading a tier (raw samples or a rollup) folded into steps, in one query.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::{
    db::sql::{placeholder, placeholders},
    error::AppResult,
};

use super::super::query::Resolution;

/// The tier's table and its columns as (t, min, max, sum, count, last, last_ts).
fn columns(resolution: Resolution) -> (&'static str, [&'static str; 7]) {
    const ROLLUP: [&str; 7] = ["bucket", "min", "max", "sum", "count", "last", "last_ts"];
    match resolution {
        Resolution::Raw => (
            "metric_samples",
            ["ts", "value", "value", "value", "1", "value", "ts"],
        ),
        Resolution::Minute => ("metric_rollups_1m", ROLLUP),
        Resolution::Hour => ("metric_rollups_1h", ROLLUP),
    }
}

/// One step of one series, as the query aggregated it.
pub struct Step {
    /// Steps since `from`.
    pub index: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
    pub last: f64,
}

/// The steps of `step_ms` from `from_ms` (to `to_ms`, exclusive) of each series, read
/// from the tier of `resolution`; `last` is filled only `with_last`.
pub async fn read_steps(
    db: &impl ConnectionTrait,
    resolution: Resolution,
    with_last: bool,
    series: &[Uuid],
    from_ms: i64,
    to_ms: i64,
    step_ms: i64,
) -> AppResult<HashMap<Uuid, Vec<Step>>> {
    let backend = db.get_database_backend();
    let p = |i: usize| placeholder(backend, i);
    let sql = bucket_sql(
        backend,
        resolution,
        with_last,
        &placeholders(backend, 1, series.len()),
        [
            p(series.len() + 1),
            p(series.len() + 2),
            p(series.len() + 3),
            p(series.len() + 4),
        ],
    );
    let mut values: Vec<Value> = series.iter().map(|id| Value::from(*id)).collect();
    values.extend([from_ms, to_ms, from_ms, step_ms].map(Value::from));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    // Columns by position (series_id, b, mn, mx, sm, cnt, lst, as `bucket_sql` orders
    // them): a long range returns tens of thousands of rows, and looking every column up
    // by name took about a fifth of such a request.
    let mut buckets: HashMap<Uuid, Vec<Step>> = HashMap::new();
    for row in rows {
        let id: Uuid = row.try_get_by_index(0)?;
        buckets.entry(id).or_default().push(Step {
            index: row.try_get_by_index(1)?,
            min: row.try_get_by_index(2)?,
            max: row.try_get_by_index(3)?,
            sum: row.try_get_by_index(4)?,
            count: row.try_get_by_index(5)?,
            last: row.try_get_by_index(6)?,
        });
    }
    Ok(buckets)
}

/// One query that folds a tier's rows into steps: min, max, sum and count per step, and
/// when `with_last`, the value of the step's latest row (otherwise 0). Postgres picks the
/// latest row in the same pass; SQLite joins the step's latest timestamp back to its row.
fn bucket_sql(
    backend: DbBackend,
    resolution: Resolution,
    with_last: bool,
    ids: &str,
    [from, to, origin, step]: [String; 4],
) -> String {
    let (table, [t, mn, mx, sm, cnt, lst, lts]) = columns(resolution);
    let picked = format!(
        "SELECT series_id, {t} AS t, {mn} AS mn, {mx} AS mx, {sm} AS sm, {cnt} AS cnt, {lst} AS lst, {lts} AS lts \
         FROM {table} WHERE series_id IN ({ids}) AND {t} >= {from} AND {t} < {to}"
    );
    let aggregates = format!(
        "series_id, (t - {origin}) / {step} AS b, MIN(mn) AS mn, MAX(mx) AS mx, SUM(sm) AS sm, \
         CAST(SUM(cnt) AS BIGINT) AS cnt"
    );
    // `picked` comes first in the text so positional parameters (SQLite's `?`) bind in
    // order; Postgres inlines it, as it is read once.
    match (backend, with_last) {
        (DbBackend::Postgres, true) => format!(
            "WITH picked AS ({picked}) SELECT {aggregates}, \
             (array_agg(lst ORDER BY lts DESC))[1] AS lst FROM picked GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        (DbBackend::Postgres, false) => format!(
            "WITH picked AS ({picked}) SELECT {aggregates}, CAST(0 AS DOUBLE PRECISION) AS lst \
             FROM picked GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        (_, true) => format!(
            "WITH picked AS ({picked}), \
             g AS (SELECT {aggregates}, MAX(lts) AS lts FROM picked GROUP BY 1, 2) \
             SELECT g.series_id, g.b, g.mn, g.mx, g.sm, g.cnt, p.lst FROM g \
             JOIN picked p ON p.series_id = g.series_id AND p.lts = g.lts ORDER BY 1, 2"
        ),
        (_, false) => format!(
            "WITH picked AS ({picked}) SELECT {aggregates}, 0.0 AS lst FROM picked \
             GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    }
}
