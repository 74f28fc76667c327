use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;

use crate::{
    graphql::loaders::{LoadError, batch_error},
    mailflow::{self, IpWindow, MailCounts},
};

/// The sending stats of many IPs, in one query per distinct window.
pub struct SendingStatsByIp {
    pub db: DatabaseConnection,
    pub minute_retention: std::time::Duration,
}

impl Loader<IpWindow> for SendingStatsByIp {
    type Value = MailCounts;
    type Error = LoadError;

    async fn load(&self, keys: &[IpWindow]) -> Result<HashMap<IpWindow, MailCounts>, LoadError> {
        mailflow::sending_stats(&self.db, keys, self.minute_retention)
            .await
            .map_err(batch_error)
    }
}
