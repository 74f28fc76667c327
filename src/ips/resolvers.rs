use async_graphql::{Context, ID, Object, connection::Connection};

use crate::{
    auth::Role,
    graphql::{
        guards::{RoleGuard, app, audit_context},
        pagination::{ConnectionTotal, Page, connection, parse_id, wants_total},
    },
};

use super::{
    IpStatus, checks, service,
    types::{
        AddIpsInput, BulkIpActionInput, BulkIpActionResult, Ip, IpActionOutcome, IpCheckJob,
        IpFilter, OutcomeKind, UpdateIpInput,
    },
};

#[derive(Default)]
pub struct IpsQuery;

#[Object]
impl IpsQuery {
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
    ) -> async_graphql::Result<Connection<String, Ip, ConnectionTotal>> {
        let page = Page::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let (rows, has_next, total) =
            service::list(&app(ctx)?.db, &filter, &page, wants_total(ctx)).await?;
        Ok(connection(&page, rows, has_next, total, |row| {
            service::key_cursor(&row.address_key)
        }))
    }

    /// One IP by address, `null` when it is not in the inventory.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn ip(&self, ctx: &Context<'_>, address: String) -> async_graphql::Result<Option<Ip>> {
        Ok(service::find(&app(ctx)?.db, &address)
            .await?
            .map(Into::into))
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
    ) -> async_graphql::Result<Connection<String, Ip, ConnectionTotal>> {
        let page = Page::new(first, after)?;
        let filter = IpFilter {
            listed: Some(true),
            ..IpFilter::default()
        };
        let (rows, has_next, total) =
            service::list(&app(ctx)?.db, &filter, &page, wants_total(ctx)).await?;
        Ok(connection(&page, rows, has_next, total, |row| {
            service::key_cursor(&row.address_key)
        }))
    }

    /// A DNSBL check job, `null` when there is none with that id.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn ip_check_job(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<IpCheckJob>> {
        let id = parse_id("id", &id)?;
        Ok(checks::find_job(&app(ctx)?.db, id).await?.map(Into::into))
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
        let rows = service::add(&app(ctx)?.db, &audit_context(ctx), &input, node_id).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Removes an address and its DNSBL history from the inventory; returns what was removed.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn remove_ip(&self, ctx: &Context<'_>, address: String) -> async_graphql::Result<Ip> {
        let row = service::remove(&app(ctx)?.db, &audit_context(ctx), &address).await?;
        Ok(row.into())
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
        let row = service::assign(&app(ctx)?.db, &audit_context(ctx), &address, node_id).await?;
        Ok(row.into())
    }

    /// Changes an IP's pool, reverse DNS name or notes.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn update_ip(
        &self,
        ctx: &Context<'_>,
        address: String,
        input: UpdateIpInput,
    ) -> async_graphql::Result<Ip> {
        let row = service::update(&app(ctx)?.db, &audit_context(ctx), &address, &input).await?;
        Ok(row.into())
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
        let row = service::set_status(
            &app(ctx)?.db,
            &audit_context(ctx),
            &address,
            status,
            reason.as_deref(),
        )
        .await?;
        Ok(row.into())
    }

    /// Pauses, resumes, warms or retires many IPs (at most 10,000) and says what happened
    /// to each; with `dryRun`, only says what would happen.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn bulk_ip_action(
        &self,
        ctx: &Context<'_>,
        input: BulkIpActionInput,
    ) -> async_graphql::Result<BulkIpActionResult> {
        let outcomes = service::bulk_action(&app(ctx)?.db, &audit_context(ctx), &input).await?;
        let changed = outcomes
            .iter()
            .filter(|o| o.kind == OutcomeKind::Changed)
            .count() as i32;
        Ok(BulkIpActionResult {
            dry_run: input.dry_run,
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
        let job = checks::enqueue(&app(ctx)?.db, &audit_context(ctx), addresses.as_deref()).await?;
        Ok(job.into())
    }
}
