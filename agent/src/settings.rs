//! The command line: every flag of `run` also as a `MAILOPS_AGENT_*` variable and as a key
//! of the optional TOML file (`--config`); a flag or variable wins over the file, the file
//! over the default.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/mailops-agent";

/// Node roles mailops knows (`NodeRole`).
pub const ROLES: [&str; 8] = [
    "IMAP", "MTA", "MX", "MONGODB", "REDIS", "RSPAMD", "WEBMAIL", "OTHER",
];

#[derive(Parser, Debug)]
#[command(
    name = "mailops-agent",
    version,
    about = "Feeds mailops from this node and applies what mailops decides on it",
    long_about = "Feeds mailops from this node and applies what mailops decides on it.\n\n\
        First enroll the node once with an enrollment key an admin created \
        (`mailops enrollment-key create`):\n\n  \
        mailops-agent enroll --server https://mailops.example.com --enrollment-key mke_… \
        --roles MTA\n\n\
        then run it (systemd: deploy/systemd/mailops-agent.service):\n\n  \
        mailops-agent run --pool-file /etc/zone-mta/mailops-ips.json \
        --reload-command 'systemctl reload zone-mta'\n\n\
        `mailops-agent check` prints what one collection would send."
)]
pub struct Cli {
    /// How the agent logs to stderr.
    #[arg(
        long,
        global = true,
        env = "MAILOPS_AGENT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Registers this node with mailops and keeps its node key in the state directory.
    Enroll(EnrollArgs),
    /// Collects and pushes metrics every push interval and applies the node's IPs.
    // Boxed: its many optional settings make it far larger than the other commands.
    Run(Box<RunArgs>),
    /// Collects once, from what `run` with the same flags and `--config` would collect
    /// from, and prints the samples it would send, as JSON.
    Check(Box<RunArgs>),
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// mailops's address, e.g. https://mailops.example.com (the /graphql path is added).
    #[arg(long, env = "MAILOPS_AGENT_SERVER")]
    pub server: String,
    /// An enrollment key (mke_…) from `createEnrollmentKey` or `mailops enrollment-key create`.
    #[arg(long, env = "MAILOPS_AGENT_ENROLLMENT_KEY", hide_env_values = true)]
    pub enrollment_key: String,
    /// Where the node key (node.key, mode 0600) and the spool are kept.
    #[arg(long, env = "MAILOPS_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The node's DNS name; this machine's host name by default.
    #[arg(long, env = "MAILOPS_AGENT_HOSTNAME")]
    pub hostname: Option<String>,
    /// What the node does, comma-separated: IMAP, MTA, MX, MONGODB, REDIS, RSPAMD, WEBMAIL, OTHER.
    #[arg(long, env = "MAILOPS_AGENT_ROLES", value_delimiter = ',', default_value = "MTA", value_parser = parse_role)]
    pub roles: Vec<String>,
    /// A sending IP of the node (repeat for more); this machine's non-loopback addresses by default.
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// A label KEY=VALUE (repeat for more).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// A TOML file with any of the settings below (keys as the flags, with underscores).
    #[arg(long, env = "MAILOPS_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: RunSettings,
}

/// The settings of `run`, each optional until merged with the file and the defaults.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Where node.key (from `enroll`) and the spool are [default: /var/lib/mailops-agent].
    #[arg(long, env = "MAILOPS_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// mailops's address; the one given to `enroll` by default.
    #[arg(long, env = "MAILOPS_AGENT_SERVER")]
    pub server: Option<String>,
    /// How often to collect and push (1s–1h, e.g. 15s); mailops's pushIntervalSeconds by default.
    #[arg(long, env = "MAILOPS_AGENT_PUSH_INTERVAL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration_text")]
    pub push_interval: Option<Duration>,
    /// Where to write the node's IPs as JSON whenever mailops changes them.
    #[arg(long, env = "MAILOPS_AGENT_POOL_FILE")]
    pub pool_file: Option<PathBuf>,
    /// Where to write ZoneMTA's `pools` (TOML) with the ACTIVE and WARMING IPs.
    #[arg(long, env = "MAILOPS_AGENT_ZONEMTA_POOLS_FILE")]
    pub zonemta_pools_file: Option<PathBuf>,
    /// A shell command run after the files are written (e.g. `systemctl reload zone-mta`).
    #[arg(long, env = "MAILOPS_AGENT_RELOAD_COMMAND")]
    pub reload_command: Option<String>,
    /// A Redis to read INFO from, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "MAILOPS_AGENT_REDIS")]
    pub redis: Option<String>,
    /// A Prometheus exporter to scrape each interval, e.g. http://127.0.0.1:9100/metrics
    /// (repeat, or comma-separate in the variable); its series are mapped to mailops's names.
    #[arg(long = "scrape", value_name = "URL", env = "MAILOPS_AGENT_SCRAPE", value_delimiter = ',', value_parser = parse_scrape_url)]
    #[serde(default)]
    pub scrape: Vec<String>,
    /// Leave out the built-in system collector (when node_exporter is scraped instead).
    #[arg(long, env = "MAILOPS_AGENT_NO_SYSTEM")]
    #[serde(default)]
    pub no_system: bool,
    /// Rspamd's controller, e.g. http://127.0.0.1:11334: its /stat is read each interval.
    #[arg(long, env = "MAILOPS_AGENT_RSPAMD", value_parser = parse_scrape_url)]
    pub rspamd: Option<String>,
    /// The controller's password, when the agent's address is not one of its secure_ip.
    #[arg(long, env = "MAILOPS_AGENT_RSPAMD_PASSWORD", hide_env_values = true)]
    pub rspamd_password: Option<String>,
    /// ZoneMTA's API, e.g. http://127.0.0.1:12080: its queues per zone are read each interval.
    #[arg(long, env = "MAILOPS_AGENT_ZONEMTA_API", value_parser = parse_scrape_url)]
    pub zonemta_api: Option<String>,
    /// The Redis where ZoneMTA's delivery-counters plugin counts, e.g. redis://127.0.0.1:6379/2.
    #[arg(long, env = "MAILOPS_AGENT_ZONEMTA_COUNTERS_REDIS")]
    pub zonemta_counters_redis: Option<String>,
    /// That plugin's `prefix` setting (none by default).
    #[arg(long, env = "MAILOPS_AGENT_ZONEMTA_COUNTERS_PREFIX")]
    pub zonemta_counters_prefix: Option<String>,
    /// Where to take mail events as JSON (`POST /events`), e.g. 127.0.0.1:9725; no
    /// authentication, so keep it on loopback.
    #[arg(long, env = "MAILOPS_AGENT_EVENTS_LISTEN")]
    pub events_listen: Option<std::net::SocketAddr>,
    /// Where to receive ZoneMTA's UDP delivery log (its `log.remote`), e.g. 127.0.0.1:31239.
    #[arg(long, env = "MAILOPS_AGENT_ZONEMTA_LOG_LISTEN")]
    pub zonemta_log_listen: Option<std::net::SocketAddr>,
    /// The most the spool keeps on disk (bytes, 1 MiB–10 GiB) [default: 64 MiB]; the oldest batches go first.
    #[arg(long, env = "MAILOPS_AGENT_SPOOL_MAX_BYTES", value_parser = clap::value_parser!(u64).range(1 << 20..=10 << 30))]
    pub spool_max_bytes: Option<u64>,
    /// The oldest batch the spool keeps (1m–7d) [default: 24h]: keep it below mailops's
    /// MAILOPS_METRICS_RAW_RETENTION, which refuses older samples.
    #[arg(long, env = "MAILOPS_AGENT_SPOOL_MAX_AGE", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration_text")]
    pub spool_max_age: Option<Duration>,
}

/// `run`'s settings after merging.
#[derive(Clone, Debug)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub server: Option<String>,
    pub push_interval: Option<Duration>,
    pub pool_file: Option<PathBuf>,
    pub zonemta_pools_file: Option<PathBuf>,
    pub reload_command: Option<String>,
    pub redis: Option<String>,
    pub scrape: Vec<String>,
    pub system: bool,
    pub rspamd: Option<String>,
    pub rspamd_password: Option<String>,
    pub zonemta_api: Option<String>,
    pub zonemta_counters_redis: Option<String>,
    pub zonemta_counters_prefix: Option<String>,
    pub events_listen: Option<std::net::SocketAddr>,
    pub zonemta_log_listen: Option<std::net::SocketAddr>,
    pub spool_max_bytes: u64,
    pub spool_max_age: Duration,
}

impl RunArgs {
    pub fn settings(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--config {}: cannot read it", path.display()))?;
                let file: RunSettings = toml::from_str(&text)
                    .with_context(|| format!("--config {}", path.display()))?;
                file.check()
                    .with_context(|| format!("--config {}", path.display()))?;
                file
            }
            None => RunSettings::default(),
        };
        let given = self.settings;
        Ok(Settings {
            state_dir: given
                .state_dir
                .or(file.state_dir)
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            server: given.server.or(file.server),
            push_interval: given.push_interval.or(file.push_interval),
            pool_file: given.pool_file.or(file.pool_file),
            zonemta_pools_file: given.zonemta_pools_file.or(file.zonemta_pools_file),
            reload_command: given.reload_command.or(file.reload_command),
            redis: given.redis.or(file.redis),
            scrape: if given.scrape.is_empty() {
                file.scrape
            } else {
                given.scrape
            },
            system: !(given.no_system || file.no_system),
            rspamd: given.rspamd.or(file.rspamd),
            rspamd_password: given.rspamd_password.or(file.rspamd_password),
            zonemta_api: given.zonemta_api.or(file.zonemta_api),
            zonemta_counters_redis: given.zonemta_counters_redis.or(file.zonemta_counters_redis),
            zonemta_counters_prefix: given
                .zonemta_counters_prefix
                .or(file.zonemta_counters_prefix),
            events_listen: given.events_listen.or(file.events_listen),
            zonemta_log_listen: given.zonemta_log_listen.or(file.zonemta_log_listen),
            spool_max_bytes: given
                .spool_max_bytes
                .or(file.spool_max_bytes)
                .unwrap_or(64 << 20),
            spool_max_age: given
                .spool_max_age
                .or(file.spool_max_age)
                .unwrap_or(Duration::from_secs(24 * 3600)),
        })
    }
}

impl RunSettings {
    /// The checks clap makes on flags, made on the file's values.
    fn check(&self) -> anyhow::Result<()> {
        if let Some(interval) = self.push_interval {
            check_push_interval(interval).context("push_interval")?;
        }
        if let Some(age) = self.spool_max_age {
            check_spool_age(age).context("spool_max_age")?;
        }
        if let Some(url) = &self.rspamd {
            parse_scrape_url(url).map_err(|e| anyhow::anyhow!("rspamd: {e}"))?;
        }
        for url in &self.scrape {
            parse_scrape_url(url).map_err(|e| anyhow::anyhow!("scrape: {e}"))?;
        }
        if let Some(url) = &self.zonemta_api {
            parse_scrape_url(url).map_err(|e| anyhow::anyhow!("zonemta_api: {e}"))?;
        }
        if let Some(bytes) = self.spool_max_bytes
            && !(1 << 20..=10 << 30).contains(&bytes)
        {
            bail!("spool_max_bytes: {bytes} is not in 1048576..=10737418240");
        }
        Ok(())
    }
}

fn check_push_interval(interval: Duration) -> anyhow::Result<()> {
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&interval) {
        bail!("must be between 1s and 1h");
    }
    Ok(())
}

fn check_spool_age(age: Duration) -> anyhow::Result<()> {
    if !(Duration::from_secs(60)..=Duration::from_secs(7 * 86400)).contains(&age) {
        bail!("must be between 1m and 7d");
    }
    Ok(())
}

/// `500ms`, `15s`, `5m`, `2h`, `1d`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 15s, 5m or 2h"))?;
    let per_unit = match unit {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (ms, s, m, h or d)"
            ));
        }
    };
    let duration = Duration::from_millis(number.saturating_mul(per_unit));
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn parse_scrape_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if (text.starts_with("http://") || text.starts_with("https://")) && text.len() > 8 {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not an http:// or https:// address"))
    }
}

fn parse_role(text: &str) -> Result<String, String> {
    let role = text.trim().to_ascii_uppercase();
    if ROLES.contains(&role.as_str()) {
        Ok(role)
    } else {
        Err(format!(
            "{text:?} is not a role; one of {}",
            ROLES.join(", ")
        ))
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

impl Settings {
    /// What `run` collects from.
    pub fn sources(&self) -> crate::collect::Sources {
        crate::collect::Sources {
            system: self.system,
            redis: self.redis.clone(),
            scrape: self.scrape.clone(),
            rspamd: self.rspamd.clone(),
            rspamd_password: self.rspamd_password.clone(),
            zonemta_api: self.zonemta_api.clone(),
            zonemta_counters_redis: self.zonemta_counters_redis.clone(),
            zonemta_counters_prefix: self.zonemta_counters_prefix.clone(),
        }
    }

    /// The push interval after the flags: checked here because mailops's value may be
    /// used instead.
    pub fn checked(self) -> anyhow::Result<Self> {
        if let Some(interval) = self.push_interval {
            check_push_interval(interval).context("--push-interval")?;
        }
        check_spool_age(self.spool_max_age).context("--spool-max-age")?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("15 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "server = \"http://file:8080\"\npush_interval = \"30s\"\nredis = \"redis://file\"\n",
        )
        .unwrap();
        let args = RunArgs {
            config: Some(file.clone()),
            settings: RunSettings {
                redis: Some("redis://flag".into()),
                ..RunSettings::default()
            },
        };
        let settings = args.settings().unwrap();
        assert_eq!(settings.server.as_deref(), Some("http://file:8080"));
        assert_eq!(settings.redis.as_deref(), Some("redis://flag"));
        assert_eq!(settings.push_interval, Some(Duration::from_secs(30)));
        assert_eq!(settings.spool_max_bytes, 64 << 20);

        std::fs::write(&file, "sever = \"typo\"\n").unwrap();
        let error = RunArgs {
            config: Some(file.clone()),
            settings: RunSettings::default(),
        }
        .settings()
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("unknown field `sever`"),
            "{error:#}"
        );
        std::fs::write(&file, "push_interval = \"2d\"\n").unwrap();
        let error = RunArgs {
            config: Some(file),
            settings: RunSettings::default(),
        }
        .settings()
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("between 1s and 1h"),
            "{error:#}"
        );
    }

    #[test]
    fn bad_flags_are_refused_with_their_name() {
        let error = Cli::try_parse_from([
            "mailops-agent",
            "enroll",
            "--server",
            "x",
            "--enrollment-key",
            "k",
            "--roles",
            "MTA,SMTP",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("--roles") && error.contains("not a role"),
            "{error}"
        );
        let error = Cli::try_parse_from(["mailops-agent", "run", "--push-interval", "fast"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--push-interval"), "{error}");
        let error = Cli::try_parse_from([
            "mailops-agent",
            "enroll",
            "--server",
            "x",
            "--enrollment-key",
            "k",
            "--ip",
            "300.1.1.1",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("--ip"), "{error}");
        let error =
            Cli::try_parse_from(["mailops-agent", "run", "--zonemta-api", "127.0.0.1:12080"])
                .unwrap_err()
                .to_string();
        assert!(error.contains("--zonemta-api"), "{error}");
    }

    #[test]
    fn zonemta_sources_come_from_flags_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "zonemta_api = \"http://127.0.0.1:12080\"\nzonemta_counters_redis = \"redis://127.0.0.1:6379/2\"\nzonemta_counters_prefix = \"zmta\"\n",
        )
        .unwrap();
        let sources = RunArgs {
            config: Some(file.clone()),
            settings: RunSettings::default(),
        }
        .settings()
        .unwrap()
        .sources();
        assert_eq!(
            sources.zonemta_api.as_deref(),
            Some("http://127.0.0.1:12080")
        );
        assert_eq!(
            sources.zonemta_counters_redis.as_deref(),
            Some("redis://127.0.0.1:6379/2")
        );
        assert_eq!(sources.zonemta_counters_prefix.as_deref(), Some("zmta"));
        std::fs::write(&file, "zonemta_api = \"localhost\"\n").unwrap();
        let error = RunArgs {
            config: Some(file),
            settings: RunSettings::default(),
        }
        .settings()
        .unwrap_err();
        assert!(format!("{error:#}").contains("zonemta_api"), "{error:#}");
    }
}
