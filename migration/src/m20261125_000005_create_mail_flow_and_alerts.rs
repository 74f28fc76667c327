use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The rules a new install starts with: (id, name, description, condition, metric,
/// aggregate, comparison, threshold, for seconds, window seconds, severity).
type DefaultRule = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    f64,
    i32,
    Option<i32>,
    &'static str,
);

const DEFAULT_RULES: [DefaultRule; 5] = [
    (
        "0193a000-0000-7000-8000-000000000001",
        "Node down",
        "The node's agent has not reported for the DOWN threshold.",
        "NODE_DOWN",
        None,
        None,
        "GT",
        0.0,
        0,
        None,
        "CRITICAL",
    ),
    (
        "0193a000-0000-7000-8000-000000000002",
        "Disk almost full",
        "The fullest mount point of the node is more than 90% used.",
        "METRIC",
        Some("system.disk.used_percent"),
        Some("MAX"),
        "GT",
        90.0,
        300,
        None,
        "WARNING",
    ),
    (
        "0193a000-0000-7000-8000-000000000003",
        "Deferred queue growing",
        "More than 1,000 messages wait in the node's deferred queues (all zones).",
        "METRIC",
        Some("zonemta.queue.deferred"),
        Some("SUM"),
        "GT",
        1000.0,
        600,
        None,
        "WARNING",
    ),
    (
        "0193a000-0000-7000-8000-000000000004",
        "Bounce rate high",
        "More than 5% of the node's delivery attempts bounced over the last 15 minutes.",
        "BOUNCE_RATE",
        None,
        None,
        "GT",
        0.05,
        0,
        Some(900),
        "WARNING",
    ),
    (
        "0193a000-0000-7000-8000-000000000005",
        "IP listed on a critical zone",
        "A sending IP is listed on a DNSBL zone marked critical.",
        "IP_LISTED",
        None,
        None,
        "GT",
        0.0,
        0,
        None,
        "CRITICAL",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MailEventBatches::Table)
                    .col(uuid(MailEventBatches::NodeId))
                    .col(string_len(MailEventBatches::BatchId, 64))
                    .col(string_len(MailEventBatches::ContentHash, 64))
                    .col(integer(MailEventBatches::Accepted))
                    .col(timestamp_with_time_zone(MailEventBatches::ReceivedAt))
                    .primary_key(
                        Index::create()
                            .col(MailEventBatches::NodeId)
                            .col(MailEventBatches::BatchId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MailEventBatches::Table, MailEventBatches::NodeId)
                            .to(Nodes::Table, Nodes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_event_batches_received")
                    .table(MailEventBatches::Table)
                    .col(MailEventBatches::ReceivedAt)
                    .to_owned(),
            )
            .await?;

        // Raw events are only ever pruned by age and looked up by message id; the
        // counters below answer every aggregate.
        manager
            .create_table(
                Table::create()
                    .table(MailEvents::Table)
                    .col(pk_uuid(MailEvents::Id))
                    .col(uuid(MailEvents::NodeId))
                    .col(big_integer(MailEvents::Ts))
                    .col(string_len(MailEvents::MessageId, 255))
                    .col(string_len(MailEvents::Status, 16))
                    .col(string_len(MailEvents::SendingIp, 45).default(""))
                    .col(string_len(MailEvents::RecipientDomain, 253).default(""))
                    .col(string_len(MailEvents::Provider, 32))
                    .col(string_len_null(MailEvents::Zone, 64))
                    .col(integer_null(MailEvents::SmtpCode))
                    .col(text_null(MailEvents::Response))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("idx_mail_events_ts", vec![MailEvents::Ts, MailEvents::Id]),
            (
                "idx_mail_events_message",
                vec![MailEvents::MessageId, MailEvents::Ts],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(MailEvents::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }

        for (table, ip_index) in [
            (FlowCounter::MailFlow1m, "idx_mail_flow_1m_ip"),
            (FlowCounter::MailFlow1h, "idx_mail_flow_1h_ip"),
        ] {
            manager
                .create_table(
                    Table::create()
                        .table(table)
                        .col(big_integer(FlowCounter::Bucket))
                        .col(uuid(FlowCounter::NodeId))
                        .col(string_len(FlowCounter::SendingIp, 45))
                        .col(string_len(FlowCounter::Provider, 32))
                        .col(big_integer(FlowCounter::Queued).default(0))
                        .col(big_integer(FlowCounter::Delivered).default(0))
                        .col(big_integer(FlowCounter::Deferred).default(0))
                        .col(big_integer(FlowCounter::Bounced).default(0))
                        .col(big_integer(FlowCounter::Rejected).default(0))
                        .col(big_integer(FlowCounter::Dropped).default(0))
                        .primary_key(
                            Index::create()
                                .col(FlowCounter::Bucket)
                                .col(FlowCounter::NodeId)
                                .col(FlowCounter::SendingIp)
                                .col(FlowCounter::Provider),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(ip_index)
                        .table(table)
                        .col(FlowCounter::SendingIp)
                        .col(FlowCounter::Bucket)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AlertRules::Table)
                    .col(pk_uuid(AlertRules::Id))
                    .col(string_len_uniq(AlertRules::Name, 128))
                    .col(text_null(AlertRules::Description))
                    .col(string_len(AlertRules::Condition, 32))
                    .col(string_len_null(AlertRules::Metric, 128))
                    .col(json_binary(AlertRules::MetricLabels))
                    .col(string_len_null(AlertRules::Aggregate, 8))
                    .col(string_len(AlertRules::Comparison, 4))
                    .col(double(AlertRules::Threshold))
                    .col(double_null(AlertRules::ResolveThreshold))
                    .col(integer(AlertRules::ForSeconds))
                    .col(integer_null(AlertRules::WindowSeconds))
                    .col(string_len(AlertRules::Severity, 16))
                    .col(boolean(AlertRules::Enabled))
                    .col(json_binary(AlertRules::SelectorRoles))
                    .col(json_binary(AlertRules::SelectorLabels))
                    .col(json_binary(AlertRules::SelectorNodeIds))
                    .col(timestamp_with_time_zone(AlertRules::CreatedAt))
                    .col(timestamp_with_time_zone(AlertRules::UpdatedAt))
                    .col(string_len_null(AlertRules::UpdatedBy, 128))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AlertSilences::Table)
                    .col(pk_uuid(AlertSilences::Id))
                    .col(json_binary(AlertSilences::Matcher))
                    .col(timestamp_with_time_zone(AlertSilences::StartsAt))
                    .col(timestamp_with_time_zone(AlertSilences::EndsAt))
                    .col(text(AlertSilences::Reason))
                    .col(string_len(AlertSilences::CreatedBy, 128))
                    .col(timestamp_with_time_zone(AlertSilences::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_alert_silences_ends")
                    .table(AlertSilences::Table)
                    .col(AlertSilences::EndsAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alerts::Table)
                    .col(pk_uuid(Alerts::Id))
                    .col(uuid(Alerts::RuleId))
                    .col(string_len(Alerts::Subject, 128))
                    .col(uuid_null(Alerts::NodeId))
                    .col(string_len_null(Alerts::Ip, 45))
                    .col(string_len(Alerts::State, 16))
                    .col(string_len(Alerts::Severity, 16))
                    .col(double_null(Alerts::Value))
                    .col(double(Alerts::Threshold))
                    .col(text(Alerts::Message))
                    .col(timestamp_with_time_zone(Alerts::PendingSince))
                    .col(timestamp_with_time_zone_null(Alerts::FiredAt))
                    .col(timestamp_with_time_zone_null(Alerts::ResolvedAt))
                    .col(timestamp_with_time_zone(Alerts::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Alerts::AcknowledgedAt))
                    .col(string_len_null(Alerts::AcknowledgedBy, 128))
                    .col(text_null(Alerts::AcknowledgeNote))
                    .col(uuid_null(Alerts::SilenceId))
                    .col(timestamp_with_time_zone_null(Alerts::SilencedUntil))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Alerts::Table, Alerts::RuleId)
                            .to(AlertRules::Table, AlertRules::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("idx_alerts_state", vec![Alerts::State, Alerts::Id]),
            (
                "idx_alerts_rule_subject",
                vec![Alerts::RuleId, Alerts::Subject, Alerts::State],
            ),
            ("idx_alerts_node", vec![Alerts::NodeId, Alerts::Id]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Alerts::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }

        let now = chrono::Utc::now();
        for (
            id,
            name,
            description,
            condition,
            metric,
            aggregate,
            comparison,
            threshold,
            for_s,
            window,
            severity,
        ) in DEFAULT_RULES
        {
            let id = uuid::Uuid::parse_str(id).map_err(|e| DbErr::Custom(e.to_string()))?;
            let empty = serde_json::json!([]);
            let insert = Query::insert()
                .into_table(AlertRules::Table)
                .columns([
                    AlertRules::Id,
                    AlertRules::Name,
                    AlertRules::Description,
                    AlertRules::Condition,
                    AlertRules::Metric,
                    AlertRules::MetricLabels,
                    AlertRules::Aggregate,
                    AlertRules::Comparison,
                    AlertRules::Threshold,
                    AlertRules::ForSeconds,
                    AlertRules::WindowSeconds,
                    AlertRules::Severity,
                    AlertRules::Enabled,
                    AlertRules::SelectorRoles,
                    AlertRules::SelectorLabels,
                    AlertRules::SelectorNodeIds,
                    AlertRules::CreatedAt,
                    AlertRules::UpdatedAt,
                ])
                .values_panic([
                    id.into(),
                    name.into(),
                    description.into(),
                    condition.into(),
                    metric.map(str::to_owned).into(),
                    serde_json::json!({}).into(),
                    aggregate.map(str::to_owned).into(),
                    comparison.into(),
                    threshold.into(),
                    for_s.into(),
                    window.into(),
                    severity.into(),
                    true.into(),
                    empty.clone().into(),
                    serde_json::json!({}).into(),
                    empty.into(),
                    now.into(),
                    now.into(),
                ])
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Alerts::Table.into_iden(),
            AlertSilences::Table.into_iden(),
            AlertRules::Table.into_iden(),
            FlowCounter::MailFlow1h.into_iden(),
            FlowCounter::MailFlow1m.into_iden(),
            MailEvents::Table.into_iden(),
            MailEventBatches::Table.into_iden(),
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
enum MailEventBatches {
    Table,
    NodeId,
    BatchId,
    ContentHash,
    Accepted,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum MailEvents {
    Table,
    Id,
    NodeId,
    Ts,
    MessageId,
    Status,
    SendingIp,
    RecipientDomain,
    Provider,
    Zone,
    SmtpCode,
    Response,
}

#[derive(DeriveIden, Clone, Copy)]
enum FlowCounter {
    #[sea_orm(iden = "mail_flow_1m")]
    MailFlow1m,
    #[sea_orm(iden = "mail_flow_1h")]
    MailFlow1h,
    Bucket,
    NodeId,
    SendingIp,
    Provider,
    Queued,
    Delivered,
    Deferred,
    Bounced,
    Rejected,
    Dropped,
}

#[derive(DeriveIden)]
enum AlertRules {
    Table,
    Id,
    Name,
    Description,
    Condition,
    Metric,
    MetricLabels,
    Aggregate,
    Comparison,
    Threshold,
    ResolveThreshold,
    ForSeconds,
    WindowSeconds,
    Severity,
    Enabled,
    SelectorRoles,
    SelectorLabels,
    SelectorNodeIds,
    CreatedAt,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum AlertSilences {
    Table,
    Id,
    Matcher,
    StartsAt,
    EndsAt,
    Reason,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    RuleId,
    Subject,
    NodeId,
    Ip,
    State,
    Severity,
    Value,
    Threshold,
    Message,
    PendingSince,
    FiredAt,
    ResolvedAt,
    UpdatedAt,
    AcknowledgedAt,
    AcknowledgedBy,
    AcknowledgeNote,
    SilenceId,
    SilencedUntil,
}
