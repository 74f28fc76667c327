use async_graphql::{Context, Object};

use crate::{
    auth::Role,
    error::{AppError, AppResult},
    graphql::{
        guards::{RoleGuard, app},
        pagination::{ListConnection, Page, connection, parse_id, wants_total},
    },
};

use super::types::{AuditEntry, AuditFilter};
use crate::audit;

const MAX_FILTER_TEXT: usize = 255;

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit log, newest first.
    #[graphql(
        guard = "RoleGuard::new(Role::Admin)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AuditFilter>,
    ) -> async_graphql::Result<ListConnection<AuditEntry>> {
        let page = Page::new(first, after)?;
        let filter = service_filter(filter.unwrap_or_default())?;
        let listed = audit::list(&app(ctx)?.db, &filter, &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| row.id.to_string())?)
    }
}

fn service_filter(filter: AuditFilter) -> AppResult<audit::AuditFilter> {
    for (field, value) in [
        ("filter.action", &filter.action),
        ("filter.targetId", &filter.target_id),
    ] {
        if let Some(value) = value {
            if value.len() > MAX_FILTER_TEXT {
                return Err(AppError::bad_input(
                    field,
                    format!("must be at most {MAX_FILTER_TEXT} bytes"),
                ));
            }
            crate::input::check_text(field, value, crate::input::TextKind::Line)?;
        }
    }
    Ok(audit::AuditFilter {
        action: filter.action,
        actor_id: filter
            .actor_id
            .map(|id| parse_id("filter.actorId", &id))
            .transpose()?,
        target_id: filter.target_id,
        outcome: filter.outcome.map(|o| o.as_str().to_string()),
        since: filter.since,
        until: filter.until,
    })
}
