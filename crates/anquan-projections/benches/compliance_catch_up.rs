//! Catch-up throughput of the compliance projection: `ProjectionRunner::rebuild` folds a log of
//! realistic enterprise events (registrations, `DocumentUploaded`, `DocumentApproved` and
//! `DocumentReturned`, interleaved across enterprises as a city's clients would write them)
//! from a SQLite event store into SQLite read models in the same file, as the embedded default
//! deployment does.
//!
//! Run with `cargo bench -p anquan-projections`; criterion reports events/s.
#![expect(clippy::expect_used, reason = "a benchmark stops at its first failure")]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use uuid::Uuid;

use anquan_domain::enterprise::event::{DocumentApproved, DocumentReturned, DocumentUploaded, EnterpriseRegistered};
use anquan_domain::enterprise::{Coverage, FileRef, enterprise_id_for};
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag};
use anquan_domain::{Actor, DocumentId, Event, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId};
use anquan_event_store::{AppendMetadata, AppendRequest, EventStore, NewEvent, StreamId, StreamState};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions, SqliteReadModelStore, Synchronous};
use anquan_projections::{ComplianceProjection, ProjectionRunner};

/// Enterprises in the log.
const ENTERPRISES: usize = 1_000;
/// Documents each enterprise uploads; 7 of every 10 are approved, the others returned.
const DOCUMENTS_PER_ENTERPRISE: usize = 10;
/// Requirement items the documents are uploaded for.
const REQUIREMENTS: [&str; 5] = [
    "R01.responsibility_system",
    "R04.training_records",
    "R07.insurance_policy",
    "R09.monthly_self_check",
    "R10.drill",
];
/// Events in the log: a registration, the uploads and one review per upload.
const LOG_EVENTS: usize = ENTERPRISES * (1 + 2 * DOCUMENTS_PER_ENTERPRISE);

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .expect("a valid date")
        + chrono::Duration::days(n)
}

fn new_event(event: &Event) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        data: event.encode_data(),
    }
}

fn request(stream: &StreamId, actor: &Actor, event: &Event) -> AppendRequest {
    AppendRequest {
        stream_id: stream.clone(),
        expected: StreamState::Any,
        command_id: Some(anquan_domain::CommandId::from_uuid(Uuid::now_v7())),
        metadata: AppendMetadata {
            occurred_at: Utc::now(),
            actor: actor.clone(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events: vec![new_event(event)],
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
    let towns = ["硖石街道", "海洲街道", "许村镇", "长安镇", "袁花镇"];
    let event = Event::EnterpriseRegistered(EnterpriseRegistered {
        enterprise_id: id,
        name: format!("海宁市第{serial}纺织印染有限公司"),
        credit_code,
        town: Town::parse(towns[serial % towns.len()]).expect("a valid town"),
        industry: "纺织".to_owned(),
        profile: EnterpriseProfile {
            staff_count: 40 + (serial % 200) as u32,
            annual_revenue_10k_yuan: 800 + serial as u64,
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
            valid_from: day(round as i64),
            valid_until: day(round as i64 + 366),
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
        uploaded_at: day(round as i64 + 1),
    });
    (document_id, event)
}

fn review(round: usize, document_id: DocumentId) -> Event {
    if round % 10 < 7 {
        Event::DocumentApproved(DocumentApproved {
            document_id,
            comment: round.is_multiple_of(2).then(|| "材料齐全，审核通过".to_owned()),
            reviewed_at: day(round as i64 + 3),
        })
    } else {
        Event::DocumentReturned(DocumentReturned {
            document_id,
            feedback: "签到表缺少负责人签字，请补充后重新上传".to_owned(),
            reviewed_at: day(round as i64 + 3),
        })
    }
}

/// Appends one round of events, one append per enterprise, all in flight at once.
async fn append_round(store: &Arc<SqliteEventStore>, requests: Vec<AppendRequest>) {
    let appends = requests.into_iter().map(|request| {
        let store = Arc::clone(store);
        async move { store.append(request).await.expect("append") }
    });
    futures::future::join_all(appends).await;
}

/// Writes the log: every enterprise registers, then uploads round by round, then every
/// document is reviewed, so the enterprises' events interleave in the global log.
async fn fill(store: &Arc<SqliteEventStore>) {
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
                let document_id = enterprise.documents[round];
                request(&enterprise.stream, &reviewer, &review(round, document_id))
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

fn catch_up(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("anquan.db");
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteEventStore::open(&path, options).expect("open the event store"));
    let runner = rt.block_on(async {
        fill(&store).await;
        let read_models = Arc::new(SqliteReadModelStore::open(&path).await.expect("open the read models"));
        ProjectionRunner::new(store.clone(), read_models).with_projection(Arc::new(ComplianceProjection))
    });
    eprintln!("log: {LOG_EVENTS} events of {ENTERPRISES} enterprises");

    let mut group = c.benchmark_group("projection_catch_up");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(LOG_EVENTS as u64));
    group.bench_function("compliance_rebuild_from_sqlite_into_sqlite", |b| {
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

criterion_group!(benches, catch_up);
criterion_main!(benches);
