use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    graphql::loaders::{LoadError, batch_error},
    metrics::{self, Readings},
};

/// The latest reading of every series of many nodes, in one query.
pub struct LatestByNode {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for LatestByNode {
    type Value = Readings;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Readings>, LoadError> {
        metrics::latest_by_node(&self.db, keys)
            .await
            .map_err(batch_error)
    }
}
