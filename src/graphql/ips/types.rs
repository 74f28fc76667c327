use crate::graphql::pagination::found;
use async_graphql::{ComplexObject, Context, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    dnsbl_check_job::Model as DnsblCheckJobRow, dnsbl_result::Model as DnsblResultRow,
    dnsbl_transition::Model as DnsblTransitionRow, ip_address::Model as IpAddressRow,
};

use crate::{
    auth::Role,
    error::{AppError, AppResult},
    graphql::{
        guards::{RoleGuard, app},
        pagination::{ListConnection, Page, connection, convert_all, wants_total},
    },
    graphql::{
        ips::loaders::ResultsByIp, loaders::load_one, mailflow::loaders::SendingStatsByIp,
        metrics::types::TimeRange, nodes::loaders::NodesById, nodes::types::Node,
        pagination::id_texts,
    },
    ips::{
        BulkAction, DnsblState, IpAction, IpCheckJobKind, IpCheckJobState, IpCheckSummary, IpQuery,
        IpStatus, NewIps,
    },
    mailflow::{Deliverability, IpWindow, MailCounts},
};

/// A sending IP address of the cluster.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Ip {
    /// The IP's id.
    pub id: ID,
    /// Canonical text form (RFC 5952 for IPv6).
    pub address: String,
    /// 4 or 6.
    pub version: i32,
    /// The node it belongs to, if any.
    pub node_id: Option<ID>,
    /// The pool it sends for (free-form name, e.g. `transactional`).
    pub pool: Option<String>,
    /// Whether it sends mail.
    pub status: IpStatus,
    /// Why its status was last changed.
    pub status_reason: Option<String>,
    /// When its status last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
    /// Its reverse DNS (PTR) name.
    pub reverse_dns: Option<String>,
    /// Free text set by operators.
    pub notes: Option<String>,
    /// When it entered the inventory.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub uuid: uuid::Uuid,
    #[graphql(skip)]
    pub node_uuid: Option<uuid::Uuid>,
}

impl TryFrom<IpAddressRow> for Ip {
    type Error = AppError;

    fn try_from(m: IpAddressRow) -> AppResult<Self> {
        let version = if m.address.contains(':') { 6 } else { 4 };
        Ok(Ip {
            id: ID(m.id.to_string()),
            address: m.address,
            version,
            node_id: m.node_id.map(|n| ID(n.to_string())),
            pool: m.pool,
            status: IpStatus::parse(&m.status)?,
            status_reason: m.status_reason,
            status_changed_at: m.status_changed_at,
            reverse_dns: m.reverse_dns,
            notes: m.notes,
            created_at: m.created_at,
            updated_at: m.updated_at,
            uuid: m.id,
            node_uuid: m.node_id,
        })
    }
}

#[ComplexObject]
impl Ip {
    /// The node it belongs to.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn node(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Node>> {
        let Some(node_id) = self.node_uuid else {
            return Ok(None);
        };
        let node = load_one::<NodesById, _>(ctx, node_id).await?;
        Ok(found(node)?)
    }

    /// Mail sent from this address over a range (a preset `range`, or `from`/`to`): every
    /// minute the range touches, counted whole. A preset range ends with the current
    /// minute.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn sending_stats(
        &self,
        ctx: &Context<'_>,
        range: Option<TimeRange>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<MailCounts> {
        // Preset ranges end at the next whole minute, so that every IP of a list asks for
        // the same window and they are loaded together.
        let now = Utc::now();
        let minute_end = DateTime::<Utc>::from_timestamp_millis(
            (now.timestamp_millis().div_euclid(60_000) + 1) * 60_000,
        )
        .unwrap_or(now);
        let (from, to) = TimeRange::resolve(range, from, to, minute_end)?;
        if to <= from {
            return Err(AppError::bad_input("to", "must be after from").into());
        }
        let counts = load_one::<SendingStatsByIp, _>(
            ctx,
            IpWindow {
                ip: self.address.clone(),
                from_ms: from.timestamp_millis(),
                to_ms: to.timestamp_millis(),
            },
        )
        .await?;
        Ok(counts.unwrap_or_default())
    }

    /// How this address does at each recipient provider over a range (a preset `range`,
    /// or `from`/`to`; every minute touched, counted whole): sent, delivered, deferred
    /// and bounced with their rates, the most frequent refusal categories, and the same
    /// for its pool as a whole, for comparison.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)", complexity = 20)]
    async fn deliverability(
        &self,
        ctx: &Context<'_>,
        range: Option<TimeRange>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Deliverability> {
        let state = app(ctx)?;
        let (from, to) = TimeRange::resolve(range, from, to, Utc::now())?;
        Ok(crate::mailflow::deliverability(
            &state.db,
            &self.address,
            self.pool.as_deref(),
            from,
            to,
            state.config.mail.minute_retention,
        )
        .await?)
    }

    /// The latest result on each zone checked so far, in zone order.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn blacklist(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DnsblResult>> {
        let rows = load_one::<ResultsByIp, _>(ctx, self.uuid)
            .await?
            .unwrap_or_default();
        Ok(convert_all(rows)?)
    }

    /// Whether it is listed on any zone (an UNKNOWN result keeps the last definite answer).
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn listed(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.blacklist(ctx).await?.iter().any(|r| r.listed))
    }

    /// Listings and delistings, newest first.
    #[graphql(
        guard = "RoleGuard::new(Role::Viewer)",
        complexity = "crate::graphql::pagination::list_complexity(first, child_complexity)"
    )]
    async fn blacklist_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ListConnection<BlacklistTransition>> {
        let page = Page::new(first, after)?;
        let listed = crate::ips::history(&app(ctx)?.db, self.uuid, &page, wants_total(ctx)).await?;
        Ok(connection(&page, listed, |row| row.id.to_string())?)
    }
}

/// The latest result of an IP on one zone.
#[derive(SimpleObject, Clone, Debug)]
pub struct DnsblResult {
    /// The zone, e.g. `zen.spamhaus.org`.
    pub zone: String,
    /// What the latest check found.
    pub state: DnsblState,
    /// The last definite answer: true while listed, also through an UNKNOWN check.
    pub listed: bool,
    /// Since when it has been listed on this zone.
    pub listed_since: Option<DateTime<Utc>>,
    /// The zone's answers, e.g. `127.0.0.2`.
    pub return_codes: Vec<String>,
    /// What the answers mean on this zone, e.g. `SBL`, `XBL`, `PBL`.
    pub categories: Vec<String>,
    /// The zone's TXT record for the listing.
    pub reason: Option<String>,
    /// Why the state is UNKNOWN.
    pub detail: Option<String>,
    /// When the zone was last asked.
    pub checked_at: DateTime<Utc>,
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl TryFrom<DnsblResultRow> for DnsblResult {
    type Error = AppError;

    fn try_from(m: DnsblResultRow) -> AppResult<Self> {
        Ok(DnsblResult {
            zone: m.zone,
            state: DnsblState::parse(&m.state)?,
            listed: m.listed,
            listed_since: m.listed_since,
            return_codes: split_list(&m.return_codes),
            categories: split_list(&m.categories),
            reason: m.reason,
            detail: m.detail,
            checked_at: m.checked_at,
        })
    }
}

/// An IP was listed on, or delisted from, a zone.
#[derive(SimpleObject, Clone, Debug)]
pub struct BlacklistTransition {
    /// The zone.
    pub zone: String,
    /// True for a listing, false for a delisting.
    pub listed: bool,
    /// What the listing meant on that zone (empty for a delisting).
    pub categories: Vec<String>,
    /// The zone's TXT record for the listing.
    pub reason: Option<String>,
    /// When the check saw the change.
    pub at: DateTime<Utc>,
}

impl From<DnsblTransitionRow> for BlacklistTransition {
    fn from(m: DnsblTransitionRow) -> Self {
        BlacklistTransition {
            zone: m.zone,
            listed: m.listed,
            categories: split_list(&m.categories),
            reason: m.reason,
            at: m.at,
        }
    }
}

/// Which IPs a list shows; all conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct IpFilter {
    /// Any of these statuses.
    pub statuses: Option<Vec<IpStatus>>,
    /// Belonging to any of these nodes (at most 500).
    pub node_ids: Option<Vec<ID>>,
    /// In this pool.
    pub pool: Option<String>,
    /// Inside this CIDR block, e.g. `192.0.2.0/24`.
    pub subnet: Option<String>,
    /// Listed (true) or not listed (false) on any zone.
    pub listed: Option<bool>,
}

impl From<IpFilter> for IpQuery {
    fn from(filter: IpFilter) -> IpQuery {
        IpQuery {
            node_ids: filter.node_ids.map(id_texts),
            statuses: filter.statuses,
            pool: filter.pool,
            subnet: filter.subnet,
            listed: filter.listed,
        }
    }
}

/// Addresses to add to the inventory: a list, a CIDR block (at most 1,024 addresses in
/// all), or both.
#[derive(InputObject, Clone, Debug)]
pub struct AddIpsInput {
    /// Single addresses.
    pub addresses: Option<Vec<String>>,
    /// Every address of this block, e.g. `192.0.2.0/26`.
    pub cidr: Option<String>,
    /// The node they belong to.
    pub node_id: Option<ID>,
    /// The pool they send for.
    pub pool: Option<String>,
}

impl From<AddIpsInput> for NewIps {
    fn from(input: AddIpsInput) -> NewIps {
        NewIps {
            addresses: input.addresses,
            cidr: input.cidr,
            pool: input.pool,
        }
    }
}

/// One action on many IPs, named by address or by filter (exactly one; at most 10,000 IPs).
#[derive(InputObject, Clone, Debug)]
pub struct BulkIpActionInput {
    /// The IPs, by address.
    pub addresses: Option<Vec<String>>,
    /// The IPs, by filter.
    pub filter: Option<IpFilter>,
    /// What to do.
    pub action: IpAction,
    /// Why; kept with the status and in the audit log.
    pub reason: Option<String>,
    /// Only say what would happen; change nothing.
    #[graphql(default = false)]
    pub dry_run: bool,
}

impl From<BulkIpActionInput> for BulkAction {
    fn from(input: BulkIpActionInput) -> BulkAction {
        BulkAction {
            filter: input.filter.map(Into::into),
            addresses: input.addresses,
            action: input.action,
            reason: input.reason,
            dry_run: input.dry_run,
        }
    }
}

/// A DNSBL check, queued by `checkIpBlacklists` or by the schedule.
#[derive(SimpleObject, Clone, Debug)]
pub struct IpCheckJob {
    /// The job's id.
    pub id: ID,
    /// Who asked for it.
    pub kind: IpCheckJobKind,
    /// Where it stands.
    pub state: IpCheckJobState,
    /// Attempts so far.
    pub attempts: i32,
    /// When it runs (again), while QUEUED.
    pub next_run_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// What it found, once SUCCEEDED.
    pub result: Option<IpCheckSummary>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<DnsblCheckJobRow> for IpCheckJob {
    type Error = AppError;

    fn try_from(m: DnsblCheckJobRow) -> AppResult<Self> {
        Ok(IpCheckJob {
            id: ID(m.id.to_string()),
            kind: IpCheckJobKind::parse(&m.kind)?,
            state: IpCheckJobState::parse(&m.state)?,
            attempts: m.attempts,
            next_run_at: m.next_run_at,
            last_error: m.last_error,
            result: m.result.and_then(|r| serde_json::from_value(r).ok()),
            created_at: m.created_at,
            started_at: m.started_at,
            finished_at: m.finished_at,
        })
    }
}
