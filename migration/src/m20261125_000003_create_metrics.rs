use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MetricSeries::Table)
                    .col(pk_uuid(MetricSeries::Id))
                    .col(uuid(MetricSeries::NodeId))
                    .col(string_len(MetricSeries::Name, 128))
                    .col(json_binary(MetricSeries::Labels))
                    .col(text(MetricSeries::LabelsKey))
                    .col(timestamp_with_time_zone(MetricSeries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MetricSeries::Table, MetricSeries::NodeId)
                            .to(Nodes::Table, Nodes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_metric_series_node_name")
                    .table(MetricSeries::Table)
                    .col(MetricSeries::NodeId)
                    .col(MetricSeries::Name)
                    .to_owned(),
            )
            .await?;

        // Samples and rollups are keyed by (series, time): the key is the only index a
        // range read needs, and it makes a repeated sample a no-op.
        manager
            .create_table(
                Table::create()
                    .table(MetricSamples::Table)
                    .col(uuid(MetricSamples::SeriesId))
                    .col(big_integer(MetricSamples::Ts))
                    .col(double(MetricSamples::Value))
                    .primary_key(
                        Index::create()
                            .col(MetricSamples::SeriesId)
                            .col(MetricSamples::Ts),
                    )
                    .to_owned(),
            )
            .await?;
        for table in [Rollup::MetricRollups1m, Rollup::MetricRollups1h] {
            manager
                .create_table(
                    Table::create()
                        .table(table)
                        .col(uuid(Rollup::SeriesId))
                        .col(big_integer(Rollup::Bucket))
                        .col(double(Rollup::Min))
                        .col(double(Rollup::Max))
                        .col(double(Rollup::Sum))
                        .col(big_integer(Rollup::Count))
                        .col(double(Rollup::Last))
                        .col(big_integer(Rollup::LastTs))
                        .primary_key(Index::create().col(Rollup::SeriesId).col(Rollup::Bucket))
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(MetricBatches::Table)
                    .col(uuid(MetricBatches::NodeId))
                    .col(string_len(MetricBatches::BatchId, 64))
                    .col(string_len(MetricBatches::ContentHash, 64))
                    .col(integer(MetricBatches::Accepted))
                    .col(timestamp_with_time_zone(MetricBatches::ReceivedAt))
                    .primary_key(
                        Index::create()
                            .col(MetricBatches::NodeId)
                            .col(MetricBatches::BatchId),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MetricBatches::Table.into_iden(),
            Rollup::MetricRollups1h.into_iden(),
            Rollup::MetricRollups1m.into_iden(),
            MetricSamples::Table.into_iden(),
            MetricSeries::Table.into_iden(),
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
}

#[derive(DeriveIden)]
enum MetricSeries {
    Table,
    Id,
    NodeId,
    Name,
    Labels,
    LabelsKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MetricSamples {
    Table,
    SeriesId,
    Ts,
    Value,
}

#[derive(DeriveIden)]
enum Rollup {
    #[sea_orm(iden = "metric_rollups_1m")]
    MetricRollups1m,
    #[sea_orm(iden = "metric_rollups_1h")]
    MetricRollups1h,
    SeriesId,
    Bucket,
    Min,
    Max,
    Sum,
    Count,
    Last,
    LastTs,
}

#[derive(DeriveIden)]
enum MetricBatches {
    Table,
    NodeId,
    BatchId,
    ContentHash,
    Accepted,
    ReceivedAt,
}
