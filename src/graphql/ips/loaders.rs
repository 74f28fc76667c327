use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::dnsbl_result::Model as ResultRow;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    graphql::loaders::{LoadError, batch_error},
    ips::{self, NodeIp},
};

/// The current DNSBL results of many IPs, in one query.
pub struct ResultsByIp {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for ResultsByIp {
    type Value = Vec<ResultRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        let rows = ips::results_of(&self.db, keys).await.map_err(batch_error)?;
        let mut by_ip: HashMap<Uuid, Vec<ResultRow>> = HashMap::with_capacity(keys.len());
        for row in rows {
            by_ip.entry(row.ip_id).or_default().push(row);
        }
        Ok(by_ip)
    }
}

/// The IP addresses of many nodes, in one query, for nodes resolved one by one (lists
/// fetch theirs up front, see `NodesQuery::nodes`).
pub struct IpsByNode {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for IpsByNode {
    type Value = Vec<NodeIp>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        ips::ips_of_nodes(&self.db, keys).await.map_err(batch_error)
    }
}
