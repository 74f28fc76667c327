//! `POST /api/v1/write`: Prometheus remote write (protocol 1.0: a protobuf `WriteRequest`,
//! snappy block-compressed), as Prometheus, vmagent, Grafana Alloy and the OpenTelemetry
//! collector send it, authenticated with a node key (`Authorization: ApiKey mko_…`).
//!
//! A request is stored whole or not at all, through the same ingestion as `ingestMetrics`,
//! under a batch id made of the body's hash (a retried request is a duplicate), and
//! answered 204 only after it committed. Statuses follow the protocol: 4xx for what can
//! never succeed (the sender drops it), 429 and 5xx for what may later (it retries).

pub mod proto;

use axum::{
    Extension,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::{
    app::ServerState,
    auth::{Principal, RequestId},
    error::AppError,
    ratelimit::Caller,
};

/// The largest compressed body taken.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// The largest body once decompressed.
pub const MAX_DECOMPRESSED_BYTES: usize = 32 << 20;
/// The most series one request may carry.
pub const MAX_SERIES: usize = 10_000;
/// The most labels one series may carry (`__name__` included).
pub const MAX_LABELS: usize = 32;

fn answer(status: StatusCode, request_id: &RequestId, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::debug!(request_id = %request_id.0, %status, message, "remote write refused");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

fn retry_later(
    status: StatusCode,
    request_id: &RequestId,
    message: &str,
    seconds: u64,
) -> Response {
    let mut response = answer(status, request_id, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, seconds.max(1).into());
    response
}

/// An application error as the protocol's status.
fn from_error(error: AppError, request_id: &RequestId) -> Response {
    let message = error.client_message();
    match &error {
        AppError::BadInput { .. } | AppError::Conflict(_) | AppError::NotFound(_) => {
            answer(StatusCode::BAD_REQUEST, request_id, message)
        }
        AppError::Unauthenticated(_) => answer(StatusCode::UNAUTHORIZED, request_id, message),
        AppError::Forbidden(_) => answer(StatusCode::FORBIDDEN, request_id, message),
        AppError::RateLimited { retry_after, .. } => retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            request_id,
            &message,
            retry_after.as_secs_f64().ceil() as u64,
        ),
        AppError::Unavailable { retry_after, .. } => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            request_id,
            &message,
            retry_after.as_secs_f64().ceil() as u64,
        ),
        AppError::Timeout(_) => answer(StatusCode::SERVICE_UNAVAILABLE, request_id, message),
        AppError::Db(_) | AppError::Redis(_) | AppError::Internal(_) => {
            error.log_if_internal();
            answer(StatusCode::INTERNAL_SERVER_ERROR, request_id, message)
        }
    }
}

pub async fn write(
    State(state): State<ServerState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let app = &state.app;
    if !app.db_health.reachable() {
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            &request_id,
            "the database cannot be reached; nothing was written, retry shortly",
            5,
        );
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"));
    let agent = match Principal::resolve(app, authorization).await {
        Ok(Principal::Agent(agent)) => agent,
        Ok(Principal::Anonymous) => {
            return answer(
                StatusCode::UNAUTHORIZED,
                &request_id,
                "send a node key: Authorization: ApiKey mko_…",
            );
        }
        Ok(Principal::Refused(reason)) => {
            return answer(StatusCode::UNAUTHORIZED, &request_id, reason);
        }
        Ok(_) => {
            return answer(
                StatusCode::FORBIDDEN,
                &request_id,
                "remote write takes a node key (ApiKey mko_…), not this credential",
            );
        }
        Err(error) => return from_error(error, &request_id),
    };
    let admission = app.rate_limits.admit(&Caller::Agent(agent.key_id), 1).await;
    if admission.allowed == 0 {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            &request_id,
            "too many requests from this node",
            admission.retry_after.as_secs_f64().ceil() as u64,
        );
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"snappy")
    {
        return answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &request_id,
            "Content-Encoding must be snappy",
        );
    }
    let Ok(compressed) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &request_id,
            format!(
                "the body is larger than {MAX_BODY_BYTES} bytes; send fewer samples per request"
            ),
        );
    };
    let series = match decode(&compressed) {
        Ok(series) => series,
        Err((status, message)) => return answer(status, &request_id, message),
    };
    let batch_id = format!(
        "rw-{}",
        Sha256::digest(&compressed)[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    match crate::metrics::store_remote_series(app, &agent, batch_id, series).await {
        Ok(outcome) => {
            if outcome.skipped_values > 0 {
                metrics::counter!("mailops_remote_write_skipped_values_total")
                    .increment(outcome.skipped_values as u64);
            }
            metrics::counter!("mailops_remote_write_samples_total")
                .increment(u64::try_from(outcome.stored.accepted).unwrap_or(0));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => from_error(error, &request_id),
    }
}

/// The series of a compressed `WriteRequest`, or the status that refuses it.
fn decode(compressed: &[u8]) -> Result<Vec<exporters::Series>, (StatusCode, String)> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let length = snap::raw::decompress_len(compressed)
        .map_err(|e| bad(format!("the body is not snappy-compressed: {e}")))?;
    if length > MAX_DECOMPRESSED_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body decompresses to {length} bytes; at most {MAX_DECOMPRESSED_BYTES}"),
        ));
    }
    let bytes = snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|e| bad(format!("the body is not snappy-compressed: {e}")))?;
    let request = proto::WriteRequest::decode(bytes.as_slice())
        .map_err(|e| bad(format!("the body is not a remote-write WriteRequest: {e}")))?;
    if request.timeseries.len() > MAX_SERIES {
        return Err(bad(format!(
            "{} series; at most {MAX_SERIES} per request",
            request.timeseries.len()
        )));
    }
    request
        .timeseries
        .into_iter()
        .enumerate()
        .map(|(index, series)| {
            if series.labels.len() > MAX_LABELS {
                return Err(bad(format!(
                    "timeseries[{index}] has {} labels; at most {MAX_LABELS}",
                    series.labels.len()
                )));
            }
            let mut name = String::new();
            let mut labels = exporters::Labels::new();
            for label in series.labels {
                if label.name == "__name__" {
                    name = label.value;
                } else {
                    labels.insert(label.name, label.value);
                }
            }
            if name.is_empty() {
                return Err(bad(format!("timeseries[{index}] has no __name__ label")));
            }
            Ok(exporters::Series {
                name,
                labels,
                samples: series
                    .samples
                    .into_iter()
                    .map(|s| (s.timestamp, s.value))
                    .collect(),
            })
        })
        .collect()
}
