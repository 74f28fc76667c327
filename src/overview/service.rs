//! Computing the overview from the database.

use chrono::{Duration as ChronoDuration, Utc};
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::{
    db::sql::placeholder, error::AppResult, mailflow::cluster_counts, nodes::NodeStatus,
    state::AppState,
};

use super::model::{AlertCounts, ClusterHealth, HealthReason, NodeCounts, Overview, QueueSize};

/// Bounce rate of the last hour above which the cluster is DEGRADED.
const BOUNCE_RATE_LIMIT: f64 = 0.05;
/// Delivery attempts of the last hour below which the bounce rate says nothing.
const BOUNCE_RATE_MIN_ATTEMPTS: i64 = 20;

async fn node_counts(db: &impl ConnectionTrait) -> AppResult<NodeCounts> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT status, COUNT(*) FROM nodes WHERE status <> 'retired' GROUP BY status",
        ))
        .await?;
    let mut counts = NodeCounts::default();
    for row in rows {
        let status: String = row.try_get_by_index(0)?;
        let count: i64 = row.try_get_by_index(1)?;
        counts.total += count;
        match NodeStatus::parse(&status) {
            NodeStatus::Online => counts.online += count,
            NodeStatus::Stale => counts.stale += count,
            NodeStatus::Down => counts.down += count,
            NodeStatus::Maintenance => counts.maintenance += count,
            NodeStatus::Retired => {}
        }
    }
    Ok(counts)
}

async fn queue_size(db: &impl ConnectionTrait) -> AppResult<QueueSize> {
    let backend = db.get_database_backend();
    // The newest 1-minute bucket of each series holds its latest sample as `last`.
    let sql = "SELECT s.name, SUM(r.last) FROM metric_series s \
         JOIN nodes n ON n.id = s.node_id \
         JOIN metric_rollups_1m r ON r.series_id = s.id \
         WHERE s.name IN ('zonemta.queue.active', 'zonemta.queue.deferred') \
           AND n.status <> 'retired' \
           AND r.bucket = (SELECT MAX(bucket) FROM metric_rollups_1m m WHERE m.series_id = s.id) \
         GROUP BY s.name";
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await?;
    let mut queue = QueueSize::default();
    for row in rows {
        let name: String = row.try_get_by_index(0)?;
        let sum: Option<f64> = row.try_get_by_index(1)?;
        match name.as_str() {
            "zonemta.queue.active" => queue.active = sum.unwrap_or(0.0),
            _ => queue.deferred = sum.unwrap_or(0.0),
        }
    }
    queue.total = queue.active + queue.deferred;
    Ok(queue)
}

async fn blacklisted_ips(db: &impl ConnectionTrait) -> AppResult<i64> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT COUNT(DISTINCT ip_id) FROM dnsbl_results WHERE listed = {}",
        placeholder(backend, 1)
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(true)],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    })
}

async fn active_alerts(db: &impl ConnectionTrait) -> AppResult<AlertCounts> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT severity, COUNT(*) FROM alerts WHERE state = 'FIRING' \
         AND (silenced_until IS NULL OR silenced_until <= {}) GROUP BY severity",
        placeholder(backend, 1)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(Utc::now())],
        ))
        .await?;
    let mut counts = AlertCounts::default();
    for row in rows {
        let severity: String = row.try_get_by_index(0)?;
        let count: i64 = row.try_get_by_index(1)?;
        counts.total += count;
        match severity.as_str() {
            "CRITICAL" => counts.critical += count,
            _ => counts.warning += count,
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
    if alerts.warning > 0 {
        reason(
            ClusterHealth::Degraded,
            "WARNING_ALERTS",
            format!(
                "{} firing",
                plural(alerts.warning, "warning alert", "warning alerts")
            ),
        );
    }
    if nodes.stale > 0 {
        reason(
            ClusterHealth::Degraded,
            "NODES_STALE",
            format!(
                "{} not reporting on time",
                plural(nodes.stale, "node", "nodes")
            ),
        );
    }
    if overview.blacklisted_ips > 0 {
        reason(
            ClusterHealth::Degraded,
            "IPS_BLACKLISTED",
            format!(
                "{} listed on a DNSBL",
                plural(overview.blacklisted_ips, "sending IP", "sending IPs")
            ),
        );
    }
    let last_hour = &overview.last_hour;
    if last_hour.attempts() >= BOUNCE_RATE_MIN_ATTEMPTS
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
    let (nodes, last_hour, queue, blacklisted_ips, active_alerts) = tokio::try_join!(
        node_counts(db),
        cluster_counts(db, now - ChronoDuration::hours(1), now),
        queue_size(db),
        blacklisted_ips(db),
        active_alerts(db),
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
    overview.health = overview
        .reasons
        .first()
        .map_or(ClusterHealth::Healthy, |r| r.level);
    Ok(overview)
}
