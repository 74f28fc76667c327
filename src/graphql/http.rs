//! The GraphQL endpoints: `POST /graphql`, the GraphiQL page on `GET /graphql`, and the
//! WebSocket on `/graphql/ws`.

use async_graphql::{BatchRequest, BatchResponse};
use axum::{
    Extension, Json,
    body::Body,
    extract::{State, WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use crate::{
    app::ServerState,
    auth::{ClientAddr, Principal, RequestId},
    error::{code, finish_errors, rate_limited_error, server_error},
    graphql::limits::{MAX_BATCH, MAX_BODY_BYTES},
    graphql::operations::OperationLog,
    graphql::ws::{self, Protocol},
    ratelimit::{Admission, Caller},
};

/// A single request or a batch. `BatchRequest`'s own deserializer is untagged, which
/// buffers the whole body as an intermediate tree before trying each shape; a metrics
/// batch parsed that way cost twice its parse. The first byte says which shape it is.
fn parse_batch(bytes: &[u8]) -> serde_json::Result<BatchRequest> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(bytes).map(BatchRequest::Batch),
        _ => serde_json::from_slice(bytes).map(BatchRequest::Single),
    }
}

/// The largest WebSocket frame or message accepted.
pub const MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;

fn error_response(
    status: StatusCode,
    code: &'static str,
    message: String,
    request_id: &str,
) -> Response {
    let mut errors = vec![server_error(code, message)];
    finish_errors(&mut errors, request_id);
    (status, Json(serde_json::json!({ "errors": errors }))).into_response()
}

/// Bodies from callers other than node agents are refused past this size: only agents'
/// batches are large.
pub const MAX_CALLER_BODY_BYTES: usize = 256 * 1024;

/// Who the rate limits count an operation against.
pub fn rate_caller(principal: &Principal, client: ClientAddr) -> Caller {
    match principal {
        Principal::User(user) => Caller::User(user.id),
        Principal::Agent(agent) => Caller::Agent(agent.key_id),
        _ => Caller::Address(client.0),
    }
}

/// The refusal of a whole request over its caller's rate: 429 with `Retry-After` and the
/// IETF `RateLimit-*` fields.
fn too_many_requests(admission: &Admission, request_id: &str) -> Response {
    let retry = admission.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = error_response_with(
        StatusCode::TOO_MANY_REQUESTS,
        rate_limited_error(
            format!("too many operations; retry in {retry} s"),
            admission.retry_after,
        ),
        request_id,
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, retry.into());
    if let Some(quota) = admission.quota {
        headers.insert("ratelimit-limit", (quota.burst as u64).into());
        headers.insert("ratelimit-remaining", 0u64.into());
        headers.insert("ratelimit-reset", retry.into());
        if let Ok(policy) = HeaderValue::from_str(&format!("{};w=1", quota.per_second)) {
            headers.insert("ratelimit-policy", policy);
        }
    }
    response
}

/// A request refused whole because mailops cannot serve it now: 503 with the error's code
/// and, for a retryable one, `Retry-After`.
fn unavailable(error: crate::error::AppError, request_id: &str) -> Response {
    let retry = match &error {
        crate::error::AppError::RateLimited { retry_after, .. }
        | crate::error::AppError::Unavailable { retry_after, .. } => {
            Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
        }
        _ => None,
    };
    // The conversion logs an internal error and sets the extensions.
    let error = async_graphql::Error::from(error);
    let mut server_error = async_graphql::ServerError::new(error.message, None);
    server_error.extensions = error.extensions;
    let mut response =
        error_response_with(StatusCode::SERVICE_UNAVAILABLE, server_error, request_id);
    if let Some(seconds) = retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

fn error_response_with(
    status: StatusCode,
    error: async_graphql::ServerError,
    request_id: &str,
) -> Response {
    let mut errors = vec![error];
    finish_errors(&mut errors, request_id);
    (status, Json(serde_json::json!({ "errors": errors }))).into_response()
}

pub async fn post(
    State(state): State<ServerState>,
    Extension(request_id): Extension<RequestId>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"));
    if !state.app.db_health.reachable() {
        return unavailable(
            crate::error::AppError::Unavailable {
                reason: "the database cannot be reached; nothing was written, retry shortly".into(),
                retry_after: std::time::Duration::from_secs(5),
            },
            &request_id.0,
        );
    }
    let principal = match Principal::resolve(&state.app, authorization).await {
        Ok(principal) => principal,
        // The caller could not be looked up: the database is away or saturated.
        Err(error) => return unavailable(error, &request_id.0),
    };
    // The caller is known before the body is read: only agents may send large ones.
    let body_limit = match principal {
        Principal::Agent(_) => MAX_BODY_BYTES,
        _ => MAX_CALLER_BODY_BYTES,
    };
    let bytes = match axum::body::to_bytes(body, body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::BAD_USER_INPUT,
                format!("request body is larger than {body_limit} bytes"),
                &request_id.0,
            );
        }
    };
    let batch = match parse_batch(&bytes) {
        Ok(batch) => batch,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                format!(
                    "request body is not a GraphQL request ({{\"query\": ..., \"variables\": ...}}): {e}"
                ),
                &request_id.0,
            );
        }
    };
    let (requests, single) = match batch {
        BatchRequest::Single(request) => (vec![request], true),
        BatchRequest::Batch(requests) => (requests, false),
    };
    if requests.len() > MAX_BATCH {
        return error_response(
            StatusCode::BAD_REQUEST,
            code::BAD_USER_INPUT,
            format!(
                "batch holds {} operations; the limit is {MAX_BATCH}",
                requests.len()
            ),
            &request_id.0,
        );
    }
    // Every operation of a batch counts; those past the caller's rate are refused one by
    // one, and a request none of whose operations may run is refused whole.
    let admission = state
        .app
        .rate_limits
        .admit(&rate_caller(&principal, client), requests.len() as u32)
        .await;
    if admission.allowed == 0 {
        return too_many_requests(&admission, &request_id.0);
    }
    let execution = async {
        let mut responses = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let given = request.operation_name.clone();
            let log = |kind, named: Option<&str>| {
                let name = given.as_deref().or(named);
                OperationLog::start(&request_id.0, name, kind, &principal, client.0)
            };
            let response = if index < admission.allowed as usize {
                let request = request
                    .data(principal.clone())
                    .data(request_id.clone())
                    .data(client)
                    .data(crate::input::PointBudget::default());
                state.http_schema.execute(request, log).await
            } else {
                let refused = vec![rate_limited_error(
                    "too many operations; this one was not run",
                    admission.retry_after,
                )];
                log("query", None).finish(&refused);
                async_graphql::Response::from_errors(refused)
            };
            responses.push(response);
        }
        responses
    };
    let timeout = state.app.config.limits.request_timeout;
    let Ok(mut responses) = tokio::time::timeout(timeout, execution).await else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            code::TIMEOUT,
            format!(
                "the request ran longer than {} s (MAILOPS_REQUEST_TIMEOUT); narrow it",
                timeout.as_secs_f64()
            ),
            &request_id.0,
        );
    };
    for response in &mut responses {
        finish_errors(&mut response.errors, &request_id.0);
    }
    let response = match (single, responses.pop()) {
        (true, Some(only)) => BatchResponse::Single(only),
        (_, last) => {
            responses.extend(last);
            BatchResponse::Batch(responses)
        }
    };
    Json(response).into_response()
}

/// Pinned versions of the GraphiQL page's scripts, with their Subresource Integrity
/// hashes (sha384 of the files the npm registry and its CDNs serve);
/// `scripts/fetch-graphiql-assets.sh` downloads the same ones for offline use.
/// `tests/browser/graphiql.mjs` drives the page in Chromium and also runs an operation
/// through its `wsClient`.
const GRAPHIQL_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>mailops GraphiQL</title>
  <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="{base}/graphiql@3.8.3/graphiql.min.css" integrity="sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM" crossorigin="anonymous">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{base}/react@18.3.1/umd/react.production.min.js" integrity="sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z" crossorigin="anonymous"></script>
  <script src="{base}/react-dom@18.3.1/umd/react-dom.production.min.js" integrity="sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1" crossorigin="anonymous"></script>
  <script src="{base}/graphql-ws@5.16.2/umd/graphql-ws.min.js" integrity="sha384-+EVxFEOpy8LWPRQcpntm0FKN2O+BzrMNSL0G3HIgVWFmeb6xqZqjuLivrQUTXZKi" crossorigin="anonymous"></script>
  <script src="{base}/graphiql@3.8.3/graphiql.min.js" integrity="sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie" crossorigin="anonymous"></script>
  <script>{bootstrap}</script>
</body>
</html>
"#;

/// The page's own script; the Content-Security-Policy allows it by its hash, and no other
/// inline script.
const GRAPHIQL_BOOTSTRAP: &str = r#"
    const url = new URL('/graphql', window.location.href).toString();
    const wsUrl = url.replace(/^http/, 'ws') + '/ws';
    // The WebSocket sends the Authorization header of GraphiQL's headers tab in
    // connection_init, as mailops expects.
    let connectionParams = {};
    const wsClient = graphqlWs.createClient({
      url: wsUrl,
      lazy: true,
      connectionParams: () => connectionParams,
    });
    const fetcher = GraphiQL.createFetcher({ url, wsClient });
    const withHeaders = (params, opts) => {
      const headers = (opts && opts.headers) || {};
      connectionParams = headers.Authorization ? { Authorization: headers.Authorization } : {};
      return fetcher(params, opts);
    };
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {
        fetcher: withHeaders,
        defaultEditorToolsVisibility: true,
        defaultHeaders: '{\n  "Authorization": "Bearer <accessToken from login>"\n}',
        defaultQuery: 'mutation {\n  login(username: "admin", password: "…") {\n    accessToken\n    user { username role }\n  }\n}\n',
      })
    );
  "#;

/// The base URL the page loads its scripts from.
pub const LOCAL_ASSETS_PATH: &str = "/graphiql/assets";

/// The page's Content-Security-Policy: scripts and styles only from the asset origin (and
/// the page's own script, by hash), requests only to mailops itself, never in a frame.
fn graphiql_policy(asset_origin: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let bootstrap = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(GRAPHIQL_BOOTSTRAP.as_bytes()));
    format!(
        "default-src 'none'; script-src {asset_origin} 'sha256-{bootstrap}'; \
         style-src {asset_origin} 'unsafe-inline'; font-src {asset_origin} data:; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// The scheme, host and port of a URL (`https://unpkg.com/x` → `https://unpkg.com`).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

pub async fn graphiql(State(state): State<ServerState>) -> Response {
    if !state.app.config.server.graphiql {
        return (
            StatusCode::NOT_FOUND,
            "GraphiQL is off; set MAILOPS_GRAPHIQL=true to serve it",
        )
            .into_response();
    }
    let (base, origin) = match &state.app.config.server.graphiql_assets {
        crate::config::GraphiqlAssets::Url(url) => (url.as_str(), origin_of(url)),
        crate::config::GraphiqlAssets::Directory(_) => (LOCAL_ASSETS_PATH, "'self'"),
    };
    let page = GRAPHIQL_PAGE
        .replace("{base}", base)
        .replace("{bootstrap}", GRAPHIQL_BOOTSTRAP);
    let mut response = Html(page).into_response();
    if let Ok(policy) = HeaderValue::from_str(&graphiql_policy(origin)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
        .headers_mut()
        .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Whether a browser page from `Origin` may open the WebSocket: same origin, or one of
/// `MAILOPS_CORS_ORIGINS`. Clients that are not browsers send no Origin.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

pub async fn websocket(
    State(state): State<ServerState>,
    Extension(request_id): Extension<RequestId>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, &state.app.config.server.cors_origins) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let protocol = Protocol::negotiate(
        headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
    );
    upgrade
        .protocols(Protocol::NAMES)
        .max_frame_size(MAX_WS_MESSAGE_BYTES)
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        // Idle connections dominate; their buffers grow when a message needs it.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WS_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| {
            ws::serve(
                socket,
                protocol,
                ws::SocketContext {
                    app: state.app,
                    schema: state.schema,
                    shared: state.subscriptions,
                    counts: state.sockets,
                    request_id,
                    client,
                },
            )
        })
}
