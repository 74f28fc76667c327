//! The audit log: who changed what, when, and how it ended.

mod model;
mod service;
mod store;

pub use model::AuditOutcome;
pub use service::{Actor, AuditContext, Change, audited, commit, record, record_failure};
pub use store::{AuditFilter, entries, list};
