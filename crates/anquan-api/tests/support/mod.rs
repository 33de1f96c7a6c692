//! What this crate's tests and benchmark share: the API's state over stores built in process,
//! for running its parts (watchers, metrics, the schema) without `serve`. The benchmark
//! includes this file by path.

#![allow(clippy::expect_used, reason = "a test's setup stops at its first failure")]

use std::path::Path;
use std::sync::Arc;

use anquan_api::{AppState, BlobStore, Clock, MetricsService, PublicPageSettings, SupervisionEvents};
use anquan_domain::rules::RuleSet;
use anquan_event_store::{EventStore, ReadModelStore};
use anquan_projections::ProjectionRunner;
use anquan_projections::rule_sets::RuleSetRegistry;

/// The API's state over `event_store` and `read_models`, with `rules` and the built-in v1
/// registry, the runner's applied positions and health, the given clock, files kept under
/// `dir`, and every serving setting at its default.
pub(crate) fn in_process_app(
    event_store: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModelStore>,
    rules: Arc<RuleSet>,
    runner: &ProjectionRunner,
    clock: Clock,
    dir: &Path,
) -> AppState {
    AppState {
        event_store,
        read_models,
        rules,
        rule_sets: Arc::new(
            RuleSetRegistry::single(&anquan_domain::rules::builtin_v1_files()).expect("the built-in rule-set registry"),
        ),
        rules_pinned: false,
        blobs: BlobStore::local(&dir.join("blobs")).expect("a blob store in the directory"),
        tokens: anquan_api::TokenAuthority::new(b"in-process-api-test-secret-of-32-bytes").expect("a signing secret"),
        projected: runner.applied(),
        projections: runner.health(),
        clock,
        upload_bytes_max: anquan_api::UPLOAD_BYTES_MAX_DEFAULT,
        graphiql: false,
        supervision: SupervisionEvents::new(),
        public_page: PublicPageSettings::new("http://127.0.0.1"),
        metrics: MetricsService::default(),
        anchor_key: None,
    }
}
