//! Tamper evidence and determinism against real stores: one byte changed in the SQLite file or
//! the PostgreSQL table is found at exactly that event, as are a deleted row and a swapped
//! version pair; two rebuilds of the same log give byte-identical read models and rule-set
//! snapshots (a digest compared), on SQLite and on PostgreSQL (skipped with a printed reason
//! unless `ANQUAN_TEST_POSTGRES_URL` is set, failing when `ANQUAN_TEST_REQUIRE_POSTGRES=1`).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test on any error"
)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use anquan_domain::enterprise::{
    Coverage, EnterpriseCommand, EnterpriseFile, FileRef, RegisterEnterprise, ReviewDecision, ReviewDocument,
    UploadDocument, enterprise_id_for,
};
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag, RuleSet};
use anquan_domain::{Actor, DecisionContext, DocumentId, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId};
use anquan_event_store::execute::{CommandEnvelope, execute};
use anquan_event_store::{
    AppendMetadata, AppendRequest, EventStore, InMemoryEventStore, NewEvent, ReadModelStore, StreamId, StreamState,
};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions, PostgresReadModelStore};
use anquan_event_store_sqlite::{ReadModelDurability, SqliteEventStore, SqliteOptions, SqliteReadModelStore};
use anquan_projections::audit::{BreakKind, list_streams, verify_stream_in};
use anquan_projections::rule_sets::rebuild::fold_to_end;
use anquan_projections::rule_sets::rule_set_digest;
use anquan_projections::rule_sets::snapshot::{SnapshotOutcome, dump_snapshot, materialise};
use anquan_projections::{AgencyProjection, ComplianceProjection, Projection, dump_tables};

const EVENTS_PER_STREAM: u64 = 12;

fn actor() -> Actor {
    Actor {
        user_id: UserId::parse("auditor-test").unwrap(),
        role: Role::CityAdmin,
    }
}

/// Appends `EVENTS_PER_STREAM` events to each of three streams, one append per event.
async fn seed(store: &dyn EventStore) -> Vec<StreamId> {
    let streams: Vec<StreamId> = (0..3).map(|_| StreamId::for_uuid("audit", Uuid::now_v7())).collect();
    for n in 0..EVENTS_PER_STREAM {
        for stream in &streams {
            let request = AppendRequest {
                stream_id: stream.clone(),
                expected: StreamState::Any,
                command: None,
                metadata: AppendMetadata {
                    occurred_at: Utc::now(),
                    actor: actor(),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                },
                events: vec![NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "Noted".into(),
                    schema_version: 1,
                    data: format!("{{\"note\":\"entry {n}\"}}"),
                }],
            };
            store.append(request).await.unwrap();
        }
    }
    streams
}

/// Checks that `stream` has exactly these breaks (version, kind) and the others none.
async fn assert_breaks(store: &dyn EventStore, streams: &[StreamId], target: usize, expected: &[(u64, BreakKind)]) {
    for (index, stream) in streams.iter().enumerate() {
        let verification = verify_stream_in(store, stream).await.unwrap();
        let found: Vec<(u64, BreakKind)> = verification.breaks.iter().map(|b| (b.version, b.kind)).collect();
        if index == target {
            assert_eq!(found, expected, "{verification:?}");
        } else {
            assert!(verification.intact(), "{verification:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_byte_a_deleted_row_and_a_swapped_pair_in_the_sqlite_file_are_found() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("anquan.sqlite");
    let streams = {
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(&path, SqliteOptions::default()).unwrap());
        let streams = seed(store.as_ref()).await;
        assert_breaks(store.as_ref(), &streams, 0, &[]).await;
        let (listed, gaps) = list_streams(&store, |_| {}).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(
            gaps,
            Some(Vec::new()),
            "SQLite promises dense positions: the gap check runs"
        );
        streams
    };
    let tamper = |sql: &str, stream: &StreamId| {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute(sql, [stream.as_str()]).unwrap();
    };
    let reopen =
        || -> Arc<dyn EventStore> { Arc::new(SqliteEventStore::open(&path, SqliteOptions::default()).unwrap()) };

    // One byte of one event's data: "entry 3" becomes "entry 4".
    tamper(
        "UPDATE event_log SET data = replace(data, 'entry 3', 'entry 4') WHERE stream_id = ?1 AND version = 3",
        &streams[0],
    );
    assert_breaks(reopen().as_ref(), &streams, 0, &[(3, BreakKind::Altered)]).await;

    // One byte of one stored hash.
    tamper(
        "UPDATE event_log SET hash = CAST(zeroblob(1) || substr(hash, 2) AS BLOB) WHERE stream_id = ?1 AND version = 6",
        &streams[1],
    );
    assert_breaks(reopen().as_ref(), &streams[1..], 0, &[(6, BreakKind::Altered)]).await;

    // A deleted row and a swapped pair of versions in the third stream.
    tamper(
        "DELETE FROM event_log WHERE stream_id = ?1 AND version = 2",
        &streams[2],
    );
    tamper(
        "UPDATE event_log SET version = CASE version WHEN 7 THEN -8 ELSE -7 END WHERE stream_id = ?1 AND version IN (7, 8)",
        &streams[2],
    );
    tamper(
        "UPDATE event_log SET version = -version WHERE stream_id = ?1 AND version < 0",
        &streams[2],
    );
    let store = reopen();
    // The third stream's version 2 was the ninth event (three streams, one event each in turn).
    let (_, gaps) = list_streams(&store, |_| {}).await.unwrap();
    assert_eq!(gaps, Some(vec![(9, 9)]), "the deleted row is a gap in the dense log");
    let verification = verify_stream_in(store.as_ref(), &streams[2]).await.unwrap();
    let found: Vec<(u64, BreakKind)> = verification.breaks.iter().map(|b| (b.version, b.kind)).collect();
    assert_eq!(
        found,
        [
            (2, BreakKind::Missing),
            (7, BreakKind::Reordered),
            (8, BreakKind::Reordered)
        ],
        "{verification:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_byte_a_deleted_row_and_a_swapped_pair_in_the_postgres_table_are_found() {
    let database = match anquan_event_store_postgres::testing::fresh_database("postgres tamper test").await {
        Ok(Some(database)) => database,
        Ok(None) => return,
        Err(error) => panic!("the postgres tamper test needs PostgreSQL: {error}"),
    };
    let store = PostgresEventStore::connect(&database.url, PostgresOptions::default())
        .await
        .unwrap();
    let streams = seed(&store).await;
    assert_breaks(&store, &streams, 0, &[]).await;
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tamper = async |sql: &str, stream: &StreamId| {
        client.execute(sql, &[&stream.as_str()]).await.unwrap();
    };
    tamper(
        "UPDATE event_log SET data = replace(data::text, 'entry 3', 'entry 4')::json WHERE stream_id = $1 AND version = 3",
        &streams[0],
    )
    .await;
    assert_breaks(&store, &streams, 0, &[(3, BreakKind::Altered)]).await;
    tamper(
        "UPDATE event_log SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) WHERE stream_id = $1 AND version = 6",
        &streams[1],
    )
    .await;
    assert_breaks(&store, &streams[1..], 0, &[(6, BreakKind::Altered)]).await;
    tamper(
        "DELETE FROM event_log WHERE stream_id = $1 AND version = 2",
        &streams[2],
    )
    .await;
    tamper(
        "UPDATE event_log SET version = CASE version WHEN 7 THEN -8 ELSE -7 END WHERE stream_id = $1 AND version IN (7, 8)",
        &streams[2],
    )
    .await;
    tamper(
        "UPDATE event_log SET version = -version WHERE stream_id = $1 AND version < 0",
        &streams[2],
    )
    .await;
    let verification = verify_stream_in(&store, &streams[2]).await.unwrap();
    let found: Vec<(u64, BreakKind)> = verification.breaks.iter().map(|b| (b.version, b.kind)).collect();
    assert_eq!(
        found,
        [
            (2, BreakKind::Missing),
            (7, BreakKind::Reordered),
            (8, BreakKind::Reordered)
        ],
        "{verification:?}"
    );
}

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 10, 9, 0, 0).unwrap() + chrono::Duration::days(n)
}

/// A log of real enterprise commands: enterprises in two towns with drill records, approved
/// and returned, and other uploads.
async fn enterprise_log(rules: &RuleSet) -> Arc<InMemoryEventStore> {
    let store = Arc::new(InMemoryEventStore::new());
    let admin = actor();
    let run = async |actor: &Actor, now: DateTime<Utc>, command: EnterpriseCommand| {
        let context = DecisionContext { actor, rules, now };
        let envelope = CommandEnvelope {
            command_id: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            expected_version: None,
        };
        execute::<EnterpriseFile>(store.as_ref(), &command, &context, &envelope)
            .await
            .unwrap();
    };
    for serial in 0..12u32 {
        let credit_code =
            UnifiedSocialCreditCode::with_check_character(&format!("91330481MA28A1X{serial:02}")).unwrap();
        let enterprise_id = enterprise_id_for(&credit_code);
        let town = if serial % 2 == 0 { "许村" } else { "长安" };
        let flags = if serial % 3 == 0 {
            [ProfileFlag::DustExplosion].into()
        } else {
            [ProfileFlag::SpecialEquipment].into()
        };
        run(
            &admin,
            day(i64::from(serial)),
            EnterpriseCommand::Register(RegisterEnterprise {
                name: format!("海宁企业{serial}"),
                credit_code,
                town: Town::parse(town).unwrap(),
                industry: "纺织".into(),
                profile: EnterpriseProfile {
                    staff_count: 30 + serial,
                    annual_revenue_10k_yuan: 600,
                    flags,
                },
            }),
        )
        .await;
        let owner = Actor {
            user_id: UserId::parse(&format!("owner-{serial}")).unwrap(),
            role: Role::Enterprise { enterprise_id },
        };
        // Key enterprises (dust explosion) drill half-yearly, the others yearly.
        let periods = if serial % 3 == 0 {
            ["2023-H1", "2023-H2"]
        } else {
            ["2022", "2023"]
        };
        for (index, (requirement, coverage)) in [
            (
                "R10.drill",
                Coverage::Period {
                    period: periods[0].parse().unwrap(),
                },
            ),
            (
                "R10.drill",
                Coverage::Period {
                    period: periods[1].parse().unwrap(),
                },
            ),
            ("R01.responsibility_system", Coverage::Once),
        ]
        .into_iter()
        .enumerate()
        {
            let document_id = DocumentId(Uuid::now_v7());
            let at = day(20 + i64::from(serial) + index as i64);
            run(
                &owner,
                at,
                EnterpriseCommand::UploadDocument(UploadDocument {
                    enterprise_id,
                    document_id,
                    requirement: RequirementCode::parse(requirement).unwrap(),
                    title: format!("{requirement} record"),
                    file: FileRef {
                        sha256: format!("{:064x}", document_id.0.as_u128()),
                        size_bytes: 1024,
                        media_type: "application/pdf".into(),
                        file_name: "record.pdf".into(),
                    },
                    coverage,
                }),
            )
            .await;
            let decision = if (serial + index as u32) % 4 == 3 {
                ReviewDecision::Return {
                    feedback: "盖章缺失".into(),
                }
            } else {
                ReviewDecision::Approve { comment: None }
            };
            run(
                &admin,
                at + chrono::Duration::hours(2),
                EnterpriseCommand::ReviewDocument(ReviewDocument {
                    enterprise_id,
                    document_id,
                    decision,
                }),
            )
            .await;
        }
    }
    store
}

/// Rebuilds the fact read models and rule set v1's snapshot from `log` into `target`, and
/// returns the SHA-256 of their dumps.
async fn rebuild_digest(log: &dyn EventStore, target: &dyn ReadModelStore, rules: &RuleSet) -> String {
    let projections: Vec<Arc<dyn Projection>> = vec![Arc::new(ComplianceProjection), Arc::new(AgencyProjection)];
    let report = fold_to_end(log, target, &projections, None, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    assert!(report.events > 0 && !report.cancelled);
    let digest = rule_set_digest(&anquan_domain::rules::builtin_v1_files());
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
    let outcome = materialise(target, rules, &digest, at, Arc::new(AtomicBool::new(false)), |_| {})
        .await
        .unwrap();
    assert!(
        matches!(outcome, SnapshotOutcome::Complete { enterprises: 12, .. }),
        "{outcome:?}"
    );
    let mut hasher = Sha256::new();
    for projection in &projections {
        hasher.update(dump_tables(target, projection.as_ref()).await.unwrap());
    }
    hasher.update(dump_snapshot(target, &rules.version).await.unwrap());
    hex::encode(hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rebuilds_of_the_same_log_give_identical_read_models_on_sqlite() {
    let rules = anquan_domain::rules::builtin_v1().unwrap();
    let log = enterprise_log(&rules).await;
    let directory = tempfile::tempdir().unwrap();
    let first = SqliteReadModelStore::open(directory.path().join("first.sqlite"))
        .await
        .unwrap();
    // The second as `anquan projections rebuild --into` writes it: no fsync until it is done.
    let second = SqliteReadModelStore::open_with(directory.path().join("second.sqlite"), ReadModelDurability::Rebuild)
        .await
        .unwrap();
    let a = rebuild_digest(log.as_ref(), &first, &rules).await;
    let b = rebuild_digest(log.as_ref(), &second, &rules).await;
    second.make_durable().await.unwrap();
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rebuilds_of_the_same_log_give_identical_read_models_on_postgres() {
    let mut databases = Vec::new();
    for name in [
        "postgres determinism test (first)",
        "postgres determinism test (second)",
    ] {
        match anquan_event_store_postgres::testing::fresh_database(name).await {
            Ok(Some(database)) => databases.push(database),
            Ok(None) => return,
            Err(error) => panic!("the postgres determinism test needs PostgreSQL: {error}"),
        }
    }
    let rules = anquan_domain::rules::builtin_v1().unwrap();
    let log = enterprise_log(&rules).await;
    let first = PostgresReadModelStore::connect(&databases[0].url, 4).await.unwrap();
    let second = PostgresReadModelStore::connect(&databases[1].url, 4).await.unwrap();
    let a = rebuild_digest(log.as_ref(), &first, &rules).await;
    let b = rebuild_digest(log.as_ref(), &second, &rules).await;
    assert_eq!(a, b);
}

/// Puts `store` in the state a build before read-model layouts left it: the fact projections'
/// tables with positions as integers (layout 1, no `projection_layouts` row) and checkpoints
/// part of the way through the log.
async fn previous_layout(store: &dyn ReadModelStore) {
    let projections: [&dyn Projection; 2] = [&ComplianceProjection, &AgencyProjection];
    for projection in projections {
        let ddl = projection
            .schema(store.dialect())
            .replace("position TEXT COLLATE \"C\"", "position BIGINT")
            .replace("position TEXT", "position INTEGER");
        assert_ne!(ddl, projection.schema(store.dialect()), "the layout-1 tables differ");
        store.migrate(&ddl).await.unwrap();
        store
            .apply(Arc::new(anquan_event_store::ProjectionBatch::new(
                projection.name(),
                Vec::new(),
                anquan_event_store::Position::from_sequence(3),
            )))
            .await
            .unwrap();
    }
}

/// A store in the previous layout is dropped and folded again from the start, to the same
/// read models as a fresh store; a layout newer than the build's is refused.
async fn previous_layouts_are_rebuilt(
    fresh: &dyn ReadModelStore,
    old: &dyn ReadModelStore,
    newer: &dyn ReadModelStore,
) {
    let rules = anquan_domain::rules::builtin_v1().unwrap();
    let log = enterprise_log(&rules).await;
    let expected = rebuild_digest(log.as_ref(), fresh, &rules).await;
    previous_layout(old).await;
    assert_eq!(rebuild_digest(log.as_ref(), old, &rules).await, expected);
    let layouts = old
        .query(
            "SELECT projection, layout FROM projection_layouts ORDER BY projection",
            &[],
        )
        .await
        .unwrap();
    let layouts: Vec<(String, i64)> = layouts
        .iter()
        .map(|row| (row.text(0).unwrap(), row.int(1).unwrap()))
        .collect();
    let current = |projection: &dyn Projection| i64::from(projection.layout());
    assert_eq!(
        layouts,
        [
            ("agency".to_owned(), current(&AgencyProjection)),
            ("compliance".to_owned(), current(&ComplianceProjection))
        ]
    );

    // A store written by a later build (this build's layout plus one) is refused.
    let this_build = ComplianceProjection.layout();
    newer
        .migrate(&format!(
            "CREATE TABLE IF NOT EXISTS projection_layouts (projection TEXT PRIMARY KEY, layout INTEGER NOT NULL); \
             INSERT INTO projection_layouts (projection, layout) VALUES ('compliance', {})",
            this_build + 1
        ))
        .await
        .unwrap();
    let projections: Vec<Arc<dyn Projection>> = vec![Arc::new(ComplianceProjection)];
    let refused = fold_to_end(log.as_ref(), newer, &projections, None, &AtomicBool::new(false), |_| {}).await;
    let error = format!("{:?}", refused.unwrap_err());
    assert!(
        error.contains(&format!(
            "layout {}, newer than this build's {this_build}",
            this_build + 1
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_in_a_previous_layout_are_rebuilt_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    let open = async |name: &str| SqliteReadModelStore::open(directory.path().join(name)).await.unwrap();
    let (fresh, old, newer) = (
        open("fresh.sqlite").await,
        open("old.sqlite").await,
        open("newer.sqlite").await,
    );
    previous_layouts_are_rebuilt(&fresh, &old, &newer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_in_a_previous_layout_are_rebuilt_on_postgres() {
    let mut databases = Vec::new();
    for name in [
        "postgres layout test (fresh)",
        "postgres layout test (old)",
        "postgres layout test (newer)",
    ] {
        match anquan_event_store_postgres::testing::fresh_database(name).await {
            Ok(Some(database)) => databases.push(database),
            Ok(None) => return,
            Err(error) => panic!("the postgres layout test needs PostgreSQL: {error}"),
        }
    }
    let mut stores = Vec::new();
    for database in &databases {
        stores.push(PostgresReadModelStore::connect(&database.url, 4).await.unwrap());
    }
    previous_layouts_are_rebuilt(&stores[0], &stores[1], &stores[2]).await;
}
