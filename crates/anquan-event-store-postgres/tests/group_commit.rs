//! Group commit on PostgreSQL (issue 20): concurrent appends share one transaction, a refused
//! append fails alone, a failed commit fails its whole group, a second append to a stream in
//! the same group sees the first, and positions stay gap-free with intact chains across two
//! nodes.
//!
//! The deterministic tests build a group on purpose: a connection of the test holds the head
//! row's lock, so the committer's first group waits on it; the appends sent meanwhile queue
//! and, once the lock is released, form the next group together, in the order they were sent.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail the test at once")]

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use uuid::Uuid;

use anquan_event_store::hash_chain::verify_stream;
use anquan_event_store::{
    AppendError, AppendOutcome, AppendRequest, EventStore, InvalidAppend, Position, RecordedEvent, StreamId,
    StreamState, StreamVersion,
};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions};

/// How long a test waits for the committer to reach a state (it gets there in milliseconds).
const WAIT_ROUNDS_MAX: usize = 1_000;
const WAIT_ROUND: Duration = Duration::from_millis(10);

type Appended = JoinHandle<Result<AppendOutcome, AppendError>>;

fn stream(name: &str) -> StreamId {
    StreamId::parse(&format!("{name}-{}", Uuid::new_v4().simple())).unwrap()
}

fn one(stream: &StreamId, expected: StreamState) -> AppendRequest {
    support::request(stream, expected, 1, 100)
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh database, a store on it and a connection of the test's own (to hold the head row),
/// or `None` when the test is skipped.
async fn store_and_holder(
    test: &str,
) -> Option<(support::TestDatabase, Arc<PostgresEventStore>, tokio_postgres::Client)> {
    let database = support::fresh_database(test).await?;
    let store = PostgresEventStore::connect(&database.url, PostgresOptions::default())
        .await
        .unwrap();
    let holder = connect(&database.url).await;
    Some((database, Arc::new(store), holder))
}

/// Takes the head row's lock in a transaction of the test's own connection; every group waits
/// until [`release`].
async fn hold_head_row(client: &tokio_postgres::Client) {
    client
        .batch_execute("BEGIN; SELECT position FROM event_log_head FOR UPDATE")
        .await
        .unwrap();
}

async fn release(client: &tokio_postgres::Client) {
    client.batch_execute("COMMIT").await.unwrap();
}

/// Waits until another session of this database waits on a lock: the committer's group,
/// blocked on the head row.
async fn until_a_group_waits_on_the_head_row(client: &tokio_postgres::Client) {
    for _ in 0..WAIT_ROUNDS_MAX {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 {
            return;
        }
        tokio::time::sleep(WAIT_ROUND).await;
    }
    panic!("no group waited on the head row");
}

/// Sends appends one after the other, each queued before the next is sent, so they reach the
/// committer in this order.
async fn queue_in_order(store: &Arc<PostgresEventStore>, requests: Vec<AppendRequest>) -> Vec<Appended> {
    let mut handles = Vec::with_capacity(requests.len());
    for request in requests {
        let queued = store.queued_appends();
        let sender = store.clone();
        handles.push(tokio::spawn(async move { sender.append(request).await }));
        let mut rounds = 0;
        while store.queued_appends() == queued {
            rounds += 1;
            assert!(rounds < WAIT_ROUNDS_MAX, "an append never reached the queue");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    handles
}

/// Starts a group of one (`first`) that waits on the head row held by `holder`, then queues
/// `group` behind it, releases the row and returns every result: `first`'s, then `group`'s in
/// order.
async fn as_one_group(
    store: &Arc<PostgresEventStore>,
    holder: &tokio_postgres::Client,
    first: AppendRequest,
    group: Vec<AppendRequest>,
) -> (
    Result<AppendOutcome, AppendError>,
    Vec<Result<AppendOutcome, AppendError>>,
) {
    hold_head_row(holder).await;
    let first = {
        let store = store.clone();
        tokio::spawn(async move { store.append(first).await })
    };
    until_a_group_waits_on_the_head_row(holder).await;
    let handles = queue_in_order(store, group).await;
    release(holder).await;
    let first = first.await.unwrap();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    (first, results)
}

/// Reads the whole log and checks it: positions 1, 2, 3, … with no gap, every stream's
/// versions contiguous from 0 and its hash chain intact. Returns the events by stream.
async fn read_gap_free_log(store: &dyn EventStore) -> HashMap<StreamId, Vec<RecordedEvent>> {
    let mut after = None;
    let mut expected_position = 1;
    let mut streams: HashMap<StreamId, Vec<RecordedEvent>> = HashMap::new();
    loop {
        let page = store.read_all(after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for event in page {
            assert_eq!(
                event.position,
                Position::from_sequence(expected_position),
                "positions are gap-free"
            );
            expected_position += 1;
            streams.entry(event.stream_id.clone()).or_default().push(event);
        }
    }
    for (stream, events) in &streams {
        verify_stream(events).unwrap_or_else(|error| panic!("stream {stream}: {error}"));
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_append_in_a_group_fails_alone_while_the_others_commit() {
    let Some((_database, store, holder)) = store_and_holder("group commit refusal test").await else {
        return;
    };

    // Before the group: an event whose id a later append reuses, and a recorded command id.
    let earlier = one(&stream("earlier"), StreamState::NoStream);
    let stored_event_id = earlier.events[0].event_id;
    let recorded_command = earlier.command.unwrap();
    store.append(earlier).await.unwrap();
    let before = store.group_commit_stats();

    let (same, conflicting, reusing, repeating, other) = (
        stream("same"),
        stream("conflicting"),
        stream("reusing"),
        stream("repeating"),
        stream("other"),
    );
    let mut reused_id = one(&reusing, StreamState::NoStream);
    reused_id.command = Some(recorded_command);
    let mut stored_id = one(&stream("stored-id"), StreamState::NoStream);
    stored_id.events[0].event_id = stored_event_id;
    let first_of_repeated = one(&repeating, StreamState::NoStream);
    let mut repeated = one(&repeating, StreamState::NoStream);
    repeated.command = first_of_repeated.command;
    repeated.events = first_of_repeated.events.clone();
    let group = vec![
        // 0: writes version 0 of `same`.
        one(&same, StreamState::NoStream),
        // 1: sees 0's event, in the same transaction: version 1.
        one(&same, StreamState::At(StreamVersion(0))),
        // 2: a stale expectation, refused before any write.
        one(&conflicting, StreamState::At(StreamVersion(5))),
        // 3: a command id recorded for another stream.
        reused_id,
        // 4: an event id already stored, refused by the database: rolled back to its savepoint.
        stored_id,
        // 5: after the refused insert, `same` continues at version 2.
        one(&same, StreamState::At(StreamVersion(1))),
        // 6 and 7: a command and its retry in the same group: the retry answers 6's outcome.
        first_of_repeated,
        repeated,
        // 8: an unrelated append.
        one(&other, StreamState::NoStream),
    ];
    let (first, results) = as_one_group(&store, &holder, one(&stream("first"), StreamState::NoStream), group).await;
    let first = first.unwrap();

    let outcome = |index: usize| match &results[index] {
        Ok(outcome) => outcome.clone(),
        Err(error) => panic!("append {index} failed: {error}"),
    };
    assert_eq!(outcome(0).first_version, StreamVersion(0));
    assert_eq!(
        outcome(1).first_version,
        StreamVersion(1),
        "the second append sees the first"
    );
    assert!(
        matches!(&results[2], Err(AppendError::Conflict { actual: None, .. })),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(&results[3], Err(AppendError::CommandIdReused { .. })),
        "{:?}",
        results[3]
    );
    assert!(
        matches!(&results[4], Err(AppendError::Invalid { reason: InvalidAppend::DuplicateEventId(id), .. }) if *id == stored_event_id),
        "{:?}",
        results[4]
    );
    assert_eq!(outcome(5).first_version, StreamVersion(2));
    assert!(!outcome(6).duplicate);
    assert_eq!(
        outcome(7),
        AppendOutcome {
            duplicate: true,
            ..outcome(6)
        }
    );
    // Positions follow arrival order with no gap where the refused appends were.
    let positions: Vec<u64> = [0, 1, 5, 6, 8]
        .into_iter()
        .map(|index| outcome(index).last_position.sequence())
        .collect();
    let after_first = first.last_position.sequence();
    assert_eq!(positions, (after_first + 1..=after_first + 5).collect::<Vec<_>>());

    let stats = store.group_commit_stats();
    assert_eq!(
        stats.transactions - before.transactions,
        2,
        "the first append, then one group"
    );
    assert_eq!(
        stats.appends - before.appends,
        6,
        "the first append and five of the group wrote"
    );

    let streams = read_gap_free_log(store.as_ref()).await;
    assert_eq!(streams[&same].len(), 3);
    assert_eq!(streams[&repeating].len(), 1);
    for refused in [&conflicting, &reusing] {
        assert!(
            !streams.contains_key(refused),
            "a refused append left events in {refused}"
        );
    }
    assert_eq!(
        streams.values().map(Vec::len).sum::<usize>(),
        7,
        "earlier, first and five"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_commit_fails_every_append_of_its_group_and_leaves_no_gap() {
    let Some((_database, store, holder)) = store_and_holder("group commit failure test").await else {
        return;
    };
    // A deferred constraint trigger refuses one event type when the transaction commits, so
    // every statement of the group succeeds and the COMMIT itself fails.
    holder
        .batch_execute(
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.event_type = 'RefusedAtCommit' THEN RAISE EXCEPTION 'refused at commit'; END IF; \
             RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON event_log \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();",
        )
        .await
        .unwrap();

    let mut refused = one(&stream("refused"), StreamState::NoStream);
    refused.events[0].event_type = "RefusedAtCommit".to_owned();
    let group = vec![
        one(&stream("before"), StreamState::NoStream),
        refused,
        one(&stream("after"), StreamState::NoStream),
    ];
    let (first, results) = as_one_group(&store, &holder, one(&stream("first"), StreamState::NoStream), group).await;
    let first = first.unwrap();
    for (index, result) in results.iter().enumerate() {
        assert!(
            matches!(result, Err(AppendError::Store(_))),
            "append {index} of a group whose commit failed: {result:?}"
        );
    }
    // The group's positions were never taken: the next append follows the first.
    let next = store.append(one(&stream("next"), StreamState::NoStream)).await.unwrap();
    assert_eq!(next.last_position.sequence(), first.last_position.sequence() + 1);
    let streams = read_gap_free_log(store.as_ref()).await;
    assert_eq!(streams.len(), 2, "only the first and the next append are stored");
}

/// One writer's appends: to its own stream with exact expected versions, or to the shared hot
/// stream with `Any`.
async fn write(store: Arc<PostgresEventStore>, hot: StreamId, writer: usize, appends: usize) -> Vec<Uuid> {
    let own = stream(&format!("writer-{writer}"));
    let mut version = None;
    let mut acknowledged = Vec::new();
    for append in 0..appends {
        let events = 1 + (writer + append) % 3;
        let request = if writer.is_multiple_of(2) {
            support::request(&hot, StreamState::Any, events, 200)
        } else {
            support::request(&own, StreamState::from_actual(version), events, 200)
        };
        let ids: Vec<Uuid> = request.events.iter().map(|event| event.event_id).collect();
        let outcome = store.append(request).await.unwrap();
        version = Some(outcome.last_version);
        acknowledged.extend(ids);
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_two_nodes_to_one_stream_and_many_are_gap_free_with_intact_chains() {
    const WRITERS_PER_NODE: usize = 16;
    const APPENDS_PER_WRITER: usize = 60;
    let Some(database) = support::fresh_database("group commit concurrency test").await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(Arc::new(
            PostgresEventStore::connect(&database.url, PostgresOptions::default())
                .await
                .unwrap(),
        ));
    }
    let hot = stream("hot");
    let mut writers = Vec::new();
    for writer in 0..WRITERS_PER_NODE * nodes.len() {
        let store = nodes[writer % nodes.len()].clone();
        writers.push(tokio::spawn(write(store, hot.clone(), writer, APPENDS_PER_WRITER)));
    }
    let mut acknowledged = HashSet::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }

    let streams = read_gap_free_log(nodes[0].as_ref()).await;
    let stored: Vec<Uuid> = streams.values().flatten().map(|event| event.event_id).collect();
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "exactly the acknowledged events are stored"
    );
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), acknowledged);
    assert_eq!(
        streams.len(),
        1 + WRITERS_PER_NODE,
        "the hot stream and each odd writer's own"
    );
    let (mut transactions, mut appends) = (0, 0);
    for node in &nodes {
        let stats = node.group_commit_stats();
        transactions += stats.transactions;
        appends += stats.appends;
    }
    assert_eq!(appends, (WRITERS_PER_NODE * nodes.len() * APPENDS_PER_WRITER) as u64);
    assert!(
        transactions < appends,
        "{appends} appends in {transactions} transactions: no group held two appends"
    );
    eprintln!("{appends} appends from two nodes in {transactions} transactions");
}

/// The committer remembers the head position and the heads of the streams it committed, so an
/// append to a known stream is written in one round trip with no reads. Another node's appends
/// make that memory stale; the committer never refuses on memory, and the database catches a
/// stale head position (the head row's guarded move) before anything commits, so the append
/// goes again on the path that reads, as if nothing had been remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remembered_head_made_stale_by_another_node_is_caught_and_the_append_goes_again() {
    let Some((database, store, _holder)) = store_and_holder("group commit memory test").await else {
        return;
    };
    let other = PostgresEventStore::connect(&database.url, PostgresOptions::default())
        .await
        .unwrap();
    let (shared, own) = (stream("shared"), stream("own"));
    // Unknown streams: read first, then remembered.
    store.append(one(&shared, StreamState::NoStream)).await.unwrap();
    store.append(one(&own, StreamState::NoStream)).await.unwrap();
    let before = store.group_commit_stats();
    let from_memory = store
        .append(one(&own, StreamState::At(StreamVersion(0))))
        .await
        .unwrap();
    assert_eq!(from_memory.first_version, StreamVersion(1));
    assert_eq!(
        store.group_commit_stats().from_memory - before.from_memory,
        1,
        "an append to a remembered stream is written from memory"
    );

    // The other node appends: the store's memory of `shared` (version 0) and of the head are
    // stale. An append expecting what the database holds is not refused on memory.
    let by_other = other
        .append(one(&shared, StreamState::At(StreamVersion(0))))
        .await
        .unwrap();
    assert_eq!(by_other.first_version, StreamVersion(1));
    let before = store.group_commit_stats();
    let after_other = store
        .append(one(&shared, StreamState::At(StreamVersion(1))))
        .await
        .unwrap();
    assert_eq!(after_other.first_version, StreamVersion(2));
    assert_eq!(
        after_other.last_position.sequence(),
        by_other.last_position.sequence() + 1
    );
    assert_eq!(
        store.group_commit_stats().from_memory,
        before.from_memory,
        "read, not remembered"
    );

    // Again with an append memory would accept (`Any`): the head row's guarded move refuses
    // it, nothing of it commits, and it is written after reading at the next version.
    let by_other = other.append(one(&shared, StreamState::Any)).await.unwrap();
    assert_eq!(by_other.first_version, StreamVersion(3));
    let before = store.group_commit_stats();
    let after_other = store.append(one(&shared, StreamState::Any)).await.unwrap();
    assert_eq!(after_other.first_version, StreamVersion(4));
    assert_eq!(
        after_other.last_position.sequence(),
        by_other.last_position.sequence() + 1
    );
    let stats = store.group_commit_stats();
    assert_eq!(stats.from_memory, before.from_memory, "the stale try did not commit");
    assert_eq!(stats.transactions - before.transactions, 1, "one commit for the append");

    // A command id the other node recorded on a stream the store remembers is answered with
    // the other node's outcome, not written again.
    let command = one(&own, StreamState::At(StreamVersion(1)));
    let recorded = other.append(command.clone()).await.unwrap();
    let retried = store.append(command).await.unwrap();
    assert!(retried.duplicate, "a retry answers the first outcome");
    assert_eq!(retried.last_position, recorded.last_position);

    // With its memory refreshed by the reads, the store writes from memory again.
    let before = store.group_commit_stats();
    let refreshed = store
        .append(one(&own, StreamState::At(StreamVersion(2))))
        .await
        .unwrap();
    assert_eq!(refreshed.first_version, StreamVersion(3));
    store
        .append(one(&own, StreamState::At(StreamVersion(3))))
        .await
        .unwrap();
    assert!(
        store.group_commit_stats().from_memory - before.from_memory >= 1,
        "memory is used again once refreshed"
    );

    let streams = read_gap_free_log(store.as_ref()).await;
    assert_eq!(streams[&shared].len(), 5);
    assert_eq!(streams[&own].len(), 5);
}

/// A group written from memory is one statement: several appends to several streams (two to
/// one stream), some with command ids and causations, some without, read back as appended,
/// and a retried command answered with its first outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_written_from_memory_keeps_every_event_and_command_of_its_appends() {
    let Some((_database, store, holder)) = store_and_holder("group commit memory group test").await else {
        return;
    };
    let (a, b) = (stream("a"), stream("b"));
    store.append(one(&a, StreamState::NoStream)).await.unwrap();
    store.append(one(&b, StreamState::NoStream)).await.unwrap();
    let cause = Uuid::now_v7();
    let with_cause = |mut request: AppendRequest| {
        request.metadata.causation_id = Some(cause);
        request
    };
    let without_command = |mut request: AppendRequest| {
        request.command = None;
        request
    };
    let commanded = support::request(&b, StreamState::At(StreamVersion(0)), 3, 100);
    let group = vec![
        commanded.clone(),
        with_cause(without_command(support::request(
            &a,
            StreamState::At(StreamVersion(1)),
            2,
            100,
        ))),
        with_cause(support::request(&b, StreamState::At(StreamVersion(3)), 1, 100)),
    ];
    let before = store.group_commit_stats();
    let (first, results) = as_one_group(&store, &holder, one(&a, StreamState::At(StreamVersion(0))), group).await;
    let first = first.unwrap();
    let results: Vec<AppendOutcome> = results.into_iter().map(Result::unwrap).collect();
    let stats = store.group_commit_stats();
    assert_eq!(
        stats.transactions - before.transactions,
        2,
        "the first append, then the group"
    );
    assert_eq!(stats.from_memory - before.from_memory, 2, "both written from memory");
    assert_eq!(stats.events - before.events, 7);
    let versions: Vec<(u64, u64)> = results
        .iter()
        .map(|outcome| (outcome.first_version.0, outcome.last_version.0))
        .collect();
    assert_eq!(versions, vec![(1, 3), (2, 3), (4, 4)]);
    let last_positions: Vec<u64> = results.iter().map(|outcome| outcome.last_position.sequence()).collect();
    let base = first.last_position.sequence();
    assert_eq!(
        last_positions,
        vec![base + 3, base + 5, base + 6],
        "positions in arrival order"
    );

    let streams = read_gap_free_log(store.as_ref()).await;
    let causes = |stream: &StreamId| -> Vec<Option<Uuid>> {
        streams[stream]
            .iter()
            .map(|event| event.metadata.causation_id)
            .collect()
    };
    assert_eq!(causes(&a), vec![None, None, Some(cause), Some(cause)]);
    assert_eq!(causes(&b), vec![None, None, None, None, Some(cause)]);
    let commands: Vec<bool> = streams[&a]
        .iter()
        .map(|event| event.metadata.command_id.is_some())
        .collect();
    assert_eq!(
        commands,
        vec![true, true, false, false],
        "an append without a command id has none"
    );

    let retried = store.append(commanded).await.unwrap();
    assert!(retried.duplicate, "a retry answers the first outcome");
    assert_eq!(retried.last_position, results[0].last_position);
    assert_eq!((retried.first_version.0, retried.last_version.0), (1, 3));
}

/// An append that expects no stream to a stream the committer has not seen is written from
/// memory, the stream taken as new. When the stream exists after all (created by another node,
/// or before a restart), its version 0 refuses the insert, nothing of the group commits, and
/// the append is refused on the path that reads, as it would have been without the guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_taken_as_new_that_exists_is_refused_by_its_version_0() {
    let Some((database, store, _holder)) = store_and_holder("group commit new stream test").await else {
        return;
    };
    store
        .append(one(&stream("first"), StreamState::NoStream))
        .await
        .unwrap();
    let before = store.group_commit_stats();
    let created = stream("created");
    let new = store.append(one(&created, StreamState::NoStream)).await.unwrap();
    assert_eq!(new.first_version, StreamVersion(0));
    assert_eq!(
        store.group_commit_stats().from_memory - before.from_memory,
        1,
        "a new stream needs no read"
    );

    // Another node that knows the head position but not the stream.
    let other = PostgresEventStore::connect(&database.url, PostgresOptions::default())
        .await
        .unwrap();
    other
        .append(one(&stream("other-first"), StreamState::NoStream))
        .await
        .unwrap();
    let before = other.group_commit_stats();
    let refused = other.append(one(&created, StreamState::NoStream)).await;
    assert!(
        matches!(
            &refused,
            Err(AppendError::Conflict {
                actual: Some(StreamVersion(0)),
                ..
            })
        ),
        "{refused:?}"
    );
    let stats = other.group_commit_stats();
    assert_eq!(stats.from_memory, before.from_memory, "the guess did not commit");
    let next = other
        .append(one(&created, StreamState::At(StreamVersion(0))))
        .await
        .unwrap();
    assert_eq!(next.first_version, StreamVersion(1));

    let streams = read_gap_free_log(store.as_ref()).await;
    assert_eq!(streams[&created].len(), 2);
}

/// A group written from memory whose `COMMIT` fails fails every append of it, takes no
/// position, and leaves the committer's memory forgotten: the next append reads again and
/// follows the last committed position.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_commit_of_a_group_written_from_memory_fails_it_and_leaves_no_gap() {
    let Some((_database, store, holder)) = store_and_holder("group commit memory failure test").await else {
        return;
    };
    let known = stream("known");
    let first = store.append(one(&known, StreamState::NoStream)).await.unwrap();
    holder
        .batch_execute(
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.event_type = 'RefusedAtCommit' THEN RAISE EXCEPTION 'refused at commit'; END IF; \
             RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON event_log \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();",
        )
        .await
        .unwrap();
    let mut refused = one(&known, StreamState::At(StreamVersion(0)));
    refused.events[0].event_type = "RefusedAtCommit".to_owned();
    let before = store.group_commit_stats();
    let result = store.append(refused).await;
    assert!(matches!(result, Err(AppendError::Store(_))), "{result:?}");
    assert_eq!(store.group_commit_stats(), before, "nothing was committed");

    let next = store
        .append(one(&known, StreamState::At(StreamVersion(0))))
        .await
        .unwrap();
    assert_eq!(next.first_version, StreamVersion(1));
    assert_eq!(next.last_position.sequence(), first.last_position.sequence() + 1);
    let streams = read_gap_free_log(store.as_ref()).await;
    assert_eq!(streams[&known].len(), 2);
}
