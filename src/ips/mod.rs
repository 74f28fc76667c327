//! Sending IPs of the cluster: the inventory, their status, and their standing on DNS
//! blocklists.

mod address;
mod agent_config;
mod checks;
mod config;
mod dnsbl;
mod inventory;
mod model;
mod status;
mod store;

pub use address::{Cidr, ParsedAddress, parse as parse_address, parse_cidr};
pub use agent_config::{agent_config, config_of as agent_config_of};
pub use checks::{JobAction, change_job, enqueue, find_job, queue_summary, tick as run_check_jobs};
pub use config::{DEFAULT_ZONES, DnsblConfig, ZoneSpec, parse_zones};
pub use dnsbl::Checker;
pub use inventory::{MAX_ADD, add, assign, attach_to_node, find, key_cursor, list, remove, update};
pub use model::*;
pub use status::{MAX_BULK, Outcome, auto_pause, bulk_action, set_status};
pub use store::{
    addresses::{NodeIp, addresses_in_pools, ips_of_nodes, pools as pools_by_address},
    dnsbl::{ListedAddress, count_listed, history, listed_on, results_of},
    jobs::{FAILED as JOB_FAILED, SCHEDULED as JOB_SCHEDULED, SUCCEEDED as JOB_SUCCEEDED},
};

/// Whether an IP sends mail.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpStatus {
    /// Sends mail.
    Active,
    /// Sends no mail until resumed.
    Paused,
    /// Sends a growing share of mail while it builds reputation.
    Warming,
    /// Out of service for good; its status cannot change any more.
    Retired,
}

crate::stored_enum!(IpStatus, "IP status" {
    Active => "ACTIVE",
    Paused => "PAUSED",
    Warming => "WARMING",
    Retired => "RETIRED",
});
