//! What the agent measures, as samples named the way mailops's `metricCatalog` names them.

mod redis_info;
mod rspamd;
mod scrape;
mod system;
mod zonemta;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use redis_info::{parse_info, read_info};
pub use rspamd::{RspamdStat, parse_stat as parse_rspamd_stat};
pub use scrape::Scraper;
pub use system::{System, sending_addresses};
pub use zonemta::{ZoneMtaApi, ZoneMtaCounters};

/// One measurement, as `ingestMetrics` takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub ts: DateTime<Utc>,
    pub value: f64,
}

impl Sample {
    pub fn new(name: &str, ts: DateTime<Utc>, value: f64) -> Sample {
        Sample {
            name: name.to_string(),
            labels: BTreeMap::new(),
            ts,
            value,
        }
    }

    pub fn labelled(name: &str, label: (&str, &str), ts: DateTime<Utc>, value: f64) -> Sample {
        let mut sample = Sample::new(name, ts, value);
        sample.labels.insert(label.0.into(), label.1.into());
        sample
    }
}

/// Everything the agent collects each push interval.
pub struct Collectors {
    system: Option<System>,
    redis: Option<redis::Client>,
    scraper: Scraper,
    rspamd: Option<RspamdStat>,
    zonemta_api: Option<ZoneMtaApi>,
    zonemta_counters: Option<ZoneMtaCounters>,
}

/// What to collect from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The built-in system collector.
    pub system: bool,
    pub redis: Option<String>,
    pub scrape: Vec<String>,
    /// Rspamd's controller address, and its password.
    pub rspamd: Option<String>,
    pub rspamd_password: Option<String>,
    /// ZoneMTA's API address.
    pub zonemta_api: Option<String>,
    /// The Redis of ZoneMTA's delivery-counters plugin, and the plugin's `prefix`.
    pub zonemta_counters_redis: Option<String>,
    pub zonemta_counters_prefix: Option<String>,
}

impl Collectors {
    pub fn new(sources: &Sources) -> anyhow::Result<Collectors> {
        let redis_url = sources.redis.as_deref();
        let redis = redis_url
            .map(|url| {
                redis::Client::open(url).map_err(|e| anyhow::anyhow!("--redis {url:?}: {e}"))
            })
            .transpose()?;
        Ok(Collectors {
            system: sources.system.then(System::new),
            redis,
            scraper: Scraper::new(&sources.scrape)?,
            rspamd: sources
                .rspamd
                .as_deref()
                .map(|url| RspamdStat::new(url, sources.rspamd_password.clone()))
                .transpose()?,
            zonemta_api: sources
                .zonemta_api
                .as_deref()
                .map(ZoneMtaApi::new)
                .transpose()?,
            zonemta_counters: sources
                .zonemta_counters_redis
                .as_deref()
                .map(|url| ZoneMtaCounters::new(url, sources.zonemta_counters_prefix.as_deref()))
                .transpose()?,
        })
    }

    /// One collection. A Redis or an exporter that does not answer is logged and left out.
    pub async fn collect(&mut self) -> Vec<Sample> {
        let now = Utc::now();
        let mut samples = match &mut self.system {
            Some(system) => system.collect(now),
            None => Vec::new(),
        };
        samples.extend(self.scraper.collect(now).await);
        if let Some(rspamd) = &self.rspamd {
            match rspamd.collect(now).await {
                Ok(mut stat) => samples.append(&mut stat),
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "Rspamd /stat failed; Rspamd metrics left out"
                ),
            }
        }
        if let Some(api) = &self.zonemta_api {
            match tokio::time::timeout(Duration::from_secs(10), api.collect(now)).await {
                Ok(Ok(mut queues)) => samples.append(&mut queues),
                Ok(Err(e)) => tracing::warn!(
                    error = format!("{e:#}"),
                    "ZoneMTA API failed; ZoneMTA queue metrics left out"
                ),
                Err(_) => tracing::warn!("ZoneMTA API took over 10 s; queue metrics left out"),
            }
        }
        if let Some(counters) = &self.zonemta_counters {
            match tokio::time::timeout(Duration::from_secs(5), counters.collect(now)).await {
                Ok(Ok(mut counted)) => samples.append(&mut counted),
                Ok(Err(e)) => tracing::warn!(
                    error = format!("{e:#}"),
                    "ZoneMTA's Redis counters failed; left out"
                ),
                Err(_) => tracing::warn!("ZoneMTA's Redis counters took over 5 s; left out"),
            }
        }
        if let Some(client) = &self.redis {
            match tokio::time::timeout(Duration::from_secs(5), read_info(client)).await {
                Ok(Ok(info)) => samples.extend(parse_info(&info, now)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Redis INFO failed; Redis metrics left out")
                }
                Err(_) => tracing::warn!("Redis INFO took over 5 s; Redis metrics left out"),
            }
        }
        samples
    }
}
