//! mailops-agent: the program on every node of a mail cluster that feeds mailops and
//! applies on the node what mailops decides.
//!
//! - [`enroll`] registers the node with an enrollment key and keeps its node key.
//! - [`collect`] reads the system (with `sysinfo`) and a local Redis's `INFO`, named as
//!   mailops's `metricCatalog` names them.
//! - [`spool`] keeps every batch on disk, fsynced, before it is first sent; [`send`]
//!   delivers them in order and forgets one only once mailops acknowledged it.
//! - [`events`] takes mail events from any MTA on a local HTTP address, into the spool.
//! - [`control`] follows `agentConfigChanged` and [`apply`] writes the pool file, runs the
//!   reload command and reports the version applied.

pub mod apply;
pub mod backoff;
pub mod client;
pub mod collect;
pub mod control;
pub mod enroll;
pub mod events;
pub mod files;
pub mod run;
pub mod send;
pub mod settings;
pub mod spool;
pub mod zonemta_log;

/// The agent's version, reported to mailops with every heartbeat.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
