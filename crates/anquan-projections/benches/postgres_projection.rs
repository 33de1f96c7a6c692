//! Projection throughput into PostgreSQL read models, with the same figure for SQLite beside
//! it: `ProjectionRunner::rebuild` of the compliance projection folds one log of 100,000
//! realistic enterprise events (registrations, `DocumentUploaded`, `DocumentApproved` and
//! `DocumentReturned`, interleaved across 4,000 enterprises) into each read-model store.
//!
//! The log lives in the in-memory event store, so both figures read the very same events at
//! memory speed and differ only in the read-model store they write (SQLite in WAL mode in a
//! temporary file; PostgreSQL in a fresh `anquan_test_<uuid>` database, dropped at the end).
//! Criterion reports events/s per backend:
//!
//! ```text
//! ANQUAN_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p anquan-projections --bench postgres_projection
//! ```
//!
//! Without `ANQUAN_TEST_POSTGRES_URL` only the SQLite figure is measured (the PostgreSQL one
//! prints why it is skipped); with `ANQUAN_TEST_REQUIRE_POSTGRES=1` a missing server fails.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops at its first failure"
)]

mod city_log;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use anquan_event_store::{InMemoryEventStore, ReadModelStore};
use anquan_event_store_postgres::PostgresReadModelStore;
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::{ComplianceProjection, ProjectionRunner};
use city_log::CityLog;

/// 4,000 enterprises with 12 documents each.
const LOG: CityLog = CityLog {
    enterprises: 4_000,
    documents_per_enterprise: 12,
};
const LOG_EVENTS: usize = LOG.events();

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// Measures rebuilds of the compliance projection from `events` into `read_models`.
fn bench_rebuild(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    events: &Arc<InMemoryEventStore>,
    read_models: Arc<dyn ReadModelStore>,
) {
    let runner = ProjectionRunner::new(events.clone(), read_models).with_projection(Arc::new(ComplianceProjection));
    let mut group = c.benchmark_group("projection_into_read_models");
    // One rebuild per sample: a sample is seconds long.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(LOG_EVENTS as u64));
    group.bench_function(name, |b| {
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

fn projection_throughput(c: &mut Criterion) {
    let rt = runtime();
    let events = Arc::new(InMemoryEventStore::new());
    rt.block_on(LOG.fill(events.as_ref()));
    eprintln!("log: {LOG_EVENTS} events of {} enterprises, in memory", LOG.enterprises);

    let directory = tempfile::tempdir().expect("a temporary directory");
    let sqlite = rt
        .block_on(SqliteReadModelStore::open(directory.path().join("read-models.db")))
        .expect("open the sqlite read models");
    bench_rebuild(c, &rt, "compliance_rebuild_into_sqlite", &events, Arc::new(sqlite));

    let database = match rt.block_on(anquan_event_store_postgres::testing::fresh_database(
        "the postgres read-model benchmark",
    )) {
        Ok(Some(database)) => database,
        Ok(None) => return,
        Err(error) => panic!("the postgres read-model benchmark needs PostgreSQL: {error}"),
    };
    let postgres = rt
        .block_on(PostgresReadModelStore::connect(&database.url, 4))
        .expect("connect the postgres read models");
    bench_rebuild(c, &rt, "compliance_rebuild_into_postgres", &events, Arc::new(postgres));
    // Dropping `database` drops the benchmark's database.
    drop(database);
}

criterion_group!(benches, projection_throughput);
criterion_main!(benches);
