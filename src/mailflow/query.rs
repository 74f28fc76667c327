//! Reads over the mail flow counters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use crate::error::AppResult;

/// Delivery attempts of one node: every DELIVERED, DEFERRED and BOUNCED event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    pub sent: i64,
    pub deferred: i64,
    pub bounced: i64,
}

/// Delivery attempts per node counted in the minutes from `since` on.
pub async fn attempts_by_node(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> AppResult<HashMap<Uuid, Attempts>> {
    let backend = db.get_database_backend();
    let placeholder = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let sql = format!(
        "SELECT node_id, CAST(SUM(delivered + deferred + bounced) AS BIGINT), \
         CAST(SUM(deferred) AS BIGINT), CAST(SUM(bounced) AS BIGINT) \
         FROM mail_flow_1m WHERE bucket >= {placeholder} GROUP BY node_id"
    );
    let since_minute = since.timestamp_millis().div_euclid(60_000) * 60_000;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [since_minute.into()],
        ))
        .await?;
    let mut by_node = HashMap::with_capacity(rows.len());
    for row in rows {
        let node: Uuid = row.try_get_by_index(0)?;
        by_node.insert(
            node,
            Attempts {
                sent: row.try_get_by_index::<Option<i64>>(1)?.unwrap_or(0),
                deferred: row.try_get_by_index::<Option<i64>>(2)?.unwrap_or(0),
                bounced: row.try_get_by_index::<Option<i64>>(3)?.unwrap_or(0),
            },
        );
    }
    Ok(by_node)
}
