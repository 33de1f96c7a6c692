//! The log the projection benchmarks fold: enterprises register, upload documents round by
//! round and have every document reviewed (7 of every 10 approved, the others returned), so
//! the enterprises' events interleave in the global log as a city's clients would write them.
//! Shared by `compliance_catch_up` and `postgres_projection` (each includes it as a module).

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use anquan_domain::enterprise::event::{DocumentApproved, DocumentReturned, DocumentUploaded, EnterpriseRegistered};
use anquan_domain::enterprise::{Coverage, FileRef, enterprise_id_for};
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag};
use anquan_domain::{
    Actor, CommandId, DocumentId, Event, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId,
};
use anquan_event_store::{AppendMetadata, AppendRequest, EventStore, NewEvent, StreamId, StreamState};

/// Requirement items the documents are uploaded for.
const REQUIREMENTS: [&str; 5] = [
    "R01.responsibility_system",
    "R04.training_records",
    "R07.insurance_policy",
    "R09.monthly_self_check",
    "R10.drill",
];
const TOWNS: [&str; 5] = ["硖石街道", "海洲街道", "许村镇", "长安镇", "袁花镇"];

/// How big a log is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CityLog {
    pub(crate) enterprises: usize,
    pub(crate) documents_per_enterprise: usize,
}

impl CityLog {
    /// Events in the log: a registration per enterprise, its uploads and one review per upload.
    pub(crate) const fn events(self) -> usize {
        self.enterprises * (1 + 2 * self.documents_per_enterprise)
    }

    /// Appends the log to `store`: every enterprise registers, then uploads round by round,
    /// then every document is reviewed; each round's appends (one per enterprise) are in
    /// flight at once, so a store that commits in groups does.
    pub(crate) async fn fill<S: EventStore + ?Sized>(self, store: &S) {
        let reviewer = Actor {
            user_id: UserId::parse("town-reviewer").expect("a valid user id"),
            role: Role::CityAdmin,
        };
        let mut enterprises = Vec::with_capacity(self.enterprises);
        let mut requests = Vec::with_capacity(self.enterprises);
        for serial in 0..self.enterprises {
            let (enterprise, event) = registration(serial);
            requests.push(request(&enterprise.stream, &reviewer, &event));
            enterprises.push(enterprise);
        }
        append_round(store, requests).await;
        for round in 0..self.documents_per_enterprise {
            let mut requests = Vec::with_capacity(self.enterprises);
            for enterprise in &mut enterprises {
                let (document_id, event) = upload(round);
                enterprise.documents.push(document_id);
                requests.push(request(&enterprise.stream, &enterprise.owner, &event));
            }
            append_round(store, requests).await;
        }
        for round in 0..self.documents_per_enterprise {
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
}

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
        command: Some(anquan_event_store::CommandKey {
            id: CommandId::from_uuid(Uuid::now_v7()),
            digest: anquan_event_store::CommandDigest::of_bytes(b"bench"),
        }),
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
            comment: round.is_multiple_of(2).then(|| "材料齐全，审核通过".to_owned()),
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

async fn append_round<S: EventStore + ?Sized>(store: &S, requests: Vec<AppendRequest>) {
    let appends = requests
        .into_iter()
        .map(|request| async move { store.append(request).await.expect("append") });
    futures::future::join_all(appends).await;
}
