//! The HTTP surface: `/graphql` (POST, GET, multipart uploads), `/graphql/ws` (subscriptions
//! over a websocket; the bearer token goes in `connection_init`), GraphiQL in development,
//! `/healthz`, `/readyz` and `/metrics` (Prometheus), and the public QR pages (`/p/{token}`, `/qr/…`, see
//! [`crate::public_page`]).

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource, MultipartOptions};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Body;
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures::{SinkExt as _, StreamExt as _, TryStreamExt as _};
use tokio_util::compat::TokioAsyncReadCompatExt;
use tower_http::trace::TraceLayer;

use crate::AppState;
use sha2::Digest as _;

use crate::client_address::TrustedProxies;
use crate::error::ApiError;
use crate::graphql::AppSchema;
use crate::graphql::limits::{MUTATION_OVER_GET, ReadOnlyTransport};
use crate::graphql::scalars::position_parts;
use crate::rate_limit::{ClientAddress, RATE_LIMITED, RateChecked, RateLimiters, rate_limited};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Bytes a request may carry beyond its largest file (the operation and the multipart framing).
const REQUEST_OVERHEAD_BYTES_MAX: u64 = 1024 * 1024;
/// Most files one multipart request may carry (an inspection's documents and hazard photos);
/// all of them together stay within the body limit.
const UPLOAD_FILES_MAX: usize = 100;

/// A request header naming the rule-set version every field of the request evaluates with
/// (default: the live one), to read a version side by side with the live one.
pub const RULE_SET_HEADER: &str = "x-anquan-rule-set";

/// The default largest body of a GraphQL request that is not a multipart upload: 1 MiB.
pub const GRAPHQL_BODY_BYTES_MAX_DEFAULT: usize = 1024 * 1024;

/// The code of a request whose body is over its limit (answered 413).
pub const BODY_TOO_LARGE: &str = "BODY_TOO_LARGE";

/// Limits of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest body of a GraphQL request that is not a multipart upload (JSON, or anything else
    /// async-graphql would read whole). Uploads are bounded by `AppState::upload_bytes_max`
    /// plus `REQUEST_OVERHEAD_BYTES_MAX`.
    pub graphql_body_bytes_max: usize,
    /// The mutation and upload rate limits; the schema (`AppSchema`) counts mutations, the
    /// router an upload before it reads the upload's body. Share one with the schema.
    pub rate: Arc<RateLimiters>,
    /// How far behind the log the read models may be while `/readyz` says ready.
    pub readiness: Readiness,
    /// The reverse proxies whose `X-Forwarded-For` names the client for the per-address rate
    /// limit; none by default.
    pub trusted_proxies: TrustedProxies,
    /// The bearer token a scraper of `/metrics` must send; none: `/metrics` is open (keep it
    /// off the public entry then).
    pub metrics_token: Option<MetricsToken>,
}

/// The secret a Prometheus scraper sends to read `/metrics`.
#[derive(Clone)]
pub struct MetricsToken(sha2::digest::Output<sha2::Sha256>);

/// A metrics token too short to be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the metrics token must be at least {METRICS_TOKEN_CHARS_MIN} characters")]
pub struct MetricsTokenTooShort;

/// The shortest metrics token accepted.
pub const METRICS_TOKEN_CHARS_MIN: usize = 24;

impl MetricsToken {
    /// Keeps the token's SHA-256 only.
    pub fn new(token: &str) -> Result<Self, MetricsTokenTooShort> {
        if token.trim().chars().count() < METRICS_TOKEN_CHARS_MIN {
            return Err(MetricsTokenTooShort);
        }
        Ok(MetricsToken(sha2::Sha256::digest(token.trim().as_bytes())))
    }

    /// Whether the request carries the token. Digests of equal length are compared, so the
    /// time taken says nothing about how much of a guess was right.
    fn admits(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|sent| sha2::Sha256::digest(sent.trim().as_bytes()) == self.0)
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("MetricsToken(…)")
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            graphql_body_bytes_max: GRAPHQL_BODY_BYTES_MAX_DEFAULT,
            rate: Arc::default(),
            readiness: Readiness::default(),
            trusted_proxies: TrustedProxies::default(),
            metrics_token: None,
        }
    }
}

/// How far behind the head of the log a node's read models may be while it is ready: a node
/// further behind (catching up after a start, or whose leader is slow) answers queries with
/// old data, so a load balancer should send clients elsewhere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readiness {
    /// Most events between a projection's shared checkpoint and the head.
    pub lag_events: u64,
    /// Most seconds since the first event a projection has not applied was recorded.
    pub lag_seconds: f64,
}

/// The default [`Readiness::lag_events`].
pub const READY_LAG_EVENTS_DEFAULT: u64 = 10_000;
/// The default [`Readiness::lag_seconds`].
pub const READY_LAG_SECONDS_DEFAULT: f64 = 30.0;

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            lag_events: READY_LAG_EVENTS_DEFAULT,
            lag_seconds: READY_LAG_SECONDS_DEFAULT,
        }
    }
}

/// The client's address, when the server was started with connect info
/// (`into_make_service_with_connect_info`); rate limits per address need it. Behind a trusted
/// reverse proxy it is the client the proxies name (`client_address`).
struct PeerAddress(Option<IpAddr>);

impl axum::extract::FromRequestParts<HttpState> for PeerAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerAddress(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|connect| state.limits.trusted_proxies.client(connect.0.ip(), &parts.headers)),
        ))
    }
}

#[derive(Clone)]
struct HttpState {
    schema: AppSchema,
    app: AppState,
    limits: HttpLimits,
    /// Largest body of any request: a multipart upload's.
    multipart_body_bytes_max: usize,
}

/// Builds the router around a schema, with the default [`HttpLimits`].
pub fn router(schema: AppSchema, app: AppState) -> Router {
    router_with(schema, app, HttpLimits::default())
}

/// Builds the router around a schema with the given transport limits.
pub fn router_with(schema: AppSchema, app: AppState, limits: HttpLimits) -> Router {
    let body_limit =
        usize::try_from(app.upload_bytes_max.saturating_add(REQUEST_OVERHEAD_BYTES_MAX)).unwrap_or(usize::MAX);
    // The router serves `/metrics`, so it installs the recorder that fills it (once a process).
    crate::observability::install();
    let state = HttpState {
        schema,
        app: app.clone(),
        limits,
        multipart_body_bytes_max: body_limit,
    };
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus_metrics))
        .route("/dashboard", get(dashboard))
        .route("/dashboard.js", get(dashboard_js))
        .route("/dashboard.css", get(dashboard_css))
        .route("/readyz", get(readyz))
        .route("/anchors", get(anchors))
        .route("/files/{sha256}", get(download_file))
        .route("/reports/{month}/{file}", get(download_report))
        .route("/assessments/{file}", get(download_assessment))
        .merge(crate::public_page::router(app.clone()))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_declared_large_bodies,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Refuses, on every route and before anything reads it, a body whose declared length is over
/// the largest any request may carry (an upload's). `/graphql` then holds each body to its own
/// limit as it reads it, whether or not a length was declared; no other route reads a body.
async fn refuse_declared_large_bodies(
    State(state): State<HttpState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match declared_length(request.headers()) {
        Some(length) if length > state.multipart_body_bytes_max => body_too_large(state.multipart_body_bytes_max),
        _ => next.run(request).await,
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|length| usize::try_from(length).unwrap_or(usize::MAX))
}

fn body_too_large(max: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &ApiError::Refused {
            code: BODY_TOO_LARGE,
            message: format!(
                "请求内容过大，此类请求最多 {}",
                crate::error::size_text(u64::try_from(max).unwrap_or(u64::MAX))
            ),
            details: vec![("maxBytes", max.to_string().into())],
        },
    )
}

/// Every signed anchor and the public keys they were signed with
/// (`anquan_projections::anchors::AnchorsDocument`), without a token: auditors keep copies of
/// it outside the database and check the log against them (`anquan verify --anchors`).
async fn anchors(State(state): State<HttpState>) -> Response {
    match anquan_projections::anchors::read_anchors(state.app.event_store.as_ref()).await {
        Ok(anchors) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(anquan_projections::anchors::AnchorsDocument::of(anchors)),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot read the anchors");
            (StatusCode::SERVICE_UNAVAILABLE, "the anchors cannot be read now").into_response()
        }
    }
}

/// A stored file by its hash, with a bearer token: the city admin and city-wide auditors read
/// any file; an enterprise's or an agency's staff the files they stored (their quota marker);
/// nobody else. A personal file is opened with its data subject's key; once the subject is
/// erased it answers 410 `FILE_ERASED` and no content. An unknown hash is 404 `UNKNOWN_FILE`.
async fn download_file(
    State(state): State<HttpState>,
    axum::extract::Path(sha256): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let app = &state.app;
    let actor = match authenticated(app, &headers) {
        Ok(actor) => actor,
        Err(error) => return error_response(StatusCode::UNAUTHORIZED, &error),
    };
    let unknown = || {
        error_response(
            StatusCode::NOT_FOUND,
            &ApiError::Refused {
                code: "UNKNOWN_FILE",
                message: "没有这个文件".to_owned(),
                details: vec![("sha256", sha256.clone().into())],
            },
        )
    };
    let forbidden = || {
        error_response(
            StatusCode::FORBIDDEN,
            &ApiError::Forbidden("只有市级管理员、全市审计人员和上传该文件的单位可以下载文件".to_owned()),
        )
    };
    // Authorised before anything is read: the role first, then (for an owner) its marker.
    let owner = match &actor.role {
        anquan_domain::Role::CityAdmin | anquan_domain::Role::Auditor { town: None } => None,
        _ => match crate::uploads::owner_of(&actor) {
            Some(owner) => Some(owner),
            None => return forbidden(),
        },
    };
    let size = match app.blobs.size(&sha256).await {
        Ok(size) => size,
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::internal(&error)),
    };
    if let Some(owner) = owner {
        let stored = match size {
            Some(size) => app.blobs.stored_by(owner, &sha256, size).await,
            None => Ok(false),
        };
        match stored {
            Ok(true) => {}
            Ok(false) => return forbidden(),
            Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::internal(&error)),
        }
    }
    match app.blobs.download(&sha256).await {
        Ok(Some(crate::blobs::Download::Content { bytes, personal })) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-store"),
                (
                    header::HeaderName::from_static("x-anquan-personal"),
                    if personal { "true" } else { "false" },
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Some(crate::blobs::Download::Erased)) => error_response(
            StatusCode::GONE,
            &ApiError::Refused {
                code: "FILE_ERASED",
                message: "该文件含有已依法删除的个人信息，内容已不可读".to_owned(),
                details: vec![("sha256", sha256.clone().into())],
            },
        ),
        Ok(None) => unknown(),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::internal(&error)),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the event store answers, this node agrees with the rule-set log (it runs the live
/// version), no projection is stalled and none is further behind the log's head than
/// [`Readiness`] allows; else 503. The JSON body says which: `{"ready", "eventStore",
/// "ruleSet": {"live", "agrees", "reason"}, "leading": term or null, "projections": [{"name",
/// "position", "preparePosition", "state", "lagEvents", "lagPositions", "lagSeconds",
/// "failingEvent": {"position", "preparePosition", "streamId", "eventType"}, "error", "since",
/// "attempts"}], "catchUp": {"catchingUp", "unit", "position", "head", "eventsPerSecond",
/// "etaSeconds"}}`. Positions are shown as in GraphQL (`scalars::position_parts`): the commit
/// part, and the prepare part only where it differs. `lagEvents` is the events between the
/// projection's position and the head where the backend can count them (dense positions:
/// SQLite, PostgreSQL), else null; `lagPositions` is the distance between the commit positions
/// (the same number where positions are dense; on KurrentDB, bytes of its log).
/// `--ready-lag-events` applies where events are counted, `--ready-lag-seconds` everywhere.
/// `catchUp.unit` is `events`, or `positions` where the backend cannot count events (its
/// `position`, `head` and `eventsPerSecond` are then commit positions). This is the operators' view: `error` is the store's own
/// message with its causes. `catchUp` is the projections as a whole (the lowest position any
/// has applied, whether one still folds its backlog) against the log's head as the runner last
/// measured it (every second at least):
/// `etaSeconds` is 0 once caught up and null while unknown (no pace measured yet, or the head
/// moves as fast as the projections); `catchUp` is null before the first measurement.
async fn readyz(State(state): State<HttpState>) -> Response {
    let event_store = match state.app.event_store.read_all(None, 1).await {
        Ok(_) => "ok",
        Err(error) => {
            tracing::warn!(error = %error, "not ready: event store unreachable");
            "unreachable"
        }
    };
    let agreement = state.app.rule_sets.agreement();
    let limits = state.limits.readiness;
    let now = Utc::now();
    let statuses = state.app.projections.statuses();
    let stalled = statuses
        .iter()
        .any(|status| status.state == anquan_projections::ProjectionState::Stalled);
    let behind = statuses.iter().any(|status| {
        status.lag.is_some_and(|lag| {
            lag.behind.events().is_some_and(|events| events > limits.lag_events)
                || lag.seconds(now) > limits.lag_seconds
        })
    });
    let ready = event_store == "ok" && agreement.is_ok() && !stalled && !behind;
    let projections: Vec<serde_json::Value> = statuses
        .iter()
        .map(|status| {
            let stall = status.stall.as_ref();
            serde_json::json!({
                "name": status.name,
                "position": status.position.map(|position| position_parts(position).0.0),
                "preparePosition": status.position.and_then(|position| position_parts(position).1).map(|part| part.0),
                "state": status.state.as_str(),
                "lagEvents": status.lag.and_then(|lag| lag.behind.events()),
                "lagPositions": status.lag.map(|lag| lag.behind.positions()),
                "lagSeconds": status.lag.map(|lag| lag.seconds(now)),
                "failingEvent": stall.and_then(|stall| stall.event.as_ref()).map(|event| serde_json::json!({
                    "position": position_parts(event.position).0.0,
                    "preparePosition": position_parts(event.position).1.map(|part| part.0),
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
        "ruleSet": {
            "live": state.app.rule_sets.active_version(),
            "agrees": agreement.is_ok(),
            "reason": agreement.err(),
        },
        "leading": state.app.projections.leading(),
        "projections": projections,
        "catchUp": catch_up_json(&state.app.projections),
    });
    (status, Json(body)).into_response()
}

/// The `catchUp` object of `/readyz` (see [`readyz`]).
fn catch_up_json(projections: &anquan_projections::ProjectionsHealth) -> serde_json::Value {
    let Some(status) = projections.catch_up() else {
        return serde_json::Value::Null;
    };
    let catch_up = status.progress;
    serde_json::json!({
        "catchingUp": status.catching_up,
        "unit": if status.counts_events { "events" } else { "positions" },
        "position": catch_up.position,
        "head": catch_up.head,
        "eventsPerSecond": catch_up.per_second.round(),
        "etaSeconds": catch_up.eta.map(|eta| eta.as_secs_f64().ceil()),
    })
}

async fn graphql_get(
    State(state): State<HttpState>,
    PeerAddress(address): PeerAddress,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if uri.query().is_none_or(str::is_empty) && state.app.graphiql {
        return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response();
    }
    let query = uri.query().unwrap_or_default();
    let mut request = match async_graphql::http::parse_query_string(query) {
        Ok(request) => request,
        Err(error) => return malformed_request(error.to_string()),
    };
    // GraphQL over HTTP names it `operationName`; async-graphql 7 reads only `operation_name`.
    if request.operation_name.is_none() {
        let pairs: Vec<(String, String)> = axum::extract::Query::try_from_uri(&uri)
            .map(|axum::extract::Query(pairs)| pairs)
            .unwrap_or_default();
        request.operation_name = pairs
            .into_iter()
            .find_map(|(key, value)| (key == "operationName").then_some(value));
    }
    execute(&state, &headers, request, Method::GET, address).await
}

async fn graphql_post(
    State(state): State<HttpState>,
    PeerAddress(address): PeerAddress,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // async-graphql reads every body that is not multipart as JSON, whole: hold it to the
    // (small) GraphQL limit; a multipart upload streams, held to the upload limit.
    let multipart = content_type
        .as_deref()
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("multipart/"));
    let limit = if multipart {
        state.multipart_body_bytes_max
    } else {
        state.limits.graphql_body_bytes_max
    };
    if declared_length(&headers).is_some_and(|length| length > limit) {
        return body_too_large(limit);
    }
    // An upload counts against the rate limits before its body is read (and only then: the
    // mutation it carries is not counted again). The caller is authenticated first.
    if multipart {
        let caller = match bearer_actor(&state.app, &headers) {
            Ok(caller) => caller,
            Err(error) => return error_response(StatusCode::UNAUTHORIZED, &error),
        };
        if let Err(wait) = state.limits.rate.check(caller.as_ref(), address) {
            return too_many_requests(async_graphql::Response::from_errors(vec![rate_limited(wait)]));
        }
    }
    let file_limit = usize::try_from(state.app.upload_bytes_max).unwrap_or(usize::MAX);
    let options = MultipartOptions::default()
        .max_file_size(file_limit)
        .max_num_files(UPLOAD_FILES_MAX);
    let over_limit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let received = if multipart {
        let mut read = 0usize;
        let over = over_limit.clone();
        let stream = body.into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(|error| std::io::Error::other(error.to_string()))?;
            read = read.saturating_add(chunk.len());
            if read > limit {
                over.store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(std::io::Error::other("the request body is over its limit"));
            }
            Ok(chunk)
        });
        let reader = tokio_util::io::StreamReader::new(stream).compat();
        async_graphql::http::receive_body(content_type, reader, options).await
    } else {
        let mut bytes = Vec::new();
        let mut stream = body.into_data_stream();
        loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => {
                    if bytes.len().saturating_add(chunk.len()) > limit {
                        return body_too_large(limit);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return malformed_request(format!("cannot read the request body: {error}")),
            }
        }
        async_graphql::http::receive_body(content_type, futures::io::Cursor::new(bytes), options).await
    };
    match received {
        Ok(request) if multipart => execute(&state, &headers, request.data(RateChecked), Method::POST, address).await,
        Ok(request) => execute(&state, &headers, request, Method::POST, address).await,
        Err(_) if over_limit.load(std::sync::atomic::Ordering::Relaxed) => body_too_large(limit),
        Err(async_graphql::ParseRequestError::PayloadTooLarge) => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &ApiError::FileTooLarge {
                size: state.app.upload_bytes_max.saturating_add(1),
                max: state.app.upload_bytes_max,
            },
        ),
        Err(error) => malformed_request(error.to_string()),
    }
}

async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    request: async_graphql::Request,
    method: Method,
    address: Option<IpAddr>,
) -> Response {
    let actor = match bearer_actor(&state.app, headers) {
        Ok(actor) => actor,
        Err(error) => return error_response(StatusCode::UNAUTHORIZED, &error),
    };
    // `AppSchema` refuses a mutation over GET from the parsed document and the
    // operation the request selects (comments, a BOM, several operations cannot hide one).
    let request = if method == Method::GET {
        request.data(ReadOnlyTransport)
    } else {
        request
    };
    let request = match actor {
        Some(actor) => request.data(actor),
        None => request,
    };
    let request = match address {
        Some(address) => request.data(ClientAddress(address)),
        None => request,
    };
    // Pin the live rule set (or the one named by the header) for the whole request.
    let version = headers.get(RULE_SET_HEADER).and_then(|value| value.to_str().ok());
    let Some(pinned) = state.app.for_request(version) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            &ApiError::Refused {
                code: "UNKNOWN_RULE_SET",
                message: format!("本节点没有载入规则集 {}", version.unwrap_or_default()),
                details: vec![("ruleSet", version.unwrap_or_default().into())],
            },
        );
    };
    let response = state.schema.execute(request.data(pinned)).await;
    let has_code = |code: &str| {
        response.errors.iter().any(|error| {
            error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .is_some_and(|value| *value == async_graphql::Value::from(code))
        })
    };
    if has_code(RATE_LIMITED) {
        return too_many_requests(response);
    }
    if has_code(MUTATION_OVER_GET) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            Json(response),
        )
            .into_response();
    }
    Json(response).into_response()
}

/// 429 with `Retry-After` from the error's `retryAfterSeconds`.
fn too_many_requests(response: async_graphql::Response) -> Response {
    let retry_after = response
        .errors
        .iter()
        .find_map(|error| error.extensions.as_ref()?.get("retryAfterSeconds").cloned())
        .map_or_else(|| "1".to_owned(), |seconds| seconds.to_string());
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after)],
        Json(response),
    )
        .into_response()
}

/// Serves subscriptions over a websocket (graphql-ws and graphql-transport-ws). The caller is
/// read from `{"Authorization": "Bearer …"}` in the `connection_init` payload; none means an
/// anonymous caller, whom subscriptions refuse. A connection lives no longer than its token:
/// when the token expires the server closes it with code [`WS_CLOSE_TOKEN_EXPIRED`] and the
/// reason `TOKEN_EXPIRED`, ending every subscription on it.
async fn graphql_ws(
    State(state): State<HttpState>,
    PeerAddress(address): PeerAddress,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let schema = state.schema.clone();
    let app = state.app.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve_ws(socket, schema, app, protocol, address))
        .into_response()
}

/// The close code of a websocket whose token expired (graphql-transport-ws uses 4401 for
/// "unauthorized").
pub const WS_CLOSE_TOKEN_EXPIRED: u16 = 4401;
/// The reason sent with [`WS_CLOSE_TOKEN_EXPIRED`].
pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";

async fn serve_ws(
    socket: WebSocket,
    schema: AppSchema,
    app: AppState,
    protocol: GraphQLProtocol,
    address: Option<IpAddr>,
) {
    let (mut sink, stream) = socket.split();
    // async-graphql writes into this channel; this task forwards to the socket until the
    // token's expiry, then closes it.
    let (outgoing, mut to_send) = futures::channel::mpsc::channel::<WsMessage>(16);
    let (expiry_sender, expiry) = tokio::sync::oneshot::channel::<DateTime<Utc>>();
    let served = GraphQLWebSocket::new_with_pair(outgoing, stream, schema, protocol)
        .on_connection_init(move |payload| async move {
            let mut data = async_graphql::Data::default();
            if let Some(address) = address {
                data.insert(ClientAddress(address));
            }
            let header = payload
                .get("Authorization")
                .or_else(|| payload.get("authorization"))
                .and_then(serde_json::Value::as_str);
            if let Some(header) = header {
                let (actor, expires_at) = actor_until_from_header(&app, header).map_err(async_graphql::Error::from)?;
                // The receiver lives as long as the connection; if it is gone, so is the socket.
                let _ = expiry_sender.send(expires_at);
                data.insert(actor);
            }
            Ok(data)
        })
        .serve();
    let expired = async move {
        match expiry.await {
            Ok(expires_at) => {
                let left = expires_at
                    .signed_duration_since(Utc::now())
                    .to_std()
                    .unwrap_or(std::time::Duration::ZERO);
                tokio::time::sleep(left).await;
            }
            // Anonymous: nothing to expire (subscriptions refuse it anyway).
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(served, expired);
    let mut serving = true;
    loop {
        tokio::select! {
            message = to_send.next() => match message {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        return;
                    }
                }
                // async-graphql is done and everything it wrote is sent.
                None => return,
            },
            () = &mut served, if serving => serving = false,
            () = &mut expired => {
                let close = WsMessage::Close(Some(CloseFrame {
                    code: WS_CLOSE_TOKEN_EXPIRED,
                    reason: TOKEN_EXPIRED.into(),
                }));
                // The peer may be gone already; there is nothing more to do either way.
                let _ = sink.send(close).await;
                return;
            }
        }
    }
}

/// Reads the caller from `Authorization: Bearer …`; no header means an anonymous caller.
/// Which version of a report a download asks for (default: the latest).
#[derive(serde::Deserialize)]
struct ReportVersion {
    version: Option<u32>,
}

/// A monthly report as a file, `GET /reports/<YYYY-MM>/<city|town>.<csv|xlsx|html>`
/// (`?version=N`, default the latest), with a bearer token and the GraphQL fields' rules: city
/// staff, analysts and city-wide auditors any town, town roles and town auditors their town and
/// the city, nobody else.
async fn download_report(
    State(state): State<HttpState>,
    axum::extract::Path((month, file)): axum::extract::Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<ReportVersion>,
    headers: HeaderMap,
) -> Response {
    let app = &state.app;
    let actor = match authenticated(app, &headers) {
        Ok(actor) => actor,
        Err(error) => return error_response(StatusCode::UNAUTHORIZED, &error),
    };
    let bad = |error: ApiError| error_response(StatusCode::BAD_REQUEST, &error);
    let Some((name, extension)) = file.rsplit_once('.') else {
        return bad(ApiError::BadInput {
            code: "BAD_INPUT",
            message: "文件名须为 city 或镇（街道）名，后缀为 .csv、.xlsx 或 .html".to_owned(),
        });
    };
    let town = match name {
        "city" => None,
        town => match anquan_domain::Town::parse(town) {
            Ok(town) => Some(town),
            Err(error) => return bad(ApiError::invalid_id(&error)),
        },
    };
    // Authorised before anything is read.
    let town = match crate::graphql::metrics::visibility_of(&actor)
        .and_then(|visible| crate::graphql::reports::readable_town(&visible, town))
    {
        Ok(town) => town,
        Err(error) => return error_response(StatusCode::FORBIDDEN, &error),
    };
    let month = match crate::graphql::reports::parse_month(&month) {
        Ok(month) => month,
        Err(error) => return bad(error),
    };
    if !matches!(extension, "csv" | "xlsx" | "html") {
        return bad(ApiError::BadInput {
            code: "BAD_INPUT",
            message: "报告文件的后缀须为 .csv、.xlsx 或 .html".to_owned(),
        });
    }
    let report = match crate::reports::read_report(app, month, query.version).await {
        Ok(Some(report)) => report,
        Ok(None) => {
            return error_response(
                StatusCode::NOT_FOUND,
                &ApiError::Rejected {
                    code: "REPORT_NOT_ISSUED",
                    message: format!("{month} 的月度报告（所问版本）尚未生成"),
                },
            );
        }
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &error),
    };
    let Some(scope) = crate::reports::scope_of_report(&report, town.as_ref()) else {
        return error_response(
            StatusCode::NOT_FOUND,
            &ApiError::NotFound(format!("{month} 报告中的镇（街道）")),
        );
    };
    let attachment = |extension: &str| {
        let name = format!(
            "{month}-{}-v{}.{extension}",
            scope.town.as_deref().unwrap_or("city"),
            report.version
        );
        format!("attachment; filename*=UTF-8''{}", percent_encode(&name))
    };
    let headers = |content_type: &'static str, disposition: String| {
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ]
    };
    match extension {
        "csv" => (
            headers("text/csv; charset=utf-8", attachment("csv")),
            crate::report_files::csv(app, &report, scope),
        )
            .into_response(),
        "xlsx" => match crate::report_files::xlsx(app, &report, scope) {
            Ok(bytes) => (
                headers(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    attachment("xlsx"),
                ),
                bytes,
            )
                .into_response(),
            Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::internal(&error)),
        },
        _ => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                        .to_owned(),
                ),
            ],
            crate::report_files::html(app, &report, scope),
        )
            .into_response(),
    }
}

/// A year's annual town assessment as CSV, `GET /assessments/<YYYY>.csv` (`?version=N`), with a
/// bearer token: the roles that read `annualAssessment`, town roles their town's line only.
async fn download_assessment(
    State(state): State<HttpState>,
    axum::extract::Path(file): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<ReportVersion>,
    headers: HeaderMap,
) -> Response {
    let app = &state.app;
    let actor = match authenticated(app, &headers) {
        Ok(actor) => actor,
        Err(error) => return error_response(StatusCode::UNAUTHORIZED, &error),
    };
    let visible = match crate::graphql::metrics::visibility_of(&actor) {
        Ok(visible) => visible,
        Err(error) => return error_response(StatusCode::FORBIDDEN, &error),
    };
    let year = file
        .strip_suffix(".csv")
        .and_then(|year| year.parse::<i32>().ok())
        .filter(|year| anquan_domain::report::ReportMonth::new(*year, 12).is_some());
    let Some(year) = year else {
        return error_response(
            StatusCode::BAD_REQUEST,
            &ApiError::BadInput {
                code: "BAD_INPUT",
                message: "文件名须为 <年份>.csv，年份在 1970 至 2198 之间".to_owned(),
            },
        );
    };
    let versions = match crate::reports::read_assessments(app, year).await {
        Ok(versions) => versions,
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &error),
    };
    let found = match query.version {
        None => versions.last(),
        Some(version) => versions.iter().find(|assessment| assessment.version == version),
    };
    let Some(assessment) = found else {
        return error_response(
            StatusCode::NOT_FOUND,
            &ApiError::Rejected {
                code: "ASSESSMENT_NOT_ISSUED",
                message: format!("{year} 年度考核（所问版本）尚未生成"),
            },
        );
    };
    let towns: Vec<&anquan_domain::assessment::TownAssessment> = assessment
        .towns
        .iter()
        .filter(|town| match &visible {
            crate::graphql::metrics::Visibility::All => true,
            crate::graphql::metrics::Visibility::Town(own) => own.as_str() == town.town,
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"assessment-{year}-v{}.csv\"", assessment.version),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        crate::report_files::assessment_csv(assessment, &towns),
    )
        .into_response()
}

/// Percent-encodes a file name for `filename*=UTF-8''…` (RFC 5987): every byte but unreserved
/// ASCII.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// The caller of a download that needs a token (files, reports, assessments), refused as
/// unauthenticated without one; a token that does not verify is refused as `bearer_actor` says.
fn authenticated(app: &AppState, headers: &HeaderMap) -> Result<anquan_domain::Actor, ApiError> {
    bearer_actor(app, headers)?.ok_or(ApiError::Unauthenticated)
}

fn bearer_actor(app: &AppState, headers: &HeaderMap) -> Result<Option<anquan_domain::Actor>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| not_a_bearer_token())?;
    actor_from_header(app, value).map(Some)
}

/// Verifies the token of an `Authorization` value (`Bearer <token>`).
fn actor_from_header(app: &AppState, value: &str) -> Result<anquan_domain::Actor, ApiError> {
    actor_until_from_header(app, value).map(|(actor, _)| actor)
}

/// Verifies the token of an `Authorization` value; returns its actor and when it expires.
fn actor_until_from_header(app: &AppState, value: &str) -> Result<(anquan_domain::Actor, DateTime<Utc>), ApiError> {
    let token = value.strip_prefix("Bearer ").ok_or_else(not_a_bearer_token)?;
    app.tokens
        .verify_until(token.trim())
        .map_err(|error| ApiError::Refused {
            code: "UNAUTHENTICATED",
            message: error.sentence(),
            // The verifier's own words, for the developer of the client.
            details: vec![("reason", error.to_string().into())],
        })
}

fn not_a_bearer_token() -> ApiError {
    ApiError::Refused {
        code: "UNAUTHENTICATED",
        message: "登录凭据的格式不正确，请重新登录".to_owned(),
        details: vec![("reason", "expected `Authorization: Bearer <token>`".into())],
    }
}

/// A request that is not GraphQL over HTTP: only a client's developer can cause it, so the
/// parser's own words go in `extensions.reason` beside the sentence for people.
fn malformed_request(reason: String) -> Response {
    let error = ApiError::Refused {
        code: "BAD_INPUT",
        message: "请求的格式不正确，无法解析".to_owned(),
        details: vec![("reason", reason.into())],
    };
    error_response(StatusCode::BAD_REQUEST, &error)
}

fn error_response(status: StatusCode, error: &ApiError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": error.message(), "extensions": error.extensions_json() }]
    });
    (status, Json(body)).into_response()
}

/// The dashboard's Content-Security-Policy: its script and style are served files of this
/// origin (no inline script, style or handler runs), it talks only to this origin's
/// `/graphql`, and it may not be framed or post a form anywhere.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                             img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The town statistics dashboard: one static page that reads the GraphQL API with the token
/// the official types into its login form, kept in the page's memory only (never in the URL).
async fn dashboard() -> Response {
    dashboard_file("text/html; charset=utf-8", include_str!("dashboard.html"))
}

async fn dashboard_js() -> Response {
    dashboard_file("text/javascript; charset=utf-8", include_str!("dashboard.js"))
}

async fn dashboard_css() -> Response {
    dashboard_file("text/css; charset=utf-8", include_str!("dashboard.css"))
}

fn dashboard_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

/// Every metric in Prometheus's text format, for scrapers: no token, and no rate limit (those
/// count mutations and uploads only).
/// The Prometheus metrics; with a metrics token configured, only for a scraper that sends it
/// (`Authorization: Bearer …`, else 401 `UNAUTHENTICATED`).
async fn prometheus_metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.limits.metrics_token
        && !expected.admits(&headers)
    {
        return error_response(StatusCode::UNAUTHORIZED, &ApiError::Unauthenticated);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::observability::render(),
    )
        .into_response()
}
