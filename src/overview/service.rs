//! Computing the overview from the database.

use std::collections::HashSet;

use chrono::{Duration as ChronoDuration, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{
    alerts::{self, AlertSeverity},
    error::AppResult,
    ips,
    mailflow::{BounceCategory, cluster_counts, refusal_hotspots},
    metrics::{self, SeriesOf},
    nodes::{self, NodeStatus},
    state::AppState,
};

use super::model::{AlertCounts, ClusterHealth, HealthReason, NodeCounts, Overview, QueueSize};

/// Bounce rate of the last hour above which the cluster is DEGRADED.
const BOUNCE_RATE_LIMIT: f64 = 0.05;

/// Refusals of one sending IP at one provider in the last 15 minutes that make the
/// cluster DEGRADED, by category: a blocked IP shows after a few, throttling after more.
const HOTSPOT_MINUTES: i64 = 15;
const HOTSPOTS: [(BounceCategory, i64); 2] = [
    (BounceCategory::BlockedIp, 10),
    (BounceCategory::Throttled, 20),
];
/// Hotspots named per category, largest first.
const HOTSPOTS_NAMED: u64 = 5;

/// "192.0.2.10 is BLOCKED_IP at outlook (34 in 15 min)", for each IP and provider over a
/// category's limit.
async fn hotspot_reasons(db: &impl ConnectionTrait) -> AppResult<Vec<HealthReason>> {
    let since = (Utc::now() - ChronoDuration::minutes(HOTSPOT_MINUTES)).timestamp_millis();
    let mut reasons = Vec::new();
    for (category, at_least) in HOTSPOTS {
        for (ip, provider, count) in
            refusal_hotspots(db, since, category.as_str(), at_least, HOTSPOTS_NAMED).await?
        {
            reasons.push(HealthReason {
                level: ClusterHealth::Degraded,
                code: format!("IP_{}", category.as_str()),
                message: format!(
                    "{ip} is {} at {provider} ({count} in {HOTSPOT_MINUTES} min)",
                    category.as_str()
                ),
            });
        }
    }
    Ok(reasons)
}
async fn node_counts(db: &impl ConnectionTrait) -> AppResult<NodeCounts> {
    let mut counts = NodeCounts::default();
    for (status, count) in nodes::count_by_status(db).await? {
        match status {
            NodeStatus::Online => counts.online += count,
            NodeStatus::Stale => counts.stale += count,
            NodeStatus::Down => counts.down += count,
            NodeStatus::Maintenance => counts.maintenance += count,
            NodeStatus::Retired => continue,
        }
        counts.total += count;
    }
    Ok(counts)
}

const QUEUE_ACTIVE: &str = "zonemta.queue.active";
const QUEUE_DEFERRED: &str = "zonemta.queue.deferred";

async fn queue_size(db: &impl ConnectionTrait) -> AppResult<QueueSize> {
    let names = [QUEUE_ACTIVE.to_owned(), QUEUE_DEFERRED.to_owned()];
    let latest = metrics::latest_values(db, SeriesOf::Names(&names)).await?;
    let in_service: HashSet<Uuid> = nodes::in_service(db).await?.iter().map(|n| n.id).collect();
    let mut queue = QueueSize::default();
    for value in latest.iter().filter(|v| in_service.contains(&v.node_id)) {
        match value.name.as_str() {
            QUEUE_ACTIVE => queue.active += value.value,
            _ => queue.deferred += value.value,
        }
    }
    queue.total = queue.active + queue.deferred;
    Ok(queue)
}

async fn active_alerts(db: &impl ConnectionTrait) -> AppResult<AlertCounts> {
    let mut counts = AlertCounts::default();
    for (severity, count) in alerts::count_active_by_severity(db, Utc::now()).await? {
        counts.total += count;
        match severity {
            AlertSeverity::Critical => counts.critical += count,
            AlertSeverity::Warning => counts.warning += count,
        }
    }
    Ok(counts)
}

fn plural(count: i64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// Why the cluster is not healthy, worst first.
fn reasons(overview: &Overview) -> Vec<HealthReason> {
    let mut reasons = Vec::new();
    let mut reason = |level, code: &str, message: String| {
        reasons.push(HealthReason {
            level,
            code: code.to_owned(),
            message,
        });
    };
    let alerts = &overview.active_alerts;
    let nodes = &overview.nodes;
    if alerts.critical > 0 {
        reason(
            ClusterHealth::Critical,
            "CRITICAL_ALERTS",
            format!(
                "{} firing",
                plural(alerts.critical, "critical alert", "critical alerts")
            ),
        );
    }
    let watched = nodes.total - nodes.maintenance;
    if nodes.down > 0 {
        // Most of the nodes that should be up are down: mail is not flowing.
        let level = if nodes.down * 2 > watched {
            ClusterHealth::Critical
        } else {
            ClusterHealth::Degraded
        };
        reason(
            level,
            "NODES_DOWN",
            format!("{} of {watched} down", plural(nodes.down, "node", "nodes")),
        );
    }
    let degrading = [
        (
            alerts.warning,
            "WARNING_ALERTS",
            ("warning alert", "warning alerts"),
            "firing",
        ),
        (
            nodes.stale,
            "NODES_STALE",
            ("node", "nodes"),
            "not reporting on time",
        ),
        (
            overview.blacklisted_ips,
            "IPS_BLACKLISTED",
            ("sending IP", "sending IPs"),
            "listed on a DNSBL",
        ),
    ];
    for (count, code, (one, many), what) in degrading {
        if count > 0 {
            reason(
                ClusterHealth::Degraded,
                code,
                format!("{} {what}", plural(count, one, many)),
            );
        }
    }
    let last_hour = &overview.last_hour;
    if last_hour.attempts() >= crate::mailflow::MIN_RATE_ATTEMPTS
        && let Some(rate) = last_hour.bounced_share()
        && rate > BOUNCE_RATE_LIMIT
    {
        reason(
            ClusterHealth::Degraded,
            "BOUNCE_RATE",
            format!(
                "{:.1}% of the last hour's delivery attempts bounced (limit {:.0}%)",
                rate * 100.0,
                BOUNCE_RATE_LIMIT * 100.0
            ),
        );
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
    reasons
}

/// Computes the overview now, from the database.
pub async fn compute(state: &AppState) -> AppResult<Overview> {
    let db = &state.db;
    let now = Utc::now();
    let (nodes, last_hour, queue, blacklisted_ips, active_alerts, hotspots) = tokio::try_join!(
        node_counts(db),
        cluster_counts(db, now - ChronoDuration::hours(1), now),
        queue_size(db),
        ips::count_listed(db),
        active_alerts(db),
        hotspot_reasons(db),
    )?;
    let mut overview = Overview {
        health: ClusterHealth::Healthy,
        reasons: Vec::new(),
        nodes,
        last_hour,
        queue,
        blacklisted_ips,
        active_alerts,
        generated_at: now,
    };
    overview.reasons = reasons(&overview);
    overview.reasons.extend(hotspots);
    overview.reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
    overview.health = overview
        .reasons
        .first()
        .map_or(ClusterHealth::Healthy, |r| r.level);
    Ok(overview)
}
