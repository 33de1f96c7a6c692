//! `execute`: load a stream, fold it, decide a command, append the events with the expected
//! version, and retry a bounded number of times when another writer got there first.

use tracing::instrument;
use uuid::Uuid;

pub use anquan_domain::{Aggregate, DecisionContext};
use sha2::{Digest, Sha256};

use anquan_domain::{Actor, CommandId, Event};

use crate::envelope::{AppendMetadata, AppendOutcome, AppendRequest, CommandDigest, CommandKey, NewEvent};
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
    /// The events the command appended: for a repeated command id, those of the first append,
    /// read back from the stream.
    pub events: Vec<Event>,
}

/// Why a command did not execute. Nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<R: std::error::Error + 'static> {
    /// The command breaks a domain rule (or the actor may not issue it): the user's concern.
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
    /// The command id was used before for another command: on another stream, with other input
    /// or by another caller.
    #[error("command id {command_id} was used before for another command")]
    IdempotencyKeyReused { command_id: CommandId, stream_id: StreamId },
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

/// The digest a command id is bound to: SHA-256 over a version tag, the aggregate's category,
/// the actor and the command, each as compact JSON (serde's derived form: fields in declared
/// order, sets and maps sorted), separated by a zero byte. The same key replayed by another
/// caller, or with other input, has another digest. The one place a digest is computed.
pub fn command_digest<A: Aggregate>(command: &A::Command, actor: &Actor) -> Result<CommandDigest, StoreError> {
    let mut hasher = Sha256::new();
    hasher.update(b"anquan-command/1\0");
    hasher.update(A::CATEGORY.as_bytes());
    hasher.update(b"\0");
    let canonical = |what: &'static str, error: serde_json::Error| {
        StoreError::backend(format!("serialise the {what} for its command digest"), error)
    };
    serde_json::to_writer(&mut DigestWriter(&mut hasher), actor).map_err(|error| canonical("actor", error))?;
    hasher.update(b"\0");
    serde_json::to_writer(&mut DigestWriter(&mut hasher), command).map_err(|error| canonical("command", error))?;
    Ok(CommandDigest(hasher.finalize().into()))
}

/// Feeds serde_json's output straight into a hasher.
struct DigestWriter<'a>(&'a mut Sha256);

impl std::io::Write for DigestWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Loads the command's stream, authorises the actor against it, answers a repeated command id
/// with the first outcome, or decides and appends with the expected version.
///
/// The order matters: the actor is authorised before a command id is looked up, so a retry
/// tells a caller who may not issue the command nothing, not even that the id is known; and a
/// command id is bound to its stream and digest, so it never answers for another command.
#[instrument(skip_all, fields(command.name = A::command_name(command), stream.id = tracing::field::Empty))]
pub async fn execute<A: Aggregate>(
    store: &dyn EventStore,
    command: &A::Command,
    context: &DecisionContext<'_>,
    envelope: &CommandEnvelope,
) -> Result<Executed, ExecuteError<A::Rejection>> {
    let stream_id = StreamId::for_uuid(A::CATEGORY, A::stream_key(command));
    tracing::Span::current().record("stream.id", stream_id.as_str());
    let key = command_key::<A>(command, context, envelope)?;
    for _ in 0..=CONFLICT_RETRIES_MAX {
        let (events, version) =
            match decide_now::<A>(store, &stream_id, key.as_ref(), command, context, envelope).await? {
                Decided::Repeated(recorded) => return first_answer(store, recorded).await,
                Decided::Fresh { events, version } => (events, version),
            };
        if events.is_empty() {
            return Ok(Executed { outcome: None, events });
        }
        let request = AppendRequest {
            stream_id: stream_id.clone(),
            expected: StreamState::from_actual(version),
            command: key,
            metadata: AppendMetadata {
                occurred_at: context.now,
                actor: context.actor.clone(),
                correlation_id: envelope.correlation_id,
                causation_id: envelope.causation_id,
            },
            events: events.iter().map(new_event).collect(),
        };
        match store.append(request).await {
            // Another call with the same key appended first (a concurrent retry).
            Ok(outcome) if outcome.duplicate => return first_answer(store, outcome).await,
            Ok(outcome) => {
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
            Err(AppendError::CommandIdReused { command_id, .. }) => {
                return Err(ExecuteError::IdempotencyKeyReused { command_id, stream_id });
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

/// What a command would do if it were executed now, found without appending anything.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// The command id answers for an earlier append of the same command: executing returns
    /// that first outcome and appends nothing.
    Repeated,
    /// The events a decision now appends (none when the command changes nothing).
    Fresh(Vec<Event>),
}

/// Loads, authorises, answers a known command id and decides exactly as [`execute`] does, but
/// appends nothing: what a caller does before work that must not happen for a refused command
/// (storing an upload). The stream may move before the real `execute`, which decides again;
/// a refusal here is the refusal `execute` would give now.
pub async fn prepare<A: Aggregate>(
    store: &dyn EventStore,
    command: &A::Command,
    context: &DecisionContext<'_>,
    envelope: &CommandEnvelope,
) -> Result<Prepared, ExecuteError<A::Rejection>> {
    let stream_id = StreamId::for_uuid(A::CATEGORY, A::stream_key(command));
    let key = command_key::<A>(command, context, envelope)?;
    Ok(
        match decide_now::<A>(store, &stream_id, key.as_ref(), command, context, envelope).await? {
            Decided::Repeated(_) => Prepared::Repeated,
            Decided::Fresh { events, .. } => Prepared::Fresh(events),
        },
    )
}

/// The key a command's id is recorded under: the id with the command's digest.
fn command_key<A: Aggregate>(
    command: &A::Command,
    context: &DecisionContext<'_>,
    envelope: &CommandEnvelope,
) -> Result<Option<CommandKey>, ExecuteError<A::Rejection>> {
    envelope
        .command_id
        .map(|id| {
            Ok(CommandKey {
                id,
                digest: command_digest::<A>(command, context.actor)?,
            })
        })
        .transpose()
}

/// One decision against the stream as it is now.
enum Decided {
    Repeated(AppendOutcome),
    Fresh {
        events: Vec<Event>,
        version: Option<StreamVersion>,
    },
}

/// Loads the stream, authorises the actor, answers a known command id, checks the expected
/// version and decides: the order [`execute`] promises, in one place.
async fn decide_now<A: Aggregate>(
    store: &dyn EventStore,
    stream_id: &StreamId,
    key: Option<&CommandKey>,
    command: &A::Command,
    context: &DecisionContext<'_>,
    envelope: &CommandEnvelope,
) -> Result<Decided, ExecuteError<A::Rejection>> {
    let (state, version) = load::<A>(store, stream_id).await?;
    state
        .authorise(command, context.actor)
        .map_err(ExecuteError::Rejected)?;
    if let Some(key) = key
        && let Some(recorded) = store.command_outcome(stream_id, key.id).await?
    {
        if !recorded.is_retry_of(stream_id, key) {
            return Err(ExecuteError::IdempotencyKeyReused {
                command_id: key.id,
                stream_id: stream_id.clone(),
            });
        }
        return Ok(Decided::Repeated(recorded.outcome));
    }
    if let Some(expected) = envelope.expected_version
        && version != Some(expected)
    {
        return Err(ExecuteError::WrongExpectedVersion {
            stream_id: stream_id.clone(),
            expected,
            actual: version,
        });
    }
    let events = state.decide(command, context).map_err(ExecuteError::Rejected)?;
    Ok(Decided::Fresh { events, version })
}

/// The answer to a repeated command id: the first append's outcome and its events, read back
/// by their versions.
async fn first_answer<R: std::error::Error + 'static>(
    store: &dyn EventStore,
    outcome: AppendOutcome,
) -> Result<Executed, ExecuteError<R>> {
    let stream_id = &outcome.stream_id;
    let count = outcome
        .last_version
        .0
        .checked_sub(outcome.first_version.0)
        .and_then(|span| usize::try_from(span).ok())
        .and_then(|span| span.checked_add(1))
        .filter(|&count| count <= READ_BATCH_MAX)
        .ok_or_else(|| StoreError::Corrupt {
            location: format!("command outcome of {stream_id}"),
            reason: format!(
                "versions {}..={} are not one append",
                outcome.first_version, outcome.last_version
            ),
        })?;
    let recorded = store.read_stream(stream_id, outcome.first_version, count).await?;
    let mut events = Vec::with_capacity(recorded.len());
    for recorded in recorded.iter().filter(|event| event.version <= outcome.last_version) {
        events.push(recorded.decode().map_err(|error| StoreError::Corrupt {
            location: format!("{stream_id}@{}", recorded.version),
            reason: error.to_string(),
        })?);
    }
    Ok(Executed {
        outcome: Some(AppendOutcome {
            duplicate: true,
            ..outcome
        }),
        events,
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
