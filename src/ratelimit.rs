//! Operations per second per caller: each signed-in user, each node key, and each client
//! address of callers without either.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, as go-redis/redis_rate and
//! `governor` implement it): a caller's state is one "theoretical arrival time", pushed
//! forward by one interval per operation; an operation fits while that time is at most
//! `burst` intervals ahead of now. With Redis the state lives there, one key per caller,
//! updated by one Lua script, so every instance shares the limit. Without Redis, and
//! whenever Redis does not answer, an in-process limiter (`governor`) applies the same
//! quotas: the limits fail open to local ones, never closed.

use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock as _, DefaultClock},
};
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::config::{LimitsConfig, RateQuota};

/// Who an operation counts against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    User(Uuid),
    /// A node key, by its id.
    Agent(Uuid),
    /// Anyone without a user or node key, by client address.
    Address(IpAddr),
}

impl Caller {
    fn kind(&self) -> usize {
        match self {
            Caller::User(_) => 0,
            Caller::Agent(_) => 1,
            Caller::Address(_) => 2,
        }
    }

    fn redis_key(&self, prefix: &str) -> String {
        match self {
            Caller::User(id) => format!("{prefix}rate:user:{id}"),
            Caller::Agent(id) => format!("{prefix}rate:agent:{id}"),
            Caller::Address(ip) => format!("{prefix}rate:addr:{ip}"),
        }
    }
}

/// How many of the operations asked for may run now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Admission {
    /// The first `allowed` operations run; the rest are refused.
    pub allowed: u32,
    /// When some were refused: how long until the next one fits.
    pub retry_after: Duration,
    /// The quota that applied (`None` when this caller is not limited).
    pub quota: Option<RateQuota>,
}

impl Admission {
    fn all(wanted: u32, quota: Option<RateQuota>) -> Admission {
        Admission {
            allowed: wanted,
            retry_after: Duration::ZERO,
            quota,
        }
    }
}

/// How long a Redis answer is waited for before the local limits decide.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After Redis failed to answer, how long the local limits decide before Redis is tried
/// again.
const REDIS_RETRY: Duration = Duration::from_secs(1);
/// Local checks between two sweeps of callers that have been quiet long enough to forget.
const SWEEP_EVERY: u64 = 16_384;

/// Admits up to ARGV[3] operations of the caller whose state is KEYS[1]: ARGV[1] is the
/// emission interval in seconds, ARGV[2] the burst. Returns { allowed, retry after in
/// seconds (as text) }.
const GCRA_SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local time = redis.call("TIME")
-- Seconds since 2024 keep the float's precision well under a microsecond.
local now = (tonumber(time[1]) - 1704067200) + tonumber(time[2]) / 1000000
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local fits = math.floor((now - tat) / interval + burst + 1e-9)
local allowed = math.max(0, math.min(wanted, fits))
local after = tat + allowed * interval
if allowed > 0 then
  redis.call("SET", KEYS[1], string.format("%.6f", after), "PX", math.ceil((after - now) * 1000) + 1)
end
local retry = 0
if allowed < wanted then
  retry = after + interval - burst * interval - now
end
return { allowed, string.format("%.6f", retry) }
"#;

struct Shared {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    /// Until when Redis is skipped after it failed (milliseconds since `started`).
    skip_until_ms: AtomicU64,
    started: Instant,
    /// Whether the last attempt failed, so an outage is logged once, not per request.
    failing: AtomicBool,
}

struct Inner {
    quotas: [Option<RateQuota>; 3],
    local: [Option<DefaultKeyedRateLimiter<Caller>>; 3],
    shared: Option<Shared>,
    checks: AtomicU64,
    refused: AtomicU64,
    fallbacks: AtomicU64,
}

/// The limiter every request and WebSocket operation goes through.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

fn governor_quota(quota: &RateQuota) -> Option<Quota> {
    let burst = NonZeroU32::new(quota.burst)?;
    Some(Quota::with_period(quota.interval())?.allow_burst(burst))
}

impl RateLimiter {
    pub fn new(config: &LimitsConfig, redis: Option<(ConnectionManager, &str)>) -> Self {
        let quotas = [config.user_rate, config.agent_rate, config.anonymous_rate];
        let local = quotas.map(|quota| {
            quota
                .as_ref()
                .and_then(governor_quota)
                .map(governor::RateLimiter::keyed)
        });
        RateLimiter {
            inner: Arc::new(Inner {
                quotas,
                local,
                shared: redis.map(|(conn, prefix)| Shared {
                    conn,
                    prefix: prefix.to_owned(),
                    script: redis::Script::new(GCRA_SCRIPT),
                    skip_until_ms: AtomicU64::new(0),
                    started: Instant::now(),
                    failing: AtomicBool::new(false),
                }),
                checks: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
            }),
        }
    }

    /// Operations refused so far by this instance.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Decisions the local limits made because Redis did not answer.
    pub fn fallbacks(&self) -> u64 {
        self.inner.fallbacks.load(Ordering::Relaxed)
    }

    /// Admits as many of `wanted` operations of `caller` as its quota has room for.
    pub async fn admit(&self, caller: &Caller, wanted: u32) -> Admission {
        let quota = self.inner.quotas[caller.kind()];
        let Some(limit) = quota else {
            return Admission::all(wanted, None);
        };
        if wanted == 0 {
            return Admission::all(0, quota);
        }
        let admission = match self.shared_admit(caller, &limit, wanted).await {
            Some(admission) => admission,
            None => self.local_admit(caller, &limit, wanted),
        };
        let refused = wanted - admission.allowed;
        if refused > 0 {
            self.inner
                .refused
                .fetch_add(u64::from(refused), Ordering::Relaxed);
            let kind = match caller {
                Caller::User(_) => "user",
                Caller::Agent(_) => "agent",
                Caller::Address(_) => "anonymous",
            };
            crate::telemetry::rate_limited(kind, u64::from(refused));
        }
        admission
    }

    /// The decision of the shared limit, or `None` when Redis is not configured or did not
    /// answer in time.
    async fn shared_admit(
        &self,
        caller: &Caller,
        quota: &RateQuota,
        wanted: u32,
    ) -> Option<Admission> {
        let shared = self.inner.shared.as_ref()?;
        let now_ms = shared.started.elapsed().as_millis() as u64;
        if now_ms < shared.skip_until_ms.load(Ordering::Relaxed) {
            self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::redis_fallback("rate_limits");
            return None;
        }
        let mut conn = shared.conn.clone();
        let mut invocation = shared.script.key(caller.redis_key(&shared.prefix));
        invocation
            .arg(quota.interval().as_secs_f64())
            .arg(quota.burst)
            .arg(wanted);
        let answer: Result<Result<(u32, String), redis::RedisError>, _> =
            tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut conn)).await;
        match answer {
            Ok(Ok((allowed, retry))) => {
                if shared.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits: Redis answers again; limits are shared again");
                }
                let retry_after = retry
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map_or(Duration::ZERO, Duration::from_secs_f64);
                Some(Admission {
                    allowed: allowed.min(wanted),
                    retry_after,
                    quota: Some(*quota),
                })
            }
            failed => {
                if !shared.failing.swap(true, Ordering::Relaxed) {
                    let reason = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => "no answer in time".into(),
                    };
                    tracing::warn!(
                        %reason,
                        "rate limits: Redis is unreachable; each instance applies the limits locally until it returns"
                    );
                }
                shared
                    .skip_until_ms
                    .store(now_ms + REDIS_RETRY.as_millis() as u64, Ordering::Relaxed);
                self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::redis_fallback("rate_limits");
                None
            }
        }
    }

    fn local_admit(&self, caller: &Caller, quota: &RateQuota, wanted: u32) -> Admission {
        let Some(limiter) = &self.inner.local[caller.kind()] else {
            return Admission::all(wanted, Some(*quota));
        };
        if self.inner.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        let mut allowed = 0;
        let mut retry_after = Duration::ZERO;
        while allowed < wanted {
            match limiter.check_key(caller) {
                Ok(()) => allowed += 1,
                Err(not_until) => {
                    retry_after = not_until.wait_time_from(DefaultClock::default().now());
                    break;
                }
            }
        }
        Admission {
            allowed,
            retry_after,
            quota: Some(*quota),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(user: &str) -> LimitsConfig {
        let vars = [
            ("MAILOPS_RATE_LIMIT_USER", user.to_string()),
            ("MAILOPS_RATE_LIMIT_USER_BURST", "5".to_string()),
        ];
        LimitsConfig::from_lookup(&|name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("valid")
    }

    #[tokio::test]
    async fn a_burst_passes_then_the_rest_waits_for_the_rate() {
        let limiter = RateLimiter::new(&limits("10"), None);
        let alice = Caller::User(Uuid::now_v7());
        let first = limiter.admit(&alice, 8).await;
        assert_eq!(first.allowed, 5);
        assert!(
            first.retry_after > Duration::ZERO && first.retry_after <= Duration::from_millis(100)
        );
        assert_eq!(limiter.admit(&alice, 1).await.allowed, 0);
        assert_eq!(limiter.refused(), 4);
        // Another user has a quota of its own.
        assert_eq!(
            limiter
                .admit(&Caller::User(Uuid::now_v7()), 5)
                .await
                .allowed,
            5
        );
        tokio::time::sleep(Duration::from_millis(210)).await;
        assert_eq!(limiter.admit(&alice, 5).await.allowed, 2);
    }

    #[tokio::test]
    async fn an_off_limit_admits_everything() {
        let limiter = RateLimiter::new(&limits("off"), None);
        let admission = limiter.admit(&Caller::User(Uuid::now_v7()), 10_000).await;
        assert_eq!(admission.allowed, 10_000);
        assert_eq!(admission.quota, None);
    }
}
