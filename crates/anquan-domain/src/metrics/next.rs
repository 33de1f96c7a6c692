//! When an enterprise's contribution may change next: the instants a timer index waits for so
//! "now" stays exact without recomputing every enterprise periodically.
//!
//! Every change of a contribution is either a fact (an instant recorded in the file or the
//! agency facts: contributions are knowledge-time true, so a fact recorded later changes the
//! figure from its recording instant on) or an instant derived from a fact and the rule set (a
//! validity's end, a deadline, upload plus the backlog days, an accident plus the veto's days),
//! or a calendar instant common to every enterprise (window and period boundaries, the due
//! instants of periodic records). [`next_change`] enumerates them all and takes the earliest
//! after the instant asked; it never misses a change, and may name an instant where nothing
//! changes (one recomputation for nothing).
//!
//! The comparisons behind the figures are a mix of `<=`, `<` and `>`, so a figure may change AT
//! an instant or just after it: a fact known from `recorded_at <= at` or a validity ending at
//! `at < valid_until` changes it at the instant; "overdue" (`at > deadline`) or the review
//! backlog (`uploaded + days < at`) one nanosecond later (the smallest step of an [`Instant`],
//! so queries at any precision see the change when the timer does). Each candidate is taken as
//! the comparison that reads it says; window and period boundaries, read both ways (a window
//! asked exactly at 1 July 00:00 is the half-year that ended there, a nanosecond later the new
//! one), are taken at both. The contribution is then constant on `[at, next_change(at))`, which
//! the metrics oracle checks through the timer index at random instants and at transitions.

use chrono::Duration;

use super::{Contribution, MetricCatalogue, ServiceFacts, Window};
use crate::Instant;
use crate::bounds;
use crate::enterprise::{Coverage, EnterpriseFile};
use crate::period::Cadence;
use crate::rules::supervision::RiskCondition;
use crate::rules::{Evidence, RuleSet};

/// The smallest step after an instant: a figure defined by `at > c` changes at `c + just_after()`.
fn just_after() -> Duration {
    Duration::nanoseconds(1)
}

/// The earliest candidate later than `after` seen so far.
struct Earliest {
    after: Instant,
    best: Option<Instant>,
}

impl Earliest {
    fn new(after: Instant) -> Self {
        Earliest { after, best: None }
    }

    /// A change at `candidate` itself (read as `candidate <= at` or `at < candidate`).
    fn at(&mut self, candidate: Instant) {
        if candidate > self.after && self.best.is_none_or(|best| candidate < best) {
            self.best = Some(candidate);
        }
    }

    /// A change just after `candidate` (read as `at > candidate`).
    fn just_after(&mut self, candidate: Instant) {
        // The instant just after a candidate already at or after the best cannot win.
        if self.best.is_none_or(|best| candidate < best) {
            self.at(bounds::plus(candidate, just_after()));
        }
    }

    fn at_option(&mut self, candidate: Option<Instant>) {
        if let Some(candidate) = candidate {
            self.at(candidate);
        }
    }
}

fn plus_days(instant: Instant, days: u32) -> Instant {
    bounds::plus(instant, Duration::days(i64::from(days)))
}

/// The day counts the risk colour rules compare durations with: days a government hazard may be
/// overdue (`government_hazard_overdue_days_over`), days a fatal accident counts
/// (`fatal_accident_within_days`); and whether a rule looks back over month ends.
#[derive(Default)]
struct RiskDays {
    overdue: Vec<u32>,
    fatal: Vec<u32>,
    months: bool,
}

impl RiskDays {
    fn of(rules: &RuleSet) -> Self {
        let mut days = RiskDays::default();
        let risk = &rules.supervision.risk;
        for rule in risk.red.iter().chain(&risk.orange).chain(&risk.yellow) {
            days.visit(&rule.when);
        }
        days
    }

    fn visit(&mut self, condition: &RiskCondition) {
        match condition {
            RiskCondition::GovernmentHazardOverdueDaysOver(days) => self.overdue.push(*days),
            RiskCondition::FatalAccidentWithinDays(days) => self.fatal.push(*days),
            RiskCondition::ResponsibilityNotImplementedMonths(_) => self.months = true,
            RiskCondition::AnyOf(conditions) | RiskCondition::AllOf(conditions) => {
                for condition in conditions {
                    self.visit(condition);
                }
            }
            RiskCondition::Not(condition) => self.visit(condition),
            RiskCondition::OpenMajorHazard
            | RiskCondition::OpenHazard
            | RiskCondition::OverdueHazard
            | RiskCondition::CompliancePercentBelow(_)
            | RiskCondition::HazardsInLastGovernmentInspectionAtLeast(_)
            | RiskCondition::Profile(_) => {}
        }
    }
}

/// The next instant after `after` at which the contribution of every enterprise may change at
/// once: the boundaries of the metric windows (local 1 January and 1 July), of the periods of
/// every cadence a periodic requirement can have (`cadence_met` counts the periods begun by the
/// instant), of local months when a colour rule looks back over month ends, and the due
/// instants of periodic records (a period's end plus its grace days, when the status engine's
/// due period moves). [`next_change`] is never later than it. `None` only at the end of the
/// calendar.
pub fn next_calendar_change(catalogue: &MetricCatalogue, rules: &RuleSet, after: Instant) -> Option<Instant> {
    let mut earliest = Earliest::new(after);
    calendar(catalogue, rules, &RiskDays::of(rules), &mut earliest);
    earliest.best
}

fn calendar(catalogue: &MetricCatalogue, rules: &RuleSet, risk: &RiskDays, earliest: &mut Earliest) {
    let offset = rules.time_zone;
    let after = earliest.after;
    // Each cadence whose boundaries move a figure, and whether also just after them.
    let mut cadences: Vec<(Cadence, bool)> = Vec::with_capacity(4);
    let mut add = |cadence: Cadence, also_after: bool| match cadences.iter_mut().find(|(known, _)| *known == cadence) {
        Some((_, known_after)) => *known_after |= also_after,
        None => cadences.push((cadence, also_after)),
    };
    // Windows (year, half-year), read both ways, and the year a snapshot's period record
    // looks at.
    if catalogue.metrics.iter().any(|metric| metric.window != Window::Snapshot) {
        add(Cadence::HalfYearly, true);
    }
    add(Cadence::Yearly, true);
    // The colour's look back over month ends moves with the month containing the instant.
    if risk.months {
        add(Cadence::Monthly, false);
    }
    let mut due: Vec<(Cadence, u32)> = Vec::new();
    for requirement in rules.indicators.iter().flat_map(|indicator| &indicator.requirements) {
        if let Evidence::Periodic { cadence, .. } = &requirement.evidence {
            let grace = rules.grace_days(&requirement.evidence);
            for rule in cadence {
                // `cadence_met` counts the periods begun before the instant (`start < at`).
                add(rule.every, true);
                if !due.contains(&(rule.every, grace)) {
                    due.push((rule.every, grace));
                }
            }
        }
    }
    for (cadence, also_after) in cadences {
        let period = cadence.period_containing(after, offset);
        for boundary in [period.start(offset), period.end(offset)] {
            earliest.at(boundary);
            if also_after {
                earliest.just_after(boundary);
            }
        }
    }
    for (cadence, grace) in due {
        // The status engine's due period moves when a period's end plus grace is reached
        // (`due_at <= at`): the first such instant after `after` is that of the period
        // containing `after - grace`.
        let period = cadence.period_containing(bounds::minus(after, Duration::days(i64::from(grace))), offset);
        earliest.at(plus_days(period.end(offset), grace));
    }
}

/// The earliest instant after `after` at which the enterprise's contribution (as
/// [`super::enterprise_contribution`] computes it from these facts) may differ from its
/// contribution at `after`; `None` when it never changes again (a file without a
/// registration contributes nothing, whatever the instant). Never later than the true next
/// change; it may be earlier (an instant where nothing changes costs one recomputation), and it
/// is never later than [`next_calendar_change`].
pub fn next_change(
    catalogue: &MetricCatalogue,
    rules: &RuleSet,
    file: &EnterpriseFile,
    services: &ServiceFacts,
    after: Instant,
) -> Option<Instant> {
    let registration = file.registration.as_ref()?;
    let risk = RiskDays::of(rules);
    let mut earliest = Earliest::new(after);
    calendar(catalogue, rules, &risk, &mut earliest);
    // Facts read as `instant <= at` (known, effective, reviewed...) or `at < instant` (a
    // validity's or a contract's end, a lifting): a change at the instant itself.
    let at = |earliest: &mut Earliest, instant: Instant| earliest.at(instant);
    at(&mut earliest, registration.registered_at);
    for (since, _) in &file.profile_history {
        at(&mut earliest, *since);
    }
    for (since, _) in &file.town_history {
        at(&mut earliest, *since);
    }
    for closure in &file.closures {
        at(&mut earliest, closure.effective_at);
        at(&mut earliest, closure.recorded_at);
        if let Some(reopening) = &closure.reopening {
            at(&mut earliest, reopening.effective_at);
            at(&mut earliest, reopening.recorded_at);
        }
    }
    for document in file.documents.values() {
        at(&mut earliest, document.uploaded_at);
        // The review backlog (C05) counts it from just after `pending_review_days` after its
        // upload (`uploaded_at < at - days`).
        earliest.just_after(plus_days(document.uploaded_at, catalogue.pending_review_days));
        earliest.at_option(document.review.as_ref().map(|review| review.reviewed_at));
        if let Coverage::Validity {
            valid_from,
            valid_until,
        } = document.coverage
        {
            at(&mut earliest, valid_from);
            at(&mut earliest, valid_until);
            // "Expiring soon" is shown by the status engine but read by no metric or colour
            // rule, so its instant changes no contribution.
        }
    }
    for inspection in file.inspections.values() {
        at(&mut earliest, inspection.inspected_at);
        at(&mut earliest, inspection.recorded_at);
    }
    let review_days = rules.supervision.listed_supervision.review_days;
    for hazard in file.hazards.values() {
        at(&mut earliest, hazard.found_at);
        at(&mut earliest, hazard.recorded_at);
        let deadlines = std::iter::once(hazard.initial_deadline).chain(hazard.extensions.iter().map(|e| e.deadline));
        for deadline in deadlines {
            // Overdue from just after the deadline (`at > deadline`); red just after so many
            // days more.
            earliest.just_after(deadline);
            for days in &risk.overdue {
                earliest.just_after(plus_days(deadline, *days));
            }
        }
        for extension in &hazard.extensions {
            at(&mut earliest, extension.extended_at);
        }
        for rectification in &hazard.rectifications {
            at(&mut earliest, rectification.submitted_at);
            earliest.at_option(rectification.verdict.as_ref().map(|verdict| verdict.verified_at));
            if let Some(closure) = &rectification.self_closure {
                at(&mut earliest, closure.closed_at);
                earliest.at_option(closure.spot_check.as_ref().map(|check| check.checked_at));
            }
        }
        if let Some(basis) = &hazard.free_text_basis {
            at(&mut earliest, basis.stated_at);
            earliest.at_option(
                basis
                    .confirmation
                    .as_ref()
                    .map(|confirmation| confirmation.confirmed_at),
            );
        }
        if let Some(listing) = &hazard.listing {
            at(&mut earliest, listing.listed_at);
            for progress in &listing.progress {
                at(&mut earliest, progress.reported_at);
            }
            if let Some(request) = &listing.lift_request {
                at(&mut earliest, request.requested_at);
                // The city's review falls due (read by no metric yet; one recomputation).
                earliest.just_after(plus_days(request.requested_at, review_days));
            }
            earliest.at_option(listing.lifted.as_ref().map(|lifted| lifted.delisted_at));
        }
    }
    let fatal_days = rules.supervision.veto.fatal_accident_days;
    for accident in &file.accidents {
        at(&mut earliest, accident.occurred_at);
        at(&mut earliest, accident.reported_at);
        // A fatal accident vetoes, and colours, for so many days after it occurred
        // (`at - occurred_at < days`).
        if accident.fatalities > 0 {
            earliest.at(plus_days(accident.occurred_at, fatal_days));
            for days in &risk.fatal {
                earliest.at(plus_days(accident.occurred_at, *days));
            }
        }
    }
    for contract in &services.contracts {
        at(&mut earliest, contract.filed_at);
        at(&mut earliest, contract.valid_from);
        at(&mut earliest, contract.valid_until);
        earliest.at_option(contract.terminated_at);
    }
    for report in &services.reports {
        at(&mut earliest, report.visited_at);
        at(&mut earliest, report.reported_at);
        earliest.at_option(report.rating.map(|(_, rated_at)| rated_at));
    }
    earliest.best
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::rules::builtin_v1;

    fn utc(y: i32, m: u32, d: u32, h: u32) -> Instant {
        chrono::Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn the_calendar_stops_on_the_local_half_year_and_just_after_it() {
        let rules = builtin_v1().unwrap();
        // 2019-07-01T00:00+08:00.
        let mid_year = utc(2019, 6, 30, 16);
        let before = mid_year - Duration::days(1);
        let first = next_calendar_change(&rules.metrics, &rules, before).unwrap();
        assert!(first <= mid_year, "{first}");
        let mut at = before;
        let mut stops = Vec::new();
        while at < mid_year + Duration::seconds(1) {
            at = next_calendar_change(&rules.metrics, &rules, at).unwrap();
            stops.push(at);
        }
        assert!(stops.contains(&mid_year), "{stops:?}");
        assert!(stops.contains(&(mid_year + just_after())), "{stops:?}");
    }

    #[test]
    fn a_file_without_registration_never_changes() {
        let rules = builtin_v1().unwrap();
        let file = EnterpriseFile::default();
        assert_eq!(
            next_change(
                &rules.metrics,
                &rules,
                &file,
                &ServiceFacts::default(),
                utc(2019, 1, 1, 0)
            ),
            None
        );
    }
}

/// One enterprise's contribution over a span of time ([`contribution_history`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContributionHistory {
    /// Each instant its contribution may have changed at, in order, with the contribution from
    /// it on (`None`: it contributes nothing); consecutive equal values are merged, so each
    /// entry differs from the one before it.
    pub changes: Vec<(Instant, Option<Contribution>)>,
    /// The next instant after the span at which it may change (`None`: never again).
    pub next: Option<Instant>,
}

/// One enterprise's contribution at every instant from `from` through `until`: the contribution
/// at `from` (or at the file's first profile, when that is later: before it the enterprise
/// contributes nothing), then its value at each [`next_change`] up to `until`. Because a
/// contribution is constant on `[at, next_change(at))`, the contribution at any instant `t` of
/// the span is that of the last change at or before `t`, so a past instant is a lookup instead
/// of an evaluation of the file. The walk costs one evaluation per candidate instant (a few
/// dozen a year under v1, most of them calendar instants common to every enterprise).
pub fn contribution_history(
    catalogue: &MetricCatalogue,
    rules: &RuleSet,
    file: &EnterpriseFile,
    services: &ServiceFacts,
    from: Instant,
    until: Instant,
) -> ContributionHistory {
    let mut history = ContributionHistory::default();
    let Some(first) = file.profile_history.first().map(|(since, _)| *since) else {
        // No profile: it contributes nothing at any instant.
        return history;
    };
    let mut at = from.max(first);
    if at > until {
        history.next = Some(at);
        return history;
    }
    loop {
        let contribution = super::enterprise_contribution(catalogue, rules, file, services, at);
        if history.changes.last().is_none_or(|(_, last)| *last != contribution) {
            history.changes.push((at, contribution));
        }
        match next_change(catalogue, rules, file, services, at) {
            Some(next) if next <= until => at = next,
            next => {
                history.next = next;
                return history;
            }
        }
    }
}
