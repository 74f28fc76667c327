use async_graphql::{Context, ID, Object};
use secrecy::SecretString;

use crate::{
    auth::Role,
    graphql::{
        guards::{RoleGuard, app, audit_context},
        pagination::{ListConnection, Page, connection, found, parse_id, wants_total},
    },
};

use super::types::{CreateUserInput, UpdateUserInput, User};
use crate::users;

#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// All users, ordered by username.
    #[graphql(
        guard = "RoleGuard::new(Role::Admin)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<User>> {
        let page = Page::new(first, after)?;
        let listed = users::list(&app(ctx)?.db, &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| row.username.clone())?)
    }

    /// One user by id.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        let id = parse_id("id", &id)?;
        Ok(found(users::find(&app(ctx)?.db, id).await?)?)
    }
}

#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Creates a user.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> async_graphql::Result<User> {
        let state = app(ctx)?;
        let password = SecretString::from(input.password);
        let user = users::create(
            &state.db,
            &state.passwords,
            &audit_context(ctx),
            &input.username,
            &password,
            input.role,
        )
        .await?;
        Ok(user.try_into()?)
    }

    /// Changes a user's role or disables it. The last enabled admin cannot be demoted or
    /// disabled.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateUserInput,
    ) -> async_graphql::Result<User> {
        let id = parse_id("id", &id)?;
        let user = users::update(
            &app(ctx)?.db,
            &audit_context(ctx),
            id,
            input.role,
            input.disabled,
        )
        .await?;
        Ok(user.try_into()?)
    }

    /// Sets a user's password and signs it out everywhere.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn reset_user_password(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(secret)] password: String,
    ) -> async_graphql::Result<User> {
        let state = app(ctx)?;
        let id = parse_id("id", &id)?;
        let user = users::reset_password(
            &state.db,
            &state.passwords,
            &audit_context(ctx),
            id,
            &SecretString::from(password),
        )
        .await?;
        Ok(user.try_into()?)
    }
}
