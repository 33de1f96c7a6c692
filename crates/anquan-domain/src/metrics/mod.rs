//! The town dashboard's metric catalogue (domain.md §5): the 78 metrics as rule-set data
//! (`projections/<version>/metrics.toml`) and the pure computation behind each one.
//!
//! A metric names a built-in computation, its [`Measure`]. Most metrics are sums over the
//! enterprises of a town: [`enterprise_contribution`] gives one enterprise's numerator and
//! denominator parts for every metric at an instant, so a town's figure is the sum of its
//! enterprises' contributions and the city's is the sum of the towns'. Agency metrics
//! (scope `city`) are not owned by a town; [`agency_tallies`] computes them from the agencies'
//! facts. Nothing here reads a clock or a store: the facts and the instant are parameters.

mod measure;
mod next;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use measure::{
    AgencyFacts, ContractFact, Contribution, GradeFact, ReportFact, ServiceFacts, Span, StaffFact, StaffList,
    agency_tallies, cadence_met, cadence_met_in, cadence_met_over, completed_period, enterprise_contribution,
    judged_periods, metric_span, period_label, window_period, window_start,
};
pub use next::{ContributionHistory, contribution_history, next_calendar_change, next_change};

use crate::agency::QualificationKind;
use crate::enterprise::event::{HazardLevel, InspectorLevel};
use crate::ids::{IndicatorCode, RequirementCode, Town};
use crate::rules::{Condition, RiskColour};

/// The catalogue of one rule set: parameters, breakdowns and the metrics in display order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricCatalogue {
    /// C05: a record pending review longer than this many days is backlog.
    pub pending_review_days: u32,
    /// How indicator and requirement rates (`indicator_implemented`, `requirement_satisfied`)
    /// count an enterprise whose indicator or requirement is not yet due (未到期).
    pub not_yet_due: crate::rules::NotYetDue,
    /// The towns dashboards list, in order.
    pub towns: Vec<Town>,
    /// Enterprise types the metrics can be filtered by.
    pub breakdowns: Vec<Breakdown>,
    pub metrics: Vec<Metric>,
    /// The annual town assessment's scoring (`[assessment]`); none: the rule set scores no
    /// assessment.
    pub assessment: Option<crate::assessment::AssessmentRules>,
}

/// An enterprise type to filter the metrics by: enterprises whose profile at the instant
/// matches `when`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breakdown {
    pub name: String,
    pub name_zh: String,
    pub name_en: String,
    pub when: Condition,
}

/// One metric of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub numerator: String,
    /// Empty for a plain count.
    pub denominator: String,
    pub window: Window,
    /// Which periods of the window the figure counts (see [`Covers`]).
    pub covers: Covers,
    pub unit: Unit,
    pub scope: Scope,
    pub headline: Option<Headline>,
    /// False when no fact is recorded for it yet (it reads 0).
    pub recorded: bool,
    pub measure: Measure,
}

/// Which stretch of time a metric looks at.
///
/// A window ends at the instant, inclusive. An instant exactly on a period boundary (local
/// 1 January or 1 July, 00:00) closes the period that ends there, so the window is that whole
/// period: asked at 2020-01-01T00:00+08:00, a year-to-date figure is the figure for 2019, the
/// instant an annual report is taken at (see [`window_period`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The state at the instant.
    Snapshot,
    /// 1 January (local) up to the instant.
    Ytd,
    /// The local half-year containing the instant, up to the instant.
    HalfYear,
}

/// Which periods a windowed metric counts at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Covers {
    /// The window up to the instant, the period in progress included.
    #[default]
    ToInstant,
    /// Only periods that ended by the instant (for cadence metrics, whose period in progress
    /// reads about 0 at its start): for `half_year` the latest half-year that ended by the
    /// instant; for `ytd` the part of a year that ended with the latest completed half-year
    /// (its first half-year, or the whole year once the second ended). See
    /// [`completed_period`] and [`judged_periods`].
    CompletedPeriods,
}

/// How a metric's value follows from its numerator and denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// The numerator; with a denominator, the mean numerator / denominator.
    Count,
    /// 100 × numerator / denominator, 1 decimal.
    Percent,
    /// Numerator seconds / denominator / 86,400, 1 decimal.
    Days,
    /// Numerator stars / denominator ratings, 2 decimals.
    Stars,
}

/// Who owns a metric's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each town's enterprises; the city is the sum.
    #[default]
    Town,
    /// City-wide only (agencies serve across towns).
    City,
}

/// The five rates the source article names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Headline {
    /// 企业主体落实率.
    #[serde(rename = "enterprise_responsibility_rate")]
    EnterpriseResponsibilityRate,
    /// 负责人、安管员培训率.
    #[serde(rename = "principal_and_safety_officer_training_rate")]
    PrincipalAndSafetyOfficerTrainingRate,
    /// 应急演练完成率.
    #[serde(rename = "emergency_drill_completion_rate")]
    EmergencyDrillCompletionRate,
    /// 社会化服务覆盖率.
    #[serde(rename = "social_service_coverage")]
    SocialServiceCoverage,
    /// 500万以上企业服务覆盖率.
    #[serde(rename = "service_coverage_over_5m_revenue")]
    ServiceCoverageOver5mRevenue,
}

impl Headline {
    /// All five, in the article's order.
    pub const ALL: [Headline; 5] = [
        Headline::EnterpriseResponsibilityRate,
        Headline::PrincipalAndSafetyOfficerTrainingRate,
        Headline::EmergencyDrillCompletionRate,
        Headline::SocialServiceCoverage,
        Headline::ServiceCoverageOver5mRevenue,
    ];
}

/// Which requirements' enterprises a requirement rate is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenominatorOf {
    /// Every active enterprise.
    Active,
    /// The enterprises where the requirement applies.
    Applicable,
}

/// The built-in computation of a metric, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measure {
    /// Active enterprises matching `filter` / active enterprises.
    Enterprises { filter: Condition },
    /// Enterprises registered in the window (parts: created, closed).
    RegisteredInWindow,
    /// Enterprises with main responsibility implemented / active.
    ResponsibilityImplemented,
    /// Enterprises with the indicator implemented / where it applies.
    IndicatorImplemented { indicator: IndicatorCode },
    /// Records uploaded in the window.
    DocumentsUploaded,
    /// Records reviewed in the window.
    DocumentsReviewed,
    /// Records returned / reviewed in the window.
    DocumentsReturned,
    /// Returns and approvals with a comment in the window.
    FeedbackIssued,
    /// Records pending longer than the catalogue's `pending_review_days`.
    ReviewBacklog,
    /// Enterprises with the requirement satisfied / active or applicable.
    RequirementSatisfied {
        requirement: RequirementCode,
        denominator_of: DenominatorOf,
    },
    /// Enterprises matching `filter` with an approved record of one of the requirements for
    /// the window's period (year or half-year) / enterprises matching `filter`.
    PeriodRecordApproved {
        requirements: Vec<RequirementCode>,
        filter: Condition,
    },
    /// Enterprises that kept the requirement's cadence in the window / enterprises where the
    /// requirement applies: every period of its cadence (rule data, chosen by the profile) that
    /// began in the window before the instant, and did not end before the enterprise registered,
    /// has an approved record for exactly that period, known by the instant. See
    /// [`cadence_met`].
    CadenceMet { requirement: RequirementCode },
    /// Records of the requirements approved in the window.
    RecordsApproved { requirements: Vec<RequirementCode> },
    /// Government training sessions (parts: sessions, attendees); not recorded yet.
    TrainingSessions,
    /// Inspections held in the window, by city or town staff (`None`: both).
    Inspections { level: Option<InspectorLevel> },
    /// Enterprises inspected in the window / active.
    EnterprisesInspected,
    /// Government hazards found in the window, of a level (`None`: both).
    GovernmentHazards { level: Option<HazardLevel> },
    /// Of those, closed by the instant / found.
    GovernmentHazardsClosed { level: Option<HazardLevel> },
    /// Government hazards overdue at the instant.
    OverdueGovernmentHazards,
    /// Seconds from finding to closing / closed, over government hazards found in the window.
    RectificationTime,
    /// Government hazards found / inspections held, in the window.
    HazardsPerInspection,
    /// First verdicts passed / given, in the window.
    FirstReviewPass,
    /// Self-inspection hazards found in the window.
    SelfInspectionHazards,
    /// Active enterprises of one of the colours / active.
    RiskColour { colours: Vec<RiskColour> },
    /// Enterprises matching `filter` with a contract in force / enterprises matching `filter`.
    ServiceCovered { filter: Condition },
    /// Contracts in force.
    ContractsInForce,
    /// Service reports filed in the window.
    ServiceReports,
    /// Hazards in the service reports filed in the window.
    ServiceReportHazards,
    /// Visits in the window reported on time / reported.
    ServiceReportsOnTime,
    /// Stars / ratings given in the window.
    ServiceRating,
    /// Agencies registered (city).
    AgenciesRegistered,
    /// Staff on the latest lists; with a qualification: qualified / staff (city).
    AgencyStaff { qualification: Option<QualificationKind> },
    /// Grades of the last completed half-year (parts: A, B, C, D) (city).
    AgencyGrades,
    /// Warning notices and summonses in the window (parts: warning_notice, summons) (city).
    AgencyWarnings,
    /// Agencies on the blacklist (city).
    AgenciesBlacklisted,
}

impl Measure {
    /// The names of the parts a figure of this measure is split into (empty: none).
    pub fn part_names(&self) -> &'static [&'static str] {
        match self {
            Measure::RegisteredInWindow => &["created", "closed"],
            Measure::TrainingSessions => &["sessions", "attendees"],
            Measure::AgencyGrades => &["A", "B", "C", "D"],
            Measure::AgencyWarnings => &["warning_notice", "summons"],
            _ => &[],
        }
    }
}

/// A metric's figure before it becomes a value: the numerator, the denominator and the parts
/// (see [`Measure::part_names`]), all whole numbers so sums are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tally {
    pub numerator: i64,
    pub denominator: i64,
    pub parts: [i64; 4],
}

impl Tally {
    /// Adds another tally into this one.
    pub fn add(&mut self, other: &Tally) {
        self.numerator += other.numerator;
        self.denominator += other.denominator;
        for (part, more) in self.parts.iter_mut().zip(other.parts) {
            *part += more;
        }
    }

    /// Takes another tally out of this one.
    pub fn subtract(&mut self, other: &Tally) {
        self.numerator -= other.numerator;
        self.denominator -= other.denominator;
        for (part, less) in self.parts.iter_mut().zip(other.parts) {
            *part -= less;
        }
    }
}

impl Metric {
    /// The metric's value from its tally: `None` when a ratio has a zero denominator.
    /// Percentages and days are rounded to 1 decimal, means to 2.
    #[allow(clippy::cast_precision_loss, reason = "tallies are far below 2^52")]
    pub fn value(&self, tally: &Tally) -> Option<f64> {
        let numerator = tally.numerator as f64;
        let denominator = tally.denominator as f64;
        let ratio = |scale: f64, decimals: i32| {
            (tally.denominator != 0).then(|| round(numerator * scale / denominator, decimals))
        };
        match self.unit {
            Unit::Count if self.denominator.is_empty() => Some(numerator),
            Unit::Count | Unit::Stars => ratio(1.0, 2),
            Unit::Percent => ratio(100.0, 1),
            Unit::Days => ratio(1.0 / 86_400.0, 1),
        }
    }

    /// Completes a summed tally. Every part is now summed from the enterprises' contributions
    /// (A08's created and closed) or set by the agency figures, so nothing is left to fill; kept
    /// as the one place a derived part would go.
    pub fn complete(&self, tally: Tally) -> Tally {
        tally
    }

    /// Tells whether the metric's value is a plain count (no denominator).
    pub fn is_count(&self) -> bool {
        self.unit == Unit::Count && self.denominator.is_empty()
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl MetricCatalogue {
    /// Finds a metric by code.
    pub fn metric(&self, code: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.code == code)
    }

    /// Returns the index of a metric by code.
    pub fn index_of(&self, code: &str) -> Option<usize> {
        self.metrics.iter().position(|metric| metric.code == code)
    }

    /// Returns the metric that carries a headline rate.
    pub fn headline(&self, headline: Headline) -> Option<(usize, &Metric)> {
        self.metrics
            .iter()
            .enumerate()
            .find(|(_, metric)| metric.headline == Some(headline))
    }

    /// Finds a breakdown by name.
    pub fn breakdown(&self, name: &str) -> Option<(usize, &Breakdown)> {
        self.breakdowns
            .iter()
            .enumerate()
            .find(|(_, breakdown)| breakdown.name == name)
    }
}

/// The most breakdowns a catalogue may define (they are kept as bits of a `u32`).
pub const BREAKDOWNS_MAX: usize = 32;

/// Why `metrics.toml` does not make a catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("metric {code}: {reason}")]
    Metric { code: String, reason: String },
    #[error("metric catalogue: {0}")]
    Catalogue(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsFile {
    parameters: Parameters,
    #[serde(default)]
    breakdowns: Vec<Breakdown>,
    metrics: Vec<RawMetric>,
    #[serde(default)]
    assessment: Option<crate::assessment::AssessmentRules>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    pending_review_days: u32,
    #[serde(default)]
    not_yet_due: crate::rules::NotYetDue,
    towns: Vec<Town>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum LevelName {
    Any,
    City,
    Town,
    General,
    Major,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    code: String,
    name_zh: String,
    name_en: String,
    numerator: String,
    #[serde(default)]
    denominator: String,
    window: Window,
    #[serde(default)]
    covers: Covers,
    unit: Unit,
    measure: String,
    #[serde(default)]
    scope: Scope,
    headline: Option<Headline>,
    recorded: Option<bool>,
    filter: Option<Condition>,
    indicator: Option<IndicatorCode>,
    requirement: Option<RequirementCode>,
    requirements: Option<Vec<RequirementCode>>,
    denominator_of: Option<DenominatorOf>,
    level: Option<LevelName>,
    colours: Option<Vec<RiskColour>>,
    qualification: Option<QualificationKind>,
}

impl RawMetric {
    fn measure(&self) -> Result<Measure, String> {
        let missing = |key: &str| format!("measure {} needs `{key}`", self.measure);
        let filter = || self.filter.clone().unwrap_or_default();
        let hazard_level = || match self.level {
            None | Some(LevelName::Any) => Ok(None),
            Some(LevelName::General) => Ok(Some(HazardLevel::General)),
            Some(LevelName::Major) => Ok(Some(HazardLevel::Major)),
            Some(_) => Err("level must be any, general or major".to_owned()),
        };
        let requirements = || match &self.requirements {
            Some(list) if !list.is_empty() => Ok(list.clone()),
            _ => Err(missing("requirements")),
        };
        Ok(match self.measure.as_str() {
            "enterprises" => Measure::Enterprises { filter: filter() },
            "registered_in_window" => Measure::RegisteredInWindow,
            "responsibility_implemented" => Measure::ResponsibilityImplemented,
            "indicator_implemented" => Measure::IndicatorImplemented {
                indicator: self.indicator.clone().ok_or_else(|| missing("indicator"))?,
            },
            "documents_uploaded" => Measure::DocumentsUploaded,
            "documents_reviewed" => Measure::DocumentsReviewed,
            "documents_returned" => Measure::DocumentsReturned,
            "feedback_issued" => Measure::FeedbackIssued,
            "review_backlog" => Measure::ReviewBacklog,
            "requirement_satisfied" => Measure::RequirementSatisfied {
                requirement: self.requirement.clone().ok_or_else(|| missing("requirement"))?,
                denominator_of: self.denominator_of.ok_or_else(|| missing("denominator_of"))?,
            },
            "period_record_approved" => Measure::PeriodRecordApproved {
                requirements: requirements()?,
                filter: filter(),
            },
            "cadence_met" => {
                if self.window == Window::Snapshot {
                    return Err("measure cadence_met needs a window (ytd or half_year)".to_owned());
                }
                Measure::CadenceMet {
                    requirement: self.requirement.clone().ok_or_else(|| missing("requirement"))?,
                }
            }
            "records_approved" => Measure::RecordsApproved {
                requirements: requirements()?,
            },
            "training_sessions" => Measure::TrainingSessions,
            "inspections" => Measure::Inspections {
                level: match self.level {
                    None | Some(LevelName::Any) => None,
                    Some(LevelName::City) => Some(InspectorLevel::City),
                    Some(LevelName::Town) => Some(InspectorLevel::Town),
                    Some(_) => return Err("level must be any, city or town".to_owned()),
                },
            },
            "enterprises_inspected" => Measure::EnterprisesInspected,
            "government_hazards" => Measure::GovernmentHazards { level: hazard_level()? },
            "government_hazards_closed" => Measure::GovernmentHazardsClosed { level: hazard_level()? },
            "overdue_government_hazards" => Measure::OverdueGovernmentHazards,
            "rectification_time" => Measure::RectificationTime,
            "hazards_per_inspection" => Measure::HazardsPerInspection,
            "first_review_pass" => Measure::FirstReviewPass,
            "self_inspection_hazards" => Measure::SelfInspectionHazards,
            "risk_colour" => Measure::RiskColour {
                colours: match &self.colours {
                    Some(colours) if !colours.is_empty() => colours.clone(),
                    _ => return Err(missing("colours")),
                },
            },
            "service_covered" => Measure::ServiceCovered { filter: filter() },
            "contracts_in_force" => Measure::ContractsInForce,
            "service_reports" => Measure::ServiceReports,
            "service_report_hazards" => Measure::ServiceReportHazards,
            "service_reports_on_time" => Measure::ServiceReportsOnTime,
            "service_rating" => Measure::ServiceRating,
            "agencies_registered" => Measure::AgenciesRegistered,
            "agency_staff" => Measure::AgencyStaff {
                qualification: self.qualification,
            },
            "agency_grades" => Measure::AgencyGrades,
            "agency_warnings" => Measure::AgencyWarnings,
            "agencies_blacklisted" => Measure::AgenciesBlacklisted,
            other => return Err(format!("unknown measure {other:?}")),
        })
    }
}

impl MetricsFile {
    /// Turns the parsed file into a catalogue, checking every metric's measure and keys.
    pub(crate) fn into_catalogue(self) -> Result<MetricCatalogue, CatalogueError> {
        let mut metrics = Vec::with_capacity(self.metrics.len());
        let mut codes = BTreeSet::new();
        let mut headlines = BTreeSet::new();
        for raw in self.metrics {
            let fail = |reason: String| CatalogueError::Metric {
                code: raw.code.clone(),
                reason,
            };
            if !codes.insert(raw.code.clone()) {
                return Err(fail("is defined twice".into()));
            }
            if let Some(headline) = raw.headline
                && !headlines.insert(headline)
            {
                return Err(fail(format!("headline {headline:?} is given twice")));
            }
            let measure = raw.measure().map_err(fail)?;
            let city_measure = matches!(
                measure,
                Measure::AgenciesRegistered
                    | Measure::AgencyStaff { .. }
                    | Measure::AgencyGrades
                    | Measure::AgencyWarnings
                    | Measure::AgenciesBlacklisted
            );
            if raw.covers == Covers::CompletedPeriods {
                if raw.window == Window::Snapshot {
                    return Err(fail(
                        "covers = \"completed_periods\" needs a window (ytd or half_year)".into(),
                    ));
                }
                if !matches!(
                    measure,
                    Measure::CadenceMet { .. } | Measure::PeriodRecordApproved { .. }
                ) {
                    return Err(fail(
                        "covers = \"completed_periods\" is for cadence_met and period_record_approved".into(),
                    ));
                }
            }
            if city_measure != (raw.scope == Scope::City) {
                return Err(fail("agency measures, and only they, have scope = \"city\"".into()));
            }
            metrics.push(Metric {
                recorded: raw.recorded.unwrap_or(!matches!(measure, Measure::TrainingSessions)),
                code: raw.code,
                name_zh: raw.name_zh,
                name_en: raw.name_en,
                numerator: raw.numerator,
                denominator: raw.denominator,
                window: raw.window,
                covers: raw.covers,
                unit: raw.unit,
                scope: raw.scope,
                headline: raw.headline,
                measure,
            });
        }
        if self.breakdowns.len() > BREAKDOWNS_MAX {
            return Err(CatalogueError::Catalogue(format!(
                "at most {BREAKDOWNS_MAX} breakdowns"
            )));
        }
        let names: BTreeSet<&str> = self.breakdowns.iter().map(|b| b.name.as_str()).collect();
        if names.len() != self.breakdowns.len() {
            return Err(CatalogueError::Catalogue("a breakdown name is used twice".into()));
        }
        let catalogue = MetricCatalogue {
            pending_review_days: self.parameters.pending_review_days,
            not_yet_due: self.parameters.not_yet_due,
            towns: self.parameters.towns,
            breakdowns: self.breakdowns,
            metrics,
            assessment: None,
        };
        if let Some(assessment) = &self.assessment {
            assessment.check(&catalogue).map_err(CatalogueError::Catalogue)?;
        }
        Ok(MetricCatalogue {
            assessment: self.assessment,
            ..catalogue
        })
    }
}

/// The indicators and requirements a catalogue names, each with the metric naming it.
pub(crate) type References<'a> = (Vec<(&'a IndicatorCode, &'a str)>, Vec<(&'a RequirementCode, &'a str)>);

impl MetricCatalogue {
    /// Every condition of the catalogue with its owner, for the rule set's class check.
    pub(crate) fn conditions(&self) -> Vec<(&Condition, String)> {
        let mut conditions: Vec<(&Condition, String)> = self
            .breakdowns
            .iter()
            .map(|breakdown| (&breakdown.when, format!("breakdown {}", breakdown.name)))
            .collect();
        for metric in &self.metrics {
            match &metric.measure {
                Measure::Enterprises { filter }
                | Measure::PeriodRecordApproved { filter, .. }
                | Measure::ServiceCovered { filter } => conditions.push((filter, format!("metric {}", metric.code))),
                _ => {}
            }
        }
        conditions
    }

    /// Every requirement and indicator the catalogue names, with its owner, for the rule set's
    /// check that they exist.
    pub(crate) fn references(&self) -> References<'_> {
        let mut indicators = Vec::new();
        let mut requirements = Vec::new();
        for metric in &self.metrics {
            match &metric.measure {
                Measure::IndicatorImplemented { indicator } => indicators.push((indicator, metric.code.as_str())),
                Measure::RequirementSatisfied { requirement, .. } | Measure::CadenceMet { requirement } => {
                    requirements.push((requirement, metric.code.as_str()));
                }
                Measure::PeriodRecordApproved { requirements: list, .. }
                | Measure::RecordsApproved { requirements: list } => {
                    requirements.extend(list.iter().map(|code| (code, metric.code.as_str())));
                }
                _ => {}
            }
        }
        (indicators, requirements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::builtin_v1;

    #[test]
    fn rule_set_v1_has_the_78_metrics_of_domain_section_5() {
        let rules = builtin_v1().unwrap();
        let catalogue = &rules.metrics;
        assert_eq!(catalogue.metrics.len(), 78);
        let expected: Vec<String> = [
            ("A", 8),
            ("B", 23),
            ("C", 5),
            ("D", 6),
            ("E", 14),
            ("F", 5),
            ("G", 4),
            ("H", 7),
            ("I", 6),
        ]
        .into_iter()
        .flat_map(|(letter, count)| (1..=count).map(move |n| format!("{letter}{n:02}")))
        .collect();
        let codes: Vec<&str> = catalogue.metrics.iter().map(|m| m.code.as_str()).collect();
        assert_eq!(codes, expected);
        for headline in Headline::ALL {
            assert!(catalogue.headline(headline).is_some(), "{headline:?}");
        }
        assert_eq!(
            catalogue
                .headline(Headline::EnterpriseResponsibilityRate)
                .unwrap()
                .1
                .code,
            "B02"
        );
        assert_eq!(catalogue.towns.len(), 12);
        assert_eq!(catalogue.breakdowns.len(), 5);
    }

    #[test]
    fn values_follow_the_unit() {
        let rules = builtin_v1().unwrap();
        let tally = |numerator, denominator| Tally {
            numerator,
            denominator,
            parts: [0; 4],
        };
        let metric = |code| rules.metrics.metric(code).unwrap();
        assert_eq!(metric("A01").value(&tally(12, 0)), Some(12.0));
        assert_eq!(metric("B02").value(&tally(891, 1000)), Some(89.1));
        assert_eq!(metric("B02").value(&tally(0, 0)), None);
        assert_eq!(metric("E11").value(&tally(86_400 * 25, 2)), Some(12.5));
        assert_eq!(metric("H07").value(&tally(13, 3)), Some(4.33));
    }
}
