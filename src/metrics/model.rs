//! What agents send: samples and the batches that carry them.

use async_graphql::InputObject;
use chrono::{DateTime, Utc};

use crate::nodes::Label;

/// One measurement.
#[derive(InputObject, Debug, Clone)]
pub struct MetricSampleInput {
    /// A catalog name (see `metricCatalog`) or a custom one matching
    /// `^[a-z][a-z0-9_.]{0,127}$`.
    pub name: String,
    /// Catalog metrics carry exactly their catalog labels; custom ones up to 16, with keys
    /// matching `^[a-z_][a-z0-9_]{0,63}$` and values of up to 128 bytes.
    #[graphql(default)]
    pub labels: Vec<Label>,
    /// When it was measured: at most 5 minutes ahead, and within raw retention.
    pub ts: DateTime<Utc>,
    /// A finite number.
    pub value: f64,
}

/// A batch of samples from one agent.
#[derive(InputObject, Debug, Clone)]
pub struct MetricBatchInput {
    /// Chosen by the agent, unique per node: 1–64 characters of letters, digits, `.`,
    /// `_`, `:` and `-`. Sending the same batch again is safe.
    pub batch_id: String,
    /// 1 to 10,000 samples.
    pub samples: Vec<MetricSampleInput>,
}
