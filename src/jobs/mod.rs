//! Background jobs. Each tick of a job runs inside a transaction that first takes its
//! database lock ([`crate::db::JobLock`]), so with several instances on one Postgres
//! exactly one of them does the work of a tick and the others skip it; no instance needs
//! to know about the others.

mod book;

pub use book::{JobBook, JobOutcome, JobRecord, JobStatus};

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::FutureExt as _;
use tokio::task::JoinHandle;

use crate::{error::AppResult, state::AppState};

tokio::task_local! {
    /// Set while a job's tick runs; the tick marks it when it did the work (took its lock)
    /// rather than leaving it to another instance.
    static RAN: Arc<AtomicBool>;
}

/// Marks the running tick as one that does the job's work: it holds the job's lock.
pub fn mark_ran() {
    let _ = RAN.try_with(|ran| ran.store(true, Ordering::Relaxed));
}

/// Runs `tick` every `interval` until the task is aborted. A failing tick is logged,
/// counted and recorded, and a panicking one too: the job lives on and the next tick runs
/// as usual. Ticks that another instance did (the lock was taken) are not recorded.
fn every<F, Fut>(
    book: &JobBook,
    name: &'static str,
    interval: Duration,
    mut tick: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = AppResult<()>> + Send,
{
    book.register(name, interval);
    let book = book.clone();
    let waker = book.waker(name);
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => {}
                _ = waker.notified() => timer.reset(),
            }
            let ran = Arc::new(AtomicBool::new(false));
            let started_at = chrono::Utc::now();
            let started = Instant::now();
            let result = RAN
                .scope(
                    ran.clone(),
                    std::panic::AssertUnwindSafe(tick()).catch_unwind(),
                )
                .await;
            let (outcome, error) = match result {
                Ok(Ok(())) => (JobOutcome::Succeeded, None),
                Ok(Err(error)) => {
                    error.log_if_internal();
                    let message = error.client_message();
                    tracing::warn!(job = name, error = message, "job tick failed");
                    (JobOutcome::Failed, Some(message))
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".into());
                    tracing::error!(
                        job = name,
                        panic = message,
                        "job tick panicked; the job carries on"
                    );
                    (JobOutcome::Panicked, Some(message))
                }
            };
            // A tick that found the job's lock taken did nothing; one that failed before
            // taking it is still a failure worth showing.
            if ran.load(Ordering::Relaxed) || outcome != JobOutcome::Succeeded {
                crate::telemetry::job_ran(name, outcome, started.elapsed());
                book.record(name, started_at, outcome, error).await;
            }
        }
    })
}

/// One recurring job: what it runs on a copy of the state.
type Tick = fn(AppState) -> futures_util::future::BoxFuture<'static, AppResult<()>>;

/// Starts every background job of this instance.
pub fn spawn_all(state: &AppState) -> Vec<JoinHandle<()>> {
    let config = &state.config;
    let jobs: [(&'static str, Duration, Tick); 6] = [
        ("node-status", config.nodes.status_check_interval, |state| {
            Box::pin(async move { crate::nodes::sweep_statuses(&state).await.map(drop) })
        }),
        (
            "metrics-retention",
            config.metrics.retention_interval,
            |state| {
                Box::pin(async move { crate::metrics::sweep_retention(&state).await.map(drop) })
            },
        ),
        ("dnsbl-checks", config.dnsbl.job_poll_interval, |state| {
            Box::pin(async move { crate::ips::run_check_jobs(&state).await.map(drop) })
        }),
        (
            "mail-retention",
            config.metrics.retention_interval,
            |state| {
                Box::pin(async move { crate::mailflow::sweep_retention(&state).await.map(drop) })
            },
        ),
        (
            "alert-evaluation",
            config.alerts.evaluation_interval,
            |state| {
                Box::pin(async move {
                    let report = crate::alerts::evaluate_once(&state).await?;
                    // Alerts that fired or resolved have notices waiting: tell people now
                    // rather than at the notifier's next tick.
                    if report.fired + report.resolved > 0 {
                        state.jobs.wake("notifications");
                    }
                    Ok(())
                })
            },
        ),
        ("notifications", config.notifications.interval, |state| {
            Box::pin(async move { crate::notifications::run_once(&state).await.map(drop) })
        }),
    ];
    let mut handles: Vec<JoinHandle<()>> = jobs
        .into_iter()
        .map(|(name, interval, tick)| {
            let copy = state.clone();
            every(&state.jobs, name, interval, move || tick(copy.clone()))
        })
        .collect();
    handles.push(crate::mailflow::spawn_ticker(state));
    handles
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[tokio::test]
    async fn a_panicking_tick_is_recorded_and_the_job_carries_on() {
        let book = JobBook::new(None);
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        let job = every(&book, "flaky", Duration::from_millis(20), move || {
            let tick = counted.fetch_add(1, Ordering::Relaxed);
            async move {
                mark_ran();
                if tick == 0 {
                    panic!("the first tick breaks");
                }
                Ok(())
            }
        });
        // Poll rather than sleep a fixed time: printing the panic's backtrace can take
        // longer than several intervals on a busy machine.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            let status = book
                .statuses()
                .await
                .into_iter()
                .find(|s| s.name == "flaky");
            match status {
                Some(status) if status.record.runs >= 3 => break status,
                _ if tokio::time::Instant::now() > deadline => panic!("{status:?}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        job.abort();
        assert_eq!(status.record.failures, 1);
        assert_eq!(status.record.last_outcome, Some(JobOutcome::Succeeded));
    }

    #[tokio::test]
    async fn a_tick_that_left_the_work_to_another_instance_is_not_recorded() {
        let book = JobBook::new(None);
        let job = every(&book, "elsewhere", Duration::from_millis(20), || async {
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        job.abort();
        let status = book
            .statuses()
            .await
            .into_iter()
            .find(|s| s.name == "elsewhere")
            .unwrap();
        assert_eq!(status.record.runs, 0);
    }
}
