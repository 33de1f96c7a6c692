//! The GraphQL schema: queries read read models, mutations issue commands.
//!
//! The layout is by gate around one path: `foundation` (enterprises and their records),
//! `supervision` (inspections and hazards) and `agency` (safety-service agencies) each build
//! their commands and views; every mutation goes down `command::execute_command`; the checks of
//! what clients pass live in `args`, the scalar policy in `scalars`. `audit`, `metrics` and
//! `health` are the cross-gate reads. Every operation takes `operations`' one path, which applies
//! `limits`, counts it (`request_metrics`) and traces it (`operation_tracing`).

pub mod agency;
mod args;
pub mod audit;
mod command;
pub mod foundation;
pub mod health;
pub mod limits;
pub mod metrics;
mod operation_tracing;
mod operations;
pub mod reports;
pub mod request_metrics;
pub mod scalars;
pub mod supervision;

use async_graphql::{Context, MergedObject, Schema};
use chrono::{DateTime, Utc};

use anquan_domain::Actor;

use std::sync::Arc;

use crate::AppState;
use crate::error::ApiError;
use crate::rate_limit::RateLimiters;

pub use agency::{AgencyMutation, AgencyQuery};
pub(crate) use args::{instant_arg, optional_instant_arg};
pub use audit::{AuditMutation, AuditQuery};
pub use foundation::{EnterpriseMutation, EnterpriseQuery, PublicPageMutation};
pub use health::HealthQuery;
pub use metrics::{MetricsQuery, MetricsSubscription};
use operation_tracing::Traced;
pub use operations::AppSchema;
pub use reports::{AssessmentsMutation, AssessmentsQuery, ReportsMutation, ReportsQuery};
pub use scalars::Int64;
pub use supervision::{SubscriptionRoot as SupervisionSubscription, SupervisionMutation, SupervisionQuery};

/// The query root: every gate's queries merged.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    EnterpriseQuery,
    AgencyQuery,
    SupervisionQuery,
    AuditQuery,
    MetricsQuery,
    ReportsQuery,
    AssessmentsQuery,
    HealthQuery,
);

/// The mutation root: every gate's commands merged.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    EnterpriseMutation,
    AgencyMutation,
    SupervisionMutation,
    PublicPageMutation,
    AuditMutation,
    ReportsMutation,
    AssessmentsMutation,
);

/// The subscription root: every gate's subscriptions merged.
#[derive(async_graphql::MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(SupervisionSubscription, MetricsSubscription);

/// async-graphql's schema of the API; every operation reaches it through [`AppSchema`].
pub(crate) type GraphqlSchema = Schema<Traced<QueryRoot>, Traced<MutationRoot>, SubscriptionRoot>;

/// Deepest query accepted.
const QUERY_DEPTH_MAX: usize = 12;
/// Most complex query accepted: async-graphql's count of fields, where the fields whose cost
/// grows with their arguments say so (`complexity = …`: a history page by its size, a colour
/// history by its span, a metric at a past instant by the pass over every file it makes).
const QUERY_COMPLEXITY_MAX: usize = 5_000;

/// The cost of a field that returns a page of `first` items, each `child` to resolve.
pub(crate) fn page_cost(first: i32, child: usize) -> usize {
    usize::try_from(first)
        .unwrap_or(0)
        .max(1)
        .saturating_mul(child.max(1))
        .saturating_add(1)
}

/// The cost of a colour history: one assessment per local midnight in its span, counted per
/// 30 days; an open end (registration, the file's instant) counts as ten years.
pub(crate) fn colour_history_cost(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>, child: usize) -> usize {
    const OPEN_SPAN_DAYS: i64 = 3_650;
    let days = match (from, to) {
        (Some(from), Some(to)) => to.signed_duration_since(from).num_days().clamp(0, 200 * 366),
        _ => OPEN_SPAN_DAYS,
    };
    let months = usize::try_from(days / 30).unwrap_or(0);
    months.saturating_add(20).saturating_add(child)
}

/// The cost of a metrics field: "now" is a copy of the watcher's sums; a past instant is a pass
/// over every enterprise file.
pub(crate) fn metrics_cost(as_of: Option<DateTime<Utc>>, child: usize) -> usize {
    const PAST_INSTANT_COST: usize = 500;
    match as_of {
        None => child.saturating_add(10),
        Some(_) => child.saturating_add(PAST_INSTANT_COST),
    }
}

/// Builds the schema around the application state, with the default time limit per
/// operation ([`limits::REQUEST_TIMEOUT_DEFAULT`]) and the default rate limits.
pub fn schema(app: AppState) -> AppSchema {
    schema_with(app, limits::REQUEST_TIMEOUT_DEFAULT, Arc::default())
}

/// Builds the schema around the application state; a query (not a mutation) still running after
/// `timeout` is cancelled and answered `TIMEOUT`, and mutations count against `rate`
/// (`RATE_LIMITED` over it; share the limiters with the router, which counts uploads).
pub fn schema_with(app: AppState, timeout: std::time::Duration, rate: Arc<RateLimiters>) -> AppSchema {
    AppSchema::new(builder().data(app.clone()).finish(), app, timeout, rate)
}

/// Renders the schema's SDL (what `schema.graphql` holds); needs no state.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The schema without extensions (see `operations`): the checks, codes, spans and counts of
/// every operation are `AppSchema`'s.
fn builder() -> async_graphql::SchemaBuilder<Traced<QueryRoot>, Traced<MutationRoot>, SubscriptionRoot> {
    Schema::build(
        Traced(QueryRoot::default()),
        Traced(MutationRoot::default()),
        SubscriptionRoot::default(),
    )
    .limit_depth(QUERY_DEPTH_MAX)
    .limit_complexity(QUERY_COMPLEXITY_MAX)
}

/// The code of a document that is not GraphQL.
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The code of a document that does not fit the schema or its limits.
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

pub(crate) fn app<'a>(ctx: &'a Context<'_>) -> Result<&'a AppState, ApiError> {
    ctx.data::<AppState>()
        .map_err(|error| ApiError::Internal(error.message))
}

fn actor<'a>(ctx: &'a Context<'_>) -> Result<&'a Actor, ApiError> {
    ctx.data_opt::<Actor>().ok_or(ApiError::Unauthenticated)
}
