use sea_orm::entity::prelude::*;

/// One delivery event an MTA reported, kept for the raw-event retention. `ts` is epoch
/// milliseconds, like metric samples: the hot path and the per-minute counters work on
/// integers.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub node_id: Uuid,
    pub ts: i64,
    pub message_id: String,
    /// QUEUED, DELIVERED, DEFERRED, BOUNCED, REJECTED or DROPPED.
    pub status: String,
    /// Canonical text form; empty when the event names no sending IP.
    pub sending_ip: String,
    /// Lower-case; empty when the event names no recipient.
    pub recipient_domain: String,
    /// The recipient domain's provider group, decided at ingestion.
    pub provider: String,
    /// The ZoneMTA sending zone.
    pub zone: Option<String>,
    pub smtp_code: Option<i32>,
    pub response: Option<String>,
    /// Why a DEFERRED or BOUNCED event was refused (INVALID_RECIPIENT, THROTTLED, …),
    /// decided at ingestion; `None` for other statuses.
    pub category: Option<String>,
    /// The RFC 3463 enhanced status code the response carried, e.g. `5.1.1`.
    pub enhanced_code: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
