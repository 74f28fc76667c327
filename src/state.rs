//! Everything a request needs, built once at start-up and cloned cheaply into handlers.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{LoginBackoff, Passwords, TokenKeys},
    config::Config,
    realtime::EventBus,
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    /// Present when `REDIS_URL` is set.
    pub redis: Option<ConnectionManager>,
    pub tokens: Arc<TokenKeys>,
    /// Users resolved from access tokens, reused for a few seconds.
    pub principals: crate::auth::PrincipalCache,
    pub passwords: Passwords,
    pub login_backoff: LoginBackoff,
    /// Committed changes, for subscribers.
    pub events: EventBus,
    /// The overview computed last, shared by callers for its time to live.
    pub overview: crate::overview::OverviewCache,
    /// Operations per second per caller.
    pub rate_limits: crate::ratelimit::RateLimiter,
    /// What the recurring jobs did last.
    pub jobs: crate::jobs::JobBook,
    /// Delivers notifications, keeping HTTP connections to receivers open between them.
    pub notifier: crate::notifications::Sender,
    /// What the exporter mapping remembers per node between remote-write requests.
    pub exporter_mappers: crate::metrics::ExporterMappers,
    /// Whether the database answers.
    pub db_health: crate::db::Health,
    /// Turns true when the server starts shutting down: open WebSockets close.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Raises `stopping`.
    pub stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}
