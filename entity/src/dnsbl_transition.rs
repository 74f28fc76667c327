use sea_orm::entity::prelude::*;

/// An IP was listed on, or delisted from, a zone. The id is a UUID v7, so id order is
/// time order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dnsbl_transitions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ip_id: Uuid,
    pub zone: String,
    /// True for a listing, false for a delisting.
    pub listed: bool,
    pub categories: String,
    pub reason: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
