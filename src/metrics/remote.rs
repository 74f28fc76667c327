//! Samples that arrive as Prometheus series (remote write): mapped to the catalog with the
//! exporter mapping, then stored as one batch through the same ingestion as
//! `ingestMetrics`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use exporters::{Mappers, Series};
use uuid::Uuid;

use crate::{
    auth::AgentNode,
    db::batch::{Admission, Outcome},
    error::{AppError, AppResult},
    nodes::Label,
    state::AppState,
};

use super::{MAX_SAMPLES, MetricBatchInput, MetricSampleInput, store_batch};

/// The derivations' memory (last CPU totals, memory and swap totals) per node.
pub type ExporterMappers = Arc<Mutex<Mappers<Uuid>>>;

/// What one request stored.
#[derive(Debug)]
pub struct RemoteOutcome {
    pub stored: Outcome,
    /// Series mapped to catalog names and series kept under their own names.
    pub mapped_series: usize,
    pub kept_series: usize,
    /// NaN, ±Inf and staleness markers: not samples.
    pub skipped_values: usize,
}

/// Maps and stores the series of one remote-write request as the batch `batch_id`
/// (atomic, idempotent: the same id again is a duplicate).
pub async fn store_series(
    state: &AppState,
    agent: &AgentNode,
    batch_id: String,
    series: Vec<Series>,
) -> AppResult<RemoteOutcome> {
    let mapped = {
        let mut mappers = state
            .exporter_mappers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        mappers
            .get(agent.node_id)
            .map(series)
            .map_err(|e| AppError::bad_input("timeseries", e.to_string()))?
    };
    if mapped.samples.len() > MAX_SAMPLES {
        return Err(AppError::bad_input(
            "timeseries",
            format!(
                "{} samples; at most {MAX_SAMPLES} per request (lower queue_config.max_samples_per_send)",
                mapped.samples.len()
            ),
        ));
    }
    let samples = mapped
        .samples
        .into_iter()
        .map(|sample| {
            let ts = DateTime::<Utc>::from_timestamp_millis(sample.ts_ms).ok_or_else(|| {
                AppError::bad_input("timeseries", format!("{}: no such time", sample.ts_ms))
            })?;
            Ok(MetricSampleInput {
                name: sample.name,
                labels: sample
                    .labels
                    .into_iter()
                    .map(|(key, value)| Label { key, value })
                    .collect(),
                ts,
                value: sample.value,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    let stored = if samples.is_empty() {
        Outcome {
            accepted: 0,
            duplicate: false,
        }
    } else {
        let batch = MetricBatchInput { batch_id, samples };
        store_batch(state, agent, &batch, Admission::Live).await?
    };
    Ok(RemoteOutcome {
        stored,
        mapped_series: mapped.mapped_series,
        kept_series: mapped.kept_series,
        skipped_values: mapped.skipped_values,
    })
}
