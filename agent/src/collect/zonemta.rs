//! ZoneMTA's queue and delivery counters, for nodes whose ZoneMTA is not scraped:
//!
//! - its HTTP API (`api` in ZoneMTA's configuration, 127.0.0.1:12080 by default):
//!   `GET /zones` lists the enabled zones, `GET /counter/zone/<zone>` answers
//!   `{"zone": …, "active": n, "deferred": n}` → `zonemta.queue.active{zone}` and
//!   `zonemta.queue.deferred{zone}`;
//! - the Redis counters of its delivery-counters plugin (zonemta-delivery-counters, which
//!   zone-mta-template installs): `<prefix>_delivered_<zone>` and `<prefix>_bounced_<zone>`
//!   (no `<prefix>_` without a prefix), incremented on every released message →
//!   `zonemta.delivered{zone}` and `zonemta.bounced{zone}`. Its per-day keys (`…^YYYY/MM/DD`)
//!   and totals without a zone are not read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Sample;

/// The most zones read per collection: a bound on requests and on samples.
pub const MAX_ZONES: usize = 1_000;

pub struct ZoneMtaApi {
    http: reqwest::Client,
    base: reqwest::Url,
}

#[derive(Deserialize)]
struct Zone {
    name: String,
}

#[derive(Deserialize)]
struct Counter {
    active: f64,
    deferred: f64,
}

impl ZoneMtaApi {
    /// `api` is ZoneMTA's API address, e.g. http://127.0.0.1:12080.
    pub fn new(api: &str) -> anyhow::Result<ZoneMtaApi> {
        let base =
            reqwest::Url::parse(api).map_err(|e| anyhow::anyhow!("--zonemta-api {api:?}: {e}"))?;
        if base.cannot_be_a_base() {
            anyhow::bail!("--zonemta-api {api:?}: not an http:// address");
        }
        Ok(ZoneMtaApi {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            base,
        })
    }

    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub async fn collect(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<Sample>> {
        let zones: Vec<Zone> = self
            .http
            .get(self.url(&["zones"]))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if zones.len() > MAX_ZONES {
            anyhow::bail!("{} zones; the agent reads at most {MAX_ZONES}", zones.len());
        }
        let mut samples = Vec::with_capacity(zones.len() * 2);
        for zone in zones {
            let counter: Counter = self
                .http
                .get(self.url(&["counter", "zone", &zone.name]))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let label = ("zone", zone.name.as_str());
            samples.push(Sample::labelled(
                "zonemta.queue.active",
                label,
                now,
                counter.active,
            ));
            samples.push(Sample::labelled(
                "zonemta.queue.deferred",
                label,
                now,
                counter.deferred,
            ));
        }
        Ok(samples)
    }
}

pub struct ZoneMtaCounters {
    client: redis::Client,
    /// The plugin's `prefix` with its `_`, or nothing.
    key_prefix: String,
}

impl ZoneMtaCounters {
    /// `redis` is the Redis the plugin writes to (its `redis` setting, else ZoneMTA's own);
    /// `prefix` its `prefix` setting.
    pub fn new(redis: &str, prefix: Option<&str>) -> anyhow::Result<ZoneMtaCounters> {
        let client = redis::Client::open(redis)
            .map_err(|e| anyhow::anyhow!("--zonemta-counters-redis {redis:?}: {e}"))?;
        Ok(ZoneMtaCounters {
            client,
            key_prefix: prefix
                .filter(|p| !p.is_empty())
                .map(|p| format!("{p}_"))
                .unwrap_or_default(),
        })
    }

    pub async fn collect(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<Sample>> {
        let mut connection = self.client.get_multiplexed_async_connection().await?;
        let mut samples = Vec::new();
        for (counter, name) in [
            ("delivered", "zonemta.delivered"),
            ("bounced", "zonemta.bounced"),
        ] {
            let start = format!("{}{counter}_", self.key_prefix);
            let keys = zone_keys(&mut connection, &start).await?;
            if keys.is_empty() {
                continue;
            }
            let values: Vec<Option<f64>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut connection)
                .await?;
            for (key, value) in keys.iter().zip(values) {
                if let Some(value) = value {
                    samples.push(Sample::labelled(
                        name,
                        ("zone", &key[start.len()..]),
                        now,
                        value,
                    ));
                }
            }
        }
        Ok(samples)
    }
}

/// The keys `<start><zone>` without a day suffix, sorted, at most [`MAX_ZONES`].
async fn zone_keys(
    connection: &mut redis::aio::MultiplexedConnection,
    start: &str,
) -> anyhow::Result<Vec<String>> {
    let pattern = format!("{}*", glob_escape(start));
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        keys.extend(
            batch
                .into_iter()
                .filter(|key| key.len() > start.len() && !key.contains('^')),
        );
        if keys.len() > MAX_ZONES {
            anyhow::bail!("over {MAX_ZONES} zones under {start}*");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// `text` as a Redis glob that matches only itself.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_only_the_prefix() {
        assert_eq!(glob_escape("zmta_delivered_"), "zmta_delivered_");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn api_paths_escape_the_zone() {
        let api = ZoneMtaApi::new("http://127.0.0.1:12080/").unwrap();
        assert_eq!(
            api.url(&["counter", "zone", "bulk mail/x"]).as_str(),
            "http://127.0.0.1:12080/counter/zone/bulk%20mail%2Fx"
        );
        assert!(ZoneMtaApi::new("mailto:x").is_err());
    }
}
