//! Metrics pushed by agents: the catalog of standard names, and idempotent batch
//! ingestion that keeps the 1-minute and 1-hour rollups current.

pub mod catalog;
pub mod ingest;
pub mod latest;
pub mod query;
pub mod resolvers;
pub mod retention;
pub mod store;
pub mod types;
