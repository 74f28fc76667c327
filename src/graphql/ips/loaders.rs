use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::dnsbl_result;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

/// Loads the current DNSBL results of many IPs in one query.
pub struct ResultsByIp {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for ResultsByIp {
    type Value = Vec<dnsbl_result::Model>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = dnsbl_result::Entity::find()
            .filter(dnsbl_result::Column::IpId.is_in(keys.iter().copied()))
            .order_by_asc(dnsbl_result::Column::Zone)
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut by_ip: HashMap<Uuid, Vec<dnsbl_result::Model>> = HashMap::with_capacity(keys.len());
        for row in rows {
            by_ip.entry(row.ip_id).or_default().push(row);
        }
        Ok(by_ip)
    }
}

/// Loads the nodes of many IPs in one query.
pub struct NodesById {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for NodesById {
    type Value = entity::node::Model;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = entity::node::Entity::find()
            .filter(entity::node::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|node| (node.id, node)).collect())
    }
}
