//! The only code that reads and writes the metrics tables: `metric_series`,
//! `metric_samples`, the rollups `metric_rollups_1m` and `metric_rollups_1h`, and
//! `metric_batches`.

pub mod buckets;
pub mod retention;
pub mod samples;
pub mod series;

/// The table of metric batch records, for [`crate::db::batch`].
pub const BATCHES: &str = "metric_batches";
