//! The subscription root: each field filters the event stream for one kind of event.
//!
//! Filtering happens here, on the server, against the event as it was published once; the
//! only per-subscriber work is deciding whether an event matches and building its payload.

use std::collections::HashSet;

use async_graphql::{Context, ErrorExtensions as _, ID, Subscription};
use futures_util::{Stream, StreamExt as _};
use uuid::Uuid;

use crate::{
    auth::Role,
    error::{AppError, AppResult},
    graphql::guards::{AgentGuard, RoleGuard, app, principal},
    ips::AgentConfig,
    state::AppState,
};

use super::types::{
    AlertNotice, AuditEvent, IpReputationEvent, MailFlowSecond, MetricsUpdate, NodeStatusEvent,
};
use crate::realtime::{Delivery, Event, Published};

/// Nodes one `metricsUpdated` subscription may name at most.
pub const MAX_NODES: usize = 500;
/// Metric names one `metricsUpdated` subscription may name at most.
pub const MAX_NAMES: usize = 50;

/// The `extensions.code` of the last message of a subscription that fell behind.
pub const LAGGED: &str = "LAGGED";

fn lagged(last_sequence: Option<u64>, missed: u64) -> async_graphql::Error {
    let resume = match last_sequence {
        Some(last) => format!("Re-query, or subscribe again with after: {last}"),
        None => "Re-query and subscribe again".to_string(),
    };
    async_graphql::Error::new(format!(
        "this subscription fell behind and missed {missed} events; it has ended. {resume}"
    ))
    .extend_with(|_, ext| {
        ext.set("code", LAGGED);
        if let Some(last) = last_sequence {
            ext.set("lastSequence", last as i64);
        }
        ext.set("missed", missed as i64);
    })
}

/// The last message of a subscription that fell behind.
pub fn lag_response(last_sequence: Option<u64>, missed: u64) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![
        lagged(last_sequence, missed).into_server_error(async_graphql::Pos::default()),
    ])
}

fn after_argument(after: Option<i64>) -> AppResult<Option<u64>> {
    after
        .map(|a| u64::try_from(a).map_err(|_| AppError::bad_input("after", "must not be negative")))
        .transpose()
}

/// The events for one subscription: `select` picks and shapes the ones it wants. A lag
/// ends the stream with a `LAGGED` error.
fn filtered<T, F>(
    ctx: &Context<'_>,
    after: Option<i64>,
    mut select: F,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<T>> + use<T, F>>
where
    T: Send + 'static,
    F: FnMut(&Published) -> Option<T> + Send + 'static,
{
    let after = after_argument(after)?;
    let deliveries = app(ctx)?.events.deliveries(after);
    Ok(deliveries.filter_map(move |delivery| {
        let item = match delivery {
            Delivery::Event(published) => select(&published).map(Ok),
            Delivery::Lagged {
                last_sequence,
                missed,
            } => Some(Err(lagged(Some(last_sequence), missed))),
        };
        std::future::ready(item)
    }))
}

fn parse_ids(field: &str, ids: Option<Vec<ID>>) -> AppResult<Option<HashSet<Uuid>>> {
    let Some(ids) = ids else { return Ok(None) };
    if ids.len() > MAX_NODES {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_NODES} nodes"),
        ));
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            Uuid::parse_str(id)
                .map_err(|_| AppError::bad_input(format!("{field}[{i}]"), "is not a node id"))
        })
        .collect::<AppResult<HashSet<_>>>()
        .map(Some)
}

#[derive(Default)]
pub struct RealtimeSubscription;

#[Subscription]
impl RealtimeSubscription {
    /// Metrics batches as they commit, with the newest reading of each series, filtered
    /// on the server: only the nodes in `nodeIds` and the batches (and readings) of
    /// `names` (all when omitted). `after` replays the
    /// batches after that sequence number that are still kept (the last few minutes).
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn metrics_updated(
        &self,
        ctx: &Context<'_>,
        node_ids: Option<Vec<ID>>,
        names: Option<Vec<String>>,
        after: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<MetricsUpdate>> + use<>>
    {
        let nodes = parse_ids("nodeIds", node_ids)?;
        if names.as_ref().is_some_and(|n| n.len() > MAX_NAMES) {
            return Err(AppError::bad_input("names", format!("at most {MAX_NAMES} names")).into());
        }
        let names: Option<HashSet<String>> = names.map(|n| n.into_iter().collect());
        filtered(ctx, after, move |published| {
            let Event::MetricsIngested(batch) = &published.event else {
                return None;
            };
            if nodes.as_ref().is_some_and(|n| !n.contains(&batch.node_id)) {
                return None;
            }
            let matching = match &names {
                Some(wanted) => {
                    let matching: Vec<String> = batch
                        .names
                        .iter()
                        .filter(|n| wanted.contains(*n))
                        .cloned()
                        .collect();
                    if matching.is_empty() {
                        return None;
                    }
                    matching
                }
                None => batch.names.clone(),
            };
            Some(MetricsUpdate::new(
                published.sequence,
                batch,
                matching,
                names.as_ref(),
            ))
        })
    }

    /// Node status transitions (ONLINE, STALE, DOWN, MAINTENANCE, RETIRED), of the nodes in
    /// `nodeIds` or of all.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn node_status_changed(
        &self,
        ctx: &Context<'_>,
        node_ids: Option<Vec<ID>>,
        after: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<NodeStatusEvent>> + use<>>
    {
        let nodes = parse_ids("nodeIds", node_ids)?;
        filtered(ctx, after, move |published| match &published.event {
            Event::NodeStatusChanged(change)
                if nodes.as_ref().is_none_or(|n| n.contains(&change.node_id)) =>
            {
                Some(NodeStatusEvent::new(published.sequence, change))
            }
            _ => None,
        })
    }

    /// Blocklist listings of sending IPs as DNSBL checks find them change.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn ip_reputation_changed(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<IpReputationEvent>> + use<>>
    {
        filtered(ctx, after, |published| match &published.event {
            Event::IpReputationChanged(change) => {
                Some(IpReputationEvent::new(published.sequence, change))
            }
            _ => None,
        })
    }

    /// Alerts as they are raised (PENDING), fire, are acknowledged and resolve.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn alert_events(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AlertNotice>> + use<>> {
        filtered(ctx, after, |published| match &published.event {
            Event::AlertEvent(alert) => Some(AlertNotice::new(published.sequence, alert)),
            _ => None,
        })
    }

    /// Mail flow counters, one message per second in which mail events were committed
    /// (of the node when `nodeId` is given, else of the whole cluster); seconds without
    /// events send nothing.
    #[graphql(guard = "RoleGuard::new(Role::Viewer)")]
    async fn mail_flow(
        &self,
        ctx: &Context<'_>,
        node_id: Option<ID>,
        after: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<MailFlowSecond>> + use<>>
    {
        let node = node_id
            .map(|id| {
                Uuid::parse_str(&id).map_err(|_| AppError::bad_input("nodeId", "is not a node id"))
            })
            .transpose()?;
        filtered(ctx, after, move |published| match &published.event {
            Event::MailFlowTick(tick) => MailFlowSecond::new(published.sequence, tick, node),
            _ => None,
        })
    }

    /// The caller's node's `agentConfig` whenever it changes (an IP paused, resumed,
    /// warming, retired, moved, its pool changed): first the current one unless it has
    /// `knownVersion`, then each new version. Node keys only, about their own node.
    #[graphql(guard = "AgentGuard")]
    async fn agent_config_changed(
        &self,
        ctx: &Context<'_>,
        known_version: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AgentConfig>> + use<>> {
        let node_id = principal(ctx).require_agent()?.node_id;
        let known = crate::input::bounded_text("knownVersion", known_version.as_deref(), 64)?;
        let state = app(ctx)?.clone();
        Ok(agent_config_changes(state, node_id, known))
    }

    /// Audit entries as they commit.
    #[graphql(guard = "RoleGuard::new(Role::Admin)")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AuditEvent>> + use<>> {
        filtered(ctx, after, |published| match &published.event {
            Event::AuditRecorded(entry) => match AuditEvent::new(published.sequence, entry) {
                Ok(event) => Some(event),
                // An entry whose stored text this build does not know is logged, not sent
                // as something else.
                Err(error) => {
                    error.log_if_internal();
                    None
                }
            },
            _ => None,
        })
    }
}

/// How often an `agentConfigChanged` subscription reads its node's configuration without
/// being told to: changes made where no event is published (the CLI, a lost event) still
/// reach the agent within this time.
pub const AGENT_CONFIG_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// The configurations of one node as they change: read again at each `IpsChanged` event
/// naming the node, after a lag, and every [`AGENT_CONFIG_RECHECK`]; sent when the version
/// differs from the last one sent (or known).
fn agent_config_changes(
    state: AppState,
    node_id: Uuid,
    known: Option<String>,
) -> impl Stream<Item = async_graphql::Result<AgentConfig>> {
    async_stream::stream! {
        let mut last = known;
        let mut deliveries = Box::pin(state.events.deliveries(None));
        let mut recheck = tokio::time::interval(AGENT_CONFIG_RECHECK);
        let mut bus_open = true;
        loop {
            let look = tokio::select! {
                _ = recheck.tick() => true,
                delivery = deliveries.next(), if bus_open => match delivery {
                    Some(Delivery::Event(published)) => matches!(
                        &published.event,
                        Event::IpsChanged(changed) if changed.node_ids.contains(&node_id)
                    ),
                    // Whatever was missed, reading the configuration again covers it.
                    Some(Delivery::Lagged { .. }) => {
                        deliveries = Box::pin(state.events.deliveries(None));
                        true
                    }
                    // The bus is shutting down: the rechecks carry on until the socket closes.
                    None => {
                        bus_open = false;
                        true
                    }
                },
            };
            if !look {
                continue;
            }
            match crate::ips::agent_config(&state.db, node_id, state.config.nodes.push_interval).await {
                Ok(config) if last.as_deref() != Some(config.version.as_str()) => {
                    last = Some(config.version.clone());
                    yield Ok(config);
                }
                Ok(_) => {}
                // The database is away: the next event or recheck tries again.
                Err(error) => error.log_if_internal(),
            }
        }
    }
}
