//! Rows of `metric_series`, and the latest value of each series.

use chrono::{DateTime, Utc};
use entity::metric_series;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement, Value,
    sea_query::OnConflict,
};
use uuid::Uuid;

use crate::{db::sql::placeholders, error::AppResult};

/// A series as ingestion knows it: its id (derived from node, name and labels), name and
/// labels.
pub struct NewSeries {
    pub id: Uuid,
    pub name: String,
    pub labels: serde_json::Value,
    pub labels_key: String,
}

/// Adds the series not stored yet, in id order so concurrent batches lock rows alike.
pub async fn insert_missing(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    mut series: Vec<NewSeries>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    series.sort_by_key(|s| s.id);
    let rows: Vec<metric_series::ActiveModel> = series
        .into_iter()
        .map(|s| metric_series::ActiveModel {
            id: Set(s.id),
            node_id: Set(node_id),
            name: Set(s.name),
            labels: Set(s.labels),
            labels_key: Set(s.labels_key),
            created_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(100) {
        metric_series::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(metric_series::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// The series of these names (of these nodes, when given).
pub async fn of_names(
    db: &impl ConnectionTrait,
    names: &[String],
    node_ids: Option<&[Uuid]>,
) -> AppResult<Vec<metric_series::Model>> {
    let mut select = metric_series::Entity::find()
        .filter(metric_series::Column::Name.is_in(names.iter().map(String::as_str)));
    if let Some(ids) = node_ids {
        select = select.filter(metric_series::Column::NodeId.is_in(ids.iter().copied()));
    }
    Ok(select.all(db).await?)
}

/// The latest value of one series.
#[derive(Clone, Debug)]
pub struct LatestValue {
    pub node_id: Uuid,
    pub name: String,
    pub labels: serde_json::Value,
    pub value: f64,
    /// Epoch milliseconds of the sample.
    pub ts: i64,
}

/// Which series [`latest_values`] reads.
pub enum SeriesOf<'a> {
    Nodes(&'a [Uuid]),
    Names(&'a [String]),
}

/// The latest value of every series of these nodes, or of these names, in one query.
pub async fn latest_values(
    conn: &impl ConnectionTrait,
    of: SeriesOf<'_>,
) -> AppResult<Vec<LatestValue>> {
    let (column, values): (&str, Vec<Value>) = match of {
        SeriesOf::Nodes(ids) => ("node_id", ids.iter().map(|id| Value::from(*id)).collect()),
        SeriesOf::Names(names) => (
            "name",
            names.iter().map(|n| Value::from(n.clone())).collect(),
        ),
    };
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    // The newest 1-minute bucket of each series holds its latest sample as `last`.
    let sql = format!(
        "SELECT s.node_id, s.name, s.labels, r.last, r.last_ts FROM metric_series s \
         JOIN metric_rollups_1m r ON r.series_id = s.id \
         WHERE s.{column} IN ({}) \
           AND r.bucket = (SELECT MAX(m.bucket) FROM metric_rollups_1m m WHERE m.series_id = s.id)",
        placeholders(backend, 1, values.len())
    );
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(LatestValue {
                node_id: row.try_get_by_index(0)?,
                name: row.try_get_by_index(1)?,
                labels: row.try_get_by_index(2)?,
                value: row.try_get_by_index(3)?,
                ts: row.try_get_by_index(4)?,
            })
        })
        .collect()
}
