//! Errors of projections, the runner and the query functions.

use anquan_event_store::{Position, ReadModelError, StoreError, StreamId};

/// Why a projection could not turn an event into statements.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("stream {stream_id} is not an enterprise stream")]
    NotAnEnterpriseStream { stream_id: StreamId },
    #[error("stream {stream_id} is not an agency stream")]
    NotAnAgencyStream { stream_id: StreamId },
    #[error("{what} could not be encoded as json")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Why a projection stopped. Store failures are retried first; these are what remains.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("projection {projection} cannot decode event {event_type} at position {position}")]
    Undecodable {
        projection: &'static str,
        position: Position,
        event_type: String,
        #[source]
        source: anquan_domain::EventDecodeError,
    },
    #[error("projection {projection} cannot apply the event at position {position}")]
    Apply {
        projection: &'static str,
        position: Position,
        #[source]
        source: ProjectionError,
    },
    #[error("read-model store failed for projection {projection} ({attempts} attempts)")]
    ReadModel {
        projection: &'static str,
        attempts: usize,
        #[source]
        source: ReadModelError,
    },
    #[error("event store kept failing for projection {projection} ({attempts} attempts)")]
    EventStore {
        projection: &'static str,
        attempts: usize,
        #[source]
        source: StoreError,
    },
    /// The runner's leadership term ended: another node (or a rebuild) leads the group now.
    #[error("{lease} ended: another holder leads the projection group")]
    Fenced { lease: anquan_event_store::LeaseTerm },
    #[error("projection {0} is not registered with this runner")]
    UnknownProjection(String),
    #[error("folding a page of the log failed")]
    FoldTask {
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Why a read-model query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error("row of table {table} is malformed: {reason}")]
    Malformed { table: &'static str, reason: String },
    #[error("page size {first} is above the maximum {max}")]
    PageTooLarge { first: usize, max: usize },
    #[error("cursor {cursor:?} is not valid")]
    InvalidCursor { cursor: String },
}
