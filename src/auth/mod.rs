//! Signing in: passwords, access and refresh tokens, login backoff, and the GraphQL
//! operations that use them.

pub mod backoff;
pub mod password;
pub mod principal;
pub mod resolvers;
pub mod role;
pub mod service;
pub mod tokens;
pub mod types;

pub use backoff::{BackoffPolicy, LoginBackoff};
pub use password::Passwords;
pub use principal::{AgentNode, AuthUser, EnrollmentCaller, Principal, RequestId};
pub use role::Role;
pub use tokens::TokenKeys;
