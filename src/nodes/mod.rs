//! Nodes of the mail cluster: enrollment, agent keys, inventory, status and maintenance.

mod enrollment;
mod keys;
mod model;
mod service;
mod status;

pub use enrollment::{
    create as create_enrollment_key, list as list_enrollment_keys, revoke as revoke_enrollment_key,
};
pub use keys::{
    KeyKind, authenticate_enrollment, authenticate_node, parse as parse_key, touch_node_key,
};
pub use model::*;
pub use service::{
    decommission, find, find_by_hostname, heartbeat, keys_of, list, record_contact, register,
    revoke_key, rotate_key, set_maintenance, status_history, update, validate_hostname,
    validate_labels,
};
pub use status::{NodeStatus, sweep as sweep_statuses};
