//! Catch-up throughput of the compliance projection: `ProjectionRunner::rebuild` folds a log of
//! realistic enterprise events (registrations, `DocumentUploaded`, `DocumentApproved` and
//! `DocumentReturned`, interleaved across enterprises as a city's clients would write them)
//! from a SQLite event store into SQLite read models in the same file, as the embedded default
//! deployment does.
//!
//! Run with `cargo bench -p anquan-projections`; criterion reports events/s.
#![expect(clippy::expect_used, reason = "a benchmark stops at its first failure")]

mod city_log;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions, SqliteReadModelStore, Synchronous};
use anquan_projections::{ComplianceProjection, ProjectionRunner};
use city_log::CityLog;

/// 1,000 enterprises with 10 documents each.
const LOG: CityLog = CityLog {
    enterprises: 1_000,
    documents_per_enterprise: 10,
};
const LOG_EVENTS: usize = LOG.events();

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

fn catch_up(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("anquan.db");
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteEventStore::open(&path, options).expect("open the event store"));
    let runner = rt.block_on(async {
        LOG.fill(store.as_ref()).await;
        let read_models = Arc::new(SqliteReadModelStore::open(&path).await.expect("open the read models"));
        ProjectionRunner::new(store.clone(), read_models).with_projection(Arc::new(ComplianceProjection))
    });
    eprintln!("log: {LOG_EVENTS} events of {} enterprises", LOG.enterprises);

    let mut group = c.benchmark_group("projection_catch_up");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(LOG_EVENTS as u64));
    group.bench_function("compliance_rebuild_from_sqlite_into_sqlite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let report = rt
                    .block_on(runner.rebuild(ComplianceProjection::NAME))
                    .expect("rebuild the compliance projection");
                assert_eq!(report.events, LOG_EVENTS as u64);
                total += report.duration;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, catch_up);
criterion_main!(benches);
