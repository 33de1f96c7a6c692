//! The storage boundary of anquan: the [`EventStore`] and [`ReadModelStore`] traits, the event
//! envelope with its per-stream SHA-256 hash chain, `execute` (load, decide, append with
//! optimistic concurrency), an in-memory store for tests, a decorator that records any store's
//! appends as metrics (`metered`), and the conformance suite every backend runs (feature
//! `conformance`).
//!
//! This crate must not know any concrete database, HTTP or configuration.

pub mod clock;
mod envelope;
mod error;
pub mod execute;
pub mod gathering;
pub mod hash_chain;
mod log_pages;
mod memory;
pub mod merkle;
pub mod metered;
pub mod personal;
pub mod read_model;
mod repeated;
pub mod runs;
mod store;
mod stream;
mod subscription;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use envelope::{
    AppendMetadata, AppendOutcome, AppendRequest, CommandDigest, CommandKey, EventMetadata, NewEvent, RecordedCommand,
    RecordedEvent,
};
pub use error::{AppendError, InvalidAppend, StoreError, error_chain};
pub use hash_chain::EventHash;
pub use log_pages::LogPages;
pub use memory::InMemoryEventStore;
pub use read_model::{
    CheckpointExpected, Dialect, LeaseClaim, LeaseHolder, LeaseTerm, ProjectionBatch, ReadModelError, ReadModelStore,
    Row, SqlValue, Statement,
};
pub use repeated::RepeatedColumns;
pub use runs::{Footprint, Run, Shaped, plan_runs};
pub use store::{
    APPEND_EVENTS_MAX, BackendTraits, EVENT_DATA_BYTES_MAX, EventStore, LogDistance, READ_BATCH_MAX,
    answer_recorded_command,
};
pub use stream::{Position, StreamId, StreamIdError, StreamState, StreamVersion};
pub use subscription::subscribe_all;
