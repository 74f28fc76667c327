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

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

/// Begins a transaction that will write. On SQLite it takes the write lock at once: a
/// transaction that reads first and writes later fails with "database is locked" (rather
/// than waiting) when another write commits in between, which the check jobs make likely.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

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
