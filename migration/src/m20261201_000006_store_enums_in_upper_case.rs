//! Every enum is stored in SCREAMING_CASE: node statuses (and their history), user roles
//! and audit outcomes were stored in lower case.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column) pairs holding an enum that was stored in lower case.
const COLUMNS: [(&str, &str); 5] = [
    ("nodes", "status"),
    ("node_status_changes", "from_status"),
    ("node_status_changes", "to_status"),
    ("users", "role"),
    ("audit_log", "outcome"),
];

async fn set_case(manager: &SchemaManager<'_>, function: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (table, column) in COLUMNS {
        // Both backends have UPPER and LOWER; NULL stays NULL.
        db.execute_unprepared(&format!(
            "UPDATE {table} SET {column} = {function}({column}) WHERE {column} IS NOT NULL"
        ))
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_case(manager, "UPPER").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_case(manager, "LOWER").await
    }
}
