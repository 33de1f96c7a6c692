//! The metrics computed a chunk of files at a time (what the watcher and past `asOf` requests
//! use) equal the metrics computed over every fact loaded at once (what the oracle test checks
//! against a brute-force count of the events), and a past-instant computation is shared by the
//! callers that ask for the same instants before the read models move.

#![allow(clippy::unwrap_used, reason = "a test stops at its first failure")]

mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use anquan_api::AppState;
use anquan_demo::{DemoOptions, NoProgress, Tuning, generate};
use anquan_domain::rules::RuleSet;
use anquan_event_store::{EventStore, InMemoryEventStore, Position};
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::metrics::{MetricsCache, Snapshot, compute_streaming, load_facts, snapshots_streaming};
use anquan_projections::{AgencyProjection, ComplianceProjection, ProjectionRunner};

/// Local (UTC+8) wall-clock instant as UTC.
fn local(year: i32, month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(year, month, day, hour, 0, 0)
        .single()
        .unwrap()
        .to_utc()
}

struct World {
    _dir: tempfile::TempDir,
    rules: Arc<RuleSet>,
    events: Arc<dyn EventStore>,
    read_models: Arc<SqliteReadModelStore>,
    runner: ProjectionRunner,
}

/// A small demo city (a few dozen enterprises with a year of records, inspections, hazards,
/// agencies and contracts), projected into SQLite read models.
async fn world() -> World {
    let rules = Arc::new(anquan_domain::rules::builtin_v1().unwrap());
    let events: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let options = DemoOptions {
        enterprises: Some(40),
        years: 1,
        ..DemoOptions::default()
    };
    generate(
        events.clone(),
        rules.clone(),
        &options,
        Tuning::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let read_models = Arc::new(
        SqliteReadModelStore::open(dir.path().join("read_models.db"))
            .await
            .unwrap(),
    );
    let runner = ProjectionRunner::new(events.clone(), read_models.clone())
        .with_projection(Arc::new(ComplianceProjection))
        .with_projection(Arc::new(AgencyProjection));
    runner.prepare().await.unwrap();
    for name in [ComplianceProjection::NAME, AgencyProjection::NAME] {
        runner.rebuild(name).await.unwrap();
    }
    World {
        _dir: dir,
        rules,
        events,
        read_models,
        runner,
    }
}

/// Instants inside the demo year, on its window boundaries and after it.
fn instants() -> Vec<DateTime<Utc>> {
    vec![
        local(2019, 12, 31, 23),
        local(2019, 11, 30, 23),
        local(2019, 7, 1, 0),
        local(2019, 6, 30, 12),
        local(2019, 3, 15, 9),
        local(2020, 1, 1, 0),
        local(2019, 12, 31, 23) + Duration::days(40),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_metrics_equal_the_metrics_over_all_facts_in_every_chunking() {
    let world = world().await;
    let rules = &world.rules;
    let facts = load_facts(world.read_models.as_ref()).await.unwrap();
    assert!(facts.files.len() >= 30, "{} enterprises", facts.files.len());
    let instants = instants();
    let expected: Vec<Snapshot> = instants
        .iter()
        .map(|at| Snapshot::compute(rules, &facts, *at))
        .collect();
    assert!(
        expected[0].city.all.iter().any(|tally| tally.denominator != 0),
        "the demo gives the metrics something to count"
    );
    // One chunk, several rounds (the last one short), and one enterprise per round.
    for chunk in [500, 7, 1] {
        let streamed = snapshots_streaming(world.read_models.as_ref(), rules.clone(), &instants, chunk)
            .await
            .unwrap();
        assert_eq!(streamed, expected, "chunks of {chunk}");

        let (now, earlier) = (instants[0], instants[1]);
        let (cache, month_ago) = compute_streaming(world.read_models.as_ref(), rules.clone(), now, earlier, chunk)
            .await
            .unwrap();
        assert_eq!(cache.snapshot(rules), Some(expected[0].clone()), "chunks of {chunk}");
        assert_eq!(month_ago, expected[1], "chunks of {chunk}");
        let whole = MetricsCache::compute(rules, &facts, now);
        assert_eq!(cache.enterprises(), whole.enterprises());
        // The timer index too: every enterprise's next change, computed in the blocking pass.
        assert!(cache.next_due().is_some_and(|next| next > now), "chunks of {chunk}");
        assert_eq!(cache.next_due(), whole.next_due(), "chunks of {chunk}");
        for enterprise_id in facts.files.keys() {
            assert_eq!(
                cache.next_change_of(*enterprise_id),
                whole.next_change_of(*enterprise_id),
                "chunks of {chunk}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_instant_is_computed_once_until_the_read_models_move() {
    let world = world().await;
    let dir = tempfile::tempdir().unwrap();
    let now = local(2019, 12, 31, 23);
    let app = support::in_process_app(
        world.events.clone(),
        world.read_models.clone(),
        world.rules.clone(),
        &world.runner,
        Arc::new(move || now),
        dir.path(),
    );
    let past = [local(2019, 6, 30, 12), local(2019, 5, 30, 12)];
    let (first, second) = tokio::join!(
        anquan_api::metrics_service::snapshots_at(&app, &past),
        anquan_api::metrics_service::snapshots_at(&app, &past)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.len(), 2);
    assert!(
        first.iter().zip(&second).all(|(a, b)| Arc::ptr_eq(a, b)),
        "concurrent callers share one computation"
    );
    let facts = load_facts(world.read_models.as_ref()).await.unwrap();
    for (snapshot, at) in first.iter().zip(past) {
        assert_eq!(**snapshot, Snapshot::compute(&world.rules, &facts, at));
    }
    // An instant a kept computation holds is that computation's, asked alone too.
    let alone = anquan_api::metrics_service::snapshots_at(&app, &past[..1])
        .await
        .unwrap();
    assert!(
        Arc::ptr_eq(&alone[0], &first[0]),
        "an instant kept is shared, asked alone too"
    );
    // With an instant no computation holds, that one alone is computed.
    let april = local(2019, 4, 30, 12);
    let mixed = anquan_api::metrics_service::snapshots_at(&app, &[april, past[1]])
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&mixed[1], &first[1]), "the kept instant is shared");
    assert_eq!(*mixed[0], Snapshot::compute(&world.rules, &facts, april));

    // The read models move on: what was kept for the earlier position is not served again.
    let (_moved, projected) = tokio::sync::watch::channel(Some(Position::from_sequence(u64::MAX)));
    let moved = AppState {
        projected,
        projections: anquan_projections::ProjectionsHealth::default(),
        ..app.clone()
    };
    let again = anquan_api::metrics_service::snapshots_at(&moved, &past).await.unwrap();
    assert!(
        !Arc::ptr_eq(&again[0], &first[0]),
        "a new computation after the read models moved"
    );
    assert_eq!(*again[0], *first[0]);
}
