//! The only code that reads and writes the nodes domain's tables: `nodes`, `node_labels`,
//! `node_status_changes`, `node_keys` and `enrollment_keys`.

pub mod enrollment;
pub mod keys;
pub mod nodes;
pub mod status;
