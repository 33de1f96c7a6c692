//! The data subjects' keys in their own table of the SQLite file (`personal_data_keys`),
//! written through a connection of their own (ARCHITECTURE.md, "Erasable personal data").
//!
//! The connection runs with `secure_delete`, so an erased key's bytes are overwritten in the
//! page rather than left in free space, and checkpoints the WAL after an erasure, so the old page
//! image leaves the `-wal` file when no reader holds it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use anquan_domain::personal::DataSubject;
use anquan_event_store::StoreError;
use anquan_event_store::personal::{KeyedSubject, SubjectKey, SubjectKeys};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS personal_data_keys (
    key_id     TEXT PRIMARY KEY,
    subject    TEXT NOT NULL UNIQUE,
    key        BLOB NOT NULL,
    created_at TEXT NOT NULL
)";

/// The keys table of one SQLite file.
#[derive(Clone)]
pub struct SqliteSubjectKeys {
    connection: Arc<Mutex<Connection>>,
}

fn failed(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |error| StoreError::backend(format!("personal data keys: {what}"), error)
}

impl SqliteSubjectKeys {
    /// Opens the table in the file (creating it), beside an event store on the same file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path).map_err(failed("open"))?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(failed("set busy timeout"))?;
        connection
            .execute_batch("PRAGMA secure_delete = ON;")
            .map_err(failed("turn on secure_delete"))?;
        connection.execute_batch(SCHEMA).map_err(failed("create the table"))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut connection)
        })
        .await
        .map_err(|error| StoreError::backend("personal data keys: task", error))?
    }
}

fn key_from(bytes: Vec<u8>) -> Result<SubjectKey, StoreError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        location: "personal_data_keys".to_owned(),
        reason: "a key is not 32 bytes".to_owned(),
    })?;
    Ok(SubjectKey(bytes))
}

#[async_trait]
impl SubjectKeys for SqliteSubjectKeys {
    async fn key_for_sealing(&self, subject: &DataSubject) -> Result<KeyedSubject, StoreError> {
        let subject = subject.to_string();
        let fresh = SubjectKey::generate()?;
        self.with(move |connection| {
            // Insert-or-keep, then read: two sealers of one new subject agree on one key.
            connection
                .execute(
                    "INSERT INTO personal_data_keys (key_id, subject, key, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (subject) DO NOTHING",
                    params![
                        Uuid::now_v7().to_string(),
                        subject,
                        fresh.0.to_vec(),
                        chrono::Utc::now().to_rfc3339()
                    ],
                )
                .map_err(failed("insert"))?;
            let (key_id, key): (String, Vec<u8>) = connection
                .query_row(
                    "SELECT key_id, key FROM personal_data_keys WHERE subject = ?1",
                    params![subject],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(failed("read"))?;
            Ok(KeyedSubject {
                key_id: key_id
                    .parse()
                    .map_err(|error| StoreError::backend("personal data keys: key id", error))?,
                key: key_from(key)?,
            })
        })
        .await
    }

    async fn keys(&self, key_ids: &[Uuid]) -> Result<HashMap<Uuid, SubjectKey>, StoreError> {
        let key_ids = key_ids.to_vec();
        self.with(move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT key FROM personal_data_keys WHERE key_id = ?1")
                .map_err(failed("prepare"))?;
            let mut keys = HashMap::new();
            for key_id in key_ids {
                let key: Option<Vec<u8>> = statement
                    .query_row(params![key_id.to_string()], |row| row.get(0))
                    .optional()
                    .map_err(failed("read"))?;
                if let Some(key) = key {
                    keys.insert(key_id, key_from(key)?);
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn erase(&self, subject: &DataSubject) -> Result<u64, StoreError> {
        let subject = subject.to_string();
        self.with(move |connection| {
            let deleted = connection
                .execute("DELETE FROM personal_data_keys WHERE subject = ?1", params![subject])
                .map_err(failed("delete"))?;
            // Best effort: a reader holding an old snapshot keeps the frame until it ends.
            if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(%error, "could not checkpoint the WAL after erasing a key");
            }
            Ok(deleted as u64)
        })
        .await
    }
}
