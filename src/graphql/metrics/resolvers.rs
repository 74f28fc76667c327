use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    db::batch::Admission,
    graphql::{
        guards::{AgentGuard, RoleGuard, RoleOrAgentGuard, app, point_budget, principal},
        pagination::parse_ids,
    },
    nodes::Label,
};

use super::types::{IngestResult, MetricDefinition, MetricSeriesPoints, MetricsResult, TimeRange};
use crate::metrics::{self, Aggregate, CATALOG, MetricBatchInput};

#[derive(Default)]
pub struct MetricsQuery;

#[Object]
impl MetricsQuery {
    /// Samples of the named metrics over a range (a preset `range`, or `from`/`to`),
    /// aggregated per `step` seconds. Without a `step`, the finest tier whose own
    /// resolution gives at most 1,500 points per series is read (raw up to about 6 hours,
    /// 1-minute rollups up to 25 hours, 1-hour rollups beyond); with one, the finest tier
    /// whose buckets fit in it, and `step` is rounded up to whole buckets. A step that
    /// would give more than 1,500 points is refused.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::limits::metrics_complexity(names.len(), node_ids.as_ref().map(Vec::len))"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        names: Vec<String>,
        node_ids: Option<Vec<ID>>,
        #[graphql(default)] labels: Vec<Label>,
        range: Option<TimeRange>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        step: Option<i64>,
        #[graphql(
            desc = "The most points a series may give (a panel's width, Grafana's maxDataPoints), 1 to 1,500: it chooses the step when `step` is left out."
        )]
        max_points: Option<i64>,
        #[graphql(default_with = "Aggregate::Avg")] aggregate: Aggregate,
    ) -> async_graphql::Result<MetricsResult> {
        let state = app(ctx)?;
        let (from, to) = TimeRange::resolve(range, from, to, Utc::now())?;
        let node_ids = node_ids.map(|ids| parse_ids("nodeIds", &ids)).transpose()?;
        let answer = metrics::run_range_query(
            &state.db,
            &metrics::RangeQuery {
                node_ids,
                names: &names,
                labels: &labels,
                from,
                to,
                step_seconds: step,
                max_points,
                aggregate,
            },
            metrics::Retention {
                raw: state.config.metrics.raw_retention,
                minute: state.config.metrics.minute_retention,
            },
            point_budget(ctx)?,
        )
        .await?;
        Ok(MetricsResult {
            from,
            to,
            step: answer.step_seconds,
            resolution: answer.resolution,
            series: answer
                .series
                .into_iter()
                .map(|s| MetricSeriesPoints {
                    node_id: ID(s.series.node_id.to_string()),
                    labels: Label::from_json(&s.series.labels),
                    name: s.series.name,
                    steps: s.points,
                    from,
                    step_seconds: answer.step_seconds,
                    step_count: usize::try_from(
                        ((to - from).num_seconds() + answer.step_seconds - 1)
                            / answer.step_seconds.max(1),
                    )
                    .unwrap_or(0),
                })
                .collect(),
        })
    }

    /// The standard metrics agents report, with units and labels.
    #[graphql(guard = "RoleOrAgentGuard::new(Role::Viewer)")]
    async fn metric_catalog(&self) -> Vec<MetricDefinition> {
        CATALOG.iter().map(Into::into).collect()
    }
}

#[derive(Default)]
pub struct MetricsMutation;

#[Object]
impl MetricsMutation {
    /// Stores a batch of samples for the caller's node (node keys only). Retrying a batch
    /// with the same `batchId` is safe: it is answered from the first time and written
    /// once. Answers only after the batch is committed; a batch with any invalid sample
    /// writes nothing and names the sample.
    #[graphql(guard = "AgentGuard")]
    async fn ingest_metrics(
        &self,
        ctx: &Context<'_>,
        batch: MetricBatchInput,
    ) -> async_graphql::Result<IngestResult> {
        let agent = principal(ctx).require_agent()?;
        let outcome = metrics::store_batch(app(ctx)?, agent, &batch, Admission::Live).await;
        crate::db::batch::measure("metrics", &outcome);
        let outcome = outcome?;
        Ok(IngestResult {
            batch_id: batch.batch_id,
            accepted: outcome.accepted,
            duplicate: outcome.duplicate,
        })
    }
}
