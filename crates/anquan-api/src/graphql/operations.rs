//! One path for every GraphQL operation, on every transport (`POST`, `GET`, the websocket):
//! pin the live rules, parse the document once, check it against the limits (`limits`), refuse
//! what the transport may not carry, then let async-graphql validate and run it (a query under
//! the time limit), give every error a stable code, log its failures and count it
//! (`request_metrics`, over HTTP).
//!
//! The schema has no async-graphql extension, on purpose: with any extension at all,
//! async-graphql sends every field of an answer through the extensions' chain (a `ResolveInfo`
//! looked up in the registry, a boxed future per extension), which was most of the time of an
//! answer of every town's metrics (BENCHMARKS.md, "No async-graphql extensions: the fields of an
//! answer resolved directly"). What the extensions did is done here, once per operation, and
//! root fields are traced by `operation_tracing::Traced`.

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Request, Response, ServerError};
use futures::{StreamExt as _, stream};
use tracing::Instrument as _;

use anquan_domain::Actor;

use super::limits::{self, MUTATION_OVER_GET, ReadOnlyTransport, TIMEOUT};
use super::operation_tracing::{execute_span, log_nested_failures, parse_span, request_span};
use super::request_metrics::{self, INVALID_OPERATION, RootFields};
use super::{
    GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, GraphqlSchema, MutationRoot, QueryRoot, SubscriptionRoot,
};
use crate::AppState;
use crate::rate_limit::{ClientAddress, RateChecked, RateLimiters, rate_limited};

/// The code of an argument or variable that does not coerce to its type, and of a request that
/// selects no operation of its document.
const BAD_INPUT: &str = "BAD_INPUT";

/// The API's schema: async-graphql's, and the path every operation takes around it (see the
/// module's documentation). Cheap to clone.
#[derive(Clone)]
pub struct AppSchema(Arc<Inner>);

struct Inner {
    schema: GraphqlSchema,
    /// The service's state; an operation that did not pin rules gets it with the live ones.
    app: AppState,
    /// How long a query may run.
    timeout: Duration,
    rate: Arc<RateLimiters>,
    root_fields: RootFields,
}

/// An operation the checks let through, and what they found out about it.
struct Admitted {
    request: Request,
    kind: OperationType,
}

/// The transport an operation came by, for what it may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// One request, one answer (`POST`, `GET`): no subscriptions.
    Request,
    /// A stream of answers (the websocket).
    Stream,
}

impl AppSchema {
    pub(crate) fn new(schema: GraphqlSchema, app: AppState, timeout: Duration, rate: Arc<RateLimiters>) -> Self {
        Self(Arc::new(Inner {
            schema,
            app,
            timeout,
            rate,
            root_fields: RootFields::of::<QueryRoot, MutationRoot, SubscriptionRoot>(),
        }))
    }

    /// Runs one operation to its answer, counted and timed by its label and outcome.
    pub async fn execute(&self, request: impl Into<Request>) -> Response {
        let started = Instant::now();
        let request = request.into();
        async {
            let (label, admitted) = self.admit(request, None, Transport::Request);
            let response = match admitted {
                Ok(admitted) => self.run(admitted).instrument(execute_span()).await,
                Err(error) => Response::from_errors(vec![error]),
            };
            request_metrics::record(&label, &response, started);
            response
        }
        .instrument(request_span())
        .await
    }

    /// Runs one operation over a stream (the websocket): a subscription's answers, or a query's
    /// or a mutation's one answer. `session` is the connection's data (its caller and address).
    pub fn execute_stream(&self, request: Request, session: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        let admitted = match self.admit(request, session.as_deref(), Transport::Stream).1 {
            Ok(admitted) => admitted,
            Err(error) => return stream::once(async { Response::from_errors(vec![error]) }).boxed(),
        };
        let answers = self
            .0
            .schema
            .execute_stream_with_session_data(admitted.request, session.unwrap_or_default());
        let answers = if admitted.kind == OperationType::Query {
            let timeout = self.0.timeout;
            stream::once(async move {
                let mut answers = answers;
                tokio::time::timeout(timeout, answers.next())
                    .await
                    .unwrap_or_else(|_| Some(timed_out(timeout, None)))
            })
            .filter_map(std::future::ready)
            .boxed()
        } else {
            answers
        };
        answers.map(answered).boxed()
    }

    /// Checks an operation before async-graphql sees it; returns its `operation` label and the
    /// request to run, or the refusal to answer with.
    fn admit(
        &self,
        request: Request,
        session: Option<&Data>,
        transport: Transport,
    ) -> (String, Result<Admitted, ServerError>) {
        let mut request = self.with_live_rules(request);
        let operation_name = request.operation_name.clone();
        let parse = parse_span(&request.query);
        let parsing = parse.enter();
        let (label, within_limits, kind) = match request.parsed_query() {
            Ok(document) => (
                request_metrics::operation_label(document, operation_name.as_deref(), &|kind, name| {
                    self.0.root_fields.contains(kind, name)
                }),
                limits::check(document),
                limits::selected(document, operation_name.as_deref()).map(|operation| operation.ty),
            ),
            Err(error) => {
                return (
                    INVALID_OPERATION.to_owned(),
                    Err(with_code(error, GRAPHQL_PARSE_FAILED)),
                );
            }
        };
        drop(parsing);
        let admitted = within_limits.and_then(|()| {
            let kind = kind.ok_or_else(|| no_operation_selected(operation_name.as_deref()))?;
            self.allowed(&request, session, transport, kind)?;
            Ok(Admitted { request, kind })
        });
        (label, admitted)
    }

    /// What the transport and the rate limits allow: a subscription needs a stream, a mutation
    /// must not come by `GET` and counts against the caller's rate (unless the upload handler
    /// counted it already).
    fn allowed(
        &self,
        request: &Request,
        session: Option<&Data>,
        transport: Transport,
        kind: OperationType,
    ) -> Result<(), ServerError> {
        match kind {
            OperationType::Query => Ok(()),
            OperationType::Subscription if transport == Transport::Stream => Ok(()),
            // async-graphql's own words for it.
            OperationType::Subscription => Err(with_code(
                ServerError::new("Subscriptions are not supported on this transport.", None),
                BAD_INPUT,
            )),
            OperationType::Mutation => {
                if data::<ReadOnlyTransport>(request, session).is_some() {
                    return Err(limits::refused(
                        MUTATION_OVER_GET,
                        "mutations must be sent with POST".to_owned(),
                    ));
                }
                if data::<RateChecked>(request, session).is_none() {
                    let caller = data::<Actor>(request, session);
                    let address = data::<ClientAddress>(request, session).map(|address| address.0);
                    self.0.rate.check(caller, address).map_err(rate_limited)?;
                }
                Ok(())
            }
        }
    }

    /// Pins the live rule set for an operation that did not pin one already. The HTTP handler
    /// pins each request's rules (the live ones, or the `x-anquan-rule-set` header's); an
    /// operation over the websocket comes without that step and would otherwise read the
    /// schema's own `AppState`, whose rules are those live when the service started.
    fn with_live_rules(&self, request: Request) -> Request {
        if request.data.contains_key(&TypeId::of::<AppState>()) {
            return request;
        }
        let app = &self.0.app;
        request.data(AppState {
            rules: app.rule_sets.active(),
            rules_pinned: false,
            ..app.clone()
        })
    }

    /// Validates and runs an admitted operation: a query under the time limit. A mutation is
    /// not cut short: cancelled after its append, it would be recorded with its answer lost; it
    /// is bounded by its own steps instead (`execute`'s retries, `READ_YOUR_WRITES_TIMEOUT`).
    async fn run(&self, admitted: Admitted) -> Response {
        let operation_name = admitted.request.operation_name.clone();
        let running = self.0.schema.execute(admitted.request);
        let response = if admitted.kind == OperationType::Mutation {
            running.await
        } else {
            let timeout = self.0.timeout;
            tokio::time::timeout(timeout, running)
                .await
                .unwrap_or_else(|_| timed_out(timeout, operation_name.as_deref()))
        };
        answered(response)
    }
}

impl async_graphql::Executor for AppSchema {
    async fn execute(&self, request: Request) -> Response {
        AppSchema::execute(self, request).await
    }

    fn execute_stream(&self, request: Request, session_data: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        AppSchema::execute_stream(self, request, session_data)
    }
}

/// A value of the request's own data, else the connection's (a websocket's `connection_init`).
fn data<'a, T: Any + Send + Sync>(request: &'a Request, session: Option<&'a Data>) -> Option<&'a T> {
    let of = |data: &'a Data| data.get(&TypeId::of::<T>()).and_then(|value| value.downcast_ref::<T>());
    of(&request.data).or_else(|| session.and_then(of))
}

/// An answer with a code on every error, its fields' failures logged.
fn answered(mut response: Response) -> Response {
    response.errors = std::mem::take(&mut response.errors).into_iter().map(coded).collect();
    log_nested_failures(&response);
    response
}

/// Gives an error async-graphql made itself a stable `extensions.code` (resolvers' errors
/// carry theirs, `ApiError`; the checks here make theirs coded). An error with a path is a
/// field's: an argument or variable that did not coerce (`BAD_INPUT`). One without a path came
/// before any field ran: the document breaks the schema or its depth and complexity limits.
fn coded(error: ServerError) -> ServerError {
    if !error.path.is_empty() {
        return with_code(error, BAD_INPUT);
    }
    // async-graphql's own words for its limits: complexity and depth in validation, and its
    // recursion and directive checks, which run with the parse.
    let message = error.message.as_str();
    let code = if message.starts_with("Query is too complex") || message.starts_with("Query is nested too deep") {
        limits::QUERY_TOO_COMPLEX
    } else if message.starts_with("The recursion depth of the query")
        || message.starts_with("The number of directives on the field")
    {
        GRAPHQL_PARSE_FAILED
    } else {
        GRAPHQL_VALIDATION_FAILED
    };
    with_code(error, code)
}

fn with_code(mut error: ServerError, code: &'static str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    error
}

/// A request whose document has no operation it selects, in async-graphql's words.
fn no_operation_selected(operation_name: Option<&str>) -> ServerError {
    let message = match operation_name {
        Some(name) => format!(r#"Unknown operation named "{name}""#),
        None => "Operation name required in request.".to_owned(),
    };
    with_code(ServerError::new(message, None), BAD_INPUT)
}

/// The answer of a query cancelled at the time limit.
fn timed_out(timeout: Duration, operation_name: Option<&str>) -> Response {
    tracing::warn!(
        operation = operation_name.unwrap_or_default(),
        timeout_ms = timeout.as_millis(),
        "operation cancelled at the time limit"
    );
    Response::from_errors(vec![limits::refused(
        TIMEOUT,
        format!(
            "查询超过 {} 毫秒仍未完成，已取消；请缩小范围后重试",
            timeout.as_millis()
        ),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: &ServerError) -> Option<String> {
        match error.extensions.as_ref()?.get("code")? {
            async_graphql::Value::String(code) => Some(code.clone()),
            _ => None,
        }
    }

    #[test]
    fn an_error_keeps_its_code_and_one_without_gets_its_phase_s() {
        let field_error = ServerError {
            path: vec![async_graphql::PathSegment::Field("townMetrics".to_owned())],
            ..ServerError::new("Failed to parse \"DateTime\"", None)
        };
        assert_eq!(code(&coded(field_error)).as_deref(), Some(BAD_INPUT));
        assert_eq!(
            code(&coded(ServerError::new(
                "Unknown field \"x\" on type \"QueryRoot\".",
                None
            )))
            .as_deref(),
            Some(GRAPHQL_VALIDATION_FAILED)
        );
        assert_eq!(
            code(&coded(ServerError::new("Query is too complex.", None))).as_deref(),
            Some(limits::QUERY_TOO_COMPLEX)
        );
        assert_eq!(
            code(&coded(ServerError::new(
                "The recursion depth of the query cannot be greater than `32`",
                None
            )))
            .as_deref(),
            Some(GRAPHQL_PARSE_FAILED)
        );
        let mut refused = ServerError::new("no", None);
        refused
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "FORBIDDEN");
        assert_eq!(code(&coded(refused)).as_deref(), Some("FORBIDDEN"));
    }
}
