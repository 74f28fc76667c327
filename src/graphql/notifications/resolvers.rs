use async_graphql::{Context, ID, Object};

use crate::{
    auth::Role,
    graphql::{
        guards::{RoleGuard, app, audit_context},
        pagination::{ListConnection, Page, connection, found, parse_id, wants_total},
    },
    notifications::{self, CreateContactPointInput, UpdateContactPointInput},
};

use super::types::{
    ContactPoint, Notification, NotificationAttempt, NotificationFilter, NotificationPolicy,
    NotificationPolicyInput,
};

#[derive(Default)]
pub struct NotificationsQuery;

#[Object]
impl NotificationsQuery {
    /// Every contact point, by name (at most 100).
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "100 * child_complexity"
    )]
    async fn contact_points(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ContactPoint>> {
        let points = notifications::list_contact_points(&app(ctx)?.db).await?;
        Ok(points.into_iter().map(Into::into).collect())
    }

    /// One contact point, `null` when there is none with that id.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn contact_point(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ContactPoint>> {
        let id = parse_id("id", &id)?;
        let point = notifications::find_contact_point(&app(ctx)?.db, id).await?;
        Ok(point.map(Into::into))
    }

    /// Where alerts go and how they are grouped.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn notification_policy(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<NotificationPolicy> {
        Ok(notifications::current_policy(&app(ctx)?.db).await?.into())
    }

    /// Notifications, newest first.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        filter: Option<NotificationFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<Notification>> {
        let page = Page::new(first, after)?;
        let query = filter.unwrap_or_default().into();
        let listed = notifications::list(&app(ctx)?.db, &query, &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| row.id.to_string())?)
    }

    /// One notification, `null` when there is none with that id.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn notification(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Notification>> {
        let id = parse_id("id", &id)?;
        Ok(found(notifications::find(&app(ctx)?.db, id).await?)?)
    }
}

#[derive(Default)]
pub struct NotificationsMutation;

#[Object]
impl NotificationsMutation {
    /// Makes a contact point (at most 100). Its secrets are never shown again.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn create_contact_point(
        &self,
        ctx: &Context<'_>,
        input: CreateContactPointInput,
    ) -> async_graphql::Result<ContactPoint> {
        let point =
            notifications::create_contact_point(&app(ctx)?.db, &audit_context(ctx), input).await?;
        Ok(point.into())
    }

    /// Changes a contact point; fields left out stay as they are.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn update_contact_point(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateContactPointInput,
    ) -> async_graphql::Result<ContactPoint> {
        let id = parse_id("id", &id)?;
        let point =
            notifications::update_contact_point(&app(ctx)?.db, &audit_context(ctx), id, input)
                .await?;
        Ok(point.into())
    }

    /// Deletes a contact point the policy does not send to (a CONFLICT otherwise); its
    /// unsent notifications are given up. Returns what was deleted.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn delete_contact_point(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ContactPoint> {
        let id = parse_id("id", &id)?;
        let point =
            notifications::delete_contact_point(&app(ctx)?.db, &audit_context(ctx), id).await?;
        Ok(point.into())
    }

    /// Sends a test notification to a contact point now and answers the attempt.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn test_contact_point(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<NotificationAttempt> {
        let id = parse_id("id", &id)?;
        let delivery =
            notifications::test_contact_point(app(ctx)?, &audit_context(ctx), id).await?;
        Ok(NotificationAttempt::of(delivery))
    }

    /// Replaces the notification policy.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn set_notification_policy(
        &self,
        ctx: &Context<'_>,
        input: NotificationPolicyInput,
    ) -> async_graphql::Result<NotificationPolicy> {
        let record =
            notifications::set_policy(&app(ctx)?.db, &audit_context(ctx), input.into()).await?;
        Ok(record.into())
    }
}
