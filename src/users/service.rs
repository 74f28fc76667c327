use std::path::Path;

use entity::user::Model as UserRow;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    auth::{self, Passwords, Role},
    error::{AppError, AppResult},
};

use super::store;

pub const MAX_USERNAME_CHARS: usize = 64;

/// Folds a username to its stored form, or says why it cannot be one.
pub fn normalize_username(field: &str, input: &str) -> AppResult<String> {
    if input.is_empty() {
        return Err(AppError::bad_input(field, "must not be empty"));
    }
    if input.len() > MAX_USERNAME_CHARS {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_USERNAME_CHARS} characters"),
        ));
    }
    let name = input.to_ascii_lowercase();
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !(first_ok && rest_ok) {
        return Err(AppError::bad_input(
            field,
            "may hold only a-z, 0-9, '.', '_', '-' and '@', and must start with a letter or digit",
        ));
    }
    Ok(name)
}

fn check_password(field: &str, username: &str, password: &SecretString) -> AppResult<()> {
    auth::check_policy(username, password.expose_secret())
        .map_err(|reason| AppError::bad_input(field, reason))
}

/// Creates a user; the password must already meet the policy or is refused.
pub async fn create(
    db: &DatabaseConnection,
    passwords: &Passwords,
    audit: &AuditContext,
    username: &str,
    password: &SecretString,
    role: Role,
) -> AppResult<UserRow> {
    let change = Change::new("user.create")
        .detail(serde_json::json!({ "username": username.chars().take(64).collect::<String>(), "role": role.as_str() }));
    audit::audited(db, audit, change.clone(), async {
        let username = normalize_username("username", username)?;
        check_password("password", &username, password)?;
        let hash = passwords.hash(password).await?;
        let txn = crate::db::begin_write(db).await?;
        if store::find_by_username(&txn, &username).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "user '{username}' already exists"
            )));
        }
        let user = store::insert(&txn, &username, hash, role).await?;
        audit::commit(txn, audit, change.target("user", user.id)).await?;
        Ok(user)
    })
    .await
}

/// Changes a user's role or disabled flag. Refuses to leave the cluster without an
/// enabled admin, and revokes the user's sessions when its access changes.
pub async fn update(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
    role: Option<Role>,
    disabled: Option<bool>,
) -> AppResult<UserRow> {
    let mut detail = serde_json::Map::new();
    if let Some(role) = role {
        detail.insert("role".into(), role.as_str().into());
    }
    if let Some(disabled) = disabled {
        detail.insert("disabled".into(), disabled.into());
    }
    let change = Change::new("user.update")
        .target("user", id)
        .detail(detail.into());
    audit::audited(db, audit, change.clone(), async {
        let txn = db.begin().await?;
        store::lock_admins(&txn).await?;
        let current = store::get(&txn, id).await?;
        let was_admin = current.role == Role::Admin.as_str() && !current.disabled;
        let stays_admin = role.map_or(current.role == Role::Admin.as_str(), |r| r == Role::Admin)
            && !disabled.unwrap_or(current.disabled);
        if was_admin && !stays_admin && store::enabled_admins(&txn).await? <= 1 {
            return Err(AppError::Conflict(
                "this is the last enabled admin; make another user admin first".into(),
            ));
        }
        let access_changes = role.is_some_and(|r| r.as_str() != current.role)
            || disabled.is_some_and(|d| d && !current.disabled);
        let user = store::set_access(&txn, current, role, disabled).await?;
        if access_changes {
            auth::revoke_user_sessions(&txn, id).await?;
        }
        audit::commit(txn, audit, change).await?;
        Ok(user)
    })
    .await
}

/// Sets a new password chosen by an admin and revokes the user's sessions.
pub async fn reset_password(
    db: &DatabaseConnection,
    passwords: &Passwords,
    audit: &AuditContext,
    id: Uuid,
    password: &SecretString,
) -> AppResult<UserRow> {
    let change = Change::new("user.reset_password").target("user", id);
    audit::audited(db, audit, change.clone(), async {
        let current = store::get(db, id).await?;
        check_password("password", &current.username, password)?;
        let hash = passwords.hash(password).await?;
        let txn = db.begin().await?;
        let user = set_password_hash(&txn, current, hash).await?;
        audit::commit(txn, audit, change).await?;
        Ok(user)
    })
    .await
}

/// Stores a new password hash and revokes every session of the user: its refresh tokens,
/// and (by raising its session version) every access token issued before, at once.
pub async fn set_password_hash(
    conn: &impl ConnectionTrait,
    user: UserRow,
    hash: String,
) -> AppResult<UserRow> {
    let id = user.id;
    let user = store::set_password_hash(conn, user, hash).await?;
    store::raise_session_version(conn, id).await?;
    auth::revoke_user_sessions(conn, id).await?;
    Ok(user)
}

/// On first start, with no users at all, creates `admin` with `MAILOPS_ADMIN_PASSWORD` or
/// a random password that is logged once.
pub async fn ensure_initial_admin(
    db: &DatabaseConnection,
    passwords: &Passwords,
    configured: Option<&SecretString>,
    data_dir: &Path,
) -> AppResult<()> {
    if store::count(db).await? > 0 {
        return Ok(());
    }
    let audit = AuditContext::with_actor(audit::Actor::system());
    let Some(generated) = configured.is_none().then(auth::generate_password) else {
        if let Some(pw) = configured {
            match create(db, passwords, &audit, "admin", pw, Role::Admin).await {
                Ok(_) => tracing::info!(
                    username = "admin",
                    "created the first user with MAILOPS_ADMIN_PASSWORD"
                ),
                // Another instance created it first.
                Err(AppError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    };
    // The generated password goes to a file only its owner can read, never to a log:
    // logs are shipped and kept where anyone with access to them could sign in.
    let path = data_dir.join(INITIAL_PASSWORD_FILE);
    write_private(&path, generated.expose_secret()).map_err(|e| {
        AppError::internal(format!(
            "writing the first admin's password to {}: {e}; set MAILOPS_ADMIN_PASSWORD instead",
            path.display()
        ))
    })?;
    match create(db, passwords, &audit, "admin", &generated, Role::Admin).await {
        Ok(_) => tracing::warn!(
            username = "admin",
            file = %path.display(),
            "created the first user; its password is in this file (mode 0600): sign in, change it, delete the file"
        ),
        Err(error) => {
            let _ = std::fs::remove_file(&path);
            // Another instance created it first, with a password of its own.
            if !matches!(error, AppError::Conflict(_)) {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Where the generated password of the first admin is written, in the data directory.
pub const INITIAL_PASSWORD_FILE: &str = "admin-password";

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
