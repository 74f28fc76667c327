use sea_orm::entity::prelude::*;

/// One rule's alert about one subject (a node, an IP), from PENDING to RESOLVED.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub rule_id: Uuid,
    /// What the alert is about: a node id or an IP address.
    pub subject: String,
    pub node_id: Option<Uuid>,
    pub ip: Option<String>,
    /// PENDING, FIRING or RESOLVED.
    pub state: String,
    /// WARNING or CRITICAL, copied from the rule when the alert was raised.
    pub severity: String,
    /// The value last evaluated.
    pub value: Option<f64>,
    pub threshold: f64,
    pub message: String,
    pub pending_since: DateTimeUtc,
    pub fired_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledged_by: Option<String>,
    pub acknowledge_note: Option<String>,
    /// The silence that covers the alert, while one does.
    pub silence_id: Option<Uuid>,
    pub silenced_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
