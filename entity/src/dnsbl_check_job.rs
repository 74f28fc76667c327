use sea_orm::entity::prelude::*;

/// A queued, running or finished DNSBL check. Kept in the database so that a restart
/// loses no job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dnsbl_check_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// SCHEDULED or MANUAL.
    pub kind: String,
    /// The addresses to check; `None` means every ACTIVE and WARMING IP.
    pub addresses: Option<Json>,
    /// QUEUED, RUNNING, SUCCEEDED or FAILED.
    pub state: String,
    pub attempts: i32,
    pub next_run_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub result: Option<Json>,
    pub requested_by: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
