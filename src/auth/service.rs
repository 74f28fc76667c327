use std::net::IpAddr;

use chrono::{DateTime, Utc};
use entity::user::Model as UserRow;
use sea_orm::{ConnectionTrait, TransactionTrait};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{
    audit::{self, Actor, AuditContext, Change},
    auth::{
        AuthUser,
        tokens::{hash_secret, new_refresh_token},
    },
    error::{AppError, AppResult},
    state::AppState,
    users::{find, find_by_username, normalize_username, set_last_login, set_password_hash},
};

use super::store;

/// Refresh tokens are 43 characters; anything much longer is not one of ours.
const MAX_REFRESH_TOKEN_BYTES: usize = 256;
const INVALID_LOGIN: &str = "invalid username or password";

/// A signed-in session: what `login` and `refreshToken` hand out.
pub struct Session {
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: SecretString,
    pub user: UserRow,
}

/// Checks a username and password and opens a session. Unknown users, wrong passwords and
/// disabled accounts get the same answer in the same time; an account with too many
/// recent failures must wait.
pub async fn login(
    state: &AppState,
    audit: &AuditContext,
    client: IpAddr,
    username: &str,
    password: &SecretString,
) -> AppResult<Session> {
    let account = normalize_username("username", username)?;
    let attempt = state.login_backoff.reserve(&account, client).await?;
    let user = find_by_username(&state.db, &account).await?;
    let matches = state
        .passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        _ => {
            let attempt = AuditContext {
                actor: Actor {
                    kind: "anonymous",
                    id: None,
                    name: account.clone(),
                },
                request_id: audit.request_id.clone(),
            };
            let error = AppError::Unauthenticated(INVALID_LOGIN.into());
            audit::record_failure(&state.db, &attempt, Change::new("auth.login"), &error).await;
            return Err(error);
        }
    };
    state.login_backoff.succeeded(attempt).await;

    let actor = AuditContext {
        actor: Actor {
            kind: "user",
            id: Some(user.id),
            name: user.username.clone(),
        },
        request_id: audit.request_id.clone(),
    };
    let txn = state.db.begin().await?;
    let user = set_last_login(&txn, user, Utc::now()).await?;
    let session = open_session(state, &txn, user, Uuid::now_v7()).await?;
    audit::record(
        &txn,
        &actor,
        Change::new("auth.login").target("user", session.user.id),
    )
    .await?;
    txn.commit().await?;
    Ok(session)
}

/// Stores a new refresh token in `family` and signs an access token for `user`.
async fn open_session(
    state: &AppState,
    conn: &impl ConnectionTrait,
    user: UserRow,
    family: Uuid,
) -> AppResult<Session> {
    let refresh_token = new_refresh_token();
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(state.tokens.refresh_ttl)
        .map_err(|e| AppError::internal(format!("refresh token lifetime: {e}")))?;
    store::insert_refresh_token(
        conn,
        family,
        user.id,
        hash_secret(refresh_token.expose_secret()),
        now + ttl,
    )
    .await?;
    let access = state.tokens.issue_access(user.id, user.session_version)?;
    Ok(Session {
        access_token: access.token,
        access_token_expires_at: access.expires_at,
        refresh_token,
        user,
    })
}

/// Exchanges a refresh token for a new session in the same family. Each token works once:
/// using one again revokes its whole family, since one of the two users is not its owner.
/// Of two simultaneous exchanges, the first to claim the token wins and the other counts
/// as a reuse.
pub async fn refresh(
    state: &AppState,
    audit: &AuditContext,
    token: &SecretString,
) -> AppResult<Session> {
    let invalid = || AppError::Unauthenticated("invalid refresh token".into());
    let token = token.expose_secret();
    if token.is_empty() || token.len() > MAX_REFRESH_TOKEN_BYTES {
        return Err(invalid());
    }
    let hash = hash_secret(token);
    let now = Utc::now();
    let txn = state.db.begin().await?;
    // The claim is the transaction's first statement, so concurrent exchanges are
    // decided here.
    let claimed = store::claim(&txn, &hash, now).await?;
    let Some(row) = store::find_by_hash(&txn, &hash).await? else {
        return Err(invalid());
    };
    let user = find(&txn, row.user_id).await?;
    let actor = AuditContext {
        actor: Actor {
            kind: "user",
            id: Some(row.user_id),
            name: user
                .as_ref()
                .map_or_else(String::new, |u| u.username.clone()),
        },
        request_id: audit.request_id.clone(),
    };
    let change = Change::new("auth.refresh")
        .target("session", row.family_id)
        .detail(serde_json::json!({}));

    if !claimed {
        let error = if row.revoked_at.is_some() {
            AppError::Unauthenticated("refresh token has been revoked; sign in again".into())
        } else if row.used_at.is_some() {
            store::revoke_family(&txn, row.family_id).await?;
            AppError::Unauthenticated(
                "refresh token was already used; its session has been revoked, sign in again"
                    .into(),
            )
        } else {
            AppError::Unauthenticated("refresh token has expired; sign in again".into())
        };
        audit::record_failure(&txn, &actor, change, &error).await;
        txn.commit().await?;
        return Err(error);
    }

    let user = match user {
        Some(user) if !user.disabled => user,
        _ => {
            store::revoke_family(&txn, row.family_id).await?;
            txn.commit().await?;
            return Err(AppError::Unauthenticated("this account is disabled".into()));
        }
    };
    let session = open_session(state, &txn, user, row.family_id).await?;
    audit::commit(txn, &actor, change).await?;
    Ok(session)
}

/// Revokes the session the refresh token belongs to. Answers whether it was one of ours.
pub async fn logout(
    state: &AppState,
    audit: &AuditContext,
    token: &SecretString,
) -> AppResult<bool> {
    let token = token.expose_secret();
    if token.is_empty() || token.len() > MAX_REFRESH_TOKEN_BYTES {
        return Ok(false);
    }
    let txn = crate::db::begin_write(&state.db).await?;
    let Some(row) = store::find_by_hash(&txn, &hash_secret(token)).await? else {
        return Ok(false);
    };
    store::revoke_family(&txn, row.family_id).await?;
    crate::realtime::after_commit::sessions_revoked(
        crate::realtime::CredentialHolder::User(row.user_id),
        "signed out",
    );
    let actor = match find(&txn, row.user_id).await? {
        Some(user) => AuditContext {
            actor: Actor {
                kind: "user",
                id: Some(user.id),
                name: user.username,
            },
            request_id: audit.request_id.clone(),
        },
        None => audit.clone(),
    };
    audit::record(
        &txn,
        &actor,
        Change::new("auth.logout").target("session", row.family_id),
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Changes the caller's own password after checking the current one, and signs the user
/// out of every session.
pub async fn change_password(
    state: &AppState,
    audit: &AuditContext,
    client: IpAddr,
    caller: &AuthUser,
    current: &SecretString,
    new: &SecretString,
) -> AppResult<()> {
    let change = Change::new("user.change_password").target("user", caller.id);
    audit::audited(&state.db, audit, change.clone(), async {
        // Guessing through changePassword is held back like guessing through login: for
        // this account at this address only, so the owner elsewhere is not locked out.
        let attempt = state
            .login_backoff
            .reserve(&caller.username, client)
            .await?;
        let user = find(&state.db, caller.id)
            .await?
            .ok_or_else(|| AppError::Unauthenticated("this account no longer exists".into()))?;
        if !state
            .passwords
            .verify(current, Some(&user.password_hash))
            .await?
        {
            return Err(AppError::bad_input(
                "currentPassword",
                "is not your current password",
            ));
        }
        state.login_backoff.succeeded(attempt).await;
        super::password::check_policy(&user.username, new.expose_secret())
            .map_err(|reason| AppError::bad_input("newPassword", reason))?;
        let hash = state.passwords.hash(new).await?;
        let txn = state.db.begin().await?;
        set_password_hash(&txn, user, hash).await?;
        audit::commit(txn, audit, change).await?;
        Ok(())
    })
    .await
}

/// Revokes every refresh token of a user (password, role or disabled changes).
pub async fn revoke_user_sessions(conn: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    store::revoke_all_of_user(conn, user_id).await?;
    crate::realtime::after_commit::sessions_revoked(
        crate::realtime::CredentialHolder::User(user_id),
        "the account's access changed; sign in again",
    );
    Ok(())
}
