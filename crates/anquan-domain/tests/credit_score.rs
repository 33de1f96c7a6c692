//! The credit model of rule set v1 (`credit.toml`): each component, each deduction, the grade
//! thresholds, the automatic-D facts, components without evidence and half-years not graded,
//! computed by the pure `compute_score`; and, as properties, that idleness is never rewarded.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

use anquan_domain::credit::{
    CreditComponent, CreditInputs, CreditRules, CreditScore, Grade, MisconductKind, NotGradedReason, compute_score,
};
use anquan_domain::rules::{RuleSet, builtin_v1, builtin_v1_files};
use proptest::prelude::*;

fn rules() -> CreditRules {
    builtin_v1().unwrap().credit
}

/// A half-year that earns every point: 5 five-star ratings, everything sampled qualified, on
/// time and within the band, all staff qualified and reported on time.
fn perfect() -> CreditInputs {
    CreditInputs {
        ratings_count: 5,
        stars_total: 25,
        spot_checks_sampled: 2,
        spot_checks_qualified: 2,
        reports_due: 4,
        reports_on_time: 4,
        visits_promised: 4,
        visits_on_time: 4,
        contracts_in_force: 2,
        contracts_filed: 2,
        contracts_within_band: 2,
        staff_count: 3,
        staff_qualified: 3,
        staff_registry_on_time: true,
        ..CreditInputs::default()
    }
}

fn points(score: &CreditScore, component: CreditComponent) -> f64 {
    score
        .components
        .iter()
        .find(|item| item.component == component)
        .unwrap()
        .points
}

fn score(inputs: CreditInputs) -> CreditScore {
    compute_score(&inputs, &rules())
}

#[test]
fn a_perfect_half_year_scores_100_and_grade_a() {
    let score = score(perfect());
    assert_eq!(score.total, 100.0);
    assert_eq!(score.grade, Some(Grade::A));
    assert_eq!(score.evidence_points, 100);
    assert_eq!(score.components.len(), 6);
    assert_eq!(score.components.iter().map(|c| c.max_points).sum::<u32>(), 100);
    assert!(score.deductions.is_empty());
}

#[test]
fn ratings_score_the_mean_stars_over_five_times_30() {
    let score = score(CreditInputs {
        ratings_count: 6,
        stars_total: 21,
        ..perfect()
    });
    assert_eq!(points(&score, CreditComponent::Ratings), 21.0);
}

#[test]
fn fewer_than_five_ratings_blend_with_the_previous_component_or_take_their_own_mean() {
    let few = CreditInputs {
        ratings_count: 4,
        stars_total: 4,
        ..perfect()
    };
    let with_previous = score(CreditInputs {
        previous_ratings_points: Some(27.5),
        ..few.clone()
    });
    // Four one-star ratings (6 points each) and the previous 27.5 for the fifth.
    assert_eq!(points(&with_previous, CreditComponent::Ratings), 10.3);
    assert_eq!(points(&score(few), CreditComponent::Ratings), 6.0);
    let none_with_previous = score(CreditInputs {
        ratings_count: 0,
        stars_total: 0,
        previous_ratings_points: Some(27.5),
        ..perfect()
    });
    assert_eq!(points(&none_with_previous, CreditComponent::Ratings), 27.5);
}

#[test]
fn no_rating_and_no_previous_grade_is_no_evidence_not_80_percent() {
    let score = score(CreditInputs {
        ratings_count: 0,
        stars_total: 0,
        ..perfect()
    });
    let ratings = score
        .components
        .iter()
        .find(|c| c.component == CreditComponent::Ratings)
        .unwrap();
    assert!(!ratings.evidence);
    assert_eq!(ratings.points, 0.0);
    assert_eq!(score.evidence_points, 70);
    // The rest is perfect: 70 of 70 points, scaled to 100.
    assert_eq!(score.total, 100.0);
}

#[test]
fn report_quality_is_the_qualified_share_of_sampled_reports() {
    let half = score(CreditInputs {
        spot_checks_sampled: 4,
        spot_checks_qualified: 1,
        ..perfect()
    });
    assert_eq!(points(&half, CreditComponent::ReportQuality), 6.25);
    let none = score(CreditInputs {
        spot_checks_sampled: 0,
        spot_checks_qualified: 0,
        ..perfect()
    });
    assert_eq!(points(&none, CreditComponent::ReportQuality), 0.0);
    assert_eq!(none.evidence_points, 75);
}

#[test]
fn timeliness_is_the_share_of_promised_visits_reported_on_time() {
    let score = score(CreditInputs {
        visits_promised: 3,
        visits_on_time: 2,
        ..perfect()
    });
    assert_eq!(points(&score, CreditComponent::Timeliness), 10.0);
    // Reports on time do not stand in for visits promised: with none promised, no evidence.
    let unpromised = compute_score(
        &CreditInputs {
            visits_promised: 0,
            visits_on_time: 0,
            ..perfect()
        },
        &rules(),
    );
    assert!(
        !unpromised
            .components
            .iter()
            .find(|c| c.component == CreditComponent::Timeliness)
            .unwrap()
            .evidence
    );
}

#[test]
fn each_missed_finding_costs_five_points_down_to_zero() {
    let one = score(CreditInputs {
        missed_findings: 1,
        ..perfect()
    });
    assert_eq!(points(&one, CreditComponent::HazardFindings), 5.0);
    let many = score(CreditInputs {
        missed_findings: 7,
        ..perfect()
    });
    assert_eq!(points(&many, CreditComponent::HazardFindings), 0.0);
}

#[test]
fn contract_compliance_is_the_share_of_contracts_within_the_band() {
    let score = score(CreditInputs {
        contracts_filed: 4,
        contracts_within_band: 3,
        ..perfect()
    });
    assert_eq!(points(&score, CreditComponent::ContractCompliance), 7.5);
}

#[test]
fn staff_qualification_weighs_the_qualified_share_and_the_registry_on_time() {
    let score_half = score(CreditInputs {
        staff_count: 4,
        staff_qualified: 2,
        ..perfect()
    });
    assert_eq!(points(&score_half, CreditComponent::StaffQualification), 3.5 + 3.0);
    let late = score(CreditInputs {
        staff_registry_on_time: false,
        ..perfect()
    });
    assert_eq!(points(&late, CreditComponent::StaffQualification), 7.0);
    let no_staff = score(CreditInputs {
        staff_count: 0,
        staff_qualified: 0,
        staff_registry_on_time: false,
        ..perfect()
    });
    assert_eq!(points(&no_staff, CreditComponent::StaffQualification), 0.0);
}

#[test]
fn a_founded_complaint_deducts_5_and_a_warning_notice_10() {
    let score = score(CreditInputs {
        founded_complaints: 2,
        warning_notices: 1,
        ..perfect()
    });
    assert_eq!(score.total, 80.0);
    assert_eq!(score.grade, Some(Grade::B));
    assert_eq!(
        score.deductions.iter().map(|d| d.points).collect::<Vec<_>>(),
        vec![10, 10]
    );
}

#[test]
fn deductions_never_take_the_total_below_zero() {
    let score = score(CreditInputs {
        warning_notices: 20,
        ..perfect()
    });
    assert_eq!(score.total, 0.0);
    assert_eq!(score.grade, Some(Grade::D));
}

#[test]
fn grade_thresholds_are_90_75_and_60() {
    let rules = rules();
    for (total, grade) in [
        (100.0, Grade::A),
        (90.0, Grade::A),
        (89.99, Grade::B),
        (75.0, Grade::B),
        (74.99, Grade::C),
        (60.0, Grade::C),
        (59.99, Grade::D),
        (0.0, Grade::D),
    ] {
        assert_eq!(rules.grade_for(total), grade, "{total}");
    }
}

#[test]
fn automatic_d_misconduct_forces_d_whatever_the_score() {
    for kind in [
        MisconductKind::FalseReport,
        MisconductKind::Subcontracting,
        MisconductKind::PerfunctoryFinding,
        MisconductKind::MaliciousUnderpricing,
    ] {
        let score = score(CreditInputs {
            misconduct: [kind].into(),
            ..perfect()
        });
        assert_eq!(score.total, 100.0);
        assert_eq!(score.grade, Some(Grade::D), "{kind:?}");
        assert_eq!(score.automatic_d, vec![kind]);
    }
    let refused = score(CreditInputs {
        misconduct: [MisconductKind::RefusedRectification].into(),
        ..perfect()
    });
    assert_eq!(refused.grade, Some(Grade::A));
    assert!(refused.automatic_d.is_empty());
}

#[test]
fn weights_that_do_not_add_up_to_100_are_rejected() {
    let mut files = builtin_v1_files();
    let text = files["credit.toml"].replace("ratings = 30", "ratings = 31");
    files.insert("credit.toml".into(), text);
    let error = RuleSet::from_files(&files).unwrap_err();
    assert_eq!(
        error.to_string(),
        "rule set is inconsistent: credit weights add up to 101, not 100"
    );
}

#[test]
fn the_fee_band_tolerance_widens_the_band_on_both_sides() {
    let mut rules = rules();
    assert!(!rules.fee_within_band(2999, 3000, 12000));
    rules.fee_band.tolerance_percent = 10;
    assert!(rules.fee_within_band(2700, 3000, 12000));
    assert!(!rules.fee_within_band(2699, 3000, 12000));
    assert!(rules.fee_within_band(13200, 3000, 12000));
    assert!(!rules.fee_within_band(13201, 3000, 12000));
}

/// The idle agency of issue #21: no contract, report, rating or spot check in the half-year, its
/// staff list filed on time. It used to score 94 (A).
fn idle() -> CreditInputs {
    CreditInputs {
        staff_count: 3,
        staff_qualified: 3,
        staff_registry_on_time: true,
        ..CreditInputs::default()
    }
}

#[test]
fn an_idle_agency_is_not_graded_and_says_why() {
    let score = score(idle());
    assert_eq!(score.grade, None);
    assert_eq!(score.evidence_points, 10);
    assert_eq!(
        score.insufficient,
        Some(NotGradedReason::TooFewContracts {
            contracts_in_force: 0,
            min: 1
        })
    );
    assert_eq!(
        score.insufficient.unwrap().to_string(),
        "未评级：该半年度有效服务合同 0 份，少于 1 份"
    );
}

#[test]
fn a_contract_without_visits_reported_is_not_graded() {
    let score = score(CreditInputs {
        contracts_in_force: 1,
        contracts_filed: 1,
        contracts_within_band: 1,
        visits_promised: 2,
        reports_due: 1,
        reports_on_time: 1,
        visits_on_time: 1,
        ..idle()
    });
    assert_eq!(score.grade, None);
    assert_eq!(
        score.insufficient,
        Some(NotGradedReason::TooFewServiceReports {
            service_reports: 1,
            min: 2
        })
    );
}

#[test]
fn activity_without_ratings_or_spot_checks_rests_on_too_little_evidence() {
    let score = score(CreditInputs {
        ratings_count: 0,
        stars_total: 0,
        spot_checks_sampled: 0,
        spot_checks_qualified: 0,
        ..perfect()
    });
    assert_eq!(score.grade, None);
    assert_eq!(
        score.insufficient,
        Some(NotGradedReason::TooLittleEvidence {
            evidence_points: 45,
            min: 50
        })
    );
}

#[test]
fn an_idle_agency_with_automatic_d_misconduct_is_graded_d() {
    let score = score(CreditInputs {
        misconduct: [MisconductKind::FalseReport].into(),
        ..idle()
    });
    assert_eq!(score.grade, Some(Grade::D));
    assert!(score.insufficient.is_some());
}

#[test]
fn the_active_agency_of_the_issue_grades_b_by_its_record() {
    // 4.3 stars over 10 ratings, 3 of 4 spot checks qualified, every promised visit on time.
    let score = score(CreditInputs {
        ratings_count: 10,
        stars_total: 43,
        spot_checks_sampled: 4,
        spot_checks_qualified: 3,
        ..perfect()
    });
    assert_eq!(score.total, 89.55);
    assert_eq!(score.grade, Some(Grade::B));
    assert!(score.rank_key() < compute_score(&idle(), &rules()).rank_key());
}

/// Facts of a half-year, bounded so that sums cannot overflow.
fn inputs() -> impl Strategy<Value = CreditInputs> {
    (
        (0u32..12, 0u32..=5, proptest::option::of(0u32..=30)),
        (0u32..6, 0u32..6),
        (0u32..8, 0u32..8, 0u32..8),
        (0u32..4, 0u32..5, 0u32..5),
        (0u32..5, 0u32..5, any::<bool>()),
        (0u32..3, 0u32..2, proptest::collection::btree_set(misconduct(), 0..2)),
    )
        .prop_map(
            |(
                (ratings_count, mean, previous),
                (sampled, qualified),
                (promised, on_time, reports),
                (missed, in_force, within),
                (staff_count, staff_qualified, registry),
                (complaints, warnings, misconduct),
            )| CreditInputs {
                ratings_count,
                stars_total: ratings_count * mean.max(1),
                previous_ratings_points: previous.map(f64::from),
                spot_checks_sampled: sampled,
                spot_checks_qualified: qualified.min(sampled),
                reports_due: reports,
                reports_on_time: reports,
                visits_promised: promised,
                visits_on_time: on_time.min(promised).min(reports),
                missed_findings: missed,
                contracts_in_force: in_force,
                contracts_filed: in_force,
                contracts_within_band: within.min(in_force),
                staff_count,
                staff_qualified: staff_qualified.min(staff_count),
                staff_registry_on_time: registry,
                founded_complaints: complaints,
                warning_notices: warnings,
                misconduct,
            },
        )
}

fn misconduct() -> impl Strategy<Value = MisconductKind> {
    prop_oneof![
        Just(MisconductKind::FalseReport),
        Just(MisconductKind::Subcontracting),
        Just(MisconductKind::PerfunctoryFinding),
        Just(MisconductKind::MaliciousUnderpricing),
        Just(MisconductKind::RefusedRectification),
    ]
}

/// One more piece of qualified activity, all else equal.
#[derive(Debug, Clone, Copy)]
enum Qualified {
    /// A five-star rating.
    FiveStarRating,
    /// A sampled report judged qualified.
    SpotCheckPassed,
    /// A promised visit, reported on time.
    VisitReportedOnTime,
    /// A contract priced within the band whose promised visits (0 to 3) were all reported on time.
    ContractKept(u32),
}

fn qualified() -> impl Strategy<Value = Qualified> {
    prop_oneof![
        Just(Qualified::FiveStarRating),
        Just(Qualified::SpotCheckPassed),
        Just(Qualified::VisitReportedOnTime),
        (0u32..4).prop_map(Qualified::ContractKept),
    ]
}

fn with(inputs: &CreditInputs, activity: Qualified) -> CreditInputs {
    let mut more = inputs.clone();
    match activity {
        Qualified::FiveStarRating => {
            more.ratings_count += 1;
            more.stars_total += 5;
        }
        Qualified::SpotCheckPassed => {
            more.spot_checks_sampled += 1;
            more.spot_checks_qualified += 1;
        }
        Qualified::VisitReportedOnTime => {
            more.visits_promised += 1;
            more.visits_on_time += 1;
            more.reports_due += 1;
            more.reports_on_time += 1;
        }
        Qualified::ContractKept(visits) => {
            more.contracts_in_force += 1;
            more.contracts_filed += 1;
            more.contracts_within_band += 1;
            more.visits_promised += visits;
            more.visits_on_time += visits;
            more.reports_due += visits;
            more.reports_on_time += visits;
        }
    }
    more
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn more_qualified_activity_never_lowers_the_score_or_the_standing(
        inputs in inputs(),
        activity in proptest::collection::vec(qualified(), 1..4),
    ) {
        let rules = rules();
        let before = compute_score(&inputs, &rules);
        let mut more = inputs.clone();
        for step in activity {
            more = with(&more, step);
        }
        let after = compute_score(&more, &rules);
        prop_assert!(after.total >= before.total, "{} -> {}: {:?}", before.total, after.total, after);
        // Graded stays graded, and the grade never falls.
        let rank = |score: &CreditScore| score.grade.map_or(4, |grade| grade as u8);
        prop_assert!(rank(&after) <= rank(&before), "{:?} -> {:?}", before.grade, after.grade);
    }

    #[test]
    fn an_idle_agency_never_outranks_an_active_one_with_good_ratings(
        idle_staff in (0u32..6, 0u32..6, any::<bool>()),
        idle_sanctions in (0u32..3, 0u32..2, proptest::collection::btree_set(misconduct(), 0..2)),
        previous in proptest::option::of(0u32..=30),
        active in inputs(),
        ratings in 5u32..12,
        mean_tenths in 40u32..=50,
    ) {
        let rules = rules();
        let (staff_count, staff_qualified, registry) = idle_staff;
        let (complaints, warnings, misconduct) = idle_sanctions;
        let idle = CreditInputs {
            previous_ratings_points: previous.map(f64::from),
            staff_count,
            staff_qualified: staff_qualified.min(staff_count),
            staff_registry_on_time: registry,
            founded_complaints: complaints,
            warning_notices: warnings,
            misconduct,
            ..CreditInputs::default()
        };
        // Active: enough contracts and reports, at least 5 ratings averaging 4 stars or more,
        // no misconduct that forces a D.
        let active = CreditInputs {
            ratings_count: ratings,
            stars_total: ratings * mean_tenths / 10,
            contracts_in_force: active.contracts_in_force.max(1),
            contracts_filed: active.contracts_filed.max(1),
            reports_due: active.reports_due.max(2),
            reports_on_time: active.reports_on_time.max(2),
            misconduct: active
                .misconduct
                .iter()
                .copied()
                .filter(|kind| !rules.automatic_d.misconduct.contains(kind))
                .collect(),
            ..active
        };
        let idle_score = compute_score(&idle, &rules);
        let active_score = compute_score(&active, &rules);
        prop_assert!(active_score.grade.is_some());
        prop_assert!(
            active_score.rank_key() < idle_score.rank_key(),
            "idle {:?} outranks active {:?}", idle_score, active_score
        );
    }
}
