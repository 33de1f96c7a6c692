//! SQLite-specific behaviour: durability across a reopen, and group commit under many writers.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on setup errors")]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use anquan_domain::{Actor, CommandId, Role, UserId};
use anquan_event_store::hash_chain::verify_stream;
use anquan_event_store::{
    AppendError, AppendMetadata, AppendRequest, CommandDigest, CommandKey, EventStore, NewEvent, StreamId, StreamState,
    StreamVersion,
};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};

fn request(stream: &StreamId, expected: StreamState, count: usize) -> AppendRequest {
    AppendRequest {
        stream_id: stream.clone(),
        expected,
        command: Some(CommandKey {
            id: CommandId::from_uuid(Uuid::now_v7()),
            digest: CommandDigest::of_bytes(b"sqlite test"),
        }),
        metadata: AppendMetadata {
            occurred_at: Utc::now(),
            actor: Actor {
                user_id: UserId::parse("sqlite-test").unwrap(),
                role: Role::CityAdmin,
            },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events: (0..count)
            .map(|index| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "SqliteTested".to_owned(),
                schema_version: 1,
                data: format!(r#"{{"index":{index}}}"#),
            })
            .collect(),
    }
}

async fn read_log(store: &dyn EventStore) -> Vec<anquan_event_store::RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let page = store
            .read_all(
                all.last()
                    .map(|event: &anquan_event_store::RecordedEvent| event.position),
                1_000,
            )
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_the_file_keeps_every_event_and_its_hash_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let streams: Vec<StreamId> = (0..3)
        .map(|_| StreamId::for_uuid("enterprise", Uuid::new_v4()))
        .collect();
    let (before, command) = {
        let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
        let mut command = None;
        for round in 0..5u64 {
            for stream in &streams {
                let expected = StreamState::from_actual(round.checked_sub(1).map(|r| StreamVersion(r * 2 + 1)));
                let request = request(stream, expected, 2);
                command = request.command.map(|key| (stream.clone(), key.id));
                store.append(request).await.unwrap();
            }
        }
        (read_log(&store).await, command.unwrap())
    };
    assert_eq!(before.len(), 30);

    let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(*store.head().borrow(), before.last().map(|event| event.position));
    let after = read_log(&store).await;
    assert_eq!(after, before, "every event reads back identically after a reopen");
    for stream in &streams {
        let events = store.read_stream(stream, StreamVersion::FIRST, 100).await.unwrap();
        assert_eq!(events.len(), 10);
        verify_stream(&events).unwrap();
    }
    let outcome = store
        .command_outcome(&command.0, command.1)
        .await
        .unwrap()
        .expect("the command is remembered");
    assert!(outcome.outcome.duplicate);
    assert_eq!(outcome.digest, Some(CommandDigest::of_bytes(b"sqlite test")));
    // Appending continues the chains and the positions where they stopped.
    let next = store
        .append(request(&streams[0], StreamState::At(StreamVersion(9)), 1))
        .await
        .unwrap();
    assert!(next.last_position > before.last().unwrap().position);
    verify_stream(&store.read_stream(&streams[0], StreamVersion::FIRST, 100).await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_are_group_committed_and_every_acknowledged_event_is_stored_once() {
    const TASKS: usize = 32;
    const APPENDS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteEventStore::open(&dir.path().join("events.sqlite"), options).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::for_uuid("enterprise", Uuid::new_v4());
            let mut acknowledged = Vec::new();
            for index in 0..APPENDS {
                let expected = StreamState::from_actual(index.checked_sub(1).map(|v| StreamVersion(v as u64)));
                let request = request(&stream, expected, 1);
                let id = request.events[0].event_id;
                store.append(request).await.unwrap();
                acknowledged.push(id);
            }
            (stream, acknowledged)
        }));
    }
    let mut acknowledged = HashSet::new();
    let mut streams = Vec::new();
    for task in tasks {
        let (stream, ids) = task.await.unwrap();
        acknowledged.extend(ids);
        streams.push(stream);
    }
    assert_eq!(acknowledged.len(), TASKS * APPENDS);

    let log = read_log(store.as_ref()).await;
    let logged: Vec<Uuid> = log.iter().map(|event| event.event_id).collect();
    assert_eq!(logged.len(), TASKS * APPENDS, "no event is stored twice or lost");
    assert_eq!(logged.iter().copied().collect::<HashSet<_>>(), acknowledged);
    assert!(log.windows(2).all(|pair| pair[0].position < pair[1].position));
    for stream in &streams {
        let events = store.read_stream(stream, StreamVersion::FIRST, 1_000).await.unwrap();
        assert_eq!(events.len(), APPENDS);
        verify_stream(&events).unwrap();
    }

    let stats = store.stats();
    assert_eq!(stats.appends, (TASKS * APPENDS) as u64);
    assert_eq!(stats.events, (TASKS * APPENDS) as u64);
    assert!(
        stats.transactions < stats.appends,
        "group commit: {} transactions for {} appends",
        stats.transactions,
        stats.appends
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_already_stored_is_refused_and_the_rest_of_the_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteEventStore::open(&dir.path().join("events.sqlite"), SqliteOptions::default()).unwrap());
    let stream = StreamId::for_uuid("enterprise", Uuid::new_v4());
    let first = request(&stream, StreamState::NoStream, 1);
    let reused = first.events[0].clone();
    store.append(first).await.unwrap();

    let other = StreamId::for_uuid("enterprise", Uuid::new_v4());
    let mut clash = request(&other, StreamState::NoStream, 2);
    clash.events[1].event_id = reused.event_id;
    let error = store.append(clash.clone()).await.unwrap_err();
    assert!(error.to_string().contains("already stored"), "{error}");
    assert!(
        store
            .read_stream(&other, StreamVersion::FIRST, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .command_outcome(&other, clash.command.unwrap().id)
            .await
            .unwrap()
            .is_none()
    );
    store.append(request(&other, StreamState::NoStream, 2)).await.unwrap();
}

#[tokio::test]
async fn a_file_that_cannot_be_created_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-directory").join("events.sqlite");
    assert!(SqliteEventStore::open(&missing, SqliteOptions::default()).is_err());
}

/// The writer remembers stream heads; a second store on the same file makes them stale, and
/// the writer must then append after what the file holds, keeping versions and the hash chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_head_made_stale_by_another_writer_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let first = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    let second = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    let stream = StreamId::for_uuid("enterprise", Uuid::now_v7());

    first.append(request(&stream, StreamState::NoStream, 1)).await.unwrap();
    second
        .append(request(&stream, StreamState::At(StreamVersion(0)), 1))
        .await
        .unwrap();
    // `first` remembers version 0; the file holds version 1.
    let stale = first
        .append(request(&stream, StreamState::At(StreamVersion(1)), 1))
        .await
        .unwrap();
    assert_eq!(stale.first_version, StreamVersion(2));
    second.append(request(&stream, StreamState::Any, 2)).await.unwrap();
    // `first` remembers version 2; the file holds version 4. Any must not collide.
    let any = first.append(request(&stream, StreamState::Any, 1)).await.unwrap();
    assert_eq!(any.first_version, StreamVersion(5));
    // A stale remembered head must not make a right expectation conflict, nor a wrong one pass.
    second.append(request(&stream, StreamState::Any, 1)).await.unwrap();
    let conflict = first
        .append(request(&stream, StreamState::At(StreamVersion(5)), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            conflict,
            anquan_event_store::AppendError::Conflict {
                actual: Some(StreamVersion(6)),
                ..
            }
        ),
        "{conflict:?}"
    );

    let events = first.read_stream(&stream, StreamVersion(0), 100).await.unwrap();
    assert_eq!(events.len(), 7);
    verify_stream(&events).unwrap();
}

/// Another process appending to the same file (here: a second store, its own connections)
/// moves this store's head watch, so subscribers wake for it without polling the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_by_another_connection_moves_the_head_watch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let watching = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    let other = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    let mut head = watching.head();
    assert_eq!(*head.borrow_and_update(), None);

    let stream = StreamId::for_uuid("rulesets", Uuid::now_v7());
    let appended = other.append(request(&stream, StreamState::NoStream, 2)).await.unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(5), head.changed())
        .await
        .expect("the head did not move for another connection's append")
        .unwrap();
    assert_eq!(*head.borrow_and_update(), Some(appended.last_position));
    eprintln!("head moved {:?} after the other connection's commit", started.elapsed());

    // Its own appends move it as before, and dropping the store stops the probe.
    let own = watching
        .append(request(&stream, StreamState::At(StreamVersion(1)), 1))
        .await
        .unwrap();
    assert_eq!(*head.borrow_and_update(), Some(own.last_position));
    drop(other);
    drop(watching);
}

/// A file made before command digests were kept (store schema version 1) opens, gains the
/// digest column, and keeps its commands: a retry on the command's stream is still answered
/// with the first outcome, the same id on another stream is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_command_digests_is_migrated_and_keeps_its_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let stream = StreamId::for_uuid("enterprise", Uuid::new_v4());
    let first_request = request(&stream, StreamState::NoStream, 2);
    let key = first_request.command.unwrap();
    let first = {
        let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
        store.append(first_request.clone()).await.unwrap()
    };
    // Turn the file back into the version-1 layout: no digest column.
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "ALTER TABLE event_commands DROP COLUMN digest; \
                 UPDATE event_store_meta SET value = 1 WHERE key = 'store_schema_version';",
            )
            .unwrap();
    }
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    let recorded = store.command_outcome(&stream, key.id).await.unwrap().unwrap();
    assert_eq!(recorded.digest, None, "a command recorded by version 1 has no digest");
    assert_eq!(recorded.outcome.last_position, first.last_position);
    let retry = store.append(first_request).await.unwrap();
    assert!(retry.duplicate, "a retry on the command's stream is answered");
    assert_eq!(retry.last_position, first.last_position);
    let other = StreamId::for_uuid("enterprise", Uuid::new_v4());
    let mut elsewhere = request(&other, StreamState::NoStream, 1);
    elsewhere.command = Some(key);
    assert!(matches!(
        store.append(elsewhere).await,
        Err(AppendError::CommandIdReused { .. })
    ));
    // New commands record their digest in the migrated table.
    let next = request(&stream, StreamState::At(first.last_version), 1);
    let next_key = next.command.unwrap();
    store.append(next).await.unwrap();
    let recorded = store.command_outcome(&stream, next_key.id).await.unwrap().unwrap();
    assert_eq!(recorded.digest, Some(next_key.digest));
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT value FROM event_store_meta WHERE key = 'store_schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
}
