//! The Redis transport of the event bus: one stream that every instance appends to and
//! every instance reads.
//!
//! A Lua script takes the next cluster-wide sequence number (`INCR`) and appends the event
//! (`XADD … MAXLEN ~`) in one step, so the stream's order is the sequence order. Each
//! instance runs one publisher connection and one reader connection, whatever the number of
//! subscribers; the reader hands each event to the instance's listeners once. When Redis goes
//! away both retry with backoff and the reader carries on from the last entry it saw, so
//! delivery resumes where it stopped.

use std::{
    sync::Weak,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{AsyncConnectionConfig, Value, aio::MultiplexedConnection};
use tokio::sync::mpsc;

use super::{Event, Numbered, Shared};

/// Events waiting for Redis; past this, new events are dropped rather than buffered.
pub(super) const OUTBOX_CAPACITY: usize = 10_000;
/// Events appended in one round trip at most.
const PUBLISH_BATCH: usize = 256;
/// Entries read in one `XREAD` at most.
const READ_BATCH: usize = 1_000;
/// How long one `XREAD` waits for new entries.
const READ_BLOCK: Duration = Duration::from_secs(2);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Appends one event (ARGV[1]) once: ARGV[3] is its id, remembered for ARGV[4] ms so that
/// a batch sent again after a lost reply is not appended twice. The sequence is the next
/// of the cluster; when its key is missing (the first event, or Redis restarted without
/// its data) a new epoch starts at the current time in ms × 1024, above every sequence of
/// the epochs before (unless one numbered more than 1,024 events per ms on average), so
/// sequences keep growing and subscribers neither skip new events nor mistake them for
/// seen ones. Every entry names its epoch (`p`) so a jump between epochs is not taken
/// for missed events.
const APPEND: &str = r"
if redis.call('SET', KEYS[3], 1, 'NX', 'PX', ARGV[4]) == false then return 0 end
local sequence = redis.call('INCR', KEYS[2])
if sequence == 1 then
  local now = redis.call('TIME')
  local epoch = string.format('%.0f', (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) * 1024)
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[4], epoch)
end
sequence = redis.call('GET', KEYS[2])
local epoch = redis.call('GET', KEYS[4]) or sequence
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 's', sequence, 'p', epoch, 'e', ARGV[1])
return 1
";

#[derive(Clone)]
pub(super) struct Keys {
    stream: String,
    sequence: String,
    epoch: String,
    published: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            stream: format!("{prefix}events"),
            sequence: format!("{prefix}events:sequence"),
            epoch: format!("{prefix}events:epoch"),
            published: format!("{prefix}events:published:"),
        }
    }

    /// Appends `event` to `pipe` through the script.
    fn append(
        &self,
        pipe: &mut redis::Pipeline,
        event: &Outgoing,
        max_len: usize,
        remember: Duration,
    ) {
        pipe.cmd("EVAL")
            .arg(APPEND)
            .arg(4)
            .arg(&self.stream)
            .arg(&self.sequence)
            .arg(format!("{}{}", self.published, event.id))
            .arg(&self.epoch)
            .arg(event.json.as_bytes())
            .arg(max_len)
            .arg(event.id.to_string())
            .arg(remember.as_millis() as u64)
            .ignore();
    }
}

/// An event on its way to Redis, with the id that keeps it from being appended twice.
pub(super) struct Outgoing {
    pub id: uuid::Uuid,
    pub json: std::sync::Arc<str>,
    /// Told once the event is in Redis.
    pub confirm: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn connect(
    client: &redis::Client,
    response_timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(response_timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Appends one event from a process that runs no bus (the CLI), and waits until Redis
/// has it.
pub(super) async fn append_once(
    client: &redis::Client,
    keys: &Keys,
    max_len: usize,
    json: &str,
) -> redis::RedisResult<()> {
    let mut conn = connect(client, Duration::from_secs(5)).await?;
    let mut pipe = redis::pipe();
    let event = Outgoing {
        id: uuid::Uuid::now_v7(),
        json: json.into(),
        confirm: None,
    };
    keys.append(&mut pipe, &event, max_len, Duration::from_secs(60));
    pipe.query_async::<()>(&mut conn).await
}

/// Appends the outbox to the stream, in order, until the bus is dropped. A batch goes in
/// one transaction; when Redis fails, the batch is kept and sent again once Redis answers
/// (its events' ids keep any that did get in from being appended twice), so an event
/// published while Redis restarts is delayed, not lost.
pub(super) async fn publish_loop(
    client: redis::Client,
    keys: Keys,
    max_len: usize,
    remember: Duration,
    mut outbox: mpsc::Receiver<Outgoing>,
) {
    let mut retry = RETRY_MIN;
    let mut connection: Option<MultiplexedConnection> = None;
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        if outbox.recv_many(&mut batch, PUBLISH_BATCH).await == 0 {
            return;
        }
        loop {
            let conn = match &mut connection {
                Some(conn) => conn,
                None => match connect(&client, Duration::from_secs(5)).await {
                    Ok(conn) => connection.insert(conn),
                    Err(e) => {
                        tracing::warn!(error = %e, waiting = batch.len(), "event bus: cannot reach Redis; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_MAX);
                        continue;
                    }
                },
            };
            let mut pipe = redis::pipe();
            pipe.atomic();
            for event in &batch {
                keys.append(&mut pipe, event, max_len, remember);
            }
            match pipe.query_async::<()>(conn).await {
                Ok(()) => {
                    retry = RETRY_MIN;
                    for event in &mut batch {
                        if let Some(confirm) = event.confirm.take() {
                            let _ = confirm.send(());
                        }
                    }
                    break;
                }
                Err(e) => {
                    crate::telemetry::event_bus_reconnect("publisher");
                    tracing::warn!(error = %e, events = batch.len(), "event bus: publishing to Redis failed; sending again");
                    connection = None;
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        batch.clear();
    }
}

/// Reads the stream from the start of the replay window and hands every entry to this
/// instance's listeners, until the bus is dropped.
pub(super) async fn read_loop(
    client: redis::Client,
    keys: Keys,
    replay_window: Duration,
    shared: Weak<Shared>,
) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let window_ms = replay_window.as_millis() as u64;
    let mut last_id = format!("{}-0", now_ms.saturating_sub(window_ms));
    let mut retry = RETRY_MIN;
    loop {
        if shared.strong_count() == 0 {
            return;
        }
        let mut conn = match connect(&client, READ_BLOCK + Duration::from_secs(5)).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "event bus: cannot reach Redis; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        loop {
            let reply = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_BATCH)
                .arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&keys.stream)
                .arg(&last_id)
                .query_async::<Value>(&mut conn)
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    crate::telemetry::event_bus_reconnect("reader");
                    tracing::warn!(error = %e, "event bus: reading from Redis failed; reconnecting");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    break;
                }
            };
            retry = RETRY_MIN;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            for entry in entries(reply) {
                // A stream id starts with the ms Redis appended the entry at.
                if let Some(appended) = entry
                    .id
                    .split('-')
                    .next()
                    .and_then(|ms| ms.parse::<u64>().ok())
                {
                    crate::telemetry::event_bus_lag(Duration::from_millis(
                        now_ms.saturating_sub(appended),
                    ));
                }
                last_id = entry.id;
                match serde_json::from_str::<Event>(&entry.json) {
                    Ok(event) => shared.deliver(
                        Numbered {
                            sequence: entry.sequence,
                            epoch: entry.epoch,
                        },
                        event,
                        entry.json.into(),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, sequence = entry.sequence, "event bus: an event from Redis could not be read; skipped");
                    }
                }
            }
        }
    }
}

struct Entry {
    id: String,
    sequence: u64,
    epoch: u64,
    json: String,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// The entries of an `XREAD` reply for one stream (RESP2 arrays or RESP3 maps).
fn entries(reply: Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let streams: Vec<Value> = match reply {
        Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        other => items(other)
            .into_iter()
            .filter_map(|stream| items(stream).into_iter().nth(1))
            .collect(),
    };
    for entries in streams {
        for entry in items(entries) {
            let mut parts = items(entry).into_iter();
            let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Some(id) = text(&id) else { continue };
            let fields = items(fields);
            let mut sequence = None;
            let mut epoch = None;
            let mut json = None;
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text).as_deref(), pair.get(1)) {
                    (Some("s"), Some(v)) => sequence = text(v).and_then(|s| s.parse().ok()),
                    (Some("p"), Some(v)) => epoch = text(v).and_then(|s| s.parse().ok()),
                    (Some("e"), Some(v)) => json = text(v),
                    _ => {}
                }
            }
            if let (Some(sequence), Some(json)) = (sequence, json) {
                // Entries of releases before epochs were numbered from 1 in one epoch.
                let epoch = epoch.unwrap_or(0);
                out.push(Entry {
                    id,
                    sequence,
                    epoch,
                    json,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn an_xread_reply_gives_its_entries_in_order() {
        let entry = |id: &str, sequence: &str, json: &str| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![bulk("s"), bulk(sequence), bulk("e"), bulk(json)]),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("mailops:events"),
            Value::Array(vec![
                entry("1700000000000-0", "41", "{\"a\":1}"),
                entry("1700000000000-1", "42", "{\"b\":2}"),
            ]),
        ])]);
        let entries = entries(reply);
        let read: Vec<(&str, u64, &str)> = entries
            .iter()
            .map(|e| (e.id.as_str(), e.sequence, e.json.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                ("1700000000000-0", 41, "{\"a\":1}"),
                ("1700000000000-1", 42, "{\"b\":2}")
            ]
        );
    }

    #[test]
    fn an_xread_that_timed_out_has_no_entries() {
        assert!(entries(Value::Nil).is_empty());
    }
}
