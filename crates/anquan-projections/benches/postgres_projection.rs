//! Projection throughput into PostgreSQL read models, with the same figure for SQLite beside
//! it: `ProjectionRunner::rebuild` of the compliance projection folds one log of 100,000
//! realistic enterprise events (registrations, `DocumentUploaded`, `DocumentApproved` and
//! `DocumentReturned`, interleaved across 4,000 enterprises) into each read-model store.
//!
//! The log lives in the in-memory event store, so both figures read the very same events at
//! memory speed and differ only in the read-model store they write (SQLite in WAL mode in a
//! temporary file; PostgreSQL in a fresh `anquan_test_<uuid>` database, dropped at the end).
//! Criterion reports events/s per backend:
//!
//! ```text
//! ANQUAN_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p anquan-projections --bench postgres_projection
//! ```
//!
//! Without `ANQUAN_TEST_POSTGRES_URL` only the SQLite figure is measured (the PostgreSQL one
//! prints why it is skipped); with `ANQUAN_TEST_REQUIRE_POSTGRES=1` a missing server fails.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops at its first failure"
)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use uuid::Uuid;

use anquan_domain::enterprise::event::{DocumentApproved, DocumentReturned, DocumentUploaded, EnterpriseRegistered};
use anquan_domain::enterprise::{Coverage, FileRef, enterprise_id_for};
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag};
use anquan_domain::{
    Actor, CommandId, DocumentId, Event, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId,
};
use anquan_event_store::{
    AppendMetadata, AppendRequest, EventStore, InMemoryEventStore, NewEvent, ReadModelStore, StreamId, StreamState,
};
use anquan_event_store_postgres::PostgresReadModelStore;
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::{ComplianceProjection, ProjectionRunner};

/// Enterprises in the log.
const ENTERPRISES: usize = 4_000;
/// Documents each enterprise uploads; 7 of every 10 are approved, the others returned.
const DOCUMENTS_PER_ENTERPRISE: usize = 12;
/// Events in the log: a registration, the uploads and one review per upload.
const LOG_EVENTS: usize = ENTERPRISES * (1 + 2 * DOCUMENTS_PER_ENTERPRISE);
/// Requirement items the documents are uploaded for.
const REQUIREMENTS: [&str; 5] = [
    "R01.responsibility_system",
    "R04.training_records",
    "R07.insurance_policy",
    "R09.monthly_self_check",
    "R10.drill",
];
const TOWNS: [&str; 5] = ["硖石街道", "海洲街道", "许村镇", "长安镇", "袁花镇"];

fn day(n: usize) -> DateTime<Utc> {
    let start = Utc
        .with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .expect("a valid date");
    start + chrono::Duration::days(i64::try_from(n).expect("a small day number"))
}

fn request(stream: &StreamId, actor: &Actor, event: &Event) -> AppendRequest {
    AppendRequest {
        stream_id: stream.clone(),
        expected: StreamState::Any,
        command_id: Some(CommandId::from_uuid(Uuid::now_v7())),
        metadata: AppendMetadata {
            occurred_at: Utc::now(),
            actor: actor.clone(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events: vec![NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            data: event.encode_data(),
        }],
    }
}

struct Enterprise {
    stream: StreamId,
    owner: Actor,
    documents: Vec<DocumentId>,
}

fn registration(serial: usize) -> (Enterprise, Event) {
    let credit_code =
        UnifiedSocialCreditCode::with_check_character(&format!("91330481MA{serial:07}")).expect("a valid credit code");
    let id = enterprise_id_for(&credit_code);
    let event = Event::EnterpriseRegistered(EnterpriseRegistered {
        enterprise_id: id,
        name: format!("海宁市第{serial}纺织印染有限公司"),
        credit_code,
        town: Town::parse(TOWNS[serial % TOWNS.len()]).expect("a valid town"),
        industry: "纺织".to_owned(),
        profile: EnterpriseProfile {
            staff_count: 40 + u32::try_from(serial % 200).expect("small"),
            annual_revenue_10k_yuan: 800 + u64::try_from(serial).expect("small"),
            flags: [ProfileFlag::SpecialEquipment].into(),
        },
        registered_at: day(0),
    });
    let enterprise = Enterprise {
        stream: StreamId::for_uuid("enterprise", id.as_uuid()),
        owner: Actor {
            user_id: UserId::parse(&format!("owner-{serial}")).expect("a valid user id"),
            role: Role::Enterprise { enterprise_id: id },
        },
        documents: Vec::new(),
    };
    (enterprise, event)
}

fn upload(round: usize) -> (DocumentId, Event) {
    let document_id = DocumentId::from_uuid(Uuid::now_v7());
    let coverage = if round.is_multiple_of(2) {
        Coverage::Once
    } else {
        Coverage::Validity {
            valid_from: day(round),
            valid_until: day(round + 366),
        }
    };
    let event = Event::DocumentUploaded(DocumentUploaded {
        document_id,
        requirement: RequirementCode::parse(REQUIREMENTS[round % REQUIREMENTS.len()]).expect("a valid requirement"),
        title: format!("2026年度安全生产记录第{round}份（含现场照片、签到表、评估报告）"),
        file: FileRef {
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
            size_bytes: 2_482_113,
            media_type: "application/pdf".to_owned(),
            file_name: format!("safety-record-{round}.pdf"),
        },
        coverage,
        uploaded_at: day(round + 1),
    });
    (document_id, event)
}

fn review(round: usize, document_id: DocumentId) -> Event {
    if round % 10 < 7 {
        Event::DocumentApproved(DocumentApproved {
            document_id,
            comment: (round.is_multiple_of(2)).then(|| "材料齐全，审核通过".to_owned()),
            reviewed_at: day(round + 3),
        })
    } else {
        Event::DocumentReturned(DocumentReturned {
            document_id,
            feedback: "签到表缺少负责人签字，请补充后重新上传".to_owned(),
            reviewed_at: day(round + 3),
        })
    }
}

async fn append_round(store: &InMemoryEventStore, requests: Vec<AppendRequest>) {
    for request in requests {
        store.append(request).await.expect("append");
    }
}

/// Writes the log: every enterprise registers, then uploads round by round, then every
/// document is reviewed, so the enterprises' events interleave in the global log.
async fn fill(store: &InMemoryEventStore) {
    let reviewer = Actor {
        user_id: UserId::parse("town-reviewer").expect("a valid user id"),
        role: Role::CityAdmin,
    };
    let mut enterprises = Vec::with_capacity(ENTERPRISES);
    let mut requests = Vec::with_capacity(ENTERPRISES);
    for serial in 0..ENTERPRISES {
        let (enterprise, event) = registration(serial);
        requests.push(request(&enterprise.stream, &reviewer, &event));
        enterprises.push(enterprise);
    }
    append_round(store, requests).await;
    for round in 0..DOCUMENTS_PER_ENTERPRISE {
        let mut requests = Vec::with_capacity(ENTERPRISES);
        for enterprise in &mut enterprises {
            let (document_id, event) = upload(round);
            enterprise.documents.push(document_id);
            requests.push(request(&enterprise.stream, &enterprise.owner, &event));
        }
        append_round(store, requests).await;
    }
    for round in 0..DOCUMENTS_PER_ENTERPRISE {
        let requests = enterprises
            .iter()
            .map(|enterprise| {
                request(
                    &enterprise.stream,
                    &reviewer,
                    &review(round, enterprise.documents[round]),
                )
            })
            .collect();
        append_round(store, requests).await;
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// Measures rebuilds of the compliance projection from `events` into `read_models`.
fn bench_rebuild(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    events: &Arc<InMemoryEventStore>,
    read_models: Arc<dyn ReadModelStore>,
) {
    let runner = ProjectionRunner::new(events.clone(), read_models).with_projection(Arc::new(ComplianceProjection));
    let mut group = c.benchmark_group("projection_into_read_models");
    // One rebuild per sample: a sample is seconds long.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(LOG_EVENTS as u64));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let report = rt
                    .block_on(runner.rebuild(ComplianceProjection::NAME))
                    .expect("rebuild the compliance projection");
                assert_eq!(report.events, LOG_EVENTS as u64);
                total += report.duration;
            }
            total
        });
    });
    group.finish();
}

fn projection_throughput(c: &mut Criterion) {
    let rt = runtime();
    let events = Arc::new(InMemoryEventStore::new());
    rt.block_on(fill(&events));
    eprintln!("log: {LOG_EVENTS} events of {ENTERPRISES} enterprises, in memory");

    let directory = tempfile::tempdir().expect("a temporary directory");
    let sqlite = rt
        .block_on(SqliteReadModelStore::open(directory.path().join("read-models.db")))
        .expect("open the sqlite read models");
    bench_rebuild(c, &rt, "compliance_rebuild_into_sqlite", &events, Arc::new(sqlite));

    let database = match rt.block_on(anquan_event_store_postgres::testing::fresh_database(
        "the postgres read-model benchmark",
    )) {
        Ok(Some(database)) => database,
        Ok(None) => return,
        Err(error) => panic!("the postgres read-model benchmark needs PostgreSQL: {error}"),
    };
    let postgres = rt
        .block_on(PostgresReadModelStore::connect(&database.url, 4))
        .expect("connect the postgres read models");
    bench_rebuild(c, &rt, "compliance_rebuild_into_postgres", &events, Arc::new(postgres));
    // Dropping `database` drops the benchmark's database.
    drop(database);
}

criterion_group!(benches, projection_throughput);
criterion_main!(benches);
