//! The mailflow tables as retention sees them.

use crate::db::retention::TieredTables;

pub const TABLES: TieredTables = TieredTables {
    raw: "mail_events",
    minute: "mail_flow_1m",
    hour: "mail_flow_1h",
    batches: super::BATCHES,
};
