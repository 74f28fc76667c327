//! Rows of `dnsbl_results` (each IP's latest result per zone) and `dnsbl_transitions`
//! (its listings and delistings).

use chrono::{DateTime, Utc};
use entity::{dnsbl_result, dnsbl_transition};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    Statement, Value, sea_query::OnConflict,
};
use uuid::Uuid;

use crate::{
    db::{
        Page, newest_first,
        sql::{placeholder, placeholders},
    },
    error::AppResult,
};

use super::super::IpStatus;

/// The current results of these IPs on every zone, ordered by IP and zone.
pub async fn results_of(
    conn: &impl ConnectionTrait,
    ip_ids: &[Uuid],
) -> AppResult<Vec<dnsbl_result::Model>> {
    let mut rows = Vec::new();
    for chunk in ip_ids.chunks(500) {
        rows.extend(
            dnsbl_result::Entity::find()
                .filter(dnsbl_result::Column::IpId.is_in(chunk.iter().copied()))
                .order_by_asc(dnsbl_result::Column::IpId)
                .order_by_asc(dnsbl_result::Column::Zone)
                .all(conn)
                .await?,
        );
    }
    Ok(rows)
}

/// A sending IP listed on a zone.
pub struct ListedAddress {
    pub address: String,
    pub node_id: Option<Uuid>,
    pub zone: String,
}

/// The IPs not RETIRED that are listed on any of `zones`, one row per IP and zone.
pub async fn listed_on(
    conn: &impl ConnectionTrait,
    zones: &[String],
) -> AppResult<Vec<ListedAddress>> {
    if zones.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let sql = format!(
        "SELECT i.address, i.node_id, d.zone FROM dnsbl_results d \
         JOIN ip_addresses i ON i.id = d.ip_id \
         WHERE d.listed = {} AND i.status <> {} AND d.zone IN ({})",
        placeholder(backend, 1),
        placeholder(backend, 2),
        placeholders(backend, 3, zones.len())
    );
    let mut values = vec![Value::from(true), Value::from(IpStatus::Retired.as_str())];
    values.extend(zones.iter().map(|z| Value::from(z.clone())));
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ListedAddress {
                address: row.try_get_by_index(0)?,
                node_id: row.try_get_by_index(1)?,
                zone: row.try_get_by_index(2)?,
            })
        })
        .collect()
}

/// How many IPs are listed on any zone.
pub async fn count_listed(conn: &impl ConnectionTrait) -> AppResult<i64> {
    let backend = conn.get_database_backend();
    let sql = format!(
        "SELECT COUNT(DISTINCT ip_id) FROM dnsbl_results WHERE listed = {}",
        placeholder(backend, 1)
    );
    let row = conn
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

/// An IP's result on one zone, as a check found it.
pub struct ResultRow {
    pub ip_id: Uuid,
    pub zone: String,
    pub state: String,
    pub listed: bool,
    pub listed_since: Option<DateTime<Utc>>,
    pub return_codes: String,
    pub categories: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub checked_at: DateTime<Utc>,
}

/// Writes these results over the earlier ones of the same IP and zone.
pub async fn upsert_results(conn: &impl ConnectionTrait, rows: Vec<ResultRow>) -> AppResult<()> {
    let models: Vec<dnsbl_result::ActiveModel> = rows
        .into_iter()
        .map(|row| dnsbl_result::ActiveModel {
            ip_id: Set(row.ip_id),
            zone: Set(row.zone),
            state: Set(row.state),
            listed: Set(row.listed),
            listed_since: Set(row.listed_since),
            return_codes: Set(row.return_codes.chars().take(255).collect()),
            categories: Set(row.categories.chars().take(255).collect()),
            reason: Set(row.reason),
            detail: Set(row.detail),
            checked_at: Set(row.checked_at),
        })
        .collect();
    for chunk in models.chunks(500) {
        dnsbl_result::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([dnsbl_result::Column::IpId, dnsbl_result::Column::Zone])
                    .update_columns([
                        dnsbl_result::Column::State,
                        dnsbl_result::Column::Listed,
                        dnsbl_result::Column::ListedSince,
                        dnsbl_result::Column::ReturnCodes,
                        dnsbl_result::Column::Categories,
                        dnsbl_result::Column::Reason,
                        dnsbl_result::Column::Detail,
                        dnsbl_result::Column::CheckedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// A listing (or delisting) of an IP on a zone.
pub struct TransitionRow {
    pub ip_id: Uuid,
    pub zone: String,
    pub listed: bool,
    pub categories: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn insert_transitions(
    conn: &impl ConnectionTrait,
    rows: Vec<TransitionRow>,
) -> AppResult<()> {
    let models: Vec<dnsbl_transition::ActiveModel> = rows
        .into_iter()
        .map(|row| dnsbl_transition::ActiveModel {
            id: Set(Uuid::now_v7()),
            ip_id: Set(row.ip_id),
            zone: Set(row.zone),
            listed: Set(row.listed),
            categories: Set(row.categories),
            reason: Set(row.reason),
            at: Set(row.at),
        })
        .collect();
    for chunk in models.chunks(500) {
        dnsbl_transition::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Listings and delistings of one IP, newest first.
pub async fn history(
    db: &impl ConnectionTrait,
    ip_id: Uuid,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<dnsbl_transition::Model>> {
    let query = dnsbl_transition::Entity::find().filter(dnsbl_transition::Column::IpId.eq(ip_id));
    newest_first(db, query, dnsbl_transition::Column::Id, page, count_total).await
}
