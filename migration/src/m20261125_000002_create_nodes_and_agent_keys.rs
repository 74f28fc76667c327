use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Nodes::Table)
                    .col(pk_uuid(Nodes::Id))
                    .col(string_len_uniq(Nodes::Hostname, 253))
                    .col(integer(Nodes::RolesMask))
                    .col(json_binary(Nodes::Labels))
                    .col(string_len(Nodes::Status, 16))
                    .col(timestamp_with_time_zone_null(Nodes::LastSeenAt))
                    .col(string_len_null(Nodes::AgentVersion, 64))
                    .col(text_null(Nodes::Description))
                    .col(boolean(Nodes::MaintenanceEnabled).default(false))
                    .col(text_null(Nodes::MaintenanceReason))
                    .col(timestamp_with_time_zone_null(Nodes::MaintenanceSince))
                    .col(timestamp_with_time_zone_null(Nodes::MaintenanceUntil))
                    .col(string_len_null(Nodes::MaintenanceBy, 128))
                    .col(timestamp_with_time_zone(Nodes::CreatedAt))
                    .col(timestamp_with_time_zone(Nodes::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The status job looks for live nodes whose last contact is older than a threshold.
        manager
            .create_index(
                Index::create()
                    .name("idx_nodes_status_last_seen")
                    .table(Nodes::Table)
                    .col(Nodes::Status)
                    .col(Nodes::LastSeenAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NodeLabels::Table)
                    .col(uuid(NodeLabels::NodeId))
                    .col(string_len(NodeLabels::Key, 63))
                    .col(string_len(NodeLabels::Value, 255))
                    .primary_key(Index::create().col(NodeLabels::NodeId).col(NodeLabels::Key))
                    .foreign_key(
                        ForeignKey::create()
                            .from(NodeLabels::Table, NodeLabels::NodeId)
                            .to(Nodes::Table, Nodes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_node_labels_key_value")
                    .table(NodeLabels::Table)
                    .col(NodeLabels::Key)
                    .col(NodeLabels::Value)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NodeKeys::Table)
                    .col(pk_uuid(NodeKeys::Id))
                    .col(uuid(NodeKeys::NodeId))
                    .col(string_len(NodeKeys::SecretHash, 64))
                    .col(timestamp_with_time_zone(NodeKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(NodeKeys::RevokedAt))
                    .col(timestamp_with_time_zone_null(NodeKeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(NodeKeys::Table, NodeKeys::NodeId)
                            .to(Nodes::Table, Nodes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_node_keys_node")
                    .table(NodeKeys::Table)
                    .col(NodeKeys::NodeId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EnrollmentKeys::Table)
                    .col(pk_uuid(EnrollmentKeys::Id))
                    .col(string_len(EnrollmentKeys::Name, 128))
                    .col(string_len(EnrollmentKeys::SecretHash, 64))
                    .col(uuid_null(EnrollmentKeys::CreatedBy))
                    .col(timestamp_with_time_zone(EnrollmentKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(EnrollmentKeys::ExpiresAt))
                    .col(integer_null(EnrollmentKeys::MaxUses))
                    .col(integer(EnrollmentKeys::Uses).default(0))
                    .col(timestamp_with_time_zone_null(EnrollmentKeys::RevokedAt))
                    .col(timestamp_with_time_zone_null(EnrollmentKeys::LastUsedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NodeStatusChanges::Table)
                    .col(pk_uuid(NodeStatusChanges::Id))
                    .col(uuid(NodeStatusChanges::NodeId))
                    .col(string_len_null(NodeStatusChanges::FromStatus, 16))
                    .col(string_len(NodeStatusChanges::ToStatus, 16))
                    .col(timestamp_with_time_zone(NodeStatusChanges::ChangedAt))
                    .col(string_len(NodeStatusChanges::Reason, 255))
                    .foreign_key(
                        ForeignKey::create()
                            .from(NodeStatusChanges::Table, NodeStatusChanges::NodeId)
                            .to(Nodes::Table, Nodes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_node_status_changes_node")
                    .table(NodeStatusChanges::Table)
                    .col(NodeStatusChanges::NodeId)
                    .col(NodeStatusChanges::Id)
                    .to_owned(),
            )
            .await?;

        // The sending-IP inventory starts here as the addresses nodes report; the IP
        // domain adds its own columns in later migrations.
        manager
            .create_table(
                Table::create()
                    .table(IpAddresses::Table)
                    .col(pk_uuid(IpAddresses::Id))
                    .col(string_len_uniq(IpAddresses::Address, 45))
                    .col(binary_len(IpAddresses::AddressKey, 16))
                    .col(uuid_null(IpAddresses::NodeId))
                    .col(timestamp_with_time_zone(IpAddresses::CreatedAt))
                    .col(timestamp_with_time_zone(IpAddresses::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(IpAddresses::Table, IpAddresses::NodeId)
                            .to(Nodes::Table, Nodes::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_ip_addresses_key", IpAddresses::AddressKey),
            ("idx_ip_addresses_node", IpAddresses::NodeId),
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IpAddresses::Table.into_iden(),
            NodeStatusChanges::Table.into_iden(),
            EnrollmentKeys::Table.into_iden(),
            NodeKeys::Table.into_iden(),
            NodeLabels::Table.into_iden(),
            Nodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Id,
    Hostname,
    RolesMask,
    Labels,
    Status,
    LastSeenAt,
    AgentVersion,
    Description,
    MaintenanceEnabled,
    MaintenanceReason,
    MaintenanceSince,
    MaintenanceUntil,
    MaintenanceBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum NodeLabels {
    Table,
    NodeId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum NodeKeys {
    Table,
    Id,
    NodeId,
    SecretHash,
    CreatedAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum EnrollmentKeys {
    Table,
    Id,
    Name,
    SecretHash,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    MaxUses,
    Uses,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum NodeStatusChanges {
    Table,
    Id,
    NodeId,
    FromStatus,
    ToStatus,
    ChangedAt,
    Reason,
}

#[derive(DeriveIden)]
enum IpAddresses {
    Table,
    Id,
    Address,
    AddressKey,
    NodeId,
    CreatedAt,
    UpdatedAt,
}
