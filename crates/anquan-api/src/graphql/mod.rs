//! The GraphQL schema: queries read read models, mutations issue commands.

pub mod agency;
pub mod agency_types;
pub mod audit;
pub mod metrics;
pub mod mutation;
pub mod public_page;
pub mod query;
pub mod supervision;
pub mod types;

use async_graphql::{Context, MergedObject, Schema};

use anquan_domain::Actor;

use crate::AppState;
use crate::error::ApiError;

pub use agency::{AgencyMutation, AgencyQuery};
pub use audit::AuditQuery;
pub use metrics::{MetricsQuery, MetricsSubscription};
pub use mutation::EnterpriseMutation;
pub use public_page::PublicPageMutation;
pub use query::EnterpriseQuery;
pub use supervision::{SubscriptionRoot as SupervisionSubscription, SupervisionMutation, SupervisionQuery};

/// The query root: every gate's queries merged.
#[derive(MergedObject, Default)]
pub struct QueryRoot(EnterpriseQuery, AgencyQuery, SupervisionQuery, AuditQuery, MetricsQuery);

/// The mutation root: every gate's commands merged.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    EnterpriseMutation,
    AgencyMutation,
    SupervisionMutation,
    PublicPageMutation,
);

/// The subscription root: every gate's subscriptions merged.
#[derive(async_graphql::MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(SupervisionSubscription, MetricsSubscription);

/// The API's schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted.
const QUERY_DEPTH_MAX: usize = 12;
/// Most complex query accepted (async-graphql's field-count measure).
const QUERY_COMPLEXITY_MAX: usize = 5_000;

/// Builds the schema around the application state.
pub fn schema(app: AppState) -> AppSchema {
    builder().data(app).finish()
}

/// Renders the schema's SDL (what `schema.graphql` holds); needs no state.
pub fn sdl() -> String {
    builder().finish().sdl()
}

fn builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(QUERY_DEPTH_MAX)
    .limit_complexity(QUERY_COMPLEXITY_MAX)
    .extension(async_graphql::extensions::Tracing)
}

fn app<'a>(ctx: &'a Context<'_>) -> Result<&'a AppState, ApiError> {
    ctx.data::<AppState>()
        .map_err(|error| ApiError::Internal(error.message))
}

fn actor<'a>(ctx: &'a Context<'_>) -> Result<&'a Actor, ApiError> {
    ctx.data_opt::<Actor>().ok_or(ApiError::Unauthenticated)
}
