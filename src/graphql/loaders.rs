//! What every DataLoader shares: batches that read through the owning domain's store, and
//! one way to read a loaded value whose errors follow the normal policy (a saturated pool
//! is `RATE_LIMITED`, anything internal is logged once and shown as `INTERNAL`).

use std::{hash::Hash, sync::Arc};

use async_graphql::{
    Context,
    dataloader::{DataLoader, Loader},
};

use crate::error::{AppError, AppResult};

/// A batch's error, shared by every field that waited on the batch.
pub type LoadError = Arc<AppError>;

/// The error of a batch read, logged once here when it is internal.
pub fn batch_error(error: AppError) -> LoadError {
    error.log_if_internal();
    Arc::new(error)
}

/// Loads `key` through the schema's loader `L`.
pub async fn load_one<L, K>(ctx: &Context<'_>, key: K) -> AppResult<Option<L::Value>>
where
    L: Loader<K, Error = LoadError>,
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    let loader = ctx.data::<DataLoader<L>>().map_err(|_| {
        AppError::internal(format!(
            "{} missing from the schema",
            std::any::type_name::<L>()
        ))
    })?;
    Ok(loader.load_one(key).await?)
}
