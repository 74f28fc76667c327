//! Signing in: passwords, access and refresh tokens, login backoff, and the GraphQL
//! operations that use them.

mod backoff;
mod cache;
mod password;
mod principal;
mod role;
mod service;
mod store;
mod tokens;

pub use backoff::{BackoffPolicy, LoginBackoff};
pub use cache::PrincipalCache;
pub use password::{Passwords, check_policy, generate as generate_password};
pub use principal::{AgentNode, AuthUser, ClientAddr, EnrollmentCaller, Principal, RequestId};
pub use role::Role;
pub use service::{Session, change_password, login, logout, refresh, revoke_user_sessions};
pub use tokens::{TokenKeys, hash_secret, load_or_create_secret, random_token};
