//! Crash test (issue 3): kill every process of a PostgreSQL server with SIGKILL during
//! appends, restart it, and check that every acknowledged event is there with its stream's hash
//! chain intact, and that a surviving store's LISTEN connection reconnects.
//!
//! It starts a throwaway cluster of its own (initdb + pg_ctl as user `postgres`, on a free
//! port, in a temporary directory), never the shared server, and runs only when
//! `ANQUAN_TEST_POSTGRES_CRASH=1`:
//!
//! ```text
//! ANQUAN_TEST_POSTGRES_CRASH=1 cargo test -p anquan-event-store-postgres --test crash -- --nocapture
//! ```

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "process helpers of a test fail the test at once"
)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use anquan_domain::{Actor, CommandId, Role, UserId};
use anquan_event_store::hash_chain::verify_stream;
use anquan_event_store::{AppendMetadata, AppendRequest, EventStore, NewEvent, StreamId, StreamState, StreamVersion};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions};

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(program: &str, args: &[&str]) {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{BIN}/{program}")])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

fn start(data: &Path, port: u16) {
    let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", data.display());
    let log = data.join("server.log");
    as_postgres(
        "pg_ctl",
        &[
            "-D",
            &data.to_string_lossy(),
            "-o",
            &options,
            "-l",
            &log.to_string_lossy(),
            "-w",
            "start",
        ],
    );
}

/// SIGKILLs the postmaster and every backend (pg_ctl starts the server in its own session).
fn kill_server(data: &Path) {
    let pid = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    let pid = pid.lines().next().unwrap().trim().to_owned();
    let status = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(status.success());
    // Wait until every process of the group is gone.
    for _ in 0..100 {
        let alive = Command::new("kill")
            .args(["-0", "--", &format!("-{pid}")])
            .status()
            .unwrap();
        if !alive.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server processes survived SIGKILL");
}

fn request(stream: &StreamId, events: usize) -> AppendRequest {
    AppendRequest {
        stream_id: stream.clone(),
        expected: StreamState::Any,
        command: Some(anquan_event_store::CommandKey {
            id: CommandId(Uuid::now_v7()),
            digest: anquan_event_store::CommandDigest::of_bytes(b"crash test"),
        }),
        metadata: AppendMetadata {
            occurred_at: Utc::now(),
            actor: Actor {
                user_id: UserId::parse("crash-tester").unwrap(),
                role: Role::CityAdmin,
            },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events: (0..events)
            .map(|index| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "CrashTested".to_owned(),
                schema_version: 1,
                data: format!(r#"{{"index":{index},"pad":"{}"}}"#, "y".repeat(200)),
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_sigkill_of_the_server() {
    if std::env::var("ANQUAN_TEST_POSTGRES_CRASH").as_deref() != Ok("1") {
        eprintln!("skipping the crash test: set ANQUAN_TEST_POSTGRES_CRASH=1 (it runs its own throwaway cluster)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    assert!(
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
    as_postgres(
        "initdb",
        &[
            "-D",
            &data.to_string_lossy(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    start(&data, port);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");

    let store = Arc::new(
        PostgresEventStore::connect(&url, PostgresOptions { pool_size: 8 })
            .await
            .unwrap(),
    );
    let acknowledged: Arc<Mutex<Vec<(StreamId, Uuid)>>> = Arc::default();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let stream = StreamId::parse(&format!("crash-{}", Uuid::new_v4().simple())).unwrap();
            loop {
                let request = request(&stream, 10);
                let ids: Vec<Uuid> = request.events.iter().map(|event| event.event_id).collect();
                match store.append(request).await {
                    // Only what the store acknowledged must survive.
                    Ok(_) => acknowledged
                        .lock()
                        .unwrap()
                        .extend(ids.into_iter().map(|id| (stream.clone(), id))),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    kill_server(&data);
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .unwrap()
            .unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty(), "nothing was acknowledged before the kill");

    start(&data, port);
    let survivor_head = store.head();
    let reopened = PostgresEventStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let mut streams: Vec<StreamId> = acknowledged.iter().map(|(stream, _)| stream.clone()).collect();
    streams.sort();
    streams.dedup();
    let mut present = std::collections::HashSet::new();
    for stream in &streams {
        let mut events = Vec::new();
        loop {
            let page = reopened
                .read_stream(stream, StreamVersion(events.len() as u64), 10_000)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            events.extend(page);
        }
        verify_stream(&events).unwrap();
        present.extend(events.iter().map(|event| event.event_id));
    }
    let lost = acknowledged.iter().filter(|(_, id)| !present.contains(id)).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged events were lost",
        acknowledged.len()
    );

    // The first store's listener reconnects: an append through the second store reaches its head.
    let outcome = reopened.append(request(&streams[0], 1)).await.unwrap();
    let mut head = survivor_head;
    tokio::time::timeout(
        Duration::from_secs(20),
        head.wait_for(|head| *head >= Some(outcome.last_position)),
    )
    .await
    .expect("the surviving store's listener reconnected")
    .unwrap();
    eprintln!(
        "{} acknowledged events survived the SIGKILL with intact chains",
        acknowledged.len()
    );

    drop(reopened);
    drop(store);
    as_postgres("pg_ctl", &["-D", &data.to_string_lossy(), "-m", "immediate", "stop"]);
}
