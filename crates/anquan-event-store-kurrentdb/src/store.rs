//! The KurrentDB event store: appends sealed against the stream's last event, reads, the
//! per-stream command lookup and the head watch.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::watch;

use anquan_domain::CommandId;
use anquan_event_store::hash_chain::seal;
use anquan_event_store::{
    AppendError, AppendOutcome, AppendRequest, CommandDigest, EventHash, EventStore, Position, READ_BATCH_MAX,
    RecordedCommand, RecordedEvent, StoreError, StreamId, StreamState, StreamVersion, answer_recorded_command,
};

use crate::mapping::{self, Decoded, Failure, StoredEvent};

/// How many times an append is decided again when its stream moved between the read of its
/// last event and the write (only an expectation of `Any` or `StreamExists`, or a repeated
/// command id, can succeed on a later attempt; `NoStream` and `At` become a conflict).
const APPEND_ATTEMPTS: usize = 16;
/// Events per page of a backward scan for a command id.
const SCAN_PAGE: usize = 500;
/// The longest pause between two attempts to resubscribe the head watch.
const RESUBSCRIBE_DELAY_MAX: Duration = Duration::from_secs(5);

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the KurrentDB connection string is invalid: {0}")]
    ConnectionString(String),
    #[error("cannot create the KurrentDB client: {0}")]
    Client(String),
    #[error("cannot read the head of $all from KurrentDB")]
    Head(#[source] StoreError),
}

/// Events in KurrentDB: one KurrentDB stream per anquan stream, the global log is `$all`
/// without KurrentDB's system events.
pub struct KurrentEventStore {
    client: kurrentdb::Client,
    head: Arc<watch::Sender<Option<Position>>>,
    head_task: tokio::task::JoinHandle<()>,
}

impl Drop for KurrentEventStore {
    fn drop(&mut self) {
        self.head_task.abort();
    }
}

/// What a backward scan of a stream found: its last event's version and hash, and the append
/// that carried a command id, if asked for and present.
struct Tail {
    last: Option<(StreamVersion, EventHash)>,
    recorded: Option<RecordedCommand>,
}

impl KurrentEventStore {
    /// Connects with a KurrentDB connection string (`kurrentdb://…`, `kurrentdb+discover://…`,
    /// `esdb://…`, `esdb+discover://…`), reads the head of `$all` (which proves the server
    /// answers and the user may read `$all`) and starts the head watch. Must be called inside a
    /// Tokio runtime.
    pub async fn connect(connection_string: &str) -> Result<Self, ConnectError> {
        let settings: kurrentdb::ClientSettings = connection_string
            .parse()
            .map_err(|error: kurrentdb::ClientSettingsParseError| ConnectError::ConnectionString(error.to_string()))?;
        // The client's errors at creation are `eyre::Report`s, which are not `std::error::Error`;
        // their text with every cause is kept.
        let client = kurrentdb::Client::new(settings).map_err(|report| ConnectError::Client(format!("{report:#}")))?;
        let last = last_position(&client).await.map_err(ConnectError::Head)?;
        let head = Arc::new(watch::Sender::new(last));
        let head_task = tokio::spawn(follow_head(client.clone(), Arc::clone(&head), last));
        Ok(Self {
            client,
            head,
            head_task,
        })
    }

    /// Returns what the store recorded of the append to `stream_id` that carried `command_id`:
    /// the events of the stream whose metadata names the command id (one append's events are
    /// contiguous). This is the lookup the trait's `command_outcome` becomes once it takes the
    /// target stream; it reads the stream backwards from its end, so it costs one read per
    /// `SCAN_PAGE` events after the command's append.
    pub async fn command_outcome_in_stream(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        Ok(self.scan(stream_id, Some(command_id)).await?.recorded)
    }

    /// Reads `stream_id` backwards from its end: the last event, and while `command` is given,
    /// on until the append that carried it is found whole or the stream's start is reached.
    async fn scan(&self, stream_id: &StreamId, command: Option<CommandId>) -> Result<Tail, StoreError> {
        let doing = format!("read stream {stream_id}");
        let mut tail = Tail {
            last: None,
            recorded: None,
        };
        // The command's events, newest first.
        let mut found: Vec<Decoded> = Vec::new();
        let mut from = kurrentdb::StreamPosition::End;
        let page = if command.is_some() { SCAN_PAGE } else { 1 };
        loop {
            let options = kurrentdb::ReadStreamOptions::default()
                .backwards()
                .position(from)
                .max_count(page);
            let mut read = match self.client.read_stream(stream_id.as_str(), &options).await {
                Ok(read) => read,
                Err(error) => return no_stream_is_empty(error, &doing, tail),
            };
            let mut count = 0;
            let mut oldest = None;
            loop {
                let event = match read.next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(error) => return no_stream_is_empty(error, &doing, tail),
                };
                let stored = StoredEvent::of(event.get_original_event());
                let decoded = mapping::decode(&stored).map_err(|error| error.corrupt(stored.location()))?;
                count += 1;
                oldest = Some(decoded.event.version);
                if tail.last.is_none() {
                    tail.last = Some((decoded.event.version, decoded.event.hash));
                }
                let Some(command) = command else { return Ok(tail) };
                if decoded.event.metadata.command_id == Some(command) {
                    found.push(decoded);
                } else if !found.is_empty() {
                    // Past the first event of the command's append.
                    tail.recorded = recorded_command(found);
                    return Ok(tail);
                }
            }
            match oldest {
                Some(StreamVersion(version)) if count == page && version > 0 => {
                    from = kurrentdb::StreamPosition::Position(version - 1);
                }
                _ => {
                    tail.recorded = recorded_command(found);
                    return Ok(tail);
                }
            }
        }
    }

    /// Moves the head watch forward to `position` (never back).
    fn advance_head(&self, position: Position) {
        advance(&self.head, position);
    }

    /// Reads the position of the event at `version` of `stream_id`: what `$all` reports for it,
    /// which is what a later command lookup reports too.
    async fn position_of(&self, stream_id: &StreamId, version: StreamVersion) -> Result<Position, StoreError> {
        let events = self.read_stream(stream_id, version, 1).await?;
        match events.first() {
            Some(event) if event.version == version => Ok(event.position),
            _ => Err(StoreError::Backend {
                message: format!("KurrentDB acknowledged {stream_id}@{version} but does not return it"),
                source: None,
            }),
        }
    }
}

/// The outcome of the append whose events (newest first) carried one command id.
fn recorded_command(found: Vec<Decoded>) -> Option<RecordedCommand> {
    let last = found.first()?;
    let first = found.last()?;
    let digest: Option<CommandDigest> = last.command_digest;
    Some(RecordedCommand {
        outcome: AppendOutcome {
            stream_id: last.event.stream_id.clone(),
            first_version: first.event.version,
            last_version: last.event.version,
            last_position: last.event.position,
            duplicate: true,
        },
        digest,
    })
}

/// A read that found no stream has found nothing; any other error is the store's.
fn no_stream_is_empty<T>(error: kurrentdb::Error, doing: &str, empty: T) -> Result<T, StoreError> {
    match mapping::failure(error, doing) {
        Failure::NoStream => Ok(empty),
        Failure::Store(error) => Err(error),
        Failure::Conflict { .. } => Err(StoreError::Backend {
            message: format!("KurrentDB reported a version conflict to {doing}"),
            source: None,
        }),
    }
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > READ_BATCH_MAX {
        return Err(StoreError::InvalidLimit {
            limit,
            max: READ_BATCH_MAX,
        });
    }
    Ok(())
}

fn advance(head: &watch::Sender<Option<Position>>, position: Position) {
    head.send_if_modified(|head| {
        if head.is_none_or(|head| head < position) {
            *head = Some(position);
            true
        } else {
            false
        }
    });
}

/// The server-side filter that leaves KurrentDB's own events (types starting with `$`) out of
/// `$all`; `mapping::is_system` checks stream names too, on the client.
fn user_events() -> kurrentdb::SubscriptionFilter {
    kurrentdb::SubscriptionFilter::on_event_type().exclude_system_events()
}

/// The position of the last non-system event in `$all`, if any.
async fn last_position(client: &kurrentdb::Client) -> Result<Option<Position>, StoreError> {
    let doing = "read the end of $all";
    let options = kurrentdb::ReadAllOptions::default()
        .backwards()
        .position(kurrentdb::StreamPosition::End)
        .filter(user_events())
        .max_count(1);
    let mut read = client
        .read_all(&options)
        .await
        .map_err(|error| mapping::store_error(error, doing))?;
    while let Some(event) = read.next().await.map_err(|error| mapping::store_error(error, doing))? {
        let event = event.get_original_event();
        if !mapping::is_system(event.stream_id(), &event.event_type) {
            return Ok(Some(mapping::position(event.position)));
        }
    }
    Ok(None)
}

/// Feeds the head watch from a filtered subscription to `$all`, from the last position seen;
/// when the subscription drops it reads the end of `$all` again and resubscribes, pausing
/// 100 ms, doubling up to `RESUBSCRIBE_DELAY_MAX`, while the server is away.
async fn follow_head(
    client: kurrentdb::Client,
    head: Arc<watch::Sender<Option<Position>>>,
    mut from: Option<Position>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let start = from.map_or(kurrentdb::StreamPosition::Start, |position| {
            kurrentdb::StreamPosition::Position(mapping::kurrent_position(position))
        });
        let options = kurrentdb::SubscribeToAllOptions::default()
            .position(start)
            .filter(user_events());
        let mut subscription = client.subscribe_to_all(&options).await;
        let error = loop {
            match subscription.next().await {
                Ok(event) => {
                    delay = Duration::from_millis(100);
                    let event = event.get_original_event();
                    if mapping::is_system(event.stream_id(), &event.event_type) {
                        continue;
                    }
                    let position = mapping::position(event.position);
                    from = Some(position);
                    advance(&head, position);
                }
                Err(error) => break error,
            }
        };
        tracing::warn!(
            error = %error,
            retry_in_ms = delay.as_millis() as u64,
            "the KurrentDB head subscription dropped; resubscribing"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RESUBSCRIBE_DELAY_MAX);
        match last_position(&client).await {
            Ok(Some(position)) => {
                advance(&head, position);
                if from.is_none_or(|from| from < position) {
                    from = Some(position);
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %anquan_event_store::error_chain(&error), "cannot read the end of $all")
            }
        }
    }
}

#[async_trait]
impl EventStore for KurrentEventStore {
    /// Reads the stream's last event (and, with a command id, the stream back to that command's
    /// append), answers a known command id, checks the caller's expectation, seals the events
    /// from the last hash, and appends them expecting exactly the revision read. That
    /// expectation is what guards the race: if another writer appended in between, KurrentDB
    /// refuses the write and the append is decided again on the stream as it now is (a
    /// caller's `At`/`NoStream` then conflicts, a repeated command id then finds its first
    /// outcome), so no chain link is ever sealed against a stale last event.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        request.validate()?;
        let stream_id = &request.stream_id;
        let doing = format!("append to {stream_id}");
        for _ in 0..APPEND_ATTEMPTS {
            let tail = self.scan(stream_id, request.command.map(|key| key.id)).await?;
            if let (Some(key), Some(recorded)) = (&request.command, tail.recorded) {
                return answer_recorded_command(&request, key, recorded);
            }
            let actual = tail.last.map(|(version, _)| version);
            if !request.expected.admits(actual) {
                return Err(AppendError::Conflict {
                    stream_id: stream_id.clone(),
                    expected: request.expected,
                    actual,
                });
            }
            let sealed = seal(&request, tail.last, Utc::now());
            let digest = request.command.map(|key| key.digest);
            let mut previous = tail.last.map_or(EventHash::GENESIS, |(_, hash)| hash);
            let mut events = Vec::with_capacity(sealed.len());
            for event in &sealed {
                let encoded = mapping::encode(event, previous, digest)
                    .and_then(mapping::Encoded::into_event_data)
                    .map_err(|error| StoreError::Backend {
                        message: format!("cannot encode {} for KurrentDB: {error}", event.event_id),
                        source: None,
                    })?;
                previous = event.hash;
                events.push(encoded);
            }
            let (Some(first), Some(last)) = (sealed.first(), sealed.last()) else {
                // `validate` refused an empty append.
                return Err(StoreError::Backend {
                    message: "an append without events reached KurrentDB".to_owned(),
                    source: None,
                }
                .into());
            };
            let options = kurrentdb::AppendToStreamOptions::default()
                .stream_state(mapping::stream_state(StreamState::from_actual(actual)));
            match self.client.append_to_stream(stream_id.as_str(), &options, events).await {
                Ok(_) => {
                    let last_position = self.position_of(stream_id, last.version).await?;
                    self.advance_head(last_position);
                    return Ok(AppendOutcome {
                        stream_id: stream_id.clone(),
                        first_version: first.version,
                        last_version: last.version,
                        last_position,
                        duplicate: false,
                    });
                }
                Err(error) => match mapping::failure(error, &doing) {
                    // The stream moved since it was read: decide again.
                    Failure::Conflict { .. } => continue,
                    Failure::NoStream => {
                        return Err(StoreError::Backend {
                            message: format!("KurrentDB reported a missing stream to {doing}"),
                            source: None,
                        }
                        .into());
                    }
                    Failure::Store(error) => return Err(error.into()),
                },
            }
        }
        Err(StoreError::Backend {
            message: format!("{stream_id} moved under {APPEND_ATTEMPTS} attempts in a row to {doing}"),
            source: None,
        }
        .into())
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let doing = format!("read stream {stream_id}");
        let options = kurrentdb::ReadStreamOptions::default()
            .forwards()
            .position(kurrentdb::StreamPosition::Position(from.0))
            .max_count(limit);
        let mut read = match self.client.read_stream(stream_id.as_str(), &options).await {
            Ok(read) => read,
            Err(error) => return no_stream_is_empty(error, &doing, Vec::new()),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(event)) => {
                    let stored = StoredEvent::of(event.get_original_event());
                    let decoded = mapping::decode(&stored).map_err(|error| error.corrupt(stored.location()))?;
                    events.push(decoded.event);
                }
                Ok(None) => return Ok(events),
                Err(error) => return no_stream_is_empty(error, &doing, events),
            }
        }
    }

    /// Reads `$all` forwards without system events. KurrentDB reads from a position inclusively,
    /// so the event at `after` itself is dropped. `$all` only grows at its end (commit positions
    /// are handed out in commit order and a read sees committed events only), so every page is
    /// a prefix that can no longer change.
    async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let doing = "read $all";
        let start = after.map_or(kurrentdb::StreamPosition::Start, |position| {
            kurrentdb::StreamPosition::Position(mapping::kurrent_position(position))
        });
        let options = kurrentdb::ReadAllOptions::default()
            .forwards()
            .position(start)
            .filter(user_events())
            .max_count(limit + 1);
        let mut read = self
            .client
            .read_all(&options)
            .await
            .map_err(|error| mapping::store_error(error, doing))?;
        let mut events = Vec::with_capacity(limit.min(1024));
        while events.len() < limit {
            let Some(event) = read.next().await.map_err(|error| mapping::store_error(error, doing))? else {
                break;
            };
            let event = event.get_original_event();
            if mapping::is_system(event.stream_id(), &event.event_type) {
                continue;
            }
            let stored = StoredEvent::of(event);
            let decoded = mapping::decode(&stored).map_err(|error| error.corrupt(stored.location()))?;
            if after.is_some_and(|after| decoded.event.position <= after) {
                continue;
            }
            events.push(decoded.event);
        }
        Ok(events)
    }

    /// KurrentDB has no index of command ids across streams: the lookup reads the target
    /// stream backwards ([`KurrentEventStore::command_outcome_in_stream`]), as `append` does
    /// (`BackendTraits::store_wide_command_ids` is false here).
    async fn command_outcome(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        self.command_outcome_in_stream(stream_id, command_id).await
    }

    fn head(&self) -> watch::Receiver<Option<Position>> {
        self.head.subscribe()
    }

    fn backend_name(&self) -> &'static str {
        "kurrentdb"
    }
}
