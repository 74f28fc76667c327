use sea_orm::entity::prelude::*;

/// A sending IP address of the cluster: the node it belongs to, its pool and its status.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ip_addresses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Canonical text form (RFC 5952 for IPv6).
    #[sea_orm(unique)]
    pub address: String,
    /// The address as 16 bytes (IPv4 mapped into IPv6), so that a CIDR is a range.
    pub address_key: Vec<u8>,
    pub node_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub pool: Option<String>,
    /// ACTIVE, PAUSED, WARMING or RETIRED.
    pub status: String,
    pub status_reason: Option<String>,
    pub status_changed_at: Option<DateTimeUtc>,
    pub reverse_dns: Option<String>,
    pub notes: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
