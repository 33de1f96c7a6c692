//! [`PostgresEventStore`]: the [`EventStore`] on PostgreSQL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::NoTls;
use tokio_postgres::types::{FromSql, Type};
use uuid::Uuid;

use anquan_domain::CommandId;
use anquan_event_store::{
    AppendError, AppendOutcome, AppendRequest, BackendTraits, CommandDigest, EventHash, EventMetadata, EventStore,
    Position, READ_BATCH_MAX, RecordedCommand, RecordedEvent, RepeatedColumns, StoreError, StreamId, StreamVersion,
};

use crate::group_commit::{self, Counters, Finish, GroupCommitStats, PendingAppend};
use crate::listener::{self, ListenerTask};
use crate::schema;

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
    /// The group committer's queue; every append goes through it.
    appends: mpsc::Sender<PendingAppend>,
    group_commits: Arc<Counters>,
    _listener: ListenerTask,
}

const COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, data::text, \
     occurred_at, recorded_at, actor::text, correlation_id, causation_id, command_id, hash";

fn backend(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |error| StoreError::backend(what, error)
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
        let group_commits = Arc::new(Counters::default());
        let appends = group_commit::spawn(pool.clone(), head.clone(), group_commits.clone());
        Ok(Self {
            pool,
            head,
            appends,
            group_commits,
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

    /// Returns what the group committer has committed since the store was opened.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group_commits.stats()
    }

    /// Test hook: the appends waiting for the group committer (not counting the group being
    /// committed). Tests use it to know that appends queued behind a group will form the next.
    #[doc(hidden)]
    pub fn queued_appends(&self) -> usize {
        self.appends.max_capacity() - self.appends.capacity()
    }

    /// Test hook: runs an append's write exactly as a group of one would, on a connection of
    /// its own, holds the head row `hold` long, then rolls back. Used to prove that a
    /// rolled-back append never becomes visible and never makes a reader skip a committed one.
    #[doc(hidden)]
    pub async fn append_then_roll_back(&self, request: AppendRequest, hold: Duration) -> Result<(), AppendError> {
        request.validate()?;
        let client = self.client().await?;
        group_commit::write_group(client, &[&request], Finish::RollBack(hold)).await?;
        Ok(())
    }
}

/// Checks a stream's stored last version and hash.
pub(crate) fn decode_stream_head(
    stream_id: &StreamId,
    version: i64,
    hash: &[u8],
) -> Result<(StreamVersion, EventHash), StoreError> {
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
    row.map(|row| decode_command(&row, 0, command_id)).transpose()
}

/// Decodes a recorded command from `stream_id, first_version, last_version, last_position,
/// digest` starting at column `first`.
pub(crate) fn decode_command(
    row: &tokio_postgres::Row,
    first: usize,
    command_id: CommandId,
) -> Result<RecordedCommand, StoreError> {
    let read = || backend("read command outcome");
    let stream_id: &str = row.try_get(first).map_err(read())?;
    let first_version: i64 = row.try_get(first + 1).map_err(read())?;
    let last_version: i64 = row.try_get(first + 2).map_err(read())?;
    let position: i64 = row.try_get(first + 3).map_err(read())?;
    let digest: Option<&[u8]> = row.try_get(first + 4).map_err(backend("read command digest"))?;
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
            first_version: StreamVersion(u64::try_from(first_version).map_err(|_| corrupt("negative version"))?),
            last_version: StreamVersion(u64::try_from(last_version).map_err(|_| corrupt("negative version"))?),
            last_position: Position::from_sequence(u64::try_from(position).map_err(|_| corrupt("negative position"))?),
            duplicate: true,
        },
        digest,
    })
}

/// Turns rows of [`COLUMNS`] into events.
fn decode_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut decoder = Decoder::default();
    rows.iter().map(|row| decoder.decode(row)).collect()
}

/// A text column checked as UTF-8 with SIMD: the bodies are mostly CJK JSON, and std's check
/// was the largest client-side cost of reading them (as on SQLite).
struct Text<'a>(&'a str);

impl<'a> FromSql<'a> for Text<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Text(simdutf8::basic::from_utf8(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// Decodes rows, reusing the last stream id and actor when the next row repeats them (the
/// actor is JSON, and one writer's events mostly share it).
#[derive(Default)]
struct Decoder(RepeatedColumns);

impl Decoder {
    /// Turns a row of [`COLUMNS`] into an event.
    fn decode(&mut self, row: &tokio_postgres::Row) -> Result<RecordedEvent, StoreError> {
        let read = |error| StoreError::backend("decode event row", error);
        let position: i64 = row.try_get(0).map_err(read)?;
        let corrupt = |reason: String| StoreError::Corrupt {
            location: format!("position {position}"),
            reason,
        };
        let Text(stream_text) = row.try_get(1).map_err(read)?;
        let stream_id = self.0.stream(stream_text).map_err(|error| corrupt(error.to_string()))?;
        let Text(actor_text) = row.try_get(9).map_err(read)?;
        let actor = self
            .0
            .actor(actor_text)
            .map_err(|error| corrupt(format!("actor: {error}")))?;
        let version: i64 = row.try_get(2).map_err(read)?;
        let schema_version: i64 = row.try_get(5).map_err(read)?;
        let hash: &[u8] = row.try_get(13).map_err(read)?;
        let command_id: Option<Uuid> = row.try_get(12).map_err(read)?;
        let Text(event_type) = row.try_get(4).map_err(read)?;
        let Text(data) = row.try_get(6).map_err(read)?;
        Ok(RecordedEvent {
            event_id: row.try_get(3).map_err(read)?,
            stream_id,
            version: StreamVersion(u64::try_from(version).map_err(|_| corrupt("negative version".to_owned()))?),
            position: Position::from_sequence(
                u64::try_from(position).map_err(|_| corrupt("negative position".to_owned()))?,
            ),
            event_type: event_type.to_owned(),
            schema_version: u32::try_from(schema_version)
                .map_err(|_| corrupt("schema version out of range".to_owned()))?,
            data: data.to_owned(),
            stored_data: None,
            metadata: EventMetadata {
                occurred_at: row.try_get::<_, DateTime<Utc>>(7).map_err(read)?,
                actor,
                correlation_id: row.try_get(10).map_err(read)?,
                causation_id: row.try_get(11).map_err(read)?,
                command_id: command_id.map(CommandId),
            },
            recorded_at: row.try_get(8).map_err(read)?,
            hash: EventHash(<[u8; 32]>::try_from(hash).map_err(|_| corrupt("hash is not 32 bytes".to_owned()))?),
        })
    }
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
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Backend {
            message: "the postgres group committer has stopped".to_owned(),
            source: None,
        };
        self.appends
            .send(PendingAppend { request, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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
        decode_rows(&rows)
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
        decode_rows(&rows)
    }

    async fn command_outcome(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        let client = self.client().await?;
        // Command ids are unique across the store (the committer refuses one recorded on
        // another stream), so the row found by id is this stream's or none of it.
        Ok(command_outcome(&client, command_id)
            .await?
            .filter(|recorded| recorded.outcome.stream_id == *stream_id))
    }

    fn head(&self) -> watch::Receiver<Option<Position>> {
        self.head.subscribe()
    }

    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    /// Positions come from one head row without gaps (crate docs), and `event_commands` is
    /// keyed by the command id alone.
    fn traits(&self) -> BackendTraits {
        BackendTraits {
            dense_positions: true,
            store_wide_command_ids: true,
        }
    }
}
