use sea_orm::entity::prelude::*;

/// Alerts of one route with the same values of its `groupBy` labels, notified together.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub group_key: String,
    /// `default`, or the index of the route in the policy.
    pub route: String,
    pub group_labels: Json,
    /// Notifications made for the group so far.
    pub sequence: i64,
    /// When the group is looked at next: `groupWait` after it formed, then every
    /// `groupInterval`; null while it holds no alert. The row stays, so its notification
    /// numbers never repeat.
    pub next_flush_at: Option<DateTimeUtc>,
    pub last_notified_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
