//! Start-up and the HTTP router: `Application::build` connects, migrates, seeds and binds;
//! `run_until_stopped` serves until the shutdown signal and then drains.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    services::ServeDir,
    trace::TraceLayer,
};

use crate::{
    auth::{BackoffPolicy, LoginBackoff, Passwords, TokenKeys},
    auth::{ClientAddr, RequestId},
    config::{Config, GraphiqlAssets, Mode},
    db,
    graphql::{self, AppSchema, http as gql_http},
    state::AppState,
    users,
};

/// What every route handler can reach.
#[derive(Clone)]
pub struct ServerState {
    pub app: AppState,
    /// What WebSocket operations run on.
    pub schema: AppSchema,
    /// What `POST /graphql` runs on.
    pub http_schema: graphql::HttpSchema,
    pub subscriptions: crate::graphql::shared::SharedSubscriptions,
    /// Open WebSockets per caller.
    pub sockets: crate::graphql::sockets::SocketCounts,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The open WebSockets, which shutdown waits for.
    sockets: crate::graphql::sockets::SocketCounts,
    /// `/metrics` alone, for `MAILOPS_METRICS_BIND`.
    metrics_router: Router,
    state: AppState,
}

impl Application {
    /// Connects to the database (and Redis), applies migrations, creates the first admin
    /// when there are no users, and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        crate::telemetry::install();
        let state = build_state(config).await?;
        let sockets = crate::graphql::sockets::SocketCounts::default();
        let (router, metrics_router) = routers(state.clone(), sockets.clone());
        let listener = TcpListener::bind(state.config.server.bind)
            .await
            .with_context(|| format!("binding {} (MAILOPS_BIND)", state.config.server.bind))?;
        Ok(Application {
            listener,
            router,
            sockets,
            metrics_router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.bind)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish (for at most `MAILOPS_SHUTDOWN_GRACE`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = &self.state.config;
        let options = crate::server::ServeOptions {
            max_connections: config.limits.max_connections,
            header_read_timeout: config.limits.header_read_timeout,
            grace: config.server.shutdown_grace,
        };
        let mut jobs = crate::jobs::spawn_all(&self.state);
        jobs.extend(self.state.db_health.watch(config));
        if let Some(bind) = config.server.metrics_bind {
            let listener = TcpListener::bind(bind)
                .await
                .with_context(|| format!("binding {bind} (MAILOPS_METRICS_BIND)"))?;
            let router = self.metrics_router;
            tokio::spawn(async move { axum::serve(listener, router).await });
        }
        let stop = self.state.stop.clone();
        let shutdown = async move {
            shutdown.await;
            // Open WebSockets close (1001) once their operations under way have answered.
            stop.send_replace(true);
        };
        let started = std::time::Instant::now();
        let mut drained = crate::server::serve(self.listener, self.router, options, shutdown).await;
        let sockets = self.sockets.clone();
        let left = config
            .server
            .shutdown_grace
            .saturating_sub(started.elapsed());
        let closed = async {
            while sockets.open() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        drained &= tokio::time::timeout(left, closed).await.is_ok();
        jobs.iter().for_each(|job| job.abort());
        if !drained {
            tracing::warn!(
                grace = ?self.state.config.server.shutdown_grace,
                "requests still running after the grace period; stopping anyway"
            );
        }
        self.state.db.clone().close().await.ok();
        Ok(())
    }
}

/// Connects to the database (applying migrations) and Redis, creates the first admin when
/// there are no users, and assembles the state every request and job shares.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let db = db::connect(&config).await?;
    db::migrate(&db).await.context("applying migrations")?;

    let jwt_secret = match &config.auth.jwt_secret {
        Some(secret) => secret.clone(),
        None => crate::auth::load_or_create_secret(&config.server.data_dir.join("jwt-secret"))?,
    };
    let tokens = TokenKeys::new(
        &jwt_secret,
        config.auth.access_token_ttl,
        config.auth.refresh_token_ttl,
    );

    let redis = match &config.redis.url {
        Some(url) => {
            let client = redis::Client::open(url.as_str()).context("REDIS_URL")?;
            let manager = tokio::time::timeout(
                Duration::from_secs(10),
                redis::aio::ConnectionManager::new(client),
            )
            .await
            .context("connecting to Redis (REDIS_URL): timed out")?
            .context("connecting to Redis (REDIS_URL)")?;
            Some(manager)
        }
        None => None,
    };
    let policy = BackoffPolicy {
        failures_before_backoff: config.auth.login_failures_before_backoff,
        failures_per_address: config.auth.login_failures_per_address,
        base: config.auth.login_backoff_base,
        max: config.auth.login_backoff_max,
    };
    let login_backoff = match &redis {
        Some(conn) => LoginBackoff::redis(policy, conn.clone(), &config.redis.prefix),
        None => LoginBackoff::local(policy),
    };
    let limits = crate::realtime::BusLimits {
        replay_window: config.realtime.replay_window,
        replay_max: config.realtime.replay_max as usize,
        subscriber_buffer: config.realtime.subscriber_buffer as usize,
    };
    let events = match &config.redis.url {
        Some(url) => crate::realtime::EventBus::redis(
            limits,
            redis::Client::open(url.as_str()).context("REDIS_URL")?,
            &config.redis.prefix,
        ),
        None => crate::realtime::EventBus::local(limits),
    };
    let passwords = Passwords::new().map_err(|_| anyhow::anyhow!("password hasher"))?;
    users::ensure_initial_admin(
        &db,
        &passwords,
        config.auth.admin_password.as_ref(),
        &config.server.data_dir,
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the first admin: {}", e.client_message()))?;

    let overview = crate::overview::OverviewCache::new(
        config.overview.cache_ttl,
        redis.clone(),
        &config.redis.prefix,
    );
    let rate_limits = crate::ratelimit::RateLimiter::new(
        &config.limits,
        redis
            .clone()
            .map(|conn| (conn, config.redis.prefix.as_str())),
    );
    let jobs = crate::jobs::JobBook::new(
        redis
            .clone()
            .map(|conn| (conn, config.redis.prefix.as_str())),
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let principals = crate::auth::PrincipalCache::new(config.auth.principal_cache_ttl);
    principals.follow(&events);
    Ok(AppState {
        principals,
        db_health: crate::db::Health::default(),
        notifier: crate::notifications::Sender::new(config.notifications.timeout),
        exporter_mappers: Default::default(),
        rate_limits,
        jobs,
        stopping,
        stop: Arc::new(stop),
        config: Arc::new(config),
        db,
        overview,
        redis,
        tokens: Arc::new(tokens),
        passwords,
        login_backoff,
        events,
    })
}

/// The API's router, and the router of `/metrics` alone (for `MAILOPS_METRICS_BIND`).
pub fn routers(app: AppState, sockets: crate::graphql::sockets::SocketCounts) -> (Router, Router) {
    let schema = graphql::build(app.clone(), &app.config);
    let state = ServerState {
        http_schema: graphql::HttpSchema::new(app.clone(), &app.config),
        subscriptions: crate::graphql::shared::SharedSubscriptions::new(
            app.config.realtime.subscriber_buffer as usize,
        ),
        app: app.clone(),
        schema,
        sockets,
    };
    let mut router = Router::new()
        .route("/graphql", get(gql_http::graphiql).post(gql_http::post))
        .route("/graphql/ws", get(gql_http::websocket))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/write",
            axum::routing::post(crate::remote_write::write),
        );
    if app.config.server.metrics_bind.is_none() {
        router = router.route("/metrics", get(metrics));
    }
    if let GraphiqlAssets::Directory(dir) = &app.config.server.graphiql_assets
        && app.config.server.graphiql
    {
        router = router.nest_service(gql_http::LOCAL_ASSETS_PATH, ServeDir::new(dir));
    }
    let metrics = metrics_router(state.clone());
    (
        with_middleware(router.with_state(state), &app.config),
        metrics,
    )
}

/// The layers every route of mailops sits behind: request ids, tracing, compression and,
/// when origins are configured, CORS.
pub fn with_middleware(router: Router, config: &Config) -> Router {
    let mut router = router
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.as_str())
            .unwrap_or_default();
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
    }));
    if !config.server.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = config
            .server
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, X_REQUEST_ID])
                .expose_headers([X_REQUEST_ID])
                .max_age(Duration::from_secs(3600)),
        );
    }
    let trusted = Arc::new(config.limits.trusted_proxies.clone());
    router
        .layer(middleware::from_fn(move |req, next| {
            client_address(trusted.clone(), req, next)
        }))
        .layer(middleware::from_fn(request_id))
}

/// Works out who the client is (see `MAILOPS_TRUSTED_PROXIES`) for the handlers, and gives
/// every response the headers that keep browsers from guessing content types or leaking
/// URLs.
async fn client_address(trusted: Arc<Vec<ipnet::IpNet>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let client = crate::server::client_address(peer, req.headers(), &trusted);
    req.extensions_mut().insert(ClientAddr(client));
    let mut response = next.run(req).await;
    crate::telemetry::http_response(response.status().as_u16());
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id is kept when it is short and plain; otherwise a new one is made.
fn acceptable_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| text.to_string())
}

/// Accepts or generates `x-request-id`, hands it to the handlers and returns it.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(acceptable_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

/// The router of `MAILOPS_METRICS_BIND`: `/metrics` alone.
pub fn metrics_router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `GET /metrics`: the Prometheus text format, behind `MAILOPS_METRICS_TOKEN` when set.
async fn metrics(State(state): State<ServerState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.app.config.server.metrics_token {
        use secrecy::ExposeSecret as _;
        use subtle::ConstantTimeEq as _;
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let expected = token.expose_secret();
        let matches: bool = presented.len() == expected.len()
            && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()));
        if !matches {
            return (
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <MAILOPS_METRICS_TOKEN>",
            )
                .into_response();
        }
    }
    if let Some(pool) = pool_stats(&state.app.db) {
        crate::telemetry::database_pool(pool.0, pool.1, state.app.config.database.max_connections);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
        .into_response()
}

/// Open and idle connections of the database pool.
fn pool_stats(db: &sea_orm::DatabaseConnection) -> Option<(u32, u32)> {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            Some((pool.size(), pool.num_idle() as u32))
        }
        sea_orm::DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            Some((pool.size(), pool.num_idle() as u32))
        }
        _ => None,
    }
}

/// `ok` when the database and Redis answer; `degraded` (still 200) when Redis does not,
/// since every instance keeps serving without it; `down` (503) when the database does not,
/// so a load balancer takes the instance out only when it cannot serve.
async fn readyz(State(state): State<ServerState>) -> Response {
    let database = db::ping(&state.app.db).await;
    let redis = match &state.app.redis {
        None => None,
        Some(conn) => {
            let mut conn = conn.clone();
            let pong = tokio::time::timeout(
                Duration::from_secs(2),
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await;
            Some(matches!(pong, Ok(Ok(_))))
        }
    };
    let status = match (database, redis) {
        (false, _) => "down",
        (true, Some(false)) => "degraded",
        (true, _) => "ok",
    };
    let label = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = serde_json::json!({
        "status": status,
        "database": label(database),
        "redis": redis.map_or("not configured", label),
        "mode": match state.app.config.server.mode { Mode::Embedded => "embedded", Mode::Production => "production" },
    });
    let code = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
