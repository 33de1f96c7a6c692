//! The conformance suite on the SQLite store, one temporary database file per case.

#![expect(clippy::expect_used, reason = "a store that cannot be set up fails the test")]

use std::sync::Arc;

use anquan_event_store::conformance::Fixture;
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions};

async fn make_store() -> Fixture {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = SqliteEventStore::open(&dir.path().join("events.sqlite"), SqliteOptions::default())
        .expect("open a sqlite store in a temporary directory");
    Fixture::with_guard(Arc::new(store), dir)
}

anquan_event_store::event_store_conformance!(make_store());
