//! Events that code deep inside a transaction wants published once the GraphQL operation
//! that runs it has finished, that is, after its transaction has committed or rolled back.
//!
//! Audit entries are noted by id and looked up again after the operation, so an entry
//! published is an entry committed; a rolled-back one is simply not found. Session
//! revocations are published as they are: a spurious one only makes a client reconnect.

use std::sync::{Arc, Mutex};

use async_graphql::{
    Response,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute},
};
use uuid::Uuid;

use crate::state::AppState;

use super::{AuditRecorded, CredentialHolder, Event, SessionsRevoked};

#[derive(Default)]
struct Pending {
    audit_ids: Vec<Uuid>,
    events: Vec<Event>,
}

tokio::task_local! {
    static PENDING: Arc<Mutex<Pending>>;
}

fn note(add: impl FnOnce(&mut Pending)) {
    // Outside a GraphQL operation (CLI, jobs) nobody collects; nothing is published.
    let _ = PENDING.try_with(|pending| {
        add(&mut pending.lock().unwrap_or_else(|e| e.into_inner()));
    });
}

/// Notes an audit entry written in the current operation's transaction.
pub fn audit_written(id: Uuid) {
    note(|p| p.audit_ids.push(id));
}

/// Notes that credentials were revoked in the current operation: the holder's open
/// WebSockets close once it has finished.
pub fn sessions_revoked(holder: CredentialHolder, reason: &str) {
    note(|p| {
        p.events.push(Event::SessionsRevoked(SessionsRevoked {
            holder,
            reason: reason.into(),
        }))
    });
}

/// Notes that the IPs of these nodes changed in the current operation: their agents'
/// `agentConfigChanged` subscriptions look again once it has finished (a rolled-back change
/// only makes them find the version they have).
pub fn ips_changed(node_ids: impl IntoIterator<Item = Uuid>) {
    if let Some(event) = super::IpsChanged::of(node_ids) {
        note(|p| p.events.push(event));
    }
}

/// The schema extension that collects and publishes.
pub struct PublishAfterCommit;

impl ExtensionFactory for PublishAfterCommit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PublishAfterCommitExtension)
    }
}

struct PublishAfterCommitExtension;

#[async_trait::async_trait]
impl Extension for PublishAfterCommitExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        match ctx.data::<AppState>() {
            Ok(state) => publishing(state, next.run(ctx, operation_name)).await,
            Err(_) => next.run(ctx, operation_name).await,
        }
    }
}

/// Runs one operation, collecting what it notes, and publishes that once it has finished.
pub async fn publishing(state: &AppState, operation: impl Future<Output = Response>) -> Response {
    let pending = Arc::new(Mutex::new(Pending::default()));
    let response = PENDING.scope(pending.clone(), operation).await;
    let Pending { audit_ids, events } =
        std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
    state.events.publish_all(events);
    if !audit_ids.is_empty() {
        tokio::spawn(publish_audit(state.clone(), audit_ids));
    }
    response
}

async fn publish_audit(state: AppState, ids: Vec<Uuid>) {
    let committed = crate::audit::entries(&state.db, ids).await;
    match committed {
        Ok(rows) => state.events.publish_all(
            rows.into_iter()
                .map(|row| Event::AuditRecorded(AuditRecorded(row))),
        ),
        Err(e) => {
            e.log_if_internal();
            tracing::error!("audit entries could not be read back for publishing");
        }
    }
}
