//! One computed overview, served to every caller until it is `ttl` old.
//!
//! Under load, one computation runs at a time: callers of one instance wait for the
//! computation under way instead of starting their own, and with Redis the instances
//! share the answer and a lock, so the cluster computes it once per `ttl`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

use crate::{error::AppResult, state::AppState};

use super::{model::Overview, service};

/// How long another instance's computation is waited for before computing here.
const WAIT_FOR_OTHER_INSTANCE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

struct SharedStore {
    conn: ConnectionManager,
    key: String,
    lock_key: String,
}

struct Inner {
    ttl: Option<Duration>,
    local: Mutex<Option<(Instant, Arc<Overview>)>>,
    shared: Option<SharedStore>,
    /// Held while this instance computes or waits for another instance's answer.
    flight: tokio::sync::Mutex<()>,
    computations: AtomicU64,
}

#[derive(Clone)]
pub struct OverviewCache {
    inner: Arc<Inner>,
}

impl OverviewCache {
    /// `ttl` of `None` computes the overview for every request. With `redis`, the answer
    /// is kept in Redis under `prefix` and shared by every instance.
    pub fn new(ttl: Option<Duration>, redis: Option<ConnectionManager>, prefix: &str) -> Self {
        OverviewCache {
            inner: Arc::new(Inner {
                ttl,
                local: Mutex::new(None),
                shared: redis.map(|conn| SharedStore {
                    conn,
                    key: format!("{prefix}overview"),
                    lock_key: format!("{prefix}overview:lock"),
                }),
                flight: tokio::sync::Mutex::new(()),
                computations: AtomicU64::new(0),
            }),
        }
    }

    /// How many times this instance computed the overview.
    pub fn computations(&self) -> u64 {
        self.inner.computations.load(Ordering::Relaxed)
    }

    pub async fn get(&self, state: &AppState) -> AppResult<Arc<Overview>> {
        let Some(ttl) = self.inner.ttl else {
            return self.compute(state).await;
        };
        if let Some(hit) = self.cached(ttl).await {
            return Ok(hit);
        }
        let _flight = self.inner.flight.lock().await;
        if let Some(hit) = self.cached(ttl).await {
            return Ok(hit);
        }
        let Some(shared) = &self.inner.shared else {
            let read_at = Instant::now();
            let overview = self.compute(state).await?;
            *self.lock_local() = Some((read_at, overview.clone()));
            return Ok(overview);
        };
        let mut conn = shared.conn.clone();
        let locked: Result<Option<String>, _> = redis::cmd("SET")
            .arg(&shared.lock_key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(WAIT_FOR_OTHER_INSTANCE.as_millis() as u64)
            .query_async(&mut conn)
            .await;
        if matches!(locked, Ok(None)) {
            // Another instance computes it; its answer lands in Redis.
            let deadline = Instant::now() + WAIT_FOR_OTHER_INSTANCE;
            while Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
                if let Some(hit) = self.cached(ttl).await {
                    return Ok(hit);
                }
            }
        }
        let read_at = Instant::now();
        let computed = self.compute(state).await;
        let mut pipe = redis::pipe();
        if let Ok(overview) = &computed {
            // The answer is as old as the data it read: it expires `ttl` after the reads
            // began, not `ttl` after it was stored, so no caller sees it past its time.
            let remaining = ttl.saturating_sub(read_at.elapsed()).as_millis() as u64;
            match serde_json::to_string(overview.as_ref()) {
                Ok(json) if remaining > 0 => {
                    pipe.cmd("SET")
                        .arg(&shared.key)
                        .arg(json)
                        .arg("PX")
                        .arg(remaining)
                        .ignore();
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "the overview could not be serialized"),
            }
        }
        pipe.cmd("DEL").arg(&shared.lock_key).ignore();
        let stored: Result<(), _> = pipe.query_async(&mut conn).await;
        if let Err(error) = stored {
            tracing::warn!(%error, "the overview could not be cached in Redis");
        }
        computed
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<Overview>)>> {
        self.inner.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn cached(&self, ttl: Duration) -> Option<Arc<Overview>> {
        let Some(shared) = &self.inner.shared else {
            return self
                .lock_local()
                .as_ref()
                .filter(|(at, _)| at.elapsed() < ttl)
                .map(|(_, overview)| overview.clone());
        };
        let json: Option<String> = match redis::cmd("GET")
            .arg(&shared.key)
            .query_async(&mut shared.conn.clone())
            .await
        {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(%error, "the cached overview could not be read from Redis");
                None
            }
        };
        json.and_then(|json| serde_json::from_str(&json).ok())
            .map(Arc::new)
    }

    async fn compute(&self, state: &AppState) -> AppResult<Arc<Overview>> {
        self.inner.computations.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(service::compute(state).await?))
    }
}
