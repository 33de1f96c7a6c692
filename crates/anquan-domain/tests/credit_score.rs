//! The credit model of rule set v1 (`credit.toml`): each component, each deduction, the grade
//! thresholds and the automatic-D facts, computed by the pure `compute_score`.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

use anquan_domain::credit::{
    CreditComponent, CreditInputs, CreditRules, CreditScore, Grade, MisconductKind, compute_score,
};
use anquan_domain::rules::{RuleSet, builtin_v1, builtin_v1_files};

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
    assert_eq!(score.grade, Grade::A);
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
fn fewer_than_five_ratings_use_the_previous_component_or_the_fallback() {
    let few = CreditInputs {
        ratings_count: 4,
        stars_total: 4,
        ..perfect()
    };
    let with_previous = score(CreditInputs {
        previous_ratings_points: Some(27.5),
        ..few.clone()
    });
    assert_eq!(points(&with_previous, CreditComponent::Ratings), 27.5);
    assert_eq!(points(&score(few), CreditComponent::Ratings), 24.0);
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
    assert_eq!(points(&none, CreditComponent::ReportQuality), 25.0);
}

#[test]
fn timeliness_is_the_share_of_reports_on_time() {
    let score = score(CreditInputs {
        reports_due: 3,
        reports_on_time: 2,
        ..perfect()
    });
    assert_eq!(points(&score, CreditComponent::Timeliness), 10.0);
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
    assert_eq!(score.grade, Grade::B);
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
    assert_eq!(score.grade, Grade::D);
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
        assert_eq!(score.grade, Grade::D, "{kind:?}");
        assert_eq!(score.automatic_d, vec![kind]);
    }
    let refused = score(CreditInputs {
        misconduct: [MisconductKind::RefusedRectification].into(),
        ..perfect()
    });
    assert_eq!(refused.grade, Grade::A);
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
