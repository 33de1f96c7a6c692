//! The conformance suite on PostgreSQL, each case in a fresh database.
//!
//! Without `ANQUAN_TEST_POSTGRES_URL` every case prints that it is skipped and returns; it never
//! runs on another store. With `ANQUAN_TEST_REQUIRE_POSTGRES=1` a missing or unreachable server
//! fails every case.

mod support;

use std::sync::Arc;

use anquan_event_store::conformance::Fixture;
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions};

#[expect(clippy::expect_used, reason = "a test fixture fails the test at once")]
async fn make_store() -> Option<Fixture> {
    let database = support::fresh_database("postgres conformance case").await?;
    let store = PostgresEventStore::connect(&database.url, PostgresOptions::default())
        .await
        .expect("connect the postgres event store");
    Some(Fixture::with_guard(Arc::new(store), database))
}

anquan_event_store::event_store_conformance!(optional: make_store());
