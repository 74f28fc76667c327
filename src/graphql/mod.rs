//! The GraphQL schema: one merged root per operation type, composed from one object per
//! domain, plus the limits every request is held to.

pub mod guards;
pub mod http;
pub mod limits;
pub mod loaders;
pub mod operations;
pub mod pagination;
pub mod shared;
pub mod sockets;
pub mod ws;

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod ips;
pub mod jobs;
pub mod mailflow;
pub mod metrics;
pub mod nodes;
pub mod notifications;
pub mod overview;
pub mod realtime;
pub mod users;

use std::sync::Arc;

use async_graphql::{
    MergedObject, MergedSubscription, Schema, SchemaBuilder, dataloader::DataLoader,
};

use crate::{
    config::Config,
    graphql::alerts::resolvers::{AlertsMutation, AlertsQuery},
    graphql::audit::resolvers::AuditQuery,
    graphql::auth::resolvers::{AuthMutation, AuthQuery},
    graphql::ips::resolvers::{IpsMutation, IpsQuery},
    graphql::jobs::resolvers::{JobsMutation, JobsQuery},
    graphql::mailflow::resolvers::{MailFlowMutation, MailFlowQuery},
    graphql::metrics::resolvers::{MetricsMutation, MetricsQuery},
    graphql::nodes::resolvers::{NodesMutation, NodesQuery},
    graphql::notifications::resolvers::{NotificationsMutation, NotificationsQuery},
    graphql::overview::resolvers::OverviewQuery,
    graphql::realtime::resolvers::RealtimeSubscription,
    graphql::users::resolvers::{UsersMutation, UsersQuery},
    realtime::after_commit::PublishAfterCommit,
    state::AppState,
};

#[derive(MergedObject, Default)]
pub struct Query(
    AuthQuery,
    UsersQuery,
    AuditQuery,
    NodesQuery,
    MetricsQuery,
    IpsQuery,
    MailFlowQuery,
    OverviewQuery,
    AlertsQuery,
    NotificationsQuery,
    JobsQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    UsersMutation,
    NodesMutation,
    MetricsMutation,
    IpsMutation,
    MailFlowMutation,
    AlertsMutation,
    NotificationsMutation,
    JobsMutation,
);

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
}

fn with_data(state: AppState, config: &Config) -> SchemaBuilder<Query, Mutation, Subscription> {
    fn loader<L: Send + Sync + 'static>(batches: L) -> DataLoader<L> {
        DataLoader::new(batches, tokio::spawn)
    }
    let connection = state.db.clone();
    let db = || connection.clone();
    let mut builder = builder()
        .data(loader(ips::loaders::IpsByNode { db: db() }))
        .data(loader(ips::loaders::ResultsByIp { db: db() }))
        .data(loader(metrics::loaders::LatestByNode { db: db() }))
        .data(loader(nodes::loaders::NodesById { db: db() }))
        .data(loader(mailflow::loaders::SendingStatsByIp {
            db: db(),
            minute_retention: config.mail.minute_retention,
        }))
        .data(loader(alerts::loaders::RulesById { db: db() }))
        .data(loader(notifications::loaders::AttemptsByNotification {
            db: db(),
        }))
        .data(loader(notifications::loaders::ContactPointsById {
            db: db(),
        }))
        .data(state);
    if !config.server.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder
}

/// The schema WebSocket operations run on: the document limits and the publishing of
/// what an operation committed are extensions, so they apply to streams too.
pub fn build(state: AppState, config: &Config) -> AppSchema {
    with_data(state, config)
        .extension(limits::DocumentLimitsExtension::default())
        .extension(PublishAfterCommit)
        .finish()
}

/// The schema `POST /graphql` runs on. It does what the extensions of [`build`] do, but
/// around execution instead of inside it: with any extension installed, async-graphql
/// calls its resolve hook for every field of every list item, which made large answers
/// (a 30-day chart of 40 series) several times slower.
#[derive(Clone)]
pub struct HttpSchema {
    schema: AppSchema,
    limits: Arc<limits::DocumentLimits>,
    state: AppState,
}

impl HttpSchema {
    pub fn new(state: AppState, config: &Config) -> HttpSchema {
        HttpSchema {
            schema: with_data(state.clone(), config).finish(),
            limits: Arc::default(),
            state,
        }
    }

    /// Runs one operation; `log` is finished with its outcome.
    pub async fn execute(
        &self,
        mut request: async_graphql::Request,
        mut log: impl FnMut(&'static str, Option<&str>) -> operations::OperationLog,
    ) -> async_graphql::Response {
        let prepared = match self.limits.prepare(&mut request) {
            Ok(prepared) => prepared,
            Err(error) => {
                log("query", None).finish(std::slice::from_ref(&error));
                return async_graphql::Response::from_errors(vec![error]);
            }
        };
        let log = log(prepared.operation.0, prepared.operation.1.as_deref());
        let response =
            crate::realtime::after_commit::publishing(&self.state, self.schema.execute(request))
                .await;
        log.finish(&response.errors);
        self.limits.keep_if_valid(prepared, &response);
        response
    }
}

/// The SDL written to `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
