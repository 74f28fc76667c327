//! Mail flow: delivery events pushed by agents, the per-minute and per-hour counters
//! they feed, and the queries over those counters.

mod config;
mod events;
mod ingest;
mod model;
mod query;
mod retention;
mod store;
mod ticker;

pub use config::MailFlowConfig;
pub use events::{EventFilter, list as list_events};
pub use ingest::{MAX_EVENTS, store_batch};
pub use model::*;
pub use query::{FlowQuery, IpWindow, flow, sending_stats};
pub use retention::sweep as sweep_retention;
pub use store::BATCHES;
pub use store::counters::{Attempts, attempts_by_node, cluster_counts};
pub use ticker::spawn as spawn_ticker;
