//! sea-orm entities of mailops, one per table. GraphQL types live in the domain modules of
//! the `mailops` crate and convert from these models, so this crate stays free of GraphQL.

pub mod audit_log;
pub mod refresh_token;
pub mod user;
