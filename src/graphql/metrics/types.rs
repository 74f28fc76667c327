use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};

use crate::{
    metrics::{MetricDef, MetricKind, MetricService},
    nodes::Label,
};

/// A standard metric: what agents should call it, its unit and its labels.
#[derive(SimpleObject, Debug, Clone)]
pub struct MetricDefinition {
    /// The name agents send, e.g. `system.cpu.used_percent`.
    pub name: String,
    /// The part of the cluster it describes.
    pub service: MetricService,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// `percent`, `bytes`, `seconds`, `messages`, …
    pub unit: String,
    /// The label keys every sample carries, e.g. `mount` for disk usage.
    pub labels: Vec<String>,
    /// What it measures.
    pub description: String,
}

impl From<&MetricDef> for MetricDefinition {
    fn from(def: &MetricDef) -> Self {
        MetricDefinition {
            name: def.name.into(),
            service: def.service,
            kind: def.kind,
            unit: def.unit.into(),
            labels: def.labels.iter().map(|l| l.to_string()).collect(),
            description: def.description.into(),
        }
    }
}

/// The answer to `ingestMetrics`, given only after the batch is committed.
#[derive(SimpleObject, Debug, Clone)]
pub struct IngestResult {
    /// The batch's id, as sent.
    pub batch_id: String,
    /// How many samples the batch held; all of them are stored.
    pub accepted: i32,
    /// True when this batch was stored before and nothing was written now.
    pub duplicate: bool,
}

/// A preset time range ending now.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeRange {
    /// The last hour.
    H1,
    /// The last 6 hours.
    H6,
    /// The last 24 hours.
    H24,
    /// The last 7 days.
    D7,
    /// The last 30 days.
    D30,
}

impl TimeRange {
    /// The range a query reads: a preset ending at `now`, or `from` up to `to` (default
    /// `now`). Anything else is refused naming `range`.
    pub fn resolve(
        range: Option<TimeRange>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> crate::error::AppResult<(DateTime<Utc>, DateTime<Utc>)> {
        let (from, to) = match (range, from, to) {
            (Some(range), None, None) => (now - range.duration(), now),
            (None, Some(from), to) => (from, to.unwrap_or(now)),
            _ => {
                return Err(crate::error::AppError::bad_input(
                    "range",
                    "give either range, or from (and optionally to)",
                ));
            }
        };
        Ok((from, to))
    }

    pub fn duration(self) -> chrono::Duration {
        match self {
            TimeRange::H1 => chrono::Duration::hours(1),
            TimeRange::H6 => chrono::Duration::hours(6),
            TimeRange::H24 => chrono::Duration::hours(24),
            TimeRange::D7 => chrono::Duration::days(7),
            TimeRange::D30 => chrono::Duration::days(30),
        }
    }
}

/// One point of a series: the start of its step and the aggregated value (`null` where
/// a rate has no earlier point to compare with).
#[derive(SimpleObject, Debug, Clone)]
pub struct MetricPoint {
    /// Start of the step.
    pub ts: DateTime<Utc>,
    /// The aggregated value.
    pub value: Option<f64>,
}

/// One series over the asked range.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct MetricSeriesPoints {
    /// The node that reported it.
    pub node_id: async_graphql::ID,
    /// The metric name.
    pub name: String,
    /// The series' labels.
    pub labels: Vec<Label>,
    #[graphql(skip)]
    pub steps: Vec<(DateTime<Utc>, Option<f64>)>,
    #[graphql(skip)]
    pub from: DateTime<Utc>,
    #[graphql(skip)]
    pub step_seconds: i64,
    /// Steps in the range.
    #[graphql(skip)]
    pub step_count: usize,
}

#[async_graphql::ComplexObject]
impl MetricSeriesPoints {
    /// The steps with samples, each with its start; steps without samples are left out.
    async fn points(&self) -> Vec<MetricPoint> {
        self.steps
            .iter()
            .map(|&(ts, value)| MetricPoint { ts, value })
            .collect()
    }

    /// Every step of the range in order, the value of step `i` starting at
    /// `from + i × step`; `null` where the step has no samples (or a rate has no earlier
    /// value). The same numbers as `points`, without a timestamp each.
    async fn values(&self) -> Vec<Option<f64>> {
        let mut values = vec![None; self.step_count];
        let step_ms = self.step_seconds.max(1) * 1000;
        for &(ts, value) in &self.steps {
            let index = (ts - self.from).num_milliseconds() / step_ms;
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| values.get_mut(i)) {
                *slot = value;
            }
        }
        values
    }
}

/// The answer to `metrics`.
#[derive(SimpleObject, Debug, Clone)]
pub struct MetricsResult {
    /// Start of the range read.
    pub from: DateTime<Utc>,
    /// End of the range read (exclusive).
    pub to: DateTime<Utc>,
    /// The step used, in seconds: the one asked for, rounded up to the tier read.
    pub step: i64,
    /// The tier the points were read from.
    pub resolution: crate::metrics::Resolution,
    /// One entry per matching series.
    pub series: Vec<MetricSeriesPoints>,
}
