//! Notification settings: how often the notifier runs, how long and how often it retries,
//! and the address receivers link back to.

use std::time::Duration;

use crate::config::{ConfigError, duration_var, invalid, u32_var};

#[derive(Clone, Debug)]
pub struct NotificationsConfig {
    /// How often the notifier groups new alert changes and sends what is due.
    pub interval: Duration,
    /// How long a notification is retried before it is FAILED.
    pub retry_for: Duration,
    /// The wait after the first failure; doubled after each further one.
    pub backoff_min: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How long SENT and FAILED notifications stay listed.
    pub retention: Duration,
    /// Notifications sent at once (to different contact points or groups).
    pub concurrency: u32,
    /// mailops as receivers' links name it (`externalURL`), without a trailing `/`.
    pub public_url: String,
}

impl NotificationsConfig {
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        bind: std::net::SocketAddr,
    ) -> Result<Self, ConfigError> {
        let interval = duration_var(get, "MAILOPS_NOTIFICATION_INTERVAL", Duration::from_secs(1))?;
        if interval < Duration::from_millis(100) {
            return Err(invalid(
                "MAILOPS_NOTIFICATION_INTERVAL",
                "must be at least 100ms",
            ));
        }
        let retry_for = duration_var(
            get,
            "MAILOPS_NOTIFICATION_RETRY_FOR",
            Duration::from_secs(24 * 3600),
        )?;
        let backoff_min = duration_var(
            get,
            "MAILOPS_NOTIFICATION_BACKOFF_MIN",
            Duration::from_secs(10),
        )?;
        let backoff_max = duration_var(
            get,
            "MAILOPS_NOTIFICATION_BACKOFF_MAX",
            Duration::from_secs(600),
        )?;
        if backoff_max < backoff_min {
            return Err(invalid(
                "MAILOPS_NOTIFICATION_BACKOFF_MAX",
                "must be at least MAILOPS_NOTIFICATION_BACKOFF_MIN",
            ));
        }
        let timeout = duration_var(get, "MAILOPS_NOTIFICATION_TIMEOUT", Duration::from_secs(10))?;
        if timeout > Duration::from_secs(120) {
            return Err(invalid(
                "MAILOPS_NOTIFICATION_TIMEOUT",
                "must be at most 2m",
            ));
        }
        let retention = duration_var(
            get,
            "MAILOPS_NOTIFICATION_RETENTION",
            Duration::from_secs(30 * 86_400),
        )?;
        if retention < retry_for {
            return Err(invalid(
                "MAILOPS_NOTIFICATION_RETENTION",
                "must be at least MAILOPS_NOTIFICATION_RETRY_FOR",
            ));
        }
        let concurrency = u32_var(get, "MAILOPS_NOTIFICATION_CONCURRENCY", 16)?;
        if !(1..=256).contains(&concurrency) {
            return Err(invalid(
                "MAILOPS_NOTIFICATION_CONCURRENCY",
                "must be between 1 and 256",
            ));
        }
        let public_url = match get("MAILOPS_PUBLIC_URL") {
            None => format!("http://{bind}"),
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_string();
                let parsed = reqwest::Url::parse(&url).map_err(|_| {
                    invalid(
                        "MAILOPS_PUBLIC_URL",
                        format!("'{url}' is not a URL such as https://mailops.example.com"),
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") || url.len() > 512 {
                    return Err(invalid(
                        "MAILOPS_PUBLIC_URL",
                        "must be an http(s) URL of at most 512 characters",
                    ));
                }
                url
            }
        };
        Ok(NotificationsConfig {
            interval,
            retry_for,
            backoff_min,
            backoff_max,
            timeout,
            retention,
            concurrency,
            public_url,
        })
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failures.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.backoff_min
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}
