use sea_orm::{ConnectionTrait, DatabaseTransaction};
use uuid::Uuid;

use crate::{
    auth::{Principal, RequestId},
    error::{AppError, AppResult},
};

use super::{model::AuditOutcome, store};

/// Who acted.
#[derive(Clone, Debug)]
pub struct Actor {
    pub kind: &'static str,
    pub id: Option<Uuid>,
    pub name: String,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            kind: "system",
            id: None,
            name: "mailops".into(),
        }
    }

    pub fn cli() -> Actor {
        Actor {
            kind: "cli",
            id: None,
            name: "mailops cli".into(),
        }
    }
}

/// The actor and request that audit entries are written for.
#[derive(Clone, Debug)]
pub struct AuditContext {
    pub actor: Actor,
    pub request_id: Option<String>,
}

impl AuditContext {
    pub fn new(principal: &Principal, request_id: Option<&RequestId>) -> Self {
        let actor = match principal {
            Principal::User(user) => Actor {
                kind: "user",
                id: Some(user.id),
                name: user.username.clone(),
            },
            Principal::Agent(agent) => Actor {
                kind: "agent",
                id: Some(agent.node_id),
                name: agent.hostname.clone(),
            },
            Principal::Enrollment(caller) => Actor {
                kind: "enrollment_key",
                id: Some(caller.key_id),
                name: caller.name.clone(),
            },
            _ => Actor {
                kind: "anonymous",
                id: None,
                name: "anonymous".into(),
            },
        };
        AuditContext {
            actor,
            request_id: request_id.map(|r| r.0.clone()),
        }
    }

    pub fn with_actor(actor: Actor) -> Self {
        AuditContext {
            actor,
            request_id: None,
        }
    }
}

/// What was done, and to what.
#[derive(Clone, Debug)]
pub struct Change {
    pub action: &'static str,
    pub target_kind: Option<&'static str>,
    pub target_id: Option<String>,
    /// Never a secret.
    pub detail: Option<serde_json::Value>,
}

impl Change {
    pub fn new(action: &'static str) -> Self {
        Change {
            action,
            target_kind: None,
            target_id: None,
            detail: None,
        }
    }

    pub fn target(mut self, kind: &'static str, id: impl ToString) -> Self {
        self.target_kind = Some(kind);
        self.target_id = Some(id.to_string());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Records a change that succeeded. Call it inside the transaction that makes the change,
/// so the entry exists exactly when the change does.
pub async fn record(
    conn: &impl ConnectionTrait,
    ctx: &AuditContext,
    change: Change,
) -> AppResult<()> {
    let id = Uuid::now_v7();
    store::insert(conn, id, ctx, change, AuditOutcome::Success).await?;
    crate::realtime::after_commit::audit_written(id);
    Ok(())
}

/// Records a successful change in the transaction that makes it, then commits both.
pub async fn commit(txn: DatabaseTransaction, ctx: &AuditContext, change: Change) -> AppResult<()> {
    record(&txn, ctx, change).await?;
    txn.commit().await?;
    Ok(())
}

/// Records a change that was refused, with the code and message the caller saw. Internal
/// errors are not recorded: the database may be what failed.
pub async fn record_failure(
    conn: &impl ConnectionTrait,
    ctx: &AuditContext,
    mut change: Change,
    error: &AppError,
) {
    if error.is_internal() {
        return;
    }
    let mut detail = change
        .detail
        .take()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = detail.as_object_mut() {
        map.insert("code".into(), error.code().into());
        map.insert("message".into(), error.client_message().into());
    }
    change.detail = Some(detail);
    let id = Uuid::now_v7();
    let insert = store::insert(conn, id, ctx, change, AuditOutcome::Failure).await;
    match insert {
        Ok(_) => crate::realtime::after_commit::audit_written(id),
        Err(e) => {
            e.log_if_internal();
            tracing::error!("could not write a failure to the audit log");
        }
    }
}

/// Runs `work`; when it fails, records the failure before handing the error back.
pub async fn audited<T>(
    conn: &impl ConnectionTrait,
    ctx: &AuditContext,
    change: Change,
    work: impl Future<Output = AppResult<T>>,
) -> AppResult<T> {
    let result = work.await;
    if let Err(error) = &result {
        record_failure(conn, ctx, change, error).await;
    }
    result
}
