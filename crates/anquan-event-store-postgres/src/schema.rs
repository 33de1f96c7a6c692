//! The event store's schema and its migrations, applied at start under an advisory lock.

use deadpool_postgres::Client;

use anquan_event_store::StoreError;

/// The advisory-lock key that serialises migrations of one database ("anquanmg").
pub(crate) const MIGRATION_LOCK_KEY: i64 = 0x616e_7175_616e_6d67;

/// Migrations in order; the schema version is the number applied. Never edit a released one:
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the log, the position counter, the command index.
    r#"
    CREATE TABLE event_log (
        position       BIGINT PRIMARY KEY,
        stream_id      TEXT NOT NULL,
        version        BIGINT NOT NULL,
        event_id       UUID NOT NULL,
        event_type     TEXT NOT NULL,
        schema_version BIGINT NOT NULL,
        -- `json`, not `jsonb`: the text is kept byte for byte, as the hash chain needs.
        data           JSON NOT NULL,
        occurred_at    TIMESTAMPTZ NOT NULL,
        recorded_at    TIMESTAMPTZ NOT NULL,
        actor          JSON NOT NULL,
        correlation_id UUID NOT NULL,
        causation_id   UUID,
        command_id     UUID,
        hash           BYTEA NOT NULL,
        -- The writing transaction, for forensics (see the crate docs on visibility).
        xid            XID8 NOT NULL DEFAULT pg_current_xact_id(),
        CONSTRAINT event_log_stream_version_key UNIQUE (stream_id, version),
        CONSTRAINT event_log_event_id_key UNIQUE (event_id)
    );
    -- One row: the last position handed out. Appends take it with a row lock held until
    -- commit, which puts commits in position order (crate docs, "No skipped events").
    CREATE TABLE event_log_head (
        id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
        position BIGINT NOT NULL
    );
    INSERT INTO event_log_head (id, position) VALUES (TRUE, 0);
    CREATE TABLE event_commands (
        command_id    UUID PRIMARY KEY,
        stream_id     TEXT NOT NULL,
        first_version BIGINT NOT NULL,
        last_version  BIGINT NOT NULL,
        last_position BIGINT NOT NULL
    );
    "#,
    // 2: the digest a command id is bound to (a retry must match it). Commands recorded before
    // have none and match a retry on their stream alone.
    r#"
    ALTER TABLE event_commands ADD COLUMN digest BYTEA;
    "#,
    // 3: the data subjects' keys (crypto-shredding): never in the log; erasing deletes the row.
    PERSONAL_DATA_KEYS_TABLE,
];

/// The data subjects' keys: migration 3 of an event database, and the one table anquan creates
/// in the read-model database when the events live elsewhere (KurrentDB).
pub(crate) const PERSONAL_DATA_KEYS_TABLE: &str = r#"
    CREATE TABLE personal_data_keys (
        key_id     UUID PRIMARY KEY,
        subject    TEXT NOT NULL UNIQUE,
        key        BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    "#;

/// Brings the schema up to date. Two nodes starting together queue on the advisory lock; the
/// second finds the work done.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let fail = |what: &'static str| move |error| StoreError::backend(format!("migration: {what}"), error);
    let transaction = client.transaction().await.map_err(fail("begin"))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(fail("lock"))?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS store_schema_version (version INT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .map_err(fail("create store_schema_version"))?;
    let row = transaction
        .query_one("SELECT COALESCE(MAX(version), 0) FROM store_schema_version", &[])
        .await
        .map_err(fail("read schema version"))?;
    let current: i32 = row.try_get(0).map_err(fail("read schema version"))?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Backend {
            message: format!(
                "database schema version {current} is newer than this binary's {}",
                MIGRATIONS.len()
            ),
            source: None,
        });
    }
    for (index, ddl) in MIGRATIONS.iter().enumerate().skip(current) {
        transaction.batch_execute(ddl).await.map_err(fail("apply"))?;
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        transaction
            .execute("INSERT INTO store_schema_version (version) VALUES ($1)", &[&version])
            .await
            .map_err(fail("record version"))?;
        tracing::info!(version, "applied event store migration");
    }
    transaction.commit().await.map_err(fail("commit"))?;
    Ok(())
}

/// The schema version this binary brings a database to.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();
