//! The persisted metrics for "now" (`metrics::persist`) on SQLite: what is written reads back
//! the same, a write of some enterprises replaces and deletes only theirs, a write under a
//! leadership term that is no longer the group's is refused and changes nothing, and a clear
//! (what a rebuild of the read models does) leaves nothing to load.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests abort on failure")]

use std::sync::Arc;

use chrono::{TimeZone, Utc};

use anquan_domain::metrics::{Contribution, Tally};
use anquan_domain::{EnterpriseId, Town};
use anquan_event_store::{LeaseClaim, LeaseTerm, Position, ReadModelStore};
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::leadership::READ_MODELS_GROUP;
use std::borrow::Cow;

use anquan_projections::metrics::persist::{self, PersistedContributionRef, PersistedState, Write};
use anquan_projections::metrics::{ScopeTallies, Snapshot};

fn enterprise(n: u128) -> EnterpriseId {
    EnterpriseId::from_uuid(uuid::Uuid::from_u128(n))
}

fn contribution(town: &str, numerator: i64) -> Contribution {
    Contribution {
        town: Town::parse(town).unwrap(),
        breakdowns: 0b101,
        tallies: vec![(numerator, 1), (0, 1), (2, 3)],
        parts: vec![(2, [1, 0, 0, 1])],
    }
}

fn state(commit: u64) -> PersistedState {
    let at = Utc.with_ymd_and_hms(2027, 3, 1, 2, 3, 4).unwrap();
    let tally = Tally {
        numerator: 3,
        denominator: 4,
        parts: [0; 4],
    };
    PersistedState {
        rule_set: "v1".to_owned(),
        rule_set_digest: "digest".to_owned(),
        at,
        position: Position::from_sequence(commit),
        month_ago: Snapshot {
            at: Utc.with_ymd_and_hms(2027, 2, 1, 2, 3, 4).unwrap(),
            towns: vec![(
                Town::parse("许村").unwrap(),
                ScopeTallies {
                    all: vec![tally],
                    by_breakdown: vec![vec![tally]],
                },
            )],
            city: ScopeTallies {
                all: vec![tally],
                by_breakdown: vec![vec![Tally::default()]],
            },
        },
    }
}

async fn loaded(
    store: &dyn ReadModelStore,
) -> Vec<(EnterpriseId, Option<Contribution>, Option<chrono::DateTime<Utc>>)> {
    let mut rows = Vec::new();
    persist::load_contributions(store, |row| {
        rows.push((row.enterprise_id, row.contribution, row.next_change));
    })
    .await
    .unwrap();
    rows
}

async fn term(store: &dyn ReadModelStore, holder: &str) -> LeaseTerm {
    store
        .claim_lease(&LeaseClaim {
            group: READ_MODELS_GROUP.to_owned(),
            holder: holder.to_owned(),
            renewing: None,
            duration_ms: 60_000,
            force: true,
        })
        .await
        .unwrap()
        .expect("a forced claim is granted")
}

/// A SQLite read-model store in `directory` with the persisted metrics' tables.
async fn migrated_store(directory: &std::path::Path) -> Arc<SqliteReadModelStore> {
    let store = Arc::new(SqliteReadModelStore::open(directory.join("anquan.db")).await.unwrap());
    persist::migrate(store.as_ref()).await.unwrap();
    store
}

#[tokio::test]
async fn persisted_metrics_read_back_are_replaced_by_enterprise_fenced_and_cleared() {
    let directory = tempfile::tempdir().unwrap();
    let store = migrated_store(directory.path()).await;
    let store: &dyn ReadModelStore = store.as_ref();
    assert_eq!(persist::load_state(store).await.unwrap(), None);
    let first = term(store, "node-a").await;

    // Every contribution, more than one INSERT's worth.
    let next = Utc.with_ymd_and_hms(2027, 4, 1, 0, 0, 0).unwrap();
    let contributions: Vec<(EnterpriseId, Contribution)> = (1..=450)
        .map(|n| (enterprise(n), contribution(if n % 2 == 0 { "许村" } else { "长安" }, 1)))
        .collect();
    let rows = contributions
        .iter()
        .map(|(enterprise_id, contribution)| PersistedContributionRef {
            enterprise_id: *enterprise_id,
            contribution: Some(Cow::Borrowed(contribution)),
            next_change: (enterprise_id.as_uuid().as_u128() % 3 == 0).then_some(next),
        })
        // One that contributes nothing yet but changes later.
        .chain(std::iter::once(PersistedContributionRef {
            enterprise_id: enterprise(1000),
            contribution: None,
            next_change: Some(next),
        }));
    persist::save(store, &state(10), Write::Every(Box::new(rows)), Some(first.clone()))
        .await
        .unwrap();
    assert_eq!(persist::load_state(store).await.unwrap(), Some(state(10)));
    let read = loaded(store).await;
    assert_eq!(read.len(), 451);
    assert_eq!(read[450], (enterprise(1000), None, Some(next)));
    for ((enterprise_id, contribution), (read_id, read_contribution, read_next)) in contributions.iter().zip(&read) {
        assert_eq!(
            (enterprise_id, Some(contribution)),
            (read_id, read_contribution.as_ref())
        );
        let expected = (enterprise_id.as_uuid().as_u128() % 3 == 0).then_some(next);
        assert_eq!(*read_next, expected, "{enterprise_id}");
    }
    assert_eq!(
        store.checkpoint(persist::PROJECTION).await.unwrap(),
        Some(Position::from_sequence(10))
    );

    // Some enterprises: one replaced, one gone; the others stay.
    let replaced = contribution("许村", 0);
    let changes = vec![
        (
            enterprise(2),
            Some(PersistedContributionRef {
                enterprise_id: enterprise(2),
                contribution: Some(Cow::Borrowed(&replaced)),
                next_change: None,
            }),
        ),
        (enterprise(3), None),
    ];
    persist::save(store, &state(12), Write::These(changes), Some(first.clone()))
        .await
        .unwrap();
    let read = loaded(store).await;
    assert_eq!(read.len(), 450);
    assert!(read.iter().all(|(id, _, _)| *id != enterprise(3)));
    let two = read.iter().find(|(id, _, _)| *id == enterprise(2)).unwrap();
    assert_eq!((two.1.as_ref(), two.2), (Some(&replaced), None));
    assert_eq!(
        persist::load_state(store).await.unwrap().unwrap().position,
        Position::from_sequence(12)
    );

    // Another node took the lease: the first one's late write is refused whole.
    let _second = term(store, "node-b").await;
    let late = persist::save(
        store,
        &state(20),
        Write::These(vec![(enterprise(4), None)]),
        Some(first),
    )
    .await;
    assert!(late.is_err(), "a deposed leader's write landed");
    assert_eq!(loaded(store).await.len(), 450);
    assert_eq!(
        persist::load_state(store).await.unwrap().unwrap().position,
        Position::from_sequence(12)
    );

    // A rebuild clears them.
    persist::clear(store).await.unwrap();
    assert_eq!(persist::load_state(store).await.unwrap(), None);
    assert!(loaded(store).await.is_empty());
    assert_eq!(store.checkpoint(persist::PROJECTION).await.unwrap(), None);
}

#[tokio::test]
async fn contributions_are_stored_as_compact_text_and_the_earlier_json_objects_still_load() {
    let directory = tempfile::tempdir().unwrap();
    let store = migrated_store(directory.path()).await;
    let store: &dyn ReadModelStore = store.as_ref();
    let lease = term(store, "node-a").await;
    let written = contribution("许村", 1);
    // More than two pages of the load (5,000 rows each), so pages are read beside the rows.
    let rows = (1..=10_001).map(|n| PersistedContributionRef {
        enterprise_id: enterprise(n),
        contribution: Some(Cow::Borrowed(&written)),
        next_change: None,
    });
    persist::save(store, &state(1), Write::Every(Box::new(rows)), Some(lease))
        .await
        .unwrap();
    let raw = store
        .query("SELECT contribution FROM metrics_contributions LIMIT 1", &[])
        .await
        .unwrap();
    let stored = raw[0].text(0).unwrap();
    assert_eq!(
        serde_json::from_str::<String>(&stored).unwrap(),
        anquan_projections::metrics::compact::encode(&written),
        "{stored}"
    );

    // A row an earlier version wrote, as a JSON object.
    let earlier = contribution("长安", 0);
    store
        .apply(Arc::new(anquan_event_store::ProjectionBatch::new(
            "earlier",
            vec![anquan_event_store::Statement::new(
                "INSERT INTO metrics_contributions (enterprise_id, contribution, next_change) VALUES ($1, $2, NULL)",
                vec![
                    anquan_event_store::SqlValue::Text(enterprise(20_000).to_string()),
                    anquan_event_store::SqlValue::Json(serde_json::to_string(&earlier).unwrap()),
                ],
            )],
            Position::from_sequence(1),
        )))
        .await
        .unwrap();
    let expected: Vec<_> = (1..=10_001)
        .map(|n| (enterprise(n), Some(written.clone()), None))
        .chain(std::iter::once((enterprise(20_000), Some(earlier), None)))
        .collect();
    assert_eq!(loaded(store).await, expected);
}
