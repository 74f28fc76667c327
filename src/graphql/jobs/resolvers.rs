//! The recurring jobs and the DNSBL check queue, for admins.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    graphql::{
        guards::{RoleGuard, app, audit_context},
        ips::types::IpCheckJob,
        pagination::parse_id,
    },
    ips::{self, JobAction, QueueSummary},
    jobs::{JobOutcome, JobStatus},
};

/// What mailops runs in the background, and how it went.
#[derive(SimpleObject)]
pub struct Jobs {
    /// Every recurring job: node status, DNSBL schedule and worker, metrics and mail
    /// retention, alert evaluation, the mail-flow ticker.
    pub recurring: Vec<RecurringJob>,
    /// The DNSBL check queue.
    pub dnsbl_queue: QueueSummary,
}

/// A job that runs every `intervalSeconds` on one instance at a time.
#[derive(SimpleObject)]
pub struct RecurringJob {
    /// The job's name, as in logs and `/metrics`.
    pub name: String,
    /// How often it runs.
    pub interval_seconds: f64,
    /// When its last run started.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When its last run ended.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// How its last run ended.
    pub last_outcome: Option<JobOutcome>,
    /// What went wrong in its last run, when it failed.
    pub last_error: Option<String>,
    /// When it runs next, about.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The instance that ran it last (`host:pid`).
    pub instance: Option<String>,
    /// Runs recorded (on every instance, with Redis).
    pub runs: u64,
    /// Of those, the ones that failed or panicked.
    pub failures: u64,
}

impl From<JobStatus> for RecurringJob {
    fn from(status: JobStatus) -> Self {
        let record = status.record;
        let next_run_at = record.last_started_at.and_then(|at| {
            chrono::Duration::from_std(status.interval)
                .ok()
                .map(|interval| at + interval)
        });
        RecurringJob {
            name: status.name.to_owned(),
            interval_seconds: status.interval.as_secs_f64(),
            last_started_at: record.last_started_at,
            last_finished_at: record.last_finished_at,
            last_outcome: record.last_outcome,
            last_error: record.last_error,
            next_run_at,
            instance: record.instance,
            runs: record.runs,
            failures: record.failures,
        }
    }
}

#[derive(Default)]
pub struct JobsQuery;

#[Object]
impl JobsQuery {
    /// The recurring jobs and the DNSBL check queue.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn jobs(&self, ctx: &Context<'_>) -> async_graphql::Result<Jobs> {
        let state = app(ctx)?;
        let recurring = state
            .jobs
            .statuses()
            .await
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(Jobs {
            recurring,
            dnsbl_queue: ips::queue_summary(&state.db).await?,
        })
    }
}

#[derive(Default)]
pub struct JobsMutation;

#[Object]
impl JobsMutation {
    /// Queues a FAILED DNSBL check again, due now, its attempts counted afresh.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn retry_ip_check_job(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<IpCheckJob> {
        change(ctx, &id, JobAction::Retry).await
    }

    /// Takes a QUEUED or FAILED DNSBL check off the queue (CANCELLED).
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn cancel_ip_check_job(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<IpCheckJob> {
        change(ctx, &id, JobAction::Cancel).await
    }
}

async fn change(
    ctx: &Context<'_>,
    id: &ID,
    action: JobAction,
) -> async_graphql::Result<IpCheckJob> {
    let id = parse_id("id", id)?;
    let job = ips::change_job(&app(ctx)?.db, &audit_context(ctx), id, action).await?;
    Ok(job.try_into()?)
}
