//! The hot path of metrics: bulk inserts of samples and rollup upserts. Each has a
//! Postgres form (arrays through `UNNEST`: one statement, one plan, whatever the batch
//! size) and a portable SQLite twin (multi-row `VALUES` in chunks under its parameter
//! limit). Both skip samples already stored and return the ones they inserted.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

use crate::error::AppResult;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub series_id: Uuid,
    /// Epoch milliseconds.
    pub ts: i64,
    pub value: f64,
}

/// The two rollup tiers: table and bucket width in milliseconds.
pub const ROLLUPS: [(&str, i64); 2] = [
    ("metric_rollups_1m", 60_000),
    ("metric_rollups_1h", 3_600_000),
];

/// SQLite allows 999 parameters per statement in older builds; stay under it.
const SQLITE_PARAMS: usize = 900;

fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|_| format!("({})", vec!["?"; columns].join(",")))
        .collect::<Vec<_>>()
        .join(",")
}

fn sample_of(row: &QueryResult) -> AppResult<Sample> {
    Ok(Sample {
        series_id: row.try_get("", "series_id")?,
        ts: row.try_get("", "ts")?,
        value: row.try_get("", "value")?,
    })
}

/// Inserts `samples` (sorted, so concurrent batches lock rows in one order), skipping any
/// already stored; returns the ones it inserted.
pub async fn insert_samples(
    conn: &impl ConnectionTrait,
    samples: &[Sample],
) -> AppResult<Vec<Sample>> {
    let mut sorted = samples.to_vec();
    sorted.sort_by_key(|s| (s.series_id, s.ts));
    sorted.dedup_by(|a, b| a.series_id == b.series_id && a.ts == b.ts);
    let backend = conn.get_database_backend();
    let mut inserted = Vec::with_capacity(sorted.len());
    match backend {
        DbBackend::Postgres => {
            let statement = Statement::from_sql_and_values(
                backend,
                "INSERT INTO metric_samples (series_id, ts, value) \
                 SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::float8[]) \
                 ON CONFLICT DO NOTHING RETURNING series_id, ts, value",
                [
                    Value::from(sorted.iter().map(|s| s.series_id).collect::<Vec<_>>()),
                    Value::from(sorted.iter().map(|s| s.ts).collect::<Vec<_>>()),
                    Value::from(sorted.iter().map(|s| s.value).collect::<Vec<_>>()),
                ],
            );
            for row in conn.query_all_raw(statement).await? {
                inserted.push(sample_of(&row)?);
            }
        }
        _ => {
            for chunk in sorted.chunks(SQLITE_PARAMS / 3) {
                let sql = format!(
                    "INSERT INTO metric_samples (series_id, ts, value) VALUES {} \
                     ON CONFLICT DO NOTHING RETURNING series_id, ts, value",
                    placeholders(chunk.len(), 3)
                );
                let values = chunk.iter().flat_map(|s| {
                    [
                        Value::from(s.series_id),
                        Value::from(s.ts),
                        Value::from(s.value),
                    ]
                });
                for row in conn
                    .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                    .await?
                {
                    inserted.push(sample_of(&row)?);
                }
            }
        }
    }
    Ok(inserted)
}

/// What one rollup bucket of one series holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
    pub last: f64,
    pub last_ts: i64,
}

/// Aggregates samples into buckets of `width_ms`, keyed by (series, bucket start).
pub fn aggregate(samples: &[Sample], width_ms: i64) -> BTreeMap<(Uuid, i64), Bucket> {
    let mut buckets: BTreeMap<(Uuid, i64), Bucket> = BTreeMap::new();
    for s in samples {
        let start = s.ts.div_euclid(width_ms) * width_ms;
        buckets
            .entry((s.series_id, start))
            .and_modify(|b| {
                b.min = b.min.min(s.value);
                b.max = b.max.max(s.value);
                b.sum += s.value;
                b.count += 1;
                if s.ts >= b.last_ts {
                    b.last = s.value;
                    b.last_ts = s.ts;
                }
            })
            .or_insert(Bucket {
                min: s.value,
                max: s.value,
                sum: s.value,
                count: 1,
                last: s.value,
                last_ts: s.ts,
            });
    }
    buckets
}

/// Folds newly inserted samples into every rollup tier, in (series, bucket) order.
pub async fn update_rollups(conn: &impl ConnectionTrait, inserted: &[Sample]) -> AppResult<()> {
    if inserted.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    for (table, width) in ROLLUPS {
        let buckets: Vec<((Uuid, i64), Bucket)> = aggregate(inserted, width).into_iter().collect();
        let (least, greatest) = match backend {
            DbBackend::Postgres => ("LEAST", "GREATEST"),
            _ => ("MIN", "MAX"),
        };
        let merge = format!(
            "ON CONFLICT (series_id, bucket) DO UPDATE SET \
             min = {least}({table}.min, excluded.min), \
             max = {greatest}({table}.max, excluded.max), \
             sum = {table}.sum + excluded.sum, \
             count = {table}.count + excluded.count, \
             last = CASE WHEN excluded.last_ts >= {table}.last_ts THEN excluded.last ELSE {table}.last END, \
             last_ts = {greatest}({table}.last_ts, excluded.last_ts)"
        );
        let columns = "(series_id, bucket, min, max, sum, count, last, last_ts)";
        match backend {
            DbBackend::Postgres => {
                let sql = format!(
                    "INSERT INTO {table} {columns} SELECT * FROM UNNEST($1::uuid[], $2::int8[], \
                     $3::float8[], $4::float8[], $5::float8[], $6::int8[], $7::float8[], $8::int8[]) {merge}"
                );
                let arrays: [Value; 8] = [
                    buckets
                        .iter()
                        .map(|((id, _), _)| *id)
                        .collect::<Vec<_>>()
                        .into(),
                    buckets
                        .iter()
                        .map(|((_, start), _)| *start)
                        .collect::<Vec<_>>()
                        .into(),
                    buckets
                        .iter()
                        .map(|(_, b)| b.min)
                        .collect::<Vec<_>>()
                        .into(),
                    buckets
                        .iter()
                        .map(|(_, b)| b.max)
                        .collect::<Vec<_>>()
                        .into(),
                    buckets
                        .iter()
                        .map(|(_, b)| b.sum)
                        .collect::<Vec<_>>()
                        .into(),
                    buckets
                        .iter()
                        .map(|(_, b)| b.count)
                        .collect::<Vec<_>>()
                        .into(),
                    buckets
                        .iter()
                        .map(|(_, b)| b.last)
                        .collect::<Vec<_>>()
                        .into(),
                    buckets
                        .iter()
                        .map(|(_, b)| b.last_ts)
                        .collect::<Vec<_>>()
                        .into(),
                ];
                conn.execute_raw(Statement::from_sql_and_values(backend, sql, arrays))
                    .await?;
            }
            _ => {
                for chunk in buckets.chunks(SQLITE_PARAMS / 8) {
                    let sql = format!(
                        "INSERT INTO {table} {columns} VALUES {} {merge}",
                        placeholders(chunk.len(), 8)
                    );
                    let values = chunk.iter().flat_map(|((id, start), b)| {
                        [
                            Value::from(*id),
                            Value::from(*start),
                            Value::from(b.min),
                            Value::from(b.max),
                            Value::from(b.sum),
                            Value::from(b.count),
                            Value::from(b.last),
                            Value::from(b.last_ts),
                        ]
                    });
                    conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                        .await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_min_max_sum_count_and_the_latest_value() {
        let id = Uuid::now_v7();
        let samples = [
            Sample {
                series_id: id,
                ts: 61_000,
                value: 5.0,
            },
            Sample {
                series_id: id,
                ts: 60_000,
                value: 7.0,
            },
            Sample {
                series_id: id,
                ts: 119_999,
                value: 1.0,
            },
            Sample {
                series_id: id,
                ts: 120_000,
                value: 3.0,
            },
        ];
        let buckets = aggregate(&samples, 60_000);
        assert_eq!(
            buckets[&(id, 60_000)],
            Bucket {
                min: 1.0,
                max: 7.0,
                sum: 13.0,
                count: 3,
                last: 1.0,
                last_ts: 119_999
            }
        );
        assert_eq!(buckets[&(id, 120_000)].count, 1);
    }
}
