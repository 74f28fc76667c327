//! What the recurring jobs did last, for admins: one record per job, shared by every
//! instance through Redis (whichever instance ran a tick writes it), kept in process
//! without Redis or while it does not answer.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// How a run of a job ended.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobOutcome {
    /// It did its work.
    Succeeded,
    /// It returned an error; the next tick runs as usual.
    Failed,
    /// It panicked; the job was kept alive and the next tick runs as usual.
    Panicked,
}

/// The last run of one recurring job, and its totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub last_started_at: Option<DateTime<Utc>>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<JobOutcome>,
    pub last_error: Option<String>,
    /// The instance that ran it last.
    pub instance: Option<String>,
    pub runs: u64,
    pub failures: u64,
}

/// A job as admins see it: its schedule and its last run.
#[derive(Clone, Debug)]
pub struct JobStatus {
    pub name: &'static str,
    pub interval: Duration,
    pub record: JobRecord,
}

/// Errors shown to admins are cut to this many characters.
const MAX_ERROR_CHARS: usize = 500;
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct JobBook {
    instance: Arc<str>,
    schedule: Arc<Mutex<BTreeMap<&'static str, Duration>>>,
    local: Arc<Mutex<BTreeMap<&'static str, JobRecord>>>,
    shared: Option<(ConnectionManager, Arc<str>)>,
    /// Each job's wake-up call: a tick before its time.
    wakers: Arc<Mutex<BTreeMap<&'static str, Arc<tokio::sync::Notify>>>>,
}

/// This process among the instances: its host name and process id.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

impl JobBook {
    pub fn new(redis: Option<(ConnectionManager, &str)>) -> Self {
        JobBook {
            instance: instance_name().into(),
            schedule: Arc::default(),
            local: Arc::default(),
            shared: redis.map(|(conn, prefix)| (conn, format!("{prefix}jobs:").into())),
            wakers: Arc::default(),
        }
    }

    /// The wake-up call of job `name`.
    pub fn waker(&self, name: &'static str) -> Arc<tokio::sync::Notify> {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_default()
            .clone()
    }

    /// Runs job `name` on this instance now rather than at its next tick (once, however
    /// often it is called meanwhile).
    pub fn wake(&self, name: &'static str) {
        self.waker(name).notify_one();
    }

    /// The name this instance records its runs under.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Declares a job and how often it runs.
    pub fn register(&self, name: &'static str, interval: Duration) {
        self.schedule
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, interval);
    }

    /// Records one run of `name` by this instance.
    pub async fn record(
        &self,
        name: &'static str,
        started_at: DateTime<Utc>,
        outcome: JobOutcome,
        error: Option<String>,
    ) {
        let error = error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>());
        let failed = outcome != JobOutcome::Succeeded;
        let record = {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            let record = local.entry(name).or_default();
            record.last_started_at = Some(started_at);
            record.last_finished_at = Some(Utc::now());
            record.last_outcome = Some(outcome);
            record.last_error = error;
            record.instance = Some(self.instance.to_string());
            record.runs += 1;
            record.failures += u64::from(failed);
            record.clone()
        };
        let Some((conn, prefix)) = &self.shared else {
            return;
        };
        let key = format!("{prefix}{name}");
        let Ok(last) = serde_json::to_string(&JobRecord {
            runs: 0,
            failures: 0,
            ..record
        }) else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.hset(&key, "last", last)
            .ignore()
            .hincr(&key, "runs", 1)
            .ignore()
            .hincr(&key, "failures", u64::from(failed))
            .ignore();
        let mut conn = conn.clone();
        // Best effort: what the book cannot write now, the in-process copy still shows.
        let _ = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
    }

    /// Every registered job, with its last run as the cluster (or this instance) saw it.
    pub async fn statuses(&self) -> Vec<JobStatus> {
        let schedule = self
            .schedule
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut statuses = Vec::with_capacity(schedule.len());
        for (name, interval) in schedule {
            let record = match self.shared_record(name).await {
                Some(record) => record,
                None => local.get(name).cloned().unwrap_or_default(),
            };
            statuses.push(JobStatus {
                name,
                interval,
                record,
            });
        }
        statuses
    }

    async fn shared_record(&self, name: &str) -> Option<JobRecord> {
        let (conn, prefix) = self.shared.as_ref()?;
        let mut conn = conn.clone();
        let fields: BTreeMap<String, String> = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("HGETALL")
                .arg(format!("{prefix}{name}"))
                .query_async(&mut conn),
        )
        .await
        .ok()?
        .ok()?;
        let mut record: JobRecord = fields
            .get("last")
            .and_then(|last| serde_json::from_str(last).ok())
            .unwrap_or_default();
        let number = |field: &str| fields.get(field).and_then(|n| n.parse().ok()).unwrap_or(0);
        record.runs = number("runs");
        record.failures = number("failures");
        Some(record)
    }
}
