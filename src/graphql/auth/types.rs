use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::graphql::users::types::User;

use crate::auth::Session;

/// A signed-in session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`. Short-lived.
    pub access_token: String,
    /// When the access token stops being accepted.
    pub access_token_expires_at: DateTime<Utc>,
    /// Exchange with `refreshToken` for a new session before it expires. Works once.
    pub refresh_token: String,
    /// The signed-in user.
    pub user: User,
}

impl TryFrom<Session> for AuthPayload {
    type Error = crate::error::AppError;

    fn try_from(s: Session) -> crate::error::AppResult<Self> {
        Ok(AuthPayload {
            access_token: s.access_token,
            access_token_expires_at: s.access_token_expires_at,
            refresh_token: s.refresh_token.expose_secret().to_string(),
            user: s.user.try_into()?,
        })
    }
}
