use sea_orm::entity::prelude::*;

/// A machine of the mail cluster, registered by its agent.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Lower-case DNS name; unique.
    #[sea_orm(unique)]
    pub hostname: String,
    /// One bit per role (IMAP = 1, MTA = 2, MX = 4, MONGODB = 8, REDIS = 16, RSPAMD = 32,
    /// WEBMAIL = 64, OTHER = 128), so "has any of these roles" is one bitwise test on
    /// both backends.
    pub roles_mask: i32,
    /// `{"key": "value"}`, for display; `node_labels` holds the same pairs for filtering.
    pub labels: Json,
    /// `ONLINE`, `STALE`, `DOWN`, `MAINTENANCE` or `RETIRED`.
    pub status: String,
    pub last_seen_at: Option<DateTimeUtc>,
    pub agent_version: Option<String>,
    pub description: Option<String>,
    pub maintenance_enabled: bool,
    pub maintenance_reason: Option<String>,
    pub maintenance_since: Option<DateTimeUtc>,
    pub maintenance_until: Option<DateTimeUtc>,
    pub maintenance_by: Option<String>,
    /// The configuration version the node's agent last applied, and when.
    pub applied_config_version: Option<String>,
    pub applied_config_at: Option<DateTimeUtc>,
    /// Why the agent could not apply a newer version; null once it could.
    pub config_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
