//! The projector runtime and the read models: projections fold the global event log into plain
//! tables (catch-up from a checkpoint, batches committed with their checkpoint in one
//! transaction, rebuild from zero), and query functions read those tables for the API.
//!
//! This crate must not know a concrete database, HTTP or configuration: it speaks to the
//! [`EventStore`](anquan_event_store::EventStore) and
//! [`ReadModelStore`](anquan_event_store::ReadModelStore) traits only.

pub mod agency;
pub mod anchors;
pub mod audit;
pub mod catch_up;
pub mod compliance;
mod dump;
mod error;
mod fold;
mod health;
pub mod layout;
pub mod leadership;
pub mod metrics;
mod projection;
pub mod rule_sets;
mod runner;
pub mod tally;
mod values;

pub use agency::AgencyProjection;
pub use catch_up::{CatchUp, CatchUpMeter};
pub use compliance::ComplianceProjection;
pub use dump::dump_tables;
pub use error::{ProjectionError, QueryError, RunnerError};
pub use health::{
    CatchUpStatus, FailingEvent, Lag, Progress, ProjectionState, ProjectionStatus, ProjectionsHealth, Stall, Waited,
};
pub use projection::{BatchStatements, Projection};
pub use runner::{
    APPLY_ATTEMPTS_MAX, CATCH_UP_LOG_INTERVAL, PROJECTION_BATCH_MAX, PROJECTION_BATCH_MAX_UNLOCKED, ProjectionRunner,
    REBUILD_PROGRESS_EVERY, RebuildReport, SHARED_CHECKPOINTS_POLL, STALLED_RETRY_INTERVAL, wait_for_position,
};
pub use tally::LogTallyProjection;
