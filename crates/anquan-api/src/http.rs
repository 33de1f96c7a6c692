//! The HTTP surface: `/graphql` (POST, GET, multipart uploads), `/graphql/ws` (subscriptions
//! over a websocket; the bearer token goes in `connection_init`), GraphiQL in development,
//! `/healthz` and `/readyz`, and the public QR pages (`/p/{token}`, `/qr/…`, see
//! [`crate::public_page`]).

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource, MultipartOptions};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Body;
use axum::extract::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::TryStreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::ApiError;
use crate::graphql::AppSchema;

/// Bytes a request may carry beyond its largest file (the operation and the multipart framing).
const REQUEST_OVERHEAD_BYTES_MAX: u64 = 1024 * 1024;
/// Most files one multipart request may carry (an inspection's documents and hazard photos);
/// all of them together stay within the body limit.
const UPLOAD_FILES_MAX: usize = 100;

/// A request header naming the rule-set version every field of the request evaluates with
/// (default: the live one), to read a version side by side with the live one.
pub const RULE_SET_HEADER: &str = "x-anquan-rule-set";

#[derive(Clone)]
struct HttpState {
    schema: AppSchema,
    app: AppState,
}

/// Builds the router around a schema.
pub fn router(schema: AppSchema, app: AppState) -> Router {
    let body_limit = usize::try_from(app.upload_bytes_max + REQUEST_OVERHEAD_BYTES_MAX).unwrap_or(usize::MAX);
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/dashboard", get(dashboard))
        .route("/readyz", get(readyz))
        .merge(crate::public_page::router(app.clone()))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(HttpState { schema, app })
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the event store answers and no projection is stalled, else 503; the JSON body
/// says which: `{"ready", "eventStore", "projections": [{"name", "position", "state",
/// "failingEvent": {"position", "streamId", "eventType"}, "error", "since", "attempts"}]}`.
/// This is the operators' view: `error` is the store's own message with its causes.
async fn readyz(State(state): State<HttpState>) -> Response {
    let event_store = match state.app.event_store.read_all(None, 1).await {
        Ok(_) => "ok",
        Err(error) => {
            tracing::warn!(error = %error, "not ready: event store unreachable");
            "unreachable"
        }
    };
    let statuses = state.app.projections.statuses();
    let stalled = statuses
        .iter()
        .any(|status| status.state == anquan_projections::ProjectionState::Stalled);
    let ready = event_store == "ok" && !stalled;
    let projections: Vec<serde_json::Value> = statuses
        .iter()
        .map(|status| {
            let stall = status.stall.as_ref();
            serde_json::json!({
                "name": status.name,
                "position": status.position.map(|position| position.sequence()),
                "state": status.state.as_str(),
                "failingEvent": stall.and_then(|stall| stall.event.as_ref()).map(|event| serde_json::json!({
                    "position": event.position.sequence(),
                    "streamId": event.stream_id,
                    "eventType": event.event_type,
                })),
                "error": stall.map(|stall| stall.error.as_str()),
                "since": stall.map(|stall| stall.since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                "attempts": stall.map(|stall| stall.attempts),
            })
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready,
        "eventStore": event_store,
        "projections": projections,
    });
    (status, Json(body)).into_response()
}

async fn graphql_get(State(state): State<HttpState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if uri.query().is_none_or(str::is_empty) && state.app.graphiql {
        return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response();
    }
    let request = match async_graphql::http::parse_query_string(uri.query().unwrap_or_default()) {
        Ok(request) => request,
        Err(error) => return bad_request(&error.to_string()),
    };
    execute(&state, &headers, request, Method::GET).await
}

async fn graphql_post(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let stream = body
        .into_data_stream()
        .map_err(|error| std::io::Error::other(error.to_string()));
    let reader = tokio_util::io::StreamReader::new(stream).compat();
    let file_limit = usize::try_from(state.app.upload_bytes_max).unwrap_or(usize::MAX);
    let options = MultipartOptions::default()
        .max_file_size(file_limit)
        .max_num_files(UPLOAD_FILES_MAX);
    match async_graphql::http::receive_body(content_type, reader, options).await {
        Ok(request) => execute(&state, &headers, request, Method::POST).await,
        Err(async_graphql::ParseRequestError::PayloadTooLarge) => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &ApiError::FileTooLarge {
                size: state.app.upload_bytes_max + 1,
                max: state.app.upload_bytes_max,
            },
        ),
        Err(error) => bad_request(&error.to_string()),
    }
}

async fn execute(state: &HttpState, headers: &HeaderMap, request: async_graphql::Request, method: Method) -> Response {
    let actor = match bearer_actor(&state.app, headers) {
        Ok(actor) => actor,
        Err(error) => return error_response(StatusCode::UNAUTHORIZED, &error),
    };
    if method == Method::GET && request.query.trim_start().starts_with("mutation") {
        return bad_request("mutations must be sent with POST");
    }
    let request = match actor {
        Some(actor) => request.data(actor),
        None => request,
    };
    // Pin the live rule set (or the one named by the header) for the whole request.
    let version = headers.get(RULE_SET_HEADER).and_then(|value| value.to_str().ok());
    let Some(pinned) = state.app.for_request(version) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            &ApiError::BadInput {
                code: "UNKNOWN_RULE_SET",
                message: format!("rule set {} is not loaded on this node", version.unwrap_or_default()),
            },
        );
    };
    let response = state.schema.execute(request.data(pinned)).await;
    Json(response).into_response()
}

/// Serves subscriptions over a websocket (graphql-ws and graphql-transport-ws). The caller is
/// read from `{"Authorization": "Bearer …"}` in the `connection_init` payload; none means an
/// anonymous caller, whom subscriptions refuse.
async fn graphql_ws(State(state): State<HttpState>, protocol: GraphQLProtocol, upgrade: WebSocketUpgrade) -> Response {
    let schema = state.schema.clone();
    let app = state.app.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            GraphQLWebSocket::new(stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let mut data = async_graphql::Data::default();
                    let header = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(serde_json::Value::as_str);
                    if let Some(header) = header {
                        let actor = actor_from_header(&app, header).map_err(async_graphql::Error::from)?;
                        data.insert(actor);
                    }
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}

/// Reads the caller from `Authorization: Bearer …`; no header means an anonymous caller.
fn bearer_actor(app: &AppState, headers: &HeaderMap) -> Result<Option<anquan_domain::Actor>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::BadInput {
        code: "UNAUTHENTICATED",
        message: "expected `Bearer <token>`".into(),
    })?;
    actor_from_header(app, value).map(Some)
}

/// Verifies the token of an `Authorization` value (`Bearer <token>`).
fn actor_from_header(app: &AppState, value: &str) -> Result<anquan_domain::Actor, ApiError> {
    let token = value.strip_prefix("Bearer ").ok_or_else(|| ApiError::BadInput {
        code: "UNAUTHENTICATED",
        message: "expected `Bearer <token>`".into(),
    })?;
    app.tokens.verify(token.trim()).map_err(|error| ApiError::BadInput {
        code: "UNAUTHENTICATED",
        message: error.to_string(),
    })
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, &ApiError::bad_input(message.to_owned()))
}

fn error_response(status: StatusCode, error: &ApiError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": error.message(), "extensions": { "code": error.code() } }]
    });
    (status, Json(body)).into_response()
}

/// The town statistics dashboard: one static page that reads the GraphQL API with the token
/// the official pastes in (or `?token=`).
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}
