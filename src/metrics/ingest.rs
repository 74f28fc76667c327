//! Batch ingestion: validate everything first, then store the batch in one transaction
//! that also records it by id, so a retry is answered from that record.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration as ChronoDuration, Utc};
use sha2::Digest;
use uuid::Uuid;

use crate::{
    auth::AgentNode,
    db::batch::{self, Admission, BatchRecord, Outcome},
    error::{AppError, AppResult},
    nodes::Label,
    realtime::{Event, MetricsIngested, SeriesReading},
    state::AppState,
};

use super::{
    catalog,
    model::{MetricBatchInput, MetricSampleInput},
    store::{self, samples::Sample, series::NewSeries},
};

pub const MAX_SAMPLES: usize = 10_000;
pub const MAX_LABELS: usize = 16;
const MAX_LABEL_VALUE_BYTES: usize = 128;
const MAX_FUTURE: ChronoDuration = ChronoDuration::minutes(5);
/// Names listed in the event of one batch at most.
const MAX_EVENT_NAMES: usize = 64;
/// Series whose newest sample the event of one batch carries at most.
const MAX_EVENT_READINGS: usize = 256;

/// A series as a batch names it.
struct SeriesKey {
    name: String,
    labels: BTreeMap<String, String>,
    labels_key: String,
}

fn invalid(index: usize, field: &str, reason: impl Into<String>) -> AppError {
    AppError::bad_input(format!("batch.samples[{index}].{field}"), reason)
}

fn valid_label_key(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `k=v` pairs sorted by key, with `\`, `,` and `=` escaped so that no two label sets
/// give the same text.
fn labels_key(labels: &BTreeMap<String, String>) -> String {
    let escape = |text: &str| {
        text.replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace('=', "\\=")
    };
    labels
        .iter()
        .map(|(k, v)| format!("{k}={}", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The series a sample names, checked: a catalog name with exactly its labels, or a
/// custom name with well-formed labels.
fn check_series(index: usize, sample: &MetricSampleInput) -> AppResult<SeriesKey> {
    let def = catalog::find(&sample.name);
    if def.is_none() && !catalog::is_valid_name(&sample.name) {
        return Err(invalid(
            index,
            "name",
            "is neither a catalog name nor a custom name matching ^[a-z][a-z0-9_.]{0,127}$",
        ));
    }
    if sample.labels.len() > MAX_LABELS {
        return Err(invalid(
            index,
            "labels",
            format!("{} labels; at most {MAX_LABELS}", sample.labels.len()),
        ));
    }
    let mut labels = BTreeMap::new();
    for label in &sample.labels {
        if !valid_label_key(&label.key) {
            return Err(invalid(
                index,
                "labels",
                format!(
                    "key '{}' does not match ^[a-z_][a-z0-9_]{{0,63}}$",
                    label.key.chars().take(64).collect::<String>()
                ),
            ));
        }
        if label.value.len() > MAX_LABEL_VALUE_BYTES {
            return Err(invalid(
                index,
                "labels",
                format!(
                    "value of '{}' is longer than {MAX_LABEL_VALUE_BYTES} bytes",
                    label.key
                ),
            ));
        }
        if labels
            .insert(label.key.clone(), label.value.clone())
            .is_some()
        {
            return Err(invalid(
                index,
                "labels",
                format!("'{}' is given twice", label.key),
            ));
        }
    }
    if let Some(def) = def {
        let expected: Vec<&str> = {
            let mut keys = def.labels.to_vec();
            keys.sort_unstable();
            keys
        };
        if labels
            .keys()
            .map(String::as_str)
            .ne(expected.iter().copied())
        {
            return Err(invalid(
                index,
                "labels",
                format!(
                    "{} carries exactly the labels [{}]",
                    def.name,
                    def.labels.join(", ")
                ),
            ));
        }
    }
    let labels_key = labels_key(&labels);
    Ok(SeriesKey {
        name: sample.name.clone(),
        labels,
        labels_key,
    })
}

fn check_reading(
    index: usize,
    sample: &MetricSampleInput,
    oldest: chrono::DateTime<Utc>,
    newest: chrono::DateTime<Utc>,
) -> AppResult<()> {
    if !sample.value.is_finite() {
        return Err(invalid(index, "value", "must be a finite number"));
    }
    if sample.ts > newest {
        return Err(invalid(index, "ts", "is more than 5 minutes in the future"));
    }
    if sample.ts < oldest {
        return Err(invalid(index, "ts", "is older than the raw retention"));
    }
    Ok(())
}

/// How long an acknowledgement waits for its event to reach Redis.
const CONFIRM_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The event subscribers get for a batch: its names and the newest reading of each series.
fn ingested_event(
    agent: &AgentNode,
    batch_id: &str,
    accepted: i32,
    series: &HashMap<Uuid, SeriesKey>,
    samples: &[Sample],
) -> Event {
    let mut names: Vec<String> = series.values().map(|k| k.name.clone()).collect();
    names.sort_unstable();
    names.dedup();
    names.truncate(MAX_EVENT_NAMES);
    let mut newest: HashMap<Uuid, Sample> = HashMap::with_capacity(series.len());
    for sample in samples {
        newest
            .entry(sample.series_id)
            .and_modify(|kept| {
                if sample.ts >= kept.ts {
                    *kept = *sample;
                }
            })
            .or_insert(*sample);
    }
    let mut readings: Vec<SeriesReading> = newest
        .values()
        .filter_map(|sample| {
            let key = series.get(&sample.series_id)?;
            Some(SeriesReading {
                name: key.name.clone(),
                labels: key.labels.clone(),
                ts: chrono::DateTime::from_timestamp_millis(sample.ts)?,
                value: sample.value,
            })
        })
        .collect();
    readings.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
    readings.truncate(MAX_EVENT_READINGS);
    Event::MetricsIngested(MetricsIngested {
        node_id: agent.node_id,
        hostname: agent.hostname.clone(),
        batch_id: batch_id.to_owned(),
        samples: accepted,
        names,
        readings,
    })
}

/// Stores a batch for the agent's node (`Admission::Live` for agents, `Backfill` for the
/// seed). Nothing is written unless every sample is
/// valid; a batch id seen before is answered from its record (or refused when its
/// content differs); success is answered only after the commit.
pub async fn store_batch(
    state: &AppState,
    agent: &AgentNode,
    batch: &MetricBatchInput,
    admission: Admission,
) -> AppResult<Outcome> {
    let mut record = BatchRecord::start(store::BATCHES, agent.node_id, &batch.batch_id)?;
    batch::check_size("samples", batch.samples.len(), MAX_SAMPLES)?;
    let now = record.received_at();
    let (raw_oldest, oldest) = batch::oldest_allowed(
        now,
        admission,
        state.config.metrics.raw_retention,
        state.config.metrics.hour_retention,
    )?;
    let newest = now + MAX_FUTURE;

    // A batch names few series many times over, so each (name, labels) as written is
    // checked and turned into a series id once.
    let mut series: HashMap<Uuid, SeriesKey> = HashMap::new();
    let mut series_of: HashMap<(&str, &[Label]), Uuid> = HashMap::new();
    let mut samples = Vec::with_capacity(batch.samples.len());
    for (index, input) in batch.samples.iter().enumerate() {
        let series_id = match series_of.get(&(input.name.as_str(), input.labels.as_slice())) {
            Some(id) => *id,
            None => {
                let key = check_series(index, input)?;
                let id = Uuid::new_v5(
                    &agent.node_id,
                    format!("{}\n{}", key.name, key.labels_key).as_bytes(),
                );
                series_of.insert((input.name.as_str(), input.labels.as_slice()), id);
                series.entry(id).or_insert(key);
                id
            }
        };
        check_reading(index, input, oldest, newest)?;
        let ts = input.ts.timestamp_millis();
        let hash = record.content();
        hash.update(series_id.as_bytes());
        hash.update(ts.to_be_bytes());
        hash.update(input.value.to_bits().to_be_bytes());
        samples.push(Sample {
            series_id,
            ts,
            value: input.value,
        });
    }
    let accepted = samples.len() as i32;
    let txn = match record.begin(&state.db, accepted).await? {
        Ok(txn) => txn,
        Err(earlier) => {
            // Stored before, perhaps by an instance that stopped before telling anyone:
            // subscribers hear of it again, so they hear of every batch at least once.
            let event = ingested_event(agent, &batch.batch_id, accepted, &series, &samples);
            state.events.publish_confirmed(event, CONFIRM_WITHIN).await;
            return Ok(earlier);
        }
    };

    let new_series = series
        .iter()
        .map(|(id, key)| NewSeries {
            id: *id,
            name: key.name.clone(),
            labels: serde_json::to_value(&key.labels).unwrap_or_default(),
            labels_key: key.labels_key.clone(),
        })
        .collect();
    store::series::insert_missing(&txn, agent.node_id, new_series, now).await?;
    let raw_oldest_ms = raw_oldest.timestamp_millis();
    let (raw, past_raw_retention): (Vec<Sample>, Vec<Sample>) =
        samples.iter().copied().partition(|s| s.ts >= raw_oldest_ms);
    let mut for_rollups = store::samples::insert_samples(&txn, &raw).await?;
    for_rollups.extend(past_raw_retention);
    store::samples::update_rollups(&txn, &for_rollups).await?;
    let (_, status_event) = crate::nodes::record_contact(&txn, agent.node_id, None).await?;
    txn.commit().await?;

    state.events.publish_all(status_event);
    let event = ingested_event(agent, &batch.batch_id, accepted, &series, &samples);
    state.events.publish_confirmed(event, CONFIRM_WITHIN).await;
    Ok(Outcome {
        accepted,
        duplicate: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_cannot_collide_through_separators() {
        let a = BTreeMap::from([("a".to_string(), "1,b=2".to_string())]);
        let b = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]);
        assert_ne!(labels_key(&a), labels_key(&b));
    }
}
