//! Scraping local Prometheus exporters (`--scrape URL`): the text exposition read and
//! mapped to mailops's names with the same mapping mailops's remote-write endpoint uses.

use std::time::Duration;

use chrono::{DateTime, Utc};
use exporters::{Mapper, parse_text};

use super::Sample;

/// The largest exposition read from one target.
const MAX_BODY_BYTES: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

/// One exporter and what its mapping remembers between scrapes (CPU totals).
struct Target {
    url: String,
    mapper: Mapper,
}

pub struct Scraper {
    http: reqwest::Client,
    targets: Vec<Target>,
}

impl Scraper {
    pub fn new(urls: &[String]) -> anyhow::Result<Scraper> {
        Ok(Scraper {
            http: reqwest::Client::builder().timeout(TIMEOUT).build()?,
            targets: urls
                .iter()
                .map(|url| Target {
                    url: url.clone(),
                    mapper: Mapper::new(),
                })
                .collect(),
        })
    }

    /// Every target once; a target that does not answer is logged and left out.
    pub async fn collect(&mut self, now: DateTime<Utc>) -> Vec<Sample> {
        let mut samples = Vec::new();
        for target in &mut self.targets {
            match scrape(&self.http, target, now).await {
                Ok(mut scraped) => samples.append(&mut scraped),
                Err(e) => {
                    tracing::warn!(target = %target.url, error = format!("{e:#}"), "scrape failed; its metrics are left out")
                }
            }
        }
        samples
    }
}

async fn scrape(
    http: &reqwest::Client,
    target: &mut Target,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Sample>> {
    let response = http
        .get(&target.url)
        .header("Accept", "text/plain;version=0.0.4")
        .send()
        .await?
        .error_for_status()?;
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_BODY_BYTES)
    {
        anyhow::bail!("the exposition is larger than {MAX_BODY_BYTES} bytes");
    }
    let text = response.text().await?;
    if text.len() > MAX_BODY_BYTES {
        anyhow::bail!("the exposition is larger than {MAX_BODY_BYTES} bytes");
    }
    let mapped = target
        .mapper
        .map(parse_text(&text, now.timestamp_millis())?)?;
    if mapped.skipped_values > 0 {
        tracing::debug!(target = %target.url, skipped = mapped.skipped_values, "values that are not numbers left out");
    }
    Ok(mapped
        .samples
        .into_iter()
        .filter_map(|s| {
            Some(Sample {
                ts: DateTime::from_timestamp_millis(s.ts_ms)?,
                name: s.name,
                labels: s.labels,
                value: s.value,
            })
        })
        .collect())
}
