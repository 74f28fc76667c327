//! Background jobs. Each tick of a job runs inside a transaction that first takes a
//! database lock, so with several instances on one Postgres exactly one of them does the
//! work of a tick and the others skip it; no instance needs to know about the others.

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};
use tokio::task::JoinHandle;

use crate::{error::AppResult, state::AppState};

/// Advisory-lock keys, one per job.
pub mod lock {
    pub const NODE_STATUS: i64 = 0x6d61_696c_0001;
    pub const METRICS_RETENTION: i64 = 0x6d61_696c_0002;
    pub const DNSBL_CHECKS: i64 = 0x6d61_696c_0003;
    /// Held while a DNSBL check's results are stored, so stores of two instances queue.
    pub const DNSBL_RESULTS: i64 = 0x6d61_696c_0004;
    pub const ALERT_EVALUATION: i64 = 0x6d61_696c_0005;
    pub const MAIL_RETENTION: i64 = 0x6d61_696c_0006;
}

/// Begins a transaction holding the job's lock, or `None` when another instance holds it.
pub async fn begin_exclusive(
    db: &DatabaseConnection,
    lock: i64,
) -> AppResult<Option<DatabaseTransaction>> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS locked",
                [lock.into()],
            ))
            .await?;
        let locked = match row {
            Some(row) => row.try_get::<bool>("", "locked")?,
            None => false,
        };
        if !locked {
            txn.rollback().await?;
            return Ok(None);
        }
    }
    // SQLite serves a single instance; its own write lock is enough.
    Ok(Some(txn))
}

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
            state.config.node_status_check_interval,
            move || {
                let state = state.clone();
                async move { crate::nodes::status::sweep(&state).await.map(|_| ()) }
            },
        )
    };
    let metrics_retention = {
        let state = state.clone();
        every(
            "metrics-retention",
            state.config.metrics_retention_interval,
            move || {
                let state = state.clone();
                async move { crate::metrics::retention::sweep(&state).await.map(|_| ()) }
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
                async move { crate::ips::checks::tick(&state).await.map(|_| ()) }
            },
        )
    };
    let mail_retention = {
        let state = state.clone();
        every(
            "mail-retention",
            state.config.metrics_retention_interval,
            move || {
                let state = state.clone();
                async move { crate::mailflow::retention::sweep(&state).await.map(|_| ()) }
            },
        )
    };
    let mail_flow_ticker = crate::mailflow::ticker::spawn(state);
    let alert_evaluation = {
        let state = state.clone();
        every(
            "alert-evaluation",
            state.config.alert_evaluation_interval,
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
