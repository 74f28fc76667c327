//! Nodes of the mail cluster: enrollment, agent keys, inventory, status and maintenance.

pub mod enrollment;
pub mod keys;
pub mod loaders;
pub mod resolvers;
pub mod service;
pub mod status;
pub mod types;

pub use keys::{
    KeyKind, authenticate_enrollment, authenticate_node, parse as parse_key, touch_node_key,
};
