//! One mapping from what Prometheus exporters expose to mailops's metric names
//! (`metricCatalog`), used by mailops's remote-write endpoint and by mailops-agent's
//! scrapes, so a node reports the same series whichever way its numbers arrive.
//!
//! - [`RULES`]: the table, one row per exporter series, with the exporter it comes from.
//! - [`Mapper`]: applies the table to the series of one request or scrape, deriving
//!   the catalog's computed figures (`system.cpu.used_percent` from the non-idle share of
//!   `node_cpu_seconds_total` between two scrapes, memory, swap and disk percentages), and
//!   keeps every series the table does not name under its own name, normalised
//!   ([`names`]), with its labels.

pub mod mapping;
pub mod names;
pub mod rules;
pub mod text;

use std::collections::BTreeMap;

pub use mapping::{MapError, Mapped, Mapper, Mappers};
pub use rules::{Action, Exporter, Input, RULES, Rule};
pub use text::parse_text;

/// Label names to values, in order.
pub type Labels = BTreeMap<String, String>;

/// A Prometheus series as an exporter or a remote-write request gives it: its metric name,
/// its labels (without `__name__`) and its samples (milliseconds since the epoch, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// One sample under mailops's names.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub ts_ms: i64,
    pub value: f64,
}
