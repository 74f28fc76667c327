//! One log line and one measurement per GraphQL operation: who asked for what, from
//! where, how it ended and how long it took. Never a variable's value, a token or a key.

use std::{net::IpAddr, time::Instant};

use async_graphql::parser::types::{ExecutableDocument, OperationType};

use crate::auth::Principal;

/// An operation under way, to be logged and measured when it ends.
pub struct OperationLog {
    request_id: String,
    name: Option<String>,
    kind: &'static str,
    caller: String,
    client: IpAddr,
    started: Instant,
}

/// The operation a request runs (the one `name` names, or the only one): its type
/// (`query`, `mutation` or `subscription`) and its name, when it has one.
pub fn operation_of(
    document: &ExecutableDocument,
    name: Option<&str>,
) -> (&'static str, Option<String>) {
    let operation = match name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => document.operations.iter().next(),
    };
    let kind = match operation.map(|(_, op)| op.node.ty) {
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        _ => "query",
    };
    (kind, operation.and_then(|(n, _)| n).map(|n| n.to_string()))
}

/// The type of operation a query text starts with, for logging a WebSocket operation
/// before its document is parsed (a query may also start with `{`).
pub fn kind_of_text(query: &str) -> &'static str {
    let start = query
        .lines()
        .map(str::trim_start)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or_default();
    if start.starts_with("subscription") {
        "subscription"
    } else if start.starts_with("mutation") {
        "mutation"
    } else {
        "query"
    }
}

/// Who is calling, as the log names them.
fn caller(principal: &Principal) -> String {
    match principal {
        Principal::User(user) => format!("user:{}", user.username),
        Principal::Agent(agent) => format!("node:{}", agent.hostname),
        Principal::Enrollment(key) => format!("enrollment_key:{}", key.key_id),
        Principal::Refused(_) => "refused".into(),
        Principal::Anonymous => "anonymous".into(),
    }
}

impl OperationLog {
    pub fn start(
        request_id: &str,
        name: Option<&str>,
        kind: &'static str,
        principal: &Principal,
        client: IpAddr,
    ) -> OperationLog {
        OperationLog {
            request_id: request_id.to_owned(),
            name: name.map(|n| n.chars().take(64).collect()),
            kind,
            caller: caller(principal),
            client,
            started: Instant::now(),
        }
    }

    /// `query`, `mutation` or `subscription`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Logs and measures the operation with the codes of its errors.
    pub fn finish(self, errors: &[async_graphql::ServerError]) {
        let took = self.started.elapsed();
        let codes: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|ext| ext.get("code"))
                    .map(|code| code.to_string().trim_matches('"').to_owned())
            })
            .collect();
        let outcome = codes.first().map_or("OK", String::as_str);
        crate::telemetry::graphql_operation(self.name.as_deref(), self.kind, outcome, took);
        tracing::info!(
            request_id = self.request_id,
            operation = self.name.as_deref().unwrap_or("-"),
            kind = self.kind,
            caller = self.caller,
            client = %self.client,
            outcome = if codes.is_empty() { "OK".to_owned() } else { codes.join(",") },
            duration_ms = (took.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
            "graphql operation"
        );
    }
}
