//! The SQLite read-model store: projection tables in the same file as the event log, written
//! through one connection and read through a few others (WAL lets readers run beside the writer).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::watch;

use std::borrow::Cow;

use anquan_event_store::read_model::{
    LEASE_TERM_SQL, LEASES_DDL, RELEASE_LEASE_SQL, check_expected, check_fence, claim_lease_sql, leases_sql,
    sqlite_timestamp, storable_instant, storable_json, storable_text,
};
use anquan_event_store::{
    CheckpointExpected, Dialect, LeaseClaim, LeaseHolder, LeaseTerm, Position, ProjectionBatch, ReadModelError,
    ReadModelStore, Row, SqlValue, Statement,
};

/// SQLite's clock in milliseconds since the Unix epoch, for leases.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
const CHECKPOINT_READ: &str =
    "SELECT commit_position, prepare_position FROM projection_checkpoints WHERE projection = $1";

/// Read connections kept open beside the write connection.
const READ_CONNECTIONS_MAX: usize = 4;
/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements each connection keeps: the projections write with a few dozen distinct
/// statements, more than rusqlite's default of 16, and a miss re-parses the SQL.
const STATEMENT_CACHE_CAPACITY: usize = 64;
/// Page cache of the write connection, in KiB: the pages a batch updates (documents and their
/// indexes) stay in memory instead of being re-read through the OS for every statement.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of the write connection while it rebuilds a fresh file, in KiB. The scale-10
/// demo (a 2.3 GB read-model file) rebuilt no faster with 1.5 GiB or with a 4 GiB memory map.
const REBUILD_CACHE_KIB: i64 = 512 * 1024;
/// WAL pages after which the write connection checkpoints by itself, as the event store's
/// writer does: at SQLite's default of 1,000 pages a catch-up spent a quarter of its time
/// copying the same pages into the file (and syncing it) again and again.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

const CHECKPOINTS_DDL: &str = "CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    commit_position INTEGER NOT NULL,
    prepare_position INTEGER NOT NULL
)";

/// How the write connection commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadModelDurability {
    /// Every batch is fsynced with its checkpoint: the live read models.
    #[default]
    Durable,
    /// For a rebuild into a file of its own (never one holding the event log), which the log
    /// can always rebuild again: a large page cache, the rollback journal in memory and no
    /// fsync, so a commit writes each changed page once instead of to the WAL and then again
    /// into the file. A failed batch still rolls back, and a cancelled rebuild resumes from its
    /// checkpoints; a crash during a commit may corrupt the file, which is then deleted and
    /// rebuilt. [`SqliteReadModelStore::make_durable`] ends it.
    Rebuild,
}

/// Read models in a SQLite file: one write connection behind a mutex, a few read connections.
#[derive(Clone)]
pub struct SqliteReadModelStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Bumped for every batch committed through this store. Another process's commits (a
    /// rebuild beside `serve`) are seen by the followers' poll.
    moves: watch::Sender<u64>,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl std::fmt::Debug for SqliteReadModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReadModelStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteReadModelStore {
    /// Opens (creating if needed) the database file, in WAL mode with full synchronous writes,
    /// and creates the checkpoint table.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, ReadModelError> {
        Self::open_with(path, ReadModelDurability::Durable).await
    }

    /// Opens (creating if needed) the database file with the given durability.
    pub async fn open_with(path: impl AsRef<Path>, durability: ReadModelDurability) -> Result<Self, ReadModelError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, durability))
            .await
            .map_err(|error| ReadModelError::backend("sqlite open task failed", error))?
    }

    fn open_blocking(path: PathBuf, durability: ReadModelDurability) -> Result<Self, ReadModelError> {
        let (journal_mode, synchronous, cache_kib) = match durability {
            ReadModelDurability::Durable => ("WAL", "FULL", WRITER_CACHE_KIB),
            ReadModelDurability::Rebuild => ("MEMORY", "OFF", REBUILD_CACHE_KIB),
        };
        let writer = open_connection(&path, OpenFlags::default(), journal_mode)?;
        // `secure_delete`: a row an erasure rewrites leaves no old bytes in the page's free
        // space (ARCHITECTURE.md, "Erasable personal data").
        writer
            .execute_batch(&format!(
                "PRAGMA synchronous = {synchronous}; PRAGMA cache_size = -{cache_kib}; \
                 PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}; PRAGMA secure_delete = ON;"
            ))
            .map_err(|error| backend("configure the read-model writer", error))?;
        writer
            .execute_batch(CHECKPOINTS_DDL)
            .map_err(|error| backend("create projection_checkpoints", error))?;
        writer
            .execute_batch(LEASES_DDL)
            .map_err(|error| backend("create projection_leases", error))?;
        let mut readers = Vec::with_capacity(READ_CONNECTIONS_MAX);
        for _ in 0..READ_CONNECTIONS_MAX {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            readers.push(Mutex::new(open_connection(&path, flags, journal_mode)?));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                moves: watch::Sender::new(0),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// Returns the database file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Makes everything committed so far durable and every later batch crash-safe and fsynced:
    /// puts the file in WAL mode with full synchronous commits, then syncs it and its folder.
    /// Ends a [`ReadModelDurability::Rebuild`]; harmless on a durable store.
    pub async fn make_durable(&self) -> Result<(), ReadModelError> {
        let path = self.inner.path.clone();
        self.with_writer(move |connection| {
            connection
                .execute_batch(&format!(
                    "PRAGMA synchronous = FULL; PRAGMA cache_size = -{WRITER_CACHE_KIB};"
                ))
                .map_err(|error| backend("set synchronous FULL", error))?;
            connection
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(|error| backend("enable WAL", error))?;
            // The commits before were not synced: sync the whole file (any descriptor will do)
            // and the folder, for a file the rebuild created.
            let sync = |path: &Path| std::fs::File::open(path).and_then(|file| file.sync_all());
            sync(&path).map_err(|error| ReadModelError::backend(format!("sync {}", path.display()), error))?;
            if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
                sync(folder).map_err(|error| ReadModelError::backend(format!("sync {}", folder.display()), error))?;
            }
            Ok(())
        })
        .await
    }

    /// Runs `work` on the write connection on the blocking pool.
    async fn with_writer<T, F>(&self, work: F) -> Result<T, ReadModelError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ReadModelError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&mut lock(&inner.writer)))
            .await
            .map_err(|error| ReadModelError::backend("sqlite write task failed", error))?
    }

    /// Runs `work` on one of the read connections on the blocking pool.
    async fn with_reader<T, F>(&self, work: F) -> Result<T, ReadModelError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ReadModelError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A free reader if there is one: a long read (the metrics watcher's pass over every
            // file, seconds per round at province scale) must not hold up the requests whose
            // turn in the rotation falls on its connection. Otherwise wait in rotation.
            if let Some(free) = inner.readers.iter().find_map(try_lock) {
                return work(&free);
            }
            let index = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len().max(1);
            match inner.readers.get(index) {
                Some(reader) => work(&lock(reader)),
                None => work(&lock(&inner.writer)),
            }
        })
        .await
        .map_err(|error| ReadModelError::backend("sqlite read task failed", error))?
    }
}

#[async_trait]
impl ReadModelStore for SqliteReadModelStore {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn migrate(&self, ddl: &str) -> Result<(), ReadModelError> {
        let ddl = ddl.to_owned();
        self.with_writer(move |connection| {
            connection
                .execute_batch(&ddl)
                .map_err(|error| backend("run read-model migration", error))
        })
        .await
    }

    async fn apply(&self, batch: Arc<ProjectionBatch>) -> Result<(), ReadModelError> {
        self.apply_together(&[batch]).await
    }

    async fn settle_erasure(&self) -> Result<(), ReadModelError> {
        // One file holds events, keys and read models: a full checkpoint copies the rewritten
        // pages over the file's stale ones (with `secure_delete`, freed space is zeroed) and
        // truncates the WAL. A reader holding an old snapshot makes it partial; it is logged.
        self.with_writer(|connection| {
            let (busy, _, _): (i64, i64, i64) = connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .map_err(|error| backend("checkpoint after an erasure", error))?;
            if busy != 0 {
                tracing::warn!("a reader held the WAL: the checkpoint after an erasure was partial");
            }
            Ok(())
        })
        .await
    }

    async fn apply_together(&self, batches: &[Arc<ProjectionBatch>]) -> Result<(), ReadModelError> {
        let batches = batches.to_vec();
        self.with_writer(move |connection| {
            // Immediate: the checks below read under the write lock, so nothing moves between
            // them and the commit (another process may write the file too).
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|error| backend("begin projection batch", error))?;
            if let Some(lease) = batches.iter().find_map(|batch| batch.lease.as_ref()) {
                let rows = query_rows(&transaction, LEASE_TERM_SQL, &[SqlValue::Text(lease.group.clone())])?;
                let current = rows.first().map(|row| row.int(0)).transpose()?;
                check_fence(lease, current)?;
            }
            for batch in &batches {
                if batch.after != CheckpointExpected::Any {
                    let rows = query_rows(
                        &transaction,
                        CHECKPOINT_READ,
                        &[SqlValue::Text(batch.projection.clone())],
                    )?;
                    let found = rows.first().map(checkpoint_of).transpose()?;
                    check_expected(batch, found)?;
                }
                execute_all(&transaction, &batch.statements)?;
                let checkpoint = [
                    SqlValue::Text(batch.projection.clone()),
                    position_value(batch.checkpoint.commit)?,
                    position_value(batch.checkpoint.prepare)?,
                ];
                execute(
                    &transaction,
                    "INSERT INTO projection_checkpoints (projection, commit_position, prepare_position) \
                     VALUES ($1, $2, $3) ON CONFLICT (projection) DO UPDATE SET \
                     commit_position = excluded.commit_position, prepare_position = excluded.prepare_position",
                    &checkpoint,
                )?;
            }
            transaction
                .commit()
                .map_err(|error| backend("commit projection batch", error))
        })
        .await?;
        self.inner.moves.send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<Position>, ReadModelError> {
        let rows = self
            .query(CHECKPOINT_READ, &[SqlValue::Text(projection.to_owned())])
            .await?;
        rows.first().map(checkpoint_of).transpose()
    }

    async fn reset(&self, projection: &str, statements: Vec<Statement>) -> Result<(), ReadModelError> {
        let projection = projection.to_owned();
        self.with_writer(move |connection| {
            let transaction = connection
                .transaction()
                .map_err(|error| backend("begin projection reset", error))?;
            execute_all(&transaction, &statements)?;
            execute(
                &transaction,
                "DELETE FROM projection_checkpoints WHERE projection = $1",
                &[SqlValue::Text(projection)],
            )?;
            transaction
                .commit()
                .map_err(|error| backend("commit projection reset", error))
        })
        .await?;
        self.inner.moves.send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, ReadModelError> {
        let sql = sql.to_owned();
        let params = params.to_vec();
        self.with_reader(move |connection| query_rows(connection, &sql, &params))
            .await
    }

    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, ReadModelError> {
        let rows = self
            .query(
                "SELECT projection, commit_position, prepare_position FROM projection_checkpoints",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let position = checkpoint_of(&Row(row.0.iter().skip(1).cloned().collect()))?;
                Ok((row.text(0)?, position))
            })
            .collect()
    }

    async fn claim_lease(&self, claim: &LeaseClaim) -> Result<Option<LeaseTerm>, ReadModelError> {
        let claim = claim.clone();
        self.with_writer(move |connection| {
            let rows = query_rows(
                connection,
                &claim_lease_sql(NOW_MS),
                &[
                    SqlValue::Text(claim.group.clone()),
                    SqlValue::Text(claim.holder.clone()),
                    SqlValue::Int(claim.renewing.unwrap_or(-1)),
                    SqlValue::Int(claim.duration_ms),
                    SqlValue::Int(i64::from(claim.force)),
                ],
            )?;
            rows.first()
                .map(|row| {
                    Ok(LeaseTerm {
                        group: claim.group.clone(),
                        term: row.int(0)?,
                    })
                })
                .transpose()
        })
        .await
    }

    async fn release_lease(&self, lease: &LeaseTerm, holder: &str) -> Result<(), ReadModelError> {
        let params = [
            SqlValue::Text(lease.group.clone()),
            SqlValue::Text(holder.to_owned()),
            SqlValue::Int(lease.term),
        ];
        self.with_writer(move |connection| execute(connection, RELEASE_LEASE_SQL, &params).map(|_| ()))
            .await
    }

    async fn leases(&self) -> Result<Vec<LeaseHolder>, ReadModelError> {
        let rows = self.query(&leases_sql(NOW_MS), &[]).await?;
        rows.iter()
            .map(|row| {
                Ok(LeaseHolder {
                    group: row.text(0)?,
                    term: row.int(1)?,
                    holder: row.text(2)?,
                    expires_in_ms: row.int(3)?,
                })
            })
            .collect()
    }

    fn checkpoint_moves(&self) -> watch::Receiver<u64> {
        self.inner.moves.subscribe()
    }
}

/// A checkpoint from its row's first two columns (commit, prepare).
fn checkpoint_of(row: &Row) -> Result<Position, ReadModelError> {
    let part = |column| {
        u64::try_from(row.int(column)?).map_err(|_| ReadModelError::Type {
            column,
            expected: "non-negative position",
            found: format!("{:?}", row.0.get(column)),
        })
    };
    Ok(Position {
        commit: part(0)?,
        prepare: part(1)?,
    })
}

fn open_connection(path: &Path, flags: OpenFlags, journal_mode: &str) -> Result<Connection, ReadModelError> {
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|error| backend(format!("open sqlite database {}", path.display()), error))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|error| backend("set busy_timeout", error))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        connection
            .pragma_update(None, "journal_mode", journal_mode)
            .map_err(|error| backend(format!("set journal mode {journal_mode}"), error))?;
    }
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|error| backend("set synchronous FULL", error))?;
    Ok(connection)
}

fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic inside a closure cannot leave a transaction open past the guard: rusqlite rolls
    // back a dropped transaction, so a poisoned connection is safe to reuse.
    connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The connection if no one holds it (poisoned is free, as in [`lock`]).
fn try_lock(connection: &Mutex<Connection>) -> Option<MutexGuard<'_, Connection>> {
    match connection.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

fn backend(message: impl Into<String>, error: rusqlite::Error) -> ReadModelError {
    ReadModelError::backend(message, error)
}

fn position_value(part: u64) -> Result<SqlValue, ReadModelError> {
    i64::try_from(part)
        .map(SqlValue::Int)
        .map_err(|_| ReadModelError::Backend {
            message: format!("position {part} does not fit a sqlite integer"),
            source: None,
        })
}

/// Runs statements in order. A batch repeats a few distinct statements thousands of times, so
/// each distinct one is taken from the cache and has its parameters mapped once per batch,
/// not once per execution.
fn execute_all(transaction: &Transaction<'_>, statements: &[Statement]) -> Result<(), ReadModelError> {
    let mut prepared: Vec<Prepared<'_, '_>> = Vec::new();
    for statement in statements {
        let sql: &str = &statement.sql;
        let slot = match prepared.iter().position(|known| known.is(sql)) {
            Some(slot) => slot,
            None => {
                prepared.push(Prepared::new(transaction, sql)?);
                prepared.len() - 1
            }
        };
        // `slot` was just found or pushed, so the lookup cannot miss.
        if let Some(known) = prepared.get_mut(slot) {
            known.execute(&statement.params)?;
        }
    }
    Ok(())
}

/// A statement prepared for a batch, with the SQLite index of each `$N`.
struct Prepared<'c, 's> {
    sql: &'s str,
    statement: rusqlite::CachedStatement<'c>,
    /// `indexes[N - 1]` is where `$N` binds.
    indexes: Vec<usize>,
}

impl<'c, 's> Prepared<'c, 's> {
    fn new(connection: &'c Connection, sql: &'s str) -> Result<Self, ReadModelError> {
        let statement = connection
            .prepare_cached(sql)
            .map_err(|error| backend(format!("prepare {}", sql_head(sql)), error))?;
        let mut indexes = Vec::with_capacity(statement.parameter_count());
        for number in 1..=statement.parameter_count() {
            indexes.push(parameter_index(&statement, sql, number)?);
        }
        Ok(Self {
            sql,
            statement,
            indexes,
        })
    }

    /// Whether this is the statement for `sql` (the same constant, usually: compared by
    /// address first).
    fn is(&self, sql: &str) -> bool {
        std::ptr::eq(self.sql, sql) || self.sql == sql
    }

    fn execute(&mut self, params: &[SqlValue]) -> Result<usize, ReadModelError> {
        if params.len() != self.indexes.len() {
            return Err(parameter_count_mismatch(self.sql, self.indexes.len(), params.len()));
        }
        // Every parameter is bound on every execution, so no earlier value can leak into this one.
        for ((number, param), index) in params.iter().enumerate().zip(&self.indexes) {
            self.statement
                .raw_bind_parameter(*index, Param(param))
                .map_err(|error| backend(format!("bind parameter ${}", number + 1), error))?;
        }
        self.statement
            .raw_execute()
            .map_err(|error| backend(format!("execute {}", sql_head(self.sql)), error))
    }
}

fn execute(connection: &Connection, sql: &str, params: &[SqlValue]) -> Result<usize, ReadModelError> {
    let mut statement = prepare_bound(connection, sql, params)?;
    statement
        .raw_execute()
        .map_err(|error| backend(format!("execute {}", sql_head(sql)), error))
}

fn query_rows(connection: &Connection, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, ReadModelError> {
    let mut statement = prepare_bound(connection, sql, params)?;
    let column_count = statement.column_count();
    let mut rows = statement.raw_query();
    let mut result = Vec::new();
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(result),
            Err(error) => return Err(backend(format!("query {}", sql_head(sql)), error)),
        };
        let mut values = Vec::with_capacity(column_count);
        for column in 0..column_count {
            let value = row
                .get_ref(column)
                .map_err(|error| backend(format!("read column {column}"), error))?;
            values.push(from_sqlite(value, column)?);
        }
        result.push(Row(values));
    }
}

/// Prepares a statement and binds every `$N` by name: SQLite numbers `$N` parameters in order
/// of first appearance, so `$2` used before `$1` would otherwise receive the wrong value.
fn prepare_bound<'c>(
    connection: &'c Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<rusqlite::CachedStatement<'c>, ReadModelError> {
    let mut statement = connection
        .prepare_cached(sql)
        .map_err(|error| backend(format!("prepare {}", sql_head(sql)), error))?;
    statement.clear_bindings();
    if statement.parameter_count() != params.len() {
        return Err(parameter_count_mismatch(sql, statement.parameter_count(), params.len()));
    }
    for (offset, param) in params.iter().enumerate() {
        let number = offset + 1;
        let index = parameter_index(&statement, sql, number)?;
        statement
            .raw_bind_parameter(index, Param(param))
            .map_err(|error| backend(format!("bind parameter ${number}"), error))?;
    }
    Ok(statement)
}

/// Returns where `$number` binds in a prepared statement.
fn parameter_index(statement: &rusqlite::Statement<'_>, sql: &str, number: usize) -> Result<usize, ReadModelError> {
    // Usually `$N` is the N-th parameter: bind it there without building its name.
    let in_place = statement
        .parameter_name(number)
        .and_then(|name| name.strip_prefix('$'))
        .is_some_and(|digits| !digits.starts_with('0') && digits.parse::<usize>() == Ok(number));
    if in_place {
        return Ok(number);
    }
    let name = format!("${number}");
    statement
        .parameter_index(&name)
        .map_err(|error| backend(format!("look up parameter {name}"), error))?
        .ok_or_else(|| ReadModelError::Backend {
            message: format!("statement {} does not use parameter {name}", sql_head(sql)),
            source: None,
        })
}

fn parameter_count_mismatch(sql: &str, expected: usize, got: usize) -> ReadModelError {
    ReadModelError::Backend {
        message: format!("statement {} takes {expected} parameters, got {got}", sql_head(sql)),
        source: None,
    }
}

/// A parameter bound without copying its text (the projections' batches are mostly text).
struct Param<'a>(&'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            SqlValue::Null => ToSqlOutput::Owned(Value::Null),
            SqlValue::Bool(value) => ToSqlOutput::Owned(Value::Integer(i64::from(*value))),
            SqlValue::Int(value) => ToSqlOutput::Owned(Value::Integer(*value)),
            SqlValue::Real(value) => ToSqlOutput::Owned(Value::Real(*value)),
            SqlValue::Text(value) => match storable_text(value) {
                Cow::Borrowed(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
                Cow::Owned(value) => ToSqlOutput::Owned(Value::Text(value)),
            },
            SqlValue::Json(value) => match storable_json(value) {
                Cow::Borrowed(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
                Cow::Owned(value) => ToSqlOutput::Owned(Value::Text(value)),
            },
            SqlValue::Timestamp(value) => ToSqlOutput::Owned(Value::Text(sqlite_timestamp(&storable_instant(value)))),
        })
    }
}

fn from_sqlite(value: ValueRef<'_>, column: usize) -> Result<SqlValue, ReadModelError> {
    Ok(match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(value) => SqlValue::Int(value),
        ValueRef::Real(value) => SqlValue::Real(value),
        ValueRef::Text(bytes) => {
            SqlValue::Text(String::from_utf8(bytes.to_vec()).map_err(|_| ReadModelError::Type {
                column,
                expected: "utf-8 text",
                found: "invalid utf-8".to_owned(),
            })?)
        }
        ValueRef::Blob(_) => {
            return Err(ReadModelError::Type {
                column,
                expected: "integer, real, text or null",
                found: "blob".to_owned(),
            });
        }
    })
}

/// The start of a statement, for error messages (never its parameters).
fn sql_head(sql: &str) -> String {
    let compact: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    compact.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    async fn store() -> (tempfile::TempDir, SqliteReadModelStore) {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteReadModelStore::open(directory.path().join("anquan.db"))
            .await
            .unwrap();
        store
            .migrate("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, count INTEGER, at TEXT, flag INTEGER, score REAL, note TEXT)")
            .await
            .unwrap();
        (directory, store)
    }

    fn insert(id: &str, count: i64) -> Statement {
        Statement::new(
            "INSERT INTO items (id, count) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET count = excluded.count",
            vec![SqlValue::Text(id.into()), SqlValue::Int(count)],
        )
    }

    #[tokio::test]
    async fn parameters_are_bound_by_number_not_by_first_use() {
        let (_directory, store) = store().await;
        let at = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
        let statement = Statement::new(
            "INSERT INTO items (note, flag, at, score, count, id) VALUES ($6, $5, $4, $3, $2, $1)",
            vec![
                SqlValue::Text("a".into()),
                SqlValue::Int(7),
                SqlValue::Real(1.5),
                SqlValue::Timestamp(at),
                SqlValue::Bool(true),
                SqlValue::Json("{\"k\":1}".into()),
            ],
        );
        store
            .apply(Arc::new(ProjectionBatch::new(
                "test",
                vec![statement],
                Position::from_sequence(3),
            )))
            .await
            .unwrap();
        let rows = store
            .query(
                "SELECT id, count, score, at, flag, note FROM items WHERE id = $1",
                &[SqlValue::Text("a".into())],
            )
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![Row(vec![
                SqlValue::Text("a".into()),
                SqlValue::Int(7),
                SqlValue::Real(1.5),
                SqlValue::Text("2024-05-06T07:08:09.000000Z".into()),
                SqlValue::Int(1),
                SqlValue::Text("{\"k\":1}".into()),
            ])]
        );
        assert_eq!(rows[0].timestamp(3).unwrap(), at);
        assert!(rows[0].bool(4).unwrap());
        assert_eq!(
            store.checkpoint("test").await.unwrap(),
            Some(Position::from_sequence(3))
        );
    }

    #[tokio::test]
    async fn a_failing_batch_leaves_rows_and_checkpoint_unchanged() {
        let (_directory, store) = store().await;
        let first = ProjectionBatch::new("test", vec![insert("a", 1)], Position::from_sequence(1));
        store.apply(Arc::new(first)).await.unwrap();
        let failing = ProjectionBatch::new(
            "test",
            vec![
                insert("a", 2),
                Statement::new("INSERT INTO missing_table VALUES ($1)", vec![SqlValue::Int(1)]),
            ],
            Position::from_sequence(2),
        );
        assert!(store.apply(Arc::new(failing)).await.is_err());
        let rows = store.query("SELECT id, count FROM items", &[]).await.unwrap();
        assert_eq!(rows, vec![Row(vec![SqlValue::Text("a".into()), SqlValue::Int(1)])]);
        assert_eq!(
            store.checkpoint("test").await.unwrap(),
            Some(Position::from_sequence(1))
        );
    }

    #[tokio::test]
    async fn batches_applied_together_commit_together_or_not_at_all() {
        let (_directory, store) = store().await;
        let batch = |projection: &str, statements, checkpoint| {
            Arc::new(ProjectionBatch::new(
                projection.to_owned(),
                statements,
                Position::from_sequence(checkpoint),
            ))
        };
        let failing = Statement::new("INSERT INTO missing_table VALUES ($1)", vec![SqlValue::Int(1)]);
        assert!(
            store
                .apply_together(&[batch("a", vec![insert("x", 1)], 5), batch("b", vec![failing], 5)])
                .await
                .is_err()
        );
        assert!(store.query("SELECT id FROM items", &[]).await.unwrap().is_empty());
        assert_eq!(store.checkpoint("a").await.unwrap(), None);
        store
            .apply_together(&[batch("a", vec![insert("x", 1)], 6), batch("b", vec![], 6)])
            .await
            .unwrap();
        let rows = store.query("SELECT id, count FROM items", &[]).await.unwrap();
        assert_eq!(rows, vec![Row(vec![SqlValue::Text("x".into()), SqlValue::Int(1)])]);
        for projection in ["a", "b"] {
            assert_eq!(
                store.checkpoint(projection).await.unwrap(),
                Some(Position::from_sequence(6))
            );
        }
    }

    #[tokio::test]
    async fn reset_clears_rows_and_checkpoint_together() {
        let (_directory, store) = store().await;
        store
            .apply(Arc::new(ProjectionBatch::new(
                "test",
                vec![insert("a", 1), insert("b", 2)],
                Position::from_sequence(9),
            )))
            .await
            .unwrap();
        store
            .reset("test", vec![Statement::new("DELETE FROM items", vec![])])
            .await
            .unwrap();
        assert!(store.query("SELECT id FROM items", &[]).await.unwrap().is_empty());
        assert_eq!(store.checkpoint("test").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_parameter_count_mismatch_is_an_error_not_a_null() {
        let (_directory, store) = store().await;
        let error = store
            .query(
                "SELECT id FROM items WHERE id = $1 AND count = $2",
                &[SqlValue::Text("a".into())],
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("takes 2 parameters, got 1"), "{error}");
    }

    #[tokio::test]
    async fn a_rebuild_store_becomes_a_durable_wal_store() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("rebuilt.db");
        let store = SqliteReadModelStore::open_with(&path, ReadModelDurability::Rebuild)
            .await
            .unwrap();
        store
            .migrate("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, count INTEGER)")
            .await
            .unwrap();
        let batch = |id: &str, count, position| {
            Arc::new(ProjectionBatch::new(
                "test",
                vec![insert(id, count)],
                Position::from_sequence(position),
            ))
        };
        store.apply(batch("a", 1, 1)).await.unwrap();
        let failing = Arc::new(ProjectionBatch::new(
            "test",
            vec![
                insert("b", 2),
                Statement::new("INSERT INTO missing_table VALUES (1)", vec![]),
            ],
            Position::from_sequence(2),
        ));
        assert!(store.apply(failing).await.is_err(), "the failed batch rolls back");
        store.make_durable().await.unwrap();
        store.apply(batch("c", 3, 3)).await.unwrap();
        let rows = store
            .query("SELECT id, count FROM items ORDER BY id", &[])
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![
                Row(vec![SqlValue::Text("a".into()), SqlValue::Int(1)]),
                Row(vec![SqlValue::Text("c".into()), SqlValue::Int(3)]),
            ]
        );
        assert_eq!(
            store.checkpoint("test").await.unwrap(),
            Some(Position::from_sequence(3))
        );
        // Bytes 18 and 19 of the header are the file format's read and write versions: 2 is WAL.
        let header = std::fs::read(&path).unwrap();
        assert_eq!(header[18..20], [2, 2], "the file is in WAL mode");
        drop(store);
        let reopened = SqliteReadModelStore::open(&path).await.unwrap();
        assert_eq!(
            reopened.checkpoint("test").await.unwrap(),
            Some(Position::from_sequence(3))
        );
    }

    #[tokio::test]
    async fn blobs_are_reported_as_a_type_error() {
        let (_directory, store) = store().await;
        let error = store.query("SELECT x'00ff'", &[]).await.unwrap_err();
        assert!(matches!(error, ReadModelError::Type { column: 0, .. }), "{error}");
    }

    #[tokio::test]
    async fn leases_and_guarded_batches_behave_as_every_store_must() {
        let (_directory, store) = store().await;
        anquan_event_store::conformance::read_model_guards::leases_and_guarded_batches(Arc::new(store)).await;
    }
}
