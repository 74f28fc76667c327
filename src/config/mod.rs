//! Typed configuration, read once from the environment and validated before anything starts.
//!
//! Every problem is reported as one line naming the variable and what is wrong with it.

mod limits;
mod vars;

pub use limits::{LimitsConfig, RateQuota};

pub use vars::{bool_var, duration_var, invalid, parse_duration, u32_var};

use std::{collections::HashMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

/// How mailops runs: one self-contained process, or one of many instances sharing Postgres
/// and Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Where the GraphiQL page loads its scripts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphiqlAssets {
    /// A base URL laid out like the npm CDNs: `{base}/graphiql@3.8.3/graphiql.min.js`.
    Url(String),
    /// A local directory with the same layout, served by mailops itself.
    Directory(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub nodes: NodesConfig,
    pub metrics: MetricsConfig,
    /// Mail events: retention of raw events and counters, provider groups.
    pub mail: crate::mailflow::MailFlowConfig,
    /// DNSBL look-ups of sending IPs: name server, zones, schedule.
    pub dnsbl: crate::ips::DnsblConfig,
    pub realtime: RealtimeConfig,
    pub alerts: AlertsConfig,
    pub notifications: crate::notifications::NotificationsConfig,
    pub overview: OverviewConfig,
    /// Rate limits, timeouts and connection caps.
    pub limits: LimitsConfig,
}

/// The process, its HTTP server and what it serves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub mode: Mode,
    pub bind: SocketAddr,
    /// The SQLite file and the generated JWT secret live here.
    pub data_dir: PathBuf,
    pub graphiql: bool,
    pub graphiql_assets: GraphiqlAssets,
    pub introspection: bool,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Where `/metrics` is served on its own; `None` serves it beside the API.
    pub metrics_bind: Option<SocketAddr>,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `None` means the embedded SQLite file under `server.data_dir`.
    pub url: Option<String>,
    pub max_connections: u32,
    /// SQLite waits for the disk on every commit (`FULL`), so an acknowledged batch
    /// survives a power failure; `NORMAL` trades that for speed.
    pub sqlite_synchronous_full: bool,
}

#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: Option<String>,
    /// Prefix of every Redis key mailops writes, so that several deployments (or tests) can
    /// share one Redis.
    pub prefix: String,
}

/// Tokens, the first admin, and login backoff.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `None` in embedded mode means: generate one and keep it in `server.data_dir`.
    pub jwt_secret: Option<SecretString>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a user resolved from an access token is reused without reading its row
    /// again; revocations end it at once on every instance. Zero reads the row every time.
    pub principal_cache_ttl: Duration,
    pub admin_password: Option<SecretString>,
    /// Consecutive failed logins of one account before it is made to wait.
    pub login_failures_before_backoff: u32,
    /// The first wait; each further failure doubles it, up to `login_backoff_max`.
    pub login_backoff_base: Duration,
    pub login_backoff_max: Duration,
    /// Failed logins from one client address, across accounts, before that address is
    /// made to wait.
    pub login_failures_per_address: u32,
}

/// Agent contact and node status.
#[derive(Clone, Debug)]
pub struct NodesConfig {
    /// How often agents are expected to push.
    pub push_interval: Duration,
    /// A node with no agent contact for this long is STALE.
    pub stale_after: Duration,
    /// A node with no agent contact for this long is DOWN.
    pub down_after: Duration,
    /// How often the status job looks for nodes that went quiet.
    pub status_check_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// How long raw metric samples are kept; older samples are refused at ingestion.
    pub raw_retention: Duration,
    /// How long 1-minute rollups are kept.
    pub minute_retention: Duration,
    /// How long 1-hour rollups are kept.
    pub hour_retention: Duration,
    /// How often the retention jobs (metrics, mail events and counters) delete what is due.
    pub retention_interval: Duration,
}

/// Subscriptions and WebSockets.
#[derive(Clone, Debug)]
pub struct RealtimeConfig {
    /// How far back `after:` can resume a subscription.
    pub replay_window: Duration,
    /// Events kept for `after:` at most, whatever their age.
    pub replay_max: u32,
    /// Events a subscriber may fall behind before it is told it lagged and dropped.
    pub subscriber_buffer: u32,
    /// How often the server pings each WebSocket; one silent for two intervals is closed.
    pub ws_ping_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// How often the alert rules are evaluated.
    pub evaluation_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct OverviewConfig {
    /// How long one computed `overview` is served; `None` computes it for every request.
    pub cache_ttl: Option<Duration>,
}

/// A configuration problem: the variable and why its value was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

pub const MIN_JWT_SECRET_BYTES: usize = 32;
const DEFAULT_GRAPHIQL_CDN: &str = "https://unpkg.com";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    /// Reads configuration through `lookup`, so tests can pass their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url = get("DATABASE_URL");
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }
        let mode = match get("MAILOPS_MODE").as_deref() {
            None if database_url.is_some() => Mode::Production,
            None => Mode::Embedded,
            Some("embedded") => Mode::Embedded,
            Some("production") => Mode::Production,
            Some(other) => {
                return Err(invalid(
                    "MAILOPS_MODE",
                    format!("'{other}' is not one of: embedded, production"),
                ));
            }
        };
        let embedded = mode == Mode::Embedded;

        let bind = match get("MAILOPS_BIND") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.parse().map_err(|_| {
                invalid(
                    "MAILOPS_BIND",
                    format!("'{v}' is not an address with a port, such as 127.0.0.1:8080"),
                )
            })?,
        };

        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(invalid(
                "REDIS_URL",
                "must start with redis:// or rediss://",
            ));
        }
        let redis_prefix = get("MAILOPS_REDIS_PREFIX").unwrap_or_else(|| "mailops:".into());

        let jwt_secret = get("MAILOPS_JWT_SECRET");
        match &jwt_secret {
            Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => {
                return Err(invalid(
                    "MAILOPS_JWT_SECRET",
                    format!(
                        "is {} bytes long; it must be at least {MIN_JWT_SECRET_BYTES}",
                        secret.len()
                    ),
                ));
            }
            None if !embedded => {
                return Err(invalid(
                    "MAILOPS_JWT_SECRET",
                    format!(
                        "is required in production mode (at least {MIN_JWT_SECRET_BYTES} random bytes, e.g. `openssl rand -base64 48`)"
                    ),
                ));
            }
            _ => {}
        }

        let access_token_ttl = duration_var(
            &get,
            "MAILOPS_ACCESS_TOKEN_TTL",
            Duration::from_secs(15 * 60),
        )?;
        let refresh_token_ttl = duration_var(
            &get,
            "MAILOPS_REFRESH_TOKEN_TTL",
            Duration::from_secs(7 * 24 * 3600),
        )?;
        if refresh_token_ttl <= access_token_ttl {
            return Err(invalid(
                "MAILOPS_REFRESH_TOKEN_TTL",
                "must be longer than MAILOPS_ACCESS_TOKEN_TTL",
            ));
        }

        // "0" reads the user row on every request; otherwise at most a minute, because it
        // is what ends access after a change no revocation announced.
        let principal_cache_ttl = match get("MAILOPS_AUTH_CACHE_TTL").as_deref().map(str::trim) {
            Some("0") => Duration::ZERO,
            _ => duration_var(&get, "MAILOPS_AUTH_CACHE_TTL", Duration::from_secs(5))?,
        };
        if principal_cache_ttl > Duration::from_secs(60) {
            return Err(invalid(
                "MAILOPS_AUTH_CACHE_TTL",
                "must be at most 60s (or 0 to read the user on every request)",
            ));
        }

        let graphiql_assets = match get("MAILOPS_GRAPHIQL_ASSETS") {
            None => GraphiqlAssets::Url(DEFAULT_GRAPHIQL_CDN.into()),
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                GraphiqlAssets::Url(v.trim_end_matches('/').to_string())
            }
            Some(v) => {
                let dir = PathBuf::from(&v);
                if !dir.is_dir() {
                    return Err(invalid(
                        "MAILOPS_GRAPHIQL_ASSETS",
                        format!("'{v}' is neither an http(s) URL nor an existing directory"),
                    ));
                }
                GraphiqlAssets::Directory(dir)
            }
        };

        let cors_origins = get("MAILOPS_CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for origin in &cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "MAILOPS_CORS_ORIGINS",
                    format!("'{origin}' is not an origin such as https://dashboard.example.com"),
                ));
            }
        }

        let admin_password = get("MAILOPS_ADMIN_PASSWORD");
        if let Some(pw) = &admin_password
            && let Err(reason) = crate::auth::check_policy("admin", pw)
        {
            return Err(invalid("MAILOPS_ADMIN_PASSWORD", reason));
        }

        let log_format = match get("MAILOPS_LOG_FORMAT").as_deref() {
            None if embedded => LogFormat::Pretty,
            None => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "MAILOPS_LOG_FORMAT",
                    format!("'{other}' is not one of: pretty, json"),
                ));
            }
        };

        let database_max_connections = u32_var(&get, "MAILOPS_DATABASE_MAX_CONNECTIONS", 10)?;
        if database_max_connections == 0 {
            return Err(invalid(
                "MAILOPS_DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }

        let node_push_interval =
            duration_var(&get, "MAILOPS_NODE_PUSH_INTERVAL", Duration::from_secs(15))?;
        let node_stale_after =
            duration_var(&get, "MAILOPS_NODE_STALE_AFTER", node_push_interval * 2)?;
        let node_down_after =
            duration_var(&get, "MAILOPS_NODE_DOWN_AFTER", Duration::from_secs(120))?;
        if node_down_after <= node_stale_after {
            return Err(invalid(
                "MAILOPS_NODE_DOWN_AFTER",
                "must be longer than MAILOPS_NODE_STALE_AFTER (default: twice MAILOPS_NODE_PUSH_INTERVAL)",
            ));
        }
        let node_status_check_interval = duration_var(
            &get,
            "MAILOPS_NODE_STATUS_CHECK_INTERVAL",
            Duration::from_secs(5),
        )?;

        let metrics_raw_retention = duration_var(
            &get,
            "MAILOPS_METRICS_RAW_RETENTION",
            Duration::from_secs(48 * 3600),
        )?;

        let metrics_minute_retention = duration_var(
            &get,
            "MAILOPS_METRICS_MINUTE_RETENTION",
            Duration::from_secs(30 * 86_400),
        )?;
        let metrics_hour_retention = duration_var(
            &get,
            "MAILOPS_METRICS_HOUR_RETENTION",
            Duration::from_secs(400 * 86_400),
        )?;
        let metrics_retention_interval = duration_var(
            &get,
            "MAILOPS_METRICS_RETENTION_INTERVAL",
            Duration::from_secs(600),
        )?;

        let event_replay_window = duration_var(
            &get,
            "MAILOPS_EVENT_REPLAY_WINDOW",
            Duration::from_secs(300),
        )?;
        let event_replay_max = u32_var(&get, "MAILOPS_EVENT_REPLAY_MAX", 10_000)?;
        if event_replay_max == 0 || event_replay_max > 1_000_000 {
            return Err(invalid(
                "MAILOPS_EVENT_REPLAY_MAX",
                "must be between 1 and 1000000",
            ));
        }
        let event_subscriber_buffer = u32_var(&get, "MAILOPS_EVENT_SUBSCRIBER_BUFFER", 1024)?;
        if !(16..=65_536).contains(&event_subscriber_buffer) {
            return Err(invalid(
                "MAILOPS_EVENT_SUBSCRIBER_BUFFER",
                "must be between 16 and 65536",
            ));
        }
        let ws_ping_interval =
            duration_var(&get, "MAILOPS_WS_PING_INTERVAL", Duration::from_secs(30))?;
        if ws_ping_interval < Duration::from_millis(100) {
            return Err(invalid(
                "MAILOPS_WS_PING_INTERVAL",
                "must be at least 100ms",
            ));
        }

        let overview_cache_ttl = match get("MAILOPS_OVERVIEW_CACHE_TTL").as_deref().map(str::trim) {
            Some("0" | "off") => None,
            _ => Some(duration_var(
                &get,
                "MAILOPS_OVERVIEW_CACHE_TTL",
                Duration::from_secs(30),
            )?),
        };
        let alert_evaluation_interval = duration_var(
            &get,
            "MAILOPS_ALERT_EVALUATION_INTERVAL",
            Duration::from_secs(15),
        )?;
        if alert_evaluation_interval < Duration::from_millis(100) {
            return Err(invalid(
                "MAILOPS_ALERT_EVALUATION_INTERVAL",
                "must be at least 100ms",
            ));
        }

        Ok(Config {
            server: ServerConfig {
                mode,
                bind,
                data_dir: PathBuf::from(get("MAILOPS_DATA_DIR").unwrap_or_else(|| "./data".into())),
                graphiql: bool_var(&get, "MAILOPS_GRAPHIQL", embedded)?,
                graphiql_assets,
                introspection: bool_var(&get, "MAILOPS_INTROSPECTION", embedded)?,
                cors_origins,
                log_format,
                shutdown_grace: duration_var(
                    &get,
                    "MAILOPS_SHUTDOWN_GRACE",
                    Duration::from_secs(30),
                )?,
                metrics_bind: match get("MAILOPS_METRICS_BIND") {
                    None => None,
                    Some(v) => Some(v.parse().map_err(|_| {
                        invalid(
                            "MAILOPS_METRICS_BIND",
                            format!("'{v}' is not an address with a port, such as 127.0.0.1:9090"),
                        )
                    })?),
                },
                metrics_token: get("MAILOPS_METRICS_TOKEN").map(SecretString::from),
            },
            database: DatabaseConfig {
                url: database_url,
                max_connections: database_max_connections,
                sqlite_synchronous_full: match get("MAILOPS_SQLITE_SYNCHRONOUS")
                    .map(|v| v.trim().to_ascii_lowercase())
                    .as_deref()
                {
                    None | Some("full") => true,
                    Some("normal") => false,
                    Some(other) => {
                        return Err(invalid(
                            "MAILOPS_SQLITE_SYNCHRONOUS",
                            format!("'{other}' is not one of: full, normal"),
                        ));
                    }
                },
            },
            redis: RedisConfig {
                url: redis_url,
                prefix: redis_prefix,
            },
            auth: AuthConfig {
                jwt_secret: jwt_secret.map(SecretString::from),
                access_token_ttl,
                refresh_token_ttl,
                principal_cache_ttl,
                admin_password: admin_password.map(SecretString::from),
                login_failures_before_backoff: u32_var(
                    &get,
                    "MAILOPS_LOGIN_FAILURES_BEFORE_BACKOFF",
                    5,
                )?,
                login_backoff_base: duration_var(
                    &get,
                    "MAILOPS_LOGIN_BACKOFF_BASE",
                    Duration::from_secs(1),
                )?,
                login_backoff_max: duration_var(
                    &get,
                    "MAILOPS_LOGIN_BACKOFF_MAX",
                    Duration::from_secs(15 * 60),
                )?,
                login_failures_per_address: u32_var(
                    &get,
                    "MAILOPS_LOGIN_FAILURES_PER_ADDRESS",
                    20,
                )?,
            },
            nodes: NodesConfig {
                push_interval: node_push_interval,
                stale_after: node_stale_after,
                down_after: node_down_after,
                status_check_interval: node_status_check_interval,
            },
            metrics: MetricsConfig {
                raw_retention: metrics_raw_retention,
                minute_retention: metrics_minute_retention,
                hour_retention: metrics_hour_retention,
                retention_interval: metrics_retention_interval,
            },
            mail: crate::mailflow::MailFlowConfig::from_lookup(&get)?,
            dnsbl: crate::ips::DnsblConfig::from_lookup(&get)?,
            notifications: crate::notifications::NotificationsConfig::from_lookup(&get, bind)?,
            realtime: RealtimeConfig {
                replay_window: event_replay_window,
                replay_max: event_replay_max,
                subscriber_buffer: event_subscriber_buffer,
                ws_ping_interval,
            },
            alerts: AlertsConfig {
                evaluation_interval: alert_evaluation_interval,
            },
            overview: OverviewConfig {
                cache_ttl: overview_cache_ttl,
            },
            limits: LimitsConfig::from_lookup(&get)?,
        })
    }

    /// The sqlx URL of the database, the embedded SQLite file when none was given.
    pub fn effective_database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("mailops.db").display()
            ),
        }
    }

    pub fn uses_postgres(&self) -> bool {
        self.database
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_variables_means_embedded_mode_on_localhost() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.server.mode, Mode::Embedded);
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert!(config.server.graphiql && config.server.introspection);
        assert!(config.effective_database_url().starts_with("sqlite://"));
    }

    #[test]
    fn database_url_alone_means_production_and_needs_a_secret() {
        let err = config(&[("DATABASE_URL", "postgres://localhost/mailops")]).unwrap_err();
        assert_eq!(err.variable, "MAILOPS_JWT_SECRET");
    }

    #[test]
    fn production_turns_graphiql_and_introspection_off_by_default() {
        let config = config(&[
            ("DATABASE_URL", "postgres://localhost/mailops"),
            ("MAILOPS_JWT_SECRET", &"x".repeat(32)),
        ])
        .expect("valid");
        assert_eq!(config.server.mode, Mode::Production);
        assert!(!config.server.graphiql && !config.server.introspection);
    }

    #[test]
    fn a_short_secret_is_refused_in_any_mode() {
        let err = config(&[("MAILOPS_JWT_SECRET", "short")]).unwrap_err();
        assert_eq!(err.variable, "MAILOPS_JWT_SECRET");
        assert!(err.to_string().contains("at least 32"));
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases = [
            ("MAILOPS_BIND", "localhost"),
            ("MAILOPS_MODE", "staging"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "localhost:6379"),
            ("MAILOPS_ACCESS_TOKEN_TTL", "15"),
            ("MAILOPS_GRAPHIQL", "maybe"),
            ("MAILOPS_CORS_ORIGINS", "dashboard.example.com"),
            ("MAILOPS_ADMIN_PASSWORD", "short"),
            ("MAILOPS_GRAPHIQL_ASSETS", "/does/not/exist"),
            ("MAILOPS_LOG_FORMAT", "xml"),
            ("MAILOPS_NODE_DOWN_AFTER", "10s"),
        ];
        for (variable, value) in cases {
            let err = config(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }
}
