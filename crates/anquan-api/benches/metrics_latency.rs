//! Latency of the town statistics: all 78 metrics of the 12 towns and the city in one GraphQL
//! request (`allTownMetrics` + `cityMetrics`, each metric with value, numerator, denominator,
//! the value a month earlier and the change), executed in process through the schema as the
//! HTTP handler does, for now (served from the metrics cache) and for a past `asOf` (computed
//! from the read models).
//!
//! The dataset is the demo (`anquan demo`'s generator, through the command path) at city scale
//! (3,212 enterprises, 38 agencies) and at 10x, projected into SQLite read models; the clock is
//! the last second of the demo year, the past instant the end of its first half.
//!
//! Run with `cargo bench -p anquan-api --bench metrics_latency`; it prints p50/p99 per case.
//! `ANQUAN_BENCH_SCALES` (default `1,10`), `ANQUAN_BENCH_REQUESTS` (default 200, for now) and
//! `ANQUAN_BENCH_PAST_REQUESTS` (default 5: an asOf request streams over every file, seconds at
//! city scale; each asks for another second, since a repeated instant is served from the
//! computation kept for it; 0 skips them) and `ANQUAN_BENCH_ENTERPRISES` (the enterprises at
//! scale 1, keeping 12 towns: `32120` is 10x the density, while scale 10 is 120 towns) change
//! the work.
#![expect(
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark prints its figures and stops at its first failure"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use anquan_api::MetricsWatcher;
use anquan_demo::{DemoOptions, NoProgress, Tuning, generate};
use anquan_domain::ids::UserId;
use anquan_domain::{Actor, Role};
use anquan_event_store::{EventStore, InMemoryEventStore};
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::{AgencyProjection, ComplianceProjection, ProjectionRunner};

#[path = "../tests/support/mod.rs"]
mod support;

/// The demo's last simulated year.
const YEAR: i32 = 2019;

const QUERY: &str = "query($at: DateTime) {
  allTownMetrics(asOf: $at) { town at metrics { code value numerator denominator previousValue change } }
  cityMetrics(asOf: $at) { at metrics { code value numerator denominator previousValue change } } }";

fn main() {
    let scales: Vec<f64> = std::env::var("ANQUAN_BENCH_SCALES")
        .unwrap_or_else(|_| "1,10".to_owned())
        .split(',')
        .map(|scale| scale.trim().parse().expect("ANQUAN_BENCH_SCALES: numbers"))
        .collect();
    let requests = count("ANQUAN_BENCH_REQUESTS", 200);
    let past_requests = count("ANQUAN_BENCH_PAST_REQUESTS", 5);
    let enterprises = std::env::var("ANQUAN_BENCH_ENTERPRISES")
        .ok()
        .map(|count| count.parse().expect("ANQUAN_BENCH_ENTERPRISES: a number"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for scale in scales {
        runtime.block_on(run(scale, enterprises, requests, past_requests));
    }
}

fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable).ok().map_or(default, |count| {
        count.parse().unwrap_or_else(|_| panic!("{variable}: a number"))
    })
}

/// Local (UTC+8) wall-clock instant as UTC.
fn local(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .expect("UTC+8")
        .with_ymd_and_hms(year, month, day, hour, minute, second)
        .single()
        .expect("a valid local time")
        .to_utc()
}

async fn run(scale: f64, enterprises: Option<u64>, requests: usize, past_requests: usize) {
    let rules = Arc::new(anquan_domain::rules::builtin_v1().expect("rule set v1"));
    let events: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let started = Instant::now();
    let options = DemoOptions {
        scale,
        enterprises,
        last_year: YEAR,
        // The one year the timings in ARCHITECTURE.md were taken on.
        years: 1,
        ..DemoOptions::default()
    };
    let summary = generate(
        events.clone(),
        rules.clone(),
        &options,
        Tuning::default(),
        Arc::new(NoProgress),
    )
    .await
    .expect("generate the demo");
    println!(
        "scale {scale}: {} enterprises, {} agencies, {} events generated in {:.1} s",
        summary.enterprises,
        summary.agencies,
        summary.events,
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let read_models = Arc::new(
        SqliteReadModelStore::open(&dir.path().join("read_models.db"))
            .await
            .expect("open the read models"),
    );
    let runner = ProjectionRunner::new(events.clone(), read_models.clone())
        .with_projection(Arc::new(ComplianceProjection))
        .with_projection(Arc::new(AgencyProjection));
    runner.prepare().await.expect("prepare the read models");
    let started = Instant::now();
    for name in [ComplianceProjection::NAME, AgencyProjection::NAME] {
        runner.rebuild(name).await.expect("rebuild a projection");
    }
    println!("  read models built in {:.1} s", started.elapsed().as_secs_f64());

    let now = local(YEAR, 12, 31, 23, 59, 59);
    let past = local(YEAR, 6, 30, 23, 59, 59);
    let app = support::in_process_app(
        events,
        read_models,
        rules.clone(),
        &runner,
        Arc::new(move || now),
        dir.path(),
    );

    // The watcher's first full computation fills the cache that "now" reads.
    let started = Instant::now();
    let watcher = tokio::spawn(MetricsWatcher::new(app.clone()).run());
    while app.metrics.current().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "  metrics cache warmed in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    let schema = anquan_api::schema(app.clone());
    let actor = Actor {
        user_id: UserId::parse("bench-city-admin").expect("a user id"),
        role: Role::CityAdmin,
    };
    let request = |at: Option<DateTime<Utc>>| {
        async_graphql::Request::new(QUERY)
            .variables(async_graphql::Variables::from_json(json!({ "at": at })))
            .data(actor.clone())
            .data(app.clone())
    };

    // A tenth of the requests for now, one for asOf, warm up first.
    for (case, at, count, warm_up) in [
        ("now", None, requests, requests.div_ceil(10)),
        ("asOf", Some(past), past_requests, 1),
    ] {
        if count == 0 {
            continue;
        }
        let mut latencies = Vec::with_capacity(count);
        let mut body = Value::Null;
        for round in 0..count + warm_up {
            // A past instant computed once is kept until the read models move: ask for
            // another second every time, so each request computes.
            let at = at.map(|at| at - chrono::Duration::seconds(i64::try_from(round).unwrap_or(0)));
            let started = Instant::now();
            let response = schema.execute(request(at)).await;
            let elapsed = started.elapsed();
            assert!(response.errors.is_empty(), "errors: {:?}", response.errors);
            if round >= warm_up {
                latencies.push(elapsed);
            }
            body = response.data.into_json().expect("JSON data");
        }
        let towns = body["allTownMetrics"].as_array().map_or(0, Vec::len);
        let metrics = body["cityMetrics"]["metrics"].as_array().map_or(0, Vec::len);
        assert_eq!(metrics, rules.metrics.metrics.len(), "every metric in the answer");
        let city = |code: &str| {
            body["cityMetrics"]["metrics"]
                .as_array()
                .and_then(|metrics| metrics.iter().find(|metric| metric["code"] == code))
                .map_or(Value::Null, |metric| metric["value"].clone())
        };
        latencies.sort();
        println!(
            "  {case:<4} ({}): {towns} towns + city × {metrics} metrics, {} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
             (city A01 {}, B02 {}, H01 {})",
            body["cityMetrics"]["at"].as_str().unwrap_or_default(),
            latencies.len(),
            millis(percentile(&latencies, 0.50)),
            millis(percentile(&latencies, 0.99)),
            millis(latencies.last().copied().unwrap_or_default()),
            city("A01"),
            city("B02"),
            city("H01"),
        );
    }
    watcher.abort();
}

/// The nearest-rank percentile of sorted latencies.
fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        panic!("no latencies");
    }
    let rank = (quantile * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
