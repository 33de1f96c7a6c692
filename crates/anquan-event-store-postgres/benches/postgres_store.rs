//! Benchmarks of the PostgreSQL event store (issue 3): appends of 1 KB events with 1, 8 and
//! 32 concurrent writers (events/s, p50/p99 latency per append), a raw multi-row INSERT into
//! the same table for comparison, and `read_all` catch-up. Runs only with
//! `ANQUAN_TEST_POSTGRES_URL` set: `cargo bench -p anquan-event-store-postgres`.

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports and fails loudly"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use uuid::Uuid;

use anquan_event_store::{EventStore, StreamId, StreamState};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions};

/// Events per append.
const BATCH: usize = 50;
/// Bytes per event.
const EVENT_BYTES: usize = 1024;
/// Appends per writer in the printed report.
const REPORT_APPENDS: usize = 4_000;

fn stream() -> StreamId {
    StreamId::parse(&format!("bench-{}", Uuid::new_v4().simple())).expect("stream id")
}

/// Runs `total` appends spread over `writers` tasks; returns the wall time and each append's
/// latency.
async fn appends(
    store: &Arc<PostgresEventStore>,
    writers: usize,
    total: usize,
    raw: bool,
) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        let count = total / writers + usize::from(writer < total % writers);
        tasks.push(tokio::spawn(async move {
            let stream = stream();
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                let request = support::request(&stream, StreamState::Any, BATCH, EVENT_BYTES);
                let start = Instant::now();
                if raw {
                    raw_insert(&store, &request).await;
                } else {
                    store.append(request).await.expect("append");
                }
                latencies.push(start.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("writer"));
    }
    (started.elapsed(), latencies)
}

/// The ceiling: the same rows by a plain multi-row INSERT, positions from a sequence, no head
/// row, no stream check, no command row, no NOTIFY (and so not gap-free).
async fn raw_insert(store: &PostgresEventStore, request: &anquan_event_store::AppendRequest) {
    let client = store.pool().get().await.expect("connection");
    let statement = client
        .prepare_cached(
            "INSERT INTO event_log (position, stream_id, version, event_id, event_type, schema_version, data, \
             occurred_at, recorded_at, actor, correlation_id, hash) \
             SELECT nextval('bench_raw_position'), $1, nextval('bench_raw_version'), e.id, 'Raw', 1, e.data::json, \
             now(), now(), $5::text::json, $2, decode(repeat('00', 32), 'hex') FROM unnest($3::uuid[], $4::text[]) AS e(id, data)",
        )
        .await
        .expect("prepare raw insert");
    let ids: Vec<Uuid> = request.events.iter().map(|event| event.event_id).collect();
    let data: Vec<&str> = request.events.iter().map(|event| event.data.as_str()).collect();
    let actor = serde_json::to_string(&request.metadata.actor).expect("actor json");
    client
        .execute(
            &statement,
            &[&request.stream_id.as_str(), &Uuid::now_v7(), &ids, &data, &actor],
        )
        .await
        .expect("raw insert");
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn report(label: &str, events: usize, (elapsed, mut latencies): (Duration, Vec<Duration>)) {
    latencies.sort();
    println!(
        "{label}: {events} events in {elapsed:.2?}: {:.0} events/s; append latency p50 {:.2?}, p99 {:.2?}",
        events as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(database) = runtime.block_on(support::fresh_database("postgres benchmarks")) else {
        return;
    };
    let store = runtime.block_on(async {
        let store = PostgresEventStore::connect(&database.url, PostgresOptions { pool_size: 40 })
            .await
            .expect("connect");
        let client = store.pool().get().await.expect("connection");
        client
            .batch_execute("CREATE SEQUENCE bench_raw_position START 1000000000000; CREATE SEQUENCE bench_raw_version")
            .await
            .expect("create raw sequences");
        Arc::new(store)
    });

    println!("appends of {BATCH} events of {EVENT_BYTES} bytes each");
    for writers in [1, 8, 32] {
        let total = if writers == 1 {
            REPORT_APPENDS / 4
        } else {
            REPORT_APPENDS
        };
        let result = runtime.block_on(appends(&store, writers, total, false));
        report(&format!("append, {writers:>2} writers"), total * BATCH, result);
    }
    let result = runtime.block_on(appends(&store, 8, REPORT_APPENDS, true));
    report("raw multi-row INSERT, 8 writers", REPORT_APPENDS * BATCH, result);

    // Catch-up: read the whole log (the raw rows sort after the store's) in pages.
    let (events, elapsed) = runtime.block_on(async {
        let started = Instant::now();
        let mut after = None;
        let mut events = 0;
        loop {
            let page = store.read_all(after, 1_000).await.expect("read_all");
            let Some(last) = page.last() else { break };
            after = Some(last.position);
            events += page.len();
        }
        (events, started.elapsed())
    });
    println!(
        "read_all catch-up: {events} events in {elapsed:.2?}: {:.0} events/s",
        events as f64 / elapsed.as_secs_f64()
    );

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut group = criterion.benchmark_group("postgres_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    for writers in [1, 8, 32] {
        group.bench_function(format!("{writers}_writers_{BATCH}_events_per_append"), |bencher| {
            bencher.iter_custom(|iterations| {
                let total = usize::try_from(iterations).unwrap_or(usize::MAX).max(writers);
                let (elapsed, _) = runtime.block_on(appends(&store, writers, total, false));
                elapsed.mul_f64(iterations as f64 / total as f64)
            });
        });
    }
    group.finish();
    criterion.final_summary();
    drop(store);
    drop(runtime);
    drop(database);
}
