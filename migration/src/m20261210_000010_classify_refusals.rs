//! Why deliveries are refused: each raw event keeps its category and enhanced status
//! code, the mail-flow counters gain the category as part of their key, and alert rules
//! gain a scope (node, IP, pool, provider), a category and whether to pause the IP.
//!
//! The counters' key changes, which SQLite cannot alter in place: each table is rebuilt
//! under its own name, its rows kept with no category (they were counted before
//! refusals had one).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MailEvents {
    Table,
    Category,
    EnhancedCode,
}

#[derive(DeriveIden)]
enum AlertRules {
    Table,
    Scope,
    Category,
    PauseIp,
}

#[derive(DeriveIden)]
enum FlowCounter {
    Bucket,
    NodeId,
    SendingIp,
    Provider,
    Category,
    Queued,
    Delivered,
    Deferred,
    Bounced,
    Rejected,
    Dropped,
}

const COUNTERS: [(&str, &str); 2] = [
    ("mail_flow_1m", "idx_mail_flow_1m_ip"),
    ("mail_flow_1h", "idx_mail_flow_1h_ip"),
];
const COLUMNS: &str = "bucket, node_id, sending_ip, provider, queued, delivered, deferred, bounced, rejected, dropped";

fn counter_table(name: &str, with_category: bool) -> TableCreateStatement {
    let mut table = Table::create();
    table
        .table(Alias::new(name))
        .col(big_integer(FlowCounter::Bucket))
        .col(uuid(FlowCounter::NodeId))
        .col(string_len(FlowCounter::SendingIp, 45))
        .col(string_len(FlowCounter::Provider, 32));
    if with_category {
        table.col(string_len(FlowCounter::Category, 32).default("").to_owned());
    }
    for column in [
        FlowCounter::Queued,
        FlowCounter::Delivered,
        FlowCounter::Deferred,
        FlowCounter::Bounced,
        FlowCounter::Rejected,
        FlowCounter::Dropped,
    ] {
        table.col(big_integer(column).default(0).to_owned());
    }
    let mut key = Index::create();
    key.col(FlowCounter::Bucket)
        .col(FlowCounter::NodeId)
        .col(FlowCounter::SendingIp)
        .col(FlowCounter::Provider);
    if with_category {
        key.col(FlowCounter::Category);
    }
    table.primary_key(&mut key);
    table.to_owned()
}

async fn rebuild_counters(manager: &SchemaManager<'_>, with_category: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = db.get_database_backend();
    for (name, ip_index) in COUNTERS {
        let next = format!("{name}_next");
        let (into, from) = if with_category {
            (format!("{COLUMNS}, category"), format!("{COLUMNS}, ''"))
        } else {
            // Back to one row per key without a category: the categories' counts add up.
            (
                COLUMNS.to_string(),
                "bucket, node_id, sending_ip, provider, SUM(queued), SUM(delivered), \
                 SUM(deferred), SUM(bounced), SUM(rejected), SUM(dropped)"
                    .to_string(),
            )
        };
        let group = if with_category {
            ""
        } else {
            " GROUP BY bucket, node_id, sending_ip, provider"
        };
        // One batch of statements, so that every step runs on the same connection: on
        // SQLite, another connection of the pool may still see the table just dropped.
        let steps = [
            backend.build(&counter_table(&next, with_category)).sql,
            format!("INSERT INTO {next} ({into}) SELECT {from} FROM {name}{group}"),
            backend
                .build(&Table::drop().table(Alias::new(name)).to_owned())
                .sql,
            backend
                .build(
                    &Table::rename()
                        .table(Alias::new(&next), Alias::new(name))
                        .to_owned(),
                )
                .sql,
            backend
                .build(
                    &Index::create()
                        .name(ip_index)
                        .table(Alias::new(name))
                        .col(FlowCounter::SendingIp)
                        .col(FlowCounter::Bucket)
                        .to_owned(),
                )
                .sql,
        ];
        db.execute_unprepared(&steps.join(";\n")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            string_len_null(MailEvents::Category, 32),
            string_len_null(MailEvents::EnhancedCode, 16),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MailEvents::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            string_len_null(AlertRules::Scope, 16),
            string_len_null(AlertRules::Category, 32),
            boolean(AlertRules::PauseIp).default(false).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AlertRules::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        rebuild_counters(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild_counters(manager, false).await?;
        for column in [AlertRules::PauseIp, AlertRules::Category, AlertRules::Scope] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AlertRules::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [MailEvents::EnhancedCode, MailEvents::Category] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MailEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
