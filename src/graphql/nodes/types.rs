use async_graphql::{ComplexObject, Context, ID, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    enrollment_key::Model as EnrollmentKeyRow, node::Model as NodeRow,
    node_key::Model as NodeKeyRow, node_status_change::Model as NodeStatusChangeRow,
};

use crate::{
    auth::Role,
    error::{AppError, AppResult},
    graphql::guards::{RoleGuard, RoleOrAgentGuard, app},
};

use crate::nodes::{Label, NodeRole, NodeStatus};
use crate::{
    graphql::{
        ips::loaders::IpsByNode, loaders::load_one, metrics::loaders::LatestByNode,
        pagination::convert_all,
    },
    ips::NodeIp,
};

/// Whether a node is in maintenance, and since when, why and by whom.
#[derive(SimpleObject, Clone, Debug)]
pub struct Maintenance {
    /// Whether the node is in maintenance now.
    pub enabled: bool,
    /// Why, as the operator put it.
    pub reason: Option<String>,
    /// When maintenance started.
    pub since: Option<DateTime<Utc>>,
    /// Maintenance ends by itself at this time.
    pub until: Option<DateTime<Utc>>,
    /// The user who started it.
    pub by: Option<String>,
}

/// A machine of the mail cluster.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Node {
    /// The node's id.
    pub id: ID,
    /// Lower-case DNS name; unique.
    pub hostname: String,
    /// What the node does; at least one role.
    pub roles: Vec<NodeRole>,
    /// Where the node stands; see `NodeStatus`.
    pub status: NodeStatus,
    /// The last time its agent talked to mailops.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The version its agent reported.
    pub agent_version: Option<String>,
    /// Key/value labels, ordered by key.
    pub labels: Vec<Label>,
    /// Free text set by operators.
    pub description: Option<String>,
    /// Maintenance state.
    pub maintenance: Maintenance,
    /// When the node first registered.
    pub created_at: DateTime<Utc>,
    /// The `agentConfig.version` the node's agent last reported as applied on the node
    /// (its pool file written and its MTA reloaded). Equal to `configVersion` once the
    /// node's MTA uses what mailops decided.
    pub applied_config_version: Option<String>,
    /// When the agent first reported `appliedConfigVersion`.
    pub applied_config_at: Option<DateTime<Utc>>,
    /// Why the agent could not apply `configVersion` (a failed reload command, an
    /// unwritable pool file); null once it could.
    pub config_error: Option<String>,
    #[graphql(skip)]
    pub uuid: uuid::Uuid,
    /// The IPs, when the list that produced this node fetched them for the whole page.
    #[graphql(skip)]
    pub prefetched_ips: Option<Vec<IpAddress>>,
}

#[ComplexObject]
impl Node {
    /// The node's IP addresses.
    #[graphql(guard = "RoleOrAgentGuard::new(Role::Viewer)")]
    async fn ips(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<IpAddress>> {
        if let Some(ips) = &self.prefetched_ips {
            return Ok(ips.clone());
        }
        let ips = load_one::<IpsByNode, _>(ctx, self.uuid).await?;
        Ok(ips
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Status changes, newest first.
    #[graphql(
        guard = "RoleOrAgentGuard::new(Role::Viewer)",
        complexity = "10 + first.clamp(0, 100) as usize * child_complexity"
    )]
    async fn status_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 0, maximum = 100))] first: i32,
    ) -> async_graphql::Result<Vec<NodeStatusChange>> {
        let rows = crate::nodes::status_history(&app(ctx)?.db, self.uuid, first as u64).await?;
        Ok(convert_all(rows)?)
    }

    /// The latest reading of each service the node reports.
    #[graphql(guard = "RoleOrAgentGuard::new(Role::Viewer)")]
    async fn latest(&self, ctx: &Context<'_>) -> async_graphql::Result<crate::metrics::NodeLatest> {
        let readings = load_one::<LatestByNode, _>(ctx, self.uuid)
            .await?
            .unwrap_or_default();
        Ok((&readings).into())
    }

    /// The version of what the node's agent should apply now (`agentConfig.version`).
    #[graphql(guard = "RoleOrAgentGuard::new(Role::Viewer)")]
    async fn config_version(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let ips = load_one::<IpsByNode, _>(ctx, self.uuid)
            .await?
            .unwrap_or_default();
        let push_interval = app(ctx)?.config.nodes.push_interval;
        Ok(crate::ips::agent_config_of(push_interval, ips)?.version)
    }

    /// The node's agent keys (never their secrets).
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<NodeKey>> {
        let rows = crate::nodes::keys_of(&app(ctx)?.db, self.uuid).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl TryFrom<NodeRow> for Node {
    type Error = AppError;

    fn try_from(m: NodeRow) -> AppResult<Self> {
        let labels = Label::from_json(&m.labels);
        Ok(Node {
            id: ID(m.id.to_string()),
            uuid: m.id,
            prefetched_ips: None,
            hostname: m.hostname,
            roles: NodeRole::from_mask(m.roles_mask),
            status: NodeStatus::parse(&m.status)?,
            last_seen_at: m.last_seen_at,
            agent_version: m.agent_version,
            labels,
            description: m.description,
            maintenance: Maintenance {
                enabled: m.maintenance_enabled,
                reason: m.maintenance_reason,
                since: m.maintenance_since,
                until: m.maintenance_until,
                by: m.maintenance_by,
            },
            created_at: m.created_at,
            applied_config_version: m.applied_config_version,
            applied_config_at: m.applied_config_at,
            config_error: m.config_error,
        })
    }
}

/// An IP address of a node.
#[derive(SimpleObject, Clone, Debug)]
pub struct IpAddress {
    /// The address's id.
    pub id: ID,
    /// Canonical text form.
    pub address: String,
}

impl From<NodeIp> for IpAddress {
    fn from(ip: NodeIp) -> Self {
        IpAddress {
            id: ID(ip.id.to_string()),
            address: ip.address,
        }
    }
}

/// One status transition of a node.
#[derive(SimpleObject, Clone, Debug)]
pub struct NodeStatusChange {
    /// `null` for the node's first status.
    pub from: Option<NodeStatus>,
    /// The status it changed to.
    pub to: NodeStatus,
    /// When it changed.
    pub at: DateTime<Utc>,
    /// Why: `registered`, `no agent contact within the stale threshold`, `maintenance started`, …
    pub reason: String,
}

impl TryFrom<NodeStatusChangeRow> for NodeStatusChange {
    type Error = AppError;

    fn try_from(m: NodeStatusChangeRow) -> AppResult<Self> {
        Ok(NodeStatusChange {
            from: m
                .from_status
                .as_deref()
                .map(NodeStatus::parse)
                .transpose()?,
            to: NodeStatus::parse(&m.to_status)?,
            at: m.changed_at,
            reason: m.reason,
        })
    }
}

/// An agent key of a node, without its secret.
#[derive(SimpleObject, Clone, Debug)]
pub struct NodeKey {
    /// The key's id (the middle part of `mko_<id>_<secret>`).
    pub id: ID,
    /// When the key was issued.
    pub created_at: DateTime<Utc>,
    /// When the key was revoked; a revoked key is refused.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Kept to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<NodeKeyRow> for NodeKey {
    fn from(m: NodeKeyRow) -> Self {
        NodeKey {
            id: ID(m.id.to_string()),
            created_at: m.created_at,
            revoked_at: m.revoked_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// A freshly issued node key. `apiKey` is shown only here, once.
#[derive(SimpleObject)]
pub struct NodeKeyCreated {
    /// Send as `Authorization: ApiKey <apiKey>`.
    pub api_key: String,
    /// The new key's details.
    pub node_key: NodeKey,
}

/// What an agent gets from `registerNode`: its node and its key, shown once.
#[derive(SimpleObject)]
pub struct NodeRegistration {
    /// The registered node.
    pub node: Node,
    /// Send as `Authorization: ApiKey <apiKey>` from now on. Registering again rotates it.
    pub api_key: String,
}

/// A key that lets agents register nodes.
#[derive(SimpleObject, Clone, Debug)]
pub struct EnrollmentKey {
    /// The key's id (the middle part of `mke_<id>_<secret>`).
    pub id: ID,
    /// What the key is for.
    pub name: String,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// After this time the key registers nothing.
    pub expires_at: Option<DateTime<Utc>>,
    /// `null`: unlimited.
    pub max_uses: Option<i32>,
    /// How many registrations it has made.
    pub uses: i32,
    /// When the key was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the key last registered a node.
    pub last_used_at: Option<DateTime<Utc>>,
    /// For a re-enrollment key: the one node it may enroll again.
    pub node_id: Option<ID>,
}

impl From<EnrollmentKeyRow> for EnrollmentKey {
    fn from(m: EnrollmentKeyRow) -> Self {
        EnrollmentKey {
            id: ID(m.id.to_string()),
            name: m.name,
            created_at: m.created_at,
            expires_at: m.expires_at,
            max_uses: m.max_uses,
            uses: m.uses,
            revoked_at: m.revoked_at,
            last_used_at: m.last_used_at,
            node_id: m.node_id.map(|id| ID(id.to_string())),
        }
    }
}

/// A new enrollment key. `key` is shown only here, once.
#[derive(SimpleObject)]
pub struct EnrollmentKeyCreated {
    /// Give it to agents as `Authorization: ApiKey <key>` for `registerNode`.
    pub key: String,
    /// The new key's details.
    pub enrollment_key: EnrollmentKey,
}
