//! Background jobs. Each tick of a job runs inside a transaction that first takes its
//! database lock ([`crate::db::JobLock`]), so with several instances on one Postgres
//! exactly one of them does the work of a tick and the others skip it; no instance needs
//! to know about the others.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{error::AppResult, state::AppState};

/// Runs `tick` every `interval` until the task is aborted. A failing tick is logged and
/// the next one runs as usual.
fn every<F, Fut>(name: &'static str, interval: Duration, mut tick: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = AppResult<()>> + Send,
{
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            if let Err(error) = tick().await {
                error.log_if_internal();
                tracing::warn!(
                    job = name,
                    error = error.client_message(),
                    "job tick failed"
                );
            }
        }
    })
}

/// Starts every background job of this instance.
pub fn spawn_all(state: &AppState) -> Vec<JoinHandle<()>> {
    let node_status = {
        let state = state.clone();
        every(
            "node-status",
            state.config.nodes.status_check_interval,
            move || {
                let state = state.clone();
                async move { crate::nodes::sweep_statuses(&state).await.map(|_| ()) }
            },
        )
    };
    let metrics_retention = {
        let state = state.clone();
        every(
            "metrics-retention",
            state.config.metrics.retention_interval,
            move || {
                let state = state.clone();
                async move { crate::metrics::sweep_retention(&state).await.map(|_| ()) }
            },
        )
    };
    let dnsbl_checks = {
        let state = state.clone();
        every(
            "dnsbl-checks",
            state.config.dnsbl.job_poll_interval,
            move || {
                let state = state.clone();
                async move { crate::ips::run_check_jobs(&state).await.map(|_| ()) }
            },
        )
    };
    let mail_retention = {
        let state = state.clone();
        every(
            "mail-retention",
            state.config.metrics.retention_interval,
            move || {
                let state = state.clone();
                async move { crate::mailflow::sweep_retention(&state).await.map(|_| ()) }
            },
        )
    };
    let mail_flow_ticker = crate::mailflow::spawn_ticker(state);
    let alert_evaluation = {
        let state = state.clone();
        every(
            "alert-evaluation",
            state.config.alerts.evaluation_interval,
            move || {
                let state = state.clone();
                async move { crate::alerts::evaluate_once(&state).await.map(|_| ()) }
            },
        )
    };
    vec![
        node_status,
        metrics_retention,
        dnsbl_checks,
        mail_retention,
        mail_flow_ticker,
        alert_evaluation,
    ]
}
