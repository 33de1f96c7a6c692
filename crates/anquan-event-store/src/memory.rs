//! An in-memory event store: the reference implementation and the default in unit tests.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;

use anquan_domain::CommandId;

use crate::envelope::{AppendOutcome, AppendRequest, RecordedCommand, RecordedEvent};
use crate::error::{AppendError, StoreError};
use crate::hash_chain::seal;
use crate::store::{BackendTraits, EventStore, answer_recorded_command, check_limit};
use crate::stream::{Position, StreamId, StreamVersion};

/// Keeps every event in memory, behind one lock.
pub struct InMemoryEventStore {
    inner: Mutex<Inner>,
    head: watch::Sender<Option<Position>>,
}

#[derive(Default)]
struct Inner {
    log: Vec<RecordedEvent>,
    streams: HashMap<StreamId, Vec<usize>>,
    commands: HashMap<CommandId, RecordedCommand>,
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            head: watch::Sender::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the log half-written (every mutation
        // below is a push after all checks), so a poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        request.validate()?;
        let outcome = {
            let mut inner = self.lock();
            if let Some(key) = &request.command
                && let Some(first) = inner.commands.get(&key.id)
            {
                return answer_recorded_command(&request, key, first.clone());
            }
            let last = inner
                .streams
                .get(&request.stream_id)
                .and_then(|indexes| indexes.last())
                .map(|&index| {
                    let event = &inner.log[index];
                    (event.version, event.hash)
                });
            let actual = last.map(|(version, _)| version);
            if !request.expected.admits(actual) {
                return Err(AppendError::Conflict {
                    stream_id: request.stream_id.clone(),
                    expected: request.expected,
                    actual,
                });
            }
            let mut sealed = seal(&request, last, crate::clock::now());
            let first_version = sealed.first().map_or(StreamVersion::FIRST, |event| event.version);
            let mut last_version = first_version;
            let mut last_position = Position::from_sequence(0);
            for event in &mut sealed {
                let index = inner.log.len();
                event.position = Position::from_sequence(index as u64 + 1);
                last_version = event.version;
                last_position = event.position;
                inner.streams.entry(request.stream_id.clone()).or_default().push(index);
                inner.log.push(event.clone());
            }
            let outcome = AppendOutcome {
                stream_id: request.stream_id.clone(),
                first_version,
                last_version,
                last_position,
                duplicate: false,
            };
            if let Some(key) = request.command {
                inner.commands.insert(
                    key.id,
                    RecordedCommand {
                        outcome: AppendOutcome {
                            duplicate: true,
                            ..outcome.clone()
                        },
                        digest: Some(key.digest),
                    },
                );
            }
            outcome
        };
        self.head.send_replace(Some(outcome.last_position));
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let inner = self.lock();
        let Some(indexes) = inner.streams.get(stream_id) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from.0).unwrap_or(usize::MAX).min(indexes.len());
        Ok(indexes[start..]
            .iter()
            .take(limit)
            .map(|&index| inner.log[index].clone())
            .collect())
    }

    async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let inner = self.lock();
        // Positions are 1-based indexes into the log.
        let start = after.map_or(0, |position| usize::try_from(position.sequence()).unwrap_or(usize::MAX));
        let start = start.min(inner.log.len());
        Ok(inner.log[start..].iter().take(limit).cloned().collect())
    }

    async fn command_outcome(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        Ok(self
            .lock()
            .commands
            .get(&command_id)
            .filter(|recorded| recorded.outcome.stream_id == *stream_id)
            .cloned())
    }

    fn head(&self) -> watch::Receiver<Option<Position>> {
        self.head.subscribe()
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }

    /// Positions are 1-based indexes into one log, and command ids are kept in one map.
    fn traits(&self) -> BackendTraits {
        BackendTraits {
            dense_positions: true,
            store_wide_command_ids: true,
        }
    }
}
