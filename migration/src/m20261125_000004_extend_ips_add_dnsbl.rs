use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let columns = [
            string_len_null(IpAddresses::Pool, 64),
            string_len(IpAddresses::Status, 16)
                .default("ACTIVE")
                .to_owned(),
            string_len_null(IpAddresses::StatusReason, 255),
            timestamp_with_time_zone_null(IpAddresses::StatusChangedAt),
            string_len_null(IpAddresses::ReverseDns, 253),
            text_null(IpAddresses::Notes),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(IpAddresses::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        for (name, column) in [
            ("idx_ip_addresses_status", IpAddresses::Status),
            ("idx_ip_addresses_pool", IpAddresses::Pool),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(IpAddresses::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(DnsblResults::Table)
                    .col(uuid(DnsblResults::IpId))
                    .col(string_len(DnsblResults::Zone, 253))
                    .col(string_len(DnsblResults::State, 16))
                    .col(boolean(DnsblResults::Listed).default(false))
                    .col(timestamp_with_time_zone_null(DnsblResults::ListedSince))
                    .col(string_len(DnsblResults::ReturnCodes, 255).default(""))
                    .col(string_len(DnsblResults::Categories, 255).default(""))
                    .col(text_null(DnsblResults::Reason))
                    .col(text_null(DnsblResults::Detail))
                    .col(timestamp_with_time_zone(DnsblResults::CheckedAt))
                    .primary_key(
                        Index::create()
                            .col(DnsblResults::IpId)
                            .col(DnsblResults::Zone),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DnsblResults::Table, DnsblResults::IpId)
                            .to(IpAddresses::Table, IpAddresses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dnsbl_results_listed")
                    .table(DnsblResults::Table)
                    .col(DnsblResults::Listed)
                    .col(DnsblResults::IpId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DnsblTransitions::Table)
                    .col(pk_uuid(DnsblTransitions::Id))
                    .col(uuid(DnsblTransitions::IpId))
                    .col(string_len(DnsblTransitions::Zone, 253))
                    .col(boolean(DnsblTransitions::Listed))
                    .col(string_len(DnsblTransitions::Categories, 255).default(""))
                    .col(text_null(DnsblTransitions::Reason))
                    .col(timestamp_with_time_zone(DnsblTransitions::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DnsblTransitions::Table, DnsblTransitions::IpId)
                            .to(IpAddresses::Table, IpAddresses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dnsbl_transitions_ip")
                    .table(DnsblTransitions::Table)
                    .col(DnsblTransitions::IpId)
                    .col(DnsblTransitions::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DnsblCheckJobs::Table)
                    .col(pk_uuid(DnsblCheckJobs::Id))
                    .col(string_len(DnsblCheckJobs::Kind, 16))
                    .col(json_binary_null(DnsblCheckJobs::Addresses))
                    .col(string_len(DnsblCheckJobs::State, 16))
                    .col(integer(DnsblCheckJobs::Attempts).default(0))
                    .col(timestamp_with_time_zone(DnsblCheckJobs::NextRunAt))
                    .col(text_null(DnsblCheckJobs::LastError))
                    .col(json_binary_null(DnsblCheckJobs::Result))
                    .col(string_len_null(DnsblCheckJobs::RequestedBy, 128))
                    .col(timestamp_with_time_zone(DnsblCheckJobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(DnsblCheckJobs::StartedAt))
                    .col(timestamp_with_time_zone_null(DnsblCheckJobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dnsbl_check_jobs_due")
                    .table(DnsblCheckJobs::Table)
                    .col(DnsblCheckJobs::State)
                    .col(DnsblCheckJobs::NextRunAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DnsblCheckJobs::Table.into_iden(),
            DnsblTransitions::Table.into_iden(),
            DnsblResults::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for name in ["idx_ip_addresses_status", "idx_ip_addresses_pool"] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(IpAddresses::Table)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            IpAddresses::Pool,
            IpAddresses::Status,
            IpAddresses::StatusReason,
            IpAddresses::StatusChangedAt,
            IpAddresses::ReverseDns,
            IpAddresses::Notes,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(IpAddresses::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum IpAddresses {
    Table,
    Id,
    Pool,
    Status,
    StatusReason,
    StatusChangedAt,
    ReverseDns,
    Notes,
}

#[derive(DeriveIden)]
enum DnsblResults {
    Table,
    IpId,
    Zone,
    State,
    Listed,
    ListedSince,
    ReturnCodes,
    Categories,
    Reason,
    Detail,
    CheckedAt,
}

#[derive(DeriveIden)]
enum DnsblTransitions {
    Table,
    Id,
    IpId,
    Zone,
    Listed,
    Categories,
    Reason,
    At,
}

#[derive(DeriveIden)]
enum DnsblCheckJobs {
    Table,
    Id,
    Kind,
    Addresses,
    State,
    Attempts,
    NextRunAt,
    LastError,
    Result,
    RequestedBy,
    CreatedAt,
    StartedAt,
    FinishedAt,
}
