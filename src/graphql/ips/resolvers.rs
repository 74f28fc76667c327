use async_graphql::{Context, ID, Object};

use crate::{
    auth::Role,
    graphql::{
        guards::{AgentGuard, RoleGuard, app, audit_context, principal},
        pagination::{ListConnection, Page, connection, convert_all, found, parse_id, wants_total},
    },
};

use super::types::{AddIpsInput, BulkIpActionInput, Ip, IpCheckJob, IpFilter};
use crate::ips::{
    self, AgentConfig, BulkIpActionResult, IpActionOutcome, IpStatus, OutcomeKind, UpdateIpInput,
};

#[derive(Default)]
pub struct IpsQuery;

#[Object]
impl IpsQuery {
    /// What the caller's node applies: the push interval and the node's IPs with their
    /// status and pool. Node keys only, and only about their own node.
    #[graphql(guard = "AgentGuard")]
    async fn agent_config(&self, ctx: &Context<'_>) -> async_graphql::Result<AgentConfig> {
        let agent = principal(ctx).require_agent()?;
        let state = app(ctx)?;
        Ok(ips::agent_config(&state.db, agent.node_id, state.config.nodes.push_interval).await?)
    }

    /// Sending IPs in address order (IPv4 before IPv6).
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn ips(
        &self,
        ctx: &Context<'_>,
        filter: Option<IpFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<Ip>> {
        let page = Page::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let listed = ips::list(&app(ctx)?.db, &filter.into(), &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| {
            ips::key_cursor(&row.address_key)
        })?)
    }

    /// One IP by address, `null` when it is not in the inventory.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn ip(&self, ctx: &Context<'_>, address: String) -> async_graphql::Result<Option<Ip>> {
        Ok(found(ips::find(&app(ctx)?.db, &address).await?)?)
    }

    /// IPs listed on at least one zone, in address order.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn blacklisted_ips(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<Ip>> {
        let page = Page::new(first, after)?;
        let filter = IpFilter {
            listed: Some(true),
            ..IpFilter::default()
        };
        let listed = ips::list(&app(ctx)?.db, &filter.into(), &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| {
            ips::key_cursor(&row.address_key)
        })?)
    }

    /// A DNSBL check job, `null` when there is none with that id.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn ip_check_job(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<IpCheckJob>> {
        let id = parse_id("id", &id)?;
        Ok(found(ips::find_job(&app(ctx)?.db, id).await?)?)
    }
}

#[derive(Default)]
pub struct IpsMutation;

#[Object]
impl IpsMutation {
    /// Adds addresses to the inventory as ACTIVE: a list, a CIDR block, or both (at most
    /// 1,024 addresses). Nothing is added when any of them is already there.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn add_ips(
        &self,
        ctx: &Context<'_>,
        input: AddIpsInput,
    ) -> async_graphql::Result<Vec<Ip>> {
        let node_id = input
            .node_id
            .as_ref()
            .map(|id| parse_id("input.nodeId", id))
            .transpose()?;
        let rows = ips::add(&app(ctx)?.db, &audit_context(ctx), &input.into(), node_id).await?;
        Ok(convert_all(rows)?)
    }

    /// Removes an address and its DNSBL history from the inventory; returns what was removed.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn remove_ip(&self, ctx: &Context<'_>, address: String) -> async_graphql::Result<Ip> {
        let row = ips::remove(&app(ctx)?.db, &audit_context(ctx), &address).await?;
        Ok(row.try_into()?)
    }

    /// Moves an IP to a node, or detaches it when `nodeId` is left out.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn assign_ip(
        &self,
        ctx: &Context<'_>,
        address: String,
        node_id: Option<ID>,
    ) -> async_graphql::Result<Ip> {
        let node_id = node_id
            .as_ref()
            .map(|id| parse_id("nodeId", id))
            .transpose()?;
        let row = ips::assign(&app(ctx)?.db, &audit_context(ctx), &address, node_id).await?;
        Ok(row.try_into()?)
    }

    /// Changes an IP's pool, reverse DNS name or notes.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn update_ip(
        &self,
        ctx: &Context<'_>,
        address: String,
        input: UpdateIpInput,
    ) -> async_graphql::Result<Ip> {
        let row = ips::update(&app(ctx)?.db, &audit_context(ctx), &address, &input).await?;
        Ok(row.try_into()?)
    }

    /// Sets an IP's status. A RETIRED IP cannot change status.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn set_ip_status(
        &self,
        ctx: &Context<'_>,
        address: String,
        status: IpStatus,
        reason: Option<String>,
    ) -> async_graphql::Result<Ip> {
        let row = ips::set_status(
            &app(ctx)?.db,
            &audit_context(ctx),
            &address,
            status,
            reason.as_deref(),
        )
        .await?;
        Ok(row.try_into()?)
    }

    /// Pauses, resumes, warms or retires many IPs (at most 10,000) and says what happened
    /// to each; with `dryRun`, only says what would happen.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn bulk_ip_action(
        &self,
        ctx: &Context<'_>,
        input: BulkIpActionInput,
    ) -> async_graphql::Result<BulkIpActionResult> {
        let dry_run = input.dry_run;
        let outcomes = ips::bulk_action(&app(ctx)?.db, &audit_context(ctx), &input.into()).await?;
        let changed = outcomes
            .iter()
            .filter(|o| o.kind == OutcomeKind::Changed)
            .count() as i32;
        Ok(BulkIpActionResult {
            dry_run,
            changed,
            outcomes: outcomes
                .into_iter()
                .map(IpActionOutcome::from_outcome)
                .collect(),
        })
    }

    /// Queues a DNSBL check of these addresses (every ACTIVE and WARMING IP when left
    /// out) and returns the job; query `ipCheckJob(id)` for its state and result.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn check_ip_blacklists(
        &self,
        ctx: &Context<'_>,
        addresses: Option<Vec<String>>,
    ) -> async_graphql::Result<IpCheckJob> {
        let job = ips::enqueue(&app(ctx)?.db, &audit_context(ctx), addresses.as_deref()).await?;
        Ok(job.try_into()?)
    }
}
