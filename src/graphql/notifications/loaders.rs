use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::notification_attempt::Model as AttemptRow;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    graphql::loaders::{LoadError, batch_error},
    notifications::{self, ContactPoint},
};

/// The newest attempts of many notifications, in one query.
pub struct AttemptsByNotification {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for AttemptsByNotification {
    type Value = Vec<AttemptRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<AttemptRow>>, LoadError> {
        notifications::attempts_of(&self.db, keys)
            .await
            .map_err(batch_error)
    }
}

/// Contact points of many notifications and routes, in one query.
pub struct ContactPointsById {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for ContactPointsById {
    type Value = ContactPoint;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, ContactPoint>, LoadError> {
        let points = notifications::contact_points_by_ids(&self.db, keys)
            .await
            .map_err(batch_error)?;
        Ok(points.into_iter().map(|p| (p.id, p)).collect())
    }
}
