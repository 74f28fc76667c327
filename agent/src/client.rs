//! Talking to mailops: GraphQL over HTTP with the node key, and what each failure means
//! for a batch (send it again later, or never).

use std::time::Duration;

use serde_json::{Value, json};

/// Why an operation did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// mailops could not take it now (unreachable, 5xx, `RATE_LIMITED`, `UNAVAILABLE`,
    /// `TIMEOUT`, `INTERNAL`, or the node key was refused, which an admin can fix): try
    /// again later, not before `retry_after` when mailops said.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// mailops refused the content (`BAD_USER_INPUT`, `CONFLICT`, …): sending it again
    /// cannot succeed.
    Refused { code: String, message: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Retry { reason, .. } => write!(f, "{reason}"),
            Failure::Refused { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

/// Error codes after which the same request may succeed later.
const RETRYABLE_CODES: [&str; 5] = [
    "RATE_LIMITED",
    "UNAVAILABLE",
    "TIMEOUT",
    "INTERNAL",
    "UNAUTHENTICATED",
];

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    authorization: String,
}

/// `https://host[:port][/path]` → its GraphQL endpoint (`/graphql` when no path is given).
pub fn graphql_endpoint(server: &str) -> anyhow::Result<String> {
    let server = server.trim().trim_end_matches('/');
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .ok_or_else(|| {
            anyhow::anyhow!("--server {server:?} must start with http:// or https://")
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        anyhow::bail!("--server {server:?} names no host");
    }
    Ok(if rest.contains('/') {
        server.to_string()
    } else {
        format!("{server}/graphql")
    })
}

/// The WebSocket endpoint next to a GraphQL endpoint.
pub fn websocket_endpoint(graphql: &str) -> String {
    let ws = if let Some(rest) = graphql.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", graphql.trim_start_matches("http://"))
    };
    format!("{ws}/ws")
}

impl Client {
    /// A client that authenticates with `authorization` (`ApiKey mko_…` or `ApiKey mke_…`).
    pub fn new(endpoint: String, authorization: String) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mailops-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Client {
            http,
            endpoint,
            authorization,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// Runs one operation; answers its `data`.
    pub async fn run(&self, query: &str, variables: Value) -> Result<Value, Failure> {
        let response = self
            .http
            .post(&self.endpoint)
            .header("Authorization", &self.authorization)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|e| Failure::Retry {
                reason: format!("mailops is unreachable: {}", error_chain(&e)),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Option<Value> = response.json().await.ok();
        classify(status.as_u16(), retry_after, body)
    }
}

/// What an answer means: its data, or a failure to retry or not.
pub fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: Option<Value>,
) -> Result<Value, Failure> {
    let first_error = body
        .as_ref()
        .and_then(|b| b["errors"].as_array())
        .and_then(|errors| errors.first())
        .cloned();
    if let Some(error) = first_error {
        let code = error["extensions"]["code"]
            .as_str()
            .unwrap_or("INTERNAL")
            .to_string();
        let message = error["message"].as_str().unwrap_or_default().to_string();
        return Err(
            if RETRYABLE_CODES.contains(&code.as_str()) || status >= 500 {
                Failure::Retry {
                    reason: format!("{code}: {message}"),
                    retry_after,
                }
            } else {
                Failure::Refused { code, message }
            },
        );
    }
    match body {
        Some(mut body) if (200..300).contains(&status) && body["data"].is_object() => {
            Ok(body["data"].take())
        }
        _ if status == 429 || status >= 500 || status == 408 => Err(Failure::Retry {
            reason: format!("mailops answered HTTP {status}"),
            retry_after,
        }),
        _ => Err(Failure::Refused {
            code: format!("HTTP {status}"),
            message: "mailops answered without data".into(),
        }),
    }
}

/// An error and its causes, one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str) -> Option<Value> {
        Some(json!({ "errors": [{ "message": "m", "extensions": { "code": code } }] }))
    }

    #[test]
    fn only_what_can_succeed_later_is_retried() {
        assert!(matches!(
            classify(200, None, error("RATE_LIMITED")),
            Err(Failure::Retry { .. })
        ));
        assert!(matches!(
            classify(429, None, None),
            Err(Failure::Retry { .. })
        ));
        assert!(matches!(
            classify(503, None, error("UNAVAILABLE")),
            Err(Failure::Retry { .. })
        ));
        assert!(matches!(
            classify(502, None, None),
            Err(Failure::Retry { .. })
        ));
        assert!(matches!(
            classify(200, None, error("UNAUTHENTICATED")),
            Err(Failure::Retry { .. })
        ));
        assert!(matches!(
            classify(200, None, error("BAD_USER_INPUT")),
            Err(Failure::Refused { .. })
        ));
        assert!(matches!(
            classify(200, None, error("CONFLICT")),
            Err(Failure::Refused { .. })
        ));
        let data = classify(200, None, Some(json!({ "data": { "a": 1 } }))).unwrap();
        assert_eq!(data["a"], 1);
    }

    #[test]
    fn endpoints_follow_the_server_address() {
        assert_eq!(
            graphql_endpoint("http://m:8080").unwrap(),
            "http://m:8080/graphql"
        );
        assert_eq!(graphql_endpoint("https://m/").unwrap(), "https://m/graphql");
        assert_eq!(
            graphql_endpoint("https://m/api/graphql").unwrap(),
            "https://m/api/graphql"
        );
        assert!(graphql_endpoint("m:8080").is_err());
        assert!(graphql_endpoint("http://").is_err());
        assert_eq!(
            websocket_endpoint("https://m/graphql"),
            "wss://m/graphql/ws"
        );
        assert_eq!(
            websocket_endpoint("http://m:1/graphql"),
            "ws://m:1/graphql/ws"
        );
    }
}
