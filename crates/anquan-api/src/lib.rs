//! The read and write API of anquan: an async-graphql schema (queries over read models,
//! mutations that issue commands) on an axum router, with bearer-token identity, multipart
//! uploads into the content-addressed blob store, and health endpoints.
//!
//! This crate must not know SQL or a concrete store: it holds `Arc<dyn EventStore>` and
//! `Arc<dyn ReadModelStore>` and reads read models only through `anquan-projections`.

pub mod auth;
pub mod blobs;
pub mod client_address;
pub mod error;
pub mod graphql;
mod http;
pub mod metrics_history;
pub mod metrics_service;
pub mod observability;
pub mod public_page;
pub mod rate_limit;
pub mod report_files;
pub mod reports;
mod uploads;
pub mod watcher;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use anquan_domain::rules::RuleSet;
use anquan_event_store::{EventStore, Position, ReadModelStore};
use anquan_projections::rule_sets::RuleSetRegistry;
use anquan_projections::{AgencyProjection, ComplianceProjection, ProjectionsHealth, Waited};

use crate::error::ApiError;

pub use auth::TokenAuthority;
pub use blobs::{BlobStore, S3Settings, UploadQuota};
pub use client_address::{TrustedProxies, TrustedProxyError};
pub use graphql::{AppSchema, schema, schema_with, sdl};
pub use http::{
    BODY_TOO_LARGE, GRAPHQL_BODY_BYTES_MAX_DEFAULT, HttpLimits, METRICS_TOKEN_CHARS_MIN, MetricsToken,
    MetricsTokenTooShort, READY_LAG_EVENTS_DEFAULT, READY_LAG_SECONDS_DEFAULT, RULE_SET_HEADER, Readiness,
    TOKEN_EXPIRED, WS_CLOSE_TOKEN_EXPIRED, router, router_with,
};
pub use metrics_service::{MetricsService, MetricsWatcher};
pub use public_page::PublicPageSettings;
pub use rate_limit::{RateLimitSettings, RateLimiters};
pub use watcher::{SupervisionEvents, SupervisionWatcher};

/// The default largest upload: 20 MiB.
pub const UPLOAD_BYTES_MAX_DEFAULT: u64 = 20 * 1024 * 1024;
/// The default quota of each enterprise and each agency: 10 GiB.
pub const UPLOAD_QUOTA_BYTES_DEFAULT: u64 = 10 * 1024 * 1024 * 1024;
/// How long a mutation waits for the read models to show its own write.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(10);

/// The source of "now" for commands and default query instants. Only the API reads the clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Everything the API needs, shared by all requests.
#[derive(Clone)]
pub struct AppState {
    pub event_store: Arc<dyn EventStore>,
    pub read_models: Arc<dyn ReadModelStore>,
    /// The rule set this request evaluates with: the live one when the request started (see
    /// [`AppState::for_request`]), so a query in flight keeps its rules across a promotion.
    pub rules: Arc<RuleSet>,
    /// Every loaded rule-set version and the live one, switched when a promotion is read.
    pub rule_sets: Arc<RuleSetRegistry>,
    /// Whether `rules` was named by the request (`x-anquan-rule-set`): then it is the default
    /// of every field, `asOf` included; otherwise a field with `asOf` evaluates under the rule
    /// set in force at that instant (`graphql::audit::rules_for`).
    pub rules_pinned: bool,
    pub blobs: BlobStore,
    pub tokens: TokenAuthority,
    /// The lowest position every read model has applied (the watchers follow it).
    pub projected: watch::Receiver<Option<Position>>,
    /// Each projection's applied position and state: what a mutation waits for, and what
    /// tells a query that its read model is stalled.
    pub projections: ProjectionsHealth,
    pub clock: Clock,
    pub upload_bytes_max: u64,
    /// Serve GraphiQL at `GET /graphql` (development).
    pub graphiql: bool,
    /// Supervision notifications (overdue hazards, colour changes) for subscriptions; the
    /// `SupervisionWatcher` sends them.
    pub supervision: SupervisionEvents,
    /// The public QR pages' base URL and town contacts.
    pub public_page: PublicPageSettings,
    /// Town statistics for "now", kept by the `MetricsWatcher`.
    pub metrics: MetricsService,
    /// The anchors' signing key file, read for each anchor `takeAnchor` takes; `None` where
    /// the service signs no anchors (tests of other parts).
    pub anchor_key: Option<anquan_projections::anchors::AnchorKeyFile>,
}

impl AppState {
    /// The state one request runs with: `rules` pinned to the live rule set as the request
    /// starts, or to `version` when the caller names one (`x-anquan-rule-set` header), the
    /// default of every field that takes no `ruleSet` argument of its own.
    pub fn for_request(&self, version: Option<&str>) -> Option<AppState> {
        let rules = match version {
            None => self.rule_sets.active(),
            Some(version) => self.rule_sets.get(version)?.rules.clone(),
        };
        Some(AppState {
            rules,
            rules_pinned: version.is_some(),
            ..self.clone()
        })
    }

    /// The digest of the files of a loaded rule-set version (empty if it is not loaded): what an
    /// answer names beside the version it was evaluated with.
    pub fn rule_set_digest(&self, version: &str) -> String {
        self.rule_sets
            .get(version)
            .map(|loaded| loaded.digest)
            .unwrap_or_default()
    }

    /// The rule set commands are decided with: always the live one. A request that reads with
    /// another version (header or `ruleSet`) still writes under the rules in force. Refused
    /// with `RULE_SET_UNAVAILABLE` while this node cannot honour the rule-set log (a version
    /// was promoted that it cannot load, or it has not read the log yet): it must not decide
    /// under rules that are no longer in force.
    pub fn decision_rules(&self) -> Result<Arc<RuleSet>, crate::error::ApiError> {
        self.rule_sets
            .agreement()
            .map_err(|reason| crate::error::ApiError::RuleSetUnavailable { reason })?;
        Ok(self.rule_sets.active())
    }

    /// Returns the current instant.
    /// Truncated to microseconds, the precision every store keeps, so a decision and its
    /// stored, re-read facts agree to the instant.
    pub fn now(&self) -> DateTime<Utc> {
        anquan_event_store::hash_chain::canonical_time((self.clock)())
    }

    /// Waits until `projection` has applied `position` (a mutation's own events), so the
    /// mutation reads back its own write. Only the read model the mutation reads is waited
    /// for: a stalled agency projection does not hold up enterprise mutations. A timeout is
    /// logged and the read goes ahead; a stalled projection is `PROJECTION_STALLED` at once,
    /// never an answer from a read model that will not show the write.
    pub async fn wait_for_projection(&self, projection: &str, position: Position) -> Result<(), ApiError> {
        let reached = match self
            .projections
            .wait_for(projection, position, READ_YOUR_WRITES_TIMEOUT)
            .await
        {
            Waited::Reached => true,
            Waited::Stalled(status) => {
                let mut stalled = ApiError::stalled(&status);
                if let ApiError::ProjectionStalled(stalled) = &mut stalled {
                    stalled.recorded = Some(position);
                }
                return Err(stalled);
            }
            Waited::TimedOut => false,
            // No health for it (a test's state without a runner): wait for every read model.
            Waited::Unknown => {
                let mut projected = self.projected.clone();
                let reached = tokio::time::timeout(
                    READ_YOUR_WRITES_TIMEOUT,
                    projected.wait_for(|applied| applied.is_some_and(|applied| applied >= position)),
                )
                .await;
                matches!(reached, Ok(Ok(_)))
            }
        };
        if !reached {
            tracing::warn!(projection, position = %position, "read models did not catch up in time");
        }
        Ok(())
    }

    /// The read models, for a query that reads the projections named; `PROJECTION_STALLED`
    /// when one of them is stalled, rather than an answer that silently stopped changing.
    pub fn read_models_of(&self, projections: &[&str]) -> Result<&dyn ReadModelStore, ApiError> {
        for projection in projections {
            if let Some(status) = self.projections.stalled(projection) {
                return Err(ApiError::stalled(&status));
            }
        }
        Ok(self.read_models.as_ref())
    }

    /// The read models, for a query of the compliance read model.
    pub fn compliance_read_models(&self) -> Result<&dyn ReadModelStore, ApiError> {
        self.read_models_of(&[ComplianceProjection::NAME])
    }

    /// The read models, for a query of the agency read model.
    pub fn agency_read_models(&self) -> Result<&dyn ReadModelStore, ApiError> {
        self.read_models_of(&[AgencyProjection::NAME])
    }
}
