use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::ip_address;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait as _, extension::postgres::PgFunc},
};
use uuid::Uuid;

/// Loads the IP addresses of many nodes in one query, for nodes resolved one by one
/// (lists fetch theirs up front, see `NodesQuery::nodes`).
pub struct IpsByNode {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for IpsByNode {
    type Value = Vec<NodeIp>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        ips_of_nodes(&self.db, keys).await.map_err(Arc::new)
    }
}

/// An address as lists show it: only the columns they read.
#[derive(Clone, Debug)]
pub struct NodeIp {
    pub id: Uuid,
    pub address: String,
}

/// The IP addresses of `nodes`, in address order, in one query.
pub async fn ips_of_nodes(
    db: &impl ConnectionTrait,
    nodes: &[Uuid],
) -> Result<HashMap<Uuid, Vec<NodeIp>>, sea_orm::DbErr> {
    let rows: Vec<(Uuid, String, Option<Uuid>)> = ip_address::Entity::find()
        .select_only()
        .columns([
            ip_address::Column::Id,
            ip_address::Column::Address,
            ip_address::Column::NodeId,
        ])
        .filter(node_id_in(db.get_database_backend(), nodes))
        .order_by_asc(ip_address::Column::AddressKey)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_node: HashMap<Uuid, Vec<NodeIp>> = HashMap::with_capacity(nodes.len());
    for (id, address, node) in rows {
        if let Some(node) = node {
            by_node
                .entry(node)
                .or_default()
                .push(NodeIp { id, address });
        }
    }
    Ok(by_node)
}

/// `node_id` is one of `nodes`. Postgres gets `= ANY($1)` with one array parameter: one
/// prepared statement for any number of ids, planned in microseconds, where an `IN` list
/// of 50 parameters is planned anew (about a millisecond) on every call. SQLite, without
/// arrays, gets the `IN` list.
fn node_id_in(backend: DbBackend, nodes: &[Uuid]) -> Condition {
    let condition = match backend {
        DbBackend::Postgres => {
            Expr::col(ip_address::Column::NodeId).eq(PgFunc::any(Expr::val(nodes.to_vec())))
        }
        _ => ip_address::Column::NodeId.is_in(nodes.iter().copied()),
    };
    Condition::all().add(condition)
}
