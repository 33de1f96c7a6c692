//! Test support: a fresh database per test on the server named by `ANQUAN_TEST_POSTGRES_URL`.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a part of the support")]
#![expect(clippy::expect_used, clippy::panic, reason = "test support fails the test at once")]

use chrono::Utc;
use uuid::Uuid;

use anquan_domain::{Actor, CommandId, Role, UserId};
use anquan_event_store::{AppendMetadata, AppendRequest, NewEvent, StreamId, StreamState};

pub use anquan_event_store_postgres::testing::TestDatabase;

/// Creates a fresh database, or prints why the test is skipped and returns `None`; fails the
/// test when PostgreSQL is required (`ANQUAN_TEST_REQUIRE_POSTGRES=1`) but not there.
pub async fn fresh_database(test: &str) -> Option<TestDatabase> {
    match anquan_event_store_postgres::testing::fresh_database(test).await {
        Ok(database) => database,
        Err(error) => panic!("{test} needs PostgreSQL: {}", anquan_event_store::error_chain(&error)),
    }
}

pub fn actor() -> Actor {
    Actor {
        user_id: UserId::parse("tester").expect("user id"),
        role: Role::CityAdmin,
    }
}

/// An append of `count` events of about `size` bytes each.
pub fn request(stream: &StreamId, expected: StreamState, count: usize, size: usize) -> AppendRequest {
    let padding = "x".repeat(size.saturating_sub(40));
    AppendRequest {
        stream_id: stream.clone(),
        expected,
        command: Some(anquan_event_store::CommandKey {
            id: CommandId(Uuid::now_v7()),
            digest: anquan_event_store::CommandDigest::of_bytes(b"postgres test"),
        }),
        metadata: AppendMetadata {
            occurred_at: Utc::now(),
            actor: actor(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events: (0..count)
            .map(|index| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "TestHappened".to_owned(),
                schema_version: 1,
                data: format!(r#"{{"index":{index},"pad":"{padding}"}}"#),
            })
            .collect(),
    }
}
