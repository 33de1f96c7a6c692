//! [`PostgresEventStore`]: the [`EventStore`] on PostgreSQL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use anquan_domain::{Actor, CommandId};
use anquan_event_store::hash_chain::seal;
use anquan_event_store::{
    AppendError, AppendOutcome, AppendRequest, CommandDigest, EventHash, EventMetadata, EventStore, InvalidAppend,
    Position, READ_BATCH_MAX, RecordedCommand, RecordedEvent, StoreError, StreamId, StreamVersion,
    answer_recorded_command,
};

use crate::listener::{self, ListenerTask};
use crate::schema;

/// How often an append re-reads a stream that moved under it before giving up with a conflict
/// (only `Any` and `StreamExists` retry; a stale exact expectation conflicts at once).
const APPEND_RETRIES_MAX: usize = 32;

/// Connection settings of a [`PostgresEventStore`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most pooled connections (the LISTEN connection is extra).
    pub pool_size: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { pool_size: 16 }
    }
}

/// The event store on PostgreSQL: see the crate docs for the schema and for why `read_all`
/// never skips an event.
pub struct PostgresEventStore {
    pool: Pool,
    head: Arc<watch::Sender<Option<Position>>>,
    _listener: ListenerTask,
}

const COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, data::text, \
     occurred_at, recorded_at, actor::text, correlation_id, causation_id, command_id, hash";

/// The whole write of an append, one statement (so one implicit transaction): take the next
/// positions from the head row (its row lock is held until commit), insert the events and the
/// command, notify listeners.
const APPEND_SQL: &str = "
WITH head AS (
    UPDATE event_log_head SET position = position + $1 WHERE id RETURNING position - $1 AS base
), inserted AS (
    INSERT INTO event_log (position, stream_id, version, event_id, event_type, schema_version, data,
                           occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash)
    SELECT head.base + e.ord, $2, e.version, e.event_id, e.event_type, e.schema_version, e.data::json,
           $3, $4, $5::text::json, $6, $7, $8, e.hash
    FROM head, unnest($9::bigint[], $10::uuid[], $11::text[], $12::bigint[], $13::text[], $14::bytea[])
         WITH ORDINALITY AS e(version, event_id, event_type, schema_version, data, hash, ord)
    RETURNING position
), command AS (
    INSERT INTO event_commands (command_id, stream_id, first_version, last_version, last_position, digest)
    SELECT $8, $2, $15, $16, head.base + $1, $17 FROM head WHERE $8::uuid IS NOT NULL
)
SELECT head.base + $1, pg_notify('anquan_events', (head.base + $1)::text) FROM head";

fn backend(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |error| StoreError::backend(what, error)
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend {
        message: format!("{what} {value} does not fit a BIGINT"),
        source: None,
    })
}

/// Builds a connection pool for `url`.
pub(crate) fn build_pool(url: &str, pool_size: usize) -> Result<(Pool, tokio_postgres::Config), StoreError> {
    let config = tokio_postgres::Config::from_str(url).map_err(backend("parse database url"))?;
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size.max(1))
        .build()
        .map_err(|error| StoreError::backend("build connection pool", error))?;
    Ok((pool, config))
}

/// Why one write attempt failed.
enum WriteError {
    /// A unique constraint was violated: someone else got there first.
    Unique(String),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(error: tokio_postgres::Error) -> Self {
        if let Some(db) = error.as_db_error()
            && *db.code() == SqlState::UNIQUE_VIOLATION
        {
            return WriteError::Unique(db.constraint().unwrap_or_default().to_owned());
        }
        WriteError::Store(StoreError::backend("append events", error))
    }
}

impl PostgresEventStore {
    /// Connects, migrates the schema (guarded by an advisory lock, so nodes starting together
    /// do not race) and starts listening for appends.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let (pool, config) = build_pool(url, options.pool_size)?;
        let mut client = pool
            .get()
            .await
            .map_err(|error| StoreError::backend("connect to postgres", error))?;
        schema::migrate(&mut client).await?;
        let row = client
            .query_one("SELECT COALESCE(MAX(position), 0) FROM event_log", &[])
            .await
            .map_err(backend("read head"))?;
        let last: i64 = row.try_get(0).map_err(backend("read head"))?;
        drop(client);
        let initial = u64::try_from(last)
            .ok()
            .filter(|&last| last > 0)
            .map(Position::from_sequence);
        let head = Arc::new(watch::Sender::new(initial));
        let listener = listener::spawn(config, head.clone());
        Ok(Self {
            pool,
            head,
            _listener: listener,
        })
    }

    /// Returns the connection pool (for tools and tests).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::backend("get a postgres connection", error))
    }

    /// Test hook: runs an append's write exactly as [`EventStore::append`] does, inside an
    /// explicit transaction that is then rolled back. Used to prove that a rolled-back append
    /// never becomes visible and never makes a reader skip a committed one.
    #[doc(hidden)]
    pub async fn append_then_roll_back(&self, request: AppendRequest, hold: Duration) -> Result<(), AppendError> {
        request.validate()?;
        let mut client = self.client().await?;
        let last = stream_head(&client, &request.stream_id).await?;
        let sealed = seal(&request, last, Utc::now());
        let transaction = client.transaction().await.map_err(backend("begin"))?;
        match write(&transaction, &request, &sealed).await {
            Ok(_) | Err(WriteError::Unique(_)) => {}
            Err(WriteError::Store(error)) => return Err(error.into()),
        }
        // Hold the head row a while, like a slow writer, before giving up.
        tokio::time::sleep(hold).await;
        transaction.rollback().await.map_err(backend("roll back"))?;
        Ok(())
    }
}

/// Reads a stream's last version and hash.
async fn stream_head(
    client: &impl GenericClient,
    stream_id: &StreamId,
) -> Result<Option<(StreamVersion, EventHash)>, StoreError> {
    let statement = client
        .prepare_cached("SELECT version, hash FROM event_log WHERE stream_id = $1 ORDER BY version DESC LIMIT 1")
        .await
        .map_err(backend("prepare stream head"))?;
    let row = client
        .query_opt(&statement, &[&stream_id.as_str()])
        .await
        .map_err(backend("read stream head"))?;
    row.map(|row| {
        let version: i64 = row.try_get(0).map_err(backend("read stream head"))?;
        let hash: &[u8] = row.try_get(1).map_err(backend("read stream head"))?;
        let location = || format!("{stream_id}@{version}");
        let version = u64::try_from(version).map_err(|_| StoreError::Corrupt {
            location: location(),
            reason: "negative version".to_owned(),
        })?;
        let hash = <[u8; 32]>::try_from(hash).map_err(|_| StoreError::Corrupt {
            location: location(),
            reason: "hash is not 32 bytes".to_owned(),
        })?;
        Ok((StreamVersion(version), EventHash(hash)))
    })
    .transpose()
}

/// Reads a command's recorded outcome and digest (none for a command recorded before
/// migration 2).
async fn command_outcome(
    client: &impl GenericClient,
    command_id: CommandId,
) -> Result<Option<RecordedCommand>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT stream_id, first_version, last_version, last_position, digest FROM event_commands \
             WHERE command_id = $1",
        )
        .await
        .map_err(backend("prepare command lookup"))?;
    let row = client
        .query_opt(&statement, &[&command_id.0])
        .await
        .map_err(backend("read command outcome"))?;
    row.map(|row| {
        let read = backend("read command outcome");
        let stream_id: &str = row.try_get(0).map_err(backend("read command outcome"))?;
        let first: i64 = row.try_get(1).map_err(backend("read command outcome"))?;
        let last: i64 = row.try_get(2).map_err(backend("read command outcome"))?;
        let position: i64 = row.try_get(3).map_err(read)?;
        let digest: Option<&[u8]> = row.try_get(4).map_err(backend("read command digest"))?;
        let corrupt = |reason: &str| StoreError::Corrupt {
            location: format!("command {}", command_id.0),
            reason: reason.to_owned(),
        };
        let digest = digest
            .map(|bytes| <[u8; 32]>::try_from(bytes).map_err(|_| corrupt("a command digest is not 32 bytes")))
            .transpose()?
            .map(CommandDigest);
        Ok(RecordedCommand {
            outcome: AppendOutcome {
                stream_id: StreamId::parse(stream_id).map_err(|error| corrupt(&error.to_string()))?,
                first_version: StreamVersion(u64::try_from(first).map_err(|_| corrupt("negative version"))?),
                last_version: StreamVersion(u64::try_from(last).map_err(|_| corrupt("negative version"))?),
                last_position: Position::from_sequence(
                    u64::try_from(position).map_err(|_| corrupt("negative position"))?,
                ),
                duplicate: true,
            },
            digest,
        })
    })
    .transpose()
}

/// Writes sealed events in one statement; returns the outcome.
async fn write(
    client: &impl GenericClient,
    request: &AppendRequest,
    sealed: &[RecordedEvent],
) -> Result<AppendOutcome, WriteError> {
    let (Some(first), Some(last)) = (sealed.first(), sealed.last()) else {
        return Err(WriteError::Store(StoreError::Backend {
            message: "nothing to append".to_owned(),
            source: None,
        }));
    };
    let count = i64::try_from(sealed.len()).unwrap_or(i64::MAX);
    let mut versions = Vec::with_capacity(sealed.len());
    let mut event_ids = Vec::with_capacity(sealed.len());
    let mut types = Vec::with_capacity(sealed.len());
    let mut schema_versions = Vec::with_capacity(sealed.len());
    let mut data = Vec::with_capacity(sealed.len());
    let mut hashes = Vec::with_capacity(sealed.len());
    for event in sealed {
        versions.push(to_i64(event.version.0, "version").map_err(WriteError::Store)?);
        event_ids.push(event.event_id);
        types.push(event.event_type.as_str());
        schema_versions.push(i64::from(event.schema_version));
        data.push(event.data.as_str());
        hashes.push(&event.hash.0[..]);
    }
    let metadata = &first.metadata;
    let actor = serde_json::to_string(&metadata.actor).map_err(|error| {
        WriteError::Store(StoreError::Backend {
            message: "serialise actor".to_owned(),
            source: Some(Box::new(error)),
        })
    })?;
    let command_id = request.command.map(|key| key.id.0);
    let digest = request.command.as_ref().map(|key| &key.digest.0[..]);
    let first_version = versions[0];
    let last_version = to_i64(last.version.0, "version").map_err(WriteError::Store)?;
    let statement = client.prepare_cached(APPEND_SQL).await?;
    let row = client
        .query_one(
            &statement,
            &[
                &count,
                &request.stream_id.as_str(),
                &metadata.occurred_at,
                &first.recorded_at,
                &actor,
                &metadata.correlation_id,
                &metadata.causation_id,
                &command_id,
                &versions,
                &event_ids,
                &types,
                &schema_versions,
                &data,
                &hashes,
                &first_version,
                &last_version,
                &digest,
            ],
        )
        .await?;
    let last_position: i64 = row.try_get(0)?;
    Ok(AppendOutcome {
        stream_id: request.stream_id.clone(),
        first_version: first.version,
        last_version: last.version,
        last_position: Position::from_sequence(u64::try_from(last_position).unwrap_or(0)),
        duplicate: false,
    })
}

/// Turns a row of [`COLUMNS`] into an event.
fn decode(row: &tokio_postgres::Row) -> Result<RecordedEvent, StoreError> {
    let read = |error| StoreError::backend("decode event row", error);
    let position: i64 = row.try_get(0).map_err(read)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        location: format!("position {position}"),
        reason,
    };
    let stream_id: &str = row.try_get(1).map_err(read)?;
    let version: i64 = row.try_get(2).map_err(read)?;
    let schema_version: i64 = row.try_get(5).map_err(read)?;
    let actor: &str = row.try_get(9).map_err(read)?;
    let hash: &[u8] = row.try_get(13).map_err(read)?;
    let command_id: Option<Uuid> = row.try_get(12).map_err(read)?;
    Ok(RecordedEvent {
        event_id: row.try_get(3).map_err(read)?,
        stream_id: StreamId::parse(stream_id).map_err(|error| corrupt(error.to_string()))?,
        version: StreamVersion(u64::try_from(version).map_err(|_| corrupt("negative version".to_owned()))?),
        position: Position::from_sequence(
            u64::try_from(position).map_err(|_| corrupt("negative position".to_owned()))?,
        ),
        event_type: row.try_get(4).map_err(read)?,
        schema_version: u32::try_from(schema_version).map_err(|_| corrupt("schema version out of range".to_owned()))?,
        data: row.try_get(6).map_err(read)?,
        metadata: EventMetadata {
            occurred_at: row.try_get::<_, DateTime<Utc>>(7).map_err(read)?,
            actor: serde_json::from_str::<Actor>(actor).map_err(|error| corrupt(format!("actor: {error}")))?,
            correlation_id: row.try_get(10).map_err(read)?,
            causation_id: row.try_get(11).map_err(read)?,
            command_id: command_id.map(CommandId),
        },
        recorded_at: row.try_get(8).map_err(read)?,
        hash: EventHash(<[u8; 32]>::try_from(hash).map_err(|_| corrupt("hash is not 32 bytes".to_owned()))?),
    })
}

fn check_limit(limit: usize) -> Result<i64, StoreError> {
    if limit == 0 || limit > READ_BATCH_MAX {
        return Err(StoreError::InvalidLimit {
            limit,
            max: READ_BATCH_MAX,
        });
    }
    Ok(i64::try_from(limit).unwrap_or(i64::MAX))
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        request.validate()?;
        let client = self.client().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The two reads are pipelined on one connection.
            let (recorded, last) = match &request.command {
                Some(key) => futures::try_join!(
                    command_outcome(&client, key.id),
                    stream_head(&client, &request.stream_id)
                )?,
                None => (None, stream_head(&client, &request.stream_id).await?),
            };
            if let (Some(key), Some(recorded)) = (&request.command, recorded) {
                return answer_recorded_command(&request, key, recorded);
            }
            let actual = last.map(|(version, _)| version);
            if !request.expected.admits(actual) || attempt > APPEND_RETRIES_MAX {
                return Err(AppendError::Conflict {
                    stream_id: request.stream_id.clone(),
                    expected: request.expected,
                    actual,
                });
            }
            let sealed = seal(&request, last, Utc::now());
            match write(&client, &request, &sealed).await {
                Ok(outcome) => {
                    listener::advance(&self.head, outcome.last_position);
                    return Ok(outcome);
                }
                // The stream moved or the command was appended concurrently: read again.
                Err(WriteError::Unique(constraint))
                    if constraint == "event_log_stream_version_key" || constraint == "event_commands_pkey" => {}
                Err(WriteError::Unique(constraint)) if constraint == "event_log_event_id_key" => {
                    if let Some(key) = &request.command
                        && let Some(recorded) = command_outcome(&client, key.id).await?
                    {
                        return answer_recorded_command(&request, key, recorded);
                    }
                    let ids: Vec<Uuid> = request.events.iter().map(|event| event.event_id).collect();
                    let row = client
                        .query_opt(
                            "SELECT event_id FROM event_log WHERE event_id = ANY($1) LIMIT 1",
                            &[&ids],
                        )
                        .await
                        .map_err(backend("find duplicate event id"))?;
                    let duplicate = match row {
                        Some(row) => row.try_get(0).map_err(backend("find duplicate event id"))?,
                        None => continue,
                    };
                    return Err(AppendError::Invalid {
                        stream_id: request.stream_id.clone(),
                        reason: InvalidAppend::DuplicateEventId(duplicate),
                    });
                }
                Err(WriteError::Unique(constraint)) => {
                    return Err(StoreError::Backend {
                        message: format!("append violated unexpected constraint {constraint}"),
                        source: None,
                    }
                    .into());
                }
                Err(WriteError::Store(error)) => return Err(error.into()),
            }
        }
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = check_limit(limit)?;
        let from = i64::try_from(from.0).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM event_log WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3"
            ))
            .await
            .map_err(backend("prepare read stream"))?;
        let rows = client
            .query(&statement, &[&stream_id.as_str(), &from, &limit])
            .await
            .map_err(backend("read stream"))?;
        rows.iter().map(decode).collect()
    }

    async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = check_limit(limit)?;
        // Positions are handed out in commit order (crate docs), so every committed row is
        // already visible below the highest visible one: a plain range read never skips.
        let after = after.map_or(0, |position| i64::try_from(position.sequence()).unwrap_or(i64::MAX));
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM event_log WHERE position > $1 ORDER BY position LIMIT $2"
            ))
            .await
            .map_err(backend("prepare read all"))?;
        let rows = client
            .query(&statement, &[&after, &limit])
            .await
            .map_err(backend("read all"))?;
        rows.iter().map(decode).collect()
    }

    async fn command_outcome(&self, command_id: CommandId) -> Result<Option<RecordedCommand>, StoreError> {
        let client = self.client().await?;
        command_outcome(&client, command_id).await
    }

    fn head(&self) -> watch::Receiver<Option<Position>> {
        self.head.subscribe()
    }

    fn backend_name(&self) -> &'static str {
        "postgres"
    }
}
