use sea_orm::entity::prelude::*;

/// One time series: a node's metric with one set of labels. The id is a UUID v5 of
/// (node, name, labels), so every instance derives the same id without a lookup.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metric_series")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub node_id: Uuid,
    pub name: String,
    /// `{"key": "value"}`.
    pub labels: Json,
    /// The labels as `key=value` pairs sorted by key, joined by `,`.
    pub labels_key: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
