//! Notifications: the outbox of alert changes (written with the change), contact points,
//! the notification policy, groups of alerts being notified together, and the
//! notifications with every attempt to deliver them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AlertNotices::Table)
                    .col(pk_uuid(AlertNotices::Id))
                    .col(uuid(AlertNotices::AlertId))
                    .col(string_len(AlertNotices::State, 16))
                    .col(json(AlertNotices::Alert))
                    .col(timestamp_with_time_zone(AlertNotices::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactPoints::Table)
                    .col(pk_uuid(ContactPoints::Id))
                    .col(string_len_uniq(ContactPoints::Name, 64))
                    .col(string_len(ContactPoints::Kind, 16))
                    .col(json(ContactPoints::Settings))
                    .col(json(ContactPoints::Secrets))
                    .col(timestamp_with_time_zone(ContactPoints::CreatedAt))
                    .col(timestamp_with_time_zone(ContactPoints::UpdatedAt))
                    .col(string_len(ContactPoints::UpdatedBy, 128))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NotificationPolicies::Table)
                    .col(string_len(NotificationPolicies::Id, 32).primary_key())
                    .col(json(NotificationPolicies::Spec))
                    .col(timestamp_with_time_zone(NotificationPolicies::UpdatedAt))
                    .col(string_len(NotificationPolicies::UpdatedBy, 128))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NotificationGroups::Table)
                    .col(pk_uuid(NotificationGroups::Id))
                    .col(string_len_uniq(NotificationGroups::GroupKey, 1024))
                    .col(string_len(NotificationGroups::Route, 16))
                    .col(json(NotificationGroups::GroupLabels))
                    .col(big_integer(NotificationGroups::Sequence).default(0))
                    .col(timestamp_with_time_zone_null(
                        NotificationGroups::NextFlushAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        NotificationGroups::LastNotifiedAt,
                    ))
                    .col(timestamp_with_time_zone(NotificationGroups::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notification_groups_due")
                    .table(NotificationGroups::Table)
                    .col(NotificationGroups::NextFlushAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NotificationGroupAlerts::Table)
                    .col(uuid(NotificationGroupAlerts::GroupId))
                    .col(uuid(NotificationGroupAlerts::AlertId))
                    .col(string_len(NotificationGroupAlerts::State, 16))
                    .col(string_len_null(NotificationGroupAlerts::NotifiedState, 16))
                    .col(json(NotificationGroupAlerts::Alert))
                    .col(timestamp_with_time_zone(NotificationGroupAlerts::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(NotificationGroupAlerts::GroupId)
                            .col(NotificationGroupAlerts::AlertId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                NotificationGroupAlerts::Table,
                                NotificationGroupAlerts::GroupId,
                            )
                            .to(NotificationGroups::Table, NotificationGroups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(pk_uuid(Notifications::Id))
                    .col(uuid(Notifications::GroupId))
                    .col(string_len(Notifications::GroupKey, 1024))
                    .col(uuid(Notifications::ContactPointId))
                    .col(string_len(Notifications::ContactPointName, 64))
                    .col(big_integer(Notifications::Sequence))
                    .col(string_len(Notifications::Status, 16))
                    .col(json(Notifications::AlertIds))
                    .col(json(Notifications::Payload))
                    .col(string_len(Notifications::State, 16))
                    .col(integer(Notifications::Attempts).default(0))
                    .col(timestamp_with_time_zone(Notifications::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Notifications::LeaseUntil))
                    .col(uuid_null(Notifications::LeaseOwner))
                    .col(timestamp_with_time_zone(Notifications::CreatedAt))
                    .col(timestamp_with_time_zone_null(Notifications::FinishedAt))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "idx_notifications_due",
                vec![Notifications::State, Notifications::NextAttemptAt],
            ),
            (
                "idx_notifications_queue",
                vec![
                    Notifications::GroupId,
                    Notifications::ContactPointId,
                    Notifications::Sequence,
                ],
            ),
            ("idx_notifications_created", vec![Notifications::CreatedAt]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Notifications::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(NotificationAttempts::Table)
                    .col(pk_uuid(NotificationAttempts::Id))
                    .col(uuid(NotificationAttempts::NotificationId))
                    .col(timestamp_with_time_zone(NotificationAttempts::At))
                    .col(string_len(NotificationAttempts::Outcome, 16))
                    .col(integer_null(NotificationAttempts::StatusCode))
                    .col(text(NotificationAttempts::Detail))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                NotificationAttempts::Table,
                                NotificationAttempts::NotificationId,
                            )
                            .to(Notifications::Table, Notifications::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notification_attempts_of")
                    .table(NotificationAttempts::Table)
                    .col(NotificationAttempts::NotificationId)
                    .col(NotificationAttempts::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            NotificationAttempts::Table.into_iden(),
            Notifications::Table.into_iden(),
            NotificationGroupAlerts::Table.into_iden(),
            NotificationGroups::Table.into_iden(),
            NotificationPolicies::Table.into_iden(),
            ContactPoints::Table.into_iden(),
            AlertNotices::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AlertNotices {
    Table,
    Id,
    AlertId,
    State,
    Alert,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ContactPoints {
    Table,
    Id,
    Name,
    Kind,
    Settings,
    Secrets,
    CreatedAt,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum NotificationPolicies {
    Table,
    Id,
    Spec,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum NotificationGroups {
    Table,
    Id,
    GroupKey,
    Route,
    GroupLabels,
    Sequence,
    NextFlushAt,
    LastNotifiedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum NotificationGroupAlerts {
    Table,
    GroupId,
    AlertId,
    State,
    NotifiedState,
    Alert,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    GroupId,
    GroupKey,
    ContactPointId,
    ContactPointName,
    Sequence,
    Status,
    AlertIds,
    Payload,
    State,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LeaseOwner,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum NotificationAttempts {
    Table,
    Id,
    NotificationId,
    At,
    Outcome,
    StatusCode,
    Detail,
}
