//! `execute`: load a stream, fold it, decide a command, append the events with the expected
//! version, and retry a bounded number of times when another writer got there first.

use tracing::instrument;
use uuid::Uuid;

pub use anquan_domain::{Aggregate, DecisionContext};
use anquan_domain::{CommandId, Event};

use crate::envelope::{AppendMetadata, AppendOutcome, AppendRequest, NewEvent};
use crate::error::{AppendError, InvalidAppend, StoreError};
use crate::store::{EventStore, READ_BATCH_MAX};
use crate::stream::{StreamId, StreamState, StreamVersion};

/// How often a command is decided again after losing a race for its stream.
pub const CONFLICT_RETRIES_MAX: usize = 3;

/// What a command did.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The append's outcome; `None` when the decision produced no events.
    pub outcome: Option<AppendOutcome>,
    /// The events appended by this call (empty for a duplicate command id).
    pub events: Vec<Event>,
}

/// Why a command did not execute. Nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<R: std::error::Error + 'static> {
    /// The command breaks a domain rule: the user's concern.
    #[error(transparent)]
    Rejected(R),
    /// Other writers kept changing the stream: try again later.
    #[error("stream {stream_id} kept changing; gave up after {attempts} attempts")]
    Conflict { stream_id: StreamId, attempts: usize },
    /// The caller named the stream version it decided on, and the stream has moved on.
    #[error("stream {stream_id} is at {actual:?}, not at the expected version {expected}")]
    WrongExpectedVersion {
        stream_id: StreamId,
        expected: StreamVersion,
        actual: Option<StreamVersion>,
    },
    /// The events could not be stored as asked.
    #[error("invalid append: {0}")]
    Invalid(InvalidAppend),
    /// The store failed: the operator's concern.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The who, why and when of a command.
#[derive(Debug, Clone)]
pub struct CommandEnvelope {
    pub command_id: Option<CommandId>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// The stream version the client decided on; when set, a stream that has moved on is an
    /// error instead of a reason to decide again.
    pub expected_version: Option<StreamVersion>,
}

/// Loads the command's stream, decides, and appends with the expected version.
#[instrument(skip_all, fields(command.name = A::command_name(command), stream.id = tracing::field::Empty))]
pub async fn execute<A: Aggregate>(
    store: &dyn EventStore,
    command: &A::Command,
    context: &DecisionContext<'_>,
    envelope: &CommandEnvelope,
) -> Result<Executed, ExecuteError<A::Rejection>> {
    let stream_id = StreamId::for_uuid(A::CATEGORY, A::stream_key(command));
    tracing::Span::current().record("stream.id", stream_id.as_str());
    if let Some(command_id) = envelope.command_id
        && let Some(outcome) = store.command_outcome(command_id).await?
    {
        return Ok(Executed {
            outcome: Some(outcome),
            events: Vec::new(),
        });
    }
    for _ in 0..=CONFLICT_RETRIES_MAX {
        let (state, version) = load::<A>(store, &stream_id).await?;
        if let Some(expected) = envelope.expected_version
            && version != Some(expected)
        {
            return Err(ExecuteError::WrongExpectedVersion {
                stream_id,
                expected,
                actual: version,
            });
        }
        let events = state.decide(command, context).map_err(ExecuteError::Rejected)?;
        if events.is_empty() {
            return Ok(Executed { outcome: None, events });
        }
        let request = AppendRequest {
            stream_id: stream_id.clone(),
            expected: StreamState::from_actual(version),
            command_id: envelope.command_id,
            metadata: AppendMetadata {
                occurred_at: context.now,
                actor: context.actor.clone(),
                correlation_id: envelope.correlation_id,
                causation_id: envelope.causation_id,
            },
            events: events.iter().map(new_event).collect(),
        };
        match store.append(request).await {
            Ok(outcome) => {
                let events = if outcome.duplicate { Vec::new() } else { events };
                return Ok(Executed {
                    outcome: Some(outcome),
                    events,
                });
            }
            Err(AppendError::Conflict { actual, .. }) => {
                if let Some(expected) = envelope.expected_version {
                    return Err(ExecuteError::WrongExpectedVersion {
                        stream_id,
                        expected,
                        actual,
                    });
                }
            }
            Err(AppendError::Invalid { reason, .. }) => return Err(ExecuteError::Invalid(reason)),
            Err(AppendError::Store(error)) => return Err(ExecuteError::Store(error)),
        }
    }
    Err(ExecuteError::Conflict {
        stream_id,
        attempts: CONFLICT_RETRIES_MAX + 1,
    })
}

/// Folds a whole stream into its aggregate state and returns its last version.
pub async fn load<A: Aggregate>(
    store: &dyn EventStore,
    stream_id: &StreamId,
) -> Result<(A, Option<StreamVersion>), StoreError> {
    let mut state = A::default();
    let mut version = None;
    let mut from = StreamVersion::FIRST;
    loop {
        let page = store.read_stream(stream_id, from, READ_BATCH_MAX).await?;
        let full = page.len() == READ_BATCH_MAX;
        for recorded in &page {
            let event = recorded.decode().map_err(|error| StoreError::Corrupt {
                location: format!("{stream_id}@{}", recorded.version),
                reason: error.to_string(),
            })?;
            state.apply(&event);
            version = Some(recorded.version);
            from = recorded.version.next();
        }
        if !full {
            return Ok((state, version));
        }
    }
}

/// Wraps a domain event for appending, with a fresh UUID v7.
pub fn new_event(event: &Event) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        data: event.encode_data(),
    }
}
