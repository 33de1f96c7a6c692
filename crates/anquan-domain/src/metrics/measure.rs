//! The computation of each measure: one enterprise's contribution to every metric at an
//! instant, and the city-wide agency figures.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::{Covers, DenominatorOf, Measure, Metric, MetricCatalogue, Scope, Tally, Window};
use crate::Instant;
use crate::agency::{QualificationKind, WarningKind};
use crate::compliance::{ComplianceReport, IndicatorState, RequirementState, evaluate};
use crate::credit::Grade;
use crate::enterprise::event::HazardSource;
use crate::enterprise::hazard::HazardRecord;
use crate::enterprise::{Coverage, EnterpriseFile, ReviewOutcome};
use crate::ids::{AgencyId, ContractId, RequirementCode, ServiceReportId, StaffId, Town};
use crate::period::{Cadence, Period};
use crate::risk::assess_with;
use crate::rules::RuleSet;

/// The agency facts about one enterprise: its contracts and the service reports on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFacts {
    pub contracts: Vec<ContractFact>,
    pub reports: Vec<ReportFact>,
}

/// A filed service contract as the metrics see it; contracts not filed are no metric's fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractFact {
    pub contract_id: ContractId,
    /// When the town officer filed it (signed it, for a contract of an old log).
    pub filed_at: Instant,
    pub valid_from: Instant,
    pub valid_until: Instant,
    pub terminated_at: Option<Instant>,
}

impl ContractFact {
    /// Filed by `at`, and in force at `at`.
    pub fn in_force_at(&self, at: Instant) -> bool {
        self.filed_at <= at
            && self.valid_from <= at
            && at < self.valid_until
            && self.terminated_at.is_none_or(|terminated| at < terminated)
    }
}

/// A service report as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFact {
    pub report_id: ServiceReportId,
    pub visited_at: Instant,
    pub reported_at: Instant,
    pub on_time: bool,
    pub hazards: u32,
    /// Stars and when they were given.
    pub rating: Option<(u8, Instant)>,
}

/// One agency's facts for the city-wide metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyFacts {
    pub agency_id: AgencyId,
    pub registered_at: Instant,
    /// The (latest) staff list of each half-year reported.
    pub staff_lists: Vec<StaffList>,
    pub grades: Vec<GradeFact>,
    pub warnings: Vec<(WarningKind, Instant)>,
    /// Blacklistings (true) and delistings (false), oldest first.
    pub blacklist: Vec<(bool, Instant)>,
}

/// A half-year's staff list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffList {
    pub half_year: Period,
    pub reported_at: Instant,
    pub staff: Vec<StaffFact>,
}

/// One staff member on a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffFact {
    pub staff_id: StaffId,
    pub qualifications: Vec<QualificationKind>,
}

/// One final grading of a half-year (a final grade or a regrading; provisional grades are not
/// facts of the metrics). `grade` is `None` when the half-year was not graded (未评级).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradeFact {
    pub half_year: Period,
    pub grade: Option<Grade>,
    pub graded_at: Instant,
}

/// One enterprise's contribution at an instant: its town, the breakdowns it belongs to (bit
/// `i` = breakdown `i` of the catalogue) and a (numerator, denominator) per metric, in
/// catalogue order (zero for city-scope metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub town: Town,
    pub breakdowns: u32,
    pub tallies: Vec<(i64, i64)>,
    /// The parts of the metrics that have them, by catalogue index, where not all zero (A08's
    /// created and closed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<(u16, [i64; 4])>,
}

/// The local period a metric window covers when asked at `at` (`None` for a snapshot): the
/// year (`Ytd`) or half-year (`HalfYear`) containing `at`, or, when `at` is exactly the start
/// of one, the period that ends at `at` (an instant on a boundary closes the period before it;
/// see [`Window`]).
pub fn window_period(window: Window, at: Instant, rules: &RuleSet) -> Option<Period> {
    let cadence = match window {
        Window::Snapshot => return None,
        Window::Ytd => Cadence::Yearly,
        Window::HalfYear => Cadence::HalfYearly,
    };
    let offset = rules.time_zone;
    let period = cadence.period_containing(at, offset);
    Some(if period.start(offset) == at {
        period.previous()
    } else {
        period
    })
}

/// The first instant of the metric window asked at `at` (`None` for a snapshot).
pub fn window_start(window: Window, at: Instant, rules: &RuleSet) -> Option<Instant> {
    window_period(window, at, rules).map(|period| period.start(rules.time_zone))
}

/// The latest period of a window's length that ended by `at`, for metrics that count
/// completed periods only (`Covers::CompletedPeriods`; `None` for a snapshot): for `HalfYear`
/// the latest half-year that ended by `at`; for `Ytd` the completed part of the year of that
/// half-year: its first half-year when that is the one, the whole year once the second ended.
/// An instant exactly on 1 January (1 July) 00:00 local has just completed the period ending
/// there, so 2027-01-01T00:00+08:00 covers 2026, and 2027-01-15 still does, until 1 July.
pub fn completed_period(window: Window, at: Instant, rules: &RuleSet) -> Option<Period> {
    let offset = rules.time_zone;
    // The half-year containing `at` starts at or before it, so the one before ended by `at`.
    let half = Cadence::HalfYearly.period_containing(at, offset).previous();
    match window {
        Window::Snapshot => None,
        Window::HalfYear => Some(half),
        Window::Ytd if half.next().year() == half.year() => Some(half),
        Window::Ytd => Some(Cadence::Yearly.period_containing(half.start(offset), offset)),
    }
}

/// The stretch of time a metric's figure at `at` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Its first instant (the instant itself for a snapshot).
    pub start: Instant,
    /// The end: the instant asked for, or the end of the completed period it covers.
    pub end: Instant,
    /// The local period it is (the year or half-year of the window; `None` for a snapshot).
    pub period: Option<Period>,
    /// True when it counts completed periods only (its `end` is the period's end).
    pub completed: bool,
}

impl Span {
    /// The span as a person reads it, in the rule set's local time: the period of a completed
    /// span (2026年下半年, 2026年), a window up to the instant with the instant (2026年（截至
    /// 12月6日 10:03）; the period alone when the instant ends it), a snapshot the instant
    /// (截至2026年12月6日 10:03).
    pub fn label(&self, offset: chrono::FixedOffset) -> String {
        let local = self.end.with_timezone(&offset);
        match self.period {
            None => format!("截至{}", local.format("%Y年%-m月%-d日 %H:%M")),
            Some(period) if self.completed || period.end(offset) == self.end => period_label(period),
            Some(period) => format!("{}（截至{}）", period_label(period), local.format("%-m月%-d日 %H:%M")),
        }
    }
}

/// A period as a person reads it: 2026年, 2026年上半年, 2026年第3季度, 2026年7月.
pub fn period_label(period: Period) -> String {
    let year = period.year();
    match period.cadence() {
        Cadence::Yearly => format!("{year}年"),
        Cadence::HalfYearly if period.index() == 1 => format!("{year}年上半年"),
        Cadence::HalfYearly => format!("{year}年下半年"),
        Cadence::Quarterly => format!("{year}年第{}季度", period.index()),
        Cadence::Monthly => format!("{year}年{}月", period.index()),
    }
}

/// The span a metric's figure at `at` covers: a snapshot the instant, a window from its start
/// to the instant, a metric counting completed periods the latest such period (see
/// [`completed_period`]). Every figure says which (the API's `MetricValue.period`).
pub fn metric_span(metric: &Metric, at: Instant, rules: &RuleSet) -> Span {
    let offset = rules.time_zone;
    let completed = metric.covers == Covers::CompletedPeriods;
    let period = if completed {
        completed_period(metric.window, at, rules)
    } else {
        window_period(metric.window, at, rules)
    };
    match period {
        None => Span {
            start: at,
            end: at,
            period: None,
            completed: false,
        },
        Some(period) => Span {
            start: period.start(offset),
            end: if completed { period.end(offset) } else { at },
            period: Some(period),
            completed,
        },
    }
}

/// The periods of a cadence an enterprise is judged on for a completed span: those lying
/// within it; when none does (a yearly cadence and a span of a first half-year), the latest
/// one that ended by the span's end (the year before). Never empty, at most 12.
pub fn judged_periods(cadence: Cadence, span: Period, offset: chrono::FixedOffset) -> Vec<Period> {
    let (start, end) = (span.start(offset), span.end(offset));
    let mut periods = Vec::new();
    let mut period = cadence.period_containing(start, offset);
    while period.end(offset) <= end {
        if period.start(offset) >= start {
            periods.push(period);
        }
        period = period.next();
    }
    if periods.is_empty() {
        // The period containing the end starts at or before it: the one before ended by then.
        periods.push(cadence.period_containing(end, offset).previous());
    }
    periods
}

/// Whether an enterprise kept a periodic requirement's cadence over a completed span: each of
/// its [`judged_periods`] (the cadence is the rule set's, chosen by the profile at `at`) that did
/// not end before the enterprise registered has a record for exactly that period approved by
/// `at`. Records uploaded and approved in the grace days after a period raise its figure from
/// when they are approved. `None` when the requirement does not apply at `at`, as for
/// [`cadence_met`], or when every judged period ended before the enterprise registered.
pub fn cadence_met_over(
    file: &EnterpriseFile,
    rules: &RuleSet,
    requirement: &RequirementCode,
    span: Period,
    at: Instant,
) -> Option<bool> {
    let registration = file.registration.as_ref()?;
    if registration.registered_at > at {
        return None;
    }
    let cadence = periodic_cadence(file, rules, requirement, at)?;
    let offset = rules.time_zone;
    let due: Vec<Period> = judged_periods(cadence, span, offset)
        .into_iter()
        .filter(|period| period.end(offset) > registration.registered_at)
        .collect();
    // Nothing was due of an enterprise that registered after the span: it is not in the rate
    // yet, rather than counted as met.
    if due.is_empty() {
        return None;
    }
    Some(
        due.into_iter()
            .all(|period| period_approved(file, requirement, period, at)),
    )
}

/// [`cadence_met_over`] a completed span, else [`cadence_met`] from the span's start to `at`:
/// what a `cadence_met` metric counts for the enterprise over [`metric_span`].
pub fn cadence_met_in(
    file: &EnterpriseFile,
    rules: &RuleSet,
    requirement: &RequirementCode,
    span: &Span,
    at: Instant,
) -> Option<bool> {
    match span.period.filter(|_| span.completed) {
        Some(period) => cadence_met_over(file, rules, requirement, period, at),
        None => cadence_met(file, rules, requirement, span.start, at),
    }
}

/// The cadence of a periodic requirement for the enterprise's profile at `at`, if it applies.
fn periodic_cadence(
    file: &EnterpriseFile,
    rules: &RuleSet,
    requirement: &RequirementCode,
    at: Instant,
) -> Option<Cadence> {
    let profile = file.profile_at(at)?;
    let (indicator, rule) = rules.requirement(requirement)?;
    if !rules.holds(&indicator.applies_to, profile) || !rules.holds(&rule.applies_to, profile) {
        return None;
    }
    rules.cadence_for(&rule.evidence, profile)
}

/// Whether a record of the requirement for exactly `period` was approved by `at`.
fn period_approved(file: &EnterpriseFile, requirement: &RequirementCode, period: Period, at: Instant) -> bool {
    file.documents.values().any(|document| {
        &document.requirement == requirement
            && document.coverage == Coverage::Period { period }
            && document.approved_by(at)
    })
}

/// Whether an enterprise kept a periodic requirement's cadence from `from` to `at`: every
/// period of its cadence (the rule set's, chosen by the profile at `at`) that began at or after
/// `from` and before `at`, and did not end before the enterprise registered, has a record for
/// exactly that period that was approved by `at`. A period counts from its start, so the one
/// in progress counts too: the figure is the progress of the year so far, and at the year's
/// end it is the year's.
///
/// `None` when the requirement does not apply to the enterprise at `at` (not registered by
/// then, the indicator or the requirement excluded by its profile, or no periodic evidence),
/// like the status engine's "not applicable".
pub fn cadence_met(
    file: &EnterpriseFile,
    rules: &RuleSet,
    requirement: &RequirementCode,
    from: Instant,
    at: Instant,
) -> Option<bool> {
    let registration = file.registration.as_ref()?;
    if registration.registered_at > at {
        return None;
    }
    let cadence = periodic_cadence(file, rules, requirement, at)?;
    let offset = rules.time_zone;
    let mut period = cadence.period_containing(from, offset);
    if period.start(offset) < from {
        period = period.next();
    }
    let mut met = true;
    while period.start(offset) < at {
        if period.end(offset) > registration.registered_at {
            met &= period_approved(file, requirement, period, at);
        }
        period = period.next();
    }
    Some(met)
}

/// One enterprise's contribution to every metric at `at`; `None` if it was not registered by
/// then (it contributes nothing).
pub fn enterprise_contribution(
    catalogue: &MetricCatalogue,
    rules: &RuleSet,
    file: &EnterpriseFile,
    services: &ServiceFacts,
    at: Instant,
) -> Option<Contribution> {
    let registration = file.registration.as_ref()?;
    let profile = file.profile_at(at)?;
    let report = evaluate(file, rules, at)?;
    let colour = assess_with(file, rules, at, &report).colour;
    let facts = Facts {
        catalogue,
        rules,
        file,
        services,
        at,
        report: &report,
    };
    let mut breakdowns = 0u32;
    for (index, breakdown) in catalogue.breakdowns.iter().enumerate() {
        if rules.holds(&breakdown.when, profile) {
            breakdowns |= 1 << index;
        }
    }
    // A closed enterprise is not active: it leaves every snapshot metric (A01 and the
    // population of every "/ A01"); what happened in a window while it was open still counts.
    let closed = file.closure_at(at).is_some();
    let mut parts = Vec::new();
    let tallies = catalogue
        .metrics
        .iter()
        .enumerate()
        .map(|(index, metric)| {
            if metric.scope == Scope::City || (closed && metric.window == Window::Snapshot) {
                return (0, 0);
            }
            let span = metric_span(metric, at, rules);
            if metric.measure == Measure::RegisteredInWindow {
                // A08: created and closed in the window, each a part; the figure is their sum.
                let created = flag(facts.within(registration.registered_at, span.start));
                let closures = i64::try_from(file.closures_within(span.start, at)).unwrap_or(i64::MAX);
                if created + closures > 0
                    && let Ok(index) = u16::try_from(index)
                {
                    parts.push((index, [created, closures, 0, 0]));
                }
                return (created.saturating_add(closures), 0);
            }
            facts.tally(&metric.measure, &span, colour)
        })
        .collect();
    Some(Contribution {
        parts,
        // The town at `at`, not today's: an enterprise that moved counts where it was then.
        town: file.town_at(at).unwrap_or(&registration.town).clone(),
        breakdowns,
        tallies,
    })
}

struct Facts<'a> {
    catalogue: &'a MetricCatalogue,
    rules: &'a RuleSet,
    file: &'a EnterpriseFile,
    services: &'a ServiceFacts,
    at: Instant,
    report: &'a ComplianceReport,
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

fn count<T>(items: impl Iterator<Item = T>) -> i64 {
    i64::try_from(items.count()).unwrap_or(i64::MAX)
}

impl Facts<'_> {
    fn within(&self, instant: Instant, start: Instant) -> bool {
        start <= instant && instant <= self.at
    }

    fn holds(&self, condition: &crate::rules::Condition) -> bool {
        self.file
            .profile_at(self.at)
            .is_some_and(|profile| self.rules.holds(condition, profile))
    }

    fn requirement_state(&self, code: &RequirementCode) -> RequirementState {
        self.report
            .indicators
            .iter()
            .flat_map(|indicator| &indicator.requirements)
            .find(|requirement| &requirement.code == code)
            .map_or(RequirementState::NotApplicable, |requirement| requirement.state)
    }

    /// Government hazards known at the instant and found in the window, of a level.
    fn government_found<'f>(
        &'f self,
        start: Instant,
        level: Option<crate::enterprise::event::HazardLevel>,
    ) -> impl Iterator<Item = &'f HazardRecord> + 'f {
        self.file.hazards.values().filter(move |hazard| {
            hazard.is_government()
                && hazard.known_at(self.at)
                && self.within(hazard.found_at, start)
                && level.is_none_or(|level| hazard.level_at(self.at) == level)
        })
    }

    fn inspections_held(&self, start: Instant, level: Option<crate::enterprise::event::InspectorLevel>) -> i64 {
        count(self.file.inspections.values().filter(|inspection| {
            inspection.recorded_at <= self.at
                && self.within(inspection.inspected_at, start)
                && level.is_none_or(|level| inspection.level == level)
        }))
    }

    fn tally(&self, measure: &Measure, span: &Span, colour: crate::rules::RiskColour) -> (i64, i64) {
        let at = self.at;
        let start = span.start;
        let documents = || {
            self.file
                .documents
                .values()
                .filter(move |document| document.uploaded_at <= at)
        };
        let reviewed_in_window = || {
            documents().filter_map(move |document| {
                document
                    .review_at(at)
                    .filter(|review| review.reviewed_at >= start)
                    .map(|review| (document, review))
            })
        };
        match measure {
            Measure::Enterprises { filter } => (flag(self.holds(filter)), 1),
            // Counted with its parts by `enterprise_contribution`.
            Measure::RegisteredInWindow => (0, 0),
            Measure::ResponsibilityImplemented => (flag(self.report.responsibility_implemented), 1),
            Measure::IndicatorImplemented { indicator } => {
                let state = self
                    .report
                    .indicators
                    .iter()
                    .find(|status| &status.code == indicator)
                    .map_or(IndicatorState::NotApplicable, |status| status.state);
                let (met, judged) = self.catalogue.not_yet_due.tally(
                    u32::from(state == IndicatorState::Implemented),
                    u32::from(state == IndicatorState::NotImplemented),
                    u32::from(state == IndicatorState::NotYetDue),
                );
                (i64::from(met), i64::from(judged))
            }
            Measure::DocumentsUploaded => (count(documents().filter(|d| d.uploaded_at >= start)), 0),
            Measure::DocumentsReviewed => (count(reviewed_in_window()), 0),
            Measure::DocumentsReturned => {
                let returned = reviewed_in_window()
                    .filter(|(_, review)| matches!(review.outcome, ReviewOutcome::Returned { .. }))
                    .count();
                (i64::try_from(returned).unwrap_or(i64::MAX), count(reviewed_in_window()))
            }
            Measure::FeedbackIssued => {
                let feedback = reviewed_in_window().filter(|(_, review)| match &review.outcome {
                    ReviewOutcome::Returned { .. } => true,
                    ReviewOutcome::Approved { comment } => comment.as_deref().is_some_and(|c| !c.trim().is_empty()),
                });
                (count(feedback), 0)
            }
            Measure::ReviewBacklog => {
                let cutoff = crate::bounds::minus(at, Duration::days(i64::from(self.catalogue.pending_review_days)));
                (
                    count(documents().filter(|d| d.uploaded_at < cutoff && d.review_at(at).is_none())),
                    0,
                )
            }
            Measure::RequirementSatisfied {
                requirement,
                denominator_of,
            } => {
                let state = self.requirement_state(requirement);
                let not_yet_due = state == RequirementState::NotYetDue;
                let (met, judged) = self.catalogue.not_yet_due.tally(
                    u32::from(state == RequirementState::Satisfied),
                    u32::from(state == RequirementState::Unsatisfied),
                    u32::from(not_yet_due),
                );
                let denominator = match denominator_of {
                    // Every active enterprise, unless the rule set leaves not-yet-due ones out.
                    DenominatorOf::Active => flag(!not_yet_due || judged > 0),
                    DenominatorOf::Applicable => i64::from(judged),
                };
                (i64::from(met), denominator)
            }
            Measure::PeriodRecordApproved { requirements, filter } => {
                if !self.holds(filter) {
                    return (0, 0);
                }
                let offset = self.rules.time_zone;
                if span.completed {
                    // Each listed requirement's own cadence over the completed span.
                    let covered = span.period.is_some_and(|period| {
                        requirements.iter().any(|requirement| {
                            periodic_cadence(self.file, self.rules, requirement, at).is_some_and(|cadence| {
                                judged_periods(cadence, period, offset)
                                    .into_iter()
                                    .all(|judged| period_approved(self.file, requirement, judged, at))
                            })
                        })
                    });
                    return (flag(covered), 1);
                }
                // A snapshot looks at the year it falls in, like a year-to-date window.
                let current = span
                    .period
                    .unwrap_or_else(|| Cadence::Yearly.period_containing(at, offset));
                let (window_start, window_end) = (current.start(offset), current.end(offset));
                let covered = documents().any(|document| {
                    requirements.contains(&document.requirement)
                        && document.approved_by(at)
                        && match &document.coverage {
                            Coverage::Period { period } => {
                                period.start(offset) < window_end && period.end(offset) > window_start
                            }
                            Coverage::Once | Coverage::Validity { .. } => false,
                        }
                });
                (flag(covered), 1)
            }
            Measure::CadenceMet { requirement } => match cadence_met_in(self.file, self.rules, requirement, span, at) {
                Some(met) => (flag(met), 1),
                None => (0, 0),
            },
            Measure::RecordsApproved { requirements } => {
                let approved = reviewed_in_window().filter(|(document, review)| {
                    requirements.contains(&document.requirement)
                        && matches!(review.outcome, ReviewOutcome::Approved { .. })
                });
                (count(approved), 0)
            }
            Measure::TrainingSessions => (0, 0),
            Measure::Inspections { level } => (self.inspections_held(start, *level), 0),
            Measure::EnterprisesInspected => (flag(self.inspections_held(start, None) > 0), 1),
            Measure::GovernmentHazards { level } => (count(self.government_found(start, *level)), 0),
            Measure::GovernmentHazardsClosed { level } => {
                let closed = self
                    .government_found(start, *level)
                    .filter(|hazard| hazard.closed_at(at).is_some());
                (count(closed), count(self.government_found(start, *level)))
            }
            Measure::OverdueGovernmentHazards => (
                count(
                    self.file
                        .hazards
                        .values()
                        .filter(|hazard| hazard.is_government() && hazard.overdue_at(at)),
                ),
                0,
            ),
            Measure::RectificationTime => {
                let mut seconds = 0;
                let mut closed = 0;
                for hazard in self.government_found(start, None) {
                    if let Some(closed_at) = hazard.closed_at(at) {
                        seconds += (closed_at - hazard.found_at).num_seconds();
                        closed += 1;
                    }
                }
                (seconds, closed)
            }
            Measure::HazardsPerInspection => (
                count(self.government_found(start, None)),
                self.inspections_held(start, None),
            ),
            Measure::FirstReviewPass => {
                let mut passed = 0;
                let mut given = 0;
                for hazard in self
                    .file
                    .hazards
                    .values()
                    .filter(|hazard| hazard.is_government() && hazard.known_at(at))
                {
                    let first = hazard
                        .rectifications
                        .iter()
                        .filter_map(|rectification| rectification.verdict.as_ref())
                        .filter(|verdict| verdict.verified_at <= at)
                        .min_by_key(|verdict| verdict.verified_at);
                    if let Some(verdict) = first
                        && verdict.verified_at >= start
                    {
                        given += 1;
                        passed += flag(verdict.accepted);
                    }
                }
                (passed, given)
            }
            Measure::SelfInspectionHazards => (
                count(self.file.hazards.values().filter(|hazard| {
                    matches!(hazard.source, HazardSource::SelfInspection)
                        && hazard.known_at(at)
                        && self.within(hazard.found_at, start)
                })),
                0,
            ),
            Measure::RiskColour { colours } => (flag(colours.contains(&colour)), 1),
            Measure::ServiceCovered { filter } => {
                if !self.holds(filter) {
                    return (0, 0);
                }
                let covered = self.services.contracts.iter().any(|contract| contract.in_force_at(at));
                (flag(covered), 1)
            }
            Measure::ContractsInForce => (
                count(
                    self.services
                        .contracts
                        .iter()
                        .filter(|contract| contract.in_force_at(at)),
                ),
                0,
            ),
            Measure::ServiceReports => (
                count(
                    self.services
                        .reports
                        .iter()
                        .filter(|r| self.within(r.reported_at, start)),
                ),
                0,
            ),
            Measure::ServiceReportHazards => (
                self.services
                    .reports
                    .iter()
                    .filter(|r| self.within(r.reported_at, start))
                    .map(|r| i64::from(r.hazards))
                    .sum(),
                0,
            ),
            Measure::ServiceReportsOnTime => {
                let due = || {
                    self.services
                        .reports
                        .iter()
                        .filter(|r| r.reported_at <= at && self.within(r.visited_at, start))
                };
                (count(due().filter(|r| r.on_time)), count(due()))
            }
            Measure::ServiceRating => {
                let mut stars = 0;
                let mut ratings = 0;
                for (given, rated_at) in self.services.reports.iter().filter_map(|r| r.rating) {
                    if self.within(rated_at, start) {
                        stars += i64::from(given);
                        ratings += 1;
                    }
                }
                (stars, ratings)
            }
            Measure::AgenciesRegistered
            | Measure::AgencyStaff { .. }
            | Measure::AgencyGrades
            | Measure::AgencyWarnings
            | Measure::AgenciesBlacklisted => (0, 0),
        }
    }
}

/// The city-wide figures of the agency metrics at `at`, in catalogue order (`None` for
/// metrics of town scope).
pub fn agency_tallies(
    catalogue: &MetricCatalogue,
    rules: &RuleSet,
    agencies: &[AgencyFacts],
    at: Instant,
) -> Vec<Option<Tally>> {
    let registered = || agencies.iter().filter(move |agency| agency.registered_at <= at);
    catalogue
        .metrics
        .iter()
        .map(|metric| {
            let start = window_start(metric.window, at, rules).unwrap_or(at);
            let mut tally = Tally::default();
            match &metric.measure {
                Measure::AgenciesRegistered => tally.numerator = count(registered()),
                Measure::AgencyStaff { qualification } => {
                    for agency in registered() {
                        let latest = agency
                            .staff_lists
                            .iter()
                            .filter(|list| list.reported_at <= at)
                            .max_by_key(|list| list.half_year);
                        let Some(list) = latest else {
                            continue;
                        };
                        let mut seen = std::collections::BTreeSet::new();
                        for member in list.staff.iter().filter(|member| seen.insert(member.staff_id)) {
                            match qualification {
                                None => tally.numerator += 1,
                                Some(kind) => {
                                    tally.denominator += 1;
                                    tally.numerator += flag(member.qualifications.contains(kind));
                                }
                            }
                        }
                    }
                }
                Measure::AgencyGrades => {
                    let last = Cadence::HalfYearly.period_containing(at, rules.time_zone).previous();
                    // Each agency's last grading of that half-year given by `at` (a regrading
                    // replaces the grade); a half-year not graded counts in no part.
                    for agency in registered() {
                        let current = agency
                            .grades
                            .iter()
                            .filter(|grade| grade.half_year == last && grade.graded_at <= at)
                            .max_by_key(|grade| grade.graded_at);
                        let Some(grade) = current.and_then(|grade| grade.grade) else {
                            continue;
                        };
                        tally.numerator += 1;
                        let slot = match grade {
                            Grade::A => 0,
                            Grade::B => 1,
                            Grade::C => 2,
                            Grade::D => 3,
                        };
                        tally.parts[slot] += 1;
                    }
                }
                Measure::AgencyWarnings => {
                    for (kind, issued_at) in registered().flat_map(|agency| &agency.warnings) {
                        if start <= *issued_at && *issued_at <= at {
                            tally.numerator += 1;
                            let slot = match kind {
                                WarningKind::WarningNotice => 0,
                                WarningKind::Summons => 1,
                            };
                            tally.parts[slot] += 1;
                        }
                    }
                }
                Measure::AgenciesBlacklisted => {
                    tally.numerator = count(registered().filter(|agency| {
                        agency
                            .blacklist
                            .iter()
                            .filter(|(_, changed_at)| *changed_at <= at)
                            .max_by_key(|(_, changed_at)| *changed_at)
                            .is_some_and(|(listed, _)| *listed)
                    }));
                }
                _ => return None,
            }
            Some(tally)
        })
        .collect()
}
