#![allow(clippy::unwrap_used)]

//! Integration tests: each starts a real mailops server on an ephemeral port and talks to
//! it over HTTP and WebSocket, on embedded SQLite and on Postgres with Redis.

mod agent_config;
mod alerts;
mod audit;
mod auth;
mod cli;
mod deliverability;
mod embedded;
mod exposure;
mod faults;
mod graphiql_browser;
mod graphql_http;
mod hostile_input;
mod ips;
mod mailflow;
mod metrics;
mod nodes;
mod notifications;
mod overview;
mod rate_limits;
mod remote_write;
mod schema;
mod subscriptions;
mod users;
mod websocket;
