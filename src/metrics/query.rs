//! Range queries: pick the finest tier that answers within the point budget, then
//! aggregate its rows into buckets of `step` in SQL.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::metric_series::Model as SeriesRow;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    input::PointBudget,
    nodes::Label,
};

use super::store;

/// Points one series may return at most.
pub const MAX_POINTS: i64 = 1_500;
pub const MAX_NAMES: usize = 50;
pub const MAX_NODES: usize = 500;
/// Series one query may read at most.
pub const MAX_SERIES: usize = 1_000;
/// The longest range a query may ask for.
const MAX_SPAN: ChronoDuration = ChronoDuration::days(400);

/// How the samples of one step become one point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum Aggregate {
    /// Mean of the samples in each step.
    Avg,
    /// Smallest sample in each step.
    Min,
    /// Largest sample in each step.
    Max,
    /// The latest sample in each step.
    Last,
    /// Sum of the samples in each step.
    Sum,
    /// Per-second increase of a counter, across counter resets.
    Rate,
}

/// Where the points came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum Resolution {
    /// Raw samples (kept 48 h by default).
    Raw,
    /// 1-minute rollups (kept 30 days by default).
    Minute,
    /// 1-hour rollups (kept 400 days by default).
    Hour,
}

impl Resolution {
    pub(super) fn width_ms(self) -> i64 {
        match self {
            Resolution::Raw => 1_000,
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }
}

pub struct RangeQuery<'a> {
    pub node_ids: Option<Vec<Uuid>>,
    pub names: &'a [String],
    pub labels: &'a [Label],
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step_seconds: Option<i64>,
    /// The most points a series may give (a panel's width, Grafana's `maxDataPoints`): it
    /// chooses the step when none is given.
    pub max_points: Option<i64>,
    pub aggregate: Aggregate,
}

pub struct SeriesPoints {
    pub series: SeriesRow,
    pub points: Vec<(DateTime<Utc>, Option<f64>)>,
}

pub struct RangeAnswer {
    pub resolution: Resolution,
    pub step_seconds: i64,
    pub series: Vec<SeriesPoints>,
}

/// How long each tier keeps its data, which bounds how far back it can answer.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub raw: std::time::Duration,
    pub minute: std::time::Duration,
}

/// Agents report every 15 s, so that is the raw tier's resolution when counting the
/// points it would give over a range.
const RAW_INTERVAL_MS: i64 = 15_000;

/// The longest step: the longest retention, 400 days.
pub const MAX_STEP_SECONDS: i64 = 400 * 86_400;

/// The tier and step for a range.
///
/// Without a step, the finest tier whose own resolution gives at most `MAX_POINTS` over
/// the range: raw up to about 6 hours, 1-minute up to 25 hours, 1-hour beyond. That keeps
/// the rows read per series near the points returned, so a 30-day range costs about what
/// a 1-hour one does. With a step, the finest tier whose buckets fit inside it. Either way
/// the tier must still hold data from the start of the range, and the step is rounded up
/// to whole buckets of the tier.
pub fn plan(
    span_ms: i64,
    step_seconds: Option<i64>,
    oldest_ms_ago: i64,
    retention: Retention,
) -> AppResult<(Resolution, i64)> {
    let raw_reaches = oldest_ms_ago <= retention.raw.as_millis() as i64;
    let minute_reaches = oldest_ms_ago <= retention.minute.as_millis() as i64;
    let budget_ms = (span_ms + MAX_POINTS - 1) / MAX_POINTS;
    let (resolution, wanted_ms) = match step_seconds {
        Some(s) if !(1..=MAX_STEP_SECONDS).contains(&s) => {
            return Err(AppError::bad_input(
                "step",
                format!("must be between 1 and {MAX_STEP_SECONDS} seconds (400 days)"),
            ));
        }
        Some(s) => {
            let wanted_ms = s.saturating_mul(1000);
            if span_ms / wanted_ms > MAX_POINTS {
                return Err(AppError::bad_input(
                    "step",
                    format!(
                        "gives more than {MAX_POINTS} points over this range; use a step of at least {} s",
                        (budget_ms + 999) / 1000
                    ),
                ));
            }
            let resolution = if wanted_ms < 60_000 && raw_reaches {
                Resolution::Raw
            } else if wanted_ms < 3_600_000 && minute_reaches {
                Resolution::Minute
            } else {
                Resolution::Hour
            };
            (resolution, wanted_ms)
        }
        None => {
            let resolution = if span_ms / RAW_INTERVAL_MS <= MAX_POINTS && raw_reaches {
                Resolution::Raw
            } else if span_ms / 60_000 <= MAX_POINTS && minute_reaches {
                Resolution::Minute
            } else {
                Resolution::Hour
            };
            let native_ms = match resolution {
                Resolution::Raw => RAW_INTERVAL_MS,
                other => other.width_ms(),
            };
            (resolution, budget_ms.max(native_ms))
        }
    };
    let width = resolution.width_ms();
    let step_ms = (wanted_ms.max(width) + width - 1) / width * width;
    Ok((resolution, step_ms / 1000))
}

/// A finer tier may read at most this many rows per point asked for; past that, the
/// coarser tier's whole buckets answer with fewer rows (and fewer points).
const ROWS_PER_POINT: i64 = 8;

/// The tier and step for at most `points` points over the range: the smallest whole
/// second that gives them, read as a step is, unless its tier would read over
/// `ROWS_PER_POINT` rows per point (a week of 1-minute rollups for 300 points): then the
/// next coarser tier that holds the range, at a step of at least its bucket.
pub fn plan_for_points(
    span_ms: i64,
    points: i64,
    oldest_ms_ago: i64,
    retention: Retention,
) -> AppResult<(Resolution, i64)> {
    if !(1..=MAX_POINTS).contains(&points) {
        return Err(AppError::bad_input(
            "maxPoints",
            format!("must be between 1 and {MAX_POINTS}"),
        ));
    }
    let wanted = ((span_ms + points * 1000 - 1) / (points * 1000)).max(1);
    let (mut resolution, mut step) = plan(span_ms, Some(wanted), oldest_ms_ago, retention)?;
    loop {
        let rows = span_ms
            / match resolution {
                Resolution::Raw => RAW_INTERVAL_MS,
                other => other.width_ms(),
            };
        let coarser_ms = match resolution {
            Resolution::Raw => Resolution::Minute.width_ms(),
            Resolution::Minute => Resolution::Hour.width_ms(),
            Resolution::Hour => break,
        };
        if rows <= ROWS_PER_POINT * points {
            break;
        }
        let (coarser, coarser_step) = plan(
            span_ms,
            Some(step.max(coarser_ms / 1000)),
            oldest_ms_ago,
            retention,
        )?;
        if coarser == resolution {
            break;
        }
        (resolution, step) = (coarser, coarser_step);
    }
    Ok((resolution, step))
}

pub async fn run(
    db: &impl ConnectionTrait,
    query: &RangeQuery<'_>,
    retention: Retention,
    budget: &PointBudget,
) -> AppResult<RangeAnswer> {
    if query.names.is_empty() || query.names.len() > MAX_NAMES {
        return Err(AppError::bad_input(
            "names",
            format!("give 1 to {MAX_NAMES} metric names"),
        ));
    }
    if query
        .node_ids
        .as_ref()
        .is_some_and(|ids| ids.len() > MAX_NODES)
    {
        return Err(AppError::bad_input(
            "nodeIds",
            format!("at most {MAX_NODES} nodes"),
        ));
    }
    if query.labels.len() > super::ingest::MAX_LABELS {
        return Err(AppError::bad_input(
            "labels",
            format!("at most {} labels", super::ingest::MAX_LABELS),
        ));
    }
    if query.to <= query.from {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if query.to - query.from > MAX_SPAN {
        return Err(AppError::bad_input("from", "ranges are at most 400 days"));
    }
    let now = Utc::now();
    let span_ms = (query.to - query.from).num_milliseconds();
    let oldest_ms_ago = (now - query.from).num_milliseconds();
    let (resolution, step_seconds) = match (query.step_seconds, query.max_points) {
        (Some(_), Some(_)) => {
            return Err(AppError::bad_input(
                "maxPoints",
                "give a step or maxPoints, not both",
            ));
        }
        (None, Some(points)) => plan_for_points(span_ms, points, oldest_ms_ago, retention)?,
        (step, None) => plan(span_ms, step, oldest_ms_ago, retention)?,
    };

    let wanted: BTreeMap<&str, &str> = query
        .labels
        .iter()
        .map(|l| (l.key.as_str(), l.value.as_str()))
        .collect();
    let series: Vec<SeriesRow> =
        store::series::of_names(db, query.names, query.node_ids.as_deref())
            .await?
            .into_iter()
            .filter(|s| {
                wanted
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).and_then(|x| x.as_str()) == Some(*v))
            })
            .collect();
    if series.len() > MAX_SERIES {
        return Err(AppError::bad_input(
            "names",
            format!(
                "the query matches {} series; narrow it to at most {MAX_SERIES}",
                series.len()
            ),
        ));
    }
    let steps = (span_ms + step_seconds * 1000 - 1) / (step_seconds * 1000);
    budget.take("names", series.len() as u64 * steps.max(1) as u64)?;
    if series.is_empty() {
        return Ok(RangeAnswer {
            resolution,
            step_seconds,
            series: Vec::new(),
        });
    }

    let from_ms = query.from.timestamp_millis();
    let to_ms = query.to.timestamp_millis();
    let step_ms = step_seconds * 1000;
    let ids: Vec<Uuid> = series.iter().map(|s| s.id).collect();
    let with_last = matches!(query.aggregate, Aggregate::Last | Aggregate::Rate);
    let mut buckets =
        store::buckets::read_steps(db, resolution, with_last, &ids, from_ms, to_ms, step_ms)
            .await?;
    let to_time = |b: i64| {
        DateTime::<Utc>::from_timestamp_millis(from_ms + b * step_ms).unwrap_or(query.from)
    };
    let mut answer = Vec::with_capacity(series.len());
    for s in series {
        let rows = buckets.remove(&s.id).unwrap_or_default();
        let points = match query.aggregate {
            Aggregate::Rate => rate(
                &rows.iter().map(|r| (r.index, r.last)).collect::<Vec<_>>(),
                step_seconds,
            )
            .into_iter()
            .map(|(b, v)| (to_time(b), v))
            .collect(),
            aggregate => rows
                .iter()
                .map(|step| {
                    let value = match aggregate {
                        Aggregate::Avg => step.sum / step.count.max(1) as f64,
                        Aggregate::Min => step.min,
                        Aggregate::Max => step.max,
                        Aggregate::Sum => step.sum,
                        _ => step.last,
                    };
                    (to_time(step.index), Some(value))
                })
                .collect(),
        };
        answer.push(SeriesPoints { series: s, points });
    }
    Ok(RangeAnswer {
        resolution,
        step_seconds,
        series: answer,
    })
}

/// Per-second rates from each bucket's last counter value: the increase since the
/// previous bucket, where a drop means the counter restarted from zero (so the increase
/// is the new value). The first bucket has no predecessor and no rate.
pub fn rate(lasts: &[(i64, f64)], step_seconds: i64) -> Vec<(i64, Option<f64>)> {
    let mut out = Vec::with_capacity(lasts.len());
    let mut previous: Option<(i64, f64)> = None;
    for &(bucket, value) in lasts {
        let rate = previous.map(|(prev_bucket, prev_value)| {
            let increase = if value >= prev_value {
                value - prev_value
            } else {
                value
            };
            increase / ((bucket - prev_bucket) * step_seconds).max(1) as f64
        });
        out.push((bucket, rate));
        previous = Some((bucket, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_reset_counts_the_new_value_as_the_increase() {
        let lasts = [(0, 100.0), (1, 160.0), (2, 30.0), (3, 90.0)];
        let rates = rate(&lasts, 60);
        assert_eq!(
            rates,
            vec![(0, None), (1, Some(1.0)), (2, Some(0.5)), (3, Some(1.0))]
        );
    }

    #[test]
    fn a_panel_width_picks_a_step_and_a_tier_that_reads_few_rows() {
        let hour = 3_600_000;
        let day = 24 * hour;
        let retention = Retention {
            raw: std::time::Duration::from_secs(2 * 86_400),
            minute: std::time::Duration::from_secs(30 * 86_400),
        };
        let panel = |span: i64| plan_for_points(span, 300, span, retention).unwrap();
        assert_eq!(panel(hour), (Resolution::Raw, 12));
        assert_eq!(panel(6 * hour), (Resolution::Minute, 120));
        assert_eq!(panel(day), (Resolution::Minute, 300));
        // 10,080 minute rows for 300 points: the hour tier's 168 instead.
        assert_eq!(panel(7 * day), (Resolution::Hour, 3600));
        assert_eq!(panel(30 * day), (Resolution::Hour, 10_800));
        assert_eq!(plan_for_points(hour, 1, hour, retention).unwrap().1, 3600);
        assert!(plan_for_points(hour, 0, hour, retention).is_err());
        assert!(plan_for_points(hour, 1501, hour, retention).is_err());
    }

    #[test]
    fn the_plan_picks_the_finest_tier_within_the_point_budget() {
        let hour = 3_600_000;
        let day = 24 * hour;
        let retention = Retention {
            raw: std::time::Duration::from_secs(2 * 86_400),
            minute: std::time::Duration::from_secs(30 * 86_400),
        };
        let auto = |span: i64| plan(span, None, span, retention).unwrap();
        assert_eq!(auto(hour), (Resolution::Raw, 15));
        assert_eq!(auto(6 * hour), (Resolution::Raw, 15));
        assert_eq!(auto(day), (Resolution::Minute, 60));
        assert_eq!(auto(7 * day), (Resolution::Hour, 3600));
        assert_eq!(auto(30 * day), (Resolution::Hour, 3600));
        assert_eq!(auto(90 * day), (Resolution::Hour, 7200));
        assert!(plan(30 * day, Some(1), 30 * day, retention).is_err());
        assert_eq!(
            plan(hour, Some(90), hour, retention).unwrap(),
            (Resolution::Minute, 120)
        );
        assert_eq!(
            plan(30 * day, Some(1800), 30 * day, retention).unwrap(),
            (Resolution::Minute, 1800)
        );
        // A range reaching past the raw tier's retention is read from the 1-minute tier.
        assert_eq!(
            plan(hour, None, 3 * day, retention).unwrap(),
            (Resolution::Minute, 60)
        );
    }
}
