use async_graphql::{Context, Object};

use crate::{
    auth::Role,
    graphql::principal::{AgentGuard, RoleOrAgentGuard, app, principal},
};

use super::{
    catalog::CATALOG,
    ingest,
    types::{IngestResult, MetricBatchInput, MetricDefinition},
};

#[derive(Default)]
pub struct MetricsQuery;

#[Object]
impl MetricsQuery {
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
        let outcome = ingest::ingest(app(ctx)?, agent, &batch).await?;
        Ok(IngestResult {
            batch_id: batch.batch_id,
            accepted: outcome.accepted,
            duplicate: outcome.duplicate,
        })
    }
}
