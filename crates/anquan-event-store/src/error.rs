//! Errors of the storage boundary, keeping the caller's, the retrier's and the operator's
//! concerns apart.

use anquan_domain::CommandId;

use crate::stream::{StreamId, StreamState, StreamVersion};

/// A storage failure: the operator's concern.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store backend failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("stored event at {location} is corrupt: {reason}")]
    Corrupt { location: String, reason: String },
    #[error("read limit {limit} is outside 1..={max}")]
    InvalidLimit { limit: usize, max: usize },
}

impl StoreError {
    /// Wraps a backend error with what was being done.
    pub fn backend(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Why an append request itself is unacceptable (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAppend {
    #[error("an append needs at least one event")]
    NoEvents,
    #[error("an append may hold at most {max} events, not {count}")]
    TooManyEvents { count: usize, max: usize },
    #[error("event type {0:?} must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', '-'")]
    EventType(String),
    #[error("event {index} has {size} bytes of data, more than {max}")]
    DataTooLarge { index: usize, size: usize, max: usize },
    #[error("event {index} data is not valid JSON: {reason}")]
    DataNotJson { index: usize, reason: String },
    #[error("event id {0} appears twice in one append")]
    DuplicateEventId(uuid::Uuid),
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream is not in the expected state: reload and decide again.
    #[error("stream {stream_id} expected {expected} but is at {}", actual.map_or_else(|| "no stream".to_owned(), |v| format!("version {v}")))]
    Conflict {
        stream_id: StreamId,
        expected: StreamState,
        actual: Option<StreamVersion>,
    },
    /// The command id was used before for another command: on another stream, or with
    /// another digest (other input or another caller). Nothing was written.
    #[error("command id {command_id} was used before for another command (on {recorded_stream})")]
    CommandIdReused {
        stream_id: StreamId,
        command_id: CommandId,
        recorded_stream: StreamId,
    },
    #[error("invalid append to {stream_id}: {reason}")]
    Invalid { stream_id: StreamId, reason: InvalidAppend },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An error with its causes on one line (`outer: cause: root cause`), for logs and health
/// reports: the one place an error chain is spelt out.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}
