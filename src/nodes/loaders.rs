use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::ip_address;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

/// Loads the IP addresses of many nodes in one query.
pub struct IpsByNode {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for IpsByNode {
    type Value = Vec<ip_address::Model>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = ip_address::Entity::find()
            .filter(ip_address::Column::NodeId.is_in(keys.iter().copied()))
            .order_by_asc(ip_address::Column::AddressKey)
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut by_node: HashMap<Uuid, Self::Value> = HashMap::with_capacity(keys.len());
        for row in rows {
            if let Some(node) = row.node_id {
                by_node.entry(node).or_default().push(row);
            }
        }
        Ok(by_node)
    }
}
