//! Dashboard users and their roles.

pub mod resolvers;
pub mod service;
pub mod types;

pub use service::find;
