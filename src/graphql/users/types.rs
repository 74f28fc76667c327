use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user::Model as UserRow;

use crate::auth::Role;
use crate::error::{AppError, AppResult};

/// A person who signs in to the dashboard.
#[derive(SimpleObject, Debug, Clone)]
pub struct User {
    /// The user's id.
    pub id: ID,
    /// Lower-case; unique.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// A disabled user cannot sign in, and its sessions have been revoked.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// The last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl TryFrom<UserRow> for User {
    type Error = AppError;

    fn try_from(m: UserRow) -> AppResult<Self> {
        Ok(User {
            id: ID(m.id.to_string()),
            role: Role::parse(&m.role)?,
            username: m.username,
            disabled: m.disabled,
            created_at: m.created_at,
            last_login_at: m.last_login_at,
        })
    }
}

/// A new user.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// 1–64 characters of a–z, 0–9, `.`, `_`, `-` and `@`, starting with a letter or digit;
    /// upper case is folded to lower case.
    pub username: String,
    /// At least 12 characters, and not the username.
    #[graphql(secret)]
    pub password: String,
    /// What the user may do.
    pub role: Role,
}

// Written by hand so that the password never reaches a log line.
impl std::fmt::Debug for CreateUserInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserInput")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// Changes to a user; fields left out stay as they are. Changing the role or disabling
/// the user revokes its refresh tokens.
#[derive(InputObject, Debug, Default)]
pub struct UpdateUserInput {
    /// The new role.
    pub role: Option<Role>,
    /// True disables the user and signs it out; false enables it again.
    pub disabled: Option<bool>,
}
