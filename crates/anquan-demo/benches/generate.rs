//! Demo generation rate in process: 200 enterprises (with their agencies' share of contracts)
//! decided and appended into the in-memory store and into a fresh SQLite file (WAL,
//! `synchronous = FULL`, group commit), as `anquan demo` does. Criterion reports elements
//! (enterprises) per second; `anquan demo` prints events/s at full scale.
//!
//! Run with `cargo bench -p anquan-demo`.
#![expect(clippy::expect_used, reason = "a benchmark stops at its first failure")]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use anquan_demo::{DemoOptions, NoProgress, Tuning, generate};
use anquan_event_store::{EventStore, InMemoryEventStore};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions};

const ENTERPRISES: u64 = 200;

fn options() -> DemoOptions {
    DemoOptions {
        enterprises: Some(ENTERPRISES),
        ..DemoOptions::default()
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rules = Arc::new(anquan_domain::rules::builtin_v1().expect("rule set v1"));
    let mut group = c.benchmark_group("demo_generate");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(ENTERPRISES));
    group.bench_function("memory_200_enterprises", |b| {
        b.iter(|| {
            run(&runtime, Arc::new(InMemoryEventStore::new()), &rules);
        });
    });
    group.bench_function("sqlite_200_enterprises", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteEventStore::open(&dir.path().join("demo.db"), SqliteOptions::default()).expect("sqlite");
            run(&runtime, Arc::new(store), &rules);
        });
    });
    group.finish();
}

fn run(runtime: &Runtime, store: Arc<dyn EventStore>, rules: &Arc<anquan_domain::rules::RuleSet>) {
    runtime
        .block_on(generate(
            store,
            rules.clone(),
            &options(),
            Tuning::default(),
            Arc::new(NoProgress),
        ))
        .expect("demo");
}

criterion_group!(benches, bench);
criterion_main!(benches);
