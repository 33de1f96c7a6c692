//! [`SqliteEventStore`]: the embedded default event store, one SQLite file in WAL mode.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, watch};

use anquan_domain::CommandId;
use anquan_event_store::{
    AppendError, AppendOutcome, AppendRequest, BackendTraits, EventStore, Position, READ_BATCH_MAX, RecordedCommand,
    RecordedEvent, StoreError, StreamId, StreamVersion,
};

use crate::row;
use crate::schema::{open_checkpointer, open_reader, open_writer, sql_error};
use crate::writer::{self, Checkpointer, Counters, WRITE_QUEUE_MAX, WriteRequest};

/// Idle read connections kept open; more are opened while reads overlap, then closed.
pub const READ_CONNECTIONS_MAX: usize = 4;
/// How often the head probe asks SQLite whether another connection (another process, such as
/// `anquan projections promote` next to `anquan serve`) committed to the file: one
/// `PRAGMA data_version`, answered from the shared WAL index without reading a page.
pub(crate) const HEAD_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// How durable an acknowledged append is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced: an acknowledged append survives a power loss.
    #[default]
    Full,
    /// WAL commits are fsynced only at checkpoints: an acknowledged append survives a crash of
    /// the process but maybe not of the machine.
    Normal,
}

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock held by another connection (e.g. the read models').
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// What the writer has committed since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SqliteStats {
    /// Write transactions committed (each one fsync with [`Synchronous::Full`]).
    pub transactions: u64,
    /// Appends written (duplicates and refusals not counted).
    pub appends: u64,
    /// Events written.
    pub events: u64,
}

/// Events in one SQLite file: one writer thread committing appends in groups, and a few
/// read-only connections used from blocking tasks.
pub struct SqliteEventStore {
    /// `None` only while dropping, so the writer sees the channel close before it is joined.
    requests: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<ReaderPool>,
    head: Arc<watch::Sender<Option<Position>>>,
    counters: Arc<Counters>,
    /// Moves the head for appends committed by other connections; stops when dropped.
    probe: Option<HeadProbe>,
}

/// The thread that follows commits made by other connections to the same file.
struct HeadProbe {
    /// Dropping it disconnects the channel, which stops the thread.
    stop: std::sync::mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl SqliteEventStore {
    /// Opens the store in `path`, creating the file and its tables if needed.
    ///
    /// This blocks briefly (it opens the file and may create the schema); call it before
    /// serving, or from a blocking task.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let connection = open_writer(path, &options)?;
        let head = last_position(&connection)?;
        let head = Arc::new(watch::Sender::new(head));
        let counters = Arc::new(Counters::default());
        let (requests, receiver) = mpsc::channel(WRITE_QUEUE_MAX);
        let checkpointer = {
            let connection = open_checkpointer(path, &options)?;
            let (wake, woken) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name("anquan-sqlite-checkpoint".to_owned())
                .spawn(move || writer::run_checkpoints(connection, woken))
                .map_err(|error| StoreError::backend("start the sqlite checkpoint thread", error))?;
            Checkpointer { wake, thread }
        };
        let writer = {
            let head = Arc::clone(&head);
            let counters = Arc::clone(&counters);
            std::thread::Builder::new()
                .name("anquan-sqlite-writer".to_owned())
                .spawn(move || writer::run(connection, receiver, head, counters, Some(checkpointer)))
                .map_err(|error| StoreError::backend("start the sqlite writer thread", error))?
        };
        let readers = Arc::new(ReaderPool {
            path: path.to_owned(),
            busy_timeout: options.busy_timeout,
            idle: Mutex::new(Vec::with_capacity(READ_CONNECTIONS_MAX)),
        });
        // Open one reader now, so a file that cannot be read fails here and not on first use.
        let first = open_reader(path, options.busy_timeout)?;
        readers.put_back(first);
        let probe = {
            let connection = open_reader(path, options.busy_timeout)?;
            let head = Arc::clone(&head);
            let (stop, stopped) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name("anquan-sqlite-head".to_owned())
                .spawn(move || run_head_probe(&connection, &head, &stopped))
                .map_err(|error| StoreError::backend("start the sqlite head probe thread", error))?;
            HeadProbe { stop, thread }
        };
        Ok(Self {
            requests: Some(requests),
            writer: Some(writer),
            readers,
            head,
            counters,
            probe: Some(probe),
        })
    }

    /// Returns what the writer has committed since the store was opened.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            appends: self.counters.appends.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
        }
    }

    /// Runs a read on a pooled connection in a blocking task.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.with_reader(read))
            .await
            .map_err(|error| StoreError::backend("run a sqlite read", error))?
    }
}

impl Drop for SqliteEventStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish its batch and close the file; joining
        // makes a reopen right after a drop see a closed file.
        self.requests = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the sqlite writer thread panicked");
        }
        if let Some(HeadProbe { stop, thread }) = self.probe.take() {
            drop(stop);
            if thread.join().is_err() {
                tracing::error!("the sqlite head probe thread panicked");
            }
        }
    }
}

/// Follows commits made to the file by other connections: every [`HEAD_PROBE_INTERVAL`] it
/// reads `PRAGMA data_version`, which changes when another connection (of this process or
/// another) has committed, and then moves the head to the log's last position. The writer
/// moves the head for this store's own appends; this covers everyone else's, so the head watch
/// wakes subscribers for events another process appended, as the trait promises. Returns when
/// `stop` is disconnected.
fn run_head_probe(
    connection: &Connection,
    head: &watch::Sender<Option<Position>>,
    stop: &std::sync::mpsc::Receiver<()>,
) {
    let mut seen: Option<i64> = None;
    let mut failing = false;
    loop {
        match stop.recv_timeout(HEAD_PROBE_INTERVAL) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let probed = connection
            .query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0))
            .map_err(sql_error("read the sqlite data version"))
            .and_then(|version| {
                if seen == Some(version) {
                    return Ok(None);
                }
                last_position(connection).map(|last| Some((version, last)))
            });
        match probed {
            Ok(None) => failing = false,
            Ok(Some((version, last))) => {
                failing = false;
                seen = Some(version);
                head.send_if_modified(|head| {
                    let moved = *head < last;
                    if moved {
                        *head = last;
                    }
                    moved
                });
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "the sqlite head probe cannot read the file; retrying");
                }
                failing = true;
            }
        }
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Backend {
        message: "the sqlite writer thread has stopped".to_owned(),
        source: None,
    }
}

fn last_position(connection: &Connection) -> Result<Option<Position>, StoreError> {
    let last: Option<i64> = connection
        .query_row("SELECT MAX(position) FROM event_log", [], |row| row.get(0))
        .optional()
        .map_err(sql_error("read the last position"))?
        .flatten();
    last.map(|last| row::to_u64(last, || "event_log max position".to_owned()).map(Position::from_sequence))
        .transpose()
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

/// Read-only connections, opened on demand and kept up to [`READ_CONNECTIONS_MAX`].
struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn with_reader<T>(&self, read: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let idle = self.lock().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open_reader(&self.path, self.busy_timeout)?,
        };
        let result = read(&connection);
        self.put_back(connection);
        result
    }

    fn put_back(&self, connection: Connection) {
        let mut idle = self.lock();
        if idle.len() < READ_CONNECTIONS_MAX {
            idle.push(connection);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The lock only guards pushes and pops of whole connections: a panic elsewhere cannot
        // leave the list half-changed, so a poisoned lock is safe to reuse.
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        request.validate()?;
        let requests = self.requests.as_ref().ok_or_else(writer_stopped)?;
        let (reply, outcome) = oneshot::channel();
        requests
            .send(WriteRequest { request, reply })
            .await
            .map_err(|_| writer_stopped())?;
        outcome.await.map_err(|_| writer_stopped())?
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let stream_id = stream_id.clone();
        self.read(move |connection| row::read_stream(connection, &stream_id, from, limit))
            .await
    }

    async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let after = after.map_or(0, Position::sequence);
        self.read(move |connection| row::read_all(connection, after, limit))
            .await
    }

    async fn command_outcome(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        // Command ids are unique across the store (the writer refuses one recorded on another
        // stream), so the row found by id is this stream's or none of it.
        let recorded = self
            .read(move |connection| row::command_outcome(connection, command_id))
            .await?;
        Ok(recorded.filter(|recorded| recorded.outcome.stream_id == *stream_id))
    }

    fn head(&self) -> watch::Receiver<Option<Position>> {
        self.head.subscribe()
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    /// Positions are `event_log`'s integer key, handed out by one writer without gaps, and
    /// `event_commands` is keyed by the command id alone.
    fn traits(&self) -> BackendTraits {
        BackendTraits {
            dense_positions: true,
            store_wide_command_ids: true,
        }
    }
}
