//! The spool: every batch is written to disk and fsynced before it is first sent, and
//! removed only once mailops has acknowledged it, so nothing collected is lost when the
//! agent, the machine or mailops stops. Bounded in bytes and age: when full, the oldest
//! batches go first, and every one that goes is counted (`agent.spool.dropped_batches`).
//!
//! One file per batch, `<sequence>-<created ms>.json`, written atomically (temporary file,
//! fsync, rename, directory fsync). Batches are sent in sequence order.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{collect::Sample, files};

/// A batch as mailops receives it; its id is fixed when it is spooled, so every resend
/// is recognised as the same batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    pub batch_id: String,
    pub created_at: DateTime<Utc>,
    /// Metric samples (`ingestMetrics`)…
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
    /// …or mail events (`ingestMailEvents`), as mailops's `MailEventInput`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<serde_json::Value>,
}

impl Batch {
    pub fn new(samples: Vec<Sample>) -> Batch {
        Batch {
            batch_id: uuid::Uuid::now_v7().simple().to_string(),
            created_at: Utc::now(),
            samples,
            events: Vec::new(),
        }
    }

    pub fn of_events(events: Vec<serde_json::Value>) -> Batch {
        Batch {
            events,
            ..Batch::new(Vec::new())
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    sequence: u64,
    created_ms: i64,
    bytes: u64,
}

/// What the spool has counted since it was created (kept in `counters.json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Batches dropped unsent because the spool was full or they were too old.
    pub dropped: u64,
    /// Batches mailops refused for their content (they cannot succeed when sent again).
    pub rejected: u64,
}

/// How full the spool is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub batches: usize,
    pub bytes: u64,
}

struct Inner {
    entries: VecDeque<Entry>,
    bytes: u64,
    next_sequence: u64,
    counters: Counters,
}

#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    inner: Arc<Mutex<Inner>>,
    added: Arc<tokio::sync::Notify>,
}

const COUNTERS: &str = "counters.json";

impl Spool {
    /// Opens (creating) the spool in `dir`, with what an earlier run left there.
    pub fn open(dir: &Path, max_bytes: u64, max_age: Duration) -> anyhow::Result<Spool> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the spool {}", dir.display()))?;
        let mut entries = Vec::new();
        let mut bytes = 0;
        for item in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A write that a crash interrupted: its batch was never sent.
                let _ = std::fs::remove_file(item.path());
                continue;
            }
            let Some((sequence, created_ms)) = parse_name(&name) else {
                continue;
            };
            let size = item.metadata()?.len();
            bytes += size;
            entries.push(Entry {
                sequence,
                created_ms,
                bytes: size,
            });
        }
        entries.sort_by_key(|e| e.sequence);
        let counters = match std::fs::read(dir.join(COUNTERS)) {
            Ok(text) => serde_json::from_slice(&text).unwrap_or_default(),
            Err(_) => Counters::default(),
        };
        let next_sequence = entries.last().map_or(1, |e| e.sequence + 1);
        Ok(Spool {
            dir: dir.to_owned(),
            max_bytes,
            max_age,
            inner: Arc::new(Mutex::new(Inner {
                entries: entries.into(),
                bytes,
                next_sequence,
                counters,
            })),
            added: Arc::new(tokio::sync::Notify::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path_of(&self, entry: &Entry) -> PathBuf {
        self.dir
            .join(format!("{:020}-{}.json", entry.sequence, entry.created_ms))
    }

    /// Writes a batch durably; once this returns, the batch survives a crash. Then drops
    /// the oldest batches while the spool is over its bounds.
    pub fn push(&self, batch: &Batch) -> anyhow::Result<()> {
        let json = serde_json::to_vec(batch)?;
        let mut inner = self.lock();
        let entry = Entry {
            sequence: inner.next_sequence,
            created_ms: batch.created_at.timestamp_millis(),
            bytes: json.len() as u64,
        };
        files::write_atomically(&self.path_of(&entry), &json, 0o600)?;
        inner.next_sequence += 1;
        inner.bytes += entry.bytes;
        inner.entries.push_back(entry);
        self.enforce_bounds(&mut inner, Utc::now());
        drop(inner);
        self.added.notify_one();
        Ok(())
    }

    fn enforce_bounds(&self, inner: &mut Inner, now: DateTime<Utc>) {
        let oldest_kept = now.timestamp_millis() - self.max_age.as_millis() as i64;
        let mut dropped = 0;
        while let Some(first) = inner.entries.front() {
            let too_big = inner.bytes > self.max_bytes && inner.entries.len() > 1;
            if !too_big && first.created_ms >= oldest_kept {
                break;
            }
            let first = inner.entries.pop_front().expect("front exists");
            inner.bytes -= first.bytes;
            let _ = std::fs::remove_file(self.path_of(&first));
            dropped += 1;
        }
        if dropped > 0 {
            inner.counters.dropped += dropped;
            tracing::warn!(
                dropped,
                total_dropped = inner.counters.dropped,
                "the spool was over its bounds; the oldest batches were dropped unsent"
            );
            self.save_counters(inner.counters);
        }
    }

    fn save_counters(&self, counters: Counters) {
        let json = serde_json::to_vec(&counters).unwrap_or_default();
        if let Err(e) = files::write_atomically(&self.dir.join(COUNTERS), &json, 0o600) {
            tracing::error!(
                error = format!("{e:#}"),
                "spool counters could not be saved"
            );
        }
    }

    /// The oldest batch not yet acknowledged, with its sequence number (after dropping
    /// batches that grew too old while waiting). A file that cannot be read is dropped and
    /// counted.
    pub fn oldest(&self) -> Option<(u64, Batch)> {
        let mut inner = self.lock();
        self.enforce_bounds(&mut inner, Utc::now());
        while let Some(first) = inner.entries.front().cloned() {
            let path = self.path_of(&first);
            match std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| Ok(serde_json::from_slice::<Batch>(&bytes)?))
            {
                Ok(batch) => return Some((first.sequence, batch)),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = format!("{e:#}"), "a spooled batch cannot be read; dropped");
                    inner.entries.pop_front();
                    inner.bytes -= first.bytes;
                    let _ = std::fs::remove_file(&path);
                    inner.counters.dropped += 1;
                    let counters = inner.counters;
                    self.save_counters(counters);
                }
            }
        }
        None
    }

    /// Forgets an acknowledged (or refused) batch. Not fsynced: if a crash brings it back,
    /// sending it again is answered as a duplicate.
    pub fn remove(&self, sequence: u64, refused: bool) {
        let mut inner = self.lock();
        if let Some(at) = inner.entries.iter().position(|e| e.sequence == sequence) {
            let entry = inner.entries.remove(at).expect("position is valid");
            inner.bytes -= entry.bytes;
            let _ = std::fs::remove_file(self.path_of(&entry));
        }
        if refused {
            inner.counters.rejected += 1;
            let counters = inner.counters;
            self.save_counters(counters);
        }
    }

    pub fn level(&self) -> Level {
        let inner = self.lock();
        Level {
            batches: inner.entries.len(),
            bytes: inner.bytes,
        }
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters
    }

    /// Waits until a batch is pushed (returns at once if one was pushed since the last wait).
    pub async fn added(&self) {
        self.added.notified().await;
    }

    /// The agent's own samples about the spool, pushed with each collection.
    pub fn samples(&self, now: DateTime<Utc>) -> Vec<Sample> {
        let level = self.level();
        let counters = self.counters();
        vec![
            Sample::new("agent.spool.batches", now, level.batches as f64),
            Sample::new("agent.spool.bytes", now, level.bytes as f64),
            Sample::new("agent.spool.dropped_batches", now, counters.dropped as f64),
            Sample::new(
                "agent.spool.rejected_batches",
                now,
                counters.rejected as f64,
            ),
        ]
    }
}

fn parse_name(name: &str) -> Option<(u64, i64)> {
    let stem = name.strip_suffix(".json")?;
    let (sequence, created) = stem.split_once('-')?;
    Some((sequence.parse().ok()?, created.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(values: usize) -> Batch {
        Batch::new(
            (0..values)
                .map(|i| Sample::new("system.load1", Utc::now(), i as f64))
                .collect(),
        )
    }

    #[test]
    fn batches_come_back_in_order_after_a_reopen_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, Duration::from_secs(3600)).unwrap();
        let ids: Vec<String> = (0..3)
            .map(|_| {
                let b = batch(2);
                spool.push(&b).unwrap();
                b.batch_id
            })
            .collect();
        let (first, sent) = spool.oldest().unwrap();
        assert_eq!(sent.batch_id, ids[0]);
        spool.remove(first, false);
        // A new process finds the rest, in order, with the same ids.
        std::fs::write(dir.path().join(".00000000000000000009-1.json.1.tmp"), b"{").unwrap();
        let reopened = Spool::open(dir.path(), 1 << 20, Duration::from_secs(3600)).unwrap();
        assert_eq!(reopened.level().batches, 2);
        let (second, again) = reopened.oldest().unwrap();
        assert_eq!(again.batch_id, ids[1]);
        reopened.remove(second, false);
        assert_eq!(reopened.oldest().unwrap().1.batch_id, ids[2]);
        reopened.push(&batch(1)).unwrap();
        assert_eq!(reopened.level().batches, 2);
        assert!(
            !dir.path()
                .join(".00000000000000000009-1.json.1.tmp")
                .exists()
        );
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_them_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&batch(100)).unwrap().len() as u64;
        let spool = Spool::open(dir.path(), one * 3 + one / 2, Duration::from_secs(3600)).unwrap();
        let ids: Vec<String> = (0..5)
            .map(|_| {
                let b = batch(100);
                spool.push(&b).unwrap();
                b.batch_id
            })
            .collect();
        assert_eq!(spool.level().batches, 3);
        assert_eq!(spool.counters().dropped, 2);
        assert_eq!(spool.oldest().unwrap().1.batch_id, ids[2]);
        let reopened =
            Spool::open(dir.path(), one * 3 + one / 2, Duration::from_secs(3600)).unwrap();
        assert_eq!(reopened.counters().dropped, 2);
        let dropped = reopened
            .samples(Utc::now())
            .into_iter()
            .find(|s| s.name == "agent.spool.dropped_batches")
            .unwrap();
        assert_eq!(dropped.value, 2.0);
    }

    #[test]
    fn batches_older_than_the_age_bound_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, Duration::from_secs(60)).unwrap();
        let mut old = batch(1);
        old.created_at = Utc::now() - chrono::Duration::seconds(120);
        spool.push(&old).unwrap();
        let fresh = batch(1);
        spool.push(&fresh).unwrap();
        assert_eq!(spool.oldest().unwrap().1.batch_id, fresh.batch_id);
        assert_eq!(spool.counters().dropped, 1);
    }

    #[test]
    fn an_unreadable_file_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, Duration::from_secs(3600)).unwrap();
        spool.push(&batch(1)).unwrap();
        let good = batch(1);
        spool.push(&good).unwrap();
        let first = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("00000000000000000001-"))
            .unwrap();
        std::fs::write(first, b"not json").unwrap();
        assert_eq!(spool.oldest().unwrap().1.batch_id, good.batch_id);
        assert_eq!(spool.counters().dropped, 1);
    }
}
