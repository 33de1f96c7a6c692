//! The conformance suite on PostgreSQL, each case in a fresh database.

mod support;

use std::sync::Arc;

use anquan_event_store::InMemoryEventStore;
use anquan_event_store::conformance::Fixture;
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions};

#[expect(clippy::expect_used, reason = "a test fixture fails the test at once")]
async fn make_store() -> Fixture {
    let Some(database) = support::fresh_database("postgres conformance case").await else {
        // The macro needs a store: the case runs on the in-memory reference store instead,
        // which proves nothing about PostgreSQL (the skip reason is printed above).
        return Fixture::new(Arc::new(InMemoryEventStore::new()));
    };
    let store = PostgresEventStore::connect(&database.url, PostgresOptions::default())
        .await
        .expect("connect the postgres event store");
    Fixture::with_guard(Arc::new(store), database)
}

anquan_event_store::event_store_conformance!(make_store());
