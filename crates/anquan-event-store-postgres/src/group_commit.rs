//! Group commit: one task per store commits the appends that arrive together in one
//! transaction, one savepoint per append, one `COMMIT` (one WAL flush) and one `pg_notify` for
//! the group.
//!
//! A group takes the head row's lock once, first thing (`SELECT … FOR UPDATE`), and in the same
//! pipelined round trip reads the heads of the group's streams and the group's command ids.
//! Every event insert of every node happens under that lock, so these reads are the truth
//! until the group commits: the expected versions, command ids and hash chains are decided in
//! Rust, in arrival order, against them and against the appends decided before in the group
//! (a second append to a stream sees the first one's events, which are in the same
//! transaction). The accepted appends are then written in a second pipelined round trip,
//! each as `SAVEPOINT append; INSERT …; RELEASE append`, followed by the head row's update to
//! the last position and the group's `pg_notify`. An insert the database refuses (an event id
//! already stored) rolls back to its savepoint alone; the appends after it are decided again
//! without it and written in the next round trip, so its positions are reused and none is
//! skipped. A third round trip commits. Only then does any append's caller hear of it; a
//! failed commit fails every append of the group.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};
use futures::future::{MaybeDone, maybe_done};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use anquan_domain::CommandId;
use anquan_event_store::gathering::{Gathering, GroupBounds};
use anquan_event_store::hash_chain::seal;
use anquan_event_store::{
    AppendError, AppendOutcome, AppendRequest, EventHash, InvalidAppend, Position, RecordedCommand, RecordedEvent,
    StoreError, StreamId, StreamState, StreamVersion, answer_recorded_command,
};

use crate::listener;
use crate::store::{decode_command, decode_stream_head};

/// Most appends committed in one transaction. Each written append is a subtransaction (its
/// savepoint); PostgreSQL caches 64 subtransaction ids per backend (`PGPROC_MAX_CACHED_SUBXIDS`),
/// and past that every snapshot taken while the group is open must look subtransactions up in
/// `pg_subtrans`, which slows every reader of the cluster down.
pub(crate) const GROUP_APPENDS_MAX: usize = 64;
/// A group stops taking appends once it holds this many events (an append is never split, so
/// a group may pass this by one append's events).
pub(crate) const GROUP_EVENTS_MAX: usize = 10_000;
/// Most appends waiting for the committer; callers wait beyond this.
pub(crate) const APPEND_QUEUE_MAX: usize = 4_096;

/// Takes the head row's lock for the whole group; every event insert of every node happens
/// under it, so commit order is position order (crate docs, "No skipped events").
const LOCK_HEAD_SQL: &str = "SELECT position FROM event_log_head WHERE id FOR UPDATE";
/// The last version and hash of each stream named (streams without events are absent).
const STREAM_HEADS_SQL: &str = "
SELECT s.stream_id, last.version, last.hash
FROM unnest($1::text[]) AS s(stream_id)
CROSS JOIN LATERAL (
    SELECT version, hash FROM event_log WHERE event_log.stream_id = s.stream_id ORDER BY version DESC LIMIT 1
) AS last";
/// The recorded outcomes of the command ids named.
const COMMANDS_SQL: &str = "SELECT command_id, stream_id, first_version, last_version, last_position, digest \
     FROM event_commands WHERE command_id = ANY($1)";
/// One append's events at the positions after `$1`, and its command row.
const INSERT_SQL: &str = "
WITH inserted AS (
    INSERT INTO event_log (position, stream_id, version, event_id, event_type, schema_version, data,
                           occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash)
    SELECT $1 + e.ord, $2, e.version, e.event_id, e.event_type, e.schema_version, e.data::json,
           $3, $4, $5::text::json, $6, $7, $8, e.hash
    FROM unnest($9::bigint[], $10::uuid[], $11::text[], $12::bigint[], $13::text[], $14::bytea[])
         WITH ORDINALITY AS e(version, event_id, event_type, schema_version, data, hash, ord)
)
INSERT INTO event_commands (command_id, stream_id, first_version, last_version, last_position, digest)
SELECT $8, $2, $15, $16, $17, $18 WHERE $8::uuid IS NOT NULL";
/// Moves the head row from the position the group locked (`$2`) to its last one (`$1`) and
/// notifies listeners once for the group; no row means the head moved under the lock, which
/// cannot happen, and fails the group.
const ADVANCE_HEAD_SQL: &str = "
WITH advanced AS (UPDATE event_log_head SET position = $1 WHERE id AND position = $2 RETURNING position)
SELECT pg_notify('anquan_events', position::text) FROM advanced";
/// A group written from what the committer remembers, in one statement and so in one
/// implicit transaction: the head row's move from the remembered position `$2` to the group's
/// last `$1`, every event of the group (`$3`–`$16`, one array element per event) and its
/// command rows (`$17`–`$22`, one per append with a command id), and one notification. The
/// division fails the statement when the head row did not hold `$2` (another node appended),
/// so nothing of it commits; an insert the database refuses fails it as well. Commit order
/// stays position order: the statement holds the head row's lock from its move to its commit,
/// whatever order it runs its parts in, as nothing of it is visible before the commit.
const WRITE_REMEMBERED_SQL: &str = "
WITH advanced AS (
    UPDATE event_log_head SET position = $1 WHERE id AND position = $2 RETURNING position
), inserted AS (
    INSERT INTO event_log (position, stream_id, version, event_id, event_type, schema_version, data,
                           occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash)
    SELECT e.position, e.stream_id, e.version, e.event_id, e.event_type, e.schema_version, e.data::json,
           e.occurred_at, e.recorded_at, e.actor::json, e.correlation_id, e.causation_id, e.command_id, e.hash
    FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::uuid[], $7::text[], $8::bigint[], $9::text[],
                $10::timestamptz[], $11::timestamptz[], $12::text[], $13::uuid[], $14::uuid[], $15::uuid[],
                $16::bytea[])
         AS e(position, stream_id, version, event_id, event_type, schema_version, data,
              occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash)
), commands AS (
    INSERT INTO event_commands (command_id, stream_id, first_version, last_version, last_position, digest)
    SELECT * FROM unnest($17::uuid[], $18::text[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bytea[])
)
SELECT pg_notify('anquan_events', (SELECT position FROM advanced)::text),
       1 / (SELECT count(*)::int FROM advanced)";
const SAVEPOINT_SQL: &str = "SAVEPOINT append";
const RELEASE_SQL: &str = "RELEASE SAVEPOINT append";
const ROLL_BACK_TO_SQL: &str = "ROLLBACK TO SAVEPOINT append; RELEASE SAVEPOINT append";

/// One append waiting for the committer, with where to send its result.
pub(crate) struct PendingAppend {
    pub(crate) request: AppendRequest,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

/// What the committer has committed since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Groups committed (transactions, so WAL flushes when they wrote).
    pub transactions: u64,
    /// Appends that wrote events in those transactions (refused ones and repeated command ids
    /// not counted).
    pub appends: u64,
    /// Events those appends wrote.
    pub events: u64,
    /// Of the transactions, those written in one round trip from what the committer
    /// remembered, with no reads first.
    pub from_memory: u64,
}

/// The committer's running totals behind [`GroupCommitStats`].
#[derive(Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    appends: AtomicU64,
    events: AtomicU64,
    from_memory: AtomicU64,
}

impl Counters {
    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            from_memory: self.from_memory.load(Ordering::Relaxed),
        }
    }
}

/// How a group's transaction ends.
pub(crate) enum Finish {
    Commit,
    /// Test hook: hold the head row this long, then roll back.
    RollBack(Duration),
}

/// Starts the committer; it runs until every sender is gone.
pub(crate) fn spawn(
    pool: Pool,
    head: Arc<watch::Sender<Option<Position>>>,
    counters: Arc<Counters>,
) -> mpsc::Sender<PendingAppend> {
    let (sender, receiver) = mpsc::channel(APPEND_QUEUE_MAX);
    tokio::spawn(run(pool, receiver, head, counters));
    sender
}

/// Gathers a group ([`anquan_event_store::gathering`]: what is queued, and after a group of
/// several a short wait for as many), commits it and answers; after a group of one an append
/// goes at once, with no wait for company.
async fn run(
    pool: Pool,
    mut receiver: mpsc::Receiver<PendingAppend>,
    head: Arc<watch::Sender<Option<Position>>>,
    counters: Arc<Counters>,
) {
    let mut group = Vec::with_capacity(GROUP_APPENDS_MAX);
    let mut memory = Memory::default();
    let mut gathering = Gathering::new(GroupBounds {
        appends: GROUP_APPENDS_MAX,
        events: GROUP_EVENTS_MAX,
    });
    while gathering
        .next_group(
            &mut receiver,
            &mut group,
            |pending| pending.request.events.len(),
            tokio::task::yield_now,
        )
        .await
    {
        commit_and_answer(&pool, &mut memory, &mut group, &head, &counters).await;
    }
}

/// Most stream heads the committer remembers; beyond this it forgets them all and reads again.
pub(crate) const HEAD_CACHE_MAX: usize = 100_000;

/// What the committer remembers from the groups it committed: the head row's position after
/// its last commit and the last version and hash of the streams it read or wrote. With them a
/// group needs no reads before its writes (the one-round-trip path, [`write_remembered`]).
///
/// Another node may have appended since: the memory is then stale, and the database says so
/// without a read. Another node's append moves the head row, and the remembered position is
/// checked by the head row's move itself (it names the position it expects and fails the
/// transaction if the row holds another); a stale stream head would besides make the insert
/// take a version that exists (`UNIQUE (stream_id, version)`). Either way nothing of the group
/// commits; the committer forgets the head position and commits the group again on the path
/// that reads, which also refreshes the group's streams. Memory never refuses an append: a
/// conflict seen on a remembered head sends the group down the path that reads too.
///
/// A stream it does not remember is taken as new when its append expects no stream (a new
/// enterprise, agency or inspection): were it not new, its version 0 would exist and that
/// same unique index refuses the insert, so the guess is checked by the database as a
/// remembered head is. (Only a stream whose version 0 row was deleted behind the store's back,
/// its hash chain already broken, would be taken as new.)
#[derive(Default)]
struct Memory {
    head: Option<u64>,
    streams: HashMap<StreamId, Option<(StreamVersion, EventHash)>>,
}

impl Memory {
    /// Remembers what a committed group left: the head row's position and its streams' heads.
    fn learn(&mut self, head: u64, streams: HashMap<StreamId, Option<(StreamVersion, EventHash)>>) {
        if self.streams.len() + streams.len() > HEAD_CACHE_MAX {
            self.streams.clear();
        }
        self.head = Some(head);
        self.streams.extend(streams);
    }

    /// Forgets the head position, so the next group reads (and refreshes what it reads).
    fn forget_head(&mut self) {
        self.head = None;
    }

    /// Forgets everything: after a failed commit nothing remembered can be trusted.
    fn forget(&mut self) {
        self.head = None;
        self.streams.clear();
    }
}

/// Commits one group on a pooled connection, moves the head, then answers every append of it.
async fn commit_and_answer(
    pool: &Pool,
    memory: &mut Memory,
    group: &mut Vec<PendingAppend>,
    head: &watch::Sender<Option<Position>>,
    counters: &Counters,
) {
    let requests: Vec<&AppendRequest> = group.iter().map(|pending| &pending.request).collect();
    let committed = commit_group(pool, memory, &requests).await;
    let results = match committed {
        Ok(written) => {
            let mut appends = 0;
            let mut events = 0;
            for (request, result) in requests.iter().zip(&written.results) {
                if matches!(result, Ok(outcome) if !outcome.duplicate) {
                    appends += 1;
                    events += request.events.len() as u64;
                }
            }
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            counters.appends.fetch_add(appends, Ordering::Relaxed);
            counters.events.fetch_add(events, Ordering::Relaxed);
            if written.from_memory {
                counters.from_memory.fetch_add(1, Ordering::Relaxed);
            }
            // The head moves before anyone hears of their append, so an acknowledged append
            // is always covered by the head.
            if let Some(last) = written.last_position {
                listener::advance(head, Position::from_sequence(last));
            }
            written.results
        }
        // Nothing of the group was committed; a refusal decided inside it may be stale too,
        // so every append gets the error.
        Err(error) => requests
            .iter()
            .map(|request| {
                Err(AppendError::Store(StoreError::Backend {
                    message: format!("append to stream {} was not committed", request.stream_id),
                    source: Some(Box::new(std::io::Error::other(anquan_event_store::error_chain(&error)))),
                }))
            })
            .collect(),
    };
    for (pending, result) in group.drain(..).zip(results) {
        // The caller may have gone away (a cancelled request); its append stands regardless.
        let _ = pending.reply.send(result);
    }
}

/// Commits a group: in one round trip from what the committer remembers when it can, else
/// (or when the database finds the memory stale) on the path that reads first.
async fn commit_group(pool: &Pool, memory: &mut Memory, requests: &[&AppendRequest]) -> Result<Written, StoreError> {
    let client = pool
        .get()
        .await
        .map_err(|error| StoreError::backend("get a postgres connection", error))?;
    let client = match write_remembered(client, memory, requests).await {
        Ok(Remembered::Committed(mut written)) => {
            memory.learn(written.head, std::mem::take(&mut written.streams));
            return Ok(written);
        }
        Ok(Remembered::NotTried(client)) => client,
        Ok(Remembered::RolledBack(client)) => {
            memory.forget_head();
            client
        }
        Err(error) => {
            memory.forget();
            return Err(error);
        }
    };
    let mut written = write_group(client, requests, Finish::Commit).await;
    match &mut written {
        Ok(written) => memory.learn(written.head, std::mem::take(&mut written.streams)),
        Err(_) => memory.forget(),
    }
    written
}

/// What a committed group did.
pub(crate) struct Written {
    /// One result per request, in order.
    pub(crate) results: Vec<Result<AppendOutcome, AppendError>>,
    /// The head row's new position, if the group wrote events.
    pub(crate) last_position: Option<u64>,
    /// The head row's position when the group ended (the locked one if it wrote nothing).
    head: u64,
    /// The last version and hash of the group's streams when it ended.
    streams: HashMap<StreamId, Option<(StreamVersion, EventHash)>>,
    /// Written in one round trip from the committer's memory.
    from_memory: bool,
}

/// The connection of a group's open transaction. Dropped before the transaction ended (an
/// error path or a cancelled task), it closes the connection instead of returning it to the
/// pool, so the server rolls back and no pooled connection is left inside a transaction.
struct OpenTransaction {
    client: Option<Object>,
}

impl OpenTransaction {
    fn client(&self) -> Result<&Client, StoreError> {
        self.client
            .as_deref()
            .map(|wrapper| &**wrapper)
            .ok_or_else(|| StoreError::Backend {
                message: "the group's connection is gone".to_owned(),
                source: None,
            })
    }

    /// The transaction ended (committed or rolled back): the connection may be reused.
    fn ended(mut self) {
        drop(self.client.take());
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

/// The statements of a group, prepared (and cached per connection) before anything is sent,
/// so the pipelined requests need no preparing round trip.
struct Statements {
    lock_head: Statement,
    write_remembered: Statement,
    stream_heads: Statement,
    commands: Statement,
    insert: Statement,
    advance_head: Statement,
}

async fn prepare(client: &Object) -> Result<Statements, StoreError> {
    let (lock_head, write_remembered, stream_heads, commands, insert, advance_head) = futures::try_join!(
        client.prepare_cached(LOCK_HEAD_SQL),
        client.prepare_cached(WRITE_REMEMBERED_SQL),
        client.prepare_cached(STREAM_HEADS_SQL),
        client.prepare_cached(COMMANDS_SQL),
        client.prepare_cached(INSERT_SQL),
        client.prepare_cached(ADVANCE_HEAD_SQL),
    )
    .map_err(|error| StoreError::backend("prepare the group commit statements", error))?;
    Ok(Statements {
        lock_head,
        write_remembered,
        stream_heads,
        commands,
        insert,
        advance_head,
    })
}

/// Writes a group in one transaction and ends it as `finish` says. An error means the
/// transaction did not commit (as far as this connection can tell).
pub(crate) async fn write_group(
    client: Object,
    requests: &[&AppendRequest],
    finish: Finish,
) -> Result<Written, StoreError> {
    let statements = prepare(&client).await?;
    let transaction = OpenTransaction { client: Some(client) };
    let connection = transaction.client()?;
    let recorded_at = anquan_event_store::clock::now();
    let (locked_head, mut state) = begin(connection, &statements, requests).await?;
    let mut results: Vec<Option<Result<AppendOutcome, AppendError>>> = requests.iter().map(|_| None).collect();
    let mut start = 0;
    // Each round writes the appends from `start` on; one the database refuses ends the round.
    // Bounded: every round but the last settles at least one more append.
    while start < requests.len() {
        let before = state.clone();
        let decisions: Vec<Decision> = requests[start..]
            .iter()
            .map(|request| state.decide(request, recorded_at))
            .collect();
        match write_round(connection, &statements, &decisions, locked_head, state.last_position).await? {
            None => {
                for (slot, decision) in results[start..].iter_mut().zip(decisions) {
                    *slot = Some(decision.into_result());
                }
                start = requests.len();
            }
            Some((refused, error)) => {
                // The appends before the refused one are written: decide them again on the
                // state before the round to get the same results and the state after them.
                state = before;
                for index in start..start + refused {
                    results[index] = Some(state.decide(requests[index], recorded_at).into_result());
                }
                let request = requests[start + refused];
                results[start + refused] = Some(Err(refusal(connection, request, error).await?));
                start += refused + 1;
            }
        }
    }
    let last_position = (state.last_position > locked_head).then_some(state.last_position);
    match finish {
        Finish::Commit => connection.batch_execute("COMMIT").await,
        Finish::RollBack(hold) => {
            tokio::time::sleep(hold).await;
            connection.batch_execute("ROLLBACK").await
        }
    }
    .map_err(|error| StoreError::backend("commit a group of appends", error))?;
    transaction.ended();
    let results = results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(AppendError::Store(StoreError::Backend {
                    message: "the group committer lost the result of an append".to_owned(),
                    source: None,
                }))
            })
        })
        .collect();
    Ok(Written {
        results,
        last_position,
        head: state.last_position,
        streams: state.heads,
        from_memory: false,
    })
}

/// How the one-round-trip path went.
enum Remembered {
    /// Committed.
    Committed(Written),
    /// Not tried, nothing sent: the committer does not remember the head or one of the
    /// group's streams (other than a new one), or it would refuse an append on what it
    /// remembers (a refusal is decided on what the database holds, never on memory).
    NotTried(Object),
    /// The database refused a statement (a stale memory, or an insert refused for another
    /// reason) and the transaction rolled back; the connection is idle again.
    RolledBack(Object),
}

/// Commits a group in one round trip from what the committer remembers, as one statement
/// ([`WRITE_REMEMBERED_SQL`]) in its own transaction: no `BEGIN`, no savepoints (a refused
/// insert fails the whole statement, and the group goes again on the path that reads, which
/// refuses that append alone), no `COMMIT`.
async fn write_remembered(
    client: Object,
    memory: &Memory,
    requests: &[&AppendRequest],
) -> Result<Remembered, StoreError> {
    let Some(locked_head) = memory.head else {
        return Ok(Remembered::NotTried(client));
    };
    let mut state = GroupState {
        heads: HashMap::with_capacity(requests.len()),
        commands: HashMap::new(),
        last_position: locked_head,
    };
    for request in requests {
        if state.heads.contains_key(&request.stream_id) {
            continue;
        }
        let head = match memory.streams.get(&request.stream_id) {
            Some(head) => *head,
            // A stream the append says is new is taken as new: if it is not, its version 0
            // exists and the insert fails on `UNIQUE (stream_id, version)`.
            None if request.expected == StreamState::NoStream => None,
            None => return Ok(Remembered::NotTried(client)),
        };
        state.heads.insert(request.stream_id.clone(), head);
    }
    let recorded_at = anquan_event_store::clock::now();
    let mut writes = Vec::with_capacity(requests.len());
    for request in requests {
        // Command ids are taken as new: one already recorded fails its insert on
        // `event_commands`' primary key, and the path that reads answers it.
        match state.decide(request, recorded_at) {
            Decision::Write(write) => writes.push(write),
            Decision::Answered(_) => return Ok(Remembered::NotTried(client)),
        }
    }
    let statements = prepare(&client).await?;
    let parameters = RememberedParameters::new(&writes, state.last_position, locked_head)?;
    let written = client
        .execute(&statements.write_remembered, &parameters.as_params())
        .await;
    match written {
        Ok(_) => Ok(Remembered::Committed(Written {
            results: writes.into_iter().map(|write| Ok(write.outcome)).collect(),
            last_position: Some(state.last_position),
            head: state.last_position,
            streams: state.heads,
            from_memory: true,
        })),
        // The server refused the statement (a stale memory, or an insert it refuses for
        // another reason), so its transaction rolled back and the connection is idle.
        Err(error) if error.as_db_error().is_some() => {
            tracing::debug!(%error, "a group written from memory was refused; writing it again after reading");
            Ok(Remembered::RolledBack(client))
        }
        // The connection failed: whether the statement committed is unknown.
        Err(error) => Err(StoreError::backend("write a group of appends from memory", error)),
    }
}

/// The parameters of [`WRITE_REMEMBERED_SQL`]: the head's move, then one element per event
/// and one per command row of the group, owned so the statement can borrow them.
struct RememberedParameters<'a> {
    last_position: i64,
    remembered_head: i64,
    positions: Vec<i64>,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i64>,
    data: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
    recorded_at: Vec<DateTime<Utc>>,
    actors: Vec<String>,
    correlation_ids: Vec<Uuid>,
    causation_ids: Vec<Option<Uuid>>,
    command_ids: Vec<Option<Uuid>>,
    hashes: Vec<&'a [u8]>,
    command_rows: CommandRows<'a>,
}

/// The command rows of a group, one element per append with a command id.
#[derive(Default)]
struct CommandRows<'a> {
    ids: Vec<Uuid>,
    streams: Vec<&'a str>,
    first_versions: Vec<i64>,
    last_versions: Vec<i64>,
    last_positions: Vec<i64>,
    digests: Vec<&'a [u8]>,
}

impl<'a> RememberedParameters<'a> {
    fn new(writes: &'a [PlannedWrite], last_position: u64, remembered_head: u64) -> Result<Self, StoreError> {
        let events: usize = writes.iter().map(|write| write.sealed.len()).sum();
        let mut parameters = RememberedParameters {
            last_position: to_i64(last_position, "position")?,
            remembered_head: to_i64(remembered_head, "position")?,
            positions: Vec::with_capacity(events),
            streams: Vec::with_capacity(events),
            versions: Vec::with_capacity(events),
            event_ids: Vec::with_capacity(events),
            types: Vec::with_capacity(events),
            schema_versions: Vec::with_capacity(events),
            data: Vec::with_capacity(events),
            occurred_at: Vec::with_capacity(events),
            recorded_at: Vec::with_capacity(events),
            actors: Vec::with_capacity(events),
            correlation_ids: Vec::with_capacity(events),
            causation_ids: Vec::with_capacity(events),
            command_ids: Vec::with_capacity(events),
            hashes: Vec::with_capacity(events),
            command_rows: CommandRows::default(),
        };
        for write in writes {
            let (Some(first), Some(last)) = (write.sealed.first(), write.sealed.last()) else {
                continue;
            };
            let actor = actor_json(first)?;
            for (offset, event) in (1..).zip(&write.sealed) {
                let metadata = &event.metadata;
                parameters.positions.push(to_i64(write.base + offset, "position")?);
                parameters.streams.push(event.stream_id.as_str());
                parameters.versions.push(to_i64(event.version.0, "version")?);
                parameters.event_ids.push(event.event_id);
                parameters.types.push(event.event_type.as_str());
                parameters.schema_versions.push(i64::from(event.schema_version));
                parameters.data.push(event.data.as_str());
                parameters.occurred_at.push(metadata.occurred_at);
                parameters.recorded_at.push(event.recorded_at);
                parameters.actors.push(actor.clone());
                parameters.correlation_ids.push(metadata.correlation_id);
                parameters.causation_ids.push(metadata.causation_id);
                parameters.command_ids.push(write.request_command.map(|(id, _)| id));
                parameters.hashes.push(&event.hash.0[..]);
            }
            if let Some((id, digest)) = &write.request_command {
                let rows = &mut parameters.command_rows;
                rows.ids.push(*id);
                rows.streams.push(first.stream_id.as_str());
                rows.first_versions.push(to_i64(first.version.0, "version")?);
                rows.last_versions.push(to_i64(last.version.0, "version")?);
                rows.last_positions
                    .push(to_i64(write.outcome.last_position.sequence(), "position")?);
                rows.digests.push(&digest[..]);
            }
        }
        Ok(parameters)
    }

    fn as_params(&self) -> [&(dyn ToSql + Sync); 22] {
        let rows = &self.command_rows;
        [
            &self.last_position,
            &self.remembered_head,
            &self.positions,
            &self.streams,
            &self.versions,
            &self.event_ids,
            &self.types,
            &self.schema_versions,
            &self.data,
            &self.occurred_at,
            &self.recorded_at,
            &self.actors,
            &self.correlation_ids,
            &self.causation_ids,
            &self.command_ids,
            &self.hashes,
            &rows.ids,
            &rows.streams,
            &rows.first_versions,
            &rows.last_versions,
            &rows.last_positions,
            &rows.digests,
        ]
    }
}

/// Begins the transaction, takes the head row's lock and reads the group's stream heads and
/// command ids, pipelined in one round trip.
async fn begin(
    client: &Client,
    statements: &Statements,
    requests: &[&AppendRequest],
) -> Result<(u64, GroupState), StoreError> {
    let mut streams: Vec<&str> = requests.iter().map(|request| request.stream_id.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let command_ids: Vec<Uuid> = requests
        .iter()
        .filter_map(|request| request.command.map(|key| key.id.0))
        .collect();
    let (stream_parameters, command_parameters): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
        ([&streams], [&command_ids]);
    let (_, locked, heads, commands) = futures::try_join!(
        client.batch_execute("BEGIN"),
        client.query_one(&statements.lock_head, &[]),
        client.query(&statements.stream_heads, &stream_parameters),
        client.query(&statements.commands, &command_parameters),
    )
    .map_err(|error| StoreError::backend("begin a group of appends", error))?;
    let read = |what: &'static str| move |error| StoreError::backend(what, error);
    let locked: i64 = locked.try_get(0).map_err(read("read the head position"))?;
    let locked = u64::try_from(locked).map_err(|_| StoreError::Corrupt {
        location: "event_log_head".to_owned(),
        reason: format!("negative position {locked}"),
    })?;
    let mut state = GroupState {
        heads: HashMap::with_capacity(streams.len()),
        commands: HashMap::with_capacity(commands.len()),
        last_position: locked,
    };
    for request in requests {
        state.heads.insert(request.stream_id.clone(), None);
    }
    for row in &heads {
        let stream: &str = row.try_get(0).map_err(read("read stream heads"))?;
        let version: i64 = row.try_get(1).map_err(read("read stream heads"))?;
        let hash: &[u8] = row.try_get(2).map_err(read("read stream heads"))?;
        let stream = StreamId::parse(stream).map_err(|error| StoreError::Corrupt {
            location: format!("stream {stream}"),
            reason: error.to_string(),
        })?;
        let last = decode_stream_head(&stream, version, hash)?;
        state.heads.insert(stream, Some(last));
    }
    for row in &commands {
        let id = CommandId(row.try_get(0).map_err(read("read command outcomes"))?);
        state.commands.insert(id, decode_command(row, 1, id)?);
    }
    Ok((locked, state))
}

/// What the group knows under the head row's lock: the last version and hash of each of its
/// streams (`None`: no events), the recorded command ids, and the last position handed out.
/// Appends decided in the group update it, so a later append sees them.
#[derive(Clone)]
struct GroupState {
    heads: HashMap<StreamId, Option<(StreamVersion, EventHash)>>,
    commands: HashMap<CommandId, RecordedCommand>,
    last_position: u64,
}

/// What the group decided for one append.
enum Decision {
    /// Answered without writing: a refusal, or a repeated command's first outcome.
    Answered(Result<AppendOutcome, AppendError>),
    /// Sealed and given positions; to be written.
    Write(PlannedWrite),
}

struct PlannedWrite {
    /// The position before the first event.
    base: u64,
    sealed: Vec<RecordedEvent>,
    request_command: Option<(Uuid, [u8; 32])>,
    outcome: AppendOutcome,
}

impl Decision {
    fn into_result(self) -> Result<AppendOutcome, AppendError> {
        match self {
            Decision::Answered(result) => result,
            Decision::Write(write) => Ok(write.outcome),
        }
    }
}

impl GroupState {
    /// Decides one append as the store would alone: a known command id first (its first
    /// outcome, or `CommandIdReused`), then the expected state, then seal and positions.
    fn decide(&mut self, request: &AppendRequest, recorded_at: DateTime<Utc>) -> Decision {
        if let Some(key) = &request.command
            && let Some(recorded) = self.commands.get(&key.id)
        {
            return Decision::Answered(answer_recorded_command(request, key, recorded.clone()));
        }
        debug_assert!(
            self.heads.contains_key(&request.stream_id),
            "every stream's head is read"
        );
        let last = self.heads.get(&request.stream_id).copied().flatten();
        let actual = last.map(|(version, _)| version);
        if !request.expected.admits(actual) {
            return Decision::Answered(Err(AppendError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual,
            }));
        }
        let sealed = seal(request, last, recorded_at);
        let (Some(first), Some(last_event)) = (sealed.first(), sealed.last()) else {
            // validate() refused empty appends before they reached the committer.
            return Decision::Answered(Err(AppendError::Invalid {
                stream_id: request.stream_id.clone(),
                reason: InvalidAppend::NoEvents,
            }));
        };
        let base = self.last_position;
        let last_position = base + sealed.len() as u64;
        let outcome = AppendOutcome {
            stream_id: request.stream_id.clone(),
            first_version: first.version,
            last_version: last_event.version,
            last_position: Position::from_sequence(last_position),
            duplicate: false,
        };
        self.heads
            .insert(request.stream_id.clone(), Some((last_event.version, last_event.hash)));
        self.last_position = last_position;
        if let Some(key) = &request.command {
            let first_outcome = AppendOutcome {
                duplicate: true,
                ..outcome.clone()
            };
            self.commands.insert(
                key.id,
                RecordedCommand {
                    outcome: first_outcome,
                    digest: Some(key.digest),
                },
            );
        }
        Decision::Write(PlannedWrite {
            base,
            request_command: request.command.map(|key| (key.id.0, key.digest.0)),
            sealed,
            outcome,
        })
    }
}

/// One append's insert parameters, owned so the pipelined futures can borrow them.
struct InsertParameters<'a> {
    base: i64,
    stream: &'a str,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    actor: String,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    command_id: Option<Uuid>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i64>,
    data: Vec<&'a str>,
    hashes: Vec<&'a [u8]>,
    first_version: i64,
    last_version: i64,
    last_position: i64,
    digest: Option<&'a [u8]>,
}

impl<'a> InsertParameters<'a> {
    fn new(write: &'a PlannedWrite) -> Result<Self, StoreError> {
        let (Some(first), Some(last)) = (write.sealed.first(), write.sealed.last()) else {
            return Err(StoreError::Backend {
                message: "nothing to append".to_owned(),
                source: None,
            });
        };
        let metadata = &first.metadata;
        let actor = actor_json(first)?;
        Ok(Self {
            base: to_i64(write.base, "position")?,
            stream: first.stream_id.as_str(),
            occurred_at: metadata.occurred_at,
            recorded_at: first.recorded_at,
            actor,
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            command_id: write.request_command.map(|(id, _)| id),
            versions: write
                .sealed
                .iter()
                .map(|event| to_i64(event.version.0, "version"))
                .collect::<Result<_, _>>()?,
            event_ids: write.sealed.iter().map(|event| event.event_id).collect(),
            types: write.sealed.iter().map(|event| event.event_type.as_str()).collect(),
            schema_versions: write
                .sealed
                .iter()
                .map(|event| i64::from(event.schema_version))
                .collect(),
            data: write.sealed.iter().map(|event| event.data.as_str()).collect(),
            hashes: write.sealed.iter().map(|event| &event.hash.0[..]).collect(),
            first_version: to_i64(first.version.0, "version")?,
            last_version: to_i64(last.version.0, "version")?,
            last_position: to_i64(write.outcome.last_position.sequence(), "position")?,
            digest: write.request_command.as_ref().map(|(_, digest)| &digest[..]),
        })
    }

    fn as_params(&self) -> [&(dyn ToSql + Sync); 18] {
        [
            &self.base,
            &self.stream,
            &self.occurred_at,
            &self.recorded_at,
            &self.actor,
            &self.correlation_id,
            &self.causation_id,
            &self.command_id,
            &self.versions,
            &self.event_ids,
            &self.types,
            &self.schema_versions,
            &self.data,
            &self.hashes,
            &self.first_version,
            &self.last_version,
            &self.last_position,
            &self.digest,
        ]
    }
}

/// An append's actor as the JSON text its events store (every event of an append has its).
fn actor_json(event: &RecordedEvent) -> Result<String, StoreError> {
    serde_json::to_string(&event.metadata.actor).map_err(|error| StoreError::Backend {
        message: format!("serialise the actor of an append to {}", event.stream_id),
        source: Some(Box::new(error)),
    })
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend {
        message: format!("{what} {value} does not fit a BIGINT"),
        source: None,
    })
}

/// Why one pipelined step failed.
enum StepError {
    Database(tokio_postgres::Error),
    /// The head row was not at the position the group locked.
    HeadMoved,
    /// A step's outcome went missing (a bug in [`pipelined`]).
    Lost,
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<(), StepError>> + Send + 'a>>;

/// Writes a round's accepted appends, each inside its savepoint, then moves the head row to
/// `last_position` and notifies, all pipelined. Returns `None` when everything was written,
/// or the index (among `decisions`) of the append whose insert the database refused, with
/// its error, after rolling back to that append's savepoint: the appends before it stay
/// written, nothing after it ran (PostgreSQL refuses every statement of an aborted
/// transaction). Any other failure fails the group.
async fn write_round(
    client: &Client,
    statements: &Statements,
    decisions: &[Decision],
    locked_head: u64,
    last_position: u64,
) -> Result<Option<(usize, tokio_postgres::Error)>, StoreError> {
    let mut writes = Vec::new();
    for (index, decision) in decisions.iter().enumerate() {
        if let Decision::Write(write) = decision {
            writes.push((index, InsertParameters::new(write)?));
        }
    }
    let head = (to_i64(last_position, "position")?, to_i64(locked_head, "position")?);
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(writes.len() * 3 + 1);
    for (_, parameters) in &writes {
        steps.push(Box::pin(async move {
            client.batch_execute(SAVEPOINT_SQL).await.map_err(StepError::Database)
        }));
        steps.push(Box::pin(async move {
            let params = parameters.as_params();
            client
                .execute(&statements.insert, &params)
                .await
                .map(|_| ())
                .map_err(StepError::Database)
        }));
        steps.push(Box::pin(async move {
            client.batch_execute(RELEASE_SQL).await.map_err(StepError::Database)
        }));
    }
    if last_position > locked_head {
        let head = &head;
        steps.push(Box::pin(async move {
            match client.execute(&statements.advance_head, &[&head.0, &head.1]).await {
                Ok(1) => Ok(()),
                Ok(_) => Err(StepError::HeadMoved),
                Err(error) => Err(StepError::Database(error)),
            }
        }));
    }
    let outcomes = pipelined(steps).await;
    let Some((failed, error)) = outcomes
        .into_iter()
        .enumerate()
        .find_map(|(index, outcome)| outcome.err().map(|error| (index, error)))
    else {
        return Ok(None);
    };
    match error {
        // Only an insert (the second step of an append) fails alone; its savepoint exists.
        StepError::Database(error) if failed / 3 < writes.len() && failed % 3 == 1 => {
            client
                .batch_execute(ROLL_BACK_TO_SQL)
                .await
                .map_err(|error| StoreError::backend("roll back a refused append", error))?;
            Ok(Some((writes[failed / 3].0, error)))
        }
        StepError::Database(error) => Err(StoreError::backend("write a group of appends", error)),
        StepError::HeadMoved => Err(StoreError::Backend {
            message: "the event log head moved while a group held its lock".to_owned(),
            source: None,
        }),
        StepError::Lost => Err(StoreError::Backend {
            message: "the outcome of a group step went missing".to_owned(),
            source: None,
        }),
    }
}

/// Polls the futures in the order given, each until it waits, then all until done: a
/// tokio-postgres request is sent when its future is first polled, so the requests leave in
/// this order, back to back, and the server answers them in one round trip. (`join_all` does
/// not promise an order of first polls for many futures.)
async fn pipelined(steps: Vec<Step<'_>>) -> Vec<Result<(), StepError>> {
    let mut steps: Vec<Pin<Box<MaybeDone<Step<'_>>>>> =
        steps.into_iter().map(|step| Box::pin(maybe_done(step))).collect();
    futures::future::poll_fn(|context| {
        let mut done = true;
        for step in &mut steps {
            done &= step.as_mut().poll(context).is_ready();
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    steps
        .iter_mut()
        .map(|step| step.as_mut().take_output().unwrap_or(Err(StepError::Lost)))
        .collect()
}

/// The error of an insert the database refused, as the append's caller should see it.
async fn refusal(
    client: &Client,
    request: &AppendRequest,
    error: tokio_postgres::Error,
) -> Result<AppendError, StoreError> {
    let constraint = error
        .as_db_error()
        .filter(|db| *db.code() == SqlState::UNIQUE_VIOLATION)
        .and_then(|db| db.constraint());
    if constraint == Some("event_log_event_id_key") {
        let ids: Vec<Uuid> = request.events.iter().map(|event| event.event_id).collect();
        let row = client
            .query_opt(
                "SELECT event_id FROM event_log WHERE event_id = ANY($1) LIMIT 1",
                &[&ids],
            )
            .await
            .map_err(|error| StoreError::backend("find the stored event id", error))?;
        if let Some(row) = row {
            let duplicate: Uuid = row
                .try_get(0)
                .map_err(|error| StoreError::backend("find the stored event id", error))?;
            return Ok(AppendError::Invalid {
                stream_id: request.stream_id.clone(),
                reason: InvalidAppend::DuplicateEventId(duplicate),
            });
        }
    }
    Ok(AppendError::Store(StoreError::backend(
        format!("append events to stream {}", request.stream_id),
        error,
    )))
}
