//! The agency aggregate's rules: given events, when a command, then events or a rejection.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod agency_support;

use agency_support::*;
use anquan_domain::Event;
use anquan_domain::agency::{
    AgencyCommand, AgencyState, ChangeAgencyProfile, ChangeBlacklist, FeeCheck, GradeAgency, HazardLevel, HazardReport,
    RecordMisconduct, RegradeAgency, ReportService, WarnAgency, WarningKind,
};
use anquan_domain::credit::{Grade, MisconductKind};

const NOW: &str = "2019-03-01T00:00:00Z";

fn grade(half_year: &str, grade: impl Into<Option<Grade>>, reason: Option<&str>) -> AgencyCommand {
    AgencyCommand::Grade(GradeAgency {
        agency_id: AGENCY,
        half_year: half_year.parse().unwrap(),
        missed_findings: 0,
        grade: grade.into(),
        reason: reason.map(str::to_owned),
    })
}

fn regrade(half_year: &str, grade: impl Into<Option<Grade>>, reason: &str) -> AgencyCommand {
    AgencyCommand::Regrade(RegradeAgency {
        agency_id: AGENCY,
        half_year: half_year.parse().unwrap(),
        missed_findings: 0,
        grade: grade.into(),
        reason: reason.to_owned(),
    })
}

/// `registered_with_contract` and a half-year of work: two visits reported on time (the
/// contract's 4 visits a year promise one by 2019-H1's end, pro rata and rounded down), both
/// rated five stars, the first spot-checked and qualified. Score: ratings 30, report quality 25,
/// timeliness 15, hazard findings 10, contracts 10, staff 6.5 (1 of 2 qualified, registry on
/// time) = 96.5, grade A.
fn active_half_year() -> Vec<Event> {
    let mut events = registered_with_contract();
    let served = enterprise_user(enterprise(1));
    extend(
        &mut events,
        &[
            (
                agency_user(AGENCY),
                "2019-02-02T00:00:00Z",
                report(1, 1, "2019-02-01T00:00:00Z", &[1]),
            ),
            (
                agency_user(AGENCY),
                "2019-04-02T00:00:00Z",
                report(2, 1, "2019-04-01T00:00:00Z", &[2]),
            ),
            (served.clone(), "2019-04-03T00:00:00Z", rate(1, 5)),
            (served, "2019-04-03T00:00:00Z", rate(2, 5)),
            (
                admin(),
                "2019-04-05T00:00:00Z",
                AgencyCommand::SpotCheckReport(anquan_domain::agency::SpotCheckReport {
                    agency_id: AGENCY,
                    report_id: report_id(1),
                    qualified: true,
                    note: None,
                }),
            ),
        ],
    );
    events
}

fn blacklist(blacklisted: bool) -> AgencyCommand {
    AgencyCommand::ChangeBlacklist(ChangeBlacklist {
        agency_id: AGENCY,
        blacklisted,
        reason: "决定".into(),
    })
}

fn misconduct(kind: MisconductKind) -> AgencyCommand {
    AgencyCommand::RecordMisconduct(RecordMisconduct {
        agency_id: AGENCY,
        kind,
        report_id: None,
        reason: "执法确认".into(),
    })
}

fn warn(kind: WarningKind) -> AgencyCommand {
    AgencyCommand::Warn(WarnAgency {
        agency_id: AGENCY,
        kind,
        reason: "通报".into(),
    })
}

#[test]
fn only_the_city_registers_agencies_and_only_once() {
    assert!(matches!(
        given(&[]).when(&admin(), NOW, &register()).unwrap().as_slice(),
        [Event::AgencyRegistered(e)] if e.agency_id == AGENCY
    ));
    assert_eq!(given(&[]).rejects(&agency_user(AGENCY), NOW, &register()), "FORBIDDEN");
    let registered = history(&[(admin(), NOW, register())]);
    assert_eq!(
        given(&registered).rejects(&admin(), NOW, &register()),
        "ALREADY_REGISTERED"
    );
}

#[test]
fn an_agency_changes_only_its_own_profile() {
    let registered = history(&[(admin(), NOW, register())]);
    let mut profile = profile();
    profile.fee_band.max_yuan = 20_000;
    let change = AgencyCommand::ChangeProfile(ChangeAgencyProfile {
        agency_id: AGENCY,
        profile: profile.clone(),
    });
    assert!(given(&registered).when(&agency_user(AGENCY), NOW, &change).is_ok());
    let other = agency_user(anquan_domain::AgencyId::from_uuid(uuid::Uuid::from_u128(7)));
    assert_eq!(given(&registered).rejects(&other, NOW, &change), "FORBIDDEN");
    profile.fee_band.min_yuan = 30_000;
    let inverted = AgencyCommand::ChangeProfile(ChangeAgencyProfile {
        agency_id: AGENCY,
        profile,
    });
    assert_eq!(
        given(&registered).rejects(&agency_user(AGENCY), NOW, &inverted),
        "INVALID_FEE_BAND"
    );
}

#[test]
fn a_staff_report_replaces_that_half_years_list_only() {
    let mut events = history(&[(admin(), "2019-01-02T00:00:00Z", register())]);
    extend(
        &mut events,
        &[
            (
                agency_user(AGENCY),
                "2019-01-10T00:00:00Z",
                report_staff("2019-H1", &[1, 2, 3]),
            ),
            (
                agency_user(AGENCY),
                "2019-07-10T00:00:00Z",
                report_staff("2019-H2", &[4]),
            ),
            (
                agency_user(AGENCY),
                "2019-07-11T00:00:00Z",
                report_staff("2019-H1", &[2]),
            ),
        ],
    );
    let state = AgencyState::from_events(&events);
    let h1: Vec<_> = state.staff_reports[&"2019-H1".parse().unwrap()]
        .staff
        .iter()
        .map(|member| member.staff_id)
        .collect();
    assert_eq!(h1, vec![staff_id(2)]);
    assert_eq!(state.staff_reports[&"2019-H2".parse().unwrap()].staff.len(), 1);
}

#[test]
fn a_staff_report_after_its_due_date_is_flagged_late() {
    // 2019-H2 starts 2019-07-01 00:00 +08:00; the report is due 30 days later.
    let registered = history(&[(admin(), "2019-01-02T00:00:00Z", register())]);
    let on_time = given(&registered)
        .when(
            &agency_user(AGENCY),
            "2019-07-30T15:59:59Z",
            &report_staff("2019-H2", &[1]),
        )
        .unwrap();
    assert!(matches!(on_time.as_slice(), [Event::StaffReported(e)] if !e.late));
    let late = given(&registered)
        .when(
            &agency_user(AGENCY),
            "2019-07-30T16:00:01Z",
            &report_staff("2019-H2", &[1]),
        )
        .unwrap();
    assert!(matches!(late.as_slice(), [Event::StaffReported(e)] if e.late));
    assert_eq!(
        given(&registered).rejects(
            &agency_user(AGENCY),
            "2019-06-01T00:00:00Z",
            &report_staff("2019-H2", &[1])
        ),
        "INVALID_HALF_YEAR"
    );
    assert_eq!(
        given(&registered).rejects(&agency_user(AGENCY), NOW, &report_staff("2019-Q1", &[1])),
        "INVALID_HALF_YEAR"
    );
    assert_eq!(
        given(&registered).rejects(&agency_user(AGENCY), NOW, &report_staff("2019-H1", &[1, 1])),
        "DUPLICATE_STAFF"
    );
}

#[test]
fn a_fee_outside_the_published_band_is_recorded_and_flagged() {
    let registered = history(&[(admin(), "2019-01-02T00:00:00Z", register())]);
    for (fee, expected) in [
        (2999, FeeCheck::BelowBand),
        (3000, FeeCheck::WithinBand),
        (12000, FeeCheck::WithinBand),
        (12001, FeeCheck::AboveBand),
    ] {
        let events = given(&registered)
            .when(&agency_user(AGENCY), NOW, &sign(1, 1, fee))
            .unwrap();
        let [Event::ContractProposed(signed)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(signed.fee_check, expected, "fee {fee}");
        assert_eq!(signed.fee_band, profile().fee_band);
    }
}

#[test]
fn a_blacklisted_agency_cannot_sign_until_delisted() {
    let mut events = history(&[(admin(), "2019-01-02T00:00:00Z", register())]);
    extend(&mut events, &[(admin(), "2019-01-03T00:00:00Z", blacklist(true))]);
    assert_eq!(
        given(&events).rejects(&agency_user(AGENCY), NOW, &sign(1, 1, 5000)),
        "AGENCY_BLACKLISTED"
    );
    assert_eq!(
        given(&events).rejects(&admin(), NOW, &sign(1, 1, 5000)),
        "AGENCY_BLACKLISTED"
    );
    extend(&mut events, &[(admin(), "2019-01-04T00:00:00Z", blacklist(false))]);
    assert!(
        given(&events)
            .when(&agency_user(AGENCY), NOW, &sign(1, 1, 5000))
            .is_ok()
    );
    assert_eq!(
        given(&events).rejects(&admin(), NOW, &blacklist(false)),
        "NOT_BLACKLISTED"
    );
}

#[test]
fn a_service_report_names_registered_staff_within_the_contract() {
    let events = registered_with_contract();
    let given = given(&events);
    let agency = agency_user(AGENCY);
    assert_eq!(
        given.rejects(&agency, NOW, &report(1, 1, "2019-02-01T00:00:00Z", &[9])),
        "UNKNOWN_STAFF"
    );
    assert_eq!(
        given.rejects(&agency, NOW, &report(1, 2, "2019-02-01T00:00:00Z", &[1])),
        "UNKNOWN_CONTRACT"
    );
    assert_eq!(
        given.rejects(&agency, NOW, &report(1, 1, "2019-03-02T00:00:00Z", &[1])),
        "VISIT_IN_FUTURE"
    );
    assert_eq!(
        given.rejects(
            &agency,
            "2020-03-01T00:00:00Z",
            &report(1, 1, "2020-02-01T00:00:00Z", &[1])
        ),
        "CONTRACT_NOT_IN_FORCE"
    );
    assert_eq!(
        given.rejects(&admin(), NOW, &report(1, 1, "2019-02-01T00:00:00Z", &[])),
        "INVALID_FIELD"
    );
}

#[test]
fn a_service_report_is_on_time_within_the_window_and_numbers_its_hazards() {
    let events = registered_with_contract();
    let with_hazards = AgencyCommand::ReportService(ReportService {
        hazards: vec![
            HazardReport {
                category: "电气".into(),
                level: HazardLevel::General,
                description: "配电箱未接地".into(),
                photos: vec![file_ref(9)],
                suggested_deadline: None,
            },
            HazardReport {
                category: "消防".into(),
                level: HazardLevel::Major,
                description: "通道堵塞".into(),
                photos: Vec::new(),
                suggested_deadline: None,
            },
        ],
        ..match report(1, 1, "2019-02-01T00:00:00Z", &[1, 2]) {
            AgencyCommand::ReportService(command) => command,
            _ => unreachable!(),
        }
    });
    let decided = given(&events)
        .when(&agency_user(AGENCY), "2019-02-08T00:00:00Z", &with_hazards)
        .unwrap();
    let [Event::ServiceReported(reported)] = decided.as_slice() else {
        panic!("{decided:?}");
    };
    assert!(reported.on_time);
    assert_eq!(reported.enterprise_id, enterprise(1));
    assert_eq!(
        reported.hazards.iter().map(|hazard| hazard.index).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let late = given(&events)
        .when(
            &agency_user(AGENCY),
            "2019-02-08T00:00:01Z",
            &report(1, 1, "2019-02-01T00:00:00Z", &[1]),
        )
        .unwrap();
    assert!(matches!(late.as_slice(), [Event::ServiceReported(e)] if !e.on_time));
}

#[test]
fn only_the_served_enterprise_rates_a_service_once_with_one_to_five_stars() {
    let mut events = registered_with_contract();
    extend(
        &mut events,
        &[(
            agency_user(AGENCY),
            "2019-02-02T00:00:00Z",
            report(1, 1, "2019-02-01T00:00:00Z", &[1]),
        )],
    );
    let given_reported = given(&events);
    let served = enterprise_user(enterprise(1));
    assert!(matches!(
        given_reported.when(&served, NOW, &rate(1, 5)).unwrap().as_slice(),
        [Event::ServiceRated(e)] if e.stars == 5 && e.enterprise_id == enterprise(1)
    ));
    assert_eq!(
        given_reported.rejects(&enterprise_user(enterprise(2)), NOW, &rate(1, 5)),
        "NOT_SERVED_ENTERPRISE"
    );
    assert_eq!(
        given_reported.rejects(&agency_user(AGENCY), NOW, &rate(1, 5)),
        "FORBIDDEN"
    );
    assert_eq!(given_reported.rejects(&admin(), NOW, &rate(1, 5)), "FORBIDDEN");
    for stars in [0, 6, -1, 300] {
        assert_eq!(
            given_reported.rejects(&served, NOW, &rate(1, stars)),
            "STARS_OUT_OF_RANGE"
        );
    }
    assert_eq!(given_reported.rejects(&served, NOW, &rate(2, 3)), "UNKNOWN_REPORT");
    extend(&mut events, &[(served.clone(), NOW, rate(1, 4))]);
    assert_eq!(given(&events).rejects(&served, NOW, &rate(1, 3)), "ALREADY_RATED");
}

#[test]
fn grading_records_the_computed_score_and_a_differing_grade_needs_a_reason() {
    let events = active_half_year();
    let given = given(&events);
    let decided = given
        .when(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", Grade::A, None))
        .unwrap();
    let [Event::CreditGraded(graded)] = decided.as_slice() else {
        panic!("{decided:?}");
    };
    assert_eq!(graded.inputs.staff_count, 2);
    assert_eq!(graded.inputs.staff_qualified, 1);
    assert!(graded.inputs.staff_registry_on_time);
    assert_eq!((graded.inputs.visits_promised, graded.inputs.visits_on_time), (1, 1));
    assert_eq!(graded.computed.total, 96.5);
    assert_eq!(graded.computed.grade, Some(Grade::A));
    assert!(!graded.provisional);
    assert_eq!(
        given.rejects(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", Grade::B, None)),
        "GRADE_REASON_REQUIRED"
    );
    assert!(
        given
            .when(
                &admin(),
                "2019-07-02T00:00:00Z",
                &grade("2019-H1", Grade::B, Some("现场抽查发现问题"))
            )
            .is_ok()
    );
    assert_eq!(
        given.rejects(
            &agency_user(AGENCY),
            "2019-07-02T00:00:00Z",
            &grade("2019-H1", Grade::A, None)
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        given.rejects(&admin(), "2019-06-02T00:00:00Z", &grade("2019-H2", Grade::A, None)),
        "INVALID_HALF_YEAR"
    );
    let mut graded_once = events.clone();
    extend(
        &mut graded_once,
        &[(admin(), "2019-07-02T00:00:00Z", grade("2019-H1", Grade::A, None))],
    );
    assert_eq!(
        agency_support::given(&graded_once).rejects(
            &admin(),
            "2019-07-03T00:00:00Z",
            &grade("2019-H1", Grade::A, None)
        ),
        "ALREADY_GRADED"
    );
}

#[test]
fn an_idle_half_year_is_not_graded_and_may_not_be_given_a_or_b() {
    // A contract but no visit reported, rating or spot check: the old defaults gave 90.5 (A).
    let events = registered_with_contract();
    let given = given(&events);
    let decided = given
        .when(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", None, None))
        .unwrap();
    let [Event::CreditGraded(graded)] = decided.as_slice() else {
        panic!("{decided:?}");
    };
    assert_eq!(graded.grade, None);
    assert_eq!(graded.computed.grade, None);
    assert_eq!(
        graded.computed.insufficient.as_ref().unwrap().to_string(),
        "未评级：该半年度服务报告 0 份，少于 2 份"
    );
    for letter in [Grade::A, Grade::B, Grade::C] {
        assert_eq!(
            given.rejects(
                &admin(),
                "2019-07-02T00:00:00Z",
                &grade("2019-H1", letter, Some("表现良好"))
            ),
            "NOT_GRADABLE"
        );
    }
    assert_eq!(
        given.rejects(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", Grade::D, None)),
        "GRADE_REASON_REQUIRED"
    );
}

#[test]
fn a_grade_before_the_half_year_ends_is_provisional_and_replaced_by_the_final_one() {
    let events = active_half_year();
    let decided = given(&events)
        .when(&admin(), "2019-06-02T00:00:00Z", &grade("2019-H1", Grade::A, None))
        .unwrap();
    let [Event::CreditGraded(provisional)] = decided.as_slice() else {
        panic!("{decided:?}");
    };
    assert!(provisional.provisional);
    // Promised visits are counted up to the grading instant.
    assert_eq!(provisional.inputs.visits_promised, 1);
    let mut events = events;
    extend(
        &mut events,
        &[(admin(), "2019-06-02T00:00:00Z", grade("2019-H1", Grade::A, None))],
    );
    let state = AgencyState::from_events(&events);
    assert!(!state.finally_graded("2019-H1".parse().unwrap()));
    // Again while provisional, then final once the half-year has ended.
    assert!(
        given(&events)
            .when(&admin(), "2019-06-20T00:00:00Z", &grade("2019-H1", Grade::A, None))
            .is_ok()
    );
    let decided = given(&events)
        .when(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", Grade::A, None))
        .unwrap();
    assert!(matches!(decided.as_slice(), [Event::CreditGraded(e)] if !e.provisional));
    // A provisional D never counts toward the blacklist's consecutive Ds.
    let mut ds = registered_with_contract();
    extend(
        &mut ds,
        &[(admin(), "2019-06-02T00:00:00Z", grade("2019-H1", Grade::D, Some("差")))],
    );
    let decided = given(&ds)
        .when(
            &admin(),
            "2020-01-02T00:00:00Z",
            &grade("2019-H2", Grade::D, Some("差")),
        )
        .unwrap();
    assert!(matches!(decided.as_slice(), [Event::CreditGraded(_)]));
}

#[test]
fn a_final_grade_is_changed_only_by_a_regrading_with_a_reason() {
    let mut events = active_half_year();
    assert_eq!(
        given(&events).rejects(&admin(), "2019-07-02T00:00:00Z", &regrade("2019-H1", Grade::B, "复核")),
        "NOT_FINALLY_GRADED"
    );
    extend(
        &mut events,
        &[(admin(), "2019-07-02T00:00:00Z", grade("2019-H1", Grade::A, None))],
    );
    let given = given(&events);
    assert_eq!(
        given.rejects(&admin(), "2019-08-02T00:00:00Z", &regrade("2019-H1", Grade::B, "  ")),
        "INVALID_FIELD"
    );
    assert_eq!(
        given.rejects(
            &agency_user(AGENCY),
            "2019-08-02T00:00:00Z",
            &regrade("2019-H1", Grade::B, "复核")
        ),
        "FORBIDDEN"
    );
    let decided = given
        .when(
            &admin(),
            "2019-08-02T00:00:00Z",
            &regrade("2019-H1", Grade::B, "复核发现报告不实"),
        )
        .unwrap();
    let [Event::CreditRegraded(regraded)] = decided.as_slice() else {
        panic!("{decided:?}");
    };
    assert_eq!(regraded.previous_grade, Some(Grade::A));
    assert_eq!(regraded.grade, Some(Grade::B));
    assert_eq!(regraded.computed.grade, Some(Grade::A));
    assert_eq!(regraded.reason, "复核发现报告不实");
    extend(
        &mut events,
        &[(
            admin(),
            "2019-08-02T00:00:00Z",
            regrade("2019-H1", Grade::B, "复核发现报告不实"),
        )],
    );
    let state = AgencyState::from_events(&events);
    assert_eq!(state.grades[&"2019-H1".parse().unwrap()].grade, Some(Grade::B));
}

#[test]
fn two_consecutive_d_grades_put_the_agency_on_the_blacklist() {
    let mut events = registered_with_contract();
    extend(
        &mut events,
        &[(
            admin(),
            "2019-07-02T00:00:00Z",
            grade("2019-H1", Grade::D, Some("多次投诉")),
        )],
    );
    assert!(!AgencyState::from_events(&events).is_blacklisted());
    let decided = given(&events)
        .when(
            &admin(),
            "2020-01-02T00:00:00Z",
            &grade("2019-H2", Grade::D, Some("仍未改善")),
        )
        .unwrap();
    assert!(matches!(
        decided.as_slice(),
        [Event::CreditGraded(_), Event::AgencyBlacklisted(_)]
    ));
    // A D after a C is not two in a row.
    let mut events = active_half_year();
    extend(
        &mut events,
        &[(
            admin(),
            "2019-07-02T00:00:00Z",
            grade("2019-H1", Grade::C, Some("一般")),
        )],
    );
    let decided = given(&events)
        .when(
            &admin(),
            "2020-01-02T00:00:00Z",
            &grade("2019-H2", Grade::D, Some("差")),
        )
        .unwrap();
    assert!(matches!(decided.as_slice(), [Event::CreditGraded(_)]));
}

#[test]
fn a_confirmed_false_report_forces_grade_d_and_the_blacklist() {
    let events = registered_with_contract();
    let decided = given(&events)
        .when(&admin(), NOW, &misconduct(MisconductKind::FalseReport))
        .unwrap();
    assert!(matches!(
        decided.as_slice(),
        [Event::AgencyMisconductFound(_), Event::AgencyBlacklisted(_)]
    ));
    let mut events = events;
    extend(&mut events, &[(admin(), NOW, misconduct(MisconductKind::FalseReport))]);
    let graded = given(&events)
        .when(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", Grade::D, None))
        .unwrap();
    let Event::CreditGraded(graded) = &graded[0] else {
        panic!("{graded:?}");
    };
    assert_eq!(graded.computed.grade, Some(Grade::D));
    assert_eq!(graded.computed.automatic_d, vec![MisconductKind::FalseReport]);
    assert_eq!(
        given(&events).rejects(&agency_user(AGENCY), NOW, &sign(2, 2, 5000)),
        "AGENCY_BLACKLISTED"
    );
}

#[test]
fn subcontracting_forces_d_without_blacklisting() {
    let mut events = registered_with_contract();
    let decided = given(&events)
        .when(&admin(), NOW, &misconduct(MisconductKind::Subcontracting))
        .unwrap();
    assert!(matches!(decided.as_slice(), [Event::AgencyMisconductFound(_)]));
    extend(
        &mut events,
        &[(admin(), NOW, misconduct(MisconductKind::Subcontracting))],
    );
    let graded = given(&events)
        .when(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", Grade::D, None))
        .unwrap();
    assert!(matches!(graded.as_slice(), [Event::CreditGraded(e)] if e.computed.grade == Some(Grade::D)));
}

#[test]
fn refusing_to_rectify_is_found_only_after_a_summons_and_blacklists() {
    let mut events = registered_with_contract();
    assert_eq!(
        given(&events).rejects(&admin(), NOW, &misconduct(MisconductKind::RefusedRectification)),
        "NO_SUMMONS"
    );
    extend(&mut events, &[(admin(), NOW, warn(WarningKind::Summons))]);
    let decided = given(&events)
        .when(&admin(), NOW, &misconduct(MisconductKind::RefusedRectification))
        .unwrap();
    assert!(matches!(
        decided.as_slice(),
        [Event::AgencyMisconductFound(_), Event::AgencyBlacklisted(_)]
    ));
}

#[test]
fn warnings_and_complaints_in_the_half_year_are_deducted_from_the_grade() {
    let mut events = active_half_year();
    extend(
        &mut events,
        &[
            (admin(), NOW, warn(WarningKind::WarningNotice)),
            (admin(), NOW, warn(WarningKind::Summons)),
            (
                admin(),
                NOW,
                AgencyCommand::FoundComplaint(anquan_domain::agency::FoundComplaint {
                    agency_id: AGENCY,
                    complaint: "未上门".into(),
                }),
            ),
            // Outside the half-year: not counted in 2019-H1.
            (admin(), "2019-07-01T00:00:00Z", warn(WarningKind::WarningNotice)),
        ],
    );
    let decided = given(&events)
        .when(&admin(), "2019-07-02T00:00:00Z", &grade("2019-H1", Grade::B, None))
        .unwrap();
    let [Event::CreditGraded(graded)] = decided.as_slice() else {
        panic!("{decided:?}");
    };
    assert_eq!(graded.inputs.warning_notices, 1);
    assert_eq!(graded.inputs.founded_complaints, 1);
    assert_eq!(graded.computed.total, 96.5 - 15.0);
    assert_eq!(graded.computed.grade, Some(Grade::B));
}

#[test]
fn the_credit_inputs_count_ratings_spot_checks_timeliness_and_contracts_of_the_half_year() {
    let mut events = registered_with_contract();
    let served = enterprise_user(enterprise(1));
    extend(
        &mut events,
        &[
            (
                agency_user(AGENCY),
                "2019-02-02T00:00:00Z",
                report(1, 1, "2019-02-01T00:00:00Z", &[1]),
            ),
            (
                agency_user(AGENCY),
                "2019-02-20T00:00:00Z",
                report(2, 1, "2019-02-10T00:00:00Z", &[2]),
            ),
            (served.clone(), "2019-02-21T00:00:00Z", rate(1, 4)),
            (served, "2019-02-21T00:00:00Z", rate(2, 2)),
            (
                admin(),
                "2019-03-01T00:00:00Z",
                AgencyCommand::SpotCheckReport(anquan_domain::agency::SpotCheckReport {
                    agency_id: AGENCY,
                    report_id: report_id(2),
                    qualified: false,
                    note: None,
                }),
            ),
            (agency_user(AGENCY), "2019-03-02T00:00:00Z", sign(2, 2, 100)),
            (enterprise_user(enterprise(2)), "2019-03-02T00:00:00Z", confirm(2)),
            (
                town_officer("许村"),
                "2019-03-02T00:00:00Z",
                file(2, Some("首年优惠，经审核同意")),
            ),
        ],
    );
    let rules = rules();
    let inputs = AgencyState::from_events(&events).credit_inputs(
        "2019-H1".parse().unwrap(),
        1,
        at("2019-07-02T00:00:00Z"),
        &rules.credit,
        rules.time_zone,
    );
    assert_eq!((inputs.ratings_count, inputs.stars_total), (2, 6));
    assert_eq!((inputs.spot_checks_sampled, inputs.spot_checks_qualified), (1, 0));
    assert_eq!((inputs.reports_due, inputs.reports_on_time), (2, 1));
    assert_eq!((inputs.contracts_filed, inputs.contracts_within_band), (2, 1));
    assert_eq!(inputs.contracts_in_force, 2);
    // Each contract promises 4 visits a year: one by the half-year's end (pro rata, rounded
    // down). Contract 1's on-time report meets its one; contract 2 has none.
    assert_eq!((inputs.visits_promised, inputs.visits_on_time), (2, 1));
    assert_eq!(inputs.missed_findings, 1);
}

#[test]
fn a_contract_is_proposed_confirmed_and_filed_in_that_order_by_its_own_parties() {
    let mut events = history(&[
        (admin(), "2019-01-02T00:00:00Z", register()),
        (agency_user(AGENCY), "2019-01-11T00:00:00Z", sign(1, 1, 5000)),
    ]);
    // Filing before the enterprise confirmed; the wrong enterprise; the wrong town; other roles.
    assert_eq!(
        given(&events).rejects(&town_officer("许村"), NOW, &file(1, None)),
        "CONTRACT_NOT_CONFIRMED"
    );
    assert_eq!(
        given(&events).rejects(&enterprise_user(enterprise(2)), NOW, &confirm(1)),
        "NOT_CONTRACT_ENTERPRISE"
    );
    assert_eq!(
        given(&events).rejects(&agency_user(AGENCY), NOW, &confirm(1)),
        "FORBIDDEN"
    );
    assert_eq!(given(&events).rejects(&admin(), NOW, &file(1, None)), "FORBIDDEN");
    assert_eq!(
        given(&events).rejects(&town_officer("许村"), NOW, &confirm(99)),
        "FORBIDDEN"
    );
    assert_eq!(
        given(&events).rejects(&enterprise_user(enterprise(1)), NOW, &confirm(99)),
        "UNKNOWN_CONTRACT"
    );
    extend(&mut events, &[(enterprise_user(enterprise(1)), NOW, confirm(1))]);
    assert_eq!(
        given(&events).rejects(&enterprise_user(enterprise(1)), NOW, &confirm(1)),
        "CONTRACT_ALREADY_ANSWERED"
    );
    assert_eq!(
        given(&events).rejects(&enterprise_user(enterprise(1)), NOW, &reject(1, "不同意")),
        "CONTRACT_ALREADY_ANSWERED"
    );
    assert_eq!(
        given(&events).rejects(&town_officer("周王庙"), NOW, &file(1, None)),
        "NOT_CONTRACT_TOWN"
    );
    let state = AgencyState::from_events(&events);
    assert!(!state.contracts[&contract_id(1)].in_force_at(at("2019-06-01T00:00:00Z")));
    extend(&mut events, &[(town_officer("许村"), NOW, file(1, None))]);
    assert!(matches!(events.last(), Some(Event::ContractFiled(filed)) if filed.fee_exception_reason.is_none()));
    assert_eq!(
        given(&events).rejects(&town_officer("许村"), NOW, &file(1, None)),
        "CONTRACT_ALREADY_FILED"
    );
    let state = AgencyState::from_events(&events);
    assert!(state.contracts[&contract_id(1)].in_force_at(at("2019-06-01T00:00:00Z")));
}

#[test]
fn a_rejected_contract_can_be_neither_confirmed_nor_filed_nor_terminated() {
    let mut events = history(&[
        (admin(), "2019-01-02T00:00:00Z", register()),
        (agency_user(AGENCY), "2019-01-11T00:00:00Z", sign(1, 1, 5000)),
    ]);
    assert_eq!(
        given(&events).rejects(&enterprise_user(enterprise(1)), NOW, &reject(1, "  ")),
        "INVALID_FIELD"
    );
    extend(
        &mut events,
        &[(enterprise_user(enterprise(1)), NOW, reject(1, "服务内容与洽谈不符"))],
    );
    for (actor, command) in [
        (enterprise_user(enterprise(1)), confirm(1)),
        (enterprise_user(enterprise(1)), reject(1, "再次拒绝")),
        (town_officer("许村"), file(1, None)),
    ] {
        assert_eq!(given(&events).rejects(&actor, NOW, &command), "CONTRACT_REJECTED");
    }
    let terminate = AgencyCommand::TerminateContract(anquan_domain::agency::TerminateContract {
        agency_id: AGENCY,
        contract_id: contract_id(1),
        reason: "撤回".to_owned(),
    });
    assert_eq!(
        given(&events).rejects(&agency_user(AGENCY), NOW, &terminate),
        "CONTRACT_REJECTED"
    );
}

#[test]
fn a_fee_outside_the_band_is_filed_only_with_an_exception_reason() {
    let events = history(&[
        (admin(), "2019-01-02T00:00:00Z", register()),
        (agency_user(AGENCY), "2019-01-11T00:00:00Z", sign(1, 1, 100)),
        (enterprise_user(enterprise(1)), "2019-01-12T00:00:00Z", confirm(1)),
    ]);
    assert_eq!(
        given(&events).rejects(&town_officer("许村"), NOW, &file(1, Some("  "))),
        "FEE_EXCEPTION_REASON_REQUIRED"
    );
    let filed = given(&events)
        .when(&town_officer("许村"), NOW, &file(1, Some("小微企业首年优惠")))
        .unwrap();
    let [Event::ContractFiled(filed)] = filed.as_slice() else {
        panic!("{filed:?}");
    };
    assert_eq!(filed.fee_check, FeeCheck::BelowBand);
    assert_eq!(filed.fee_exception_reason.as_deref(), Some("小微企业首年优惠"));
}

#[test]
fn a_contract_not_filed_serves_no_visit_and_counts_for_no_credit() {
    let mut events = history(&[
        (admin(), "2019-01-02T00:00:00Z", register()),
        (
            agency_user(AGENCY),
            "2019-01-10T00:00:00Z",
            report_staff("2019-H1", &[1, 2]),
        ),
        (agency_user(AGENCY), "2019-01-11T00:00:00Z", sign(1, 1, 5000)),
        (enterprise_user(enterprise(1)), "2019-01-12T00:00:00Z", confirm(1)),
    ]);
    assert_eq!(
        given(&events).rejects(
            &agency_user(AGENCY),
            "2019-02-20T00:00:00Z",
            &report(1, 1, "2019-02-10T00:00:00Z", &[1])
        ),
        "CONTRACT_NOT_FILED"
    );
    let rules = rules();
    let inputs = |events: &[Event]| {
        AgencyState::from_events(events).credit_inputs(
            "2019-H1".parse().unwrap(),
            0,
            at("2019-07-02T00:00:00Z"),
            &rules.credit,
            rules.time_zone,
        )
    };
    let before = inputs(&events);
    assert_eq!(
        (
            before.contracts_filed,
            before.contracts_in_force,
            before.visits_promised
        ),
        (0, 0, 0)
    );
    extend(
        &mut events,
        &[(town_officer("许村"), "2019-01-13T00:00:00Z", file(1, None))],
    );
    let after = inputs(&events);
    assert_eq!((after.contracts_filed, after.contracts_in_force), (1, 1));
    assert!(after.visits_promised > 0);
}
