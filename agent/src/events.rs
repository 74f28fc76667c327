//! Mail events from any MTA: `POST /events` on the agent's local address
//! (`--events-listen`), a JSON event or an array of them, each as mailops's
//! `MailEventInput` (`ts`, `messageId`, `status`, `sendingIp`, `recipientDomain`, `zone`,
//! `smtpCode`, `response`). A request is answered 202 only once its events are in the
//! spool on disk, so an event the agent accepted reaches mailops even if mailops is away
//! or the agent restarts; 400 names what is wrong and nothing of the request is kept.
//! The endpoint has no authentication: bind it to loopback.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::spool::{Batch, Spool};

/// The most events of one request (one `ingestMailEvents` batch takes 5,000).
pub const MAX_EVENTS: usize = 5_000;
/// The largest request body.
pub const MAX_BODY_BYTES: usize = 4 << 20;

const STATUSES: [&str; 6] = [
    "QUEUED",
    "DELIVERED",
    "DEFERRED",
    "BOUNCED",
    "REJECTED",
    "DROPPED",
];

/// Serves `POST /events` on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    spool: Spool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/events", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(spool);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await?;
    Ok(())
}

/// Binds the events address, with a clear error.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("--events-listen {address}: {e}"))
}

async fn receive(State(spool): State<Spool>, body: Bytes) -> Response {
    let events = match parse_events(&body) {
        Ok(events) => events,
        Err(reason) => {
            return (
                StatusCode::BAD_REQUEST,
                json!({ "error": reason }).to_string(),
            )
                .into_response();
        }
    };
    let accepted = events.len();
    let batch = Batch::of_events(events);
    match tokio::task::spawn_blocking(move || spool.push(&batch)).await {
        Ok(Ok(())) => (
            StatusCode::ACCEPTED,
            json!({ "accepted": accepted }).to_string(),
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "the events could not be written to the spool; send them again" })
                .to_string(),
        )
            .into_response(),
    }
}

/// The events of a request body, checked and in mailops's shape.
pub fn parse_events(body: &[u8]) -> Result<Vec<Value>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let items = match value {
        Value::Array(items) => items,
        item @ Value::Object(_) => vec![item],
        _ => return Err("send an event object or an array of them".into()),
    };
    if items.is_empty() || items.len() > MAX_EVENTS {
        return Err(format!("{} events; send 1 to {MAX_EVENTS}", items.len()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| event(item).map_err(|reason| format!("events[{index}]: {reason}")))
        .collect()
}

fn event(item: Value) -> Result<Value, String> {
    let Value::Object(fields) = item else {
        return Err("is not an object".into());
    };
    let mut out = Map::new();
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    let ts = match text("ts") {
        Some(ts) => DateTime::parse_from_rfc3339(ts)
            .map_err(|_| format!("ts: {ts:?} is not an RFC 3339 time"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    out.insert("ts".into(), json!(ts));
    let message_id = text("messageId").ok_or("messageId is required")?;
    if message_id.is_empty() || message_id.len() > 255 {
        return Err("messageId: 1 to 255 characters".into());
    }
    out.insert("messageId".into(), json!(message_id));
    let status = text("status")
        .map(str::to_ascii_uppercase)
        .ok_or("status is required")?;
    if !STATUSES.contains(&status.as_str()) {
        return Err(format!(
            "status: {status:?} is not one of {}",
            STATUSES.join(", ")
        ));
    }
    out.insert("status".into(), json!(status));
    for name in ["sendingIp", "recipientDomain", "zone", "response"] {
        match fields.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) => {
                out.insert(name.into(), json!(value));
            }
            Some(_) => return Err(format!("{name}: is not text")),
        }
    }
    match fields.get("smtpCode") {
        None | Some(Value::Null) => {}
        Some(code) => {
            let code = code
                .as_i64()
                .filter(|c| (200..=599).contains(c))
                .ok_or("smtpCode: a number from 200 to 599")?;
            out.insert("smtpCode".into(), json!(code));
        }
    }
    if let Some(unknown) = fields.keys().find(|k| {
        ![
            "ts",
            "messageId",
            "status",
            "sendingIp",
            "recipientDomain",
            "zone",
            "smtpCode",
            "response",
        ]
        .contains(&k.as_str())
    }) {
        return Err(format!("{unknown}: not a field of a mail event"));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_and_shaped_as_mailops_takes_them() {
        let events = parse_events(br#"[{"ts":"2026-12-07T10:00:00+01:00","messageId":"q1","status":"delivered",
            "sendingIp":"192.0.2.1","recipientDomain":"gmail.com","zone":"default","smtpCode":250,"response":"250 2.0.0 OK"}]"#)
            .unwrap();
        assert_eq!(events[0]["status"], "DELIVERED");
        assert_eq!(events[0]["ts"], "2026-12-07T09:00:00Z");
        assert_eq!(events[0]["smtpCode"], 250);
        let one = parse_events(br#"{"messageId":"q2","status":"QUEUED"}"#).unwrap();
        assert!(one[0]["ts"].is_string());

        for (body, says) in [
            (&b"not json"[..], "not JSON"),
            (br#"[]"#, "send 1 to"),
            (
                br#"[{"status":"QUEUED"}]"#,
                "events[0]: messageId is required",
            ),
            (br#"[{"messageId":"a","status":"LOST"}]"#, "status"),
            (
                br#"[{"messageId":"a","status":"QUEUED","smtpCode":999}]"#,
                "smtpCode",
            ),
            (
                br#"[{"messageId":"a","status":"QUEUED","ts":"yesterday"}]"#,
                "ts",
            ),
            (
                br#"[{"messageId":"a","status":"QUEUED","colour":"red"}]"#,
                "colour",
            ),
        ] {
            let error = parse_events(body).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }
}
