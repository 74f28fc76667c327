use sea_orm::entity::prelude::*;

/// One message to one contact point about one group, with its payload fixed when it was
/// made, so every attempt sends the same thing.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub group_id: Uuid,
    pub group_key: String,
    pub contact_point_id: Uuid,
    pub contact_point_name: String,
    /// The group's notification number: with `group_key`, what a receiver drops a
    /// duplicate by.
    pub sequence: i64,
    /// FIRING or RESOLVED.
    pub status: String,
    pub alert_ids: Json,
    /// The Alertmanager webhook message (version 4) every kind is rendered from.
    pub payload: Json,
    /// PENDING, RETRYING, SENT or FAILED.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// While an instance is sending it: until when, and the pass that leased it.
    pub lease_until: Option<DateTimeUtc>,
    pub lease_owner: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
