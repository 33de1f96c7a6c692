//! Nodes starting together on a fresh database: concurrent `PostgresEventStore::connect` calls
//! (and concurrent `PostgresReadModelStore::connect` + `migrate` calls) all succeed and leave
//! exactly one schema, because migrations queue on an advisory lock.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test at once")]

mod support;

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::Barrier;
use tokio_postgres::NoTls;

use anquan_event_store::{EventStore, ReadModelStore, StreamId, StreamState};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions, PostgresReadModelStore, SCHEMA_VERSION};

/// Nodes starting at once; more than two makes the race likelier to bite.
const NODES: usize = 8;

/// The compliance read model's PostgreSQL tables, as the projection migrates them.
const COMPLIANCE_DDL: &str = include_str!("../../../projections/schema/postgres/compliance.sql");

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Counts the tables (and indexes) of the public schema by name, to prove nothing exists twice
/// under another name and nothing is missing.
async fn relations(client: &tokio_postgres::Client, kind: &str) -> Vec<String> {
    client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind::text = $1 ORDER BY 1",
            &[&kind],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_event_store_connects_on_a_fresh_database_all_succeed_and_migrate_once() {
    let Some(database) = support::fresh_database("event-store migration race test").await else {
        return;
    };
    let barrier = Arc::new(Barrier::new(NODES));
    let connects = (0..NODES).map(|_| {
        let url = database.url.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            PostgresEventStore::connect(&url, PostgresOptions { pool_size: 2 }).await
        })
    });
    let stores: Vec<PostgresEventStore> = join_all(connects)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();

    let client = admin(&database.url).await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM store_schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i32> = (1..=i32::try_from(SCHEMA_VERSION).unwrap()).collect();
    assert_eq!(versions, expected, "every migration applied exactly once");
    assert_eq!(
        relations(&client, "r").await,
        [
            "event_commands",
            "event_log",
            "event_log_head",
            "personal_data_keys",
            "store_schema_version"
        ]
    );
    let heads: i64 = client
        .query_one("SELECT count(*) FROM event_log_head", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(heads, 1, "one head row");

    // Every node works on the one schema.
    for (index, store) in stores.iter().enumerate() {
        let stream = StreamId::parse(&format!("race-{index}")).unwrap();
        store
            .append(support::request(&stream, StreamState::NoStream, 2, 50))
            .await
            .unwrap();
    }
    let log: i64 = client
        .query_one("SELECT count(*) FROM event_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(log, i64::try_from(2 * NODES).unwrap());
    drop(stores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_model_connects_and_migrations_on_a_fresh_database_all_succeed_once() {
    let Some(database) = support::fresh_database("read-model migration race test").await else {
        return;
    };
    let barrier = Arc::new(Barrier::new(NODES));
    let starts = (0..NODES).map(|_| {
        let url = database.url.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let store = PostgresReadModelStore::connect(&url, 2).await?;
            store.migrate(COMPLIANCE_DDL).await?;
            Ok::<_, anquan_event_store::ReadModelError>(store)
        })
    });
    let stores: Vec<PostgresReadModelStore> = join_all(starts)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();

    // One schema: exactly the tables and indexes one node migrating alone creates.
    let Some(reference) = support::fresh_database("read-model migration reference").await else {
        return;
    };
    let alone = PostgresReadModelStore::connect(&reference.url, 1).await.unwrap();
    alone.migrate(COMPLIANCE_DDL).await.unwrap();
    let (raced, expected) = (admin(&database.url).await, admin(&reference.url).await);
    let tables = relations(&raced, "r").await;
    assert!(tables.iter().any(|table| table == "documents"), "{tables:?}");
    assert!(
        tables.iter().any(|table| table == "projection_checkpoints"),
        "{tables:?}"
    );
    assert_eq!(tables, relations(&expected, "r").await);
    assert_eq!(relations(&raced, "i").await, relations(&expected, "i").await);
    for store in &stores {
        assert_eq!(store.checkpoint("compliance").await.unwrap(), None);
    }
    drop(stores);
}

/// A database migrated before command digests were kept (schema version 1) is brought to the
/// current version at connect, and keeps its commands: a retry on a command's stream is still
/// answered with the first outcome, the same id on another stream is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_command_digests_is_migrated_and_keeps_its_commands() {
    let Some(database) = support::fresh_database("command digest migration test").await else {
        return;
    };
    let stream = StreamId::parse("digest-migration-1").unwrap();
    let first_request = support::request(&stream, StreamState::NoStream, 2, 50);
    let key = first_request.command.unwrap();
    let first = {
        let store = PostgresEventStore::connect(&database.url, PostgresOptions { pool_size: 2 })
            .await
            .unwrap();
        store.append(first_request.clone()).await.unwrap()
    };
    // Turn the database back into the version-1 layout: no digest column.
    let client = admin(&database.url).await;
    client
        .batch_execute(
            "ALTER TABLE event_commands DROP COLUMN digest; DROP TABLE personal_data_keys; \
             DELETE FROM store_schema_version WHERE version > 1;",
        )
        .await
        .unwrap();

    let store = PostgresEventStore::connect(&database.url, PostgresOptions { pool_size: 2 })
        .await
        .unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM store_schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i32> = (1..=i32::try_from(SCHEMA_VERSION).unwrap()).collect();
    assert_eq!(versions, expected, "the missing migrations ran");
    let recorded = store.command_outcome(&stream, key.id).await.unwrap().unwrap();
    assert_eq!(recorded.digest, None, "a command recorded by version 1 has no digest");
    let retry = store.append(first_request).await.unwrap();
    assert!(retry.duplicate, "a retry on the command's stream is answered");
    assert_eq!(retry.last_position, first.last_position);
    let other = StreamId::parse("digest-migration-2").unwrap();
    let mut elsewhere = support::request(&other, StreamState::NoStream, 1, 50);
    elsewhere.command = Some(key);
    assert!(matches!(
        store.append(elsewhere).await,
        Err(anquan_event_store::AppendError::CommandIdReused { .. })
    ));
    let next = support::request(&stream, StreamState::At(first.last_version), 1, 50);
    let next_key = next.command.unwrap();
    store.append(next).await.unwrap();
    let recorded = store.command_outcome(&stream, next_key.id).await.unwrap().unwrap();
    assert_eq!(
        recorded.digest,
        Some(next_key.digest),
        "new commands record their digest"
    );
}
