//! Nodes of the mail cluster: enrollment, agent keys, inventory, status and maintenance.

mod enrollment;
mod keys;
mod manage;
mod model;
mod register;
mod status;
mod store;
mod validate;

pub use enrollment::{
    create as create_enrollment_key, create_for_node as create_reenrollment_key,
    list as list_enrollment_keys, revoke as revoke_enrollment_key,
};
pub use keys::{
    KeyKind, authenticate_enrollment, authenticate_node, parse as parse_key, touch_node_key,
};
pub use manage::{decommission, list, revoke_key, rotate_key, set_maintenance, update};
pub use model::*;
pub use register::{AgentReport, MAX_CONFIG_ERROR_CHARS, heartbeat, record_contact, register};
pub use status::{NodeStatus, sweep as sweep_statuses};
pub use store::{
    keys::of_node as keys_of,
    nodes::{count_by_status, find, find_by_hostname, find_many, in_service},
    status::history as status_history,
};
pub use validate::{validate_hostname, validate_labels};
