//! Mail flow: delivery events pushed by agents, the per-minute and per-hour counters
//! they feed, and the queries over those counters.

mod bounces;
mod config;
mod deliverability;
mod events;
mod ingest;
mod model;
mod query;
mod retention;
mod store;
mod ticker;

pub use bounces::{BounceCategory, BounceRules, EnhancedCode};
/// How many rules the built-in classification table has.
pub const BUILT_IN_RULES: usize = bounces::BUILT_IN.len();
pub use config::MailFlowConfig;
pub use deliverability::{CategoryCount, Deliverability, ProviderDeliverability, deliverability};
pub use events::{EventFilter, list as list_events};
pub use ingest::{MAX_EVENTS, store_batch};
pub use model::*;
pub use query::{FlowQuery, IpWindow, flow, sending_stats};
pub use retention::sweep as sweep_retention;
pub use store::BATCHES;
pub use store::counters::{
    Attempts, FlowCell, attempts_by_node, cells_since as flow_cells_since, cluster_counts,
    refusal_hotspots,
};
pub use ticker::spawn as spawn_ticker;
