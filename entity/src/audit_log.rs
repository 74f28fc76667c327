use sea_orm::entity::prelude::*;

/// One state-changing action: who did what to which target, when, and how it ended.
/// The id is a UUID v7, so ordering by id is ordering by time.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub occurred_at: DateTimeUtc,
    /// `user`, `agent`, `system` or `cli`.
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    /// Dotted verb such as `user.create` or `auth.login`.
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// `SUCCESS` or `FAILURE`.
    pub outcome: String,
    pub detail: Option<Json>,
    pub request_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
