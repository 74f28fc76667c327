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

use super::{Event, Shared};

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

const APPEND: &str = r"
local sequence = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 's', sequence, 'e', ARGV[1])
return sequence
";

#[derive(Clone)]
pub(super) struct Keys {
    stream: String,
    sequence: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            stream: format!("{prefix}events"),
            sequence: format!("{prefix}events:sequence"),
        }
    }
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
    redis::cmd("EVAL")
        .arg(APPEND)
        .arg(2)
        .arg(&keys.stream)
        .arg(&keys.sequence)
        .arg(json.as_bytes())
        .arg(max_len)
        .query_async::<()>(&mut conn)
        .await
}

/// Appends the outbox to the stream, in order, until the bus is dropped.
pub(super) async fn publish_loop(
    client: redis::Client,
    keys: Keys,
    max_len: usize,
    mut outbox: mpsc::Receiver<std::sync::Arc<str>>,
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
                        tracing::warn!(error = %e, "event bus: cannot reach Redis; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_MAX);
                        continue;
                    }
                },
            };
            let mut pipe = redis::pipe();
            for json in &batch {
                pipe.cmd("EVAL")
                    .arg(APPEND)
                    .arg(2)
                    .arg(&keys.stream)
                    .arg(&keys.sequence)
                    .arg(json.as_bytes())
                    .arg(max_len)
                    .ignore();
            }
            match pipe.query_async::<()>(conn).await {
                Ok(()) => {
                    retry = RETRY_MIN;
                    break;
                }
                Err(e) => {
                    // The batch may be partly appended; sending it again could repeat events,
                    // so it is dropped and the loss logged.
                    tracing::warn!(error = %e, events = batch.len(), "event bus: publishing to Redis failed; events dropped");
                    connection = None;
                    break;
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
            for entry in entries(reply) {
                last_id = entry.id;
                match serde_json::from_str::<Event>(&entry.json) {
                    Ok(event) => shared.deliver(entry.sequence, event, entry.json.into()),
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
            let mut json = None;
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text).as_deref(), pair.get(1)) {
                    (Some("s"), Some(v)) => sequence = text(v).and_then(|s| s.parse().ok()),
                    (Some("e"), Some(v)) => json = text(v),
                    _ => {}
                }
            }
            if let (Some(sequence), Some(json)) = (sequence, json) {
                out.push(Entry { id, sequence, json });
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
