//! Dashboard users and their roles.

mod service;

pub use service::{
    create, ensure_initial_admin, find, find_by_username, list, normalize_username, reset_password,
    set_password_hash, update,
};
