//! The read and write API of anquan: an async-graphql schema (queries over read models,
//! mutations that issue commands) on an axum router, with bearer-token identity, multipart
//! uploads into the content-addressed blob store, and health endpoints.
//!
//! This crate must not know SQL or a concrete store: it holds `Arc<dyn EventStore>` and
//! `Arc<dyn ReadModelStore>` and reads read models only through `anquan-projections`.

pub mod auth;
pub mod blobs;
pub mod error;
pub mod graphql;
mod http;
pub mod watcher;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use anquan_domain::rules::RuleSet;
use anquan_event_store::{EventStore, Position, ReadModelStore};

pub use auth::TokenAuthority;
pub use blobs::BlobStore;
pub use graphql::{AppSchema, schema, sdl};
pub use http::router;
pub use watcher::{SupervisionEvents, SupervisionWatcher};

/// The default largest upload: 20 MiB.
pub const UPLOAD_BYTES_MAX_DEFAULT: u64 = 20 * 1024 * 1024;
/// How long a mutation waits for the read models to show its own write.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(10);

/// The source of "now" for commands and default query instants. Only the API reads the clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Everything the API needs, shared by all requests.
#[derive(Clone)]
pub struct AppState {
    pub event_store: Arc<dyn EventStore>,
    pub read_models: Arc<dyn ReadModelStore>,
    pub rules: Arc<RuleSet>,
    pub blobs: BlobStore,
    pub tokens: TokenAuthority,
    /// The position the compliance read model has applied, for read-your-writes.
    pub projected: watch::Receiver<Option<Position>>,
    pub clock: Clock,
    pub upload_bytes_max: u64,
    /// Serve GraphiQL at `GET /graphql` (development).
    pub graphiql: bool,
    /// Supervision notifications (overdue hazards, colour changes) for subscriptions; the
    /// `SupervisionWatcher` sends them.
    pub supervision: SupervisionEvents,
}

impl AppState {
    /// Returns the current instant.
    /// Truncated to microseconds, the precision every store keeps, so a decision and its
    /// stored, re-read facts agree to the instant.
    pub fn now(&self) -> DateTime<Utc> {
        anquan_event_store::hash_chain::canonical_time((self.clock)())
    }

    /// Waits until the read models have applied `position`; false on timeout.
    pub async fn wait_for_projection(&self, position: Position) -> bool {
        let mut projected = self.projected.clone();
        let reached = tokio::time::timeout(
            READ_YOUR_WRITES_TIMEOUT,
            projected.wait_for(|applied| applied.is_some_and(|applied| applied >= position)),
        )
        .await;
        matches!(reached, Ok(Ok(_)))
    }
}
