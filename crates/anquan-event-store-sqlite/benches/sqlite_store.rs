//! Throughput of the SQLite event store with 1 KB `DocumentUploaded` events: appends from one
//! writer and from 8 to 256 concurrent writers (group commit), durable (`synchronous = FULL`)
//! and not (`NORMAL`), and `read_all` in pages of 1,000 and 10,000 decoded into domain events.
//!
//! Run with `cargo bench -p anquan-event-store-sqlite`; criterion reports events/s.
#![expect(clippy::expect_used, reason = "a benchmark stops at its first failure")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use uuid::Uuid;

use anquan_domain::enterprise::event::DocumentUploaded;
use anquan_domain::enterprise::{Coverage, FileRef};
use anquan_domain::{Actor, DocumentId, EnterpriseId, Event, RequirementCode, Role, UserId};
use anquan_event_store::{
    AppendMetadata, AppendRequest, EventStore, NewEvent, Position, READ_BATCH_MAX, StreamId, StreamState,
};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};

/// In-flight appenders measured with `synchronous = FULL`: group commit needs many in flight.
const CONCURRENT_APPENDERS: [usize; 4] = [8, 32, 128, 256];
/// In-flight appenders measured with `synchronous = NORMAL`.
const CONCURRENT_APPENDERS_NORMAL: [usize; 2] = [32, 256];
const READ_PAGES: [usize; 2] = [1_000, READ_BATCH_MAX];
const READ_LOG_EVENTS: usize = 200_000;

/// A `DocumentUploaded` of about 1 KB of JSON.
fn document_uploaded() -> NewEvent {
    let event = Event::DocumentUploaded(DocumentUploaded {
        document_id: DocumentId::from_uuid(Uuid::now_v7()),
        requirement: RequirementCode::parse("R10.drill").expect("a valid requirement code"),
        title: "2026年度生产安全事故应急救援预案综合演练记录（含现场照片、签到表、评估报告）".repeat(6),
        file: FileRef {
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
            size_bytes: 2_482_113,
            media_type: "application/pdf".to_owned(),
            file_name: "emergency-drill-record-2026-annual-comprehensive-exercise-with-photos.pdf".repeat(2),
        },
        coverage: Coverage::Once,
        uploaded_at: Utc::now(),
    });
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        data: event.encode_data(),
    }
}

fn request(stream: &StreamId, expected: StreamState, events: Vec<NewEvent>) -> AppendRequest {
    let enterprise_id = EnterpriseId::from_uuid(Uuid::now_v7());
    AppendRequest {
        stream_id: stream.clone(),
        expected,
        command: Some(anquan_event_store::CommandKey {
            id: anquan_domain::CommandId::from_uuid(Uuid::now_v7()),
            digest: anquan_event_store::CommandDigest::of_bytes(b"bench"),
        }),
        metadata: AppendMetadata {
            occurred_at: Utc::now(),
            actor: Actor {
                user_id: UserId::parse("bench-officer").expect("a valid user id"),
                role: Role::Enterprise { enterprise_id },
            },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events,
    }
}

fn open(dir: &tempfile::TempDir, synchronous: Synchronous) -> Arc<SqliteEventStore> {
    let options = SqliteOptions {
        synchronous,
        ..SqliteOptions::default()
    };
    let path = dir.path().join(format!("bench-{}.sqlite", Uuid::new_v4()));
    Arc::new(SqliteEventStore::open(&path, options).expect("open the store"))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// Appends `iters` events, one event per append, from `appenders` concurrent tasks each on its
/// own stream; returns the time for `iters` events.
fn concurrent_appends(rt: &Runtime, store: &Arc<SqliteEventStore>, appenders: usize, iters: u64) -> Duration {
    let per_task = iters.div_ceil(appenders as u64).max(1);
    let total = per_task * appenders as u64;
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..appenders)
            .map(|_| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    let stream = StreamId::for_uuid("enterprise", Uuid::now_v7());
                    let mut expected = StreamState::NoStream;
                    for _ in 0..per_task {
                        let outcome = store
                            .append(request(&stream, expected, vec![document_uploaded()]))
                            .await
                            .expect("append");
                        expected = StreamState::At(outcome.last_version);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("an appender task");
        }
        start.elapsed()
    });
    // Report the time for `iters` events although `total` were appended.
    elapsed.mul_f64(iters as f64 / total as f64)
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sample = document_uploaded();
    eprintln!("event data: {} bytes", sample.data.len());

    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    for (name, synchronous, levels) in [
        ("full", Synchronous::Full, &CONCURRENT_APPENDERS[..]),
        ("normal", Synchronous::Normal, &CONCURRENT_APPENDERS_NORMAL[..]),
    ] {
        let store = open(&dir, synchronous);
        group.bench_function(format!("single_writer_one_event_per_append/{name}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let stream = StreamId::for_uuid("enterprise", Uuid::now_v7());
                    let mut expected = StreamState::NoStream;
                    let start = Instant::now();
                    for _ in 0..iters {
                        let outcome = store
                            .append(request(&stream, expected, vec![document_uploaded()]))
                            .await
                            .expect("append");
                        expected = StreamState::At(outcome.last_version);
                    }
                    start.elapsed()
                })
            });
        });

        for &appenders in levels {
            let store = open(&dir, synchronous);
            group.bench_function(
                format!("{appenders}_concurrent_appenders_one_event_per_append/{name}"),
                |b| b.iter_custom(|iters| concurrent_appends(&rt, &store, appenders, iters)),
            );
            let stats = store.stats();
            eprintln!(
                "group commit ({name}, {appenders} appenders): {} appends in {} transactions ({:.1} appends per commit)",
                stats.appends,
                stats.transactions,
                stats.appends as f64 / stats.transactions.max(1) as f64
            );
        }
    }
    group.finish();
}

fn read_all(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(&dir, Synchronous::Normal);
    rt.block_on(async {
        for _ in 0..READ_LOG_EVENTS / 1_000 {
            let stream = StreamId::for_uuid("enterprise", Uuid::now_v7());
            let events = (0..1_000).map(|_| document_uploaded()).collect();
            store
                .append(request(&stream, StreamState::NoStream, events))
                .await
                .expect("fill the log");
        }
    });

    let mut group = c.benchmark_group("read_all");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(READ_LOG_EVENTS as u64));
    for page_size in READ_PAGES {
        group.bench_function(format!("pages_of_{page_size}_decoded_into_domain_events"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut after: Option<Position> = None;
                    let mut decoded = 0usize;
                    loop {
                        let page = store.read_all(after, page_size).await.expect("read a page");
                        let Some(last) = page.last() else { break };
                        after = Some(last.position);
                        for event in &page {
                            black_box(event.decode().expect("decode a DocumentUploaded"));
                            decoded += 1;
                        }
                    }
                    assert_eq!(decoded, READ_LOG_EVENTS);
                })
            });
        });
        // What a projection runner can do: read the next page while decoding this one.
        group.bench_function(
            format!("pages_of_{page_size}_decoded_into_domain_events_next_page_prefetched"),
            |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut decoded = 0usize;
                        let mut page = store.read_all(None, page_size).await.expect("read a page");
                        while let Some(last) = page.last() {
                            let next = {
                                let store = Arc::clone(&store);
                                let after = Some(last.position);
                                tokio::spawn(async move { store.read_all(after, page_size).await })
                            };
                            for event in &page {
                                black_box(event.decode().expect("decode a DocumentUploaded"));
                                decoded += 1;
                            }
                            page = next.await.expect("a read task").expect("read a page");
                        }
                        assert_eq!(decoded, READ_LOG_EVENTS);
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, appends, read_all);
criterion_main!(benches);
