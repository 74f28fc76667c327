//! The mail flow ticker: folds committed mail event batches into one `MailFlowTick` per
//! second, for the `mailFlow` subscription.
//!
//! Every instance sees every batch through the event bus and folds it, but with Redis only
//! the instance holding a short lease publishes, so each second is published once for the
//! whole cluster. Without Redis the bus is in process, each instance sees only its own
//! batches, and each publishes to its own subscribers.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use redis::aio::ConnectionManager;
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};
use uuid::Uuid;

use crate::{
    realtime::{Event, MailFlowTick},
    state::AppState,
};

use super::model::MailCounts;

/// How long a lease outlives its last renewal; renewals come every second.
const LEASE: Duration = Duration::from_secs(3);

/// Renews the lease when this instance holds it, takes it when nobody does.
const LEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
";

struct Lease {
    conn: ConnectionManager,
    key: String,
    holder: String,
    /// Whether the last check reached Redis, so that an outage is logged once.
    reachable: bool,
}

impl Lease {
    async fn held(&mut self) -> bool {
        let result: Result<i64, _> = redis::cmd("EVAL")
            .arg(LEASE_SCRIPT)
            .arg(1)
            .arg(&self.key)
            .arg(&self.holder)
            .arg(LEASE.as_millis() as u64)
            .query_async(&mut self.conn)
            .await;
        match result {
            Ok(held) => {
                self.reachable = true;
                held == 1
            }
            Err(error) => {
                if std::mem::replace(&mut self.reachable, false) {
                    tracing::warn!(%error, "mail flow ticker: Redis unreachable; ticks pause");
                }
                false
            }
        }
    }
}

/// The counts folded for the second under way.
#[derive(Default)]
struct Second {
    counts: MailCounts,
    nodes: BTreeMap<Uuid, MailCounts>,
}

impl Second {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn add(&mut self, node: Uuid, counts: &MailCounts) {
        self.counts.add(counts);
        self.nodes.entry(node).or_default().add(counts);
    }

    fn into_tick(self, second: DateTime<Utc>) -> MailFlowTick {
        MailFlowTick {
            second,
            counts: self.counts,
            nodes: self.nodes.into_iter().collect(),
        }
    }
}

fn start_of_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::seconds(1)).unwrap_or(at)
}

/// The ticker's name among the recurring jobs.
const JOB: &str = "mail-flow-ticker";

pub fn spawn(state: &AppState) -> JoinHandle<()> {
    let state = state.clone();
    let mut lease = state.redis.clone().map(|conn| Lease {
        conn,
        key: format!("{}mailflow:ticker", state.config.redis.prefix),
        holder: Uuid::new_v4().to_string(),
        reachable: true,
    });
    state.jobs.register(JOB, Duration::from_secs(1));
    tokio::spawn(async move {
        let mut events = state.events.subscribe();
        // Ticks fall on whole seconds, so each tick's counts are those of one wall-clock second.
        let now = Utc::now();
        let to_next_second = (start_of_second(now) + TimeDelta::seconds(1) - now)
            .to_std()
            .unwrap_or_default();
        let mut timer = tokio::time::interval_at(
            tokio::time::Instant::now() + to_next_second,
            Duration::from_secs(1),
        );
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut current = Second::default();
        let mut started = start_of_second(Utc::now());
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Ok(published) => {
                        if let Event::MailEventsIngested(batch) = &published.event {
                            current.add(batch.node_id, &batch.counts);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "mail flow ticker fell behind the event bus");
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = timer.tick() => {
                    let folded = std::mem::take(&mut current);
                    let second = std::mem::replace(&mut started, start_of_second(Utc::now()));
                    let publishes = match &mut lease {
                        None => true,
                        Some(lease) => lease.held().await,
                    };
                    if publishes {
                        let ran_at = Utc::now();
                        if !folded.is_empty() {
                            state.events.publish(Event::MailFlowTick(folded.into_tick(second)));
                        }
                        state.jobs.record(JOB, ran_at, crate::jobs::JobOutcome::Succeeded, None).await;
                    }
                }
            }
        }
    })
}
