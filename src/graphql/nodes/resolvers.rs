use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use crate::{
    auth::{Principal, Role},
    error::{AppError, AppResult},
    graphql::{
        guards::{
            AgentGuard, EnrollmentGuard, RoleGuard, RoleOrAgentGuard, app, audit_context, principal,
        },
        pagination::{ListConnection, Page, connection, found, parse_id, wants_total},
    },
};

use super::types::{
    EnrollmentKey, EnrollmentKeyCreated, Node, NodeKey, NodeKeyCreated, NodeRegistration,
};
use crate::nodes::{
    self, CreateEnrollmentKeyInput, NodeFilter, RegisterNodeInput, UpdateNodeInput,
};

#[derive(Default)]
pub struct NodesQuery;

#[Object]
impl NodesQuery {
    /// Nodes ordered by hostname. Retired nodes are left out unless `filter.statuses`
    /// names RETIRED.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        filter: Option<NodeFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<Node>> {
        let page = Page::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let db = &app(ctx)?.db;
        let listed = nodes::list(db, &filter, &page, wants_total(ctx)).await?;
        // One query for the whole page's IPs, rather than one batch per node.
        let wants_ips = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("ips")
            .exists();
        let mut ips = if wants_ips {
            let ids: Vec<_> = listed.rows.iter().map(|row| row.id).collect();
            crate::ips::ips_of_nodes(db, &ids).await?
        } else {
            Default::default()
        };
        let nodes = listed.try_map(|row| -> AppResult<Node> {
            let node_ips = wants_ips.then(|| {
                ips.remove(&row.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Into::into)
                    .collect()
            });
            let mut node = Node::try_from(row)?;
            node.prefetched_ips = node_ips;
            Ok(node)
        })?;
        Ok(connection(&page, nodes, |node| node.hostname.clone())?)
    }

    /// One node, by `id` or by `hostname` (exactly one of them). A node agent may read
    /// only its own node.
    #[graphql(guard = "RoleOrAgentGuard::new(Role::Viewer)")]
    async fn node(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        hostname: Option<String>,
    ) -> async_graphql::Result<Option<Node>> {
        let db = &app(ctx)?.db;
        let node = match (id, hostname) {
            (Some(id), None) => nodes::find(db, parse_id("id", &id)?).await?,
            (None, Some(hostname)) => {
                let hostname = nodes::validate_hostname("hostname", &hostname)?;
                nodes::find_by_hostname(db, &hostname).await?
            }
            _ => {
                return Err(
                    AppError::bad_input("id", "give exactly one of id and hostname").into(),
                );
            }
        };
        if let Principal::Agent(agent) = principal(ctx)
            && node.as_ref().is_none_or(|n| n.id != agent.node_id)
        {
            return Err(AppError::Forbidden("a node key may read only its own node".into()).into());
        }
        Ok(found(node)?)
    }

    /// Enrollment keys, newest first; revoked ones only when asked for.
    #[graphql(
        guard = "RoleGuard::new(Role::Admin)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn enrollment_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(default = false)] include_revoked: bool,
    ) -> async_graphql::Result<ListConnection<EnrollmentKey>> {
        let page = Page::new(first, after)?;
        let listed =
            nodes::list_enrollment_keys(&app(ctx)?.db, &page, include_revoked, wants_total(ctx))
                .await?;
        Ok(connection(&page, listed, |row| row.id.to_string())?)
    }
}

#[derive(Default)]
pub struct NodesMutation;

#[Object]
impl NodesMutation {
    /// Registers the caller's node, or updates the node with that hostname, and returns
    /// its API key (shown once; registering again rotates it). Needs an enrollment key:
    /// `Authorization: ApiKey mke_…`.
    #[graphql(guard = "EnrollmentGuard")]
    async fn register_node(
        &self,
        ctx: &Context<'_>,
        input: RegisterNodeInput,
    ) -> async_graphql::Result<NodeRegistration> {
        let caller = principal(ctx).require_enrollment()?;
        let (node, api_key) =
            nodes::register(app(ctx)?, &audit_context(ctx), caller, &input).await?;
        Ok(NodeRegistration {
            node: node.try_into()?,
            api_key,
        })
    }

    /// Tells mailops the agent is alive; the node is ONLINE again if it was STALE or DOWN.
    /// With `appliedConfigVersion`, the `agentConfig.version` the agent has applied on the
    /// node, and `configError`, why it could not apply a newer one (at most 1,000
    /// characters; cleared by a report without it). Needs the node's key.
    #[graphql(guard = "AgentGuard")]
    async fn agent_heartbeat(
        &self,
        ctx: &Context<'_>,
        agent_version: Option<String>,
        applied_config_version: Option<String>,
        config_error: Option<String>,
    ) -> async_graphql::Result<Node> {
        let agent = principal(ctx).require_agent()?;
        let report = nodes::AgentReport {
            agent_version,
            applied_config_version,
            config_error,
        };
        let node = nodes::heartbeat(app(ctx)?, agent, &report).await?;
        Ok(node.try_into()?)
    }

    /// Changes a node's labels, roles or description.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn update_node(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateNodeInput,
    ) -> async_graphql::Result<Node> {
        let id = parse_id("id", &id)?;
        let node = nodes::update(&app(ctx)?.db, &audit_context(ctx), id, &input).await?;
        Ok(node.try_into()?)
    }

    /// Puts a node into maintenance or takes it out. With `until`, maintenance ends by
    /// itself then.
    #[graphql(guard = "RoleGuard::new(Role::Operator)")]
    async fn set_node_maintenance(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
        reason: Option<String>,
        until: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Node> {
        let id = parse_id("id", &id)?;
        let node = nodes::set_maintenance(
            app(ctx)?,
            &audit_context(ctx),
            id,
            enabled,
            reason.as_deref(),
            until,
        )
        .await?;
        Ok(node.try_into()?)
    }

    /// Retires a node: its keys stop working and lists hide it unless asked.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn decommission_node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Node> {
        let id = parse_id("id", &id)?;
        let node = nodes::decommission(app(ctx)?, &audit_context(ctx), id).await?;
        Ok(node.try_into()?)
    }

    /// Revokes every key of a node and issues a new one (shown once).
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn rotate_node_key(
        &self,
        ctx: &Context<'_>,
        node_id: ID,
    ) -> async_graphql::Result<NodeKeyCreated> {
        let node_id = parse_id("nodeId", &node_id)?;
        let (row, api_key) = nodes::rotate_key(&app(ctx)?.db, &audit_context(ctx), node_id).await?;
        Ok(NodeKeyCreated {
            api_key,
            node_key: row.into(),
        })
    }

    /// Revokes one node key.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn revoke_node_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<NodeKey> {
        let id = parse_id("id", &id)?;
        let row = nodes::revoke_key(&app(ctx)?.db, &audit_context(ctx), id).await?;
        Ok(row.into())
    }

    /// Creates an enrollment key for agents to register nodes with (shown once).
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn create_enrollment_key(
        &self,
        ctx: &Context<'_>,
        input: CreateEnrollmentKeyInput,
    ) -> async_graphql::Result<EnrollmentKeyCreated> {
        let (row, key) = nodes::create_enrollment_key(
            &app(ctx)?.db,
            &audit_context(ctx),
            &input.name,
            input.expires_at,
            input.max_uses,
        )
        .await?;
        Ok(EnrollmentKeyCreated {
            key,
            enrollment_key: row.into(),
        })
    }

    /// Creates a one-time key to enroll an existing node again (shown once): for an agent
    /// reinstalled without its node key. It registers only that node's hostname, once,
    /// within 24 hours; registering revokes the node's old keys.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn create_reenrollment_key(
        &self,
        ctx: &Context<'_>,
        node_id: ID,
    ) -> async_graphql::Result<EnrollmentKeyCreated> {
        let node_id = parse_id("nodeId", &node_id)?;
        let (row, key) =
            nodes::create_reenrollment_key(&app(ctx)?.db, &audit_context(ctx), node_id).await?;
        Ok(EnrollmentKeyCreated {
            key,
            enrollment_key: row.into(),
        })
    }

    /// Revokes an enrollment key; nodes it registered keep their own keys.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn revoke_enrollment_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<EnrollmentKey> {
        let id = parse_id("id", &id)?;
        let row = nodes::revoke_enrollment_key(&app(ctx)?.db, &audit_context(ctx), id).await?;
        Ok(row.into())
    }
}
