//! The agency credit model (domain.md §4): rules parsed from `credit.toml`, the inputs of one
//! half-year, and the pure score computation with its breakdown, deductions and automatic-D
//! reasons.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::agency::QualificationKind;

/// A half-yearly credit grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
}

impl Grade {
    /// Returns the grade's letter.
    pub fn letter(self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

/// Misconduct an official found; some kinds force grade D or the blacklist (rule data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisconductKind {
    /// A false service report (出具虚假报告), confirmed by enforcement.
    FalseReport,
    /// The service was subcontracted (转包).
    Subcontracting,
    /// A perfunctory, box-ticking finding (走过场).
    PerfunctoryFinding,
    /// Malicious underpricing (恶意低价).
    MaliciousUnderpricing,
    /// Refusing to rectify after a summons (约谈后拒不整改).
    RefusedRectification,
}

/// The six scored components of the half-year score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditComponent {
    Ratings,
    ReportQuality,
    Timeliness,
    HazardFindings,
    ContractCompliance,
    StaffQualification,
}

/// The kinds of deduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeductionKind {
    FoundedComplaint,
    WarningNotice,
}

/// The credit rules of a rule set (`credit.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditRules {
    pub weights: Weights,
    pub ratings: RatingRules,
    pub report_quality: ReportQualityRules,
    pub timeliness: TimelinessRules,
    pub hazard_findings: HazardFindingRules,
    pub contract_compliance: ContractComplianceRules,
    pub fee_band: FeeBandRules,
    pub staff: StaffRules,
    pub deductions: DeductionRules,
    pub grades: GradeThresholds,
    pub activity: ActivityRules,
    pub automatic_d: AutomaticDRules,
    pub blacklist: BlacklistRules,
}

/// Misconduct that forces grade D.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomaticDRules {
    pub misconduct: BTreeSet<MisconductKind>,
}

/// Component weights in points (they add up to 100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub ratings: u32,
    pub report_quality: u32,
    pub timeliness: u32,
    pub hazard_findings: u32,
    pub contract_compliance: u32,
    pub staff_qualification: u32,
}

/// How ratings are scored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingRules {
    /// Below this many ratings the half-year's ratings are blended with the previous grade's
    /// component, each missing rating counting as that component.
    pub min_ratings: u32,
}

/// How report quality is scored (no rule values yet: nothing sampled is no evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQualityRules {}

/// When a service report is on time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelinessRules {
    pub window_days: u32,
}

/// How much activity and evidence a half-year needs to be graded at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityRules {
    /// Contracts in force at some time in the half-year.
    pub min_contracts_in_force: u32,
    /// Service reports of visits in the half-year.
    pub min_service_reports: u32,
    /// The weight (points of 100) of the components that have evidence.
    pub min_evidence_points: u32,
}

/// The penalty for hazards the agency missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HazardFindingRules {
    pub points_per_missed_finding: u32,
}

/// How contract compliance is scored (no rule values yet: no contract is no evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractComplianceRules {}

/// How a contract's fee is checked against the agency's published band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeBandRules {
    pub tolerance_percent: u32,
}

/// Staff qualification and the half-yearly staff report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffRules {
    pub qualified_kinds: BTreeSet<QualificationKind>,
    pub qualified_share_percent: u32,
    pub registry_on_time_percent: u32,
    pub report_due_days: u32,
}

/// Points deducted per fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeductionRules {
    pub founded_complaint: u32,
    pub warning_notice: u32,
}

/// The lowest score of grades A, B and C.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeThresholds {
    pub a_min: u32,
    pub b_min: u32,
    pub c_min: u32,
}

/// When an agency goes on the blacklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlacklistRules {
    pub consecutive_d: u32,
    pub misconduct: BTreeSet<MisconductKind>,
}

/// The facts of one agency's half-year that the score is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreditInputs {
    /// Ratings given in the half-year and their stars.
    pub ratings_count: u32,
    pub stars_total: u32,
    /// The ratings component of the previous grade, used when there are too few ratings.
    pub previous_ratings_points: Option<f64>,
    /// Service reports the government sampled in the half-year, and how many were qualified.
    pub spot_checks_sampled: u32,
    pub spot_checks_qualified: u32,
    /// Service reports of visits in the half-year, and how many were uploaded on time.
    pub reports_due: u32,
    pub reports_on_time: u32,
    /// Visits the contracts promised in the half-year (each contract's promise pro rata of the
    /// part of its period in the half-year, up to the grading instant, rounded down), and the
    /// on-time reports that meet them (per contract, at most its promised visits). Absent in
    /// `CreditGraded` v1 (0).
    #[serde(default)]
    pub visits_promised: u32,
    #[serde(default)]
    pub visits_on_time: u32,
    /// Contracts in force at some time in the half-year (absent in v1: 0).
    #[serde(default)]
    pub contracts_in_force: u32,
    /// Hazards a later government inspection found that the agency missed (the official's count).
    pub missed_findings: u32,
    /// Contracts signed in the half-year, and how many were priced within the band.
    pub contracts_filed: u32,
    pub contracts_within_band: u32,
    /// Staff in the half-year's registry and how many are qualified.
    pub staff_count: u32,
    pub staff_qualified: u32,
    /// Whether the half-year's staff report was filed by its due date.
    pub staff_registry_on_time: bool,
    /// Complaints found to be founded, and warning notices, in the half-year.
    pub founded_complaints: u32,
    pub warning_notices: u32,
    /// Misconduct found in the half-year (every kind; the rules say which force a D).
    pub misconduct: BTreeSet<MisconductKind>,
}

/// One component's points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentScore {
    pub component: CreditComponent,
    /// Zero when the component has no evidence.
    pub points: f64,
    pub max_points: u32,
    /// Whether the half-year holds evidence for the component; a component without evidence
    /// is left out of the total instead of scoring full or partial marks (v1: always true).
    #[serde(default = "evidence_v1")]
    pub evidence: bool,
    /// How the points were reached, for the official and the agency.
    pub basis: String,
}

/// One deduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deduction {
    pub kind: DeductionKind,
    pub count: u32,
    pub points: u32,
}

/// The computed score of a half-year.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditScore {
    pub components: Vec<ComponentScore>,
    pub deductions: Vec<Deduction>,
    /// The weight of the components with evidence (v1: 100).
    #[serde(default = "evidence_points_v1")]
    pub evidence_points: u32,
    /// The points of the components with evidence scaled to 100, minus deductions, never below
    /// zero, rounded to 0.01.
    pub total: f64,
    /// Misconduct that forces grade D.
    pub automatic_d: Vec<MisconductKind>,
    /// Why the half-year shows too little activity or evidence to be graded (v1: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insufficient: Option<NotGradedReason>,
    /// The grade; `None` is "not graded" (未评级): too little activity or evidence and no
    /// automatic-D misconduct.
    pub grade: Option<Grade>,
}

/// Why a half-year is not graded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotGradedReason {
    /// Fewer contracts in force than `activity.min_contracts_in_force`.
    TooFewContracts { contracts_in_force: u32, min: u32 },
    /// Fewer service reports than `activity.min_service_reports`.
    TooFewServiceReports { service_reports: u32, min: u32 },
    /// The components with evidence weigh less than `activity.min_evidence_points`.
    TooLittleEvidence { evidence_points: u32, min: u32 },
}

impl fmt::Display for NotGradedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotGradedReason::TooFewContracts {
                contracts_in_force,
                min,
            } => write!(f, "未评级：该半年度有效服务合同 {contracts_in_force} 份，少于 {min} 份"),
            NotGradedReason::TooFewServiceReports { service_reports, min } => {
                write!(f, "未评级：该半年度服务报告 {service_reports} 份，少于 {min} 份")
            }
            NotGradedReason::TooLittleEvidence { evidence_points, min } => {
                write!(f, "未评级：有评价依据的分项合计 {evidence_points} 分，少于 {min} 分")
            }
        }
    }
}

impl CreditScore {
    /// The order of the public directory, best first: grades A to D, then not graded; within a
    /// grade, a half-year with enough activity before one without, then the higher total.
    pub fn rank_key(&self) -> (u8, bool, std::cmp::Reverse<i64>) {
        let grade = self.grade.map_or(4, |grade| grade as u8);
        // Totals are rounded to hundredths and lie in 0..=100, so the cast is exact.
        #[allow(clippy::cast_possible_truncation, reason = "a total of 0..=100 in hundredths")]
        let hundredths = (self.total * 100.0).round() as i64;
        (grade, self.insufficient.is_some(), std::cmp::Reverse(hundredths))
    }
}

fn evidence_v1() -> bool {
    true
}

fn evidence_points_v1() -> u32 {
    100
}

/// Why the credit rules are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditRulesError {
    #[error("credit weights add up to {0}, not 100")]
    WeightsNot100(u32),
    #[error("credit grade thresholds must fall: a_min {a_min} > b_min {b_min} > c_min {c_min}")]
    Thresholds { a_min: u32, b_min: u32, c_min: u32 },
    #[error("credit percentage {field} is {value}, above 100")]
    PercentAbove100 { field: &'static str, value: u32 },
    #[error("staff component shares add up to {0}, not 100")]
    StaffSharesNot100(u32),
    #[error("blacklist.consecutive_d must be at least 1")]
    ConsecutiveDZero,
}

impl CreditRules {
    /// Checks the rules are consistent.
    pub fn check(&self) -> Result<(), CreditRulesError> {
        let w = &self.weights;
        let sum = w.ratings
            + w.report_quality
            + w.timeliness
            + w.hazard_findings
            + w.contract_compliance
            + w.staff_qualification;
        if sum != 100 {
            return Err(CreditRulesError::WeightsNot100(sum));
        }
        let g = &self.grades;
        if !(g.a_min > g.b_min && g.b_min > g.c_min && g.a_min <= 100) {
            return Err(CreditRulesError::Thresholds {
                a_min: g.a_min,
                b_min: g.b_min,
                c_min: g.c_min,
            });
        }
        for (field, value) in [
            ("fee_band.tolerance_percent", self.fee_band.tolerance_percent),
            ("activity.min_evidence_points", self.activity.min_evidence_points),
        ] {
            if value > 100 {
                return Err(CreditRulesError::PercentAbove100 { field, value });
            }
        }
        let staff = self.staff.qualified_share_percent + self.staff.registry_on_time_percent;
        if staff != 100 {
            return Err(CreditRulesError::StaffSharesNot100(staff));
        }
        if self.blacklist.consecutive_d == 0 {
            return Err(CreditRulesError::ConsecutiveDZero);
        }
        Ok(())
    }

    /// Returns the grade a total score earns, before automatic-D facts.
    pub fn grade_for(&self, total: f64) -> Grade {
        let g = &self.grades;
        if total >= f64::from(g.a_min) {
            Grade::A
        } else if total >= f64::from(g.b_min) {
            Grade::B
        } else if total >= f64::from(g.c_min) {
            Grade::C
        } else {
            Grade::D
        }
    }

    /// Tells whether a fee lies within the band, widened by the tolerance.
    pub fn fee_within_band(&self, fee_yuan: u64, min_yuan: u64, max_yuan: u64) -> bool {
        let tolerance = u128::from(self.fee_band.tolerance_percent);
        let fee = u128::from(fee_yuan) * 100;
        let low = u128::from(min_yuan) * (100 - tolerance.min(100));
        let high = u128::from(max_yuan) * (100 + tolerance);
        low <= fee && fee <= high
    }
}

/// Computes the half-year score, its breakdown, deductions and grade.
///
/// A component without evidence in the half-year (no rating and no previous grade, no report
/// sampled, no visit promised, no visit and no missed finding, no contract) scores nothing and
/// is left out: the total is the points of the components with evidence scaled to 100. A
/// half-year with too little activity or evidence (`activity`) is not graded, unless
/// misconduct forces a D.
pub fn compute_score(inputs: &CreditInputs, rules: &CreditRules) -> CreditScore {
    let w = &rules.weights;
    let components = vec![
        ratings_component(inputs, rules),
        share_component(
            CreditComponent::ReportQuality,
            w.report_quality,
            inputs.spot_checks_qualified,
            inputs.spot_checks_sampled,
            "qualified of sampled reports",
        ),
        share_component(
            CreditComponent::Timeliness,
            w.timeliness,
            inputs.visits_on_time,
            inputs.visits_promised,
            "promised visits reported on time",
        ),
        hazard_component(inputs, rules),
        share_component(
            CreditComponent::ContractCompliance,
            w.contract_compliance,
            inputs.contracts_within_band,
            inputs.contracts_filed,
            "contracts priced within the band",
        ),
        staff_component(inputs, rules),
    ];
    let deductions: Vec<Deduction> = [
        (
            DeductionKind::FoundedComplaint,
            inputs.founded_complaints,
            rules.deductions.founded_complaint,
        ),
        (
            DeductionKind::WarningNotice,
            inputs.warning_notices,
            rules.deductions.warning_notice,
        ),
    ]
    .into_iter()
    .filter(|(_, count, _)| *count > 0)
    .map(|(kind, count, each)| Deduction {
        kind,
        count,
        points: count.saturating_mul(each),
    })
    .collect();
    let evidence_points: u32 = components
        .iter()
        .filter(|component| component.evidence)
        .map(|component| component.max_points)
        .sum();
    let earned: f64 = components.iter().map(|component| component.points).sum();
    let scaled = if evidence_points == 0 {
        0.0
    } else {
        earned / f64::from(evidence_points) * 100.0
    };
    let deducted: u32 = deductions.iter().map(|deduction| deduction.points).sum();
    let total = round2((scaled - f64::from(deducted)).max(0.0));
    let automatic_d: Vec<MisconductKind> = inputs
        .misconduct
        .iter()
        .copied()
        .filter(|kind| rules.automatic_d.misconduct.contains(kind))
        .collect();
    let insufficient = insufficient(inputs, evidence_points, rules);
    let grade = if !automatic_d.is_empty() {
        Some(Grade::D)
    } else if insufficient.is_some() {
        None
    } else {
        Some(rules.grade_for(total))
    };
    CreditScore {
        components,
        deductions,
        evidence_points,
        total,
        automatic_d,
        insufficient,
        grade,
    }
}

/// Tells why a half-year shows too little activity or evidence to be graded, if it does.
fn insufficient(inputs: &CreditInputs, evidence_points: u32, rules: &CreditRules) -> Option<NotGradedReason> {
    let activity = &rules.activity;
    if inputs.contracts_in_force < activity.min_contracts_in_force {
        Some(NotGradedReason::TooFewContracts {
            contracts_in_force: inputs.contracts_in_force,
            min: activity.min_contracts_in_force,
        })
    } else if inputs.reports_due < activity.min_service_reports {
        Some(NotGradedReason::TooFewServiceReports {
            service_reports: inputs.reports_due,
            min: activity.min_service_reports,
        })
    } else if evidence_points < activity.min_evidence_points {
        Some(NotGradedReason::TooLittleEvidence {
            evidence_points,
            min: activity.min_evidence_points,
        })
    } else {
        None
    }
}

/// The ratings component. With at least `min_ratings` ratings: mean stars ÷ 5 × weight. With
/// fewer and a previous grade: each missing rating counts as the previous grade's component
/// (a blend, so that a good rating never lowers the score, as plain fallback to the previous
/// component would when the fifth rating arrives). With fewer and no previous grade: the mean
/// of the ratings there are; with none, no evidence.
fn ratings_component(inputs: &CreditInputs, rules: &CreditRules) -> ComponentScore {
    let weight = f64::from(rules.weights.ratings);
    let count = inputs.ratings_count;
    let min = rules.ratings.min_ratings;
    let star_points = f64::from(inputs.stars_total) / 5.0 * weight;
    let (points, evidence, basis) = match inputs.previous_ratings_points {
        _ if count > 0 && count >= min => (
            star_points / f64::from(count),
            true,
            format!(
                "mean {:.2} stars of {count} ratings",
                f64::from(inputs.stars_total) / f64::from(count)
            ),
        ),
        Some(previous) => {
            let previous = previous.clamp(0.0, weight);
            // Here count < min (or both are 0), so count + missing = min.
            let missing = min.saturating_sub(count);
            let blended = if min == 0 {
                previous
            } else {
                (star_points + previous * f64::from(missing)) / f64::from(min)
            };
            (
                blended,
                true,
                format!(
                    "{count} ratings (fewer than {min}): blended with the previous grade's component {previous:.2} for the {missing} missing"
                ),
            )
        }
        None if count > 0 => (
            star_points / f64::from(count),
            true,
            format!(
                "mean {:.2} stars of {count} ratings (fewer than {min}, no previous grade)",
                f64::from(inputs.stars_total) / f64::from(count)
            ),
        ),
        None => (0.0, false, "no ratings and no previous grade: no evidence".to_owned()),
    };
    ComponentScore {
        component: CreditComponent::Ratings,
        points: round2(points.clamp(0.0, weight)),
        max_points: rules.weights.ratings,
        evidence,
        basis,
    }
}

fn share_component(component: CreditComponent, weight: u32, good: u32, total: u32, what: &str) -> ComponentScore {
    let (points, evidence, basis) = if total == 0 {
        (0.0, false, "none in the half-year: no evidence".to_owned())
    } else {
        (
            f64::from(good.min(total)) / f64::from(total) * f64::from(weight),
            true,
            format!("{} of {total} {what}", good.min(total)),
        )
    };
    ComponentScore {
        component,
        points: round2(points),
        max_points: weight,
        evidence,
        basis,
    }
}

fn hazard_component(inputs: &CreditInputs, rules: &CreditRules) -> ComponentScore {
    let weight = rules.weights.hazard_findings;
    let penalty = inputs
        .missed_findings
        .saturating_mul(rules.hazard_findings.points_per_missed_finding);
    // Evidence: a visit the agency reported, or a finding it missed.
    let evidence = inputs.reports_due > 0 || inputs.missed_findings > 0;
    ComponentScore {
        component: CreditComponent::HazardFindings,
        points: if evidence {
            f64::from(weight.saturating_sub(penalty))
        } else {
            0.0
        },
        max_points: weight,
        evidence,
        basis: if evidence {
            format!("{} missed findings", inputs.missed_findings)
        } else {
            "no visit and no missed finding: no evidence".to_owned()
        },
    }
}

fn staff_component(inputs: &CreditInputs, rules: &CreditRules) -> ComponentScore {
    let weight = f64::from(rules.weights.staff_qualification);
    let share = if inputs.staff_count == 0 {
        0.0
    } else {
        f64::from(inputs.staff_qualified.min(inputs.staff_count)) / f64::from(inputs.staff_count)
    };
    let share_points = weight * f64::from(rules.staff.qualified_share_percent) / 100.0 * share;
    let registry_points = if inputs.staff_registry_on_time {
        weight * f64::from(rules.staff.registry_on_time_percent) / 100.0
    } else {
        0.0
    };
    ComponentScore {
        component: CreditComponent::StaffQualification,
        points: round2(share_points + registry_points),
        max_points: rules.weights.staff_qualification,
        // The staff registry is always evidence: a missing list scores nothing.
        evidence: true,
        basis: format!(
            "{} of {} staff qualified; registry {}",
            inputs.staff_qualified,
            inputs.staff_count,
            if inputs.staff_registry_on_time {
                "on time"
            } else {
                "late or missing"
            }
        ),
    }
}

/// Rounds to hundredths of a point, so stored scores read cleanly and compare exactly.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
