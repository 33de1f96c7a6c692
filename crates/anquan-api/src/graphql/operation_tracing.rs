//! The `OperationTracing` extension: `tracing` spans for every GraphQL operation (request, parse
//! with its source, validation, execution) and for each of its root fields, and an event for
//! every field that fails, with its path. A subscription's stream has no span of its own (it
//! lives as long as the client's socket).
//!
//! async-graphql's own `Tracing` extension opens a span for every field that returns an object,
//! at every depth, with its path, parent type and return type formatted into it. An answer of
//! every town's metrics is one object per town and metric (9,438 at scale 10, 93,678 at
//! scale 100), so those spans took a quarter to a third of the response's time (BENCHMARKS.md,
//! "One lookup when the month before is not shown; spans for root fields only"). A root field's
//! span says which operation and field a log line belongs to; below it, only failures are
//! logged, each with its own path.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest, NextResolve,
    NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};
use futures::TryFutureExt as _;
use tracing::{Instrument, Level, span};

/// The log target, as async-graphql's extension used: filters written for it still apply.
const TARGET: &str = "async_graphql::graphql";

/// The extension's factory.
pub(crate) struct OperationTracing;

impl ExtensionFactory for OperationTracing {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationTracingExtension)
    }
}

struct OperationTracingExtension;

#[async_trait::async_trait]
impl Extension for OperationTracingExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        next.run(ctx)
            .instrument(span!(target: TARGET, Level::INFO, "request"))
            .await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let span = span!(target: TARGET, Level::INFO, "parse", source = tracing::field::Empty);
        async move {
            let parsed = next.run(ctx, query, variables).await;
            if let Ok(document) = &parsed {
                let span = tracing::Span::current();
                if !span.is_disabled() {
                    span.record("source", ctx.stringify_execute_doc(document, variables).as_str());
                }
            }
            parsed
        }
        .instrument(span)
        .await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx)
            .instrument(span!(target: TARGET, Level::INFO, "validation"))
            .await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        next.run(ctx, operation_name)
            .instrument(span!(target: TARGET, Level::INFO, "execute"))
            .await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let path_node = info.path_node;
        let span = (path_node.parent.is_none() && !info.is_for_introspection).then(|| {
            span!(
                target: TARGET,
                Level::INFO,
                "field",
                path = %path_node,
                parent_type = %info.parent_type,
                return_type = %info.return_type,
            )
        });
        // Logged inside the root field's span, so the line names its operation's field.
        let resolving = next.run(ctx, info).inspect_err(|error| {
            tracing::info!(target: TARGET, path = %path_node, error = %error.message, "error");
        });
        match span {
            Some(span) => resolving.instrument(span).await,
            None => resolving.await,
        }
    }
}
