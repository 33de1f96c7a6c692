//! [`PostgresReadModelStore`]: read models as plain PostgreSQL tables.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BufMut;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use anquan_event_store::read_model::{storable_instant, storable_json, storable_text};
use anquan_event_store::{
    Dialect, Position, ProjectionBatch, ReadModelError, ReadModelStore, Row, SqlValue, Statement,
};

use crate::store::build_pool;

/// The advisory-lock key that serialises read-model migrations ("anquanrm").
const MIGRATION_LOCK_KEY: i64 = 0x616e_7175_616e_726d;

const CHECKPOINTS_DDL: &str = "CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    commit     BIGINT NOT NULL,
    prepare    BIGINT NOT NULL
)";

/// Moves a projection's checkpoint, last in its batch's transaction.
const CHECKPOINT_UPSERT: &str = "INSERT INTO projection_checkpoints (projection, commit, prepare) VALUES ($1, $2, $3) \
    ON CONFLICT (projection) DO UPDATE SET commit = EXCLUDED.commit, prepare = EXCLUDED.prepare";
/// Removes a projection's checkpoint, last in its reset's transaction.
const CHECKPOINT_DELETE: &str = "DELETE FROM projection_checkpoints WHERE projection = $1";

fn backend(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ReadModelError {
    move |error| ReadModelError::backend(what, error)
}

/// Read models in PostgreSQL, written by the same projection code as SQLite.
pub struct PostgresReadModelStore {
    pool: Pool,
}

impl PostgresReadModelStore {
    /// Connects and creates the checkpoint table.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, ReadModelError> {
        let (pool, _) = build_pool(url, pool_size).map_err(|error| ReadModelError::backend("connect", error))?;
        let store = Self { pool };
        store.migrate(CHECKPOINTS_DDL).await?;
        Ok(store)
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

/// Runs statements in order, pipelined: the distinct statements are prepared (once per
/// connection, through the statement cache), then every execution is sent without waiting
/// for the one before, and the replies are awaited together. One connection runs its requests
/// strictly in the order they were sent, so the effect is that of running them one by one;
/// the first failure (in statement order) is returned, and the server rejects every later
/// statement of the then-aborted transaction, which the caller rolls back.
async fn execute_all(
    transaction: &deadpool_postgres::Transaction<'_>,
    statements: &[&Statement],
) -> Result<(), ReadModelError> {
    let mut distinct: HashMap<&str, tokio_postgres::Statement> = HashMap::new();
    let mut prepared = Vec::with_capacity(statements.len());
    for statement in statements {
        let sql: &str = &statement.sql;
        let handle = match distinct.get(sql) {
            Some(handle) => handle.clone(),
            None => {
                let handle = transaction
                    .prepare_cached(sql)
                    .await
                    .map_err(|error| ReadModelError::backend(format!("prepare {sql:?}"), error))?;
                distinct.insert(sql, handle.clone());
                handle
            }
        };
        prepared.push(handle);
    }
    let params: Vec<Vec<Param<'_>>> = statements
        .iter()
        .map(|statement| statement.params.iter().map(Param).collect())
        .collect();
    let refs: Vec<Vec<&(dyn ToSql + Sync)>> = params
        .iter()
        .map(|params| params.iter().map(|param| param as &(dyn ToSql + Sync)).collect())
        .collect();
    // `try_join_all` polls the futures first in order, and each sends its request on its
    // first poll, so the requests go out in statement order.
    let executions = statements
        .iter()
        .zip(&prepared)
        .zip(&refs)
        .map(|((statement, prepared), refs)| async move {
            transaction
                .execute(prepared, refs)
                .await
                .map_err(|error| ReadModelError::backend(format!("execute {:?}", statement.sql), error))
        });
    futures::future::try_join_all(executions).await.map(|_| ())
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
        let checkpoints: Vec<Statement> = batches
            .iter()
            .map(|batch| {
                let commit = i64::try_from(batch.checkpoint.commit).unwrap_or(i64::MAX);
                let prepare = i64::try_from(batch.checkpoint.prepare).unwrap_or(i64::MAX);
                Statement::new(
                    CHECKPOINT_UPSERT,
                    vec![
                        SqlValue::Text(batch.projection.clone()),
                        SqlValue::Int(commit),
                        SqlValue::Int(prepare),
                    ],
                )
            })
            .collect();
        let mut statements: Vec<&Statement> = Vec::new();
        for (batch, checkpoint) in batches.iter().zip(&checkpoints) {
            statements.extend(&batch.statements);
            statements.push(checkpoint);
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend("begin projection batch"))?;
        execute_all(&transaction, &statements).await?;
        transaction.commit().await.map_err(backend("commit projection batch"))
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
        execute_all(&transaction, &statements).await?;
        transaction.commit().await.map_err(backend("commit reset"))
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
}
