//! The audit domain's data.

use async_graphql::Enum;

/// How an audited action ended.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The action was carried out.
    Success,
    /// The action was refused; `detail` holds the code and message the caller saw.
    Failure,
}

crate::stored_enum!(AuditOutcome, "audit outcome" { Success => "SUCCESS", Failure => "FAILURE" });
