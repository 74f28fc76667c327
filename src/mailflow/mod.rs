//! Mail flow: delivery events pushed by agents, the per-minute and per-hour counters
//! they feed, and the queries over those counters.

mod config;
mod events;
mod ingest;
mod model;
mod query;
mod retention;
mod ticker;

pub use config::MailFlowConfig;
pub use events::{EventFilter, list as list_events};
pub use ingest::{MAX_EVENTS, ingest, store_batch};
pub use model::*;
pub use query::{
    Attempts, FlowQuery, IpWindow, attempts_by_node, cluster_counts, flow, sending_stats,
};
pub use retention::sweep as sweep_retention;
pub use ticker::spawn as spawn_ticker;
