//! The event store trait every backend implements.

use async_trait::async_trait;
use tokio::sync::watch;

use anquan_domain::CommandId;

use crate::envelope::{AppendOutcome, AppendRequest, CommandKey, RecordedCommand, RecordedEvent};
use crate::error::{AppendError, InvalidAppend, StoreError};
use crate::stream::{Position, StreamId, StreamVersion};

/// Most events one append may carry.
pub const APPEND_EVENTS_MAX: usize = 1_000;
/// Largest event data, in bytes.
pub const EVENT_DATA_BYTES_MAX: usize = 1024 * 1024;
/// Most events one read returns.
pub const READ_BATCH_MAX: usize = 10_000;

/// What a backend promises beyond the [`EventStore`] trait. Code outside the backends asks
/// before relying on either, and the conformance suite holds every backend to what it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendTraits {
    /// Positions are one dense sequence: 1, 2, 3, … with `commit == prepare`, and every
    /// position up to the head holds a committed event. The commit distance between two
    /// positions then counts the events between them, and a missing position is a lost event.
    /// Without it (KurrentDB: positions are offsets in the server's log) a distance is in
    /// positions, not events, and a skipped position means nothing.
    pub dense_positions: bool,
    /// A command id is unique across the store: an append whose id was recorded on another
    /// stream is refused with `AppendError::CommandIdReused`. Without it a command id's scope is
    /// its target stream, and the same id on another stream is another command.
    pub store_wide_command_ids: bool,
}

/// How far one place in the log is behind another, in the unit the backend can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDistance {
    /// Events between the two places (a backend with dense positions).
    Events(u64),
    /// The distance between the two commit positions, which is not a count of events (on
    /// KurrentDB, bytes of its log).
    Positions(u64),
}

impl LogDistance {
    /// The distance in events, where the backend can count them.
    pub fn events(self) -> Option<u64> {
        match self {
            LogDistance::Events(events) => Some(events),
            LogDistance::Positions(_) => None,
        }
    }

    /// The distance between the commit positions, whatever the unit (on a backend with dense
    /// positions, the same number as [`LogDistance::events`]).
    pub fn positions(self) -> u64 {
        match self {
            LogDistance::Events(distance) | LogDistance::Positions(distance) => distance,
        }
    }
}

impl BackendTraits {
    /// How far a reader that has seen up to `seen` (none: nothing yet) is behind `head` (none:
    /// an empty log). Positions start above zero on every backend, so having seen nothing is
    /// a distance of the head's commit position.
    pub fn distance(self, seen: Option<Position>, head: Option<Position>) -> LogDistance {
        let seen = seen.map_or(0, |position| position.commit);
        let distance = head.map_or(0, |head| head.commit.saturating_sub(seen));
        if self.dense_positions {
            LogDistance::Events(distance)
        } else {
            LogDistance::Positions(distance)
        }
    }
}

/// An append-only log of events in streams, with a global order.
///
/// Every backend passes the conformance suite (`conformance` feature): appends are atomic per
/// request, the expected stream state is the only concurrency control, a command id makes an
/// append to its stream idempotent, and `read_all` never skips an event that becomes visible
/// later. What a backend promises beyond that is in [`EventStore::traits`].
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to one stream if it is in the expected state.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// Reads up to `limit` events of a stream from version `from`, in version order.
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `limit` events of the global log after `after` (from the start if none), in
    /// position order. A backend returns only a prefix of the log that can no longer change:
    /// no event may later appear before the last one returned.
    async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Returns what the store recorded of the append to `stream_id` that carried this command
    /// id, if there was one: its outcome (marked duplicate) and the command's digest. An id
    /// recorded on another stream is not found here, whatever the backend's
    /// [`BackendTraits::store_wide_command_ids`].
    async fn command_outcome(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError>;

    /// Returns a receiver that changes whenever new events may be readable through `read_all`.
    fn head(&self) -> watch::Receiver<Option<Position>>;

    /// Returns the backend's name for logs and metrics (`memory`, `sqlite`, `postgres`).
    fn backend_name(&self) -> &'static str;

    /// What the backend promises beyond the trait; none by default.
    fn traits(&self) -> BackendTraits {
        BackendTraits::default()
    }
}

impl AppendRequest {
    /// Checks what can be checked without the store: event count, types, sizes, JSON data and
    /// unique event ids. Backends call it before anything else.
    pub fn validate(&self) -> Result<(), AppendError> {
        let invalid = |reason| AppendError::Invalid {
            stream_id: self.stream_id.clone(),
            reason,
        };
        if self.events.is_empty() {
            return Err(invalid(InvalidAppend::NoEvents));
        }
        if self.events.len() > APPEND_EVENTS_MAX {
            return Err(invalid(InvalidAppend::TooManyEvents {
                count: self.events.len(),
                max: APPEND_EVENTS_MAX,
            }));
        }
        for (index, event) in self.events.iter().enumerate() {
            let type_ok = !event.event_type.is_empty()
                && event.event_type.len() <= 128
                && event
                    .event_type
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !type_ok {
                return Err(invalid(InvalidAppend::EventType(event.event_type.clone())));
            }
            if event.data.len() > EVENT_DATA_BYTES_MAX {
                return Err(invalid(InvalidAppend::DataTooLarge {
                    index,
                    size: event.data.len(),
                    max: EVENT_DATA_BYTES_MAX,
                }));
            }
            if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&event.data) {
                return Err(invalid(InvalidAppend::DataNotJson {
                    index,
                    reason: error.to_string(),
                }));
            }
            if self.events[..index]
                .iter()
                .any(|earlier| earlier.event_id == event.event_id)
            {
                return Err(invalid(InvalidAppend::DuplicateEventId(event.event_id)));
            }
        }
        Ok(())
    }
}

/// Answers an append whose command id the store has recorded: the first outcome when the
/// append is a retry of that command, else `CommandIdReused`. Every backend decides with it.
pub fn answer_recorded_command(
    request: &AppendRequest,
    key: &CommandKey,
    recorded: RecordedCommand,
) -> Result<AppendOutcome, AppendError> {
    if recorded.is_retry_of(&request.stream_id, key) {
        Ok(AppendOutcome {
            duplicate: true,
            ..recorded.outcome
        })
    } else {
        Err(AppendError::CommandIdReused {
            stream_id: request.stream_id.clone(),
            command_id: key.id,
            recorded_stream: recorded.outcome.stream_id,
        })
    }
}

/// Checks a read limit.
pub(crate) fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > READ_BATCH_MAX {
        return Err(StoreError::InvalidLimit {
            limit,
            max: READ_BATCH_MAX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distance_counts_events_only_where_positions_are_dense() {
        let at = |commit, prepare| Some(Position { commit, prepare });
        let dense = BackendTraits {
            dense_positions: true,
            store_wide_command_ids: true,
        };
        assert_eq!(dense.distance(at(40, 40), at(42, 42)), LogDistance::Events(2));
        assert_eq!(dense.distance(None, at(42, 42)), LogDistance::Events(42));
        assert_eq!(dense.distance(at(42, 42), None), LogDistance::Events(0));
        let offsets = BackendTraits::default();
        let behind = offsets.distance(at(1_000, 900), at(5_096, 5_000));
        assert_eq!(behind, LogDistance::Positions(4_096));
        assert_eq!((behind.events(), behind.positions()), (None, 4_096));
        // A reader ahead of a stale head is not behind.
        assert_eq!(offsets.distance(at(9, 9), at(5, 5)), LogDistance::Positions(0));
    }
}
