//! The one error type of mailops.
//!
//! Domain services return [`AppResult`]. Client errors carry a message meant for the caller;
//! internal errors (database, Redis, anything unexpected) are logged in full where they are
//! turned into a GraphQL error and reach the client only as `INTERNAL` / "internal error".
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts every
//! `Display` type into an error without `extensions.code`, so a bare `?` on such a type
//! would leak its text uncoded. Without `Display`, the only conversion is ours, below.

use std::time::Duration;

use async_graphql::{ErrorExtensions, ServerError};

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    BadInput {
        field: String,
        reason: String,
    },
    NotFound(String),
    Conflict(String),
    RateLimited {
        reason: String,
        retry_after: Duration,
    },
    /// The request ran out of time (`MAILOPS_REQUEST_TIMEOUT`, or the database's
    /// statement timeout).
    Timeout(String),
    /// The database cannot be reached: nothing was written; retry after `retry_after`.
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
    Db(sea_orm::DbErr),
    Redis(redis::RedisError),
    Internal(anyhow::Error),
}

/// The `extensions.code` values a client can see.
pub mod code {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const CONFLICT: &str = "CONFLICT";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
}

impl AppError {
    pub fn bad_input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AppError::BadInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AppError::Internal(anyhow::anyhow!(message.into()))
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => code::UNAUTHENTICATED,
            AppError::Forbidden(_) => code::FORBIDDEN,
            AppError::BadInput { .. } => code::BAD_USER_INPUT,
            AppError::NotFound(_) => code::NOT_FOUND,
            AppError::Conflict(_) => code::CONFLICT,
            AppError::RateLimited { .. } => code::RATE_LIMITED,
            AppError::Timeout(_) => code::TIMEOUT,
            AppError::Unavailable { .. } => code::UNAVAILABLE,
            AppError::Db(_) | AppError::Redis(_) | AppError::Internal(_) => code::INTERNAL,
        }
    }

    /// What the client is told.
    pub fn client_message(&self) -> String {
        match self {
            AppError::Unauthenticated(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::Timeout(m) => m.clone(),
            AppError::BadInput { field, reason } => format!("{field}: {reason}"),
            AppError::RateLimited { reason, .. } | AppError::Unavailable { reason, .. } => {
                reason.clone()
            }
            AppError::Db(_) | AppError::Redis(_) | AppError::Internal(_) => "internal error".into(),
        }
    }

    pub fn is_internal(&self) -> bool {
        self.code() == code::INTERNAL
    }

    /// Logs an internal error with its whole chain; client errors are not logged here.
    pub fn log_if_internal(&self) {
        match self {
            AppError::Db(e) => tracing::error!(error = %e, detail = ?e, "database error"),
            AppError::Redis(e) => tracing::error!(error = %e, "redis error"),
            AppError::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            _ => {}
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        match e {
            // Every connection stayed busy for the whole acquire timeout: the database is
            // saturated, not broken. Saying so lets clients (agents above all, whose
            // batches are safe to resend) back off and retry instead of giving up.
            sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout) => {
                tracing::warn!(
                    "no database connection came free in time; asking the client to retry"
                );
                crate::telemetry::database_pool_exhausted();
                AppError::RateLimited {
                    reason: "mailops is busy; retry shortly".into(),
                    retry_after: Duration::from_secs(1),
                }
            }
            e if is_outage(&e) => {
                tracing::warn!(error = %e, "the database cannot be reached; asking the client to retry");
                crate::telemetry::database_unavailable();
                AppError::Unavailable {
                    reason: "the database cannot be reached; nothing was written, retry shortly"
                        .into(),
                    retry_after: Duration::from_secs(5),
                }
            }
            e if is_statement_timeout(&e) => AppError::Timeout(
                "the database took too long (MAILOPS_DATABASE_STATEMENT_TIMEOUT); narrow the request"
                    .into(),
            ),
            e => AppError::Db(e),
        }
    }
}

/// Whether the database is out of reach (connection refused or lost, server shutting
/// down) rather than the statement being wrong: the same request may well succeed later.
fn is_outage(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, error::ConnAcquireErr, sqlx};
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e)) => e.as_ref(),
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match sqlx_error {
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        // admin_shutdown, crash_shutdown, cannot_connect_now: the server is restarting.
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006")
        ),
        _ => false,
    }
}

/// Whether Postgres cancelled the statement for running past `statement_timeout`
/// (SQLSTATE 57014).
fn is_statement_timeout(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    match error {
        DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
        }
        _ => false,
    }
}

/// A conversion that cannot fail, so that `TryFrom` conversions of either kind take `?`.
impl From<std::convert::Infallible> for AppError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// A DataLoader hands one batch's error to every field that waited on it, so loaders
/// share it behind an `Arc`; each field gets the same answer: the client error as it
/// was, or `INTERNAL` for an internal one (logged once, where it happened).
impl From<std::sync::Arc<AppError>> for AppError {
    fn from(shared: std::sync::Arc<AppError>) -> Self {
        match shared.as_ref() {
            AppError::Unauthenticated(m) => AppError::Unauthenticated(m.clone()),
            AppError::Forbidden(m) => AppError::Forbidden(m.clone()),
            AppError::BadInput { field, reason } => AppError::bad_input(field, reason),
            AppError::NotFound(m) => AppError::NotFound(m.clone()),
            AppError::Conflict(m) => AppError::Conflict(m.clone()),
            AppError::Timeout(m) => AppError::Timeout(m.clone()),
            AppError::Unavailable {
                reason,
                retry_after,
            } => AppError::Unavailable {
                reason: reason.clone(),
                retry_after: *retry_after,
            },
            AppError::RateLimited {
                reason,
                retry_after,
            } => AppError::RateLimited {
                reason: reason.clone(),
                retry_after: *retry_after,
            },
            AppError::Db(_) | AppError::Redis(_) | AppError::Internal(_) => {
                AppError::internal("a batched read failed")
            }
        }
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(e: sea_orm::TransactionError<AppError>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(db) => AppError::Db(db),
            sea_orm::TransactionError::Transaction(app) => app,
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        AppError::Redis(e)
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::Internal(e)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.log_if_internal();
        let code = err.code();
        let retry_after = match &err {
            AppError::RateLimited { retry_after, .. }
            | AppError::Unavailable { retry_after, .. } => Some(retry_after.as_secs_f64().ceil()),
            _ => None,
        };
        let field = match &err {
            AppError::BadInput { field, .. } => Some(field.clone()),
            _ => None,
        };
        async_graphql::Error::new(err.client_message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(seconds) = retry_after {
                ext.set("retryAfterSeconds", seconds as u64);
            }
            if let Some(field) = field {
                ext.set("field", field);
            }
        })
    }
}

/// A GraphQL error raised outside any resolver (request parsing, limits).
pub fn server_error(code: &'static str, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    error.extensions = Some(ext);
    error
}

/// `RATE_LIMITED` with the seconds until a retry may pass, for refusals made outside a
/// resolver (the rate limits of requests and WebSocket operations).
pub fn rate_limited_error(message: impl Into<String>, retry_after: Duration) -> ServerError {
    let mut error = server_error(code::RATE_LIMITED, message);
    if let Some(ext) = &mut error.extensions {
        ext.set(
            "retryAfterSeconds",
            retry_after.as_secs_f64().ceil().max(1.0) as u64,
        );
    }
    error
}

/// Gives every error of a response its `requestId`, and a `code` to the errors async-graphql
/// raised itself (syntax, validation, limits, argument types), which are all the caller's.
pub fn finish_errors(errors: &mut [ServerError], request_id: &str) {
    for error in errors {
        let ext = error.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", code::BAD_USER_INPUT);
        }
        ext.set("requestId", request_id);
    }
}
