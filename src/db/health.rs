//! The database watcher behind `/readyz` and the fast `UNAVAILABLE` answers.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::Duration;

use crate::config::Config;

/// Whether the database answers, as a watcher outside the pool last found: a request
/// that finds it down is answered `UNAVAILABLE` at once instead of waiting for a pooled
/// connection that cannot come.
#[derive(Clone, Debug)]
pub struct Health(Arc<AtomicBool>);

impl Default for Health {
    fn default() -> Self {
        Health(Arc::new(AtomicBool::new(true)))
    }
}

/// How often the watcher checks the database.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

impl Health {
    pub fn reachable(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Watches a Postgres database over a connection of its own (a saturated pool does
    /// not make it look down), logging each change once. SQLite is always reachable.
    pub fn watch(&self, config: &Config) -> Option<tokio::task::JoinHandle<()>> {
        use sea_orm::sqlx::{Connection as _, PgConnection};
        if !config.uses_postgres() {
            return None;
        }
        let url = config.effective_database_url();
        let reachable = self.0.clone();
        Some(tokio::spawn(async move {
            let mut connection: Option<PgConnection> = None;
            loop {
                tokio::time::sleep(HEALTH_EVERY).await;
                let answered = async {
                    let conn = match &mut connection {
                        Some(conn) => conn,
                        None => connection.insert(PgConnection::connect(&url).await.ok()?),
                    };
                    conn.ping().await.ok()
                };
                let up = matches!(
                    tokio::time::timeout(HEALTH_EVERY, answered).await,
                    Ok(Some(()))
                );
                if !up {
                    connection = None;
                }
                let was = reachable.swap(up, Ordering::Relaxed);
                match (was, up) {
                    (true, false) => tracing::error!(
                        "the database does not answer; requests are answered UNAVAILABLE"
                    ),
                    (false, true) => tracing::info!("the database answers again"),
                    _ => {}
                }
            }
        }))
    }
}
