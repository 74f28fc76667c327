use sea_orm::entity::prelude::*;

/// The latest DNSBL result of one IP on one zone.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dnsbl_results")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ip_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub zone: String,
    /// LISTED, CLEAR or UNKNOWN (the zone could not be trusted or did not answer).
    pub state: String,
    /// The last definite answer: an UNKNOWN keeps the listing it interrupts.
    pub listed: bool,
    pub listed_since: Option<DateTimeUtc>,
    /// The answers of the zone, comma-separated (e.g. `127.0.0.2,127.0.0.4`).
    pub return_codes: String,
    /// What the answers mean on that zone, comma-separated (e.g. `SBL,XBL`).
    pub categories: String,
    /// The zone's TXT record for the listing.
    pub reason: Option<String>,
    /// Why the state is UNKNOWN.
    pub detail: Option<String>,
    pub checked_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
