//! Users resolved from access tokens, kept for a few seconds so that a dashboard's
//! requests do not each read the user row. A user whose access changes (disabled, role,
//! password, signed out everywhere) leaves the cache at once on every instance: those
//! changes publish `SessionsRevoked`, which crosses instances through the event bus, and
//! [`PrincipalCache::follow`] forgets the user on each. The time to live is the backstop
//! for a change that publishes nothing (a row edited by hand in the database).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use entity::user::Model as UserRow;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::realtime::{CredentialHolder, EventBus};

/// Users kept at most; past that the cache starts over (a dashboard has far fewer).
const MAX_USERS: usize = 10_000;

#[derive(Clone)]
pub struct PrincipalCache {
    shared: Arc<Shared>,
}

struct Shared {
    ttl: Duration,
    users: Mutex<HashMap<Uuid, (Instant, Arc<UserRow>)>>,
    /// Raised by every invalidation: a row read before one is not kept after it.
    generation: AtomicU64,
}

/// What a lookup found, and the generation to store a fresh row under.
pub enum Cached {
    Hit(Arc<UserRow>),
    Miss(u64),
}

impl PrincipalCache {
    /// A cache keeping rows for `ttl`; zero keeps none.
    pub fn new(ttl: Duration) -> PrincipalCache {
        PrincipalCache {
            shared: Arc::new(Shared {
                ttl,
                users: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
            }),
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Instant, Arc<UserRow>)>> {
        // Entries are replaced whole: a panic while holding the lock leaves none half-made.
        self.shared.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept row of user `id` for a token of `session_version`; a row of another
    /// version (the token is newer than the row, or older) is read anew.
    pub fn get(&self, id: Uuid, session_version: i32) -> Cached {
        // Read first: an invalidation after this makes the row read next too old to keep.
        let generation = self.shared.generation.load(Ordering::Acquire);
        if self.shared.ttl.is_zero() {
            return Cached::Miss(generation);
        }
        match self.users().get(&id) {
            Some((kept_at, row))
                if kept_at.elapsed() < self.shared.ttl
                    && row.session_version == session_version =>
            {
                Cached::Hit(row.clone())
            }
            _ => Cached::Miss(generation),
        }
    }

    /// Keeps a row read after [`get`](Self::get) answered `Miss(generation)`, unless an
    /// invalidation came in between.
    pub fn keep(&self, generation: u64, row: Arc<UserRow>) {
        if self.shared.ttl.is_zero() {
            return;
        }
        let mut users = self.users();
        if self.shared.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if users.len() >= MAX_USERS {
            users.clear();
        }
        users.insert(row.id, (Instant::now(), row));
    }

    pub fn forget(&self, id: Uuid) {
        let mut users = self.users();
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        users.remove(&id);
    }

    pub fn forget_all(&self) {
        let mut users = self.users();
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        users.clear();
    }

    /// Forgets users as revocations arrive, from this instance or another, until the bus
    /// closes. Missed revocations (a lagging receiver) forget everyone.
    pub fn follow(&self, events: &EventBus) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        let mut revocations = events.revocations();
        tokio::spawn(async move {
            loop {
                match revocations.recv().await {
                    Ok(revoked) => {
                        if let CredentialHolder::User(id) = revoked.holder {
                            cache.forget(id);
                        }
                    }
                    Err(RecvError::Lagged(_)) => cache.forget_all(),
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: Uuid) -> Arc<UserRow> {
        let now = chrono::Utc::now();
        Arc::new(UserRow {
            id,
            username: "ann".into(),
            password_hash: String::new(),
            role: "VIEWER".into(),
            disabled: false,
            created_at: now,
            updated_at: now,
            password_changed_at: now,
            last_login_at: None,
            session_version: 0,
        })
    }

    #[test]
    fn a_row_read_before_an_invalidation_is_not_kept() {
        let cache = PrincipalCache::new(Duration::from_secs(60));
        let id = Uuid::now_v7();
        let Cached::Miss(generation) = cache.get(id, 0) else {
            panic!("empty cache")
        };
        cache.forget(id);
        cache.keep(generation, user(id));
        assert!(matches!(cache.get(id, 0), Cached::Miss(_)));

        let Cached::Miss(generation) = cache.get(id, 0) else {
            panic!("still empty")
        };
        cache.keep(generation, user(id));
        assert!(matches!(cache.get(id, 0), Cached::Hit(_)));
        assert!(
            matches!(cache.get(id, 1), Cached::Miss(_)),
            "a token of another session version reads the row"
        );
        cache.forget(id);
        assert!(matches!(cache.get(id, 0), Cached::Miss(_)));
    }

    #[test]
    fn rows_expire_and_a_zero_ttl_keeps_nothing() {
        let id = Uuid::now_v7();
        let cache = PrincipalCache::new(Duration::from_millis(30));
        let Cached::Miss(generation) = cache.get(id, 0) else {
            panic!("empty cache")
        };
        cache.keep(generation, user(id));
        assert!(matches!(cache.get(id, 0), Cached::Hit(_)));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(cache.get(id, 0), Cached::Miss(_)));

        let off = PrincipalCache::new(Duration::ZERO);
        let Cached::Miss(generation) = off.get(id, 0) else {
            panic!("empty cache")
        };
        off.keep(generation, user(id));
        assert!(matches!(off.get(id, 0), Cached::Miss(_)));
    }
}
