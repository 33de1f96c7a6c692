//! The data subjects' keys in their own table (`personal_data_keys`, migration 3), never in the
//! log (ARCHITECTURE.md, "Erasable personal data").

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use uuid::Uuid;

use anquan_domain::personal::DataSubject;
use anquan_event_store::StoreError;
use anquan_event_store::personal::{KeyedSubject, SubjectKey, SubjectKeys};

/// The keys table of one database, through the event store's pool.
#[derive(Clone)]
pub struct PostgresSubjectKeys {
    pool: Pool,
}

impl PostgresSubjectKeys {
    /// Uses `pool` (the event store's: its migrations created the table).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Connects to a database of its own (the read-model database when the events live in
    /// KurrentDB) and creates the keys table there if it is missing, under the migrations'
    /// advisory lock so two nodes starting together create it once.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let (pool, _) = crate::store::build_pool(url, pool_size)?;
        let keys = Self { pool };
        let mut client = keys.client().await?;
        let transaction = client.transaction().await.map_err(failed("begin"))?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&crate::schema::MIGRATION_LOCK_KEY],
            )
            .await
            .map_err(failed("lock"))?;
        let missing: bool = transaction
            .query_one("SELECT to_regclass('personal_data_keys') IS NULL", &[])
            .await
            .map_err(failed("look for the table"))?
            .try_get(0)
            .map_err(failed("look for the table"))?;
        if missing {
            transaction
                .batch_execute(crate::schema::PERSONAL_DATA_KEYS_TABLE)
                .await
                .map_err(failed("create the table"))?;
        }
        transaction.commit().await.map_err(failed("commit"))?;
        drop(client);
        Ok(keys)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::backend("personal data keys: connect", error))
    }
}

fn failed(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| StoreError::backend(format!("personal data keys: {what}"), error)
}

fn key_from(bytes: Vec<u8>) -> Result<SubjectKey, StoreError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        location: "personal_data_keys".to_owned(),
        reason: "a key is not 32 bytes".to_owned(),
    })?;
    Ok(SubjectKey(bytes))
}

#[async_trait]
impl SubjectKeys for PostgresSubjectKeys {
    async fn key_for_sealing(&self, subject: &DataSubject) -> Result<KeyedSubject, StoreError> {
        let subject = subject.to_string();
        let fresh = SubjectKey::generate()?;
        let client = self.client().await?;
        // Insert-or-keep, then read: two nodes sealing for one new subject agree on one key.
        client
            .execute(
                "INSERT INTO personal_data_keys (key_id, subject, key) VALUES ($1, $2, $3) \
                 ON CONFLICT (subject) DO NOTHING",
                &[&Uuid::now_v7(), &subject, &fresh.0.as_slice()],
            )
            .await
            .map_err(failed("insert"))?;
        let row = client
            .query_one(
                "SELECT key_id, key FROM personal_data_keys WHERE subject = $1",
                &[&subject],
            )
            .await
            .map_err(failed("read"))?;
        Ok(KeyedSubject {
            key_id: row.try_get(0).map_err(failed("read"))?,
            key: key_from(row.try_get(1).map_err(failed("read"))?)?,
        })
    }

    async fn keys(&self, key_ids: &[Uuid]) -> Result<HashMap<Uuid, SubjectKey>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key_id, key FROM personal_data_keys WHERE key_id = ANY($1)",
                &[&key_ids],
            )
            .await
            .map_err(failed("read"))?;
        let mut keys = HashMap::with_capacity(rows.len());
        for row in rows {
            keys.insert(
                row.try_get(0).map_err(failed("read"))?,
                key_from(row.try_get(1).map_err(failed("read"))?)?,
            );
        }
        Ok(keys)
    }

    async fn erase(&self, subject: &DataSubject) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let deleted = client
            .execute(
                "DELETE FROM personal_data_keys WHERE subject = $1",
                &[&subject.to_string()],
            )
            .await
            .map_err(failed("delete"))?;
        // The deleted row stays in the heap as a dead tuple until vacuumed; vacuum the small
        // table now (best effort: WAL archives and backups are outside this process's reach).
        if let Err(error) = client.batch_execute("VACUUM personal_data_keys").await {
            tracing::warn!(%error, "could not vacuum personal_data_keys after an erasure");
        }
        Ok(deleted)
    }
}
