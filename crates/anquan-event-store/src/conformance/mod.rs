//! The conformance suite every [`EventStore`] backend runs (STYLE.md §8), written once.
//!
//! Each case is a generic async function over an `Arc<dyn EventStore>` that returns an error
//! instead of panicking, because this module is compiled outside `cfg(test)`. A backend's test
//! file expands every case into one `#[tokio::test]` with [`event_store_conformance!`]:
//!
//! ```text
//! async fn make_store() -> anquan_event_store::conformance::Fixture {
//!     anquan_event_store::conformance::Fixture::new(std::sync::Arc::new(InMemoryEventStore::new()))
//! }
//! anquan_event_store::event_store_conformance!(make_store());
//! ```
//!
//! Every case writes only to streams named with a fresh UUID and reads the global log only after
//! the head it saw when it started, so cases may share one database and run in parallel.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use uuid::Uuid;

use anquan_domain::{Actor, CommandId, EnterpriseId, Role, UserId};

use crate::envelope::{
    AppendMetadata, AppendOutcome, AppendRequest, CommandDigest, CommandKey, NewEvent, RecordedCommand, RecordedEvent,
};
use crate::error::{AppendError, InvalidAppend, StoreError};
use crate::hash_chain::{canonical_time, verify_stream};
use crate::store::{APPEND_EVENTS_MAX, EVENT_DATA_BYTES_MAX, EventStore, READ_BATCH_MAX};
use crate::stream::{Position, StreamId, StreamState, StreamVersion};
use crate::subscription::subscribe_all;

pub mod read_model_guards;

/// What a case returns: `Err` names the broken expectation.
pub type CaseResult = Result<(), BoxError>;

/// The error of a failed case or helper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A refused append: what is wrong, the events, and the refusal reason expected.
type BadCase = (&'static str, Vec<NewEvent>, fn(&InvalidAppend) -> bool);

/// Appends racing for one stream version in the concurrency case.
pub const CONCURRENT_APPENDERS: usize = 16;
/// Events in the large-stream case.
pub const LARGE_STREAM_EVENTS: usize = 5_000;
/// How long a case waits for a subscription to deliver before failing.
const SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(20);

/// A store under test, plus whatever must live as long as it (a temporary directory, a schema).
pub struct Fixture {
    store: Arc<dyn EventStore>,
    // Dropped after `store` (fields drop in declaration order).
    _guard: Option<Box<dyn Any + Send>>,
}

impl Fixture {
    /// A store that needs nothing else kept alive.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store, _guard: None }
    }

    /// A store with a guard (e.g. a `tempfile::TempDir`) dropped after it.
    pub fn with_guard(store: Arc<dyn EventStore>, guard: impl Any + Send) -> Self {
        Self {
            store,
            _guard: Some(Box::new(guard)),
        }
    }

    /// Returns the store.
    pub fn store(&self) -> Arc<dyn EventStore> {
        Arc::clone(&self.store)
    }
}

/// Fails the case with a message unless the condition holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+).into());
        }
    };
}

/// Fails the case unless both sides are equal, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($message:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!("{}: {:?} != {:?}", format!($($message)+), left, right).into());
        }
    }};
}

/// Expands every conformance case into a `#[tokio::test]` in the calling test file.
///
/// `$factory` is an expression evaluated once per case, whose value is a future of a
/// [`Fixture`]. The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
///
/// A backend that needs an external server uses the `optional:` form: its factory's future
/// yields an `Option<Fixture>`, and `None` (after the factory printed why) makes the case print
/// that it is skipped and return. A factory must never substitute another store, and it fails
/// (panics) instead of returning `None` when its backend is required.
///
/// ```text
/// async fn make_store() -> Option<Fixture> { /* None: server not configured */ }
/// anquan_event_store::event_store_conformance!(optional: make_store());
/// ```
#[macro_export]
macro_rules! event_store_conformance {
    (optional: $factory:expr) => {
        $crate::event_store_conformance!(@list optional $factory);
    };
    (@list $mode:ident $factory:expr) => {
        $crate::event_store_conformance!(@cases $mode $factory;
            appending_with_no_stream_creates_the_stream,
            no_stream_on_an_existing_stream_conflicts,
            a_stale_expected_version_conflicts_with_the_actual_version,
            stream_exists_requires_an_existing_stream,
            any_appends_whatever_the_stream_state,
            read_stream_returns_versions_in_order_from_a_version_within_the_limit,
            read_all_positions_strictly_increase_and_after_is_exclusive,
            positions_are_dense_where_the_backend_says_so,
            a_repeated_command_id_returns_the_first_outcome_and_appends_nothing,
            command_outcome_finds_an_append_by_its_command_id,
            a_command_id_used_on_another_stream_is_refused_or_scoped_to_its_stream,
            a_command_id_with_another_digest_is_refused_and_appends_nothing,
            exactly_one_of_concurrent_appends_with_the_same_expected_version_wins,
            concurrent_appends_to_different_streams_all_succeed,
            a_subscription_catches_up_then_follows_live_appends,
            a_large_stream_reads_back_in_pages,
            bad_input_appends_nothing,
            read_limits_outside_the_range_are_rejected,
            the_hash_chain_of_a_read_back_stream_verifies,
            the_envelope_round_trips,
        );
    };
    (@cases always $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture = $factory.await;
                if let Err(error) = $crate::conformance::$case(fixture.store()).await {
                    panic!("conformance case {} failed: {error}", stringify!($case));
                }
            }
        )+
    };
    (@cases optional $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: ::core::option::Option<$crate::conformance::Fixture> = $factory.await;
                let ::core::option::Option::Some(fixture) = fixture else {
                    eprintln!(
                        "skipping conformance case {}: its backend is not available (see above); nothing was tested",
                        stringify!($case)
                    );
                    return;
                };
                if let Err(error) = $crate::conformance::$case(fixture.store()).await {
                    panic!("conformance case {} failed: {error}", stringify!($case));
                }
            }
        )+
    };
    ($factory:expr) => {
        $crate::event_store_conformance!(@list always $factory);
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn unique_stream(category: &str) -> Result<StreamId, BoxError> {
    Ok(StreamId::parse(&format!("conformance{category}-{}", Uuid::new_v4()))?)
}

fn test_actor() -> Result<Actor, BoxError> {
    Ok(Actor {
        user_id: UserId::parse("conformance-user")?,
        role: Role::Enterprise {
            enterprise_id: EnterpriseId::from_uuid(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)),
        },
    })
}

fn metadata() -> Result<AppendMetadata, BoxError> {
    Ok(AppendMetadata {
        occurred_at: Utc::now(),
        actor: test_actor()?,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
    })
}

/// A small event whose data records its index.
fn event(index: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "ConformanceHappened".to_owned(),
        schema_version: 1,
        data: format!(r#"{{"index":{index},"note":"conformance"}}"#),
    }
}

fn request(stream_id: &StreamId, expected: StreamState, events: Vec<NewEvent>) -> Result<AppendRequest, BoxError> {
    Ok(AppendRequest {
        stream_id: stream_id.clone(),
        expected,
        command: None,
        metadata: metadata()?,
        events,
    })
}

/// The key of the command "conformance": one command, whatever its id.
fn key(id: CommandId) -> CommandKey {
    keyed(id, "conformance")
}

/// The key of a command named `command`: another name is another command (another digest).
fn keyed(id: CommandId, command: &str) -> CommandKey {
    CommandKey {
        id,
        digest: CommandDigest::of_bytes(command.as_bytes()),
    }
}

fn events(range: std::ops::Range<usize>) -> Vec<NewEvent> {
    range.map(event).collect()
}

/// Reads a whole stream in pages of `page` events.
async fn read_whole_stream(
    store: &dyn EventStore,
    stream_id: &StreamId,
    page: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut all = Vec::new();
    loop {
        let from = StreamVersion(all.len() as u64);
        let batch = store.read_stream(stream_id, from, page).await?;
        let done = batch.len() < page;
        all.extend(batch);
        if done {
            return Ok(all);
        }
    }
}

/// The head a case sees when it starts: everything it appends comes after it.
fn current_head(store: &dyn EventStore) -> Option<Position> {
    *store.head().borrow()
}

/// Reads the global log after `after` up to and including `until`, keeping only the events of
/// `streams`, and checks positions strictly increase across every page.
async fn read_all_until(
    store: &dyn EventStore,
    after: Option<Position>,
    until: Position,
    streams: &HashSet<StreamId>,
    page: usize,
) -> Result<Vec<RecordedEvent>, BoxError> {
    let mut cursor = after;
    let mut ours = Vec::new();
    loop {
        let batch = store.read_all(cursor, page).await?;
        ensure!(
            !batch.is_empty(),
            "read_all after {cursor:?} returned nothing before reaching position {until}"
        );
        ensure!(
            batch.len() <= page,
            "read_all returned {} events for limit {page}",
            batch.len()
        );
        for event in batch {
            if let Some(previous) = cursor {
                ensure!(
                    event.position > previous,
                    "read_all position {} does not follow {previous}",
                    event.position
                );
            }
            cursor = Some(event.position);
            let reached = event.position >= until;
            if streams.contains(&event.stream_id) {
                ours.push(event);
            }
            if reached {
                return Ok(ours);
            }
        }
    }
}

fn expect_conflict(
    result: Result<AppendOutcome, AppendError>,
    expected: StreamState,
    actual: Option<StreamVersion>,
) -> CaseResult {
    match result {
        Err(AppendError::Conflict {
            expected: got_expected,
            actual: got_actual,
            ..
        }) => {
            ensure_eq!(got_expected, expected, "conflict reports the expectation");
            ensure_eq!(got_actual, actual, "conflict reports the actual version");
            Ok(())
        }
        other => Err(format!("expected a conflict (expected {expected}, actual {actual:?}), got {other:?}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Cases

/// `NoStream` on a stream that does not exist appends from version 0.
pub async fn appending_with_no_stream_creates_the_stream(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("new")?;
    ensure!(
        store.read_stream(&stream, StreamVersion::FIRST, 10).await?.is_empty(),
        "a fresh stream reads empty"
    );
    let outcome = store
        .append(request(&stream, StreamState::NoStream, events(0..3))?)
        .await?;
    ensure_eq!(outcome.stream_id, stream, "outcome stream");
    ensure_eq!(outcome.first_version, StreamVersion(0), "first version");
    ensure_eq!(outcome.last_version, StreamVersion(2), "last version");
    ensure!(!outcome.duplicate, "a first append is not a duplicate");
    let read = store.read_stream(&stream, StreamVersion::FIRST, 10).await?;
    ensure_eq!(read.len(), 3, "events read back");
    ensure_eq!(
        read.last().map(|event| event.position),
        Some(outcome.last_position),
        "outcome position is the last event's"
    );
    ensure!(
        current_head(store.as_ref()).is_some_and(|head| head >= outcome.last_position),
        "head covers the acknowledged append"
    );
    Ok(())
}

/// `NoStream` on a stream with events is a conflict that writes nothing.
pub async fn no_stream_on_an_existing_stream_conflicts(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("exists")?;
    store
        .append(request(&stream, StreamState::NoStream, events(0..2))?)
        .await?;
    let result = store
        .append(request(&stream, StreamState::NoStream, events(2..3))?)
        .await;
    expect_conflict(result, StreamState::NoStream, Some(StreamVersion(1)))?;
    ensure_eq!(
        store.read_stream(&stream, StreamVersion::FIRST, 10).await?.len(),
        2,
        "a conflict appends nothing"
    );
    Ok(())
}

/// `At(v)` with a stale `v` conflicts and reports the stream's real last version.
pub async fn a_stale_expected_version_conflicts_with_the_actual_version(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("stale")?;
    let first = store
        .append(request(&stream, StreamState::NoStream, events(0..1))?)
        .await?;
    let second = store
        .append(request(&stream, StreamState::At(first.last_version), events(1..4))?)
        .await?;
    ensure_eq!(
        second.first_version,
        StreamVersion(1),
        "second append starts after the first"
    );
    ensure_eq!(second.last_version, StreamVersion(3), "second append's last version");
    let stale = StreamState::At(StreamVersion(0));
    expect_conflict(
        store.append(request(&stream, stale, events(4..5))?).await,
        stale,
        Some(StreamVersion(3)),
    )?;
    let ahead = StreamState::At(StreamVersion(9));
    expect_conflict(
        store.append(request(&stream, ahead, events(4..5))?).await,
        ahead,
        Some(StreamVersion(3)),
    )?;
    let missing = unique_stream("stale")?;
    let at_zero = StreamState::At(StreamVersion(0));
    expect_conflict(
        store.append(request(&missing, at_zero, events(0..1))?).await,
        at_zero,
        None,
    )?;
    ensure_eq!(
        store.read_stream(&stream, StreamVersion::FIRST, 10).await?.len(),
        4,
        "conflicts append nothing"
    );
    ensure!(
        store.read_stream(&missing, StreamVersion::FIRST, 10).await?.is_empty(),
        "a conflicting append creates no stream"
    );
    Ok(())
}

/// `StreamExists` conflicts on a missing stream and appends to an existing one.
pub async fn stream_exists_requires_an_existing_stream(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("streamexists")?;
    expect_conflict(
        store
            .append(request(&stream, StreamState::StreamExists, events(0..1))?)
            .await,
        StreamState::StreamExists,
        None,
    )?;
    store
        .append(request(&stream, StreamState::NoStream, events(0..1))?)
        .await?;
    let outcome = store
        .append(request(&stream, StreamState::StreamExists, events(1..3))?)
        .await?;
    ensure_eq!(outcome.first_version, StreamVersion(1), "first version");
    ensure_eq!(outcome.last_version, StreamVersion(2), "last version");
    Ok(())
}

/// `Any` appends to a missing stream and to an existing one.
pub async fn any_appends_whatever_the_stream_state(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("any")?;
    let first = store.append(request(&stream, StreamState::Any, events(0..2))?).await?;
    ensure_eq!(first.first_version, StreamVersion(0), "first append's first version");
    let second = store.append(request(&stream, StreamState::Any, events(2..3))?).await?;
    ensure_eq!(second.first_version, StreamVersion(2), "second append's first version");
    ensure!(
        second.last_position > first.last_position,
        "a later append has a later position"
    );
    Ok(())
}

/// `read_stream` starts at `from`, returns versions in order, and stops at `limit`.
pub async fn read_stream_returns_versions_in_order_from_a_version_within_the_limit(
    store: Arc<dyn EventStore>,
) -> CaseResult {
    let stream = unique_stream("readstream")?;
    let other = unique_stream("readstream")?;
    store
        .append(request(&stream, StreamState::NoStream, events(0..4))?)
        .await?;
    store
        .append(request(&other, StreamState::NoStream, events(0..3))?)
        .await?;
    store
        .append(request(&stream, StreamState::At(StreamVersion(3)), events(4..10))?)
        .await?;

    let all = store.read_stream(&stream, StreamVersion::FIRST, 100).await?;
    let versions: Vec<u64> = all.iter().map(|event| event.version.0).collect();
    ensure_eq!(versions, (0..10).collect::<Vec<u64>>(), "versions of the whole stream");
    ensure!(
        all.iter().all(|event| event.stream_id == stream),
        "read_stream returns only the stream's events"
    );
    for (index, event) in all.iter().enumerate() {
        ensure_eq!(
            event.data,
            format!(r#"{{"index":{index},"note":"conformance"}}"#),
            "data of version {index}"
        );
    }
    ensure!(
        all.windows(2).all(|pair| pair[0].position < pair[1].position),
        "a stream's positions increase with its versions"
    );

    let middle = store.read_stream(&stream, StreamVersion(3), 4).await?;
    let versions: Vec<u64> = middle.iter().map(|event| event.version.0).collect();
    ensure_eq!(versions, vec![3, 4, 5, 6], "versions from 3 with limit 4");
    let tail = store.read_stream(&stream, StreamVersion(8), 100).await?;
    let versions: Vec<u64> = tail.iter().map(|event| event.version.0).collect();
    ensure_eq!(versions, vec![8, 9], "versions from 8");
    ensure!(
        store.read_stream(&stream, StreamVersion(10), 100).await?.is_empty(),
        "reading past the end returns nothing"
    );
    ensure_eq!(
        store.read_stream(&other, StreamVersion::FIRST, 100).await?.len(),
        3,
        "the other stream is separate"
    );
    Ok(())
}

/// `read_all` returns every appended event exactly once in strictly increasing positions, and
/// `after` excludes the event at that position.
pub async fn read_all_positions_strictly_increase_and_after_is_exclusive(store: Arc<dyn EventStore>) -> CaseResult {
    let start = current_head(store.as_ref());
    let streams = [
        unique_stream("readall")?,
        unique_stream("readall")?,
        unique_stream("readall")?,
    ];
    let mut appended = HashSet::new();
    // Below every event's position on every backend.
    let mut last = Position { commit: 0, prepare: 0 };
    for round in 0..4 {
        for stream in &streams {
            let request = request(stream, StreamState::Any, events(round * 3..round * 3 + 3))?;
            appended.extend(request.events.iter().map(|event| event.event_id));
            let outcome = store.append(request).await?;
            ensure!(outcome.last_position > last, "append positions increase");
            last = outcome.last_position;
        }
    }
    let ours: HashSet<StreamId> = streams.iter().cloned().collect();
    // Small pages to cross page boundaries many times.
    let read = read_all_until(store.as_ref(), start, last, &ours, 5).await?;
    ensure_eq!(read.len(), appended.len(), "every appended event read once");
    let read_ids: HashSet<Uuid> = read.iter().map(|event| event.event_id).collect();
    ensure!(read_ids == appended, "read_all returns exactly the appended event ids");
    for stream in &streams {
        let versions: Vec<u64> = read
            .iter()
            .filter(|event| &event.stream_id == stream)
            .map(|event| event.version.0)
            .collect();
        ensure_eq!(
            versions,
            (0..12).collect::<Vec<u64>>(),
            "stream versions in global order"
        );
    }

    // `after` is exclusive: reading after the n-th event starts at the (n+1)-th.
    let (Some(first), Some(second)) = (read.first(), read.get(1)) else {
        return Err("read_all returned fewer than two events".into());
    };
    let page = store.read_all(Some(first.position), 1).await?;
    ensure!(
        page.first()
            .is_some_and(|event| event.position > first.position && event.position <= second.position),
        "read_all after {} starts after it: {:?}",
        first.position,
        page.first().map(|event| event.position)
    );
    let from_start = store.read_all(start, 1).await?;
    ensure!(
        from_start.first().is_some_and(|event| event.position <= first.position),
        "read_all after the starting head does not skip the first appended event"
    );
    ensure!(
        store
            .read_all(Some(last), 10)
            .await?
            .iter()
            .all(|event| event.position > last),
        "read_all after the last position returns only later events"
    );
    Ok(())
}

/// A backend that claims dense positions ([`crate::BackendTraits::dense_positions`]) hands out
/// 1, 2, 3, … with `commit == prepare` and no gap; `read_all` after any position starts at the
/// next one. A backend that does not claim it is held only to increasing positions (above).
pub async fn positions_are_dense_where_the_backend_says_so(store: Arc<dyn EventStore>) -> CaseResult {
    if !store.traits().dense_positions {
        return Ok(());
    }
    let start = current_head(store.as_ref());
    let stream = unique_stream("dense")?;
    let mut last = None;
    for round in 0..3 {
        last = Some(
            store
                .append(request(&stream, StreamState::Any, events(round * 4..round * 4 + 4))?)
                .await?
                .last_position,
        );
    }
    let Some(last) = last else {
        return Err("no append".into());
    };
    let mut after = start;
    let mut seen = 0usize;
    while after.is_none_or(|position| position < last) {
        let page = store.read_all(after, 7).await?;
        ensure!(
            page.first().is_some_and(|event| event.position <= last),
            "read_all stops before the last append ({last})"
        );
        for event in page.iter().take_while(|event| event.position <= last) {
            let expected = after.map_or(1, |position| position.commit + 1);
            ensure!(
                event.position.commit == event.position.prepare && event.position.commit == expected,
                "dense positions: expected {expected} after {after:?}, read {}",
                event.position
            );
            after = Some(event.position);
            seen += 1;
        }
    }
    ensure!(seen >= 12, "every appended event read ({seen})");
    ensure_eq!(
        store.traits().distance(start, Some(last)),
        crate::LogDistance::Events(u64::try_from(seen)?),
        "the distance between two dense positions counts the events between them"
    );
    Ok(())
}

/// A second append with the same command id returns the first outcome, marked duplicate, even
/// with an expectation that would now conflict, and appends nothing.
pub async fn a_repeated_command_id_returns_the_first_outcome_and_appends_nothing(
    store: Arc<dyn EventStore>,
) -> CaseResult {
    let stream = unique_stream("idempotent")?;
    let command_id = CommandId::from_uuid(Uuid::now_v7());
    let mut first_request = request(&stream, StreamState::NoStream, events(0..2))?;
    first_request.command = Some(key(command_id));
    let first = store.append(first_request.clone()).await?;
    ensure!(!first.duplicate, "the first append is not a duplicate");

    // The exact retry.
    let retry = store.append(first_request).await?;
    ensure_eq!(
        retry,
        AppendOutcome {
            duplicate: true,
            ..first.clone()
        },
        "an exact retry returns the first outcome"
    );

    // Same command id, new events and a stale expectation: still the first outcome.
    let mut stale = request(&stream, StreamState::NoStream, events(5..8))?;
    stale.command = Some(key(command_id));
    let again = store.append(stale).await?;
    ensure_eq!(
        again,
        AppendOutcome {
            duplicate: true,
            ..first.clone()
        },
        "a retry with a stale expectation returns the first outcome"
    );
    let read = store.read_stream(&stream, StreamVersion::FIRST, 100).await?;
    ensure_eq!(read.len(), 2, "duplicates append nothing");

    // A different command id appends normally.
    let mut next = request(&stream, StreamState::At(first.last_version), events(2..3))?;
    next.command = Some(key(CommandId::from_uuid(Uuid::now_v7())));
    let next = store.append(next).await?;
    ensure!(!next.duplicate, "a new command id is not a duplicate");
    ensure_eq!(
        next.first_version,
        StreamVersion(2),
        "the next command appends after the first"
    );
    Ok(())
}

/// A command id belongs to the stream it was first appended to. On a backend with store-wide
/// command ids ([`crate::BackendTraits::store_wide_command_ids`]) the same id on another stream
/// is refused and appends nothing there; on any other, it is another command on that stream,
/// appended and recorded there. Either way the first outcome stays the first stream's, and
/// `command_outcome` answers each stream with its own.
pub async fn a_command_id_used_on_another_stream_is_refused_or_scoped_to_its_stream(
    store: Arc<dyn EventStore>,
) -> CaseResult {
    let stream = unique_stream("keyfirst")?;
    let other = unique_stream("keyother")?;
    let command_id = CommandId::from_uuid(Uuid::now_v7());
    let mut first = request(&stream, StreamState::NoStream, events(0..2))?;
    first.command = Some(key(command_id));
    let first = store.append(first).await?;

    let mut elsewhere = request(&other, StreamState::Any, events(0..1))?;
    elsewhere.command = Some(key(command_id));
    let elsewhere = store.append(elsewhere).await;
    if store.traits().store_wide_command_ids {
        match elsewhere {
            Err(AppendError::CommandIdReused {
                stream_id,
                command_id: reused,
                recorded_stream,
            }) => {
                ensure_eq!(stream_id, other, "the refusal names the stream asked for");
                ensure_eq!(reused, command_id, "the refusal names the command id");
                ensure_eq!(
                    recorded_stream,
                    stream,
                    "the refusal names the stream the id belongs to"
                );
            }
            other => {
                return Err(format!(
                    "store-wide command ids: the same id on another stream must be refused, got {other:?}"
                )
                .into());
            }
        }
        ensure!(
            store.read_stream(&other, StreamVersion::FIRST, 10).await?.is_empty(),
            "a refused command id appends nothing"
        );
        ensure!(
            store.command_outcome(&other, command_id).await?.is_none(),
            "a refused command id records nothing on the other stream"
        );
    } else {
        let elsewhere = elsewhere?;
        ensure!(
            !elsewhere.duplicate && elsewhere.stream_id == other,
            "command ids scoped to their stream: the same id on another stream is another command"
        );
        ensure_eq!(
            store
                .command_outcome(&other, command_id)
                .await?
                .map(|recorded| recorded.outcome),
            Some(AppendOutcome {
                duplicate: true,
                ..elsewhere
            }),
            "the other stream records its own outcome for the id"
        );
    }
    let recorded = store.command_outcome(&stream, command_id).await?;
    ensure_eq!(
        recorded.map(|recorded| recorded.outcome),
        Some(AppendOutcome {
            duplicate: true,
            ..first
        }),
        "the first outcome stays the command id's outcome on its stream"
    );
    Ok(())
}

/// A command id is bound to its command's digest: the same id on the same stream with another
/// digest (other input, another caller) is refused and appends nothing.
pub async fn a_command_id_with_another_digest_is_refused_and_appends_nothing(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("keydigest")?;
    let command_id = CommandId::from_uuid(Uuid::now_v7());
    let mut first = request(&stream, StreamState::NoStream, events(0..2))?;
    first.command = Some(keyed(command_id, "upload A"));
    let first = store.append(first).await?;

    let mut other_input = request(&stream, StreamState::At(first.last_version), events(2..3))?;
    other_input.command = Some(keyed(command_id, "upload B"));
    match store.append(other_input).await {
        Err(AppendError::CommandIdReused {
            stream_id,
            recorded_stream,
            ..
        }) => {
            ensure_eq!(stream_id, stream, "the refusal names the stream asked for");
            ensure_eq!(recorded_stream, stream, "the command id belongs to the same stream");
        }
        other => return Err(format!("the same command id with another digest must be refused, got {other:?}").into()),
    }
    ensure_eq!(
        store.read_stream(&stream, StreamVersion::FIRST, 10).await?.len(),
        2,
        "a refused command id appends nothing"
    );
    // The first command's own retry still answers with the first outcome.
    let mut retry = request(&stream, StreamState::NoStream, events(0..2))?;
    retry.command = Some(keyed(command_id, "upload A"));
    ensure_eq!(
        store.append(retry).await?,
        AppendOutcome {
            duplicate: true,
            ..first
        },
        "the first command's retry is still a duplicate"
    );
    Ok(())
}

/// `command_outcome` returns an append's outcome by its command id, and nothing for unknown ids
/// or failed appends.
pub async fn command_outcome_finds_an_append_by_its_command_id(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("outcome")?;
    let command_id = CommandId::from_uuid(Uuid::now_v7());
    ensure!(
        store.command_outcome(&stream, command_id).await?.is_none(),
        "an unknown command id has no outcome"
    );
    let mut with_id = request(&stream, StreamState::NoStream, events(0..3))?;
    with_id.command = Some(key(command_id));
    let outcome = store.append(with_id).await?;
    let found = store.command_outcome(&stream, command_id).await?;
    ensure_eq!(
        found,
        Some(RecordedCommand {
            outcome: AppendOutcome {
                duplicate: true,
                ..outcome
            },
            digest: Some(key(command_id).digest),
        }),
        "command_outcome returns the append's outcome and the command's digest"
    );
    let other = unique_stream("outcome")?;
    ensure!(
        store.command_outcome(&other, command_id).await?.is_none(),
        "a command id is not found on a stream it was not appended to"
    );

    let failed_id = CommandId::from_uuid(Uuid::now_v7());
    let mut conflicting = request(&stream, StreamState::NoStream, events(3..4))?;
    conflicting.command = Some(key(failed_id));
    ensure!(
        store.append(conflicting).await.is_err(),
        "NoStream on an existing stream conflicts"
    );
    ensure!(
        store.command_outcome(&stream, failed_id).await?.is_none(),
        "a conflicting append records no outcome"
    );
    let mut retried = request(&stream, StreamState::At(StreamVersion(2)), events(3..4))?;
    retried.command = Some(key(failed_id));
    let retried = store.append(retried).await?;
    ensure!(
        !retried.duplicate,
        "a command retried after a conflict appends for real"
    );
    Ok(())
}

/// Of many appends racing with the same expected version, exactly one wins.
pub async fn exactly_one_of_concurrent_appends_with_the_same_expected_version_wins(
    store: Arc<dyn EventStore>,
) -> CaseResult {
    let stream = unique_stream("race")?;
    let first = store
        .append(request(&stream, StreamState::NoStream, events(0..1))?)
        .await?;
    let expected = StreamState::At(first.last_version);
    let mut tasks = Vec::with_capacity(CONCURRENT_APPENDERS);
    for index in 0..CONCURRENT_APPENDERS {
        let store = Arc::clone(&store);
        let request = request(&stream, expected, events(index + 1..index + 3))?;
        tasks.push(tokio::spawn(async move { store.append(request).await }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await? {
            Ok(outcome) => {
                winners += 1;
                ensure_eq!(
                    outcome.first_version,
                    StreamVersion(1),
                    "the winner appends after version 0"
                );
            }
            Err(AppendError::Conflict { actual, .. }) => {
                ensure!(
                    actual.is_some_and(|version| version >= StreamVersion(1)),
                    "a loser sees the winner's version, not {actual:?}"
                );
            }
            Err(other) => return Err(format!("a racing append failed unexpectedly: {other}").into()),
        }
    }
    ensure_eq!(winners, 1, "winners among {CONCURRENT_APPENDERS} racing appends");
    let read = store.read_stream(&stream, StreamVersion::FIRST, 100).await?;
    ensure_eq!(read.len(), 3, "the stream holds the first event and the winner's two");
    verify_stream(&read)?;
    Ok(())
}

/// Appends to distinct streams from many tasks all succeed and are all stored once.
pub async fn concurrent_appends_to_different_streams_all_succeed(store: Arc<dyn EventStore>) -> CaseResult {
    let start = current_head(store.as_ref());
    let mut tasks = Vec::new();
    let mut streams = HashSet::new();
    for _ in 0..CONCURRENT_APPENDERS {
        let stream = unique_stream("parallel")?;
        streams.insert(stream.clone());
        let store = Arc::clone(&store);
        let requests: Vec<AppendRequest> = (0..10u64)
            .map(|round| {
                let expected = StreamState::from_actual(round.checked_sub(1).map(StreamVersion));
                let index = round as usize;
                request(&stream, expected, events(index..index + 1))
            })
            .collect::<Result<_, _>>()?;
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            for request in requests {
                last = Some(store.append(request).await?.last_position);
            }
            Ok::<_, AppendError>(last)
        }));
    }
    // Below every event's position on every backend.
    let mut until = Position { commit: 0, prepare: 0 };
    for task in tasks {
        if let Some(last) = task.await?? {
            until = until.max(last);
        }
    }
    let read = read_all_until(store.as_ref(), start, until, &streams, 1_000).await?;
    ensure_eq!(
        read.len(),
        CONCURRENT_APPENDERS * 10,
        "every acknowledged event is in the log"
    );
    let ids: HashSet<Uuid> = read.iter().map(|event| event.event_id).collect();
    ensure_eq!(ids.len(), read.len(), "no event appears twice");
    Ok(())
}

/// `subscribe_all` delivers the events already stored, then events appended while it runs.
pub async fn a_subscription_catches_up_then_follows_live_appends(store: Arc<dyn EventStore>) -> CaseResult {
    let start = current_head(store.as_ref());
    let stream = unique_stream("subscription")?;
    store
        .append(request(&stream, StreamState::NoStream, events(0..3))?)
        .await?;
    let subscription = subscribe_all(Arc::clone(&store), start);
    let mut subscription = Box::pin(subscription.filter(|item| {
        let keep = item.as_ref().map_or(true, |event| event.stream_id == stream);
        std::future::ready(keep)
    }));
    let mut seen = Vec::new();
    let mut take = async |count: usize, seen: &mut Vec<RecordedEvent>| -> CaseResult {
        while seen.len() < count {
            match tokio::time::timeout(SUBSCRIPTION_TIMEOUT, subscription.next()).await {
                Err(_) => return Err(format!("subscription delivered {} of {count} events", seen.len()).into()),
                Ok(None) => return Err("subscription ended".into()),
                Ok(Some(item)) => seen.push(item?),
            }
        }
        Ok(())
    };
    take(3, &mut seen).await?;
    // Live: appended after the subscription caught up.
    store
        .append(request(&stream, StreamState::At(StreamVersion(2)), events(3..5))?)
        .await?;
    let appender = {
        let store = Arc::clone(&store);
        let request = request(&stream, StreamState::At(StreamVersion(4)), events(5..6))?;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.append(request).await
        })
    };
    take(6, &mut seen).await?;
    appender.await??;
    let versions: Vec<u64> = seen.iter().map(|event| event.version.0).collect();
    ensure_eq!(versions, (0..6).collect::<Vec<u64>>(), "subscription versions");
    ensure!(
        seen.windows(2).all(|pair| pair[0].position < pair[1].position),
        "subscription positions increase"
    );
    Ok(())
}

/// A stream of thousands of events, appended in several requests, reads back whole in pages.
pub async fn a_large_stream_reads_back_in_pages(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("large")?;
    let mut expected = StreamState::NoStream;
    let mut appended = 0;
    while appended < LARGE_STREAM_EVENTS {
        let count = APPEND_EVENTS_MAX.min(LARGE_STREAM_EVENTS - appended);
        let outcome = store
            .append(request(&stream, expected, events(appended..appended + count))?)
            .await?;
        ensure_eq!(
            outcome.first_version,
            StreamVersion(appended as u64),
            "first version of a chunk"
        );
        appended += count;
        expected = StreamState::At(outcome.last_version);
    }
    let read = read_whole_stream(store.as_ref(), &stream, 777).await?;
    ensure_eq!(read.len(), LARGE_STREAM_EVENTS, "events read back");
    for (index, event) in read.iter().enumerate() {
        ensure_eq!(event.version, StreamVersion(index as u64), "version at index {index}");
        ensure_eq!(
            event.data,
            format!(r#"{{"index":{index},"note":"conformance"}}"#),
            "data at index {index}"
        );
    }
    verify_stream(&read)?;
    let page = store.read_stream(&stream, StreamVersion(4_990), READ_BATCH_MAX).await?;
    ensure_eq!(page.len(), 10, "the tail page");
    Ok(())
}

/// Requests the store must refuse write nothing at all, not even their command id.
pub async fn bad_input_appends_nothing(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("bad")?;
    let cases: Vec<BadCase> = vec![
        ("no events", Vec::new(), |reason| {
            matches!(reason, InvalidAppend::NoEvents)
        }),
        ("too many events", events(0..APPEND_EVENTS_MAX + 1), |reason| {
            matches!(reason, InvalidAppend::TooManyEvents { .. })
        }),
        (
            "data that is not JSON",
            vec![
                event(0),
                NewEvent {
                    data: "{not json".to_owned(),
                    ..event(1)
                },
            ],
            |reason| matches!(reason, InvalidAppend::DataNotJson { index: 1, .. }),
        ),
        (
            "an empty event type",
            vec![NewEvent {
                event_type: String::new(),
                ..event(0)
            }],
            |reason| matches!(reason, InvalidAppend::EventType(_)),
        ),
        (
            "an event type with spaces",
            vec![NewEvent {
                event_type: "Bad Type".to_owned(),
                ..event(0)
            }],
            |reason| matches!(reason, InvalidAppend::EventType(_)),
        ),
        (
            "oversized data",
            vec![NewEvent {
                data: format!("\"{}\"", "a".repeat(EVENT_DATA_BYTES_MAX)),
                ..event(0)
            }],
            |reason| matches!(reason, InvalidAppend::DataTooLarge { index: 0, .. }),
        ),
        (
            "a repeated event id",
            {
                let first = event(0);
                vec![
                    first.clone(),
                    NewEvent {
                        data: "{}".to_owned(),
                        ..first
                    },
                ]
            },
            |reason| matches!(reason, InvalidAppend::DuplicateEventId(_)),
        ),
    ];
    for (what, events, is_reason) in cases {
        let command_id = CommandId::from_uuid(Uuid::now_v7());
        let mut bad = request(&stream, StreamState::Any, events)?;
        bad.command = Some(key(command_id));
        match store.append(bad).await {
            Err(AppendError::Invalid { stream_id, reason }) => {
                ensure_eq!(stream_id, stream, "invalid append names its stream ({what})");
                ensure!(
                    is_reason(&reason),
                    "append with {what} refused for the wrong reason: {reason}"
                );
            }
            other => return Err(format!("append with {what} should be invalid, got {other:?}").into()),
        }
        ensure!(
            store.command_outcome(&stream, command_id).await?.is_none(),
            "an invalid append records no command outcome ({what})"
        );
    }
    ensure!(
        store.read_stream(&stream, StreamVersion::FIRST, 10).await?.is_empty(),
        "invalid appends write nothing"
    );
    // The stream is still new: NoStream succeeds.
    let outcome = store
        .append(request(&stream, StreamState::NoStream, events(0..1))?)
        .await?;
    ensure_eq!(
        outcome.first_version,
        StreamVersion(0),
        "the stream starts at 0 after refusals"
    );
    Ok(())
}

/// Reads with a zero limit or one above `READ_BATCH_MAX` are refused.
pub async fn read_limits_outside_the_range_are_rejected(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("limits")?;
    store
        .append(request(&stream, StreamState::NoStream, events(0..2))?)
        .await?;
    for limit in [0, READ_BATCH_MAX + 1, usize::MAX] {
        ensure!(
            matches!(
                store.read_stream(&stream, StreamVersion::FIRST, limit).await,
                Err(StoreError::InvalidLimit { .. })
            ),
            "read_stream with limit {limit} is refused"
        );
        ensure!(
            matches!(store.read_all(None, limit).await, Err(StoreError::InvalidLimit { .. })),
            "read_all with limit {limit} is refused"
        );
    }
    ensure_eq!(
        store
            .read_stream(&stream, StreamVersion::FIRST, READ_BATCH_MAX)
            .await?
            .len(),
        2,
        "READ_BATCH_MAX itself is allowed"
    );
    Ok(())
}

/// A stream read back verifies against its hash chain, and tampering is detected.
pub async fn the_hash_chain_of_a_read_back_stream_verifies(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("chain")?;
    let mut expected = StreamState::NoStream;
    for chunk in 0..5 {
        let outcome = store
            .append(request(&stream, expected, events(chunk * 4..chunk * 4 + 4))?)
            .await?;
        expected = StreamState::At(outcome.last_version);
    }
    let mut read = store.read_stream(&stream, StreamVersion::FIRST, 100).await?;
    ensure_eq!(read.len(), 20, "events read back");
    verify_stream(&read)?;
    let hashes: HashSet<_> = read.iter().map(|event| event.hash).collect();
    ensure_eq!(hashes.len(), read.len(), "every event has its own hash");
    if let Some(event) = read.get_mut(7) {
        event.data = r#"{"index":7,"note":"tampered"}"#.to_owned();
    }
    ensure!(verify_stream(&read).is_err(), "an altered event breaks the chain");
    Ok(())
}

/// Every envelope field reads back as appended: ids, actor, times at microsecond precision, the
/// schema version, and the data byte for byte.
pub async fn the_envelope_round_trips(store: Arc<dyn EventStore>) -> CaseResult {
    let stream = unique_stream("envelope")?;
    let start = current_head(store.as_ref());
    let occurred_at: DateTime<Utc> = Utc
        .timestamp_opt(1_780_000_000, 123_456_789)
        .single()
        .ok_or("a fixed instant is valid")?;
    let metadata = AppendMetadata {
        occurred_at,
        actor: Actor {
            user_id: UserId::parse("张三@town")?,
            role: Role::TownOfficer {
                town: anquan_domain::Town::parse("许村")?,
            },
        },
        correlation_id: Uuid::now_v7(),
        causation_id: Some(Uuid::now_v7()),
    };
    // Not compact, not sorted, with escapes and non-ASCII text: stored byte for byte.
    let data = "{\"z\": 1,  \"a\":[true,null,1.50e3], \"text\":\"安全 \\u00e9\\n\\\"q\\\"\" }".to_owned();
    let new_event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Conformance.Envelope-v_2".to_owned(),
        schema_version: 7,
        data: data.clone(),
    };
    let command_id = CommandId::from_uuid(Uuid::now_v7());
    let before = canonical_time(Utc::now());
    let outcome = store
        .append(AppendRequest {
            stream_id: stream.clone(),
            expected: StreamState::NoStream,
            command: Some(key(command_id)),
            metadata: metadata.clone(),
            events: vec![new_event.clone(), event(1)],
        })
        .await?;
    let after = Utc::now();
    let read = store.read_stream(&stream, StreamVersion::FIRST, 10).await?;
    let [recorded, second] = read.as_slice() else {
        return Err(format!("expected 2 events, read {}", read.len()).into());
    };
    ensure_eq!(recorded.event_id, new_event.event_id, "event id");
    ensure_eq!(recorded.stream_id, stream, "stream id");
    ensure_eq!(recorded.version, StreamVersion(0), "version");
    ensure_eq!(recorded.event_type, new_event.event_type, "event type");
    ensure_eq!(recorded.schema_version, 7, "schema version");
    ensure!(
        recorded.data.as_bytes() == data.as_bytes(),
        "data is byte-identical: {:?}",
        recorded.data
    );
    ensure_eq!(recorded.metadata.actor, metadata.actor, "actor");
    ensure_eq!(
        recorded.metadata.correlation_id,
        metadata.correlation_id,
        "correlation id"
    );
    ensure_eq!(recorded.metadata.causation_id, metadata.causation_id, "causation id");
    ensure_eq!(recorded.metadata.command_id, Some(command_id), "command id");
    ensure_eq!(
        recorded.metadata.occurred_at,
        canonical_time(occurred_at),
        "occurred_at truncated to microseconds"
    );
    ensure_eq!(
        recorded.metadata.occurred_at.timestamp_subsec_nanos(),
        123_456_000,
        "occurred_at keeps its microseconds"
    );
    ensure!(
        before <= recorded.recorded_at && recorded.recorded_at <= after,
        "recorded_at {} lies within the append ({before} ..= {after})",
        recorded.recorded_at
    );
    ensure_eq!(
        recorded.recorded_at,
        canonical_time(recorded.recorded_at),
        "recorded_at is at microsecond precision"
    );
    ensure_eq!(
        second.metadata,
        recorded.metadata,
        "events of one append share metadata"
    );
    ensure_eq!(
        second.recorded_at,
        recorded.recorded_at,
        "events of one append share recorded_at"
    );
    ensure_eq!(second.position, outcome.last_position, "outcome position");
    verify_stream(&read)?;

    // The same events through read_all carry the identical envelope.
    let ours = HashSet::from([stream.clone()]);
    let through_log = read_all_until(store.as_ref(), start, outcome.last_position, &ours, 100).await?;
    ensure_eq!(through_log, read, "read_all and read_stream return the same envelopes");

    // A causation-less append without a command id reads back as None.
    let bare_stream = unique_stream("envelope")?;
    store
        .append(request(&bare_stream, StreamState::NoStream, events(0..1))?)
        .await?;
    let bare = store.read_stream(&bare_stream, StreamVersion::FIRST, 1).await?;
    ensure!(
        bare.first()
            .is_some_and(|event| event.metadata.causation_id.is_none() && event.metadata.command_id.is_none()),
        "absent causation and command ids stay absent"
    );
    Ok(())
}
