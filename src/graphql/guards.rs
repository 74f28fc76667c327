//! Guards and context accessors: every field states who may call it with one of these
//! guards, and resolvers read the caller, the state and the request through them.

use async_graphql::{Context, Guard};

use crate::{
    auth::{AuthUser, Principal, RequestId, Role},
    error::{AppError, AppResult},
    state::AppState,
};

/// Lets a field through when the caller holds at least the given role.
pub struct RoleGuard(Role);

impl RoleGuard {
    pub fn new(role: Role) -> Self {
        RoleGuard(role)
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        principal(ctx).require(self.0)?;
        Ok(())
    }
}

/// Lets a field through for node agents (node keys).
pub struct AgentGuard;

impl Guard for AgentGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        principal(ctx).require_agent()?;
        Ok(())
    }
}

/// Lets a field through for enrollment keys.
pub struct EnrollmentGuard;

impl Guard for EnrollmentGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        principal(ctx).require_enrollment()?;
        Ok(())
    }
}

/// Lets a field through for users holding at least `role`, and for node agents (which the
/// resolver then holds to their own node).
pub struct RoleOrAgentGuard(Role);

impl RoleOrAgentGuard {
    pub fn new(role: Role) -> Self {
        RoleOrAgentGuard(role)
    }
}

impl Guard for RoleOrAgentGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match principal(ctx) {
            Principal::Agent(_) => Ok(()),
            other => {
                other.require(self.0)?;
                Ok(())
            }
        }
    }
}

/// Marks a field that anyone may call (its arguments are its credentials, as with
/// `login`). Written out so that every field states a decision.
pub struct PublicGuard;

impl Guard for PublicGuard {
    async fn check(&self, _ctx: &Context<'_>) -> async_graphql::Result<()> {
        Ok(())
    }
}

static ANONYMOUS: Principal = Principal::Anonymous;

/// What is left of the operation's points (see [`crate::input::PointBudget`]).
pub fn point_budget<'a>(ctx: &'a Context<'_>) -> AppResult<&'a crate::input::PointBudget> {
    ctx.data::<crate::input::PointBudget>()
        .map_err(|_| AppError::internal("the operation has no point budget"))
}

/// The client's address (see `MAILOPS_TRUSTED_PROXIES`); the unspecified address when the
/// operation did not arrive over HTTP or WebSocket.
pub fn client_address(ctx: &Context<'_>) -> std::net::IpAddr {
    ctx.data_opt::<crate::auth::ClientAddr>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |client| client.0)
}

pub fn principal<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_opt::<Principal>().unwrap_or(&ANONYMOUS)
}

/// The caller as a user holding at least `role`. Guards have already checked this; the
/// resolver asks again to get the user without an `unwrap`.
pub fn user<'a>(ctx: &Context<'a>, role: Role) -> AppResult<&'a AuthUser> {
    principal(ctx).require(role)
}

pub fn app<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal("application state missing from the schema"))
}

pub fn request_id(ctx: &Context<'_>) -> Option<String> {
    ctx.data_opt::<RequestId>().map(|r| r.0.clone())
}

/// The caller and request that the audit entries of this operation are written for.
pub fn audit_context(ctx: &Context<'_>) -> crate::audit::AuditContext {
    crate::audit::AuditContext::new(principal(ctx), ctx.data_opt::<RequestId>())
}
