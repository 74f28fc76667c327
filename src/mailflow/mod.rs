//! Mail flow: delivery events pushed by agents, the per-minute and per-hour counters
//! they feed, and the queries over those counters.

pub mod config;
pub mod events;
pub mod ingest;
pub mod query;
pub mod resolvers;
pub mod retention;
pub mod ticker;
pub mod types;

pub use config::MailFlowConfig;
