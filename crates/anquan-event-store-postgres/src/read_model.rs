//! [`PostgresReadModelStore`]: read models as plain PostgreSQL tables.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BufMut;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use tokio::sync::watch;

use anquan_event_store::read_model::{
    LEASES_DDL, RELEASE_LEASE_SQL, check_expected, check_fence, claim_lease_sql, leases_sql, renew_lease_sql,
    storable_instant, storable_json, storable_text,
};
use anquan_event_store::{
    CheckpointExpected, Dialect, LeaseClaim, LeaseHolder, LeaseTerm, Position, ProjectionBatch, ReadModelError,
    ReadModelStore, Row, SqlValue, Statement, plan_runs,
};

use crate::listener::{self, ListenerTask, Listening};
use crate::store::build_pool;
use crate::unnest::{insert_lookups, unnest_sql};

/// The channel a committed batch notifies, so every node's followers read the new checkpoints.
pub(crate) const CHECKPOINTS_CHANNEL: &str = "anquan_checkpoints";
/// PostgreSQL's clock in milliseconds since the Unix epoch (the wall clock, not the
/// transaction's start), for leases.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The advisory-lock key that serialises read-model migrations ("anquanrm").
const MIGRATION_LOCK_KEY: i64 = 0x616e_7175_616e_726d;

const CHECKPOINTS_DDL: &str = "CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    commit     BIGINT NOT NULL,
    prepare    BIGINT NOT NULL
)";

/// Moves a projection's checkpoint whatever it was (a batch that expects nothing).
const CHECKPOINT_UPSERT: &str = "INSERT INTO projection_checkpoints (projection, commit, prepare) VALUES ($1, $2, $3) \
    ON CONFLICT (projection) DO UPDATE SET commit = EXCLUDED.commit, prepare = EXCLUDED.prepare";
/// Sets a projection's first checkpoint; no row when it has one already.
const CHECKPOINT_INSERT_NEW: &str = "INSERT INTO projection_checkpoints (projection, commit, prepare) VALUES ($1, $2, $3) \
    ON CONFLICT (projection) DO NOTHING";
/// Moves a projection's checkpoint from the expected one (`$4`, `$5`); no row otherwise.
const CHECKPOINT_MOVE: &str = "UPDATE projection_checkpoints SET commit = $2, prepare = $3 WHERE projection = $1 AND commit = $4 AND prepare = $5";
/// A fenced batch's first statement: one row while its term is the group's current one, and
/// a key-share lock on the lease row until the batch commits, so a claim of the lease, which
/// takes the row `FOR UPDATE` first ([`LEASE_CLAIM_LOCK`]), waits for the batch and the batch
/// never lands after its term ended; while the holder's renewal ([`LEASE_RENEW`]), an update of
/// no key, does not wait for its own term's batches (a batch of 30,000 events held a share
/// lock for up to a second, and the renewal with it).
const LEASE_FENCE: &str = "SELECT term FROM projection_leases WHERE lease_group = $1 AND term = $2 FOR KEY SHARE";
/// The lock a claim that may start a new term takes on the lease row before deciding: it
/// conflicts with the fence's key-share lock, so it waits for the batches in flight of the term
/// it may end, and a batch begun after it sees the new term.
const LEASE_CLAIM_LOCK: &str = "SELECT 1 FROM projection_leases WHERE lease_group = $1 FOR UPDATE";
const CHECKPOINT_NOTIFY: &str = "SELECT pg_notify('anquan_checkpoints', $1)";
/// A batch's statements are planned for their parameters at each execution. A prepared
/// statement's cached generic plan knows neither how many rows a run's arrays hold nor, made
/// while a rebuild's tables were still empty, how large the tables have grown: such a plan
/// joined a run of five rows to `hazards` by a sequential scan, at about 1.5 ms a statement
/// and more as the table grew.
const CUSTOM_PLANS: &str = "SET LOCAL plan_cache_mode = force_custom_plan";
/// Removes a projection's checkpoint, last in its reset's transaction.
const CHECKPOINT_DELETE: &str = "DELETE FROM projection_checkpoints WHERE projection = $1";

fn backend(what: &'static str) -> impl Fn(tokio_postgres::Error) -> ReadModelError + Copy {
    move |error| ReadModelError::backend(what, error)
}

/// Read models in PostgreSQL, written by the same projection code as SQLite.
pub struct PostgresReadModelStore {
    pool: Pool,
    /// Bumped for every batch committed through this store and every `anquan_checkpoints`
    /// notification (any node's commit).
    moves: Arc<watch::Sender<u64>>,
    unique_keys: UniqueKeys,
    _listener: ListenerTask,
}

/// Feeds [`PostgresReadModelStore::checkpoint_moves`] from `LISTEN anquan_checkpoints`.
struct CheckpointMoves(Arc<watch::Sender<u64>>);

impl Listening for CheckpointMoves {
    const CHANNEL: &'static str = CHECKPOINTS_CHANNEL;

    async fn caught_up(&self, _: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
        // Whatever moved while no one listened is read by the followers on this wake-up.
        bump(&self.0);
        Ok(())
    }

    fn notified(&self, _: &str) {
        bump(&self.0);
    }
}

fn bump(moves: &watch::Sender<u64>) {
    moves.send_modify(|count| *count = count.wrapping_add(1));
}

impl PostgresReadModelStore {
    /// Connects, creates the checkpoint and lease tables, and starts listening for checkpoint
    /// moves by other nodes.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, ReadModelError> {
        let (pool, config) = build_pool(url, pool_size).map_err(|error| ReadModelError::backend("connect", error))?;
        let moves = Arc::new(watch::Sender::new(0));
        let listener = listener::spawn_listener(config, CheckpointMoves(Arc::clone(&moves)));
        let store = Self {
            pool,
            moves,
            unique_keys: UniqueKeys::default(),
            _listener: listener,
        };
        store.migrate(CHECKPOINTS_DDL).await?;
        store.migrate(LEASES_DDL).await?;
        Ok(store)
    }

    /// Why a batch's fence or expected checkpoint did not hold, read after its transaction
    /// rolled back.
    async fn refusal(&self, failed: &Check<'_>) -> ReadModelError {
        match failed {
            Check::Lease(lease) => {
                let current = match self.lease_term(&lease.group).await {
                    Ok(current) => current,
                    Err(error) => return error,
                };
                match check_fence(lease, current) {
                    Err(error) => error,
                    // It was taken and given back meanwhile: still not this batch's term.
                    Ok(()) => ReadModelError::Fenced {
                        lease: (*lease).clone(),
                        current,
                    },
                }
            }
            Check::Checkpoint(batch) => {
                let found = match self.checkpoint(&batch.projection).await {
                    Ok(found) => found,
                    Err(error) => return error,
                };
                match check_expected(batch, found) {
                    Err(error) => error,
                    Ok(()) => ReadModelError::CheckpointMoved {
                        projection: batch.projection.clone(),
                        expected: batch.after,
                        found,
                    },
                }
            }
        }
    }

    async fn lease_term(&self, group: &str) -> Result<Option<i64>, ReadModelError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT term FROM projection_leases WHERE lease_group = $1", &[&group])
            .await
            .map_err(backend("read a lease"))?;
        row.map(|row| row.try_get::<_, i64>(0).map_err(backend("read a lease")))
            .transpose()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ReadModelError> {
        self.pool
            .get()
            .await
            .map_err(|error| ReadModelError::backend("get a postgres connection", error))
    }
}

/// A [`SqlValue`] encoded as the server's inferred parameter type.
#[derive(Debug)]
struct Param<'a>(&'a SqlValue);

fn mismatch(value: &SqlValue, ty: &Type) -> Box<dyn Error + Sync + Send> {
    format!("cannot pass {value:?} as a {ty} parameter").into()
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self.0 {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Bool(value) => value.to_sql(ty, out),
            SqlValue::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                #[expect(clippy::cast_precision_loss, reason = "an integer into a float column, as SQL does")]
                Type::FLOAT8 => (*value as f64).to_sql(ty, out),
                Type::BOOL => (*value != 0).to_sql(ty, out),
                _ => Err(mismatch(self.0, ty)),
            },
            SqlValue::Real(value) => match *ty {
                #[expect(clippy::cast_possible_truncation, reason = "a float4 column holds less precision")]
                Type::FLOAT4 => (*value as f32).to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
            SqlValue::Text(text) => match *ty {
                Type::JSON | Type::JSONB => json_to_sql(&storable_json(text), ty, out),
                _ => storable_text(text).as_ref().to_sql(ty, out),
            },
            SqlValue::Timestamp(instant) => match storable_instant(instant) {
                instant if *ty == Type::TIMESTAMP => instant.naive_utc().to_sql(ty, out),
                instant if matches!(*ty, Type::TEXT | Type::VARCHAR) => instant.to_rfc3339().as_str().to_sql(ty, out),
                instant => instant.to_sql(ty, out),
            },
            SqlValue::Json(text) => match *ty {
                Type::JSON | Type::JSONB => json_to_sql(&storable_json(text), ty, out),
                _ => storable_json(text).as_ref().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Writes JSON text unchanged: `json`'s binary form is the text, `jsonb`'s is a version byte
/// and the text.
fn json_to_sql(text: &str, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
    if *ty == Type::JSONB {
        out.put_u8(1);
    }
    out.put_slice(text.as_bytes());
    Ok(IsNull::No)
}

/// Whether a column alone is unique in its table, as asked of the catalog, by (table, column):
/// what lets [`unnest_sql`] join a lookup instead of running it per row. Asked once per store;
/// a projection's tables keep their keys for the store's life.
#[derive(Default)]
struct UniqueKeys(std::sync::Mutex<HashMap<(String, String), bool>>);

/// A unique, immediate, valid index on exactly that one column, over every row (not partial).
const UNIQUE_KEY_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_index i \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
     WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indimmediate AND i.indisvalid \
     AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = $2)";

impl UniqueKeys {
    fn known(&self, table: &str, column: &str) -> Option<bool> {
        let keys = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.get(&(table.to_owned(), column.to_owned())).copied()
    }

    /// Asks the catalog about every lookup of `sql` not yet known.
    async fn learn(&self, transaction: &deadpool_postgres::Transaction<'_>, sql: &str) -> Result<(), ReadModelError> {
        for lookup in insert_lookups(sql) {
            if self.known(&lookup.table, &lookup.key).is_some() {
                continue;
            }
            let unique: bool = transaction
                .query_one(UNIQUE_KEY_SQL, &[&lookup.table, &lookup.key])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|error| {
                    ReadModelError::backend(format!("ask whether {}.{} is unique", lookup.table, lookup.key), error)
                })?;
            let mut keys = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.insert((lookup.table, lookup.key), unique);
        }
        Ok(())
    }
}

/// What must hold for a batch to commit: each checks one statement's row count.
enum Check<'a> {
    /// The fence statement returned its row: the term is current.
    Lease(&'a LeaseTerm),
    /// The checkpoint statement changed its row: it was the expected one.
    Checkpoint(&'a ProjectionBatch),
}

/// How one run of statements executes: one statement, or several as one over arrays.
enum Execution<'a> {
    One {
        index: usize,
        prepared: tokio_postgres::Statement,
        params: Vec<Param<'a>>,
    },
    Together {
        first: usize,
        prepared: tokio_postgres::Statement,
        /// One array per parameter, an element per statement.
        columns: Vec<Vec<Param<'a>>>,
    },
}

/// Runs statements with the effect of running them one by one in order, pipelined: the
/// statements are grouped into runs ([`plan_runs`]: statements of one SQL text with disjoint
/// footprints, moved only past statements whose footprints are disjoint from theirs); a run of
/// several runs as one statement over arrays ([`unnest_sql`]). The distinct statements are
/// prepared (once per connection, through the statement cache), then every execution is sent
/// without waiting for the one before, and the replies are awaited together. One connection
/// runs its requests strictly in the order they were sent; the first failure (in that order) is
/// returned, and the server rejects every later statement of the then-aborted transaction, which
/// the caller rolls back. Returns each statement's row count; the statements of a run that ran
/// as one share theirs, given to the first of them.
async fn execute_all(
    transaction: &deadpool_postgres::Transaction<'_>,
    statements: &[&Statement],
    unique_keys: &UniqueKeys,
) -> Result<Vec<u64>, ReadModelError> {
    let prepare = |sql: String| async move {
        transaction
            .prepare_cached(&sql)
            .await
            .map_err(|error| ReadModelError::backend(format!("prepare {sql:?}"), error))
    };
    let mut single: HashMap<&str, tokio_postgres::Statement> = HashMap::new();
    let mut together: HashMap<&str, Option<tokio_postgres::Statement>> = HashMap::new();
    let mut executions: Vec<Execution<'_>> = Vec::new();
    for run in plan_runs(statements) {
        let Some(&first) = run.statements.first() else {
            continue;
        };
        let sql: &str = &statements[first].sql;
        let prepared = match single.get(sql) {
            Some(prepared) => prepared.clone(),
            None => {
                let prepared = prepare(sql.to_owned()).await?;
                single.insert(sql, prepared.clone());
                prepared
            }
        };
        let arity = prepared.params().len();
        let merged = if run.statements.len() > 1
            && run
                .statements
                .iter()
                .all(|index| statements[*index].params.len() == arity)
        {
            match together.get(sql) {
                Some(merged) => merged.clone(),
                None => {
                    unique_keys.learn(transaction, sql).await?;
                    let unique = |table: &str, key: &str| unique_keys.known(table, key) == Some(true);
                    let merged = match unnest_sql(sql, prepared.params(), unique) {
                        Some(merged_sql) => Some(prepare(merged_sql).await?),
                        None => None,
                    };
                    together.insert(sql, merged.clone());
                    merged
                }
            }
        } else {
            None
        };
        match merged {
            Some(merged) => executions.push(Execution::Together {
                first,
                prepared: merged,
                columns: (0..arity)
                    .map(|column| {
                        run.statements
                            .iter()
                            .map(|index| Param(&statements[*index].params[column]))
                            .collect()
                    })
                    .collect(),
            }),
            None => executions.extend(run.statements.iter().map(|&index| Execution::One {
                index,
                prepared: prepared.clone(),
                params: statements[index].params.iter().map(Param).collect(),
            })),
        }
    }
    let refs: Vec<Vec<&(dyn ToSql + Sync)>> = executions
        .iter()
        .map(|execution| match execution {
            Execution::One { params, .. } => params.iter().map(|param| param as &(dyn ToSql + Sync)).collect(),
            Execution::Together { columns, .. } => columns.iter().map(|column| column as &(dyn ToSql + Sync)).collect(),
        })
        .collect();
    // `try_join_all` polls the futures first in order, and each sends its request on its
    // first poll, so the requests go out in the planned order.
    let sent = executions.iter().zip(&refs).map(|(execution, refs)| async move {
        let (index, prepared) = match execution {
            Execution::One { index, prepared, .. } => (*index, prepared),
            Execution::Together { first, prepared, .. } => (*first, prepared),
        };
        transaction
            .execute(prepared, refs)
            .await
            .map(|count| (index, count))
            .map_err(|error| ReadModelError::backend(format!("execute {:?}", statements[index].sql), error))
    });
    let mut counts = vec![0; statements.len()];
    for (index, count) in futures::future::try_join_all(sent).await? {
        counts[index] = count;
    }
    Ok(counts)
}

fn to_value(row: &tokio_postgres::Row, column: usize) -> Result<SqlValue, ReadModelError> {
    let ty = row.columns()[column].type_();
    let read = |error| ReadModelError::backend("read column", error);
    let value = match *ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(column)
            .map_err(read)?
            .map(SqlValue::Bool),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(column)
            .map_err(read)?
            .map(|value| SqlValue::Int(value.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(column)
            .map_err(read)?
            .map(|value| SqlValue::Int(value.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(column).map_err(read)?.map(SqlValue::Int),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(column)
            .map_err(read)?
            .map(|value| SqlValue::Real(value.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(column).map_err(read)?.map(SqlValue::Real),
        Type::TIMESTAMPTZ => row
            .try_get::<_, Option<DateTime<Utc>>>(column)
            .map_err(read)?
            .map(SqlValue::Timestamp),
        Type::TIMESTAMP => row
            .try_get::<_, Option<chrono::NaiveDateTime>>(column)
            .map_err(read)?
            .map(|value| SqlValue::Timestamp(value.and_utc())),
        Type::JSON | Type::JSONB => row
            .try_get::<_, Option<RawJson>>(column)
            .map_err(read)?
            .map(|json| SqlValue::Json(json.0)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(column)
            .map_err(read)?
            .map(SqlValue::Text),
        _ => {
            return Err(ReadModelError::Type {
                column,
                expected: "bool, integer, float, text, timestamp or json",
                found: ty.to_string(),
            });
        }
    };
    Ok(value.unwrap_or(SqlValue::Null))
}

/// JSON text as the server sent it (`jsonb` minus its version byte).
struct RawJson(String);

impl<'a> tokio_postgres::types::FromSql<'a> for RawJson {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let raw = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb version".into()),
            }
        } else {
            raw
        };
        Ok(RawJson(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
}

#[async_trait]
impl ReadModelStore for PostgresReadModelStore {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn migrate(&self, ddl: &str) -> Result<(), ReadModelError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend("begin migration"))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(backend("lock read-model migration"))?;
        transaction
            .batch_execute(ddl)
            .await
            .map_err(backend("run read-model ddl"))?;
        transaction
            .commit()
            .await
            .map_err(backend("commit read-model migration"))
    }

    async fn apply(&self, batch: Arc<ProjectionBatch>) -> Result<(), ReadModelError> {
        self.apply_together(&[batch]).await
    }

    async fn apply_together(&self, batches: &[Arc<ProjectionBatch>]) -> Result<(), ReadModelError> {
        let position = |value: u64| SqlValue::Int(i64::try_from(value).unwrap_or(i64::MAX));
        // A fenced call's batches are all of one group, folded under one term.
        let lease = batches.iter().find_map(|batch| batch.lease.as_ref());
        let fence = lease.map(|lease| {
            Statement::new(
                LEASE_FENCE,
                vec![SqlValue::Text(lease.group.clone()), SqlValue::Int(lease.term)],
            )
        });
        let checkpoints: Vec<Statement> = batches
            .iter()
            .map(|batch| {
                let mut params = vec![
                    SqlValue::Text(batch.projection.clone()),
                    position(batch.checkpoint.commit),
                    position(batch.checkpoint.prepare),
                ];
                let sql = match batch.after {
                    CheckpointExpected::Any => CHECKPOINT_UPSERT,
                    CheckpointExpected::Absent => CHECKPOINT_INSERT_NEW,
                    CheckpointExpected::At(after) => {
                        params.extend([position(after.commit), position(after.prepare)]);
                        CHECKPOINT_MOVE
                    }
                };
                Statement::new(sql, params)
            })
            .collect();
        let notify = Statement::new(CHECKPOINT_NOTIFY, vec![SqlValue::Text(String::new())]);
        // The checks first, so the rows they lock are locked before any statement runs.
        let mut statements: Vec<&Statement> = Vec::new();
        let mut checks: Vec<(usize, Check<'_>)> = Vec::new();
        if let (Some(fence), Some(lease)) = (&fence, lease) {
            checks.push((statements.len(), Check::Lease(lease)));
            statements.push(fence);
        }
        for (batch, checkpoint) in batches.iter().zip(&checkpoints) {
            if batch.after != CheckpointExpected::Any {
                checks.push((statements.len(), Check::Checkpoint(batch)));
            }
            statements.push(checkpoint);
            statements.extend(&batch.statements);
        }
        statements.push(&notify);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend("begin projection batch"))?;
        transaction
            .batch_execute(CUSTOM_PLANS)
            .await
            .map_err(backend("plan projection batch"))?;
        let counts = execute_all(&transaction, &statements, &self.unique_keys).await?;
        if let Some((_, failed)) = checks.iter().find(|(index, _)| counts.get(*index).copied() != Some(1)) {
            transaction
                .rollback()
                .await
                .map_err(backend("roll back a refused projection batch"))?;
            drop(client);
            return Err(self.refusal(failed).await);
        }
        transaction.commit().await.map_err(backend("commit projection batch"))?;
        bump(&self.moves);
        Ok(())
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<Position>, ReadModelError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT commit, prepare FROM projection_checkpoints WHERE projection = $1")
            .await
            .map_err(backend("prepare checkpoint read"))?;
        let row = client
            .query_opt(&statement, &[&projection])
            .await
            .map_err(backend("read checkpoint"))?;
        row.map(|row| {
            let commit: i64 = row.try_get(0).map_err(backend("read checkpoint"))?;
            let prepare: i64 = row.try_get(1).map_err(backend("read checkpoint"))?;
            let negative = |column| ReadModelError::Type {
                column,
                expected: "a non-negative position",
                found: "a negative number".to_owned(),
            };
            Ok(Position {
                commit: u64::try_from(commit).map_err(|_| negative(0))?,
                prepare: u64::try_from(prepare).map_err(|_| negative(1))?,
            })
        })
        .transpose()
    }

    async fn reset(&self, projection: &str, mut statements: Vec<Statement>) -> Result<(), ReadModelError> {
        statements.push(Statement::new(
            CHECKPOINT_DELETE,
            vec![SqlValue::Text(projection.to_owned())],
        ));
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend("begin reset"))?;
        let statements: Vec<&Statement> = statements.iter().collect();
        execute_all(&transaction, &statements, &self.unique_keys).await?;
        transaction.commit().await.map_err(backend("commit reset"))?;
        bump(&self.moves);
        Ok(())
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, ReadModelError> {
        let client = self.client().await?;
        let prepared = client
            .prepare_cached(sql)
            .await
            .map_err(|error| ReadModelError::backend(format!("prepare {sql:?}"), error))?;
        let params: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|param| param as &(dyn ToSql + Sync)).collect();
        let rows = client
            .query(&prepared, &refs)
            .await
            .map_err(|error| ReadModelError::backend(format!("query {sql:?}"), error))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|column| to_value(row, column))
                    .collect::<Result<_, _>>()
                    .map(Row)
            })
            .collect()
    }

    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, ReadModelError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT projection, commit, prepare FROM projection_checkpoints", &[])
            .await
            .map_err(backend("read checkpoints"))?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0).map_err(backend("read checkpoints"))?;
                let part = |column| {
                    let value: i64 = row.try_get(column).map_err(backend("read checkpoints"))?;
                    u64::try_from(value).map_err(|_| ReadModelError::Type {
                        column,
                        expected: "a non-negative position",
                        found: value.to_string(),
                    })
                };
                Ok((
                    name,
                    Position {
                        commit: part(1)?,
                        prepare: part(2)?,
                    },
                ))
            })
            .collect()
    }

    async fn claim_lease(&self, claim: &LeaseClaim) -> Result<Option<LeaseTerm>, ReadModelError> {
        let mut client = self.client().await?;
        if let (Some(term), false) = (claim.renewing, claim.force) {
            let statement = client
                .prepare_cached(&renew_lease_sql(NOW_MS))
                .await
                .map_err(backend("prepare a lease renewal"))?;
            let renewed = client
                .query_opt(&statement, &[&claim.group, &claim.holder, &term, &claim.duration_ms])
                .await
                .map_err(backend("renew a lease"))?;
            if renewed.is_some() {
                return Ok(Some(LeaseTerm {
                    group: claim.group.clone(),
                    term,
                }));
            }
        }
        let sql = claim_lease_sql(NOW_MS);
        let statement = client
            .prepare_cached(&sql)
            .await
            .map_err(backend("prepare a lease claim"))?;
        let renewing = claim.renewing.unwrap_or(-1);
        let force = i64::from(claim.force);
        let transaction = client.transaction().await.map_err(backend("begin a lease claim"))?;
        transaction
            .execute(LEASE_CLAIM_LOCK, &[&claim.group])
            .await
            .map_err(backend("lock the lease"))?;
        let row = transaction
            .query_opt(
                &statement,
                &[&claim.group, &claim.holder, &renewing, &claim.duration_ms, &force],
            )
            .await
            .map_err(backend("claim a lease"))?;
        transaction.commit().await.map_err(backend("commit a lease claim"))?;
        row.map(|row| {
            Ok(LeaseTerm {
                group: claim.group.clone(),
                term: row.try_get(0).map_err(backend("claim a lease"))?,
            })
        })
        .transpose()
    }

    async fn release_lease(&self, lease: &LeaseTerm, holder: &str) -> Result<(), ReadModelError> {
        let client = self.client().await?;
        client
            .execute(RELEASE_LEASE_SQL, &[&lease.group, &holder, &lease.term])
            .await
            .map_err(backend("release a lease"))?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseHolder>, ReadModelError> {
        let client = self.client().await?;
        let rows = client
            .query(&leases_sql(NOW_MS), &[])
            .await
            .map_err(backend("read leases"))?;
        rows.iter()
            .map(|row| {
                let read = backend("read leases");
                Ok(LeaseHolder {
                    group: row.try_get(0).map_err(read)?,
                    term: row.try_get(1).map_err(read)?,
                    holder: row.try_get(2).map_err(read)?,
                    expires_in_ms: row.try_get(3).map_err(read)?,
                })
            })
            .collect()
    }

    fn checkpoint_moves(&self) -> watch::Receiver<u64> {
        self.moves.subscribe()
    }
}
