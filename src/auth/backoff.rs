//! Per-account login backoff: after a few consecutive failures an account must wait before
//! the next attempt, doubling with each further failure. Counted in Redis when it is
//! configured (so every instance sees the same count), in process otherwise.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

use crate::error::{AppError, AppResult};

/// Accounts tracked in process at most; past this the stalest entries are dropped.
const MAX_LOCAL_ACCOUNTS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
pub struct BackoffPolicy {
    pub failures_before_backoff: u32,
    pub base: Duration,
    pub max: Duration,
}

impl BackoffPolicy {
    /// How long an account must wait after `failures` consecutive failures.
    pub fn wait_after(&self, failures: u32) -> Option<Duration> {
        if failures < self.failures_before_backoff.max(1) {
            return None;
        }
        let doublings = (failures - self.failures_before_backoff.max(1)).min(30);
        Some(self.base.saturating_mul(1 << doublings).min(self.max))
    }

    /// Failures older than this are forgotten.
    fn memory(&self) -> Duration {
        self.max.max(Duration::from_secs(15 * 60))
    }
}

#[derive(Clone)]
pub struct LoginBackoff {
    policy: BackoffPolicy,
    store: Store,
}

#[derive(Clone)]
enum Store {
    Local(Arc<Mutex<HashMap<String, LocalEntry>>>),
    Redis {
        conn: ConnectionManager,
        prefix: Arc<str>,
    },
}

struct LocalEntry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

fn locked(retry_after: Duration) -> AppError {
    AppError::RateLimited {
        reason: format!(
            "too many failed logins for this account; try again in {} s",
            retry_after.as_secs_f64().ceil() as u64
        ),
        retry_after,
    }
}

impl LoginBackoff {
    pub fn local(policy: BackoffPolicy) -> Self {
        LoginBackoff {
            policy,
            store: Store::Local(Arc::default()),
        }
    }

    pub fn redis(policy: BackoffPolicy, conn: ConnectionManager, prefix: &str) -> Self {
        LoginBackoff {
            policy,
            store: Store::Redis {
                conn,
                prefix: format!("{prefix}login:").into(),
            },
        }
    }

    /// Refuses with `RATE_LIMITED` while `account` must wait.
    pub async fn check(&self, account: &str) -> AppResult<()> {
        match &self.store {
            Store::Local(map) => {
                let map = map.lock().map_err(|_| AppError::internal("backoff lock"))?;
                if let Some(until) = map.get(account).and_then(|e| e.locked_until) {
                    let now = Instant::now();
                    if until > now {
                        return Err(locked(until - now));
                    }
                }
                Ok(())
            }
            Store::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let ttl_ms: i64 = redis::cmd("PTTL")
                    .arg(format!("{prefix}lock:{account}"))
                    .query_async(&mut conn)
                    .await?;
                if ttl_ms > 0 {
                    return Err(locked(Duration::from_millis(ttl_ms as u64)));
                }
                Ok(())
            }
        }
    }

    pub async fn record_failure(&self, account: &str) -> AppResult<()> {
        let memory = self.policy.memory();
        match &self.store {
            Store::Local(map) => {
                let mut map = map.lock().map_err(|_| AppError::internal("backoff lock"))?;
                let now = Instant::now();
                if map.len() >= MAX_LOCAL_ACCOUNTS && !map.contains_key(account) {
                    map.retain(|_, e| now.duration_since(e.last_failure) < memory);
                    if map.len() >= MAX_LOCAL_ACCOUNTS {
                        // Still full of fresh entries: drop the stalest tenth.
                        let mut ages: Vec<Instant> = map.values().map(|e| e.last_failure).collect();
                        ages.sort_unstable();
                        let cutoff = ages[ages.len() / 10];
                        map.retain(|_, e| e.last_failure > cutoff);
                    }
                }
                let entry = map.entry(account.to_string()).or_insert(LocalEntry {
                    failures: 0,
                    last_failure: now,
                    locked_until: None,
                });
                if now.duration_since(entry.last_failure) >= memory {
                    entry.failures = 0;
                }
                entry.failures += 1;
                entry.last_failure = now;
                entry.locked_until = self.policy.wait_after(entry.failures).map(|w| now + w);
                Ok(())
            }
            Store::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let fail_key = format!("{prefix}fail:{account}");
                let (failures,): (u32,) = redis::pipe()
                    .atomic()
                    .incr(&fail_key, 1)
                    .pexpire(&fail_key, memory.as_millis() as i64)
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
                if let Some(wait) = self.policy.wait_after(failures) {
                    let _: () = redis::cmd("SET")
                        .arg(format!("{prefix}lock:{account}"))
                        .arg(1)
                        .arg("PX")
                        .arg(wait.as_millis().max(1) as u64)
                        .query_async(&mut conn)
                        .await?;
                }
                Ok(())
            }
        }
    }

    pub async fn record_success(&self, account: &str) -> AppResult<()> {
        match &self.store {
            Store::Local(map) => {
                map.lock()
                    .map_err(|_| AppError::internal("backoff lock"))?
                    .remove(account);
                Ok(())
            }
            Store::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let _: () = redis::cmd("DEL")
                    .arg(format!("{prefix}fail:{account}"))
                    .arg(format!("{prefix}lock:{account}"))
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_threshold_and_stop_at_the_cap() {
        let policy = BackoffPolicy {
            failures_before_backoff: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(policy.wait_after(4), None);
        assert_eq!(policy.wait_after(5), Some(Duration::from_secs(1)));
        assert_eq!(policy.wait_after(7), Some(Duration::from_secs(4)));
        assert_eq!(policy.wait_after(200), Some(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_locked_account_is_refused_until_a_success_clears_it() {
        let backoff = LoginBackoff::local(BackoffPolicy {
            failures_before_backoff: 2,
            base: Duration::from_secs(60),
            max: Duration::from_secs(60),
        });
        backoff.record_failure("alice").await.expect("record");
        assert!(backoff.check("alice").await.is_ok());
        backoff.record_failure("alice").await.expect("record");
        assert!(matches!(
            backoff.check("alice").await,
            Err(AppError::RateLimited { .. })
        ));
        assert!(backoff.check("bob").await.is_ok());
        backoff.record_success("alice").await.expect("record");
        assert!(backoff.check("alice").await.is_ok());
    }
}
