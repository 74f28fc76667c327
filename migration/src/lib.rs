//! Forward-only schema migrations, one file per change; a landed migration is never edited.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_users_sessions_audit;
mod m20261125_000002_create_nodes_and_agent_keys;
mod m20261125_000003_create_metrics;
mod m20261125_000004_extend_ips_add_dnsbl;
// Its table enum names the two counter tables `MailFlow1m` and `MailFlow1h`; a landed
// migration is not edited, so the lint is allowed here.
#[allow(clippy::enum_variant_names)]
mod m20261125_000005_create_mail_flow_and_alerts;

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
        ]
    }
}
