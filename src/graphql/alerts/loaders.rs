use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::alert_rule::Model as RuleRow;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    alerts,
    graphql::loaders::{LoadError, batch_error},
};

/// The rules of many alerts, in one query.
pub struct RulesById {
    pub db: DatabaseConnection,
}

impl Loader<Uuid> for RulesById {
    type Value = RuleRow;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, RuleRow>, LoadError> {
        let rules = alerts::rules_by_ids(&self.db, keys)
            .await
            .map_err(batch_error)?;
        Ok(rules.into_iter().map(|rule| (rule.id, rule)).collect())
    }
}
