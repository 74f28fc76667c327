use async_graphql::{Context, Object};

use crate::{
    auth::Role,
    graphql::guards::{RoleGuard, app},
};

use crate::overview::Overview;

#[derive(Default)]
pub struct OverviewQuery;

#[Object]
impl OverviewQuery {
    /// The cluster at a glance: health with its reasons, nodes by status, the last hour's
    /// mail, queue size, blacklisted IPs and firing alerts. One answer is computed at a
    /// time and served to every caller for `MAILOPS_OVERVIEW_CACHE_TTL` (30 s by default);
    /// `generatedAt` says when it was computed.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn overview(&self, ctx: &Context<'_>) -> async_graphql::Result<Overview> {
        let state = app(ctx)?;
        let overview = state.overview.get(state).await?;
        Ok(overview.as_ref().clone())
    }
}
