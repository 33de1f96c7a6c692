//! The GraphQL schema: queries read read models, mutations issue commands.

pub mod agency;
pub mod agency_types;
pub mod audit;
pub mod health;
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
pub use health::HealthQuery;
pub use metrics::{MetricsQuery, MetricsSubscription};
pub use mutation::EnterpriseMutation;
pub use public_page::PublicPageMutation;
pub use query::EnterpriseQuery;
pub use supervision::{SubscriptionRoot as SupervisionSubscription, SupervisionMutation, SupervisionQuery};

/// The query root: every gate's queries merged.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    EnterpriseQuery,
    AgencyQuery,
    SupervisionQuery,
    AuditQuery,
    MetricsQuery,
    HealthQuery,
);

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
    .extension(LiveRules)
}

/// Pins the live rule set for every operation that did not pin one already. The HTTP handler
/// pins each request's rules (the live ones, or the `x-anquan-rule-set` header's); operations
/// over the websocket (`/graphql/ws`) come without that step and would otherwise read the
/// schema's own `AppState`, whose rules are those live when the service started.
struct LiveRules;

impl async_graphql::extensions::ExtensionFactory for LiveRules {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(LiveRules)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for LiveRules {
    async fn prepare_request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        request: async_graphql::Request,
        next: async_graphql::extensions::NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        let pinned = request.data.contains_key(&std::any::TypeId::of::<AppState>());
        let request = match ctx.data_opt::<AppState>().filter(|_| !pinned) {
            Some(app) => request.data(AppState {
                rules: app.rule_sets.active(),
                ..app.clone()
            }),
            None => request,
        };
        next.run(ctx, request).await
    }
}

fn app<'a>(ctx: &'a Context<'_>) -> Result<&'a AppState, ApiError> {
    ctx.data::<AppState>()
        .map_err(|error| ApiError::Internal(error.message))
}

fn actor<'a>(ctx: &'a Context<'_>) -> Result<&'a Actor, ApiError> {
    ctx.data_opt::<Actor>().ok_or(ApiError::Unauthenticated)
}
