//! The GraphQL schema: one merged root per operation type, composed from one object per
//! domain, plus the limits every request is held to.

pub mod http;
pub mod limits;
pub mod pagination;
pub mod principal;

use async_graphql::{
    EmptySubscription, MergedObject, Schema, SchemaBuilder, dataloader::DataLoader,
};

use crate::{
    audit::resolvers::AuditQuery,
    auth::resolvers::{AuthMutation, AuthQuery},
    config::Config,
    ips::resolvers::{IpsMutation, IpsQuery},
    metrics::resolvers::{MetricsMutation, MetricsQuery},
    nodes::resolvers::{NodesMutation, NodesQuery},
    state::AppState,
    users::resolvers::{UsersMutation, UsersQuery},
};

#[derive(MergedObject, Default)]
pub struct Query(
    AuthQuery,
    UsersQuery,
    AuditQuery,
    NodesQuery,
    MetricsQuery,
    IpsQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    UsersMutation,
    NodesMutation,
    MetricsMutation,
    IpsMutation,
);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_complexity(limits::MAX_COMPLEXITY)
        .limit_directives(limits::MAX_DIRECTIVES)
}

/// The schema that serves requests, behind the document limits.
pub fn build(state: AppState, config: &Config) -> limits::LimitedSchema<AppSchema> {
    let ips_by_node = DataLoader::new(
        crate::nodes::loaders::IpsByNode {
            db: state.db.clone(),
        },
        tokio::spawn,
    );
    let latest_by_node = DataLoader::new(
        crate::metrics::latest::LatestByNode {
            db: state.db.clone(),
        },
        tokio::spawn,
    );
    let dnsbl_results = DataLoader::new(
        crate::ips::loaders::ResultsByIp {
            db: state.db.clone(),
        },
        tokio::spawn,
    );
    let nodes_of_ips = DataLoader::new(
        crate::ips::loaders::NodesById {
            db: state.db.clone(),
        },
        tokio::spawn,
    );
    let mut builder = builder()
        .data(state)
        .data(ips_by_node)
        .data(latest_by_node)
        .data(dnsbl_results)
        .data(nodes_of_ips);
    if !config.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    limits::LimitedSchema::new(builder.finish())
}

/// The SDL written to `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
