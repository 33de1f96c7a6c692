//! What every read-model store must do with leases and guarded batches, run by each backend's
//! tests against a fresh store: a lease is granted to one holder at a time, renewed only by
//! its holder at its term, taken as a new term once released or expired (or by force), and a
//! batch commits only while its term is current and its projection's checkpoint is the one
//! it expects; a refused batch changes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a conformance case aborts on the first failure, like a test"
)]

use std::sync::Arc;
use std::time::Duration;

use crate::read_model::{
    CheckpointExpected, LeaseClaim, LeaseTerm, ProjectionBatch, ReadModelError, ReadModelStore, SqlValue, Statement,
};
use crate::stream::Position;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS guarded (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)";
const BUMP: &str = "INSERT INTO guarded (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = guarded.n + 1";

fn claim(holder: &str, renewing: Option<i64>, duration_ms: i64) -> LeaseClaim {
    LeaseClaim {
        group: "guards".to_owned(),
        holder: holder.to_owned(),
        renewing,
        duration_ms,
        force: false,
    }
}

async fn count(store: &dyn ReadModelStore) -> i64 {
    let rows = store
        .query("SELECT n FROM guarded WHERE id = 1", &[])
        .await
        .unwrap_or_default();
    rows.first().map_or(0, |row| row.int(0).unwrap_or(-1))
}

/// A batch with made-up checkpoints: the read-model store keeps both parts of any position, so
/// one-sequence positions test it for every event-store backend.
fn batch(checkpoint: u64, after: Option<u64>, lease: Option<&LeaseTerm>) -> Arc<ProjectionBatch> {
    Arc::new(
        ProjectionBatch::new(
            "guarded",
            vec![Statement::new(BUMP, Vec::<SqlValue>::new())],
            Position::from_sequence(checkpoint),
        )
        .after(after.map(Position::from_sequence))
        .fenced(lease.cloned()),
    )
}

/// Runs every case; panics on the first that fails.
pub async fn leases_and_guarded_batches(store: Arc<dyn ReadModelStore>) {
    store.migrate(TABLE).await.unwrap();

    // One holder at a time; renewal keeps the term; another holder is refused.
    let a = store.claim_lease(&claim("a", None, 60_000)).await.unwrap().unwrap();
    assert!(store.claim_lease(&claim("b", None, 60_000)).await.unwrap().is_none());
    let renewed = store
        .claim_lease(&claim("a", Some(a.term), 60_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.term, a.term);
    // A renewal of a term the holder does not hold is no renewal.
    assert!(
        store
            .claim_lease(&claim("a", Some(a.term + 7), 60_000))
            .await
            .unwrap()
            .is_none()
    );
    let leases = store.leases().await.unwrap();
    assert!(
        leases
            .iter()
            .any(|lease| lease.group == "guards" && lease.holder == "a" && lease.is_held())
    );

    // A fenced batch under the current term commits, with its expected checkpoint.
    store.apply(batch(1, None, Some(&a))).await.unwrap();
    store.apply(batch(2, Some(1), Some(&a))).await.unwrap();
    assert_eq!(count(store.as_ref()).await, 2);
    // A retry of a committed batch, or a batch folded after another checkpoint, is refused.
    let retried = store.apply(batch(2, Some(1), Some(&a))).await.unwrap_err();
    assert!(
        matches!(retried, ReadModelError::CheckpointMoved { found: Some(found), expected: CheckpointExpected::At(_), .. } if found == Position::from_sequence(2)),
        "{retried:?}"
    );
    let fresh = store.apply(batch(3, None, Some(&a))).await.unwrap_err();
    assert!(matches!(fresh, ReadModelError::CheckpointMoved { .. }), "{fresh:?}");
    assert_eq!(count(store.as_ref()).await, 2, "a refused batch changed rows");

    // Released, the lease goes to the next claimant as a higher term, which fences the old.
    store.release_lease(&a, "a").await.unwrap();
    let b = store.claim_lease(&claim("b", None, 60_000)).await.unwrap().unwrap();
    assert!(b.term > a.term);
    let late = store.apply(batch(3, Some(2), Some(&a))).await.unwrap_err();
    assert!(
        matches!(late, ReadModelError::Fenced { current: Some(current), .. } if current == b.term),
        "{late:?}"
    );
    assert!(late.is_refusal());
    assert_eq!(count(store.as_ref()).await, 2, "a fenced batch changed rows");
    assert_eq!(
        store.checkpoint("guarded").await.unwrap(),
        Some(Position::from_sequence(2))
    );
    assert!(
        store
            .claim_lease(&claim("a", Some(a.term), 60_000))
            .await
            .unwrap()
            .is_none()
    );
    store.apply(batch(3, Some(2), Some(&b))).await.unwrap();

    // Expired, it is free; forced, it is taken from a live holder.
    let short = store.claim_lease(&claim("b", Some(b.term), 1)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = store.claim_lease(&claim("c", None, 60_000)).await.unwrap().unwrap();
    assert!(c.term > short.term);
    let forced = store
        .claim_lease(&LeaseClaim {
            force: true,
            ..claim("d", None, 60_000)
        })
        .await
        .unwrap()
        .unwrap();
    assert!(forced.term > c.term);
    assert!(matches!(
        store.apply(batch(4, Some(3), Some(&c))).await,
        Err(ReadModelError::Fenced { .. })
    ));
    store.apply(batch(4, Some(3), Some(&forced))).await.unwrap();
    assert_eq!(count(store.as_ref()).await, 4);
    let checkpoints = store.checkpoints().await.unwrap();
    assert!(checkpoints.contains(&("guarded".to_owned(), Position::from_sequence(4))));
}
