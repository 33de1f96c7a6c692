//! `MeteredEventStore`, a decorator that records every append of any backend as metrics
//! through the `metrics` facade: how many appends ended how, how many events they wrote, and
//! how long they took. The binary wraps each store it opens, so every backend is measured by
//! the same code and no backend records anything itself.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::watch;

use anquan_domain::CommandId;

use crate::envelope::{AppendOutcome, AppendRequest, RecordedCommand, RecordedEvent};
use crate::error::{AppendError, StoreError};
use crate::store::{BackendTraits, EventStore};
use crate::stream::{Position, StreamId, StreamVersion};

/// Counter of appends, labelled `backend` and `outcome` ([`append_outcome`]).
pub const APPENDS_TOTAL: &str = "anquan_event_store_appends_total";
/// Counter of events written by appends (not counting an idempotent retry's), labelled `backend`.
pub const APPENDED_EVENTS_TOTAL: &str = "anquan_event_store_appended_events_total";
/// Histogram of an append's duration in seconds, whatever its outcome, labelled `backend`.
pub const APPEND_DURATION_SECONDS: &str = "anquan_event_store_append_duration_seconds";

/// Every value the `outcome` label of [`APPENDS_TOTAL`] takes.
pub const APPEND_OUTCOMES: [&str; 6] = ["ok", "idempotent", "conflict", "command_id_reused", "invalid", "error"];

/// Wraps an event store and records its appends; reads pass through unmeasured.
pub struct MeteredEventStore {
    inner: Arc<dyn EventStore>,
}

impl MeteredEventStore {
    /// Wraps `inner`; its [`EventStore::backend_name`] is the `backend` label.
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self { inner }
    }
}

/// The `outcome` label of an append's result: `ok`; `idempotent` when a command id's retry was
/// answered with the first outcome and nothing was written; `conflict` for a stale expected
/// version; `command_id_reused`; `invalid` for a request refused before the store was asked;
/// `error` when the backend failed.
pub fn append_outcome(result: &Result<AppendOutcome, AppendError>) -> &'static str {
    match result {
        Ok(outcome) if outcome.duplicate => "idempotent",
        Ok(_) => "ok",
        Err(AppendError::Conflict { .. }) => "conflict",
        Err(AppendError::CommandIdReused { .. }) => "command_id_reused",
        Err(AppendError::Invalid { .. }) => "invalid",
        Err(AppendError::Store(_)) => "error",
    }
}

#[async_trait]
impl EventStore for MeteredEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let backend = self.inner.backend_name();
        let events = u64::try_from(request.events.len()).unwrap_or(u64::MAX);
        let started = Instant::now();
        let result = self.inner.append(request).await;
        metrics::histogram!(APPEND_DURATION_SECONDS, "backend" => backend).record(started.elapsed());
        metrics::counter!(APPENDS_TOTAL, "backend" => backend, "outcome" => append_outcome(&result)).increment(1);
        if let Ok(outcome) = &result
            && !outcome.duplicate
        {
            metrics::counter!(APPENDED_EVENTS_TOTAL, "backend" => backend).increment(events);
        }
        result
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, from, limit).await
    }

    async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn command_outcome(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        self.inner.command_outcome(stream_id, command_id).await
    }

    fn head(&self) -> watch::Receiver<Option<Position>> {
        self.inner.head()
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn traits(&self) -> BackendTraits {
        self.inner.traits()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use chrono::Utc;
    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
    use uuid::Uuid;

    use anquan_domain::{Actor, EnterpriseId, Role, UserId};

    use super::*;
    use crate::envelope::{AppendMetadata, CommandDigest, CommandKey, NewEvent};
    use crate::memory::InMemoryEventStore;
    use crate::stream::StreamState;

    /// Keeps every counter and the number of samples of every histogram, by name and labels.
    #[derive(Default)]
    struct Recorded {
        counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
        histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
    }

    #[derive(Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl metrics::HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().unwrap().push(value);
        }
    }

    fn series(key: &Key) -> String {
        let mut labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        labels.sort();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Recorded {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.counters.lock().unwrap().entry(series(key)).or_default().clone())
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.histograms.lock().unwrap().entry(series(key)).or_default().clone())
        }
    }

    impl Recorded {
        fn counter(&self, series: &str) -> u64 {
            self.counters
                .lock()
                .unwrap()
                .get(series)
                .map_or(0, |counter| counter.load(Ordering::Relaxed))
        }

        fn samples(&self, series: &str) -> Vec<f64> {
            self.histograms
                .lock()
                .unwrap()
                .get(series)
                .map_or_else(Vec::new, |samples| samples.0.lock().unwrap().clone())
        }
    }

    fn request(
        stream_id: &StreamId,
        expected: StreamState,
        events: usize,
        command: Option<CommandKey>,
    ) -> AppendRequest {
        AppendRequest {
            stream_id: stream_id.clone(),
            expected,
            command,
            metadata: AppendMetadata {
                occurred_at: Utc::now(),
                actor: Actor {
                    user_id: UserId::parse("metered-user").unwrap(),
                    role: Role::Enterprise {
                        enterprise_id: EnterpriseId::from_uuid(Uuid::now_v7()),
                    },
                },
                correlation_id: Uuid::now_v7(),
                causation_id: None,
            },
            events: (0..events)
                .map(|index| NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "MeteredHappened".to_owned(),
                    schema_version: 1,
                    data: format!(r#"{{"index":{index}}}"#),
                })
                .collect(),
        }
    }

    #[test]
    fn appends_are_counted_by_backend_and_outcome_and_timed() {
        let recorded = Recorded::default();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        metrics::with_local_recorder(&recorded, || {
            runtime.block_on(async {
                let store = MeteredEventStore::new(Arc::new(InMemoryEventStore::new()));
                assert_eq!(store.backend_name(), "memory");
                let stream = StreamId::parse("metered-1").unwrap();
                let key = CommandKey {
                    id: CommandId::from_uuid(Uuid::now_v7()),
                    digest: CommandDigest::of_bytes(b"metered"),
                };
                store
                    .append(request(&stream, StreamState::NoStream, 3, None))
                    .await
                    .unwrap();
                let conflict = store.append(request(&stream, StreamState::NoStream, 1, None)).await;
                assert!(matches!(conflict, Err(AppendError::Conflict { .. })));
                let first = store
                    .append(request(&stream, StreamState::StreamExists, 2, Some(key)))
                    .await
                    .unwrap();
                let retry = store
                    .append(request(&stream, StreamState::StreamExists, 2, Some(key)))
                    .await
                    .unwrap();
                assert!(!first.duplicate && retry.duplicate);
                let invalid = store.append(request(&stream, StreamState::Any, 0, None)).await;
                assert!(matches!(invalid, Err(AppendError::Invalid { .. })));
                // Reads pass through.
                assert_eq!(store.read_all(None, 100).await.unwrap().len(), 5);
            });
        });
        let appends = |outcome: &str| recorded.counter(&format!("{APPENDS_TOTAL}{{backend=memory,outcome={outcome}}}"));
        assert_eq!(appends("ok"), 2);
        assert_eq!(appends("conflict"), 1);
        assert_eq!(appends("idempotent"), 1);
        assert_eq!(appends("invalid"), 1);
        assert_eq!(appends("error"), 0);
        // The retry wrote nothing, and neither did the refused appends.
        assert_eq!(
            recorded.counter(&format!("{APPENDED_EVENTS_TOTAL}{{backend=memory}}")),
            5
        );
        let durations = recorded.samples(&format!("{APPEND_DURATION_SECONDS}{{backend=memory}}"));
        assert_eq!(durations.len(), 5);
        assert!(durations.iter().all(|seconds| (0.0..10.0).contains(seconds)));
    }

    #[test]
    fn every_outcome_label_is_listed() {
        let stream_id = StreamId::parse("metered-2").unwrap();
        let outcome = AppendOutcome {
            stream_id: stream_id.clone(),
            first_version: StreamVersion(0),
            last_version: StreamVersion(0),
            last_position: Position { commit: 1, prepare: 1 },
            duplicate: false,
        };
        let results: Vec<Result<AppendOutcome, AppendError>> = vec![
            Ok(outcome.clone()),
            Ok(AppendOutcome {
                duplicate: true,
                ..outcome
            }),
            Err(AppendError::Conflict {
                stream_id: stream_id.clone(),
                expected: StreamState::NoStream,
                actual: Some(StreamVersion(0)),
            }),
            Err(AppendError::CommandIdReused {
                stream_id: stream_id.clone(),
                command_id: CommandId::from_uuid(Uuid::now_v7()),
                recorded_stream: stream_id.clone(),
            }),
            Err(AppendError::Invalid {
                stream_id,
                reason: crate::error::InvalidAppend::NoEvents,
            }),
            Err(AppendError::Store(StoreError::InvalidLimit { limit: 0, max: 1 })),
        ];
        let labels: Vec<&str> = results.iter().map(append_outcome).collect();
        assert_eq!(labels, APPEND_OUTCOMES);
    }
}
