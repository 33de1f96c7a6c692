//! The proof that a catch-up subscriber never skips an event (issue 3): 32 concurrent writers,
//! some of whose appends roll back after taking their positions, at least 100,000 committed
//! events, and a live subscriber that must see every committed event exactly once, in position
//! order, and nothing rolled back.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use uuid::Uuid;

use anquan_event_store::{EventStore, Position, StreamId, StreamState, subscribe_all};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions};

const WRITERS: usize = 32;
const APPENDS_PER_WRITER: usize = 150;
const EVENTS_PER_APPEND: usize = 25;
/// One write in this many rolls back after inserting.
const ROLLBACK_ONE_IN: u64 = 8;

/// A tiny deterministic generator (no dependency needed for coin flips).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_sees_every_committed_event_once_in_order_under_concurrent_writers_and_rollbacks() {
    let Some(database) = support::fresh_database("gap-freedom test").await else {
        return;
    };
    let store = Arc::new(
        PostgresEventStore::connect(&database.url, PostgresOptions { pool_size: WRITERS + 4 })
            .await
            .unwrap(),
    );
    let started = Instant::now();

    // The subscriber starts before any write and checks order as it goes.
    let subscriber = {
        let store: Arc<dyn EventStore> = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut events = Box::pin(subscribe_all(store, None));
            let mut last: Option<Position> = None;
            while let Some(event) = events.next().await {
                let event = event.unwrap();
                assert!(
                    Some(event.position) > last,
                    "position {} after {last:?}",
                    event.position
                );
                last = Some(event.position);
                let done = event.event_type == "WriterStopped";
                seen.push(event.event_id);
                if done {
                    // Stops only when told below, by a sentinel appended after all writers.
                    break;
                }
            }
            seen
        })
    };

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut random = XorShift(0x9E37_79B9_7F4A_7C15 ^ (writer as u64 + 1));
            let streams: Vec<StreamId> = (0..4)
                .map(|_| StreamId::parse(&format!("gap-{}", Uuid::new_v4().simple())).unwrap())
                .collect();
            let mut committed = Vec::new();
            let mut rolled_back = Vec::new();
            for append in 0..APPENDS_PER_WRITER {
                let stream = &streams[append % streams.len()];
                let request = support::request(stream, StreamState::Any, EVENTS_PER_APPEND, 100);
                let ids = request.events.iter().map(|event| event.event_id);
                if random.next().is_multiple_of(ROLLBACK_ONE_IN) {
                    rolled_back.extend(ids);
                    let hold = Duration::from_micros(random.next() % 2_000);
                    store.append_then_roll_back(request, hold).await.unwrap();
                } else {
                    committed.extend(ids);
                    store.append(request).await.unwrap();
                }
            }
            (committed, rolled_back)
        }));
    }
    let mut committed = HashSet::new();
    let mut rolled_back = HashSet::new();
    for writer in writers {
        let (ok, undone) = writer.await.unwrap();
        committed.extend(ok);
        rolled_back.extend(undone);
    }
    let wrote = started.elapsed();

    // A sentinel after every writer finished: the subscriber stops once it sees it.
    let stop_stream = StreamId::parse(&format!("gap-stop-{}", Uuid::new_v4().simple())).unwrap();
    let mut stop = support::request(&stop_stream, StreamState::NoStream, 1, 10);
    stop.events[0].event_type = "WriterStopped".to_owned();
    let sentinel = stop.events[0].event_id;
    store.append(stop).await.unwrap();
    committed.insert(sentinel);

    let seen = tokio::time::timeout(Duration::from_secs(60), subscriber)
        .await
        .expect("the subscriber reached the sentinel")
        .unwrap();
    let elapsed = started.elapsed();

    assert!(committed.len() > 100_000, "only {} committed events", committed.len());
    assert!(!rolled_back.is_empty(), "no append rolled back");
    let distinct: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "an event was delivered twice");
    let leaked: Vec<&Uuid> = distinct.intersection(&rolled_back).collect();
    assert!(leaked.is_empty(), "{} rolled-back events were delivered", leaked.len());
    let missed = committed.difference(&distinct).count();
    assert_eq!(missed, 0, "{missed} committed events were skipped");
    assert_eq!(seen.len(), committed.len());
    eprintln!(
        "{} committed events ({} rolled back) by {WRITERS} writers in {wrote:?} ({:.0} events/s); \
         subscriber done after {elapsed:?}",
        committed.len(),
        rolled_back.len(),
        committed.len() as f64 / wrote.as_secs_f64()
    );
}
