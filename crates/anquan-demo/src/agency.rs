//! One agency's year(s): registration, half-yearly staff reports, the contracts the enterprise
//! plans chose, service visits with reports and hazard photos, the enterprises' star ratings,
//! the city's spot checks and the half-yearly credit grades.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;

use anquan_domain::agency::{
    AgencyCommand, AgencyProfile, AgencyState, ConfirmContract, FeeBand, FileContract, GradeAgency, HazardLevel,
    HazardReport, ProposeContract, Qualification, QualificationKind, RateService, RegisterAgency, ReportService,
    ReportStaff, SpotCheckReport, StaffMember, TerminateContract, WarnAgency, WarningKind,
};
use anquan_domain::credit::{Grade, compute_score};
use anquan_domain::enterprise::FileRef;
use anquan_domain::rules::RuleSet;
use anquan_domain::{Cadence, EnterpriseId, Instant, Period, Role, ServiceReportId, StaffId, Town};
use anquan_event_store::EventStore;

use crate::enterprise::agency_actor;
use crate::plan::{self, ContractPlan, World, tag};
use crate::rates;
use crate::rng::Rng;
use crate::writer::StreamWriter;
use crate::{DemoError, Tuning};

const SURNAMES: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙"];
const GIVEN: [&str; 12] = ["伟", "芳", "军", "敏", "强", "磊", "洋", "静", "杰", "婷", "涛", "丽"];
const SCOPES: [&str; 5] = ["安全评价", "检测检验", "安全咨询", "安全管家", "职业卫生"];

/// A contract as the agency sees it.
#[derive(Debug, Clone)]
pub(crate) struct AgencyContract {
    pub(crate) enterprise_index: u64,
    pub(crate) enterprise_id: EnterpriseId,
    pub(crate) town: Town,
    pub(crate) plan: ContractPlan,
}

/// What happened in one agency's history.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgencyOutcome {
    pub(crate) events: u64,
    pub(crate) appends: u64,
    pub(crate) staff: u64,
    pub(crate) contracts: u64,
    pub(crate) service_reports: u64,
    pub(crate) ratings: u64,
    /// Grades A, B, C, D and not graded.
    pub(crate) grades: [u64; 5],
    pub(crate) blacklisted: bool,
    /// Enterprise indices with a contract in force at the end.
    pub(crate) covered: Vec<u64>,
}

enum Action {
    ReportStaff(Period),
    Sign(usize),
    Terminate(usize),
    Visit {
        contract: usize,
    },
    Rate {
        report_id: ServiceReportId,
        contract: usize,
    },
    SpotCheck(ServiceReportId),
    Grade(Period),
}

/// Runs one agency's history through the store.
pub(crate) async fn simulate(
    store: &dyn EventStore,
    rules: &RuleSet,
    world: &World,
    tuning: &Tuning,
    index: usize,
    contracts: &[AgencyContract],
) -> Result<AgencyOutcome, DemoError> {
    let mut rng = Rng::derive(world.seed, tag::AGENCY_LIFE, index as u64);
    let agency_id = plan::agency_id(world, index);
    let admin = agency_actor("city-admin", Role::CityAdmin)?;
    let staff_actor = agency_actor(&format!("agency-{index}"), Role::Agency { agency_id })?;
    let mut writer: StreamWriter<AgencyState> = StreamWriter::new(agency_id.0);
    let mut outcome = AgencyOutcome::default();
    // Quality drives stars, timeliness and spot-check verdicts, hence the grade.
    let quality = 0.5 + 0.5 * rng.unit().powf(0.7);

    let registered_at = world.start + Duration::days(1) + Duration::hours(rng.between(1, 8));
    let licensed = rng.chance(0.5);
    let band_min = u64::try_from(rng.between(5, 10)).unwrap_or(5) * 1_000;
    let profile = AgencyProfile {
        name: format!(
            "海宁市{}安全技术服务有限公司{}",
            SCOPES[index % SCOPES.len()],
            index + 1
        ),
        licence: licensed.then(|| format!("APJ-(浙)-{:03}", index + 1)),
        service_scope: vec![SCOPES[index % SCOPES.len()].to_owned(), "安全管家".to_owned()],
        service_standards: "每季度上门服务一次，出具书面报告并附隐患照片".to_owned(),
        fee_band: FeeBand {
            min_yuan: band_min,
            max_yuan: band_min * 5,
        },
        contact_phone: Some(format!("0573-87{index:06}")),
    };
    let correlation = rng.uuid();
    writer
        .command(
            store,
            rules,
            &admin,
            registered_at,
            correlation,
            &AgencyCommand::Register(RegisterAgency { agency_id, profile }),
        )
        .await?;

    let staff_count = 2 + rng.poisson(tuning.agency_staff_mean - 2.0);
    let staff: Vec<StaffMember> = (0..staff_count)
        .map(|n| {
            let engineer = rng.chance(0.4);
            StaffMember {
                staff_id: StaffId(rng.uuid()),
                name: format!(
                    "{}{}{}",
                    SURNAMES[rng.below(SURNAMES.len())],
                    GIVEN[rng.below(GIVEN.len())],
                    GIVEN[rng.below(GIVEN.len())]
                ),
                qualifications: vec![Qualification {
                    kind: if engineer {
                        QualificationKind::RegisteredSafetyEngineer
                    } else {
                        QualificationKind::SafetyAssessor
                    },
                    certificate_number: format!("ZJ{index:04}{n:03}"),
                }],
                phone: None,
            }
        })
        .collect();
    outcome.staff = u64::from(staff_count);

    let mut queue: BTreeMap<(Instant, u64), Action> = BTreeMap::new();
    let mut sequence = 0u64;
    let mut at = |queue: &mut BTreeMap<(Instant, u64), Action>, when: Instant, action: Action| {
        if when < world.end {
            sequence += 1;
            queue.insert((when, sequence), action);
        }
    };
    let offset = rules.time_zone;
    let mut half = Cadence::HalfYearly.period_containing(world.start, offset);
    while half.start(offset) < world.end {
        let report_at =
            (half.start(offset) + Duration::days(rng.between(2, 25))).max(registered_at + Duration::hours(1));
        at(&mut queue, report_at, Action::ReportStaff(half));
        // A final grade only once the half-year has ended (issue #21).
        let grade_at = half.end(offset) + Duration::days(rng.between(2, 6));
        at(&mut queue, grade_at, Action::Grade(half));
        half = half.next();
    }
    for (position, contract) in contracts.iter().enumerate() {
        let signed_at = contract.plan.signed_at.max(registered_at + Duration::days(2));
        at(&mut queue, signed_at, Action::Sign(position));
        let visits = contract.plan.visits.max(1);
        let interval = 365.0 / f64::from(visits);
        for visit in 0..visits {
            let day = interval * (f64::from(visit) + 0.5) + rng.between(-10, 10) as f64;
            at(
                &mut queue,
                signed_at + Duration::hours((day.max(3.0) * 24.0) as i64),
                Action::Visit { contract: position },
            );
        }
        if rng.chance(tuning.contract_termination_share) {
            at(
                &mut queue,
                signed_at + Duration::days(rng.between(30, 300)),
                Action::Terminate(position),
            );
        }
    }

    let mut signed = BTreeSet::new();
    let mut terminated = BTreeSet::new();
    while let Some(((now, _), action)) = queue.pop_first() {
        let correlation = rng.uuid();
        match action {
            Action::ReportStaff(half_year) => {
                let command = AgencyCommand::ReportStaff(ReportStaff {
                    agency_id,
                    half_year,
                    staff: staff.clone(),
                });
                writer
                    .command(store, rules, &staff_actor, now, correlation, &command)
                    .await?;
            }
            Action::Sign(position) => {
                let Some(contract) = contracts.get(position) else {
                    continue;
                };
                let command = AgencyCommand::ProposeContract(ProposeContract {
                    agency_id,
                    contract_id: contract.plan.contract_id,
                    enterprise_id: contract.enterprise_id,
                    enterprise_town: contract.town.clone(),
                    valid_from: now,
                    valid_until: contract.plan.valid_until.max(now + Duration::days(300)),
                    services: vec!["隐患排查".to_owned(), "安全培训".to_owned(), "台账指导".to_owned()],
                    visits_promised: contract.plan.visits,
                    fee_yuan: contract.plan.fee_yuan.clamp(band_min, band_min * 5),
                });
                writer
                    .command(store, rules, &staff_actor, now, correlation, &command)
                    .await?;
                // The full flow at the same instant, under the same correlation and without
                // drawing from the generator, so the demo's figures stay: the enterprise confirms
                // and the officer of its town files the contract (the fee is within the band).
                let enterprise = agency_actor(
                    &format!("enterprise-{}", contract.enterprise_index),
                    Role::Enterprise {
                        enterprise_id: contract.enterprise_id,
                    },
                )?;
                let confirm = AgencyCommand::ConfirmContract(ConfirmContract {
                    agency_id,
                    contract_id: contract.plan.contract_id,
                });
                writer
                    .command(store, rules, &enterprise, now, correlation, &confirm)
                    .await?;
                let officer = agency_actor(
                    &format!("town-officer-{}", contract.town),
                    Role::TownOfficer {
                        town: contract.town.clone(),
                    },
                )?;
                let file = AgencyCommand::FileContract(FileContract {
                    agency_id,
                    contract_id: contract.plan.contract_id,
                    exception_reason: None,
                });
                writer.command(store, rules, &officer, now, correlation, &file).await?;
                outcome.contracts += 1;
                signed.insert(position);
            }
            Action::Terminate(position) => {
                let Some(contract) = contracts.get(position) else {
                    continue;
                };
                if !signed.contains(&position) {
                    continue;
                }
                let command = AgencyCommand::TerminateContract(TerminateContract {
                    agency_id,
                    contract_id: contract.plan.contract_id,
                    reason: "企业停产，双方协商解除合同".to_owned(),
                });
                writer
                    .command(store, rules, &staff_actor, now, correlation, &command)
                    .await?;
                terminated.insert(position);
            }
            Action::Visit { contract: position } => {
                let Some(contract) = contracts.get(position) else {
                    continue;
                };
                if !signed.contains(&position) || terminated.contains(&position) {
                    continue;
                }
                let known: Vec<StaffId> = writer.state.known_staff().into_iter().collect();
                if known.is_empty() {
                    continue;
                }
                let late = !rng.chance(quality.min(0.98));
                let reported_at = now + Duration::days(if late { rng.between(8, 20) } else { rng.between(0, 6) });
                if reported_at >= world.end {
                    continue;
                }
                let hazard_count = rng.poisson(1.2);
                let hazards = (0..hazard_count)
                    .map(|_| HazardReport {
                        category: ["电气", "消防", "机械防护", "作业环境"][rng.below(4)].to_owned(),
                        level: HazardLevel::General,
                        description: "服务中发现的一般隐患，已告知企业整改".to_owned(),
                        photos: vec![photo(&mut rng, "隐患照片.jpg")],
                        suggested_deadline: Some(reported_at + Duration::days(15)),
                    })
                    .collect();
                let report_id = ServiceReportId(rng.uuid());
                let command = AgencyCommand::ReportService(ReportService {
                    agency_id,
                    report_id,
                    contract_id: contract.plan.contract_id,
                    visited_at: now,
                    staff_ids: vec![known[rng.below(known.len())]],
                    findings: "现场检查安全管理台账及作业现场，提出整改建议".to_owned(),
                    hazards,
                    photos: vec![photo(&mut rng, "现场照片.jpg")],
                    report_file: photo(&mut rng, "服务报告.pdf"),
                });
                writer
                    .command(store, rules, &staff_actor, reported_at, correlation, &command)
                    .await?;
                outcome.service_reports += 1;
                if rng.chance(tuning.rating_share) {
                    let rate_at = reported_at + Duration::days(rng.between(1, 14));
                    at(
                        &mut queue,
                        rate_at,
                        Action::Rate {
                            report_id,
                            contract: position,
                        },
                    );
                }
                if rng.chance(tuning.spot_check_share) {
                    let check_at = reported_at + Duration::days(rng.between(5, 30));
                    at(&mut queue, check_at, Action::SpotCheck(report_id));
                }
            }
            Action::Rate { report_id, contract } => {
                let Some(contract) = contracts.get(contract) else {
                    continue;
                };
                let enterprise = agency_actor(
                    &format!("enterprise-{}", contract.enterprise_index),
                    Role::Enterprise {
                        enterprise_id: contract.enterprise_id,
                    },
                )?;
                // Stars skew high (mean about 4.3), lower for weaker agencies.
                let good = quality;
                let stars = match rng.unit() {
                    u if u < 0.55 * good => 5,
                    u if u < 0.93 * good + 0.05 => 4,
                    u if u < 0.97 => 3,
                    u if u < 0.99 => 2,
                    _ => 1,
                };
                let command = AgencyCommand::RateService(RateService {
                    agency_id,
                    report_id,
                    stars,
                    comment: (stars <= 3).then(|| "服务不够细致".to_owned()),
                });
                writer
                    .command(store, rules, &enterprise, now, correlation, &command)
                    .await?;
                outcome.ratings += 1;
            }
            Action::SpotCheck(report_id) => {
                let qualified = rng.chance(quality.min(0.97));
                let command = AgencyCommand::SpotCheckReport(SpotCheckReport {
                    agency_id,
                    report_id,
                    qualified,
                    note: (!qualified).then(|| "报告隐患描述不具体，照片不清晰".to_owned()),
                });
                writer.command(store, rules, &admin, now, correlation, &command).await?;
            }
            Action::Grade(half_year) => {
                if writer.state.is_blacklisted() {
                    continue;
                }
                let inputs = writer
                    .state
                    .credit_inputs(half_year, 0, now, &rules.credit, rules.time_zone);
                let grade = compute_score(&inputs, &rules.credit).grade;
                let command = AgencyCommand::Grade(GradeAgency {
                    agency_id,
                    half_year,
                    missed_findings: 0,
                    grade,
                    reason: None,
                });
                writer.command(store, rules, &admin, now, correlation, &command).await?;
                outcome.grades[match grade {
                    Some(Grade::A) => 0,
                    Some(Grade::B) => 1,
                    Some(Grade::C) => 2,
                    Some(Grade::D) => 3,
                    None => 4,
                }] += 1;
                let warning = match grade {
                    Some(Grade::C) => Some(WarningKind::WarningNotice),
                    Some(Grade::D) => Some(WarningKind::Summons),
                    Some(Grade::A | Grade::B) | None => None,
                };
                if let Some(kind) = warning {
                    let command = AgencyCommand::Warn(WarnAgency {
                        agency_id,
                        kind,
                        reason: format!("{half_year} 信用等级 {}", grade.map_or("未评级", Grade::letter)),
                    });
                    let correlation = rng.uuid();
                    writer
                        .command(store, rules, &admin, now + Duration::days(1), correlation, &command)
                        .await?;
                }
            }
        }
    }
    outcome.blacklisted = writer.state.is_blacklisted();
    let mut covered = BTreeSet::new();
    rates::covered_enterprises(&writer.state, world.end, &mut covered);
    let by_id: BTreeMap<EnterpriseId, u64> = contracts
        .iter()
        .map(|contract| (contract.enterprise_id, contract.enterprise_index))
        .collect();
    outcome.covered = covered.iter().filter_map(|id| by_id.get(id).copied()).collect();
    outcome.events = writer.events;
    outcome.appends = writer.appends;
    Ok(outcome)
}

fn photo(rng: &mut Rng, name: &str) -> FileRef {
    FileRef {
        sha256: rng.sha256_hex(),
        size_bytes: u64::try_from(rng.between(80_000, 3_000_000)).unwrap_or(100_000),
        media_type: if name.ends_with(".pdf") {
            "application/pdf".to_owned()
        } else {
            "image/jpeg".to_owned()
        },
        file_name: name.to_owned(),
    }
}
