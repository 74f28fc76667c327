use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    db::batch::Admission,
    graphql::metrics::types::TimeRange,
    graphql::{
        guards::{AgentGuard, RoleGuard, app, point_budget, principal},
        pagination::{self, ListConnection, Page, connection, parse_ids, wants_total},
    },
};

use super::types::{MailEvent, MailEventFilter};
use crate::mailflow::{
    self, BounceCategory, FlowQuery, MailEventBatchInput, MailFlow, MailFlowGroupBy,
    MailIngestResult,
};

#[derive(Default)]
pub struct MailFlowQuery;

#[Object]
impl MailFlowQuery {
    /// Mail events counted per step over a range (a preset `range`, or `from`/`to`), for
    /// the whole cluster or split by sending IP, node, recipient provider, refusal
    /// category or IP pool (`groupBy`), each group split again by `thenBy` (IP × provider,
    /// say). `sendingIps`, `pools`, `providers` and `categories` (each 1 to 100 entries)
    /// keep only those counts; a category keeps only refusals. Every minute
    /// the range touches is counted whole. `step` is in seconds and a whole number of
    /// minutes, at most 1,500 points; without one, the smallest of 1 min, 5 min, 15 min,
    /// 1 h, 6 h and 1 d giving at most 1,000 points. Whole-hour steps read the hourly
    /// counters, which ranges older than the 1-minute retention need.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::limits::mail_flow_complexity(group_by != MailFlowGroupBy::None, then_by.is_some(), top)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn mail_flow(
        &self,
        ctx: &Context<'_>,
        range: Option<TimeRange>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        step: Option<i64>,
        #[graphql(default)] group_by: MailFlowGroupBy,
        then_by: Option<MailFlowGroupBy>,
        node_ids: Option<Vec<ID>>,
        sending_ips: Option<Vec<String>>,
        pools: Option<Vec<String>>,
        providers: Option<Vec<String>>,
        categories: Option<Vec<BounceCategory>>,
        #[graphql(desc = "Groups returned at most, largest first: 1 to 100, 20 when left out.")]
        top: Option<i32>,
    ) -> async_graphql::Result<MailFlow> {
        let state = app(ctx)?;
        let (from, to) = TimeRange::resolve(range, from, to, Utc::now())?;
        let node_ids = node_ids.map(|ids| parse_ids("nodeIds", &ids)).transpose()?;
        let flow = mailflow::flow(
            &state.db,
            &FlowQuery {
                from,
                to,
                step_seconds: step,
                group_by,
                then_by,
                node_ids,
                sending_ips,
                pools,
                providers,
                categories,
                top: usize::try_from(top.unwrap_or(20)).unwrap_or(0),
            },
            &state.config.mail,
            point_budget(ctx)?,
        )
        .await?;
        Ok(flow)
    }

    /// Raw mail events (kept for `MAILOPS_MAIL_EVENTS_RETENTION`, 7 days by default),
    /// newest arrival first: what happened to one message, or the latest events of a
    /// node or sending IP.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "pagination::list_complexity(first, child_complexity)"
    )]
    async fn mail_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: MailEventFilter,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<MailEvent>> {
        let page = Page::new(first, after)?;
        let listed =
            mailflow::list_events(&app(ctx)?.db, &filter.into(), &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| row.id.to_string())?)
    }
}

#[derive(Default)]
pub struct MailFlowMutation;

#[Object]
impl MailFlowMutation {
    /// Stores a batch of mail events for the caller's node (node keys only) and adds them
    /// to the mail flow counters. Retrying a batch with the same `batchId` is safe: it is
    /// answered from the first time and counted once. Answers only after the batch is
    /// committed; a batch with any invalid event writes nothing and names the event.
    #[graphql(guard = "AgentGuard")]
    async fn ingest_mail_events(
        &self,
        ctx: &Context<'_>,
        batch: MailEventBatchInput,
    ) -> async_graphql::Result<MailIngestResult> {
        let agent = principal(ctx).require_agent()?;
        let outcome = mailflow::store_batch(app(ctx)?, agent, &batch, Admission::Live).await;
        crate::db::batch::measure("mail", &outcome);
        let outcome = outcome?;
        Ok(MailIngestResult {
            batch_id: batch.batch_id,
            accepted: outcome.accepted,
            duplicate: outcome.duplicate,
        })
    }
}
