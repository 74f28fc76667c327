//! Metrics pushed by agents: the catalog of standard names, and idempotent batch
//! ingestion that keeps the 1-minute and 1-hour rollups current.

mod catalog;
mod ingest;
mod latest;
mod model;
mod query;
mod remote;
mod retention;
mod store;

pub use catalog::{CATALOG, MetricDef, MetricKind, MetricService, is_valid_name};
pub use ingest::{MAX_SAMPLES, store_batch};
pub use latest::{NodeLatest, Readings, latest_by_node};
pub use model::*;
pub use query::{Aggregate, RangeQuery, Resolution, Retention, run as run_range_query};
pub use remote::{ExporterMappers, RemoteOutcome, store_series as store_remote_series};
pub use retention::sweep as sweep_retention;
pub use store::BATCHES;
pub use store::series::{LatestValue, SeriesOf, latest_values};
