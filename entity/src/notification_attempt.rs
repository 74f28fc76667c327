use sea_orm::entity::prelude::*;

/// One try to deliver a notification.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub notification_id: Uuid,
    pub at: DateTimeUtc,
    /// SENT, FAILED (tried again) or REJECTED (not tried again).
    pub outcome: String,
    /// The HTTP status or SMTP reply code, when there was one.
    pub status_code: Option<i32>,
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
