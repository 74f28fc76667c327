use sea_orm::entity::prelude::*;

/// One alert of a notification group, with what was last notified of it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_group_alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub alert_id: Uuid,
    /// FIRING or RESOLVED.
    pub state: String,
    /// What the last notification said of it, if one did.
    pub notified_state: Option<String>,
    /// The alert as of its last change.
    pub alert: Json,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
