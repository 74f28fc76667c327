//! What one evaluation reads, in a fixed number of queries whatever the number of nodes
//! and rules: every rule, the open alerts, the nodes in service, the latest values of the
//! metrics rules watch, delivery attempts per window, listed IPs and active silences.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use entity::{
    alert::Model as AlertRow, alert_rule::Model as RuleRow, alert_silence::Model as SilenceRow,
};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use crate::{
    error::AppResult,
    mailflow::{Attempts, FlowCell},
    metrics::SeriesOf,
    nodes::NodeStatus,
    state::AppState,
};

use super::super::{
    AlertCondition, AlertScope, AlertState, rules::DEFAULT_WINDOW_SECONDS, service::Matcher, store,
};

/// The node facts rules look at.
pub(super) struct NodeFacts {
    pub id: Uuid,
    pub hostname: String,
    pub roles_mask: i32,
    pub labels: serde_json::Value,
    pub down: bool,
    pub maintenance: bool,
}

/// The latest value of one series.
pub(super) struct SeriesValue {
    pub labels: serde_json::Value,
    pub value: f64,
}

/// A listed sending IP.
pub(super) struct ListedIp {
    pub node_id: Option<Uuid>,
    pub zones: BTreeSet<String>,
}

/// Everything one cycle reads.
pub(super) struct Inputs {
    pub rules: Vec<RuleRow>,
    pub nodes: HashMap<Uuid, NodeFacts>,
    pub readings: HashMap<Uuid, HashMap<String, Vec<SeriesValue>>>,
    pub attempts: HashMap<i32, HashMap<Uuid, Attempts>>,
    /// Counter cells per window of the mail-flow rules that split by IP, pool, provider
    /// or category.
    pub flow: HashMap<i32, Vec<FlowCell>>,
    /// The pool of each pooled address, when a rule is scoped by pool.
    pub pools: HashMap<String, String>,
    pub listed: HashMap<String, ListedIp>,
    pub open: Vec<AlertRow>,
    pub silences: Vec<(SilenceRow, Matcher)>,
}

pub(super) async fn read_inputs(
    state: &AppState,
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
) -> AppResult<Inputs> {
    let rules = store::rules::list(txn).await?;
    let enabled: Vec<&RuleRow> = rules.iter().filter(|r| r.enabled).collect();
    let open = store::alerts::open(txn).await?;
    for alert in &open {
        AlertState::parse(&alert.state)?;
    }
    let nodes = crate::nodes::in_service(txn)
        .await?
        .into_iter()
        .map(|n| {
            let status = NodeStatus::parse(&n.status)?;
            let facts = NodeFacts {
                id: n.id,
                hostname: n.hostname,
                roles_mask: n.roles_mask,
                labels: n.labels,
                down: status == NodeStatus::Down,
                maintenance: n.maintenance_enabled || status == NodeStatus::Maintenance,
            };
            Ok((facts.id, facts))
        })
        .collect::<AppResult<_>>()?;

    let mut names: Vec<String> = enabled
        .iter()
        .filter(|r| r.condition == AlertCondition::Metric.as_str())
        .filter_map(|r| r.metric.clone())
        .collect();
    names.sort();
    names.dedup();
    let mut readings: HashMap<Uuid, HashMap<String, Vec<SeriesValue>>> = HashMap::new();
    if !names.is_empty() {
        for latest in crate::metrics::latest_values(txn, SeriesOf::Names(&names)).await? {
            readings
                .entry(latest.node_id)
                .or_default()
                .entry(latest.name)
                .or_default()
                .push(SeriesValue {
                    labels: latest.labels,
                    value: latest.value,
                });
        }
    }

    let mut windows: Vec<i32> = enabled
        .iter()
        .filter(|r| r.condition == AlertCondition::BounceRate.as_str())
        .map(|r| r.window_seconds.unwrap_or(DEFAULT_WINDOW_SECONDS))
        .collect();
    windows.sort();
    windows.dedup();
    let mut attempts = HashMap::with_capacity(windows.len());
    for window in windows {
        let since = now - chrono::Duration::seconds(i64::from(window));
        attempts.insert(window, crate::mailflow::attempts_by_node(txn, since).await?);
    }

    // Node-scoped BOUNCE_RATE reads the per-node sums above; every other mail-flow rule
    // reads the cells of its window.
    let mut cell_windows: Vec<i32> = enabled
        .iter()
        .filter(|r| {
            AlertCondition::parse(&r.condition).is_ok_and(AlertCondition::counts_mail)
                && !(r.condition == AlertCondition::BounceRate.as_str()
                    && r.scope
                        .as_deref()
                        .is_none_or(|s| s == AlertScope::Node.as_str()))
        })
        .map(|r| r.window_seconds.unwrap_or(DEFAULT_WINDOW_SECONDS))
        .collect();
    cell_windows.sort();
    cell_windows.dedup();
    let mut flow = HashMap::with_capacity(cell_windows.len());
    for window in cell_windows {
        let since = now - chrono::Duration::seconds(i64::from(window));
        flow.insert(window, crate::mailflow::flow_cells_since(txn, since).await?);
    }
    let pools = if enabled
        .iter()
        .any(|r| r.scope.as_deref() == Some(AlertScope::Pool.as_str()))
    {
        crate::ips::pools_by_address(txn).await?
    } else {
        HashMap::new()
    };

    let wants_ips = enabled
        .iter()
        .any(|r| r.condition == AlertCondition::IpListed.as_str())
        || open.iter().any(|a| a.ip.is_some());
    let listed = if wants_ips {
        let critical: Vec<String> = state
            .config
            .dnsbl
            .zones
            .iter()
            .filter(|z| z.critical)
            .map(|z| z.name.clone())
            .collect();
        let mut listed: HashMap<String, ListedIp> = HashMap::new();
        for ip in crate::ips::listed_on(txn, &critical).await? {
            listed
                .entry(ip.address)
                .or_insert_with(|| ListedIp {
                    node_id: ip.node_id,
                    zones: BTreeSet::new(),
                })
                .zones
                .insert(ip.zone);
        }
        listed
    } else {
        HashMap::new()
    };

    let silences = super::super::service::active_silences(txn, now).await?;
    Ok(Inputs {
        rules,
        nodes,
        readings,
        attempts,
        flow,
        pools,
        listed,
        open,
        silences,
    })
}
