//! The conformance suite on KurrentDB, against the server named by `ANQUAN_TEST_KURRENTDB_URL`
//! (a connection string, e.g. `kurrentdb://admin:changeit@127.0.0.1:2113?tls=false`).
//!
//! Without the variable every case prints that it is skipped and returns; it never runs on
//! another store. With `ANQUAN_TEST_REQUIRE_KURRENTDB=1` a missing variable or an unreachable
//! server fails every case instead. Every case writes to streams of its own and reads `$all`
//! only after the head it saw when it started, so the cases share one server.

use std::sync::Arc;

use anquan_event_store::conformance::Fixture;
use anquan_event_store_kurrentdb::KurrentEventStore;

const URL_VARIABLE: &str = "ANQUAN_TEST_KURRENTDB_URL";
const REQUIRE_VARIABLE: &str = "ANQUAN_TEST_REQUIRE_KURRENTDB";

#[expect(clippy::panic, reason = "a required server that is missing fails the test")]
async fn make_store() -> Option<Fixture> {
    let required = std::env::var(REQUIRE_VARIABLE).is_ok_and(|value| value == "1");
    let Some(url) = std::env::var(URL_VARIABLE).ok().filter(|url| !url.is_empty()) else {
        if required {
            panic!("{REQUIRE_VARIABLE}=1 but {URL_VARIABLE} is not set");
        }
        eprintln!(
            "skipping: {URL_VARIABLE} is not set (e.g. kurrentdb://admin:changeit@127.0.0.1:2113?tls=false); \
             no KurrentDB server was tested"
        );
        return None;
    };
    match KurrentEventStore::connect(&url).await {
        Ok(store) => Some(Fixture::new(Arc::new(store))),
        Err(error) if !required => {
            eprintln!(
                "skipping: the KurrentDB server named by {URL_VARIABLE} cannot be used ({}); \
                 set {REQUIRE_VARIABLE}=1 to fail instead",
                anquan_event_store::error_chain(&error)
            );
            None
        }
        Err(error) => panic!(
            "{REQUIRE_VARIABLE}=1 but KurrentDB is not usable: {}",
            anquan_event_store::error_chain(&error)
        ),
    }
}

anquan_event_store::event_store_conformance!(optional: make_store());
