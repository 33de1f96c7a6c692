//! The compliance read model against real domain commands: rows, status equal to the status
//! engine over the event stream, drop-and-replay determinism, the review queue and
//! exactly-once batches. Events go to the in-memory store; every test body runs once per
//! read-model backend: a SQLite file (`sqlite::…`) and a fresh PostgreSQL database
//! (`postgres::…`, skipped with a printed reason unless `ANQUAN_TEST_POSTGRES_URL` is set, and
//! failing when `ANQUAN_TEST_REQUIRE_POSTGRES=1` and the server is missing). The last test builds
//! both from the same log and compares their dumps.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test on any error"
)]

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use anquan_domain::compliance::{IndicatorState, evaluate};
use anquan_domain::enterprise::event::{
    CriterionRef, HazardCategory, HazardLevel, HazardSource, InspectionDocument, InspectionDocumentKind, InspectionKind,
};
use anquan_domain::enterprise::supervision::{
    ExtendHazardDeadline, NewHazard, RecordHazard, RecordInspection, ReportAccident, SubmitRectification,
    VerifyRectification,
};
use anquan_domain::enterprise::{
    ChangeEnterpriseProfile, Coverage, EnterpriseCommand, EnterpriseFile, FileRef, RegisterEnterprise, ReviewDecision,
    ReviewDocument, UploadDocument, enterprise_id_for,
};
use anquan_domain::risk;
use anquan_domain::rules::RiskColour;
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag, RuleSet};
use anquan_domain::{
    Actor, DecisionContext, DocumentId, EnterpriseId, IndicatorCode, RequirementCode, Role, Town,
    UnifiedSocialCreditCode, UserId,
};
use anquan_domain::{HazardId, InspectionId};
use anquan_event_store::execute::{CommandEnvelope, execute, load};
use anquan_event_store::{
    AppendMetadata, AppendRequest, EventStore, InMemoryEventStore, NewEvent, Position, ProjectionBatch, ReadModelStore,
    SqlValue, Statement, StreamId, StreamState,
};
use anquan_event_store_postgres::PostgresReadModelStore;
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::compliance::{self, HazardFilter, HazardStateFilter, HazardView, SummaryFilter};
use anquan_projections::{
    BatchStatements, ComplianceProjection, Projection, ProjectionError, ProjectionRunner, ProjectionState, Waited,
    dump_tables, wait_for_position,
};

/// Where the read models of a test live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Expands each test body (an `async fn(Backend)`) into `sqlite::<name>` and
/// `postgres::<name>` tests: one body, every backend.
macro_rules! on_every_backend {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await;
                }
            )+
        }
    };
}

on_every_backend!(
    the_projection_builds_enterprise_profile_and_document_rows,
    the_read_model_file_equals_the_folded_stream_and_gives_the_same_status_at_any_instant,
    as_of_answers_equal_a_replay_of_the_log_cut_at_random_instants,
    hazard_queries_decide_state_overdue_colour_and_plan_at_the_instant,
    summaries_filter_by_town_and_status_and_page_by_enterprise_id,
    the_review_queue_lists_pending_documents_oldest_first_in_pages,
    dropping_and_replaying_gives_identical_rows,
    the_runner_publishes_positions_so_writers_can_wait_for_their_events,
    a_failed_batch_leaves_rows_and_checkpoint_unchanged,
    a_failing_projection_stalls_alone_and_resumes_from_its_failing_event,
    a_store_refusing_one_event_is_narrowed_to_it_and_heals_without_a_restart,
);

/// Opens an empty read-model store on `backend`, with whatever must outlive it (the temporary
/// directory, or the test database dropped at the end). `None`: PostgreSQL is not configured;
/// the reason is printed and the test returns without testing anything.
async fn read_model_store(backend: Backend) -> Option<(Arc<dyn ReadModelStore>, Box<dyn Any + Send>)> {
    match backend {
        Backend::Sqlite => {
            let directory = tempfile::tempdir().unwrap();
            let store = SqliteReadModelStore::open(directory.path().join("anquan.db"))
                .await
                .unwrap();
            Some((Arc::new(store), Box::new(directory)))
        }
        Backend::Postgres => {
            // The test thread is named after the test (`postgres::…`).
            let test = std::thread::current().name().unwrap_or("compliance test").to_owned();
            let database = match anquan_event_store_postgres::testing::fresh_database(&test).await {
                Ok(database) => database?,
                Err(error) => panic!("{test} needs PostgreSQL: {}", anquan_event_store::error_chain(&error)),
            };
            let store = PostgresReadModelStore::connect(&database.url, 4).await.unwrap();
            Some((Arc::new(store), Box::new(database)))
        }
    }
}

fn rules() -> RuleSet {
    anquan_domain::rules::builtin_v1().unwrap()
}

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 10, 9, 0, 0).unwrap() + chrono::Duration::days(n)
}

fn photo(n: u128) -> FileRef {
    FileRef {
        sha256: format!("{n:064x}"),
        size_bytes: 2048,
        media_type: "image/jpeg".into(),
        file_name: format!("photo-{n}.jpg"),
    }
}

fn town(name: &str) -> Town {
    Town::parse(name).unwrap()
}

fn admin(user: &str) -> Actor {
    Actor {
        user_id: UserId::parse(user).unwrap(),
        role: Role::CityAdmin,
    }
}

fn owner(enterprise_id: EnterpriseId) -> Actor {
    Actor {
        user_id: UserId::parse(&format!("owner-{enterprise_id}")).unwrap(),
        role: Role::Enterprise { enterprise_id },
    }
}

struct World {
    events: Arc<InMemoryEventStore>,
    read_models: Arc<dyn ReadModelStore>,
    runner: Arc<ProjectionRunner>,
    rules: RuleSet,
    enterprises: Vec<EnterpriseId>,
    /// Pending documents in upload order: (document, enterprise).
    pending: Vec<DocumentId>,
    /// The hazards of `supervise`: general (closed day 9), major (open), late (overdue after
    /// day 6), own (self-inspection).
    hazards: Vec<HazardId>,
    /// Dropped last: the temporary directory or the test database.
    _guard: Box<dyn Any + Send>,
}

impl World {
    async fn new(backend: Backend) -> Option<World> {
        let (read_models, guard) = read_model_store(backend).await?;
        let events = Arc::new(InMemoryEventStore::new());
        let runner =
            ProjectionRunner::new(events.clone(), read_models.clone()).with_projection(Arc::new(ComplianceProjection));
        Some(World {
            events,
            read_models,
            runner: Arc::new(runner),
            rules: rules(),
            enterprises: Vec::new(),
            pending: Vec::new(),
            hazards: Vec::new(),
            _guard: guard,
        })
    }

    async fn execute(&self, actor: &Actor, now: DateTime<Utc>, command: EnterpriseCommand) -> Position {
        let context = DecisionContext {
            actor,
            rules: &self.rules,
            now,
        };
        let envelope = CommandEnvelope {
            command_id: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            expected_version: None,
        };
        let executed = execute::<EnterpriseFile>(self.events.as_ref(), &command, &context, &envelope)
            .await
            .unwrap();
        executed.outcome.unwrap().last_position
    }

    async fn register(&mut self, serial: u32, town_name: &str, now: DateTime<Utc>) -> EnterpriseId {
        let credit_code =
            UnifiedSocialCreditCode::with_check_character(&format!("91330481MA28A0X{serial:02}")).unwrap();
        let enterprise_id = enterprise_id_for(&credit_code);
        let command = EnterpriseCommand::Register(RegisterEnterprise {
            name: format!("海宁企业{serial}"),
            credit_code,
            town: town(town_name),
            industry: "纺织".into(),
            profile: EnterpriseProfile {
                staff_count: 40,
                annual_revenue_10k_yuan: 800,
                flags: [ProfileFlag::SpecialEquipment].into(),
            },
        });
        self.execute(&admin("city-admin"), now, command).await;
        self.enterprises.push(enterprise_id);
        enterprise_id
    }

    async fn upload(
        &mut self,
        enterprise_id: EnterpriseId,
        requirement: &str,
        coverage: Coverage,
        now: DateTime<Utc>,
    ) -> DocumentId {
        let document_id = DocumentId(Uuid::now_v7());
        let command = EnterpriseCommand::UploadDocument(UploadDocument {
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
        });
        self.execute(&owner(enterprise_id), now, command).await;
        self.pending.push(document_id);
        document_id
    }

    async fn review(
        &mut self,
        enterprise_id: EnterpriseId,
        document_id: DocumentId,
        decision: ReviewDecision,
        now: DateTime<Utc>,
    ) {
        let command = EnterpriseCommand::ReviewDocument(ReviewDocument {
            enterprise_id,
            document_id,
            decision,
        });
        self.execute(&admin("reviewer-1"), now, command).await;
        self.pending.retain(|pending| *pending != document_id);
    }

    /// Three enterprises in two towns, documents approved, returned and pending, and a move of
    /// one enterprise to the other town.
    async fn populated(backend: Backend) -> Option<World> {
        let mut world = World::new(backend).await?;
        let first = world.register(1, "许村", day(0)).await;
        let second = world.register(2, "长安", day(1)).await;
        let third = world.register(3, "许村", day(2)).await;
        let system = world
            .upload(first, "R01.responsibility_system", Coverage::Once, day(3))
            .await;
        world
            .upload(
                second,
                "R01.annual_goals",
                Coverage::Period {
                    period: "2023".parse().unwrap(),
                },
                day(3) + chrono::Duration::hours(1),
            )
            .await;
        let validity = Coverage::Validity {
            valid_from: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            valid_until: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        };
        let rules_doc = world
            .upload(first, "R03.rules_compilation", validity.clone(), day(4))
            .await;
        world
            .review(
                first,
                system,
                ReviewDecision::Approve {
                    comment: Some("好".into()),
                },
                day(5),
            )
            .await;
        world
            .review(
                first,
                rules_doc,
                ReviewDecision::Return {
                    feedback: "缺少签字".into(),
                },
                day(6),
            )
            .await;
        let again = world.upload(first, "R03.rules_compilation", validity, day(7)).await;
        world
            .upload(third, "R01.responsibility_system", Coverage::Once, day(8))
            .await;
        world
            .review(first, again, ReviewDecision::Approve { comment: None }, day(9))
            .await;
        world
            .upload(
                first,
                "R01.annual_goals",
                Coverage::Period {
                    period: "2023".parse().unwrap(),
                },
                day(9),
            )
            .await;
        let change = EnterpriseCommand::ChangeProfile(ChangeEnterpriseProfile {
            enterprise_id: first,
            name: "海宁企业1（迁址）".into(),
            town: town("长安"),
            industry: "纺织".into(),
            profile: EnterpriseProfile {
                staff_count: 120,
                annual_revenue_10k_yuan: 3000,
                flags: [ProfileFlag::SpecialEquipment, ProfileFlag::AboveDesignatedSize].into(),
            },
        });
        world.supervise().await;
        world.execute(&admin("city-admin"), day(10), change).await;
        Some(world)
    }

    /// Supervision facts: an inspection of the first enterprise (before its move) with a general
    /// hazard (extended, returned once, then accepted) and a major one left open; an inspection
    /// of the second with a hazard left to go overdue; a self-inspection hazard; an accident.
    async fn supervise(&mut self) {
        let (first, second) = (self.enterprises[0], self.enterprises[1]);
        let inspector = admin("city-inspector");
        let [general, major, late, own] = [0; 4].map(|_| HazardId(Uuid::now_v7()));
        let hazard = |hazard_id, level, criterion: Option<(&str, &str)>, deadline| NewHazard {
            hazard_id,
            category: HazardCategory::Dust,
            level,
            severity: None,
            criterion: criterion.map(|(catalogue, item)| CriterionRef {
                catalogue: catalogue.into(),
                item: item.into(),
            }),
            basis: None,
            description: "除尘系统未设泄爆装置".into(),
            photos: vec![photo(1)],
            deadline,
        };
        let inspect = |enterprise_id, inspected_at, hazards| {
            EnterpriseCommand::RecordInspection(RecordInspection {
                enterprise_id,
                inspection_id: InspectionId(Uuid::now_v7()),
                kind: InspectionKind::OnSite,
                inspected_at,
                inspectors: vec!["张三".into(), "李四".into()],
                documents: vec![InspectionDocument {
                    kind: InspectionDocumentKind::RectificationOrder,
                    file: photo(2),
                }],
                notes: "现场检查".into(),
                hazards,
            })
        };
        let command = inspect(
            first,
            day(3),
            vec![
                hazard(general, HazardLevel::General, None, Some(day(8))),
                hazard(major, HazardLevel::Major, Some(("mem10_2023", "dust-3")), None),
            ],
        );
        self.execute(&inspector, day(3) + chrono::Duration::hours(2), command)
            .await;
        let command = inspect(
            second,
            day(4),
            vec![hazard(late, HazardLevel::General, None, Some(day(6)))],
        );
        self.execute(&inspector, day(4), command).await;
        let extend = EnterpriseCommand::ExtendHazardDeadline(ExtendHazardDeadline {
            enterprise_id: first,
            hazard_id: general,
            deadline: day(12),
            reason: "设备到货延迟".into(),
        });
        self.execute(&inspector, day(5), extend).await;
        let [once, twice] = [0; 2].map(|_| Uuid::now_v7());
        for (rectification_id, submitted, verdict, returned_because) in [
            (once, day(6), day(7), Some("照片不清".to_owned())),
            (twice, day(8), day(9), None),
        ] {
            let submit = EnterpriseCommand::SubmitRectification(SubmitRectification {
                enterprise_id: first,
                hazard_id: general,
                rectification_id,
                text: "已加装泄爆片".into(),
                photos: vec![photo(3)],
            });
            self.execute(&owner(first), submitted, submit).await;
            let verify = EnterpriseCommand::VerifyRectification(VerifyRectification {
                enterprise_id: first,
                hazard_id: general,
                rectification_id,
                returned_because,
            });
            self.execute(&inspector, verdict, verify).await;
        }
        let found = EnterpriseCommand::RecordHazard(RecordHazard {
            enterprise_id: second,
            source: HazardSource::SelfInspection,
            hazard: hazard(own, HazardLevel::General, None, None),
        });
        self.execute(&owner(second), day(5), found).await;
        let accident = EnterpriseCommand::ReportAccident(ReportAccident {
            enterprise_id: second,
            accident_id: Uuid::now_v7(),
            occurred_at: day(7),
            fatalities: 0,
            description: "轻伤一人".into(),
        });
        self.execute(&inspector, day(7), accident).await;
        self.hazards = vec![general, major, late, own];
    }

    async fn dump(&self) -> String {
        dump_tables(self.read_models.as_ref(), &ComplianceProjection)
            .await
            .unwrap()
    }

    async fn checkpoint(&self) -> Option<Position> {
        self.read_models.checkpoint(ComplianceProjection::NAME).await.unwrap()
    }

    async fn folded(&self, enterprise_id: EnterpriseId) -> EnterpriseFile {
        let stream = StreamId::for_uuid("enterprise", enterprise_id.as_uuid());
        load::<EnterpriseFile>(self.events.as_ref(), &stream).await.unwrap().0
    }

    /// The file folded from the enterprise's events that occurred by `at`.
    async fn folded_until(&self, enterprise_id: EnterpriseId, at: DateTime<Utc>) -> EnterpriseFile {
        let stream = StreamId::for_uuid("enterprise", enterprise_id.as_uuid());
        let recorded = self
            .events
            .read_stream(&stream, anquan_event_store::StreamVersion::FIRST, 1000)
            .await
            .unwrap();
        let events: Vec<_> = recorded
            .iter()
            .filter(|event| event.metadata.occurred_at <= at)
            .map(|event| event.decode().unwrap())
            .collect();
        EnterpriseFile::from_events(&events)
    }
}

async fn the_projection_builds_enterprise_profile_and_document_rows(backend: Backend) {
    let Some(world) = World::populated(backend).await else {
        return;
    };
    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    let store = world.read_models.as_ref();
    let count = |table: &'static str| async move {
        let rows = store
            .query(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .unwrap();
        rows[0].int(0).unwrap()
    };
    assert_eq!(count("enterprises").await, 3);
    assert_eq!(count("enterprise_profiles").await, 4);
    assert_eq!(count("documents").await, 6);

    let first = world.enterprises[0].to_string();
    let rows = store
        .query(
            "SELECT name, town, last_position FROM enterprises WHERE enterprise_id = $1",
            &[SqlValue::Text(first.clone())],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].text(0).unwrap(), "海宁企业1（迁址）");
    assert_eq!(rows[0].text(1).unwrap(), "长安");
    // The position stored whole: commit then prepare, 20 digits each.
    let checkpoint = world.checkpoint().await.unwrap();
    assert_eq!(
        rows[0].text(2).unwrap(),
        format!("{:020}{:020}", checkpoint.commit, checkpoint.prepare)
    );
    // Documents follow their enterprise to its new town.
    let towns = store
        .query(
            "SELECT DISTINCT town FROM documents WHERE enterprise_id = $1",
            &[SqlValue::Text(first)],
        )
        .await
        .unwrap();
    assert_eq!(towns.len(), 1);
    assert_eq!(towns[0].text(0).unwrap(), "长安");

    let returned = store
        .query(
            "SELECT review_outcome, feedback, reviewed_by, uploaded_by, valid_until, period, indicator \
             FROM documents WHERE review_outcome = $1",
            &[SqlValue::Text("returned".into())],
        )
        .await
        .unwrap();
    assert_eq!(returned.len(), 1);
    let row = &returned[0];
    assert_eq!(row.text(1).unwrap(), "缺少签字");
    assert_eq!(row.text(2).unwrap(), "reviewer-1");
    assert_eq!(row.text(3).unwrap(), format!("owner-{}", world.enterprises[0]));
    assert_eq!(
        row.timestamp(4).unwrap(),
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(row.opt_text(5).unwrap(), None);
    assert_eq!(row.text(6).unwrap(), "R03");
}

async fn the_read_model_file_equals_the_folded_stream_and_gives_the_same_status_at_any_instant(backend: Backend) {
    let Some(world) = World::populated(backend).await else {
        return;
    };
    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    let instants = [
        day(-1),
        day(0),
        day(4),
        day(6),
        day(8),
        day(9),
        day(11),
        day(13),
        day(40),
        day(400),
        day(800),
    ];
    for &enterprise_id in &world.enterprises {
        let from_rows = compliance::enterprise_file(world.read_models.as_ref(), enterprise_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from_rows, world.folded(enterprise_id).await);
        for at in instants {
            let expected = evaluate(&world.folded_until(enterprise_id, at).await, &world.rules, at);
            assert_eq!(
                evaluate(&from_rows, &world.rules, at),
                expected,
                "{enterprise_id} at {at}"
            );
            let folded = world.folded_until(enterprise_id, at).await;
            assert_eq!(
                risk::assess(&from_rows, &world.rules, at),
                risk::assess(&folded, &world.rules, at),
                "colour of {enterprise_id} at {at}"
            );
        }
    }
    let unknown = EnterpriseId(Uuid::nil());
    assert_eq!(
        compliance::enterprise_file(world.read_models.as_ref(), unknown)
            .await
            .unwrap(),
        None
    );
}

/// The property behind `asOf`: for random instants (uniform over the history, and each event's
/// instant and one microsecond either side of it), the status, vetoes and colour computed from
/// the read model equal those of a brute-force fold of the log cut at that instant.
async fn as_of_answers_equal_a_replay_of_the_log_cut_at_random_instants(backend: Backend) {
    let Some(world) = World::populated(backend).await else {
        return;
    };
    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    // A fixed-seed generator (SplitMix64), so a failure reproduces.
    let mut state: u64 = 0x5eed_2026_1129;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (start, end) = (day(-2), day(900));
    let span = u64::try_from((end - start).num_microseconds().unwrap()).unwrap();
    for &enterprise_id in &world.enterprises {
        let from_rows = compliance::enterprise_file(world.read_models.as_ref(), enterprise_id)
            .await
            .unwrap()
            .unwrap();
        let stream = StreamId::for_uuid("enterprise", enterprise_id.as_uuid());
        let recorded = world
            .events
            .read_stream(&stream, anquan_event_store::StreamVersion::FIRST, 1000)
            .await
            .unwrap();
        let mut instants: Vec<DateTime<Utc>> = (0..40)
            .map(|_| start + chrono::Duration::microseconds(i64::try_from(next() % span).unwrap()))
            .collect();
        for event in &recorded {
            let at = event.metadata.occurred_at;
            instants.extend([
                at - chrono::Duration::microseconds(1),
                at,
                at + chrono::Duration::microseconds(1),
            ]);
        }
        for at in instants {
            let cut = world.folded_until(enterprise_id, at).await;
            assert_eq!(
                evaluate(&from_rows, &world.rules, at),
                evaluate(&cut, &world.rules, at),
                "{enterprise_id} at {at}"
            );
            assert_eq!(
                risk::assess(&from_rows, &world.rules, at),
                risk::assess(&cut, &world.rules, at),
                "colour of {enterprise_id} at {at}"
            );
        }
    }
}

async fn hazard_queries_decide_state_overdue_colour_and_plan_at_the_instant(backend: Backend) {
    let Some(world) = World::populated(backend).await else {
        return;
    };
    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    let store = world.read_models.as_ref();
    let [general, major, late, own] = world.hazards[..] else {
        panic!("four hazards");
    };
    let ids = |page: &compliance::Page<HazardView>| -> Vec<HazardId> {
        page.items.iter().map(|view| view.record.hazard_id).collect()
    };
    let sorted = |mut hazards: Vec<HazardId>| {
        hazards.sort();
        hazards
    };
    let list = |town: Option<&str>, state, at| {
        let filter = HazardFilter {
            town: town.map(self::town),
            enterprise: None,
            state,
            listing: None,
        };
        async move { compliance::hazards(store, &filter, at, 100, None).await.unwrap() }
    };
    // The first enterprise moved to 长安 on day 10: its hazards moved with it.
    assert_eq!(
        ids(&list(Some("长安"), None, day(11)).await),
        sorted(vec![general, major, late, own])
    );
    assert!(list(Some("许村"), None, day(11)).await.items.is_empty());
    // State is decided at the instant asked for.
    let at = day(6) + chrono::Duration::hours(1);
    assert_eq!(
        ids(&list(None, Some(HazardStateFilter::Submitted), at).await),
        vec![general]
    );
    assert_eq!(
        ids(&list(None, Some(HazardStateFilter::Overdue), day(6)).await),
        Vec::<HazardId>::new()
    );
    assert_eq!(ids(&list(None, Some(HazardStateFilter::Overdue), at).await), vec![late]);
    assert_eq!(
        ids(&list(None, Some(HazardStateFilter::Closed), day(9)).await),
        vec![general]
    );
    assert!(
        list(None, Some(HazardStateFilter::Closed), day(8))
            .await
            .items
            .is_empty()
    );
    assert_eq!(
        ids(&list(None, Some(HazardStateFilter::NotClosed), day(11)).await),
        sorted(vec![major, late, own])
    );
    // Known only once recorded.
    assert!(list(None, None, day(2)).await.items.is_empty());
    // Paging by hazard id.
    let filter = HazardFilter::default();
    let first_page = compliance::hazards(store, &filter, day(11), 3, None).await.unwrap();
    assert!(first_page.has_next);
    let rest = compliance::hazards(store, &filter, day(11), 3, first_page.end_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(
        [ids(&first_page), ids(&rest)].concat(),
        sorted(vec![general, major, late, own])
    );

    // The overdue queue: oldest deadline in force first.
    let queue = compliance::overdue_queue(store, Some(&town("长安")), day(30), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&queue), vec![late, own]);
    let queue = compliance::overdue_queue(store, None, day(30), 1, None).await.unwrap();
    assert_eq!(ids(&queue), vec![late]);
    let queue = compliance::overdue_queue(store, None, day(30), 1, queue.end_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&queue), vec![own]);
    assert!(!queue.has_next);

    // Colours and the plan equal the domain's over the folded files.
    for at in [day(5), day(11), day(40), day(200)] {
        let distribution = compliance::colour_distribution(store, &world.rules, None, at)
            .await
            .unwrap();
        let mut expected = compliance::ColourDistribution {
            complete: true,
            ..Default::default()
        };
        let mut due = Vec::new();
        for &enterprise_id in &world.enterprises {
            let folded = world.folded_until(enterprise_id, at).await;
            match risk::assess(&folded, &world.rules, at).map(|assessment| assessment.colour) {
                Some(RiskColour::Red) => expected.red += 1,
                Some(RiskColour::Orange) => expected.orange += 1,
                Some(RiskColour::Yellow) => expected.yellow += 1,
                Some(RiskColour::Blue) => expected.blue += 1,
                None => {}
            }
            if let Some(checks) = risk::checks_due(&folded, &world.rules, at, at + chrono::Duration::days(31))
                && (checks.online_check_due || checks.on_site_due || checks.enforcement_plan)
            {
                due.push((enterprise_id, checks));
            }
        }
        assert_eq!(distribution, expected, "at {at}");
        let (plan, complete) =
            compliance::supervision_plan(store, &world.rules, None, at + chrono::Duration::days(31), at)
                .await
                .unwrap();
        assert!(complete);
        let mut planned: Vec<_> = plan
            .into_iter()
            .map(|entry| (entry.registration.enterprise_id, entry.checks))
            .collect();
        planned.sort_by_key(|(id, _)| *id);
        due.sort_by_key(|(id, _)| *id);
        assert_eq!(planned, due, "at {at}");
    }
    let red = compliance::colour_distribution(store, &world.rules, None, day(11))
        .await
        .unwrap();
    assert!(red.red >= 1, "the open major hazard makes its enterprise red: {red:?}");
}

async fn summaries_filter_by_town_and_status_and_page_by_enterprise_id(backend: Backend) {
    let Some(world) = World::populated(backend).await else {
        return;
    };
    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    let store = world.read_models.as_ref();
    let mut sorted = world.enterprises.clone();
    sorted.sort();

    let all = SummaryFilter::default();
    let first_page = compliance::enterprise_summaries(store, &all, &world.rules, day(11), 2, None)
        .await
        .unwrap();
    let ids = |page: &compliance::Page<_>| -> Vec<EnterpriseId> {
        page.items
            .iter()
            .map(|summary: &compliance::EnterpriseSummary| summary.registration.enterprise_id)
            .collect()
    };
    assert_eq!(ids(&first_page), sorted[..2]);
    assert!(first_page.has_next);
    let second_page =
        compliance::enterprise_summaries(store, &all, &world.rules, day(11), 2, first_page.end_cursor.as_deref())
            .await
            .unwrap();
    assert_eq!(ids(&second_page), sorted[2..]);
    assert!(!second_page.has_next);

    for summary in first_page.items.iter().chain(&second_page.items) {
        let expected = evaluate(
            &world.folded(summary.registration.enterprise_id).await,
            &world.rules,
            day(11),
        )
        .unwrap();
        assert_eq!(summary.report, expected);
    }

    let in_changan = SummaryFilter {
        town: Some(town("长安")),
        ..SummaryFilter::default()
    };
    let page = compliance::enterprise_summaries(store, &in_changan, &world.rules, day(11), 10, None)
        .await
        .unwrap();
    let mut expected = vec![world.enterprises[0], world.enterprises[1]];
    expected.sort();
    assert_eq!(ids(&page), expected);

    // Before the third enterprise registered it is not listed at all.
    let page = compliance::enterprise_summaries(store, &all, &world.rules, day(1), 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);

    // R01 needs an approved responsibility system and yearly goals: only some have both.
    let mut matched = 0;
    for state in [IndicatorState::Implemented, IndicatorState::NotImplemented] {
        let filter = SummaryFilter {
            indicator: Some((IndicatorCode::parse("R01").unwrap(), state)),
            ..SummaryFilter::default()
        };
        let page = compliance::enterprise_summaries(store, &filter, &world.rules, day(11), 10, None)
            .await
            .unwrap();
        let mut expected = Vec::new();
        for &enterprise_id in &sorted {
            let report = evaluate(&world.folded(enterprise_id).await, &world.rules, day(11)).unwrap();
            if report
                .indicators
                .iter()
                .any(|status| status.code.as_str() == "R01" && status.state == state)
            {
                expected.push(enterprise_id);
            }
        }
        assert_eq!(ids(&page), expected, "{state:?}");
        matched += expected.len();
    }
    assert_eq!(matched, 3);
    let none_implemented = SummaryFilter {
        responsibility_implemented: Some(true),
        ..SummaryFilter::default()
    };
    let page = compliance::enterprise_summaries(store, &none_implemented, &world.rules, day(11), 10, None)
        .await
        .unwrap();
    assert!(page.items.is_empty() && !page.has_next);

    let too_many = compliance::enterprise_summaries(store, &all, &world.rules, day(11), 101, None).await;
    assert!(too_many.is_err());
    let bad_cursor = compliance::enterprise_summaries(store, &all, &world.rules, day(11), 1, Some("x")).await;
    assert!(bad_cursor.is_err());
}

async fn the_review_queue_lists_pending_documents_oldest_first_in_pages(backend: Backend) {
    let Some(world) = World::populated(backend).await else {
        return;
    };
    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    let store = world.read_models.as_ref();
    assert_eq!(world.pending.len(), 3);

    let first = compliance::review_queue(store, None, 2, None).await.unwrap();
    let ids = |page: &compliance::Page<compliance::DocumentView>| -> Vec<DocumentId> {
        page.items.iter().map(|view| view.record.document_id).collect()
    };
    assert_eq!(ids(&first), world.pending[..2]);
    assert!(first.has_next);
    let second = compliance::review_queue(store, None, 2, first.end_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&second), world.pending[2..]);
    assert!(!second.has_next);

    // The first enterprise moved to 长安, and its pending document with it.
    let changan = compliance::review_queue(store, Some(&town("长安")), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&changan), vec![world.pending[0], world.pending[2]]);
    assert!(changan.items.iter().all(|view| view.town.as_str() == "长安"));
    // A town's queue pages with the same cursor.
    let changan_first = compliance::review_queue(store, Some(&town("长安")), 1, None)
        .await
        .unwrap();
    assert_eq!(ids(&changan_first), vec![world.pending[0]]);
    assert!(changan_first.has_next);
    let changan_next = compliance::review_queue(store, Some(&town("长安")), 1, changan_first.end_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&changan_next), vec![world.pending[2]]);
    assert!(!changan_next.has_next);
    let xucun = compliance::review_queue(store, Some(&town("许村")), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&xucun), vec![world.pending[1]]);
    assert_eq!(xucun.items[0].enterprise_name, "海宁企业3");

    let view = compliance::document(store, world.pending[1]).await.unwrap().unwrap();
    assert_eq!(view.enterprise_id, world.enterprises[2]);
    assert_eq!(view.record.review, None);
    assert_eq!(
        compliance::document(store, DocumentId(Uuid::nil())).await.unwrap(),
        None
    );
}

async fn dropping_and_replaying_gives_identical_rows(backend: Backend) {
    let Some(world) = World::populated(backend).await else {
        return;
    };
    // Build live, in whatever batches the subscription hands out, then rebuild from zero.
    let runner = world.runner.clone();
    let live = tokio::spawn(async move { runner.run().await });
    let head = world.events.head().borrow().unwrap();
    assert!(wait_for_position(world.runner.applied(), head, Duration::from_secs(10)).await);
    live.abort();
    let built_live = world.dump().await;
    assert!(built_live.contains("table documents (6 rows)"), "{built_live}");

    let report = world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    assert_eq!(report.last_position, Some(head));
    let rebuilt = world.dump().await;
    assert_eq!(built_live, rebuilt);

    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    assert_eq!(world.dump().await, rebuilt);
    assert_eq!(world.checkpoint().await, Some(head));
}

async fn the_runner_publishes_positions_so_writers_can_wait_for_their_events(backend: Backend) {
    let Some(mut world) = World::new(backend).await else {
        return;
    };
    let runner = world.runner.clone();
    let live = tokio::spawn(async move { runner.run().await });
    let enterprise_id = world.register(7, "许村", day(0)).await;
    let head = world.events.head().borrow().unwrap();
    assert!(wait_for_position(world.runner.applied(), head, Duration::from_secs(10)).await);
    let file = compliance::enterprise_file(world.read_models.as_ref(), enterprise_id)
        .await
        .unwrap();
    assert!(file.is_some());
    let future = Position::from_sequence(head.sequence() + 10);
    assert!(!wait_for_position(world.runner.applied(), future, Duration::from_millis(50)).await);
    live.abort();
}

async fn a_failed_batch_leaves_rows_and_checkpoint_unchanged(backend: Backend) {
    let Some(mut world) = World::populated(backend).await else {
        return;
    };
    world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    let before = world.dump().await;
    let checkpoint = world.checkpoint().await;

    // A batch whose last statement fails: nothing of it may stay.
    let stream = StreamId::for_uuid("enterprise", world.enterprises[1].as_uuid());
    let recorded = world
        .events
        .read_all(checkpoint.map(|p| Position::from_sequence(p.sequence() - 3)), 10)
        .await
        .unwrap();
    let mut statements = BatchStatements::new();
    for event in &recorded {
        ComplianceProjection
            .apply(event, &event.decode().unwrap(), &mut statements)
            .unwrap();
    }
    statements.push(Statement::new(
        "INSERT INTO no_such_table VALUES ($1)",
        vec![SqlValue::Int(1)],
    ));
    let batch = ProjectionBatch::new(
        ComplianceProjection::NAME,
        statements.into_statements(),
        Position::from_sequence(checkpoint.unwrap().sequence() + 100),
    );
    assert!(world.read_models.apply(Arc::new(batch)).await.is_err());
    assert_eq!(world.dump().await, before);
    assert_eq!(world.checkpoint().await, checkpoint);

    // An event the projection cannot decode stalls it loudly, without stopping the runner:
    // the valid events before it commit one at a time, so its checkpoint stays just before
    // the event it fails on, and nothing of that event is written.
    let enterprise_id = world.enterprises[1];
    world
        .upload(enterprise_id, "R01.responsibility_system", Coverage::Once, day(12))
        .await;
    let bogus = AppendRequest {
        stream_id: stream.clone(),
        expected: StreamState::Any,
        command: None,
        metadata: AppendMetadata {
            occurred_at: day(12),
            actor: admin("city-admin"),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events: vec![NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "NoSuchEvent".into(),
            schema_version: 1,
            data: "{}".into(),
        }],
    };
    let upload = world.events.head().borrow().unwrap();
    let bogus = world.events.append(bogus).await.unwrap().last_position;
    let health = world.runner.health();
    let runner = world.runner.clone();
    let live = tokio::spawn(async move { runner.run().await });
    let stalled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(status) = health.stalled(ComplianceProjection::NAME) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let stall = stalled.stall.unwrap();
    let event = stall.event.unwrap();
    assert_eq!((event.position, event.event_type.as_str()), (bogus, "NoSuchEvent"));
    assert_eq!(event.stream_id, stream.to_string());
    assert!(stall.error.contains("NoSuchEvent"), "{}", stall.error);
    assert_eq!(stalled.position, Some(upload));
    assert_eq!(world.checkpoint().await, Some(upload));
    assert_ne!(world.dump().await, before, "the upload before the bogus event commits");
    assert!(!live.is_finished(), "the runner stopped");
    live.abort();
}

/// A projection that records every event's position once (a second insert would violate the
/// key), and cannot apply the event at `fail_at` (0: none): a bug that a new binary fixes. The
/// event at `also_missing_at` also writes to `flaky_missing`, a table only the test creates:
/// a store that refuses one event's statements until it is repaired.
#[derive(Default)]
struct Flaky {
    fail_at: std::sync::atomic::AtomicU64,
    also_missing_at: std::sync::atomic::AtomicU64,
}

impl Flaky {
    const NAME: &'static str = "flaky";
}

impl Projection for Flaky {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn schema(&self, _: anquan_event_store::Dialect) -> &'static str {
        "CREATE TABLE IF NOT EXISTS flaky_seen (position BIGINT PRIMARY KEY)"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["flaky_seen"]
    }

    fn apply(
        &self,
        event: &anquan_event_store::RecordedEvent,
        _: &anquan_domain::Event,
        out: &mut BatchStatements,
    ) -> Result<(), ProjectionError> {
        let position = event.position.sequence();
        if position == self.fail_at.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ProjectionError::NotAnEnterpriseStream {
                stream_id: event.stream_id.clone(),
            });
        }
        out.push(Statement::new(
            "INSERT INTO flaky_seen (position) VALUES ($1)",
            vec![SqlValue::Int(i64::try_from(position).unwrap())],
        ));
        if position == self.also_missing_at.load(std::sync::atomic::Ordering::SeqCst) {
            out.push(Statement::new(
                "INSERT INTO flaky_missing (position) VALUES ($1)",
                vec![SqlValue::Int(i64::try_from(position).unwrap())],
            ));
        }
        Ok(())
    }
}

async fn a_failing_projection_stalls_alone_and_resumes_from_its_failing_event(backend: Backend) {
    let Some(mut world) = World::new(backend).await else {
        return;
    };
    let flaky = Arc::new(Flaky::default());
    let runner = Arc::new(
        ProjectionRunner::new(world.events.clone(), world.read_models.clone())
            .with_projection(Arc::new(ComplianceProjection))
            .with_projection(flaky.clone()),
    );
    let health = runner.health();
    let events = world.events.clone();
    let head = || events.head().borrow().unwrap();
    world.register(1, "许村", day(0)).await;
    let failing = Position::from_sequence(head().sequence() + 1);
    flaky
        .fail_at
        .store(failing.sequence(), std::sync::atomic::Ordering::SeqCst);
    world.register(2, "许村", day(0)).await;
    assert_eq!(head(), failing, "one registration, one event");
    world.register(3, "许村", day(0)).await;

    let live = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.run().await })
    };
    let timeout = Duration::from_secs(20);
    // The compliance projection folds the whole log; the flaky one stalls just before its event.
    let reached = health.wait_for(ComplianceProjection::NAME, head(), timeout).await;
    assert_eq!(reached, Waited::Reached);
    let Waited::Stalled(stalled) = health.wait_for(Flaky::NAME, head(), timeout).await else {
        panic!("{:?}", health.statuses());
    };
    let stall = stalled.stall.clone().unwrap();
    assert_eq!(stall.event.as_ref().map(|event| event.position), Some(failing));
    assert_eq!(
        stall.event.as_ref().map(|event| event.event_type.as_str()),
        Some("EnterpriseRegistered")
    );
    assert!(stall.error.contains("is not an enterprise stream"), "{}", stall.error);
    let before = world.events.read_all(None, 100).await.unwrap();
    let previous = before
        .iter()
        .rev()
        .find(|event| event.position < failing)
        .map(|event| event.position);
    assert_eq!(stalled.position, previous);
    assert_eq!(world.read_models.checkpoint(Flaky::NAME).await.unwrap(), previous);
    assert_eq!(
        health.status(ComplianceProjection::NAME).unwrap().state,
        ProjectionState::Running
    );

    // The others go on.
    world.register(4, "许村", day(1)).await;
    assert_eq!(
        health.wait_for(ComplianceProjection::NAME, head(), timeout).await,
        Waited::Reached
    );
    assert!(health.stalled(Flaky::NAME).is_some());

    // Fixed (as a new binary would be), it resumes from the failing event and follows the log
    // with the others again: every event exactly once, none skipped.
    flaky.fail_at.store(0, std::sync::atomic::Ordering::SeqCst);
    tokio::time::timeout(timeout, async {
        while health.stalled(Flaky::NAME).is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(health.wait_for(Flaky::NAME, head(), timeout).await, Waited::Reached);
    world.register(5, "许村", day(2)).await;
    assert_eq!(health.wait_for(Flaky::NAME, head(), timeout).await, Waited::Reached);
    let seen: Vec<i64> = world
        .read_models
        .query("SELECT position FROM flaky_seen ORDER BY position", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.int(0).unwrap())
        .collect();
    let log: Vec<i64> = world
        .events
        .read_all(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|event| i64::try_from(event.position.sequence()).unwrap())
        .collect();
    assert_eq!(seen, log);
    assert!(!live.is_finished(), "the runner stopped");
    live.abort();
}

async fn a_store_refusing_one_event_is_narrowed_to_it_and_heals_without_a_restart(backend: Backend) {
    let Some(mut world) = World::new(backend).await else {
        return;
    };
    let flaky = Arc::new(Flaky::default());
    let runner = Arc::new(
        ProjectionRunner::new(world.events.clone(), world.read_models.clone())
            .with_projection(Arc::new(ComplianceProjection))
            .with_projection(flaky.clone()),
    );
    let health = runner.health();
    // Five events in one page; the store refuses the third's statements.
    for serial in 1..=5 {
        world.register(serial, "许村", day(0)).await;
    }
    let log = world.events.read_all(None, 100).await.unwrap();
    assert_eq!(log.len(), 5);
    let (previous, failing) = (log[1].position, log[2].position);
    flaky
        .also_missing_at
        .store(failing.sequence(), std::sync::atomic::Ordering::SeqCst);
    let head = log[4].position;

    let live = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.run().await })
    };
    let timeout = Duration::from_secs(40);
    assert_eq!(
        health.wait_for(ComplianceProjection::NAME, head, timeout).await,
        Waited::Reached
    );
    // Reported stalled after its retries, narrowed to the event, its checkpoint just before.
    let Waited::Stalled(stalled) = health.wait_for(Flaky::NAME, head, timeout).await else {
        panic!("{:?}", health.statuses());
    };
    let stall = stalled.stall.clone().unwrap();
    assert_eq!(
        stall.event.as_ref().map(|event| event.position),
        Some(failing),
        "{stall:?}"
    );
    assert!(stall.error.contains("flaky_missing"), "{}", stall.error);
    assert_eq!(stalled.position, Some(previous));
    assert_eq!(world.read_models.checkpoint(Flaky::NAME).await.unwrap(), Some(previous));

    // The store is repaired; the next retry commits the event, without a restart.
    world
        .read_models
        .migrate("CREATE TABLE IF NOT EXISTS flaky_missing (position BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    tokio::time::timeout(timeout, async {
        while health.stalled(Flaky::NAME).is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(health.wait_for(Flaky::NAME, head, timeout).await, Waited::Reached);
    let seen: Vec<i64> = world
        .read_models
        .query("SELECT position FROM flaky_seen ORDER BY position", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.int(0).unwrap())
        .collect();
    let expected: Vec<i64> = log
        .iter()
        .map(|event| i64::try_from(event.position.sequence()).unwrap())
        .collect();
    assert_eq!(seen, expected);
    assert!(!live.is_finished(), "the runner stopped");
    live.abort();
}

/// Normalises what is representation, not content, in a dump: JSON objects and arrays are
/// re-serialised with sorted keys and no spaces, because PostgreSQL's `jsonb` stores its own
/// key order and spacing (`{"a": 1}`) while SQLite keeps the text the projection wrote. Nothing
/// else is touched: timestamps already render the same (RFC 3339 UTC with microseconds, from
/// `timestamptz` on PostgreSQL and from the stored text on SQLite), as do integers and text.
fn normalise_json(dump: &str) -> String {
    let mut lines: Vec<String> = dump
        .lines()
        .map(|line| line.split('\t').map(normalise_field).collect::<Vec<_>>().join("\t"))
        .collect();
    // Rows are sorted by their rendered text, which the JSON rendering is part of.
    let mut start = 0;
    for end in 0..=lines.len() {
        if end == lines.len() || lines[end].starts_with("table ") {
            if start < end {
                lines[start..end].sort();
            }
            start = end + 1;
        }
    }
    lines.join("\n")
}

/// A rendered field (`"…"` for text) holding a JSON object or array, canonicalised.
fn normalise_field(field: &str) -> String {
    let Ok(text) = serde_json::from_str::<String>(field) else {
        return field.to_owned();
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => format!("{:?}", canonical(&value)),
        _ => field.to_owned(),
    }
}

/// Whether a rendered field holds a JSON object or array.
fn is_json(field: &str) -> bool {
    serde_json::from_str::<String>(field).is_ok_and(|text| {
        matches!(
            serde_json::from_str::<serde_json::Value>(&text),
            Ok(serde_json::Value::Object(_) | serde_json::Value::Array(_))
        )
    })
}

fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|left, right| left.0.cmp(right.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{}:{}", serde_json::Value::from(key.as_str()), canonical(value)))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        serde_json::Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// Same log, same rules, same read models: the compliance tables built from one log into
/// SQLite and into PostgreSQL dump identically, JSON spelling aside (see `normalise_json`).
#[tokio::test]
async fn sqlite_and_postgres_read_models_built_from_the_same_log_are_identical() {
    let Some(world) = World::populated(Backend::Postgres).await else {
        return;
    };
    let (sqlite, _directory) = read_model_store(Backend::Sqlite).await.unwrap();
    let sqlite_runner =
        ProjectionRunner::new(world.events.clone(), sqlite.clone()).with_projection(Arc::new(ComplianceProjection));
    let on_sqlite = sqlite_runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    let on_postgres = world.runner.rebuild(ComplianceProjection::NAME).await.unwrap();
    assert_eq!(on_sqlite.events, on_postgres.events);
    assert_eq!(on_sqlite.last_position, on_postgres.last_position);

    let sqlite_dump = dump_tables(sqlite.as_ref(), &ComplianceProjection).await.unwrap();
    let postgres_dump = world.dump().await;
    assert!(postgres_dump.contains("table documents (6 rows)"), "{postgres_dump}");
    assert_eq!(normalise_json(&sqlite_dump), normalise_json(&postgres_dump));
    // The normalisation is not hiding anything else: it changes only JSON fields, and the
    // lines that differ before it are exactly those holding JSON (profiles and coverage).
    for (sqlite_line, postgres_line) in sqlite_dump.lines().zip(postgres_dump.lines()) {
        for (left, right) in sqlite_line.split('\t').zip(postgres_line.split('\t')) {
            if left != right {
                assert!(
                    is_json(left) && is_json(right),
                    "only JSON may differ: {left} vs {right}"
                );
            }
        }
    }
    assert_eq!(
        sqlite.checkpoint(ComplianceProjection::NAME).await.unwrap(),
        world.checkpoint().await
    );
}

#[test]
fn normalising_touches_json_objects_and_arrays_only() {
    let sqlite = "table t (2 rows)\n\"a\"\t\"{\\\"b\\\":1,\\\"a\\\":[2]}\"\t\"2023\"\t1";
    let postgres = "table t (2 rows)\n\"a\"\t\"{\\\"a\\\": [2], \\\"b\\\": 1}\"\t\"2023\"\t1";
    assert_eq!(normalise_json(sqlite), normalise_json(postgres));
    assert_ne!(
        normalise_json(sqlite),
        normalise_json(&postgres.replace("2023", "2024"))
    );
    assert_eq!(normalise_field("\"2023\""), "\"2023\"");
    assert!(is_json("\"[1]\"") && !is_json("\"2023\"") && !is_json("1"));
}
