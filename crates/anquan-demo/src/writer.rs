//! The command path without re-reading streams: each generator task keeps its aggregate in
//! memory, decides every command with the domain's `decide`, and appends the events through
//! the `EventStore` trait with the stream version it decided on (optimistic concurrency), as
//! `execute` does after loading the stream.

use anquan_domain::rules::RuleSet;
use anquan_domain::{Actor, Aggregate, DecisionContext, Instant};
use anquan_event_store::execute::new_event;
use anquan_event_store::{AppendMetadata, AppendRequest, EventStore, StreamId, StreamState, StreamVersion};
use uuid::Uuid;

use crate::DemoError;

/// One stream's state as the generator knows it.
pub(crate) struct StreamWriter<A> {
    pub(crate) stream_id: StreamId,
    pub(crate) state: A,
    version: Option<StreamVersion>,
    /// Events appended so far.
    pub(crate) events: u64,
    /// Commands appended so far.
    pub(crate) appends: u64,
}

impl<A: Aggregate> StreamWriter<A> {
    pub(crate) fn new(key: Uuid) -> Self {
        StreamWriter {
            stream_id: StreamId::for_uuid(A::CATEGORY, key),
            state: A::default(),
            version: None,
            events: 0,
            appends: 0,
        }
    }

    /// Decides `command` at `now` as `actor` and appends the events; returns how many.
    pub(crate) async fn command(
        &mut self,
        store: &dyn EventStore,
        rules: &RuleSet,
        actor: &Actor,
        now: Instant,
        correlation_id: Uuid,
        command: &A::Command,
    ) -> Result<usize, DemoError> {
        let context = DecisionContext { actor, rules, now };
        let events = self
            .state
            .decide(command, &context)
            .map_err(|rejection| DemoError::Rejected {
                stream: self.stream_id.to_string(),
                command: A::command_name(command),
                reason: rejection.to_string(),
            })?;
        if events.is_empty() {
            return Ok(0);
        }
        let request = AppendRequest {
            stream_id: self.stream_id.clone(),
            expected: StreamState::from_actual(self.version),
            command: None,
            metadata: AppendMetadata {
                occurred_at: now,
                actor: actor.clone(),
                correlation_id,
                causation_id: None,
            },
            events: events.iter().map(new_event).collect(),
        };
        let outcome = store
            .append(request)
            .await
            .map_err(|error| DemoError::Append(error.to_string()))?;
        self.version = Some(outcome.last_version);
        for event in &events {
            self.state.apply(event);
        }
        self.events += events.len() as u64;
        self.appends += 1;
        Ok(events.len())
    }
}
