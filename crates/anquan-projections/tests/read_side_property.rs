//! The contract between the write side and the read side, as a property: whatever sequence of
//! commands clients send, with whatever extreme values (the ends of chrono's calendar, the
//! edges of the platform's window, 64-bit amounts, ids shared between streams), every event
//! `decide` accepts, and every stored sample of every event schema version, projects into the
//! SQLite and PostgreSQL read models without error; the rows do not depend on where the pages
//! of a fold end (pages of 1, 7 and 30,000 events give the same dump); and every query over the
//! result answers, at any instant in the window.
//!
//! Bounded: `ANQUAN_PROPTEST_CASES` cases (default 48) on SQLite, a quarter of them also on
//! PostgreSQL when it is configured.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test on any error"
)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

use anquan_domain::agency::state::AgencyState;
use anquan_domain::agency::{
    AgencyCommand, AgencyProfile, FeeBand, ProposeContract, RegisterAgency, TerminateContract,
};
use anquan_domain::bounds::{INSTANT_END, INSTANT_MIN};
use anquan_domain::enterprise::event::{HazardCategory, HazardLevel, HazardSource};
use anquan_domain::enterprise::supervision::{ExtendHazardDeadline, NewHazard, RecordHazard, ReportAccident};
use anquan_domain::enterprise::{
    CloseEnterprise, ClosureKind, Coverage, EnterpriseCommand, EnterpriseFile, FileRef, PublicToken,
    RegisterEnterprise, ReopenEnterprise, ReviewDecision, ReviewDocument, RotatePublicToken, UploadDocument,
    enterprise_id_for,
};
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag, RuleSet};
use anquan_domain::{
    Actor, AgencyId, Cadence, ContractId, DecisionContext, DocumentId, EnterpriseId, HazardId, Period, RequirementCode,
    Role, Town, UnifiedSocialCreditCode, UserId,
};
use anquan_event_store::execute::{Aggregate, CommandEnvelope, execute};
use anquan_event_store::{
    AppendMetadata, AppendRequest, EventStore, InMemoryEventStore, NewEvent, ReadModelStore, RecordedEvent, StreamId,
    StreamState,
};
use anquan_event_store_postgres::PostgresReadModelStore;
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::compliance::{self, HazardFilter, SummaryFilter};
use anquan_projections::metrics::{Snapshot, load_facts};
use anquan_projections::rule_sets::rebuild::fold_to_end_in_pages;
use anquan_projections::{
    AgencyProjection, BatchStatements, ComplianceProjection, LogTallyProjection, Projection, agency, dump_tables,
};

/// Enterprises, agencies and ids are drawn from small pools, so ids collide across streams.
const ENTERPRISES: usize = 3;
const AGENCIES: usize = 2;
const IDS: u128 = 3;

/// One client command, with indexes into the pools.
#[derive(Debug, Clone)]
enum Op {
    Register {
        enterprise: usize,
        staff: u32,
        revenue: u64,
    },
    Upload {
        enterprise: usize,
        document: u128,
        requirement: usize,
        coverage: CoverageChoice,
    },
    Review {
        enterprise: usize,
        document: u128,
        approve: bool,
    },
    Hazard {
        enterprise: usize,
        hazard: u128,
        deadline: Option<DateTime<Utc>>,
    },
    Extend {
        enterprise: usize,
        hazard: u128,
        deadline: DateTime<Utc>,
    },
    Accident {
        enterprise: usize,
        occurred_at: DateTime<Utc>,
        fatalities: u32,
    },
    /// Issue or replace the enterprise's public token, the `token`th of its own few (the API
    /// draws tokens from a CSPRNG, so two enterprises never share one; one enterprise may get
    /// a token back that it had before).
    RotateToken {
        enterprise: usize,
        token: u128,
    },
    /// Close the enterprise, or reopen it when `reopen`, effective at the instant if given.
    Close {
        enterprise: usize,
        reopen: bool,
        effective_at: Option<DateTime<Utc>>,
    },
    RegisterAgency {
        agency: usize,
        min_yuan: u64,
        max_yuan: u64,
    },
    Sign {
        agency: usize,
        contract: u128,
        enterprise: usize,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        fee: u64,
    },
    Terminate {
        agency: usize,
        contract: u128,
    },
}

#[derive(Debug, Clone)]
enum CoverageChoice {
    Once,
    Validity(DateTime<Utc>, DateTime<Utc>),
    Period(i32),
}

const REQUIREMENTS: [&str; 4] = [
    "R01.responsibility_system",
    "R04.leader_certificates",
    "R16.safety_agreement",
    "R10.drill",
];

/// Instants a client may send: the ends of chrono's calendar and of what the stores hold, the
/// edges of the window, and anything in between.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let edges = vec![
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        Utc.with_ymd_and_hms(-4714, 11, 24, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
        INSTANT_MIN - Duration::microseconds(1),
        INSTANT_MIN,
        INSTANT_END - Duration::microseconds(1),
        INSTANT_END,
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
        now(0) + Duration::days(30),
        now(0) - Duration::days(400),
    ];
    let min = DateTime::<Utc>::MIN_UTC.timestamp_micros();
    let max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
    prop_oneof![
        3 => proptest::sample::select(edges),
        1 => (min..=max).prop_map(|micros| DateTime::from_timestamp_micros(micros).unwrap()),
        2 => (INSTANT_MIN.timestamp_micros()..INSTANT_END.timestamp_micros())
            .prop_map(|micros| DateTime::from_timestamp_micros(micros).unwrap()),
    ]
}

fn big() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(0),
        any::<u64>(),
        0..20_000_u64
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let enterprise = 0..ENTERPRISES;
    let id = 0..IDS;
    prop_oneof![
        2 => (enterprise.clone(), any::<u32>(), big())
            .prop_map(|(enterprise, staff, revenue)| Op::Register { enterprise, staff, revenue }),
        4 => (enterprise.clone(), id.clone(), prop_oneof![
                // Mostly records the rules accept, so reviews and batches have work to do.
                3 => Just((0, CoverageChoice::Once)),
                2 => (instant(), instant()).prop_map(|(from, until)| (2, CoverageChoice::Validity(from, until))),
                1 => (instant(), instant()).prop_map(|(from, until)| (1, CoverageChoice::Validity(from, until))),
                1 => prop_oneof![Just(1970), Just(2198), Just(2199), Just(9999), 2020..2030_i32]
                    .prop_map(|year| (3, CoverageChoice::Period(year))),
            ])
            .prop_map(|(enterprise, document, (requirement, coverage))| (enterprise, document, requirement, coverage))
            .prop_map(|(enterprise, document, requirement, coverage)| Op::Upload { enterprise, document, requirement, coverage }),
        2 => (enterprise.clone(), id.clone(), any::<bool>())
            .prop_map(|(enterprise, document, approve)| Op::Review { enterprise, document, approve }),
        2 => (enterprise.clone(), id.clone(), proptest::option::of(instant()))
            .prop_map(|(enterprise, hazard, deadline)| Op::Hazard { enterprise, hazard, deadline }),
        1 => (enterprise.clone(), id.clone(), instant())
            .prop_map(|(enterprise, hazard, deadline)| Op::Extend { enterprise, hazard, deadline }),
        1 => (enterprise.clone(), instant(), any::<u32>())
            .prop_map(|(enterprise, occurred_at, fatalities)| Op::Accident { enterprise, occurred_at, fatalities }),
        1 => (enterprise.clone(), any::<bool>(), proptest::option::of(instant()))
            .prop_map(|(enterprise, reopen, effective_at)| Op::Close { enterprise, reopen, effective_at }),
        1 => (enterprise.clone(), id.clone()).prop_map(|(enterprise, token)| Op::RotateToken { enterprise, token }),
        1 => (0..AGENCIES, big(), big())
            .prop_map(|(agency, min_yuan, max_yuan)| Op::RegisterAgency { agency, min_yuan, max_yuan }),
        2 => (0..AGENCIES, id.clone(), enterprise, instant(), instant(), big())
            .prop_map(|(agency, contract, enterprise, from, until, fee)| Op::Sign { agency, contract, enterprise, from, until, fee }),
        1 => (0..AGENCIES, id).prop_map(|(agency, contract)| Op::Terminate { agency, contract }),
    ]
}

/// The server's clock for the `n`th command: in the window, moving on an hour a command.
fn now(n: usize) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap() + Duration::hours(i64::try_from(n).unwrap())
}

fn credit_code(enterprise: usize) -> UnifiedSocialCreditCode {
    UnifiedSocialCreditCode::with_check_character(&format!("91330481MA28A0X{enterprise:02}")).unwrap()
}

fn enterprise_id(enterprise: usize) -> EnterpriseId {
    enterprise_id_for(&credit_code(enterprise))
}

fn agency_id(agency: usize) -> AgencyId {
    AgencyId(Uuid::from_u128(0xa9e0_0000 + agency as u128))
}

/// An id from the shared pool: the same values in every stream.
fn pooled(n: u128) -> Uuid {
    Uuid::from_u128(0x1d00_0000 + n)
}

fn admin() -> Actor {
    Actor {
        user_id: UserId::parse("city-admin").unwrap(),
        role: Role::CityAdmin,
    }
}

fn rules() -> RuleSet {
    anquan_domain::rules::builtin_v1().unwrap()
}

fn file(n: u128) -> FileRef {
    FileRef {
        sha256: format!("{n:064x}"),
        size_bytes: 1024,
        media_type: "application/pdf".into(),
        file_name: "record.pdf".into(),
    }
}

fn enterprise_command(op: &Op) -> Option<EnterpriseCommand> {
    Some(match op.clone() {
        Op::Register {
            enterprise,
            staff,
            revenue,
        } => EnterpriseCommand::Register(RegisterEnterprise {
            name: format!("企业{enterprise}"),
            credit_code: credit_code(enterprise),
            town: Town::parse(if enterprise % 2 == 0 { "许村" } else { "长安" }).unwrap(),
            industry: "纺织".into(),
            profile: EnterpriseProfile {
                staff_count: staff,
                annual_revenue_10k_yuan: revenue,
                flags: [ProfileFlag::ContractsOrLeases, ProfileFlag::SpecialEquipment].into(),
            },
        }),
        Op::Upload {
            enterprise,
            document,
            requirement,
            coverage,
        } => EnterpriseCommand::UploadDocument(UploadDocument {
            enterprise_id: enterprise_id(enterprise),
            document_id: DocumentId(pooled(document)),
            requirement: RequirementCode::parse(REQUIREMENTS[requirement]).unwrap(),
            title: "记录".into(),
            file: file(document),
            coverage: match coverage {
                CoverageChoice::Once => Coverage::Once,
                CoverageChoice::Validity(valid_from, valid_until) => Coverage::Validity {
                    valid_from,
                    valid_until,
                },
                CoverageChoice::Period(year) => Coverage::Period {
                    period: Period::new(Cadence::Yearly, year, 1).ok()?,
                },
            },
        }),
        Op::Review {
            enterprise,
            document,
            approve,
        } => EnterpriseCommand::ReviewDocument(ReviewDocument {
            enterprise_id: enterprise_id(enterprise),
            document_id: DocumentId(pooled(document)),
            decision: if approve {
                ReviewDecision::Approve { comment: None }
            } else {
                ReviewDecision::Return {
                    feedback: "盖章缺失".into(),
                }
            },
        }),
        Op::Hazard {
            enterprise,
            hazard,
            deadline,
        } => EnterpriseCommand::RecordHazard(RecordHazard {
            enterprise_id: enterprise_id(enterprise),
            source: HazardSource::SelfInspection,
            hazard: NewHazard {
                hazard_id: HazardId(pooled(hazard)),
                category: HazardCategory::Fire,
                level: HazardLevel::General,
                severity: None,
                criterion: None,
                basis: None,
                description: "消防通道堵塞".into(),
                photos: Vec::new(),
                deadline,
            },
        }),
        Op::Extend {
            enterprise,
            hazard,
            deadline,
        } => EnterpriseCommand::ExtendHazardDeadline(ExtendHazardDeadline {
            enterprise_id: enterprise_id(enterprise),
            hazard_id: HazardId(pooled(hazard)),
            deadline,
            reason: "设备到货延迟".into(),
        }),
        Op::Accident {
            enterprise,
            occurred_at,
            fatalities,
        } => EnterpriseCommand::ReportAccident(ReportAccident {
            enterprise_id: enterprise_id(enterprise),
            accident_id: Uuid::from_u128(occurred_at.timestamp_micros().unsigned_abs().into()),
            occurred_at,
            fatalities,
            description: "机械伤害".into(),
        }),
        Op::RotateToken { enterprise, token } => EnterpriseCommand::RotatePublicToken(RotatePublicToken {
            enterprise_id: enterprise_id(enterprise),
            token: PublicToken::parse(&pooled((enterprise as u128) << 8 | token).simple().to_string()).unwrap(),
        }),
        Op::Close {
            enterprise,
            reopen: false,
            effective_at,
        } => EnterpriseCommand::Close(CloseEnterprise {
            enterprise_id: enterprise_id(enterprise),
            kind: ClosureKind::Deregistered,
            reason: "营业执照注销".into(),
            effective_at,
        }),
        Op::Close {
            enterprise,
            reopen: true,
            effective_at,
        } => EnterpriseCommand::Reopen(ReopenEnterprise {
            enterprise_id: enterprise_id(enterprise),
            reason: "恢复经营".into(),
            effective_at,
        }),
        _ => return None,
    })
}

fn agency_command(op: &Op) -> Option<AgencyCommand> {
    Some(match op.clone() {
        Op::RegisterAgency {
            agency,
            min_yuan,
            max_yuan,
        } => AgencyCommand::Register(RegisterAgency {
            agency_id: agency_id(agency),
            profile: AgencyProfile {
                name: format!("服务机构{agency}"),
                licence: None,
                service_scope: vec!["安全管家".into()],
                service_standards: "每季度上门一次".into(),
                fee_band: FeeBand { min_yuan, max_yuan },
                contact_phone: None,
            },
        }),
        Op::Sign {
            agency,
            contract,
            enterprise,
            from,
            until,
            fee,
        } => AgencyCommand::ProposeContract(ProposeContract {
            agency_id: agency_id(agency),
            contract_id: ContractId(pooled(contract)),
            enterprise_id: enterprise_id(enterprise),
            enterprise_town: Town::parse(if enterprise % 2 == 0 { "许村" } else { "长安" }).unwrap(),
            valid_from: from,
            valid_until: until,
            services: vec!["安全管家".into()],
            visits_promised: 4,
            fee_yuan: fee,
        }),
        Op::Terminate { agency, contract } => AgencyCommand::TerminateContract(TerminateContract {
            agency_id: agency_id(agency),
            contract_id: ContractId(pooled(contract)),
            reason: "企业停产".into(),
        }),
        _ => return None,
    })
}

async fn decide<A: Aggregate>(store: &InMemoryEventStore, rules: &RuleSet, n: usize, command: &A::Command) {
    let actor = admin();
    let context = DecisionContext {
        actor: &actor,
        rules,
        now: now(n),
    };
    let envelope = CommandEnvelope {
        command_id: None,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        expected_version: None,
    };
    // A refusal is the domain's answer; only accepted commands reach the log.
    let _ = execute::<A>(store, command, &context, &envelope).await;
}

/// The enterprise `EnterpriseRegistered.v1.json` registers.
const FIXTURE_ENTERPRISE: Uuid = Uuid::from_u128(0x0192_f0c4_8b1e_5d8c_9a7e_3c2b_1a0f_9e8d);

/// The event types of the agency stream.
const AGENCY_EVENTS: [&str; 19] = [
    "AgencyRegistered",
    "AgencyProfileChanged",
    "StaffReported",
    "ContractSigned",
    "ContractProposed",
    "ContractConfirmed",
    "ContractRejected",
    "ContractFiled",
    "ContractTerminated",
    "ServiceReported",
    "ServiceRated",
    "ReportSpotChecked",
    "AgencyComplaintFounded",
    "AgencyWarned",
    "AgencyMisconductFound",
    "CreditGraded",
    "CreditRegraded",
    "AgencyBlacklisted",
    "AgencyDelisted",
];

#[derive(serde::Deserialize)]
struct Fixture {
    event_type: String,
    schema_version: u32,
    data: serde_json::Value,
}

/// Appends the stored sample of every event type and schema version, each to a stream of its
/// aggregate, as an old log would hold them.
async fn append_fixtures(store: &InMemoryEventStore) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../anquan-domain/tests/fixtures/events");
    let mut paths: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // Registrations first, as `decide` orders every stream.
    paths.sort_by_key(|path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        (!name.contains("Registered."), name)
    });
    for path in paths {
        let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let event =
            anquan_domain::Event::decode(&fixture.event_type, fixture.schema_version, &fixture.data.to_string())
                .unwrap();
        let stream_id = match event.event_type() {
            "RuleSetPublished" | "RuleSetPromoted" => StreamId::parse("rulesets").unwrap(),
            "AnchorTaken" => StreamId::parse("anchors").unwrap(),
            agency if AGENCY_EVENTS.contains(&agency) => StreamId::for_uuid("agency", agency_id(AGENCIES).0),
            // The projection keys a registration by the id in its data, as `decide` writes it.
            _ => StreamId::for_uuid("enterprise", FIXTURE_ENTERPRISE),
        };
        store
            .append(AppendRequest {
                stream_id,
                expected: StreamState::Any,
                command: None,
                metadata: AppendMetadata {
                    occurred_at: now(0),
                    actor: admin(),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                },
                events: vec![NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: fixture.event_type,
                    schema_version: fixture.schema_version,
                    data: fixture.data.to_string(),
                }],
            })
            .await
            .unwrap();
    }
}

/// Every value an accepted event carries is inside the bounds the read side is built for: each
/// instant in the platform's window, each number within a signed 64-bit column. (The read
/// models would also store an old event's value outside them, clamped; that must never be
/// needed for an event `decide` accepts.)
fn assert_within_bounds(log: &[RecordedEvent]) {
    fn walk(value: &serde_json::Value, at: &str) {
        match value {
            serde_json::Value::String(text) => {
                if let Ok(instant) = text.parse::<DateTime<Utc>>() {
                    assert!(
                        anquan_domain::bounds::instant_in_window(instant),
                        "{at}: {text} is outside the window"
                    );
                }
            }
            serde_json::Value::Number(number) => {
                assert!(
                    number.as_i64().is_some() || number.is_f64(),
                    "{at}: {number} does not fit an i64"
                );
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, at)),
            serde_json::Value::Object(fields) => fields.values().for_each(|field| walk(field, at)),
            serde_json::Value::Bool(_) | serde_json::Value::Null => {}
        }
    }
    for recorded in log {
        let data: serde_json::Value = serde_json::from_str(&recorded.data).unwrap();
        walk(&data, &format!("{} {}", recorded.stream_id, recorded.event_type));
    }
}

fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(ComplianceProjection),
        Arc::new(AgencyProjection),
        Arc::new(LogTallyProjection),
    ]
}

/// Every statement the compliance and agency projections write for an event names the rows it
/// touches: a statement without a footprint runs alone and splits every other statement's runs
/// on PostgreSQL, which made rebuilds 1.4x slower while token rotations had none. (The tally's
/// one increment per event type and page is in a batch of its own.)
fn assert_every_statement_declares_its_rows(log: &[RecordedEvent]) {
    let fact_projections: [&dyn Projection; 2] = [&ComplianceProjection, &AgencyProjection];
    for event in log {
        let decoded = event.decode().unwrap();
        for projection in fact_projections {
            let mut out = BatchStatements::new();
            projection.apply(event, &decoded, &mut out).unwrap();
            for statement in out.into_statements() {
                assert!(
                    statement.footprint.is_some(),
                    "{} writes {:?} for {} without a footprint",
                    projection.name(),
                    statement.sql,
                    event.event_type
                );
            }
        }
    }
}

async fn fold(events: &InMemoryEventStore, read_models: &dyn ReadModelStore, page_events: usize) -> String {
    fold_to_end_in_pages(
        events,
        read_models,
        &projections(),
        page_events,
        &AtomicBool::new(false),
        |_| {},
    )
    .await
    .unwrap_or_else(|error| {
        panic!(
            "the fold failed in pages of {page_events}: {}",
            anquan_event_store::error_chain(&error)
        )
    });
    let mut dump = String::new();
    for projection in projections() {
        dump.push_str(&dump_tables(read_models, projection.as_ref()).await.unwrap());
    }
    dump
}

/// Every query the API makes, at instants across the window: each must answer.
async fn query_everything(read_models: &dyn ReadModelStore, rules: &RuleSet) {
    let instants = [INSTANT_MIN, now(0), now(1_000), INSTANT_END - Duration::microseconds(1)];
    let enterprises = (0..ENTERPRISES)
        .map(enterprise_id)
        .chain([EnterpriseId(FIXTURE_ENTERPRISE)]);
    for enterprise in enterprises {
        let file = compliance::enterprise_file(read_models, enterprise)
            .await
            .unwrap_or_else(|error| panic!("enterprise {enterprise}'s file: {error}"));
        if let Some(file) = file {
            for at in instants {
                anquan_domain::compliance::evaluate(&file, rules, at);
                anquan_domain::risk::assess(&file, rules, at);
                anquan_domain::risk::colour_history(&file, rules, INSTANT_MIN, at);
            }
        }
        agency::contracts_of_enterprise(read_models, enterprise).await.unwrap();
        agency::reports_of_enterprise(read_models, enterprise).await.unwrap();
    }
    for agency_index in 0..=AGENCIES {
        agency::contracts_of_agency(read_models, agency_id(agency_index))
            .await
            .unwrap();
        agency::reports_of_agency(read_models, agency_id(agency_index))
            .await
            .unwrap();
        agency::agency(read_models, agency_id(agency_index)).await.unwrap();
    }
    agency::agencies(read_models).await.unwrap();
    let facts = load_facts(read_models).await.unwrap();
    for at in instants {
        compliance::enterprise_summaries(read_models, &SummaryFilter::default(), rules, at, 100, None)
            .await
            .unwrap();
        compliance::hazards(read_models, &HazardFilter::default(), at, 100, None)
            .await
            .unwrap();
        compliance::overdue_queue(read_models, None, at, 100, None)
            .await
            .unwrap();
        compliance::colour_distribution(read_models, rules, None, at)
            .await
            .unwrap();
        compliance::supervision_plan(read_models, rules, None, at, at)
            .await
            .unwrap();
        agency::service_coverage(read_models, at, None).await.unwrap();
        Snapshot::compute(rules, &facts, at);
    }
    compliance::review_queue(read_models, None, 100, None).await.unwrap();
}

fn cases() -> u32 {
    std::env::var("ANQUAN_PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(48)
}

#[test]
fn every_accepted_command_projects_and_every_query_answers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rules = rules();
    let postgres = std::env::var("ANQUAN_TEST_POSTGRES_URL").is_ok();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            runtime.block_on(async {
                let events = InMemoryEventStore::new();
                append_fixtures(&events).await;
                // Every enterprise and agency registered first, so that most commands reach
                // their rules; the random ones may register again with extreme profiles.
                let registrations = (0..ENTERPRISES)
                    .map(|enterprise| Op::Register {
                        enterprise,
                        staff: 50,
                        revenue: 800,
                    })
                    .chain((0..AGENCIES).map(|agency| Op::RegisterAgency {
                        agency,
                        min_yuan: 1_000,
                        max_yuan: 9_000,
                    }));
                let ops: Vec<Op> = registrations.chain(ops).collect();
                for (n, op) in ops.iter().enumerate() {
                    if let Some(command) = enterprise_command(op) {
                        decide::<EnterpriseFile>(&events, &rules, n, &command).await;
                    }
                    if let Some(command) = agency_command(op) {
                        decide::<AgencyState>(&events, &rules, n, &command).await;
                    }
                }
                // The whole log, in one read: both checks below must see every event.
                let log = events.read_all(None, anquan_event_store::READ_BATCH_MAX).await.unwrap();
                assert!(log.len() < anquan_event_store::READ_BATCH_MAX, "the log fits one read");
                assert_within_bounds(&log);
                assert_every_statement_declares_its_rows(&log);
                let mut dumps = Vec::new();
                for page_events in [1, 7, 30_000] {
                    let directory = tempfile::tempdir().unwrap();
                    let read_models = SqliteReadModelStore::open(directory.path().join("read-models.db"))
                        .await
                        .unwrap();
                    dumps.push(fold(&events, &read_models, page_events).await);
                    if page_events == 7 {
                        query_everything(&read_models, &rules).await;
                    }
                }
                assert_eq!(dumps[0], dumps[1], "pages of 1 and 7 events fold different rows");
                assert_eq!(dumps[0], dumps[2], "pages of 1 and 30,000 events fold different rows");
                if postgres && case % 4 == 1 {
                    // Pages of one event run nearly every statement alone; pages of 30,000 run
                    // most of them together, over arrays (`anquan_event_store::runs`). JSON reads
                    // back normalised from PostgreSQL, so its dumps compare with each other.
                    let mut postgres_dumps = Vec::new();
                    for page_events in [1, 7, 30_000] {
                        let test = format!("read_side_property_{case}_{page_events}");
                        let database = anquan_event_store_postgres::testing::fresh_database(&test)
                            .await
                            .unwrap()
                            .unwrap();
                        let read_models = PostgresReadModelStore::connect(&database.url, 2).await.unwrap();
                        postgres_dumps.push(fold(&events, &read_models, page_events).await);
                        if page_events == 7 {
                            query_everything(&read_models, &rules).await;
                        }
                    }
                    assert_eq!(
                        postgres_dumps[0], postgres_dumps[1],
                        "PostgreSQL: pages of 1 and 7 events fold different rows"
                    );
                    assert_eq!(
                        postgres_dumps[0], postgres_dumps[2],
                        "PostgreSQL: pages of 1 and 30,000 events fold different rows"
                    );
                }
            });
            Ok(())
        })
        .unwrap();
}
