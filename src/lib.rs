//! mailops: the GraphQL API behind an operations dashboard for a mail cluster.
//!
//! [`app::Application`] builds the whole server from a [`config::Config`]; `main.rs` and
//! the integration tests both start it that way.

pub mod alerts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod input;
pub mod ips;
pub mod jobs;
pub mod mailflow;
pub mod metrics;
pub mod nodes;
pub mod notifications;
pub mod overview;
pub mod ratelimit;
pub mod realtime;
pub mod remote_write;
pub mod seed;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod users;

pub use app::Application;
pub use config::Config;
