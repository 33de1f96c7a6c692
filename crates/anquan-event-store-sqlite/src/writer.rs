//! The writer thread: it owns the write connection and commits appends in groups.
//!
//! Appends arrive through a bounded channel. The writer takes every request waiting (up to
//! [`WRITE_BATCH_MAX`]), runs each inside its own savepoint of one transaction, so a request
//! that fails (a conflict, a stored event id) is rolled back alone, commits once, and only then
//! moves the head and answers every request. One fsync thus acknowledges many appends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use anquan_event_store::hash_chain::seal;
use anquan_event_store::{AppendError, AppendOutcome, AppendRequest, EventHash, Position, StoreError, StreamVersion};

use crate::row::{command_outcome, corrupt, to_i64, to_u64};
use crate::schema::sql_error;

/// Most append requests committed in one transaction.
pub(crate) const WRITE_BATCH_MAX: usize = 512;
/// A batch stops taking requests once it holds this many events.
pub(crate) const WRITE_BATCH_EVENTS_MAX: usize = 20_000;
/// Most append requests waiting for the writer; senders wait beyond this.
pub(crate) const WRITE_QUEUE_MAX: usize = 4_096;

const LAST_OF_STREAM_SQL: &str =
    "SELECT version, hash FROM event_log WHERE stream_id = ?1 ORDER BY version DESC LIMIT 1";
const INSERT_EVENT_SQL: &str = "INSERT INTO event_log (stream_id, version, event_id, event_type, schema_version, \
     data, occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_COMMAND_SQL: &str = "INSERT INTO event_commands (command_id, stream_id, first_version, last_version, \
     last_position) VALUES (?1, ?2, ?3, ?4, ?5)";

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

/// Runs until every sender is gone, then closes the connection.
pub(crate) fn run(
    mut connection: Connection,
    mut requests: mpsc::Receiver<WriteRequest>,
    head: Arc<watch::Sender<Option<Position>>>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    while let Some(first) = requests.blocking_recv() {
        let mut events = first.request.events.len();
        batch.push(first);
        while batch.len() < WRITE_BATCH_MAX && events < WRITE_BATCH_EVENTS_MAX {
            match requests.try_recv() {
                Ok(next) => {
                    events += next.request.events.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        commit_batch(&mut connection, &mut batch, &head, &counters);
    }
    if let Err((_, error)) = connection.close() {
        tracing::warn!(%error, "closing the sqlite write connection failed");
    }
}

fn commit_batch(
    connection: &mut Connection,
    batch: &mut Vec<WriteRequest>,
    head: &watch::Sender<Option<Position>>,
    counters: &Counters,
) {
    let recorded_at = Utc::now();
    let mut results: Vec<Result<AppendOutcome, AppendError>> = Vec::with_capacity(batch.len());
    let committed = (|| -> Result<(), StoreError> {
        let mut transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error("begin a write transaction"))?;
        for item in batch.iter() {
            results.push(append_one(&mut transaction, &item.request, recorded_at));
        }
        transaction.commit().map_err(sql_error("commit appends"))
    })();

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

/// Appends one request inside its own savepoint: the command id first, then the expected state.
fn append_one(
    transaction: &mut Transaction<'_>,
    request: &AppendRequest,
    recorded_at: DateTime<Utc>,
) -> Result<AppendOutcome, AppendError> {
    if let Some(command_id) = request.command_id
        && let Some(first) = command_outcome(transaction, command_id)?
    {
        return Ok(first);
    }
    let stream = request.stream_id.as_str();
    let savepoint = transaction
        .savepoint()
        .map_err(sql_error(format!("open a savepoint for stream {stream}")))?;
    let last = last_of_stream(&savepoint, request)?;
    let actual = last.map(|(version, _)| version);
    if !request.expected.admits(actual) {
        // Dropping the savepoint rolls it back; nothing was written anyway.
        return Err(AppendError::Conflict {
            stream_id: request.stream_id.clone(),
            expected: request.expected,
            actual,
        });
    }
    let sealed = seal(request, last, recorded_at);
    let (Some(first), Some(last_event)) = (sealed.first(), sealed.last()) else {
        // validate() refused empty appends before the request reached the writer.
        return Err(AppendError::Invalid {
            stream_id: request.stream_id.clone(),
            reason: anquan_event_store::InvalidAppend::NoEvents,
        });
    };
    let (first_version, last_version) = (first.version, last_event.version);
    let versions = (to_i64(first_version.0, "version")?, to_i64(last_version.0, "version")?);
    let actor = serde_json::to_string(&request.metadata.actor).map_err(|error| StoreError::Backend {
        message: format!("encode the actor of an append to {stream}"),
        source: Some(Box::new(error)),
    })?;
    let mut last_position = 0;
    {
        let mut insert = savepoint
            .prepare_cached(INSERT_EVENT_SQL)
            .map_err(sql_error("prepare the event insert"))?;
        for event in &sealed {
            let metadata = &event.metadata;
            let inserted = insert.execute((
                stream,
                to_i64(event.version.0, "version")?,
                event.event_id.as_bytes(),
                event.event_type.as_str(),
                i64::from(event.schema_version),
                event.data.as_str(),
                metadata.occurred_at.timestamp_micros(),
                event.recorded_at.timestamp_micros(),
                actor.as_str(),
                metadata.correlation_id.as_bytes(),
                metadata.causation_id.as_ref().map(|id| id.as_bytes()),
                metadata.command_id.as_ref().map(|id| id.0.as_bytes()),
                &event.hash.0,
            ));
            if let Err(error) = inserted {
                return Err(insert_error(&savepoint, request, error));
            }
            last_position = savepoint.last_insert_rowid();
        }
    }
    let outcome = AppendOutcome {
        stream_id: request.stream_id.clone(),
        first_version,
        last_version,
        last_position: Position::from_sequence(to_u64(last_position, || "event_log rowid".to_owned())?),
        duplicate: false,
    };
    if let Some(command_id) = request.command_id {
        savepoint
            .prepare_cached(INSERT_COMMAND_SQL)
            .and_then(|mut insert| {
                insert.execute((command_id.0.as_bytes(), stream, versions.0, versions.1, last_position))
            })
            .map_err(sql_error(format!("record command {command_id}")))?;
    }
    savepoint
        .commit()
        .map_err(sql_error(format!("release the savepoint of stream {stream}")))?;
    Ok(outcome)
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
        .map_err(sql_error(format!("read the head of stream {stream}")))?;
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
    let is_unique = matches!(
        &error,
        rusqlite::Error::SqliteFailure(failure, _) if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    );
    if is_unique {
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
