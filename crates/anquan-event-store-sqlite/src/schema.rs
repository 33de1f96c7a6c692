//! The event log's tables in the SQLite file, and how its connections are opened.
//!
//! The tables are prefixed `event_` so the read models of the projections, which live in the
//! same file behind their own connections, cannot collide with them.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use anquan_event_store::StoreError;

use crate::store::{SqliteOptions, Synchronous};

/// The layout version of the event tables; a later layout migrates from the stored one.
/// 2: `event_commands.digest`, the digest a command id is bound to.
pub(crate) const STORE_SCHEMA_VERSION: i64 = 2;

/// Prepared statements each connection keeps.
const STATEMENT_CACHE_CAPACITY: usize = 32;
/// Memory-mapped bytes per connection: reads of a large log avoid a copy through the page cache.
const MMAP_BYTES_MAX: i64 = 1 << 30;
/// Page cache per connection, in KiB (negative means KiB to SQLite).
const CACHE_KIB: i64 = 32 * 1024;
/// WAL pages after which the writer checkpoints by itself: only if the checkpoint thread,
/// which normally runs far more often, falls behind.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS event_store_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS event_log (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_id BLOB NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    data TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    correlation_id BLOB NOT NULL,
    causation_id BLOB,
    command_id BLOB,
    hash BLOB NOT NULL,
    UNIQUE (stream_id, version)
) STRICT;
CREATE TABLE IF NOT EXISTS event_commands (
    command_id BLOB PRIMARY KEY NOT NULL,
    stream_id TEXT NOT NULL,
    first_version INTEGER NOT NULL,
    last_version INTEGER NOT NULL,
    last_position INTEGER NOT NULL,
    digest BLOB
) STRICT, WITHOUT ROWID;
";

/// Migrations from each older layout version to the next, in order: index 0 takes version 1
/// to 2. A file made by an older build keeps its rows; a command recorded before digests were
/// kept has none (`NULL`) and matches a retry on its stream alone.
const MIGRATIONS: &[&str] = &["ALTER TABLE event_commands ADD COLUMN digest BLOB;"];

/// Explains a SQLite error; allocates only when there is one (the hot paths call it per row).
pub(crate) fn sql_error(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |error| StoreError::backend(what, error)
}

/// Explains a SQLite error with a message built only when there is one.
pub(crate) fn sql_error_with(what: impl FnOnce() -> String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |error| StoreError::backend(what(), error)
}

/// Opens the write connection, creating the file and the tables if needed, in WAL mode.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let where_ = path.display();
    let mut connection = Connection::open(path).map_err(sql_error_with(|| format!("open sqlite file {where_}")))?;
    configure(&connection, options.busy_timeout).map_err(sql_error_with(|| format!("configure {where_}")))?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql_error_with(|| format!("switch {where_} to WAL")))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            message: format!("sqlite file {where_} cannot use WAL (journal mode {mode})"),
            source: None,
        });
    }
    let synchronous = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection
        .execute_batch(&format!(
            "PRAGMA synchronous = {synchronous}; PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};"
        ))
        .map_err(sql_error_with(|| format!("set synchronous on {where_}")))?;

    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_error_with(|| format!("lock {where_} to create the schema")))?;
    transaction
        .execute_batch(SCHEMA)
        .map_err(sql_error_with(|| format!("create the event tables in {where_}")))?;
    transaction
        .execute(
            "INSERT OR IGNORE INTO event_store_meta (key, value) VALUES ('store_schema_version', ?1)",
            [STORE_SCHEMA_VERSION],
        )
        .map_err(sql_error_with(|| format!("record the schema version in {where_}")))?;
    let stored_version = |transaction: &rusqlite::Transaction<'_>| -> Result<Option<i64>, StoreError> {
        transaction
            .query_row(
                "SELECT value FROM event_store_meta WHERE key = 'store_schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_error_with(|| format!("read the schema version of {where_}")))
    };
    let stored = stored_version(&transaction)?;
    if let Some(stored) = stored
        && (1..STORE_SCHEMA_VERSION).contains(&stored)
    {
        for (index, ddl) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(stored - 1).unwrap_or(0))
        {
            transaction
                .execute_batch(ddl)
                .map_err(sql_error_with(|| format!("migrate the event tables of {where_}")))?;
            tracing::info!(version = index + 2, "applied sqlite event store migration");
        }
        transaction
            .execute(
                "UPDATE event_store_meta SET value = ?1 WHERE key = 'store_schema_version'",
                [STORE_SCHEMA_VERSION],
            )
            .map_err(sql_error_with(|| format!("record the schema version in {where_}")))?;
    }
    let stored = stored_version(&transaction)?;
    if stored != Some(STORE_SCHEMA_VERSION) {
        return Err(StoreError::Backend {
            message: format!(
                "sqlite file {where_} has event store schema version {stored:?}; this build knows {STORE_SCHEMA_VERSION}"
            ),
            source: None,
        });
    }
    transaction
        .commit()
        .map_err(sql_error_with(|| format!("commit the schema of {where_}")))?;
    Ok(connection)
}

/// Opens the connection that checkpoints the WAL beside the writer, with the writer's
/// synchronous setting so a checkpoint syncs the file as the writer's own would.
pub(crate) fn open_checkpointer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let where_ = path.display();
    let connection =
        Connection::open(path).map_err(sql_error_with(|| format!("open sqlite file {where_} to checkpoint")))?;
    connection
        .busy_timeout(options.busy_timeout)
        .map_err(sql_error_with(|| format!("configure the checkpointer of {where_}")))?;
    let synchronous = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection
        .execute_batch(&format!(
            "PRAGMA synchronous = {synchronous}; PRAGMA wal_autocheckpoint = 0;"
        ))
        .map_err(sql_error_with(|| format!("configure the checkpointer of {where_}")))?;
    Ok(connection)
}

/// Opens a read-only connection to a file the writer has already created.
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let where_ = path.display();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)
        .map_err(sql_error_with(|| format!("open sqlite file {where_} for reading")))?;
    configure(&connection, busy_timeout).map_err(sql_error_with(|| format!("configure a reader of {where_}")))?;
    Ok(connection)
}

fn configure(connection: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    connection.busy_timeout(busy_timeout)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    connection.execute_batch(&format!(
        "PRAGMA mmap_size = {MMAP_BYTES_MAX}; PRAGMA cache_size = -{CACHE_KIB};"
    ))?;
    Ok(())
}
