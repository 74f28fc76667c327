//! ZoneMTA's own delivery log: with `log.remote` set in ZoneMTA's configuration
//! (`{ protocol: 'udp4', host: '127.0.0.1', port: 31239 }`), ZoneMTA sends each log entry as
//! one UDP datagram holding a msgpack map `{ id, seq, action, …fields }` (the format
//! zmta-webadmin's log server reads). The agent listens there (`--zonemta-log-listen`) and
//! turns the delivery entries into mail events, written to the spool every half second.
//!
//! | ZoneMTA action | mail event |
//! | --- | --- |
//! | QUEUED | QUEUED |
//! | ACCEPTED | DELIVERED |
//! | DEFERRED | DEFERRED |
//! | REJECTED | BOUNCED |
//! | NOQUEUE | REJECTED |
//! | DROP | DROPPED |
//!
//! Other entries (SPAMCHECK, DELETED, QUEUE_BOUNCE, …) are not deliveries and are skipped.
//! UDP gives no acknowledgement: what arrives is kept, but a datagram lost on the way, or
//! received in the half second before a crash, is not.

use std::{net::SocketAddr, time::Duration};

use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::spool::{Batch, Spool};

/// How often received entries are written to the spool, and the most per batch.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const MAX_BATCH: usize = 5_000;

/// The mail event of one log entry, or `None` for entries that are not deliveries.
pub fn event_of(entry: &Value) -> Option<Value> {
    let id = match &entry["id"] {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let status = match entry["action"].as_str()? {
        "QUEUED" => "QUEUED",
        "ACCEPTED" => "DELIVERED",
        "DEFERRED" => "DEFERRED",
        "REJECTED" => "BOUNCED",
        "NOQUEUE" => "REJECTED",
        "DROP" => "DROPPED",
        _ => return None,
    };
    // A delivery is one recipient of a queued message: id.seq, as ZoneMTA logs it.
    let message_id = match &entry["seq"] {
        Value::String(seq) if !seq.is_empty() => format!("{id}.{seq}"),
        Value::Number(seq) => format!("{id}.{seq}"),
        _ => id,
    };
    let mut event = Map::new();
    event.insert("ts".into(), json!(Utc::now()));
    event.insert(
        "messageId".into(),
        json!(message_id.chars().take(255).collect::<String>()),
    );
    event.insert("status".into(), json!(status));
    if let Some(ip) = entry["ip"].as_str().filter(|ip| !ip.is_empty()) {
        event.insert("sendingIp".into(), json!(ip));
    }
    let recipient = match &entry["to"] {
        Value::String(to) => Some(to.as_str()),
        Value::Array(to) => to.first().and_then(Value::as_str),
        _ => None,
    };
    if let Some(domain) = recipient.and_then(|to| to.rsplit_once('@')).map(|(_, d)| d) {
        event.insert(
            "recipientDomain".into(),
            json!(domain.trim_end_matches('>').to_ascii_lowercase()),
        );
    }
    if let Some(zone) = entry["zone"].as_str() {
        event.insert("zone".into(), json!(zone));
    }
    if let Some(response) = entry["response"].as_str().filter(|r| !r.is_empty()) {
        if let Some(code) = response
            .get(..3)
            .and_then(|c| c.parse::<i64>().ok())
            .filter(|c| (200..=599).contains(c))
        {
            event.insert("smtpCode".into(), json!(code));
        }
        event.insert(
            "response".into(),
            json!(response.chars().take(2048).collect::<String>()),
        );
    }
    Some(Value::Object(event))
}

/// Binds the UDP address, with a clear error.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    tokio::net::UdpSocket::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("--zonemta-log-listen {address}: {e}"))
}

/// Receives until `stop` turns true, then writes what it holds.
pub async fn receive(
    socket: tokio::net::UdpSocket,
    spool: Spool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 65_536];
    let mut pending: Vec<Value> = Vec::new();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let Ok((length, from)) = received else { continue };
                match rmp_serde::from_slice::<Value>(&buffer[..length]) {
                    Ok(entry) => pending.extend(event_of(&entry)),
                    Err(e) => tracing::debug!(%from, error = %e, "a datagram that is not a msgpack log entry"),
                }
                if pending.len() >= MAX_BATCH {
                    write(&spool, &mut pending).await;
                }
            }
            _ = flush.tick() => write(&spool, &mut pending).await,
            _ = stop.changed() => {
                write(&spool, &mut pending).await;
                return;
            }
        }
    }
}

async fn write(spool: &Spool, pending: &mut Vec<Value>) {
    if pending.is_empty() {
        return;
    }
    let batch = Batch::of_events(std::mem::take(pending));
    let spool = spool.clone();
    let count = batch.events.len();
    match tokio::task::spawn_blocking(move || spool.push(&batch)).await {
        Ok(Ok(())) => tracing::debug!(events = count, "ZoneMTA log entries spooled"),
        _ => tracing::error!(
            events = count,
            "ZoneMTA log entries could not be spooled and are lost"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_entries_become_mail_events() {
        // The fields ZoneMTA's sender logs for an accepted delivery (lib/sender.js).
        let accepted = json!({ "id": "18c2d5e0a2b0004f2a", "seq": "001", "action": "ACCEPTED",
            "zone": "default", "from": "a@example.com", "to": "Someone@Gmail.com", "mx": "gmail-smtp-in.l.google.com",
            "host": "142.250.1.27", "ip": "192.0.2.10", "response": "250 2.0.0 OK  1733565600 a1si123 - gsmtp",
            "size": 1834, "timer": 412, "messageId": "<1@example.com>", "protocol": "smtp" });
        let event = event_of(&accepted).unwrap();
        assert_eq!(event["messageId"], "18c2d5e0a2b0004f2a.001");
        assert_eq!(event["status"], "DELIVERED");
        assert_eq!(event["recipientDomain"], "gmail.com");
        assert_eq!(event["sendingIp"], "192.0.2.10");
        assert_eq!(event["smtpCode"], 250);
        let rejected = json!({ "id": "x", "seq": "002", "action": "REJECTED", "category": "recipient",
            "to": "nobody@example.org", "response": "550 5.1.1 <nobody@example.org>: Recipient address rejected" });
        assert_eq!(event_of(&rejected).unwrap()["status"], "BOUNCED");
        assert_eq!(event_of(&rejected).unwrap()["smtpCode"], 550);
        let queued = json!({ "id": "y", "action": "QUEUED", "from": "a@example.com", "to": "b@example.org,c@example.net" });
        assert_eq!(event_of(&queued).unwrap()["messageId"], "y");
        assert!(event_of(&json!({ "id": "z", "action": "SPAMCHECK", "score": 1.5 })).is_none());
        assert!(event_of(&json!({ "action": "ACCEPTED" })).is_none());
    }
}
