//! Forward-only schema migrations, one file per change; a landed migration is never edited.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_users_sessions_audit;
mod m20261125_000002_create_nodes_and_agent_keys;
mod m20261125_000003_create_metrics;
mod m20261125_000004_extend_ips_add_dnsbl;
mod m20261125_000005_create_mail_flow_and_alerts;
mod m20261201_000006_store_enums_in_upper_case;
mod m20261207_000007_add_session_versions_and_node_reenrollment;
mod m20261208_000008_create_notifications;
mod m20261209_000009_add_applied_agent_config;
mod m20261210_000010_classify_refusals;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users_sessions_audit::Migration),
            Box::new(m20261125_000002_create_nodes_and_agent_keys::Migration),
            Box::new(m20261125_000003_create_metrics::Migration),
            Box::new(m20261125_000004_extend_ips_add_dnsbl::Migration),
            Box::new(m20261125_000005_create_mail_flow_and_alerts::Migration),
            Box::new(m20261201_000006_store_enums_in_upper_case::Migration),
            Box::new(m20261207_000007_add_session_versions_and_node_reenrollment::Migration),
            Box::new(m20261208_000008_create_notifications::Migration),
            Box::new(m20261209_000009_add_applied_agent_config::Migration),
            Box::new(m20261210_000010_classify_refusals::Migration),
        ]
    }
}
