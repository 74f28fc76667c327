//! Sending IPs of the cluster: the inventory, their status, and their standing on DNS
//! blocklists.

pub mod address;
pub mod checks;
pub mod config;
pub mod dnsbl;
pub mod loaders;
pub mod resolvers;
pub mod service;
pub mod types;

pub use config::DnsblConfig;

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

impl IpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IpStatus::Active => "ACTIVE",
            IpStatus::Paused => "PAUSED",
            IpStatus::Warming => "WARMING",
            IpStatus::Retired => "RETIRED",
        }
    }

    pub fn parse(text: &str) -> IpStatus {
        match text {
            "PAUSED" => IpStatus::Paused,
            "WARMING" => IpStatus::Warming,
            "RETIRED" => IpStatus::Retired,
            _ => IpStatus::Active,
        }
    }
}
