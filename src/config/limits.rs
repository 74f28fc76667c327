//! What one caller may use: operations per second, connections, time and body size.

use std::time::Duration;

use ipnet::IpNet;

use super::{ConfigError, duration_var, invalid, u32_var};

/// A sustained rate with a burst: `per_second` operations every second on average, and up
/// to `burst` at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateQuota {
    pub per_second: f64,
    pub burst: u32,
}

impl RateQuota {
    /// The time one operation's share of the quota takes to come back.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// Operations per signed-in user; `None` is off.
    pub user_rate: Option<RateQuota>,
    /// Operations per node key.
    pub agent_rate: Option<RateQuota>,
    /// Operations per client address of callers without a user or node key (login,
    /// token refresh, registration).
    pub anonymous_rate: Option<RateQuota>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` say who the client is.
    pub trusted_proxies: Vec<IpNet>,
    /// How long one HTTP request may run before it is answered `TIMEOUT`.
    pub request_timeout: Duration,
    /// Postgres `statement_timeout` of every pooled connection.
    pub statement_timeout: Duration,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Open TCP connections at most; more wait to be accepted.
    pub max_connections: u32,
    /// Open WebSockets of one user (or node key) at most.
    pub websockets_per_caller: u32,
}

const RATE_MAX: f64 = 1_000_000.0;

fn rate_var(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    burst_name: &'static str,
    default: RateQuota,
) -> Result<Option<RateQuota>, ConfigError> {
    let per_second = match get(name).as_deref().map(str::trim) {
        None => default.per_second,
        Some("off") => return Ok(None),
        Some(text) => match text.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= RATE_MAX => rate,
            _ => {
                return Err(invalid(
                    name,
                    format!(
                        "'{text}' is not a rate above 0 and at most 1000000 per second, or off"
                    ),
                ));
            }
        },
    };
    let burst = u32_var(get, burst_name, default.burst)?;
    if burst == 0 || burst > 1_000_000 {
        return Err(invalid(burst_name, "must be between 1 and 1000000"));
    }
    Ok(Some(RateQuota { per_second, burst }))
}

impl LimitsConfig {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let quota = |per_second, burst| RateQuota { per_second, burst };
        let trusted_proxies = match get("MAILOPS_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| {
                    entry
                        .parse::<IpNet>()
                        .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            invalid(
                                "MAILOPS_TRUSTED_PROXIES",
                                format!("'{entry}' is not an address or a CIDR block"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let request_timeout =
            duration_var(get, "MAILOPS_REQUEST_TIMEOUT", Duration::from_secs(30))?;
        let limits = LimitsConfig {
            user_rate: rate_var(
                get,
                "MAILOPS_RATE_LIMIT_USER",
                "MAILOPS_RATE_LIMIT_USER_BURST",
                quota(100.0, 200),
            )?,
            agent_rate: rate_var(
                get,
                "MAILOPS_RATE_LIMIT_AGENT",
                "MAILOPS_RATE_LIMIT_AGENT_BURST",
                quota(1_000.0, 2_000),
            )?,
            anonymous_rate: rate_var(
                get,
                "MAILOPS_RATE_LIMIT_ANONYMOUS",
                "MAILOPS_RATE_LIMIT_ANONYMOUS_BURST",
                quota(10.0, 20),
            )?,
            trusted_proxies,
            request_timeout,
            statement_timeout: duration_var(
                get,
                "MAILOPS_DATABASE_STATEMENT_TIMEOUT",
                request_timeout,
            )?,
            header_read_timeout: duration_var(
                get,
                "MAILOPS_HEADER_READ_TIMEOUT",
                Duration::from_secs(10),
            )?,
            max_connections: u32_var(get, "MAILOPS_MAX_CONNECTIONS", 25_000)?,
            websockets_per_caller: u32_var(get, "MAILOPS_WEBSOCKETS_PER_CALLER", 64)?,
        };
        if limits.max_connections == 0 {
            return Err(invalid("MAILOPS_MAX_CONNECTIONS", "must be at least 1"));
        }
        if limits.websockets_per_caller == 0 {
            return Err(invalid(
                "MAILOPS_WEBSOCKETS_PER_CALLER",
                "must be at least 1",
            ));
        }
        Ok(limits)
    }
}
