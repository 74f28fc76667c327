//! Delivering spooled batches to mailops, oldest first, one at a time: a batch leaves the
//! spool only once mailops has acknowledged it (accepted, or a duplicate of one it has),
//! or refused its content.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{
    backoff::Backoff,
    client::{Client, Failure},
    spool::{Batch, Spool},
};

pub const INGEST: &str =
    "mutation($batch: MetricBatchInput!) { ingestMetrics(batch: $batch) { accepted duplicate } }";

pub const INGEST_EVENTS: &str = "mutation($batch: MailEventBatchInput!) { ingestMailEvents(batch: $batch) { accepted duplicate } }";

/// The mutation and variables that deliver a batch.
pub fn operation_for(batch: &Batch) -> (&'static str, Value) {
    if batch.events.is_empty() {
        (INGEST, ingest_variables(batch))
    } else {
        (
            INGEST_EVENTS,
            json!({ "batch": { "batchId": batch.batch_id, "events": batch.events } }),
        )
    }
}

/// The first wait after a failure, and the longest.
pub const RETRY_FLOOR: Duration = Duration::from_millis(500);
pub const RETRY_CEILING: Duration = Duration::from_secs(30);

/// The variables of `ingestMetrics` for a batch.
pub fn ingest_variables(batch: &Batch) -> Value {
    let samples: Vec<Value> = batch
        .samples
        .iter()
        .map(|s| {
            let labels: Vec<Value> = s
                .labels
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .collect();
            json!({ "name": s.name, "labels": labels, "ts": s.ts, "value": s.value })
        })
        .collect();
    json!({ "batch": { "batchId": batch.batch_id, "samples": samples } })
}

/// Sends until `stop` turns true; then returns (what is unsent stays spooled).
pub async fn deliver(spool: Spool, client: Client, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(RETRY_FLOOR, RETRY_CEILING);
    while !*stop.borrow() {
        let Some((sequence, batch)) = spool.oldest() else {
            tokio::select! {
                _ = spool.added() => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let (operation, variables) = operation_for(&batch);
        match client.run(operation, variables).await {
            Ok(data) => {
                if backoff.failures() > 0 {
                    tracing::info!(
                        after_failures = backoff.failures(),
                        "mailops takes batches again"
                    );
                }
                backoff.succeeded();
                spool.remove(sequence, false);
                tracing::debug!(
                    batch_id = %batch.batch_id,
                    duplicate = data.as_object().and_then(|d| d.values().next()).and_then(|r| r["duplicate"].as_bool()).unwrap_or(false),
                    "batch acknowledged"
                );
            }
            Err(Failure::Refused { code, message }) => {
                tracing::error!(batch_id = %batch.batch_id, code, message, "mailops refused a batch; it is dropped");
                spool.remove(sequence, true);
            }
            Err(Failure::Retry {
                reason,
                retry_after,
            }) => {
                let wait = backoff.next_wait(retry_after);
                // The first failure of a run and then every tenth, not one line per try.
                if backoff.failures() % 10 == 1 {
                    tracing::warn!(
                        reason,
                        failures = backoff.failures(),
                        spooled = spool.level().batches,
                        retry_in_ms = wait.as_millis() as u64,
                        "mailops did not take a batch; it stays spooled"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}
