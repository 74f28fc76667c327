//! The GraphQL schema: one merged root per operation type, composed from one object per
//! domain, plus the limits every request is held to.

pub mod http;
pub mod limits;
pub mod pagination;
pub mod principal;

use async_graphql::{
    MergedObject, MergedSubscription, Schema, SchemaBuilder, dataloader::DataLoader,
};

use crate::{
    audit::resolvers::AuditQuery,
    auth::resolvers::{AuthMutation, AuthQuery},
    config::Config,
    metrics::resolvers::{MetricsMutation, MetricsQuery},
    nodes::resolvers::{NodesMutation, NodesQuery},
    realtime::{after_commit::PublishAfterCommit, resolvers::RealtimeSubscription},
    state::AppState,
    users::resolvers::{UsersMutation, UsersQuery},
};

#[derive(MergedObject, Default)]
pub struct Query(AuthQuery, UsersQuery, AuditQuery, NodesQuery, MetricsQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(AuthMutation, UsersMutation, NodesMutation, MetricsMutation);

#[derive(MergedSubscription, Default)]
pub struct Subscription(RealtimeSubscription);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_complexity(limits::MAX_COMPLEXITY)
    .limit_directives(limits::MAX_DIRECTIVES)
    .extension(limits::DocumentLimits::default())
    .extension(PublishAfterCommit)
}

/// The schema that serves requests.
pub fn build(state: AppState, config: &Config) -> AppSchema {
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
    let mut builder = builder().data(state).data(ips_by_node).data(latest_by_node);
    if !config.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL written to `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
