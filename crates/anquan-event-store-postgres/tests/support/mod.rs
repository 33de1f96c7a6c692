//! Test support: a fresh database per test on the server named by `ANQUAN_TEST_POSTGRES_URL`.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a part of the support")]
#![expect(clippy::expect_used, reason = "test support fails the test at once")]

use chrono::Utc;
use tokio_postgres::NoTls;
use uuid::Uuid;

use anquan_domain::{Actor, CommandId, Role, UserId};
use anquan_event_store::{AppendMetadata, AppendRequest, NewEvent, StreamId, StreamState};

/// The variable naming the admin URL of the test server.
pub const URL_VARIABLE: &str = "ANQUAN_TEST_POSTGRES_URL";

/// A database created for one test and dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

/// Returns `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Creates a fresh database, or prints why the test is skipped and returns `None`.
pub async fn fresh_database(test: &str) -> Option<TestDatabase> {
    let Ok(admin_url) = std::env::var(URL_VARIABLE) else {
        eprintln!("skipping {test}: {URL_VARIABLE} is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)");
        return None;
    };
    let name = format!("anquan_test_{}", Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(&admin_url, NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    Some(TestDatabase {
        url: with_database(&admin_url, &name),
        admin_url,
        name,
    })
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Async work in Drop: a private runtime on a private thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
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
        command_id: Some(CommandId(Uuid::now_v7())),
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

#[test]
fn with_database_replaces_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    assert_eq!(
        with_database("postgres://h/db?sslmode=disable", "x"),
        "postgres://h/x?sslmode=disable"
    );
}
