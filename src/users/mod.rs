//! Dashboard users and their roles.

mod service;
mod store;

pub use service::{
    create, ensure_initial_admin, normalize_username, reset_password, set_password_hash, update,
};
pub use store::{find, find_by_username, list, set_last_login};
