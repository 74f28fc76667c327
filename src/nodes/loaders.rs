use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::ip_address;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

/// Loads the IP addresses of many nodes in one query, for nodes resolved one by one
/// (lists fetch theirs up front, see `NodesQuery::nodes`).
pub struct IpsByNode {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for IpsByNode {
    type Value = Vec<ip_address::Model>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        ips_of_nodes(&self.db, keys).await.map_err(Arc::new)
    }
}

/// The IP addresses of `nodes`, in address order, in one query.
pub async fn ips_of_nodes(
    db: &impl ConnectionTrait,
    nodes: &[Uuid],
) -> Result<HashMap<Uuid, Vec<ip_address::Model>>, sea_orm::DbErr> {
    let rows = ip_address::Entity::find()
        .filter(ip_address::Column::NodeId.is_in(nodes.iter().copied()))
        .order_by_asc(ip_address::Column::AddressKey)
        .all(db)
        .await?;
    let mut by_node: HashMap<Uuid, Vec<ip_address::Model>> = HashMap::with_capacity(nodes.len());
    for row in rows {
        if let Some(node) = row.node_id {
            by_node.entry(node).or_default().push(row);
        }
    }
    Ok(by_node)
}
