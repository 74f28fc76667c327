//! Login backoff: after a few consecutive failures an account must wait before its next
//! attempt from the same client address, doubling with each further failure; and an
//! address that fails across many accounts must wait for all of them. The real owner
//! signing in from elsewhere is not slowed by someone guessing at their account.
//!
//! An attempt is counted before its password is checked (reserved) and refunded when it
//! succeeds, so concurrent guesses cannot all slip through before the first failure is
//! recorded. Counted in Redis when it is configured (every instance sees the same counts);
//! in process otherwise, and whenever Redis does not answer.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

use crate::error::{AppError, AppResult};

/// Keys tracked in process at most; past this the stalest entries are dropped.
const MAX_LOCAL_KEYS: usize = 100_000;
/// How long Redis is waited for before the local counts decide.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug)]
pub struct BackoffPolicy {
    /// Failures of one account from one address before it must wait.
    pub failures_before_backoff: u32,
    /// Failures from one address, across accounts, before it must wait.
    pub failures_per_address: u32,
    pub base: Duration,
    pub max: Duration,
}

impl BackoffPolicy {
    /// How long to wait after `failures` consecutive failures, with `threshold` free ones.
    fn wait_after(&self, failures: u32, threshold: u32) -> Option<Duration> {
        let threshold = threshold.max(1);
        if failures < threshold {
            return None;
        }
        let doublings = (failures - threshold).min(30);
        Some(self.base.saturating_mul(1 << doublings).min(self.max))
    }

    /// Failures older than this are forgotten.
    fn memory(&self) -> Duration {
        self.max.max(Duration::from_secs(15 * 60))
    }
}

/// One reserved attempt: counted as a failure until [`LoginBackoff::succeeded`] refunds it.
#[derive(Debug)]
pub struct Attempt {
    account_key: String,
    address_key: String,
}

#[derive(Clone)]
pub struct LoginBackoff {
    policy: BackoffPolicy,
    local: Arc<Mutex<HashMap<String, LocalEntry>>>,
    shared: Option<Shared>,
}

#[derive(Clone)]
struct Shared {
    conn: ConnectionManager,
    prefix: Arc<str>,
    reserve: Arc<redis::Script>,
    failing: Arc<AtomicBool>,
}

struct LocalEntry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

/// Checks both locks, then counts the attempt against both keys. KEYS: account failures,
/// account lock, address failures, address lock. ARGV: memory (ms), account threshold,
/// address threshold, base wait (ms), longest wait (ms). Returns the milliseconds to
/// wait, 0 when the attempt may go ahead.
const RESERVE_SCRIPT: &str = r"
local wait = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[4]))
if wait > 0 then return wait end
local function count(failures_key, lock_key, threshold)
  local failures = redis.call('INCR', failures_key)
  redis.call('PEXPIRE', failures_key, ARGV[1])
  if failures >= threshold then
    local doublings = math.min(failures - threshold, 30)
    local ms = math.min(tonumber(ARGV[4]) * 2 ^ doublings, tonumber(ARGV[5]))
    redis.call('SET', lock_key, 1, 'PX', math.max(1, math.floor(ms)))
  end
end
count(KEYS[1], KEYS[2], tonumber(ARGV[2]))
count(KEYS[3], KEYS[4], tonumber(ARGV[3]))
return 0
";

fn locked(retry_after: Duration) -> AppError {
    AppError::RateLimited {
        reason: format!(
            "too many failed sign-ins; try again in {} s",
            retry_after.as_secs_f64().ceil().max(1.0) as u64
        ),
        retry_after,
    }
}

impl LoginBackoff {
    pub fn local(policy: BackoffPolicy) -> Self {
        LoginBackoff {
            policy,
            local: Arc::default(),
            shared: None,
        }
    }

    pub fn redis(policy: BackoffPolicy, conn: ConnectionManager, prefix: &str) -> Self {
        LoginBackoff {
            shared: Some(Shared {
                conn,
                prefix: format!("{prefix}login:").into(),
                reserve: Arc::new(redis::Script::new(RESERVE_SCRIPT)),
                failing: Arc::default(),
            }),
            ..LoginBackoff::local(policy)
        }
    }

    /// Reserves an attempt of `account` from `address`: `RATE_LIMITED` while the account
    /// must wait at this address, or the address must wait; otherwise the attempt counts
    /// as a failure until it is refunded.
    pub async fn reserve(&self, account: &str, address: IpAddr) -> AppResult<Attempt> {
        let attempt = Attempt {
            account_key: format!("{account}@{address}"),
            address_key: format!("address:{address}"),
        };
        if let Some(shared) = &self.shared
            && let Some(wait_ms) = self.shared_reserve(shared, &attempt).await
        {
            return match wait_ms {
                0 => Ok(attempt),
                ms => Err(locked(Duration::from_millis(ms))),
            };
        }
        self.local_reserve(&attempt)?;
        Ok(attempt)
    }

    /// Refunds a reserved attempt that succeeded: the account's failures at that address
    /// are cleared, and the attempt no longer counts against the address.
    pub async fn succeeded(&self, attempt: Attempt) {
        if let Some(shared) = &self.shared {
            let mut conn = shared.conn.clone();
            let prefix = &shared.prefix;
            let mut pipe = redis::pipe();
            pipe.cmd("DEL")
                .arg(format!("{prefix}fail:{}", attempt.account_key))
                .arg(format!("{prefix}lock:{}", attempt.account_key))
                .ignore()
                .cmd("EVAL")
                .arg("if redis.call('GET', KEYS[1]) and tonumber(redis.call('GET', KEYS[1])) > 0 then redis.call('DECR', KEYS[1]) end return 0")
                .arg(1)
                .arg(format!("{prefix}fail:{}", attempt.address_key))
                .ignore();
            let refund = pipe.query_async::<()>(&mut conn);
            if let Ok(Ok(())) = tokio::time::timeout(REDIS_TIMEOUT, refund).await {
                return;
            }
        }
        let mut map = self.lock_local();
        map.remove(&attempt.account_key);
        if let Some(entry) = map.get_mut(&attempt.address_key) {
            entry.failures = entry.failures.saturating_sub(1);
        }
    }

    /// The wait the shared counts decided (0: go ahead), or `None` when Redis did not
    /// answer and the local counts must decide.
    async fn shared_reserve(&self, shared: &Shared, attempt: &Attempt) -> Option<u64> {
        let prefix = &shared.prefix;
        let mut invocation = shared.reserve.prepare_invoke();
        invocation
            .key(format!("{prefix}fail:{}", attempt.account_key))
            .key(format!("{prefix}lock:{}", attempt.account_key))
            .key(format!("{prefix}fail:{}", attempt.address_key))
            .key(format!("{prefix}lock:{}", attempt.address_key))
            .arg(self.policy.memory().as_millis() as u64)
            .arg(self.policy.failures_before_backoff.max(1))
            .arg(self.policy.failures_per_address.max(1))
            .arg(self.policy.base.as_millis() as u64)
            .arg(self.policy.max.as_millis() as u64);
        let mut conn = shared.conn.clone();
        let answer =
            tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await;
        match answer {
            Ok(Ok(wait_ms)) => {
                if shared.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("login backoff: Redis answers again; counts are shared again");
                }
                Some(wait_ms.max(0) as u64)
            }
            _ => {
                crate::telemetry::redis_fallback("login_backoff");
                if !shared.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "login backoff: Redis is unreachable; each instance counts failed sign-ins itself until it returns"
                    );
                }
                None
            }
        }
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalEntry>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn local_reserve(&self, attempt: &Attempt) -> AppResult<()> {
        let now = Instant::now();
        let memory = self.policy.memory();
        let mut map = self.lock_local();
        let waits = [&attempt.account_key, &attempt.address_key]
            .into_iter()
            .filter_map(|key| map.get(key.as_str()).and_then(|e| e.locked_until))
            .filter(|until| *until > now)
            .max();
        if let Some(until) = waits {
            return Err(locked(until - now));
        }
        if map.len() >= MAX_LOCAL_KEYS {
            map.retain(|_, e| now.duration_since(e.last_failure) < memory);
            if map.len() >= MAX_LOCAL_KEYS {
                // Still full of fresh entries: drop the stalest tenth.
                let mut ages: Vec<Instant> = map.values().map(|e| e.last_failure).collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 10];
                map.retain(|_, e| e.last_failure > cutoff);
            }
        }
        for (key, threshold) in [
            (&attempt.account_key, self.policy.failures_before_backoff),
            (&attempt.address_key, self.policy.failures_per_address),
        ] {
            let entry = map.entry(key.clone()).or_insert(LocalEntry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if now.duration_since(entry.last_failure) >= memory {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last_failure = now;
            if let Some(wait) = self.policy.wait_after(entry.failures, threshold) {
                entry.locked_until = Some(now + wait);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(per_account: u32, per_address: u32) -> BackoffPolicy {
        BackoffPolicy {
            failures_before_backoff: per_account,
            failures_per_address: per_address,
            base: Duration::from_secs(60),
            max: Duration::from_secs(60),
        }
    }

    fn address(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn waits_double_after_the_threshold_and_stop_at_the_cap() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(1),
            ..policy(5, 20)
        };
        assert_eq!(policy.wait_after(4, 5), None);
        assert_eq!(policy.wait_after(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(policy.wait_after(7, 5), Some(Duration::from_secs(4)));
        assert_eq!(policy.wait_after(200, 5), Some(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn an_account_locked_at_one_address_still_signs_in_from_another() {
        let backoff = LoginBackoff::local(policy(2, 100));
        backoff.reserve("alice", address(1)).await.expect("first");
        backoff.reserve("alice", address(1)).await.expect("second");
        assert!(matches!(
            backoff.reserve("alice", address(1)).await,
            Err(AppError::RateLimited { .. })
        ));
        let elsewhere = backoff
            .reserve("alice", address(2))
            .await
            .expect("elsewhere");
        backoff.succeeded(elsewhere).await;
        assert!(matches!(
            backoff.reserve("alice", address(1)).await,
            Err(AppError::RateLimited { .. })
        ));
    }

    #[tokio::test]
    async fn an_address_failing_across_accounts_must_wait_and_successes_are_refunded() {
        let backoff = LoginBackoff::local(policy(100, 3));
        let first = backoff.reserve("a", address(9)).await.expect("a");
        backoff.succeeded(first).await;
        backoff.reserve("b", address(9)).await.expect("b");
        backoff.reserve("c", address(9)).await.expect("c");
        backoff.reserve("d", address(9)).await.expect("d");
        assert!(matches!(
            backoff.reserve("e", address(9)).await,
            Err(AppError::RateLimited { .. })
        ));
        assert!(backoff.reserve("e", address(10)).await.is_ok());
    }
}
