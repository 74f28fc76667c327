//! Metrics ingestion through GraphQL against binary COPY of the same rows, on Postgres.
//!
//!     cargo bench --bench metrics_ingest
//!
//! For 15 and then 500 agents pushing at once, each agent sends batches of 1,000 samples
//! (40 series × 25 steps of 15 s) with `ingestMetrics` over loopback HTTP, one batch
//! after another. Each answer comes after the commit that stored the samples, the batch
//! record and both rollup tiers. Then the samples those batches stored are read back,
//! the table is emptied, and the same rows are written with `COPY … FROM STDIN (FORMAT
//! binary)` in the same 1,000-row pieces over as many connections as mailops's pool has:
//! the fastest way Postgres takes rows, and the baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use chrono::{Duration as ChronoDuration, DurationRound as _, Utc};
use mailops::{
    metrics::MetricBatchInput,
    seed::{self, STEPS_PER_HOUR},
    state::AppState,
};
use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::{Value, json};

use uuid::Uuid;

const BATCH_SAMPLES: usize = 1_000;
const POOL: usize = 16;
/// Phases: agents pushing at once, and batches each sends.
const PHASES: [(usize, usize); 2] = [(15, 48), (500, 2)];

const INGEST: &str =
    "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted duplicate } }";

fn batch_json(batch: &MetricBatchInput) -> Value {
    json!({
        "batchId": batch.batch_id,
        "samples": batch.samples.iter().map(|s| json!({
            "name": s.name,
            "labels": s.labels.iter().map(|l| json!({ "key": l.key, "value": l.value })).collect::<Vec<_>>(),
            "ts": s.ts.to_rfc3339(),
            "value": s.value,
        })).collect::<Vec<_>>(),
    })
}

/// Request bodies of `per_agent` batches of 1,000 samples for each agent, consecutive in
/// time within the last day.
fn bodies(agents: usize, per_agent: usize) -> Vec<Vec<Vec<u8>>> {
    let first_hour =
        Utc::now().duration_trunc(ChronoDuration::hours(1)).unwrap() - ChronoDuration::hours(20);
    (0..agents)
        .map(|agent| {
            let hostname = seed::hostname(agent);
            let mut samples = Vec::new();
            let mut hour = first_hour;
            while samples.len() < per_agent * BATCH_SAMPLES {
                samples.extend(seed::hour_batch(agent, &hostname, hour, STEPS_PER_HOUR).samples);
                hour += ChronoDuration::hours(1);
            }
            samples
                .chunks(BATCH_SAMPLES)
                .take(per_agent)
                .enumerate()
                .map(|(i, chunk)| {
                    let batch = MetricBatchInput {
                        batch_id: format!("bench-{i}"),
                        samples: chunk.to_vec(),
                    };
                    serde_json::to_vec(
                        &json!({ "query": INGEST, "variables": { "b": batch_json(&batch) } }),
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect()
}

/// The samples as stored: (series, ts, value).
async fn stored_rows(state: &AppState) -> Vec<(Uuid, i64, f64)> {
    let rows = state
        .db
        .query_all_raw(Statement::from_string(
            state.db.get_database_backend(),
            "SELECT series_id, ts, value FROM metric_samples",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "series_id").unwrap(),
                r.try_get("", "ts").unwrap(),
                r.try_get("", "value").unwrap(),
            )
        })
        .collect()
}

/// One binary COPY payload: header, rows of (uuid, int8, float8), trailer.
fn copy_payload(rows: &[(Uuid, i64, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + rows.len() * 46 + 2);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for (series, ts, value) in rows {
        out.extend_from_slice(&3i16.to_be_bytes());
        out.extend_from_slice(&16i32.to_be_bytes());
        out.extend_from_slice(series.as_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&value.to_bits().to_be_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

async fn through_copy(state: &AppState, rows: &[(Uuid, i64, f64)]) -> Duration {
    let payloads: Vec<Vec<u8>> = rows.chunks(BATCH_SAMPLES).map(copy_payload).collect();
    let statement = "COPY metric_samples (series_id, ts, value) FROM STDIN (FORMAT binary)";
    common::copy_in(state, statement, payloads, POOL).await
}

async fn empty_metrics(state: &AppState) {
    state
        .db
        .execute_unprepared(
            "TRUNCATE metric_samples, metric_rollups_1m, metric_rollups_1h, metric_batches",
        )
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    let mut server = common::ingest_server(POOL).await;
    let graphql = format!("http://{}/graphql", server.addr);

    let mut table = String::from(
        "| agents at once | batches | resent (busy or dropped) | samples | `ingestMetrics` (samples/s) | binary COPY of the same rows (samples/s) | GraphQL ÷ COPY | goal |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut offset = 0;
    for (agents, per_agent) in PHASES {
        empty_metrics(&server.state).await;
        // Fresh nodes for each phase, so every agent's series are new.
        let nodes = seed::register_nodes(&server.state, offset..offset + agents)
            .await
            .unwrap();
        let keys: Vec<String> = nodes.into_iter().map(|n| n.key).collect();
        offset += agents;
        let bodies = bodies(agents, per_agent);
        let samples = (agents * per_agent * BATCH_SAMPLES) as f64;
        let (graphql_time, retried) =
            common::send_agent_batches(&graphql, &keys, bodies, "ingestMetrics", BATCH_SAMPLES)
                .await;

        let rows = stored_rows(&server.state).await;
        assert_eq!(rows.len() as f64, samples);
        server
            .state
            .db
            .execute_unprepared("TRUNCATE metric_samples")
            .await
            .unwrap();
        let rows = Arc::new(rows);
        let copy_time = through_copy(&server.state, &rows).await;

        let graphql_rate = samples / graphql_time.as_secs_f64();
        let copy_rate = samples / copy_time.as_secs_f64();
        println!(
            "{agents} agents: GraphQL {graphql_rate:.0} samples/s ({retried} batches resent), COPY {copy_rate:.0} samples/s"
        );
        table.push_str(&format!(
            "| {agents} | {} | {retried} | {} | {graphql_rate:.0} | {copy_rate:.0} | {:.0}% | ≥ 70% |\n",
            agents * per_agent,
            samples as u64,
            100.0 * graphql_rate / copy_rate
        ));
    }
    print!("{table}");
    common::write_section(
        "metrics_ingest",
        "cargo bench --bench metrics_ingest",
        &format!(
            "Machine: {}. Postgres, pool of {POOL} connections; batches of {BATCH_SAMPLES} samples (40 series × 25 steps), each agent sending its batches one after another, all agents at once, over loopback HTTP/1.1 with the load generator in the same process. COPY writes the rows those batches stored, in the same 1,000-row pieces, over {POOL} connections. The GraphQL side also writes the batch record, both rollup tiers and the node's `lastSeenAt` in the same transaction.\n\n{table}",
            common::machine()
        ),
    );
    server.stop().await;
}
