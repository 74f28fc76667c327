use async_graphql::{Context, Object};
use secrecy::SecretString;

use crate::{
    auth::Role,
    graphql::guards::{PublicGuard, RoleGuard, app, audit_context, client_address, user},
    graphql::users::types::User,
};

use super::types::AuthPayload;
use crate::auth;

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in user.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(User::try_from(
            user(ctx, Role::Viewer)?.record.as_ref().clone(),
        )?)
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Signs in with a username and password. After repeated failures an account must wait
    /// before trying again (`RATE_LIMITED`, with `extensions.retryAfterSeconds`).
    #[graphql(guard = "PublicGuard")]
    async fn login(
        &self,
        ctx: &Context<'_>,
        username: String,
        #[graphql(secret)] password: String,
    ) -> async_graphql::Result<AuthPayload> {
        let session = auth::login(
            app(ctx)?,
            &audit_context(ctx),
            client_address(ctx),
            &username,
            &SecretString::from(password),
        )
        .await?;
        Ok(session.try_into()?)
    }

    /// Exchanges a refresh token for a new session. Each refresh token works once; using
    /// one again signs out every session that came from the same login.
    #[graphql(guard = "PublicGuard")]
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let session = auth::refresh(
            app(ctx)?,
            &audit_context(ctx),
            &SecretString::from(refresh_token),
        )
        .await?;
        Ok(session.try_into()?)
    }

    /// Ends the session the refresh token belongs to. Answers false for a token that is
    /// not known.
    #[graphql(guard = "PublicGuard")]
    async fn logout(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] refresh_token: String,
    ) -> async_graphql::Result<bool> {
        Ok(auth::logout(
            app(ctx)?,
            &audit_context(ctx),
            &SecretString::from(refresh_token),
        )
        .await?)
    }

    /// Changes the caller's password and signs it out of every session.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] current_password: String,
        #[graphql(secret)] new_password: String,
    ) -> async_graphql::Result<bool> {
        let caller = user(ctx, Role::Viewer)?;
        auth::change_password(
            app(ctx)?,
            &audit_context(ctx),
            client_address(ctx),
            caller,
            &SecretString::from(current_password),
            &SecretString::from(new_password),
        )
        .await?;
        Ok(true)
    }
}
