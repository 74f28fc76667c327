//! The audit log: who changed what, when, and how it ended.

mod service;

pub use service::{
    Actor, AuditContext, AuditFilter, Change, audited, list, record, record_failure,
};
