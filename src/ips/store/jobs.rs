//! Rows of `dnsbl_check_jobs`: the queue of DNSBL checks.

use chrono::{DateTime, Utc};
use entity::dnsbl_check_job;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use uuid::Uuid;

use crate::error::AppResult;

use super::super::model::{IpCheckJobKind, IpCheckJobState, QueueSummary};

pub const QUEUED: &str = IpCheckJobState::Queued.as_str();
pub const RUNNING: &str = IpCheckJobState::Running.as_str();
pub const SUCCEEDED: &str = IpCheckJobState::Succeeded.as_str();
pub const FAILED: &str = IpCheckJobState::Failed.as_str();
pub const CANCELLED: &str = IpCheckJobState::Cancelled.as_str();
pub const MANUAL: &str = IpCheckJobKind::Manual.as_str();
pub const SCHEDULED: &str = IpCheckJobKind::Scheduled.as_str();

/// Queues a job, due now.
pub async fn insert(
    conn: &impl ConnectionTrait,
    kind: &str,
    addresses: Option<Vec<String>>,
    requested_by: Option<String>,
) -> AppResult<dnsbl_check_job::Model> {
    let now = Utc::now();
    Ok(
        dnsbl_check_job::Entity::insert(dnsbl_check_job::ActiveModel {
            id: Set(Uuid::now_v7()),
            kind: Set(kind.into()),
            addresses: Set(addresses.map(|a| serde_json::json!(a))),
            state: Set(QUEUED.into()),
            attempts: Set(0),
            next_run_at: Set(now),
            last_error: Set(None),
            result: Set(None),
            requested_by: Set(requested_by),
            created_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
        })
        .exec_with_returning(conn)
        .await?,
    )
}

pub async fn find(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<dnsbl_check_job::Model>> {
    Ok(dnsbl_check_job::Entity::find_by_id(id).one(db).await?)
}

/// Queues again the jobs RUNNING since before `started_before`.
pub async fn requeue_running_since(
    conn: &impl ConnectionTrait,
    started_before: DateTime<Utc>,
) -> AppResult<()> {
    dnsbl_check_job::Entity::update_many()
        .col_expr(dnsbl_check_job::Column::State, QUEUED.into())
        .filter(dnsbl_check_job::Column::State.eq(RUNNING))
        .filter(dnsbl_check_job::Column::StartedAt.lt(started_before))
        .exec(conn)
        .await?;
    Ok(())
}

/// The newest job the schedule queued.
pub async fn last_scheduled(
    conn: &impl ConnectionTrait,
) -> AppResult<Option<dnsbl_check_job::Model>> {
    Ok(dnsbl_check_job::Entity::find()
        .filter(dnsbl_check_job::Column::Kind.eq(SCHEDULED))
        .order_by_desc(dnsbl_check_job::Column::CreatedAt)
        .one(conn)
        .await?)
}

/// Marks the queued job due first as RUNNING (one more attempt) and returns it.
pub async fn claim_due(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> AppResult<Option<dnsbl_check_job::Model>> {
    let due = dnsbl_check_job::Entity::find()
        .filter(dnsbl_check_job::Column::State.eq(QUEUED))
        .filter(dnsbl_check_job::Column::NextRunAt.lte(now))
        .order_by_asc(dnsbl_check_job::Column::NextRunAt)
        .one(conn)
        .await?;
    let Some(job) = due else {
        return Ok(None);
    };
    let attempts = job.attempts + 1;
    let mut model: dnsbl_check_job::ActiveModel = job.into();
    model.state = Set(RUNNING.into());
    model.attempts = Set(attempts);
    model.started_at = Set(Some(now));
    Ok(Some(model.update(conn).await?))
}

/// How an attempt at a job ended.
pub enum JobEnd {
    Succeeded(Option<serde_json::Value>),
    /// Queued again for `next_run_at`.
    Retry {
        error: String,
        next_run_at: DateTime<Utc>,
    },
    Failed(String),
}

pub async fn finish(conn: &impl ConnectionTrait, id: Uuid, end: JobEnd) -> AppResult<()> {
    let Some(job) = find(conn, id).await? else {
        return Ok(());
    };
    let mut model: dnsbl_check_job::ActiveModel = job.into();
    match end {
        JobEnd::Succeeded(result) => {
            model.state = Set(SUCCEEDED.into());
            model.result = Set(result);
            model.last_error = Set(None);
            model.finished_at = Set(Some(Utc::now()));
        }
        JobEnd::Retry { error, next_run_at } => {
            model.last_error = Set(Some(error));
            model.state = Set(QUEUED.into());
            model.next_run_at = Set(next_run_at);
        }
        JobEnd::Failed(error) => {
            model.last_error = Set(Some(error));
            model.state = Set(FAILED.into());
            model.finished_at = Set(Some(Utc::now()));
        }
    }
    model.update(conn).await?;
    Ok(())
}

/// How many jobs are queued, running and failed, and since when the oldest waits.
pub async fn summary(conn: &impl ConnectionTrait) -> AppResult<QueueSummary> {
    let count = |state: &'static str| {
        dnsbl_check_job::Entity::find()
            .filter(dnsbl_check_job::Column::State.eq(state))
            .count(conn)
    };
    let oldest = dnsbl_check_job::Entity::find()
        .filter(dnsbl_check_job::Column::State.eq(QUEUED))
        .order_by_asc(dnsbl_check_job::Column::CreatedAt)
        .one(conn)
        .await?;
    Ok(QueueSummary {
        queued: count(QUEUED).await? as i64,
        running: count(RUNNING).await? as i64,
        failed: count(FAILED).await? as i64,
        oldest_queued_at: oldest.map(|job| job.created_at),
    })
}

/// Queues a FAILED job again, due now, with its attempts counted afresh.
pub async fn requeue_failed(
    conn: &impl ConnectionTrait,
    job: dnsbl_check_job::Model,
) -> AppResult<dnsbl_check_job::Model> {
    let mut model: dnsbl_check_job::ActiveModel = job.into();
    model.state = Set(QUEUED.into());
    model.attempts = Set(0);
    model.next_run_at = Set(Utc::now());
    model.finished_at = Set(None);
    Ok(model.update(conn).await?)
}

/// Takes a job off the queue for good.
pub async fn cancel(
    conn: &impl ConnectionTrait,
    job: dnsbl_check_job::Model,
) -> AppResult<dnsbl_check_job::Model> {
    let mut model: dnsbl_check_job::ActiveModel = job.into();
    model.state = Set(CANCELLED.into());
    model.finished_at = Set(Some(Utc::now()));
    Ok(model.update(conn).await?)
}
