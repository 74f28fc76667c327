//! The Prometheus text exposition format (what exporters serve on `/metrics`), read with
//! the `prometheus-parse` crate into [`Series`].

use crate::{Labels, MapError, Series};

/// The series of one scrape; samples without their own timestamp get `at_ms`. Histogram
/// buckets come back as `<name>_bucket{le=…}` and summary quantiles as `<name>{quantile=…}`,
/// as the exporter wrote them.
pub fn parse_text(text: &str, at_ms: i64) -> Result<Vec<Series>, MapError> {
    let at = chrono::DateTime::from_timestamp_millis(at_ms)
        .ok_or_else(|| MapError(format!("{at_ms} is not a time")))?;
    let scrape = prometheus_parse::Scrape::parse_at(text.lines().map(|l| Ok(l.to_owned())), at)
        .map_err(|e| MapError(format!("not the Prometheus text format: {e}")))?;
    let mut series = Vec::with_capacity(scrape.samples.len());
    for sample in scrape.samples {
        let ts = sample.timestamp.timestamp_millis();
        let labels: Labels = sample
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let one = |name: String, labels: Labels, value: f64| Series {
            name,
            labels,
            samples: vec![(ts, value)],
        };
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => series.push(one(sample.metric, labels, v)),
            prometheus_parse::Value::Histogram(buckets) => {
                for bucket in buckets {
                    let mut labels = labels.clone();
                    labels.insert("le".into(), bound(bucket.less_than));
                    series.push(one(
                        format!("{}_bucket", sample.metric),
                        labels,
                        bucket.count,
                    ));
                }
            }
            prometheus_parse::Value::Summary(quantiles) => {
                for quantile in quantiles {
                    let mut labels = labels.clone();
                    labels.insert("quantile".into(), bound(quantile.quantile));
                    series.push(one(sample.metric.clone(), labels, quantile.count));
                }
            }
        }
    }
    Ok(series)
}

fn bound(value: f64) -> String {
    if value.is_infinite() && value > 0.0 {
        "+Inf".into()
    } else {
        value.to_string()
    }
}
