//! The metrics tables as retention sees them.

use crate::db::retention::TieredTables;

pub const TABLES: TieredTables = TieredTables {
    raw: "metric_samples",
    minute: "metric_rollups_1m",
    hour: "metric_rollups_1h",
    batches: super::BATCHES,
};
