//! Who is calling: resolved once per request (or WebSocket connection) from its
//! `Authorization` value. The GraphQL layer reads it in its guards; services take the
//! caller they act for as an argument.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    auth::{Role, cache::Cached},
    error::{AppError, AppResult},
    nodes::{self, KeyKind},
    state::AppState,
};

/// A signed-in dashboard user, as the database knew it when the request arrived: a
/// disabled user or a changed role takes effect on the next request, not at token expiry.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    /// The row the user was resolved from, so `me` needs no second query.
    pub record: Arc<entity::user::Model>,
}

/// A node's agent, authenticated by its node key. It acts only for its own node.
#[derive(Clone, Debug)]
pub struct AgentNode {
    pub node_id: Uuid,
    pub key_id: Uuid,
    pub hostname: String,
}

/// A caller holding an enrollment key: it may register nodes and do nothing else.
#[derive(Clone, Debug)]
pub struct EnrollmentCaller {
    pub key_id: Uuid,
    pub name: String,
    /// The node an admin's one-time re-enrollment key is bound to.
    pub node_id: Option<Uuid>,
}

#[derive(Clone, Debug)]
pub enum Principal {
    Anonymous,
    User(AuthUser),
    Agent(AgentNode),
    Enrollment(EnrollmentCaller),
    /// Credentials were presented and refused; operations that need a caller answer
    /// `UNAUTHENTICATED` with this reason, public ones still work.
    Refused(&'static str),
}

/// The longest `Authorization` value looked at; anything longer is refused unread.
const MAX_AUTHORIZATION_BYTES: usize = 4096;

impl Principal {
    /// Resolves an `Authorization` header value (or the same key of a WebSocket
    /// `connection_init` payload).
    pub async fn resolve(state: &AppState, authorization: Option<&str>) -> AppResult<Principal> {
        let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Principal::Anonymous);
        };
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Ok(Principal::Refused("Authorization value is too long"));
        }
        let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
        let credential = credential.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let (user_id, session_version) = match state.tokens.verify_access(credential) {
                Ok(claims) => claims,
                Err(reason) => return Ok(Principal::Refused(reason)),
            };
            let user = match state.principals.get(user_id, session_version) {
                Cached::Hit(user) => Some(user),
                Cached::Miss(generation) => {
                    let user = crate::users::find(&state.db, user_id).await?.map(Arc::new);
                    // Only users that may sign in are kept: a refusal is read anew.
                    if let Some(user) = user.as_ref().filter(|u| !u.disabled) {
                        state.principals.keep(generation, user.clone());
                    }
                    user
                }
            };
            return Ok(match user {
                Some(user) if user.disabled => Principal::Refused("this account is disabled"),
                Some(user) if user.session_version != session_version => {
                    Principal::Refused("the account's password changed; sign in again")
                }
                Some(user) => Principal::User(AuthUser {
                    id: user.id,
                    role: Role::parse(&user.role)?,
                    username: user.username.clone(),
                    record: user,
                }),
                None => Principal::Refused("this account no longer exists"),
            });
        }
        if scheme.eq_ignore_ascii_case("apikey") {
            return Self::resolve_key(state, credential).await;
        }
        Ok(Principal::Refused(
            "Authorization must be 'Bearer <access token>' or 'ApiKey <key>'",
        ))
    }

    async fn resolve_key(state: &AppState, credential: &str) -> AppResult<Principal> {
        let Some(key) = nodes::parse_key(credential) else {
            return Ok(Principal::Refused(
                "malformed API key; expected mko_<id>_<secret> or mke_<id>_<secret>",
            ));
        };
        Ok(match key.kind {
            KeyKind::Node => match nodes::authenticate_node(&state.db, &key).await? {
                Ok((key_row, node)) => {
                    nodes::touch_node_key(&state.db, &key_row);
                    Principal::Agent(AgentNode {
                        node_id: node.id,
                        key_id: key_row.id,
                        hostname: node.hostname,
                    })
                }
                Err(refusal) => Principal::Refused(refusal),
            },
            KeyKind::Enrollment => match nodes::authenticate_enrollment(&state.db, &key).await? {
                Ok(row) => Principal::Enrollment(EnrollmentCaller {
                    key_id: row.id,
                    name: row.name,
                    node_id: row.node_id,
                }),
                Err(refusal) => Principal::Refused(refusal),
            },
        })
    }

    /// The user, if it holds at least `role`.
    pub fn require(&self, role: Role) -> AppResult<&AuthUser> {
        match self {
            Principal::User(user) if user.role >= role => Ok(user),
            Principal::User(user) => Err(AppError::Forbidden(format!(
                "this needs the {} role; you are {}",
                role.name(),
                user.role.name()
            ))),
            Principal::Anonymous => Err(AppError::Unauthenticated(
                "sign in first: send Authorization: Bearer <access token>".into(),
            )),
            Principal::Agent(_) | Principal::Enrollment(_) => Err(AppError::Forbidden(
                "API keys cannot call user operations".into(),
            )),
            Principal::Refused(reason) => Err(AppError::Unauthenticated((*reason).into())),
        }
    }

    /// The agent, when the caller authenticated with a node key.
    pub fn require_agent(&self) -> AppResult<&AgentNode> {
        match self {
            Principal::Agent(agent) => Ok(agent),
            Principal::Anonymous => Err(AppError::Unauthenticated(
                "send the node's key: Authorization: ApiKey mko_<id>_<secret>".into(),
            )),
            Principal::Refused(reason) => Err(AppError::Unauthenticated((*reason).into())),
            _ => Err(AppError::Forbidden("this is for node agents only".into())),
        }
    }

    /// The enrollment key, when the caller authenticated with one.
    pub fn require_enrollment(&self) -> AppResult<&EnrollmentCaller> {
        match self {
            Principal::Enrollment(caller) => Ok(caller),
            Principal::Anonymous => Err(AppError::Unauthenticated(
                "send an enrollment key: Authorization: ApiKey mke_<id>_<secret>".into(),
            )),
            Principal::Refused(reason) => Err(AppError::Unauthenticated((*reason).into())),
            _ => Err(AppError::Forbidden(
                "registering a node needs an enrollment key".into(),
            )),
        }
    }
}

/// The address a request (or WebSocket) came from: the peer, or the client a trusted proxy
/// names (`MAILOPS_TRUSTED_PROXIES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The id of the HTTP request (or WebSocket connection) being served.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);
