//! The writer thread: it owns the write connection and commits appends in groups.
//!
//! Appends arrive through a bounded channel. The writer gathers a group of requests
//! ([`anquan_event_store::gathering`], up to [`WRITE_BATCH_MAX`]), runs each inside its own savepoint of one transaction, so a request
//! that fails (a conflict, a stored event id) is rolled back alone, commits once, and only then
//! moves the head and answers every request. One fsync thus acknowledges many appends.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use anquan_event_store::gathering::{Gathering, GroupBounds};
use anquan_event_store::hash_chain::seal;
use anquan_event_store::{
    AppendError, AppendOutcome, AppendRequest, EventHash, Position, StoreError, StreamId, StreamVersion,
    answer_recorded_command,
};

use crate::row::{command_outcome, corrupt, to_i64, to_u64};
use crate::schema::{sql_error, sql_error_with};

/// Most append requests committed in one transaction.
pub(crate) const WRITE_BATCH_MAX: usize = 512;
/// A batch stops taking requests once it holds this many events.
pub(crate) const WRITE_BATCH_EVENTS_MAX: usize = 20_000;
/// Most append requests waiting for the writer; senders wait beyond this.
pub(crate) const WRITE_QUEUE_MAX: usize = 4_096;

/// Event bytes committed after which the writer asks the checkpoint thread to checkpoint
/// (about SQLite's default of 1,000 WAL pages with the index pages the events touch).
pub(crate) const CHECKPOINT_EVERY_BYTES: usize = 2 * 1024 * 1024;

/// Most stream heads the writer remembers; beyond this it forgets them all and reads again.
pub(crate) const HEAD_CACHE_MAX: usize = 100_000;

const SAVEPOINT_SQL: &str = "SAVEPOINT append";
const RELEASE_SQL: &str = "RELEASE append";
const ROLLBACK_TO_SQL: &str = "ROLLBACK TO append";
const LAST_OF_STREAM_SQL: &str =
    "SELECT version, hash FROM event_log WHERE stream_id = ?1 ORDER BY version DESC LIMIT 1";
const INSERT_EVENT_SQL: &str = "INSERT INTO event_log (stream_id, version, event_id, event_type, schema_version, \
     data, occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_COMMAND_SQL: &str = "INSERT INTO event_commands (command_id, stream_id, first_version, last_version, \
     last_position, digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// One append waiting for the writer, with where to send its outcome.
pub(crate) struct WriteRequest {
    pub(crate) request: AppendRequest,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

/// What the writer has done, for tests and metrics.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) appends: AtomicU64,
    pub(crate) events: AtomicU64,
}

/// The WAL checkpoints, run on their own thread and connection so copying pages into the
/// file and syncing it do not hold up commits (a PASSIVE checkpoint never blocks the writer).
pub(crate) struct Checkpointer {
    pub(crate) wake: std::sync::mpsc::SyncSender<()>,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

/// Checkpoints whenever woken, until the writer goes away.
pub(crate) fn run_checkpoints(connection: Connection, wake: std::sync::mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        let checkpoint = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if let Err(error) = checkpoint {
            tracing::warn!(%error, "checkpointing the sqlite WAL failed; the writer will checkpoint");
        }
    }
    if let Err((_, error)) = connection.close() {
        tracing::warn!(%error, "closing the sqlite checkpoint connection failed");
    }
}

/// Runs until every sender is gone, then closes the connection.
pub(crate) fn run(
    mut connection: Connection,
    mut requests: mpsc::Receiver<WriteRequest>,
    head: Arc<watch::Sender<Option<Position>>>,
    counters: Arc<Counters>,
    checkpointer: Option<Checkpointer>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    let mut heads = Heads::default();
    let mut bytes_since_checkpoint = 0;
    let mut gathering = Gathering::new(GroupBounds {
        appends: WRITE_BATCH_MAX,
        events: WRITE_BATCH_EVENTS_MAX,
    });
    // This thread is no task: between looks at the queue it yields the processor to the
    // appenders' threads.
    let pause = || async { std::thread::yield_now() };
    while futures::executor::block_on(gathering.next_group(
        &mut requests,
        &mut batch,
        |item| item.request.events.len(),
        pause,
    )) {
        bytes_since_checkpoint += batch
            .iter()
            .flat_map(|item| &item.request.events)
            .map(|event| event.data.len() + 256)
            .sum::<usize>();
        commit_batch(&mut connection, &mut heads, &mut batch, &head, &counters);
        if bytes_since_checkpoint >= CHECKPOINT_EVERY_BYTES
            && let Some(checkpointer) = &checkpointer
        {
            // Full means a checkpoint is already due: the one waiting will cover these pages.
            let _ = checkpointer.wake.try_send(());
            bytes_since_checkpoint = 0;
        }
    }
    if let Some(Checkpointer { wake, thread }) = checkpointer {
        drop(wake);
        if thread.join().is_err() {
            tracing::error!("the sqlite checkpoint thread panicked");
        }
    }
    if let Err((_, error)) = connection.close() {
        tracing::warn!(%error, "closing the sqlite write connection failed");
    }
}

/// The last version and hash of the streams the writer has written, so an append to a known
/// stream needs no read before its insert.
///
/// `committed` holds heads of committed transactions; `pending` those written by the open
/// transaction, merged into `committed` when it commits and dropped when it does not. A
/// committed head can only be stale if another connection appended to the stream; its next
/// version is then taken, the insert fails on `UNIQUE (stream_id, version)`, and the writer
/// forgets the head and appends again from what the file holds.
#[derive(Default)]
struct Heads {
    committed: HashMap<StreamId, (StreamVersion, EventHash)>,
    pending: HashMap<StreamId, (StreamVersion, EventHash)>,
}

/// Where a stream head came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeadSource {
    /// Written by the open transaction: certainly current.
    Pending,
    /// Remembered from a committed transaction: current unless another connection wrote.
    Committed,
    /// Read from the file inside the open transaction.
    File,
}

impl Heads {
    fn committed(&mut self) {
        if self.committed.len() + self.pending.len() > HEAD_CACHE_MAX {
            self.committed.clear();
        }
        self.committed.extend(self.pending.drain());
    }

    fn rolled_back(&mut self) {
        self.pending.clear();
    }
}

fn commit_batch(
    connection: &mut Connection,
    heads: &mut Heads,
    batch: &mut Vec<WriteRequest>,
    head: &watch::Sender<Option<Position>>,
    counters: &Counters,
) {
    let recorded_at = anquan_event_store::clock::now();
    let mut results: Vec<Result<AppendOutcome, AppendError>> = Vec::with_capacity(batch.len());
    let committed = (|| -> Result<(), StoreError> {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error("begin a write transaction"))?;
        for item in batch.iter() {
            results.push(append_one(&transaction, heads, &item.request, recorded_at));
        }
        transaction.commit().map_err(sql_error("commit appends"))
    })();
    match &committed {
        Ok(()) => heads.committed(),
        Err(_) => heads.rolled_back(),
    }

    let mut last_position = None;
    let mut appends = 0;
    let mut events = 0;
    let mut results = results.into_iter();
    let mut replies = Vec::with_capacity(batch.len());
    for item in batch.drain(..) {
        let result = match &committed {
            // One result was pushed per request once the transaction began.
            Ok(()) => results.next().unwrap_or_else(|| Err(lost_result())),
            // Nothing of the batch was written: a conflict seen inside it may be stale too,
            // so every request gets the storage error.
            Err(error) => Err(AppendError::Store(StoreError::Backend {
                message: format!("append to stream {} was not committed: {error}", item.request.stream_id),
                source: None,
            })),
        };
        if let Ok(outcome) = &result
            && !outcome.duplicate
        {
            appends += 1;
            events += item.request.events.len() as u64;
            last_position = last_position.max(Some(outcome.last_position));
        }
        replies.push((item.reply, result));
    }
    if committed.is_ok() {
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.appends.fetch_add(appends, Ordering::Relaxed);
        counters.events.fetch_add(events, Ordering::Relaxed);
    }
    // The head moves before anyone hears of their append, so an acknowledged append is
    // always covered by the head.
    if let Some(position) = last_position {
        head.send_if_modified(|head| {
            let moved = *head < Some(position);
            if moved {
                *head = Some(position);
            }
            moved
        });
    }
    for (reply, result) in replies {
        // The caller may have gone away (a cancelled request); its append stands regardless.
        let _ = reply.send(result);
    }
}

/// Stands in for a result that cannot be missing.
fn lost_result() -> AppendError {
    AppendError::Store(StoreError::Backend {
        message: "the sqlite writer lost the result of an append".to_owned(),
        source: None,
    })
}

/// Appends one request inside its own savepoint: the command id first (a retry of the same
/// command answers its first outcome, another command with the id is refused), then the
/// expected state.
fn append_one(
    connection: &Connection,
    heads: &mut Heads,
    request: &AppendRequest,
    recorded_at: DateTime<Utc>,
) -> Result<AppendOutcome, AppendError> {
    if let Some(key) = &request.command
        && let Some(first) = command_outcome(connection, key.id)?
    {
        return answer_recorded_command(request, key, first);
    }
    match append_new(connection, heads, request, recorded_at, true) {
        Err(Attempt::StaleHead) => {
            heads.committed.remove(&request.stream_id);
            append_new(connection, heads, request, recorded_at, false).map_err(Attempt::into_error)
        }
        result => result.map_err(Attempt::into_error),
    }
}

/// Why an append attempt failed.
enum Attempt {
    Failed(AppendError),
    /// The remembered head of the stream was stale; nothing was written.
    StaleHead,
}

impl Attempt {
    fn into_error(self) -> AppendError {
        match self {
            Attempt::Failed(error) => error,
            Attempt::StaleHead => AppendError::Store(StoreError::Backend {
                message: "the sqlite writer found a stale stream head twice".to_owned(),
                source: None,
            }),
        }
    }
}

impl From<AppendError> for Attempt {
    fn from(error: AppendError) -> Self {
        Attempt::Failed(error)
    }
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        Attempt::Failed(error.into())
    }
}

/// Runs one cached statement that takes no parameters (the savepoint statements).
fn run_cached(connection: &Connection, sql: &str, stream: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(sql_error_with(|| format!("{sql} for stream {stream}")))
}

/// Checks the expected state against the stream's head, then writes the events and the
/// command id inside a savepoint, released on success and rolled back on failure.
fn append_new(
    connection: &Connection,
    heads: &mut Heads,
    request: &AppendRequest,
    recorded_at: DateTime<Utc>,
    use_cache: bool,
) -> Result<AppendOutcome, Attempt> {
    let stream = request.stream_id.as_str();
    let cached = match heads.pending.get(&request.stream_id) {
        Some(head) => Some((Some(*head), HeadSource::Pending)),
        None if use_cache => heads
            .committed
            .get(&request.stream_id)
            .map(|head| (Some(*head), HeadSource::Committed)),
        None => None,
    };
    let (last, source) = match cached {
        Some(cached) => cached,
        None => (last_of_stream(connection, request)?, HeadSource::File),
    };
    let actual = last.map(|(version, _)| version);
    if !request.expected.admits(actual) {
        if source == HeadSource::Committed {
            // Refuse only on what the file holds.
            return Err(Attempt::StaleHead);
        }
        return Err(Attempt::Failed(AppendError::Conflict {
            stream_id: request.stream_id.clone(),
            expected: request.expected,
            actual,
        }));
    }
    let sealed = seal(request, last, recorded_at);
    let (Some(first), Some(last_event)) = (sealed.first(), sealed.last()) else {
        // validate() refused empty appends before the request reached the writer.
        return Err(Attempt::Failed(AppendError::Invalid {
            stream_id: request.stream_id.clone(),
            reason: anquan_event_store::InvalidAppend::NoEvents,
        }));
    };
    let (first_version, last_version, last_hash) = (first.version, last_event.version, last_event.hash);
    let actor = serde_json::to_string(&request.metadata.actor).map_err(|error| StoreError::Backend {
        message: format!("encode the actor of an append to {stream}"),
        source: Some(Box::new(error)),
    })?;
    run_cached(connection, SAVEPOINT_SQL, stream)?;
    let written = write_events(connection, request, &sealed, &actor, source);
    match written {
        Ok(last_position) => {
            if let Err(error) = run_cached(connection, RELEASE_SQL, stream) {
                roll_back(connection, stream);
                return Err(error.into());
            }
            heads
                .pending
                .insert(request.stream_id.clone(), (last_version, last_hash));
            Ok(AppendOutcome {
                stream_id: request.stream_id.clone(),
                first_version,
                last_version,
                last_position: Position::from_sequence(last_position),
                duplicate: false,
            })
        }
        Err(error) => {
            roll_back(connection, stream);
            Err(error)
        }
    }
}

/// Rolls back and releases the append's savepoint. If even that fails, the commit of the
/// batch fails too, and every request of it gets an error.
fn roll_back(connection: &Connection, stream: &str) {
    let rolled_back =
        run_cached(connection, ROLLBACK_TO_SQL, stream).and_then(|()| run_cached(connection, RELEASE_SQL, stream));
    if let Err(error) = rolled_back {
        tracing::error!(%error, "rolling back a failed sqlite append failed");
    }
}

/// Inserts sealed events and the command id; returns the last event's position.
fn write_events(
    connection: &Connection,
    request: &AppendRequest,
    sealed: &[anquan_event_store::RecordedEvent],
    actor: &str,
    source: HeadSource,
) -> Result<u64, Attempt> {
    let stream = request.stream_id.as_str();
    let mut last_position = 0;
    let mut versions = (0, 0);
    {
        let mut insert = connection
            .prepare_cached(INSERT_EVENT_SQL)
            .map_err(sql_error("prepare the event insert"))?;
        for (index, event) in sealed.iter().enumerate() {
            let metadata = &event.metadata;
            let version = to_i64(event.version.0, "version")?;
            if index == 0 {
                versions.0 = version;
            }
            versions.1 = version;
            let inserted = insert.execute((
                stream,
                version,
                event.event_id.as_bytes(),
                event.event_type.as_str(),
                i64::from(event.schema_version),
                event.data.as_str(),
                metadata.occurred_at.timestamp_micros(),
                event.recorded_at.timestamp_micros(),
                actor,
                metadata.correlation_id.as_bytes(),
                metadata.causation_id.as_ref().map(|id| id.as_bytes()),
                metadata.command_id.as_ref().map(|id| id.0.as_bytes()),
                &event.hash.0,
            ));
            if let Err(error) = inserted {
                if source == HeadSource::Committed && is_unique(&error) {
                    return Err(Attempt::StaleHead);
                }
                return Err(Attempt::Failed(insert_error(connection, request, error)));
            }
            last_position = connection.last_insert_rowid();
        }
    }
    if let Some(key) = &request.command {
        connection
            .prepare_cached(INSERT_COMMAND_SQL)
            .and_then(|mut insert| {
                insert.execute((
                    key.id.0.as_bytes(),
                    stream,
                    versions.0,
                    versions.1,
                    last_position,
                    &key.digest.0[..],
                ))
            })
            .map_err(sql_error_with(|| format!("record command {}", key.id)))?;
    }
    Ok(to_u64(last_position, || "event_log rowid".to_owned())?)
}

fn is_unique(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _) if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Reads the stream's last version and hash, the start of the next seal.
fn last_of_stream(
    connection: &Connection,
    request: &AppendRequest,
) -> Result<Option<(StreamVersion, EventHash)>, StoreError> {
    let stream = request.stream_id.as_str();
    let mut statement = connection
        .prepare_cached(LAST_OF_STREAM_SQL)
        .map_err(sql_error("prepare the stream head lookup"))?;
    let row = statement
        .query_row([stream], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))
        .optional()
        .map_err(sql_error_with(|| format!("read the head of stream {stream}")))?;
    let Some((version, hash)) = row else {
        return Ok(None);
    };
    let location = || format!("event_log stream {stream} version {version}");
    let hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| corrupt(location(), format!("hash has {} bytes, not 32", hash.len())))?;
    Ok(Some((StreamVersion(to_u64(version, location)?), EventHash(hash))))
}

/// Explains a failed insert: an event id already stored is the caller's mistake, anything else
/// the operator's.
fn insert_error(connection: &Connection, request: &AppendRequest, error: rusqlite::Error) -> AppendError {
    let stream = &request.stream_id;
    if is_unique(&error) {
        let stored = request.events.iter().find(|event| {
            connection
                .query_row(
                    "SELECT 1 FROM event_log WHERE event_id = ?1",
                    [event.event_id.as_bytes()],
                    |_| Ok(()),
                )
                .is_ok()
        });
        if let Some(event) = stored {
            return AppendError::Store(StoreError::Backend {
                message: format!("event id {} of an append to {stream} is already stored", event.event_id),
                source: Some(Box::new(error)),
            });
        }
    }
    AppendError::Store(StoreError::backend(
        format!("insert events into stream {stream}"),
        error,
    ))
}
