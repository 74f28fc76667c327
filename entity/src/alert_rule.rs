use sea_orm::entity::prelude::*;

/// When an alert is raised: a metric threshold or a built-in condition, for the nodes
/// its selector picks.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    pub description: Option<String>,
    /// METRIC, NODE_DOWN, BOUNCE_RATE, DEFERRAL_RATE, CATEGORY_COUNT or IP_LISTED.
    pub condition: String,
    /// The metric a METRIC rule watches.
    pub metric: Option<String>,
    /// Labels a series must carry to count for a METRIC rule, as an object.
    pub metric_labels: Json,
    /// How the latest values of a METRIC rule's series combine: MAX, MIN, SUM or AVG.
    pub aggregate: Option<String>,
    /// GT, GTE, LT or LTE.
    pub comparison: String,
    pub threshold: f64,
    /// The value a firing alert must get back past before it resolves; `None` means the
    /// rule's default hysteresis.
    pub resolve_threshold: Option<f64>,
    pub for_seconds: i32,
    /// The window a BOUNCE_RATE, DEFERRAL_RATE or CATEGORY_COUNT rule counts over.
    pub window_seconds: Option<i32>,
    /// What a mail-flow rule judges one by one: NODE, IP, POOL, PROVIDER or IP_PROVIDER.
    pub scope: Option<String>,
    /// The refusal category a CATEGORY_COUNT rule counts.
    pub category: Option<String>,
    /// Whether an alert of this rule that fires for an IP pauses that IP.
    pub pause_ip: bool,
    /// WARNING or CRITICAL.
    pub severity: String,
    pub enabled: bool,
    /// Node roles the rule applies to, as an array; empty means any.
    pub selector_roles: Json,
    /// Labels a node must carry, as an object; empty means any.
    pub selector_labels: Json,
    /// Node ids the rule applies to, as an array; empty means any.
    pub selector_node_ids: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
