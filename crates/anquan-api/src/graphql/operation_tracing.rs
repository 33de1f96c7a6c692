//! `tracing` for GraphQL operations: a span for every operation (`request`, `parse` with its
//! source, `execute`) and one for each of its root fields (`field`), and an event for every
//! field that fails, with its path. A subscription's stream has no span of its own (it lives as
//! long as the client's socket).
//!
//! These are not an async-graphql extension: any extension at all sends every field of every
//! answer through the extensions' chain (a `ResolveInfo` looked up in the registry and a boxed
//! future per extension), and an answer of every town's metrics is one object per town and
//! metric (9,438 at scale 10, 93,678 at scale 100). `graphql::operations` opens the operation's
//! spans around async-graphql, and [`Traced`] wraps the query and mutation roots, so only a
//! root field pays for a span. A root field's span says which operation and field a log line
//! belongs to; below it, only failures are logged, each with its own path (BENCHMARKS.md, "No
//! async-graphql extensions: the fields of an answer resolved directly").

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    ContainerType, Context, ContextSelectionSet, ObjectType, OutputType, PathSegment, Positioned, Response,
    ServerError, ServerResult, Value,
};
use futures::TryFutureExt as _;
use tracing::{Instrument, Level, Span, span};

/// The log target, as async-graphql's own `Tracing` extension used: filters written for it
/// still apply.
pub(crate) const TARGET: &str = "async_graphql::graphql";

/// The span of one operation over HTTP, from its receipt to its answer.
pub(crate) fn request_span() -> Span {
    span!(target: TARGET, Level::INFO, "request")
}

/// The span of parsing a document; records the document when the span is enabled.
pub(crate) fn parse_span(source: &str) -> Span {
    let span = span!(target: TARGET, Level::INFO, "parse", source = tracing::field::Empty);
    if !span.is_disabled() {
        span.record("source", source);
    }
    span
}

/// The span of validating and running a parsed operation.
pub(crate) fn execute_span() -> Span {
    span!(target: TARGET, Level::INFO, "execute")
}

/// Logs the failures of fields below the root (a root field's own failure is logged in its
/// span, by [`Traced`]); errors without a path come from before any field ran (the document's
/// validation) and are the client's to read, not the log's.
pub(crate) fn log_nested_failures(response: &Response) {
    for error in response.errors.iter().filter(|error| error.path.len() > 1) {
        log_failure(error);
    }
}

fn log_failure(error: &ServerError) {
    tracing::info!(target: TARGET, path = %DisplayPath(&error.path), error = %error.message, "error");
}

/// A response path as async-graphql's own display of a path shows it: `a.b.0.c`.
struct DisplayPath<'a>(&'a [PathSegment]);

impl std::fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, segment) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(".")?;
            }
            match segment {
                PathSegment::Field(name) => f.write_str(name)?,
                PathSegment::Index(index) => write!(f, "{index}")?,
            }
        }
        Ok(())
    }
}

/// A root type whose every field runs inside a `field` span, with its failure logged there.
/// It is the type it wraps to the schema (same name, same fields): only the resolution of a
/// root field passes through it.
pub(crate) struct Traced<T>(pub(crate) T);

impl<T: OutputType> OutputType for Traced<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        self.0.resolve(ctx, field).await
    }
}

impl<T: ContainerType> ContainerType for Traced<T> {
    fn is_empty() -> bool {
        T::is_empty()
    }

    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        let field = &ctx.item.node;
        let span = span!(
            target: TARGET,
            Level::INFO,
            "field",
            path = %field.response_key().node,
            parent_type = %T::type_name(),
        );
        self.0
            .resolve_field(ctx)
            .inspect_err(log_failure)
            .instrument(span)
            .await
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        self.0.find_entity(ctx, params).await
    }
}

impl<T: ObjectType> ObjectType for Traced<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_reads_as_async_graphql_shows_it() {
        let path = [
            PathSegment::Field("allTownMetrics".to_owned()),
            PathSegment::Index(3),
            PathSegment::Field("metrics".to_owned()),
        ];
        assert_eq!(DisplayPath(&path).to_string(), "allTownMetrics.3.metrics");
        assert_eq!(DisplayPath(&[]).to_string(), "");
    }
}
