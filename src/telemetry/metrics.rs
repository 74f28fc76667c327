//! What mailops measures about itself, in the Prometheus text format on `GET /metrics`.
//!
//! One recorder per process (the `metrics` facade is global); each instance is scraped on
//! its own. Labels are bounded: operation names are the client's choice, so only the
//! first few hundred distinct ones get their own series and the rest count as `other`.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: 1 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Distinct operation names given series of their own.
const MAX_OPERATION_NAMES: usize = 256;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static OPERATION_NAMES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();

/// The recorder of this process, installed on first use.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder could not be installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the recorder, so that what happens from now on is counted, and describes
/// every metric (the `# HELP` lines).
pub fn install() {
    if handle().is_none() {
        return;
    }
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "mailops_http_requests_total",
        "HTTP responses, by status code."
    );
    describe_counter!(
        "mailops_graphql_operations_total",
        "GraphQL operations, by operation name, type and the code they ended with (OK when none)."
    );
    describe_histogram!(
        "mailops_graphql_operation_duration_seconds",
        Unit::Seconds,
        "How long GraphQL operations took, by type."
    );
    describe_gauge!("mailops_websockets_open", "WebSockets open.");
    describe_gauge!(
        "mailops_subscriptions_active",
        "Operations running on WebSockets."
    );
    describe_counter!(
        "mailops_ingest_batches_total",
        "Agent batches, by kind (metrics, mail) and result (accepted, duplicate, refused)."
    );
    describe_counter!("mailops_ingested_samples_total", "Metric samples stored.");
    describe_counter!(
        "mailops_remote_write_samples_total",
        "Samples stored from Prometheus remote-write requests."
    );
    describe_counter!(
        "mailops_remote_write_skipped_values_total",
        "Remote-write values that are not numbers (NaN, infinities, staleness markers), not stored."
    );
    describe_counter!("mailops_ingested_mail_events_total", "Mail events stored.");
    describe_counter!(
        "mailops_job_runs_total",
        "Runs of recurring jobs on this instance, by job and outcome."
    );
    describe_histogram!(
        "mailops_job_duration_seconds",
        Unit::Seconds,
        "How long recurring job runs took, by job."
    );
    describe_gauge!(
        "mailops_db_pool_connections",
        "Database pool connections: open, idle and the most allowed."
    );
    describe_counter!(
        "mailops_db_pool_timeouts_total",
        "Requests that found no free database connection in time (answered RATE_LIMITED)."
    );
    describe_counter!(
        "mailops_db_unavailable_total",
        "Database errors meaning it could not be reached (answered UNAVAILABLE)."
    );
    describe_histogram!(
        "mailops_event_bus_lag_seconds",
        Unit::Seconds,
        "Time from an event entering the Redis stream to this instance reading it."
    );
    describe_counter!(
        "mailops_event_bus_reconnects_total",
        "Times the event bus lost Redis, by side (reader, publisher)."
    );
    describe_counter!(
        "mailops_redis_fallbacks_total",
        "Decisions made locally because Redis did not answer, by component."
    );
    describe_counter!(
        "mailops_rate_limit_refusals_total",
        "Operations refused by the rate limits, by caller (user, agent, anonymous)."
    );
    describe_counter!(
        "mailops_notifications_total",
        "Notification attempts, by contact point kind and result (sent, failed, rejected)."
    );
}

/// Everything measured so far, in the Prometheus text exposition format.
pub fn render() -> String {
    match handle() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// The name an operation is counted under.
fn operation_label(name: Option<&str>) -> String {
    let Some(name) = name.filter(|n| !n.is_empty() && n.len() <= 64) else {
        return "anonymous".into();
    };
    let names = OPERATION_NAMES.get_or_init(Default::default);
    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
    if names.contains(name) {
        return name.to_string();
    }
    if names.len() < MAX_OPERATION_NAMES {
        names.insert(name.to_string());
        return name.to_string();
    }
    "other".into()
}

pub fn http_response(status: u16) {
    metrics::counter!("mailops_http_requests_total", "status" => status.to_string()).increment(1);
}

/// One GraphQL operation: its name, type (`query`, `mutation`, `subscription`), the
/// error code it ended with (`OK` when none) and how long it took.
pub fn graphql_operation(name: Option<&str>, kind: &'static str, outcome: &str, took: Duration) {
    let name = operation_label(name);
    metrics::counter!(
        "mailops_graphql_operations_total",
        "operation" => name,
        "type" => kind,
        "outcome" => outcome.to_string()
    )
    .increment(1);
    metrics::histogram!("mailops_graphql_operation_duration_seconds", "type" => kind)
        .record(took.as_secs_f64());
}

pub fn websocket_opened() {
    metrics::gauge!("mailops_websockets_open").increment(1.0);
}

pub fn websocket_closed() {
    metrics::gauge!("mailops_websockets_open").decrement(1.0);
}

pub fn subscriptions_changed(delta: f64) {
    metrics::gauge!("mailops_subscriptions_active").increment(delta);
}

/// A batch an agent sent: `kind` is `metrics` or `mail`, `result` `accepted`,
/// `duplicate` or `refused`; `items` the samples or events it stored.
pub fn ingested(kind: &'static str, result: &'static str, items: u64) {
    metrics::counter!("mailops_ingest_batches_total", "kind" => kind, "result" => result)
        .increment(1);
    if items > 0 {
        let name = match kind {
            "metrics" => "mailops_ingested_samples_total",
            _ => "mailops_ingested_mail_events_total",
        };
        metrics::counter!(name).increment(items);
    }
}

pub fn job_ran(job: &'static str, outcome: crate::jobs::JobOutcome, took: Duration) {
    let outcome = match outcome {
        crate::jobs::JobOutcome::Succeeded => "succeeded",
        crate::jobs::JobOutcome::Failed => "failed",
        crate::jobs::JobOutcome::Panicked => "panicked",
    };
    metrics::counter!("mailops_job_runs_total", "job" => job, "outcome" => outcome).increment(1);
    metrics::histogram!("mailops_job_duration_seconds", "job" => job).record(took.as_secs_f64());
}

/// The database pool as it stands.
pub fn database_pool(open: u32, idle: u32, max: u32) {
    metrics::gauge!("mailops_db_pool_connections", "state" => "open").set(f64::from(open));
    metrics::gauge!("mailops_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("mailops_db_pool_connections", "state" => "max").set(f64::from(max));
}

/// A request waited for a database connection for the whole acquire timeout.
pub fn database_pool_exhausted() {
    metrics::counter!("mailops_db_pool_timeouts_total").increment(1);
}

/// The database could not be reached.
pub fn database_unavailable() {
    metrics::counter!("mailops_db_unavailable_total").increment(1);
}

/// How long an event took from being appended to Redis to this instance reading it.
pub fn event_bus_lag(lag: Duration) {
    metrics::histogram!("mailops_event_bus_lag_seconds").record(lag.as_secs_f64());
}

pub fn event_bus_reconnect(side: &'static str) {
    metrics::counter!("mailops_event_bus_reconnects_total", "side" => side).increment(1);
}

/// A part of mailops decided locally because Redis did not answer.
pub fn redis_fallback(component: &'static str) {
    metrics::counter!("mailops_redis_fallbacks_total", "component" => component).increment(1);
}

pub fn rate_limited(caller: &'static str, operations: u64) {
    metrics::counter!("mailops_rate_limit_refusals_total", "caller" => caller)
        .increment(operations);
}

/// A notification attempt: `result` is `sent`, `failed` (tried again) or `rejected`.
pub fn notification(kind: &'static str, result: &'static str) {
    metrics::counter!("mailops_notifications_total", "kind" => kind, "result" => result)
        .increment(1);
}
