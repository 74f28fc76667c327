use sea_orm::entity::prelude::*;

/// A mail events batch an agent sent, kept so that a retry is answered without writing
/// again.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_event_batches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub batch_id: String,
    /// SHA-256 of the batch's events, to tell a retry from a different batch reusing an id.
    pub content_hash: String,
    pub accepted: i32,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
