//! The audit log: who changed what, when, and how it ended.

pub mod resolvers;
pub mod service;
pub mod types;

pub use service::{Actor, AuditContext, Change};
