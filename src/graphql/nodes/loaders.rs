use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::node::Model as NodeRow;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    graphql::loaders::{LoadError, batch_error},
    nodes,
};

/// The nodes of many IPs, alerts or mail-flow groups, in one query.
pub struct NodesById {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for NodesById {
    type Value = NodeRow;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, NodeRow>, LoadError> {
        let rows = nodes::find_many(&self.db, keys)
            .await
            .map_err(batch_error)?;
        Ok(rows.into_iter().map(|node| (node.id, node)).collect())
    }
}
