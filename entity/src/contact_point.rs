use sea_orm::entity::prelude::*;

/// Where notifications go: a webhook, an SMTP server and its recipients, or a Slack-style
/// incoming webhook.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_points")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    /// WEBHOOK, EMAIL or SLACK.
    pub kind: String,
    /// What may be shown: header names, SMTP host, port, security, username, sender and
    /// recipients.
    pub settings: Json,
    /// What is never shown: the URL, the signing secret, header values, the SMTP password.
    pub secrets: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub updated_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
