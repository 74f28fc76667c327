use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    graphql::{
        guards::{RoleGuard, app, audit_context},
        pagination::{ListConnection, Page, connection, convert_all, found, parse_id, wants_total},
    },
};

use super::types::{
    Alert, AlertFilter, AlertRule, AlertSilence, CreateAlertRuleInput, SilenceAlertsResult,
    SilenceMatcherInput, UpdateAlertRuleInput,
};
use crate::alerts;

#[derive(Default)]
pub struct AlertsQuery;

#[Object]
impl AlertsQuery {
    /// Every alert rule, by name.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn alert_rules(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AlertRule>> {
        Ok(convert_all(alerts::list_rules(&app(ctx)?.db).await?)?)
    }

    /// One alert rule, `null` when there is none with that id.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn alert_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<AlertRule>> {
        let id = parse_id("id", &id)?;
        Ok(found(alerts::find_rule(&app(ctx)?.db, id).await?)?)
    }

    /// Alerts, newest first.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<Alert>> {
        let page = Page::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let listed =
            alerts::list_alerts(&app(ctx)?.db, &filter.into(), &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| row.id.to_string())?)
    }

    /// One alert, `null` when there is none with that id.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn alert(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Alert>> {
        let id = parse_id("id", &id)?;
        Ok(found(alerts::find_alert(&app(ctx)?.db, id).await?)?)
    }

    /// Silences, newest first (the newest 500): only those in force (`active: true`), only
    /// those that ended (`false`), or all.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::pagination::list_complexity(None, child_complexity)"
    )]
    async fn alert_silences(
        &self,
        ctx: &Context<'_>,
        active: Option<bool>,
    ) -> async_graphql::Result<Vec<AlertSilence>> {
        Ok(convert_all(alerts::silences(&app(ctx)?.db, active).await?)?)
    }
}

#[derive(Default)]
pub struct AlertsMutation;

#[Object]
impl AlertsMutation {
    /// Creates an alert rule (at most 500 in all); it is evaluated from the next cycle.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn create_alert_rule(
        &self,
        ctx: &Context<'_>,
        input: CreateAlertRuleInput,
    ) -> async_graphql::Result<AlertRule> {
        let rule = alerts::create_rule(&app(ctx)?.db, &audit_context(ctx), input.into()).await?;
        Ok(rule.try_into()?)
    }

    /// Changes an alert rule; fields left out stay as they are.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn update_alert_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAlertRuleInput,
    ) -> async_graphql::Result<AlertRule> {
        let id = parse_id("id", &id)?;
        let new_name = input.name.clone();
        let rule = alerts::update_rule(
            &app(ctx)?.db,
            &audit_context(ctx),
            id,
            new_name.as_deref(),
            |current| input.apply_to(current),
        )
        .await?;
        Ok(rule.try_into()?)
    }

    /// Deletes an alert rule and its alerts (open ones are announced as RESOLVED);
    /// returns what was deleted.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn delete_alert_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<AlertRule> {
        let id = parse_id("id", &id)?;
        let rule = alerts::delete_rule(app(ctx)?, &audit_context(ctx), id).await?;
        Ok(rule.try_into()?)
    }

    /// Records that you are on an open alert, with an optional note (at most 1,000
    /// characters). Acknowledging again changes nothing; a RESOLVED alert is a CONFLICT.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn acknowledge_alert(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
    ) -> async_graphql::Result<Alert> {
        let id = parse_id("id", &id)?;
        let alert =
            alerts::acknowledge(app(ctx)?, &audit_context(ctx), id, note.as_deref()).await?;
        Ok(alert.try_into()?)
    }

    /// Silences the alerts the matcher picks until `until` (at most 90 days ahead): the
    /// open ones now and any raised before then. They still change state but do not
    /// count as active.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn silence_alerts(
        &self,
        ctx: &Context<'_>,
        matcher: SilenceMatcherInput,
        until: DateTime<Utc>,
        reason: String,
    ) -> async_graphql::Result<SilenceAlertsResult> {
        let (silence, covered) = alerts::silence(
            &app(ctx)?.db,
            &audit_context(ctx),
            &matcher.into(),
            until,
            &reason,
        )
        .await?;
        Ok(SilenceAlertsResult {
            silence: silence.try_into()?,
            covered: covered.min(i32::MAX as u64) as i32,
        })
    }

    /// Ends a silence now; the alerts it covered are no longer silenced.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn expire_silence(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<AlertSilence> {
        let id = parse_id("id", &id)?;
        let silence = alerts::expire_silence(&app(ctx)?.db, &audit_context(ctx), id).await?;
        Ok(silence.try_into()?)
    }
}
