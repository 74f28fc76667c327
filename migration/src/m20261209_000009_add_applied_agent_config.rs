//! What each node's agent has applied of its configuration: the version, when, and why
//! the last attempt to apply a newer one failed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Nodes {
    Table,
    AppliedConfigVersion,
    AppliedConfigAt,
    ConfigError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            ColumnDef::new(Nodes::AppliedConfigVersion)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(Nodes::AppliedConfigAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Nodes::ConfigError).text().null().to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Nodes::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Nodes::ConfigError,
            Nodes::AppliedConfigAt,
            Nodes::AppliedConfigVersion,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Nodes::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
