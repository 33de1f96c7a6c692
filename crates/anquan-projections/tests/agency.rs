//! The agency read model against real domain commands: per-agency and per-staff yearly
//! statistics equal a brute-force count over the events (property test), staff lists are
//! replaced per half-year, coverage follows contract periods, and a rebuild gives identical rows.
//! Events go to the in-memory store, read models to a SQLite file.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test on any error"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use anquan_domain::agency::{
    AgencyCommand, AgencyProfile, AgencyState, ConfirmContract, FeeBand, FileContract, ProposeContract, Qualification,
    QualificationKind, RateService, RegisterAgency, ReportService, ReportStaff, StaffMember, TerminateContract,
};
use anquan_domain::enterprise::FileRef;
use anquan_domain::rules::RuleSet;
use anquan_domain::{
    Actor, AgencyId, ContractId, DecisionContext, EnterpriseId, Event, Role, ServiceReportId, StaffId, Town, UserId,
};
use anquan_event_store::execute::{CommandEnvelope, execute};
use anquan_event_store::{EventStore, InMemoryEventStore};
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::agency::{self as read_model, StatisticsScope};
use anquan_projections::{AgencyProjection, ProjectionRunner, dump_tables};

struct World {
    _directory: tempfile::TempDir,
    events: Arc<InMemoryEventStore>,
    read_models: Arc<SqliteReadModelStore>,
    runner: ProjectionRunner,
    rules: RuleSet,
}

fn agency_id(n: u128) -> AgencyId {
    AgencyId::from_uuid(Uuid::from_u128(0xa000 + n))
}

fn enterprise_id(n: u128) -> EnterpriseId {
    EnterpriseId::from_uuid(Uuid::from_u128(0xe000 + n))
}

fn staff_id(agency: u128, n: u128) -> StaffId {
    StaffId::from_uuid(Uuid::from_u128(0x5000 + agency * 100 + n))
}

fn admin() -> Actor {
    Actor {
        user_id: UserId::parse("admin").unwrap(),
        role: Role::CityAdmin,
    }
}

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2019, 1, 1, 2, 0, 0).unwrap() + Duration::days(n)
}

fn file() -> FileRef {
    FileRef {
        sha256: "ab".repeat(32),
        size_bytes: 10,
        media_type: "application/pdf".into(),
        file_name: "report.pdf".into(),
    }
}

impl World {
    async fn new() -> World {
        let directory = tempfile::tempdir().unwrap();
        let events = Arc::new(InMemoryEventStore::new());
        let read_models = Arc::new(
            SqliteReadModelStore::open(directory.path().join("anquan.db"))
                .await
                .unwrap(),
        );
        let runner =
            ProjectionRunner::new(events.clone(), read_models.clone()).with_projection(Arc::new(AgencyProjection));
        World {
            _directory: directory,
            events,
            read_models,
            runner,
            rules: anquan_domain::rules::builtin_v1().unwrap(),
        }
    }

    /// Executes a command; a rejection is returned, not a failure.
    async fn execute(&self, actor: &Actor, now: DateTime<Utc>, command: AgencyCommand) -> bool {
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
        match execute::<AgencyState>(self.events.as_ref(), &command, &context, &envelope).await {
            Ok(_) => true,
            Err(anquan_event_store::execute::ExecuteError::Rejected(_)) => false,
            Err(error) => panic!("{error}"),
        }
    }

    async fn register(&self, agency: u128, staff: &[u128]) {
        let id = agency_id(agency);
        let profile = AgencyProfile {
            name: format!("机构{agency}"),
            licence: None,
            service_scope: vec!["安全管家".into()],
            service_standards: "季度上门".into(),
            fee_band: FeeBand {
                min_yuan: 1000,
                max_yuan: 9000,
            },
            contact_phone: Some("0573-1".into()),
        };
        assert!(
            self.execute(
                &admin(),
                day(0),
                AgencyCommand::Register(RegisterAgency { agency_id: id, profile })
            )
            .await
        );
        self.report_staff(agency, "2019-H1", staff, day(1)).await;
    }

    async fn report_staff(&self, agency: u128, half_year: &str, staff: &[u128], now: DateTime<Utc>) {
        let command = AgencyCommand::ReportStaff(ReportStaff {
            agency_id: agency_id(agency),
            half_year: half_year.parse().unwrap(),
            staff: staff
                .iter()
                .map(|n| StaffMember {
                    staff_id: staff_id(agency, *n),
                    name: format!("员工{n}"),
                    qualifications: vec![Qualification {
                        kind: QualificationKind::RegisteredSafetyEngineer,
                        certificate_number: format!("C{n}"),
                    }],
                    phone: None,
                })
                .collect(),
        });
        assert!(self.execute(&admin(), now, command).await);
    }

    async fn sign(&self, agency: u128, contract: u128, enterprise: u128, from: i64, days: i64) {
        let town = Town::parse(if enterprise.is_multiple_of(2) {
            "许村"
        } else {
            "长安"
        })
        .unwrap();
        let contract_id = ContractId::from_uuid(Uuid::from_u128(contract));
        let command = AgencyCommand::ProposeContract(ProposeContract {
            agency_id: agency_id(agency),
            contract_id,
            enterprise_id: enterprise_id(enterprise),
            enterprise_town: town.clone(),
            valid_from: day(from),
            valid_until: day(from + days),
            services: vec!["安全管家".into()],
            visits_promised: 4,
            fee_yuan: 5000,
        });
        assert!(self.execute(&admin(), day(from), command).await);
        // Confirmed and filed at once: only a filed contract counts.
        let party = Actor {
            user_id: UserId::parse("enterprise-user").unwrap(),
            role: Role::Enterprise {
                enterprise_id: enterprise_id(enterprise),
            },
        };
        let confirm = AgencyCommand::ConfirmContract(ConfirmContract {
            agency_id: agency_id(agency),
            contract_id,
        });
        assert!(self.execute(&party, day(from), confirm).await);
        let officer = Actor {
            user_id: UserId::parse("town-officer").unwrap(),
            role: Role::TownOfficer { town },
        };
        let file = AgencyCommand::FileContract(FileContract {
            agency_id: agency_id(agency),
            contract_id,
            exception_reason: None,
        });
        assert!(self.execute(&officer, day(from), file).await);
    }

    async fn all_events(&self) -> Vec<(AgencyId, Event)> {
        let recorded = self.events.read_all(None, 10_000).await.unwrap();
        recorded
            .iter()
            .map(|event| {
                let id = event
                    .stream_id
                    .as_str()
                    .strip_prefix("agency-")
                    .unwrap()
                    .parse()
                    .unwrap();
                (id, event.decode().unwrap())
            })
            .collect()
    }
}

/// One step of the generated history.
#[derive(Debug, Clone)]
enum Step {
    Report {
        agency: u128,
        contract: u128,
        visit_day: i64,
        staff: Vec<u128>,
    },
    Rate {
        report: usize,
        stars: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u128..2, 0u128..3, 0i64..700, proptest::collection::vec(0u128..3, 1..3))
            .prop_map(|(agency, contract, visit_day, staff)| Step::Report { agency, contract, visit_day, staff }),
        2 => (0usize..40, 0i64..7).prop_map(|(report, stars)| Step::Rate { report, stars }),
    ]
}

/// Agency `a` has contracts `a * 10 + c` with enterprise `c` (c in 0..3), over two years.
async fn populated_world(steps: &[Step]) -> World {
    let world = World::new().await;
    for agency in 0..2 {
        world.register(agency, &[0, 1, 2]).await;
        for contract in 0..3 {
            world
                .sign(agency, agency * 10 + contract, contract + agency, 0, 730)
                .await;
        }
    }
    let mut reports: Vec<(u128, u128, ServiceReportId)> = Vec::new();
    for step in steps {
        match step {
            Step::Report {
                agency,
                contract,
                visit_day,
                staff,
            } => {
                let report_id = ServiceReportId::from_uuid(Uuid::now_v7());
                let command = AgencyCommand::ReportService(ReportService {
                    agency_id: agency_id(*agency),
                    report_id,
                    contract_id: ContractId::from_uuid(Uuid::from_u128(agency * 10 + contract)),
                    visited_at: day(*visit_day),
                    staff_ids: staff.iter().map(|n| staff_id(*agency, *n)).collect(),
                    findings: "检查".into(),
                    hazards: Vec::new(),
                    photos: Vec::new(),
                    report_file: file(),
                });
                // Duplicate staff in the generated list is a rejection: nothing is recorded.
                if world.execute(&admin(), day(visit_day + 2), command).await {
                    reports.push((*agency, contract + agency, report_id));
                }
            }
            Step::Rate { report, stars } => {
                let Some((agency, enterprise, report_id)) = reports.get(*report).copied() else {
                    continue;
                };
                let served = Actor {
                    user_id: UserId::parse("owner").unwrap(),
                    role: Role::Enterprise {
                        enterprise_id: enterprise_id(enterprise),
                    },
                };
                let command = AgencyCommand::RateService(RateService {
                    agency_id: agency_id(agency),
                    report_id,
                    stars: *stars,
                    comment: None,
                });
                world.execute(&served, day(720), command).await;
            }
        }
    }
    world.runner.rebuild(AgencyProjection::NAME).await.unwrap();
    world
}

/// (enterprises, services, ratings, stars) per year, counted over the events by brute force.
type Counts = BTreeMap<i32, (BTreeSet<EnterpriseId>, u32, u32, u32)>;

fn brute_force(
    events: &[(AgencyId, Event)],
    rules: &RuleSet,
) -> (BTreeMap<AgencyId, Counts>, BTreeMap<StaffId, Counts>) {
    let mut stars = BTreeMap::new();
    for (_, event) in events {
        if let Event::ServiceRated(rated) = event {
            stars.insert(rated.report_id, u32::from(rated.stars));
        }
    }
    let mut per_agency: BTreeMap<AgencyId, Counts> = BTreeMap::new();
    let mut per_staff: BTreeMap<StaffId, Counts> = BTreeMap::new();
    for (agency, event) in events {
        let Event::ServiceReported(reported) = event else {
            continue;
        };
        let year = reported.visited_at.with_timezone(&rules.time_zone).year();
        let rating = stars.get(&reported.report_id).copied();
        let count = |counts: &mut Counts| {
            let entry = counts.entry(year).or_default();
            entry.0.insert(reported.enterprise_id);
            entry.1 += 1;
            if let Some(stars) = rating {
                entry.2 += 1;
                entry.3 += stars;
            }
        };
        count(per_agency.entry(*agency).or_default());
        for staff in &reported.staff_ids {
            count(per_staff.entry(*staff).or_default());
        }
    }
    (per_agency, per_staff)
}

fn as_rows(counts: Option<&Counts>) -> Vec<(i32, u32, u32, u32, u32)> {
    counts
        .into_iter()
        .flatten()
        .map(|(year, (enterprises, services, ratings, stars))| {
            (*year, enterprises.len() as u32, *services, *ratings, *stars)
        })
        .collect()
}

async fn check_statistics(steps: Vec<Step>) {
    let world = populated_world(&steps).await;
    let events = world.all_events().await;
    let (per_agency, per_staff) = brute_force(&events, &world.rules);
    let store = world.read_models.as_ref();
    for agency in 0..2 {
        let id = agency_id(agency);
        let projected = read_model::yearly_statistics(store, StatisticsScope::Agency(id), world.rules.time_zone)
            .await
            .unwrap();
        let projected: Vec<_> = projected
            .iter()
            .map(|s| (s.year, s.enterprises_served, s.services, s.ratings, s.stars_total))
            .collect();
        assert_eq!(projected, as_rows(per_agency.get(&id)), "agency {agency}");
        for staff in 0..3 {
            let id = staff_id(agency, staff);
            let projected = read_model::yearly_statistics(store, StatisticsScope::Staff(id), world.rules.time_zone)
                .await
                .unwrap();
            let projected: Vec<_> = projected
                .iter()
                .map(|s| (s.year, s.enterprises_served, s.services, s.ratings, s.stars_total))
                .collect();
            assert_eq!(projected, as_rows(per_staff.get(&id)), "staff {agency}/{staff}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn per_agency_and_per_staff_statistics_equal_a_brute_force_count_over_the_events(
        steps in proptest::collection::vec(step(), 0..40)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check_statistics(steps));
    }
}

#[tokio::test]
async fn a_staff_report_replaces_that_half_years_rows_and_late_reports_are_visible() {
    let world = World::new().await;
    world.register(0, &[0, 1, 2]).await;
    world.report_staff(0, "2019-H2", &[5], day(200)).await;
    world.report_staff(0, "2019-H1", &[1], day(210)).await;
    world.runner.rebuild(AgencyProjection::NAME).await.unwrap();
    let store = world.read_models.as_ref();
    let h1 = read_model::staff_of_agency(store, agency_id(0), Some("2019-H1".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        h1.iter().map(|view| view.member.staff_id).collect::<Vec<_>>(),
        vec![staff_id(0, 1)]
    );
    let reports = read_model::staff_reports(store, agency_id(0)).await.unwrap();
    let lateness: Vec<_> = reports
        .iter()
        .map(|report| (report.half_year.to_string(), report.late))
        .collect();
    // 2019-H1 was re-reported on day 210 (late); 2019-H2 on day 200 (19 July, on time).
    assert_eq!(lateness, vec![("2019-H1".into(), true), ("2019-H2".into(), false)]);
    let latest = read_model::staff_of_agency(store, agency_id(0), None).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].half_year.to_string(), "2019-H2");
}

#[tokio::test]
async fn coverage_counts_enterprises_with_a_contract_in_force_at_the_instant() {
    let world = World::new().await;
    world.register(0, &[0]).await;
    world.sign(0, 1, 1, 10, 100).await;
    world.sign(0, 2, 2, 50, 100).await;
    world.sign(0, 3, 1, 50, 100).await;
    let terminate = AgencyCommand::TerminateContract(TerminateContract {
        agency_id: agency_id(0),
        contract_id: ContractId::from_uuid(Uuid::from_u128(2)),
        reason: "停产".into(),
    });
    assert!(world.execute(&admin(), day(80), terminate).await);
    world.runner.rebuild(AgencyProjection::NAME).await.unwrap();
    let store = world.read_models.as_ref();
    let covered = |at: i64, town: Option<&'static str>| {
        let town = town.map(|town| Town::parse(town).unwrap());
        async move {
            read_model::service_coverage(store, day(at), town.as_ref())
                .await
                .unwrap()
                .into_iter()
                .map(|(enterprise, _)| enterprise)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(covered(9, None).await, vec![]);
    assert_eq!(covered(10, None).await, vec![enterprise_id(1)]);
    assert_eq!(covered(60, None).await, vec![enterprise_id(1), enterprise_id(2)]);
    assert_eq!(covered(60, Some("许村")).await, vec![enterprise_id(2)]);
    assert_eq!(covered(80, None).await, vec![enterprise_id(1)]);
    assert_eq!(covered(150, None).await, vec![]);
}

#[tokio::test]
async fn a_rebuild_from_zero_gives_identical_rows() {
    let steps = vec![
        Step::Report {
            agency: 0,
            contract: 1,
            visit_day: 3,
            staff: vec![0, 1],
        },
        Step::Rate { report: 0, stars: 4 },
    ];
    let world = populated_world(&steps).await;
    let first = dump_tables(world.read_models.as_ref(), &AgencyProjection)
        .await
        .unwrap();
    world.runner.rebuild(AgencyProjection::NAME).await.unwrap();
    let second = dump_tables(world.read_models.as_ref(), &AgencyProjection)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert!(first.contains("agency_report_staff"));
    let reports = read_model::reports_of_agency(world.read_models.as_ref(), agency_id(0))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].stars, Some(4));
    assert_eq!(reports[0].staff_ids.len(), 2);
}
