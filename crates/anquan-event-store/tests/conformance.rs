//! The conformance suite on the in-memory store, the reference implementation.

use std::sync::Arc;

use anquan_event_store::InMemoryEventStore;
use anquan_event_store::conformance::Fixture;

async fn make_store() -> Fixture {
    Fixture::new(Arc::new(InMemoryEventStore::new()))
}

anquan_event_store::event_store_conformance!(make_store());
