use sea_orm::entity::prelude::*;

/// The outbox of alert changes that notify: written in the transaction that changes the
/// alert, removed by the notifier in the transaction that groups it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_notices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub alert_id: Uuid,
    /// FIRING or RESOLVED.
    pub state: String,
    /// The alert as it was at the change, with its rule's name and its node's hostname.
    pub alert: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
