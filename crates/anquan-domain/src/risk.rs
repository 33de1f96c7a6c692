//! Four-colour risk (红橙黄蓝, domain.md §3) and differentiated supervision: an enterprise's
//! colour at an instant with the rule that decided it, its colour history, its escalation step
//! and the checks it is due, all from the facts, the rule set and an instant.

use chrono::{Duration, Months, NaiveDate, NaiveTime, TimeZone};
use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::bounds;
use crate::compliance::{ComplianceReport, evaluate};
use crate::enterprise::EnterpriseFile;
use crate::enterprise::event::InspectionKind;
use crate::period::Cadence;
use crate::rules::supervision::{EscalationStep, RiskCondition, RiskRule};
use crate::rules::{RiskColour, RuleSet};

/// Most days a colour history covers.
pub const HISTORY_DAYS_MAX: i64 = 3 * 366;
/// Quarter ends looked back on for repeat offenders.
const ESCALATION_QUARTERS: u32 = 4;

/// An enterprise's colour at one instant and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub at: Instant,
    pub colour: RiskColour,
    /// The name of the rule that decided the colour (none for blue).
    pub rule: Option<String>,
    /// Applicable indicators implemented, in percent (rounded down).
    pub compliance_percent: u32,
}

/// A change of colour in a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColourChange {
    pub at: Instant,
    pub colour: RiskColour,
    pub rule: Option<String>,
}

/// The checks an enterprise is due in a supervision period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksDue {
    pub colour: RiskColour,
    pub online_check_due: bool,
    pub on_site_due: bool,
    pub enforcement_plan: bool,
    pub last_online_check: Option<Instant>,
    pub last_on_site: Option<Instant>,
}

/// Assesses the colour at `at`; `None` if the enterprise was not registered then.
pub fn assess(file: &EnterpriseFile, rules: &RuleSet, at: Instant) -> Option<RiskAssessment> {
    let report = evaluate(file, rules, at)?;
    Some(assess_with(file, rules, at, &report))
}

/// Assesses the colour at `at` given the compliance report at the same instant.
pub fn assess_with(file: &EnterpriseFile, rules: &RuleSet, at: Instant, report: &ComplianceReport) -> RiskAssessment {
    let facts = Facts {
        file,
        rules,
        at,
        report,
    };
    let risk = &rules.supervision.risk;
    let decided = [
        (RiskColour::Red, &risk.red),
        (RiskColour::Orange, &risk.orange),
        (RiskColour::Yellow, &risk.yellow),
    ]
    .into_iter()
    .find_map(|(colour, rules)| first_match(&facts, rules).map(|rule| (colour, Some(rule.name.clone()))));
    let (colour, rule) = decided.unwrap_or((RiskColour::Blue, None));
    RiskAssessment {
        at,
        colour,
        rule,
        compliance_percent: compliance_percent(report, rules),
    }
}

/// The colour from `from` to `to`, evaluated at every local midnight and at every instant a fact
/// was recorded, reduced to its changes (the first entry is the colour at the start).
pub fn colour_history(file: &EnterpriseFile, rules: &RuleSet, from: Instant, to: Instant) -> Vec<ColourChange> {
    let to = to.min(bounds::plus(from, Duration::days(HISTORY_DAYS_MAX)));
    let mut instants = fact_instants(file);
    let mut day = local_midnight_after(from, rules);
    while day <= to {
        instants.push(day);
        let next = bounds::plus(day, Duration::days(1));
        if next == day {
            break;
        }
        day = next;
    }
    for hazard in file.hazards.values() {
        for deadline in std::iter::once(hazard.initial_deadline).chain(hazard.extensions.iter().map(|e| e.deadline)) {
            instants.push(bounds::plus(deadline, Duration::microseconds(1)));
        }
    }
    instants.push(from);
    instants.retain(|instant| *instant >= from && *instant <= to);
    instants.sort_unstable();
    instants.dedup();
    let mut changes: Vec<ColourChange> = Vec::new();
    for instant in instants {
        let Some(assessment) = assess(file, rules, instant) else {
            continue;
        };
        if changes.last().is_none_or(|last| last.colour != assessment.colour) {
            changes.push(ColourChange {
                at: instant,
                colour: assessment.colour,
                rule: assessment.rule,
            });
        }
    }
    changes
}

/// The escalation step for the enterprise at `at` (the last matching step of the rule set).
pub fn escalation<'a>(file: &EnterpriseFile, rules: &'a RuleSet, at: Instant) -> Option<&'a EscalationStep> {
    let colour = assess(file, rules, at)?.colour;
    let red_quarters = quarter_ends_before(at, rules, ESCALATION_QUARTERS)
        .into_iter()
        .filter(|instant| assess(file, rules, *instant).is_some_and(|assessment| assessment.colour == RiskColour::Red))
        .count();
    rules
        .supervision
        .escalation
        .iter()
        .rfind(|step| step.colours.contains(&colour) && red_quarters >= step.red_quarters_at_least as usize)
}

/// The checks due by `period_end` for an enterprise of the colour it has at `at`: a check is due
/// when none of its kind happened within its cadence before `period_end`.
pub fn checks_due(file: &EnterpriseFile, rules: &RuleSet, at: Instant, period_end: Instant) -> Option<ChecksDue> {
    let colour = assess(file, rules, at)?.colour;
    let cadence = rules.supervision.cadence.get(&colour)?;
    let last = |kind: InspectionKind| {
        file.inspections
            .values()
            .filter(|inspection| inspection.kind == kind && inspection.recorded_at <= at)
            .map(|inspection| inspection.inspected_at)
            .max()
    };
    let last_online_check = last(InspectionKind::Online);
    let last_on_site = last(InspectionKind::OnSite);
    let due = |months: Option<u32>, last: Option<Instant>| match months {
        None => false,
        Some(months) => last.is_none_or(|last| {
            last.checked_add_months(Months::new(months))
                .is_none_or(|next_due| next_due <= period_end)
        }),
    };
    Some(ChecksDue {
        colour,
        online_check_due: due(cadence.online_check_months, last_online_check),
        on_site_due: due(cadence.on_site_months, last_on_site),
        enforcement_plan: cadence.enforcement_plan,
        last_online_check,
        last_on_site,
    })
}

/// Applicable indicators implemented, in percent, rounded down (100 when none apply); indicators
/// not yet due count as the rule set's `[status] not_yet_due` says.
pub fn compliance_percent(report: &ComplianceReport, rules: &RuleSet) -> u32 {
    let (met, judged) = compliance_tally(report, rules);
    (met.saturating_mul(100)).checked_div(judged).unwrap_or(100)
}

/// `(met, judged)` indicators under the rule set's treatment of 未到期.
fn compliance_tally(report: &ComplianceReport, rules: &RuleSet) -> (u32, u32) {
    rules
        .status
        .not_yet_due
        .tally(report.implemented, report.not_implemented, report.not_yet_due)
}

struct Facts<'a> {
    file: &'a EnterpriseFile,
    rules: &'a RuleSet,
    at: Instant,
    report: &'a ComplianceReport,
}

fn first_match<'r>(facts: &Facts<'_>, rules: &'r [RiskRule]) -> Option<&'r RiskRule> {
    rules.iter().find(|rule| holds(facts, &rule.when))
}

fn holds(facts: &Facts<'_>, condition: &RiskCondition) -> bool {
    let Facts {
        file,
        rules,
        at,
        report,
    } = facts;
    let at = *at;
    // Only hazards of the sources the rule set counts toward the colour (`hazard_sources`).
    let known = || {
        file.hazards
            .values()
            .filter(move |hazard| hazard.known_at(at) && hazard.counts_toward_colour(rules, at))
    };
    match condition {
        // A listed hazard counts whatever its source (the listing is the city's act).
        RiskCondition::OpenMajorHazard => file.hazards.values().any(|hazard| {
            hazard.known_at(at) && hazard.counts_as_open_major(rules, at, hazard.counts_toward_colour(rules, at))
        }),
        RiskCondition::OpenHazard => known().any(|hazard| hazard.closed_at(at).is_none()),
        RiskCondition::OverdueHazard => known().any(|hazard| hazard.overdue_at(at)),
        RiskCondition::GovernmentHazardOverdueDaysOver(days) => known().any(|hazard| {
            hazard.is_government()
                && hazard.overdue_at(at)
                && at > bounds::plus(hazard.deadline_at(at), Duration::days(i64::from(*days)))
        }),
        RiskCondition::CompliancePercentBelow(percent) => {
            let (met, judged) = compliance_tally(report, rules);
            u64::from(met) * 100 < u64::from(*percent) * u64::from(judged)
        }
        RiskCondition::ResponsibilityNotImplementedMonths(months) => {
            !report.responsibility_implemented
                && month_ends_before(at, rules, *months)
                    .into_iter()
                    .all(|instant| evaluate(file, rules, instant).is_some_and(|past| !past.responsibility_implemented))
        }
        RiskCondition::FatalAccidentWithinDays(days) => file.accidents.iter().any(|accident| {
            accident.fatalities > 0
                && accident.reported_at <= at
                && accident.occurred_at <= at
                && at - accident.occurred_at < Duration::days(i64::from(*days))
        }),
        RiskCondition::HazardsInLastGovernmentInspectionAtLeast(count) => {
            let last = file
                .inspections
                .values()
                .filter(|inspection| inspection.recorded_at <= at)
                .max_by_key(|inspection| (inspection.inspected_at, inspection.inspection_id));
            last.is_some_and(|inspection| inspection.hazards.len() >= *count as usize)
        }
        RiskCondition::Profile(condition) => file
            .profile_at(at)
            .is_some_and(|profile| rules.holds(condition, profile)),
        RiskCondition::AnyOf(conditions) => conditions.iter().any(|condition| holds(facts, condition)),
        RiskCondition::AllOf(conditions) => conditions.iter().all(|condition| holds(facts, condition)),
        RiskCondition::Not(condition) => !holds(facts, condition),
    }
}

/// The last instants of the `count` local months before the one containing `at`.
fn month_ends_before(at: Instant, rules: &RuleSet, count: u32) -> Vec<Instant> {
    let mut period = Cadence::Monthly.period_containing(at, rules.time_zone);
    (0..count)
        .map(|_| {
            let end = period.start(rules.time_zone) - Duration::microseconds(1);
            period = period.previous();
            end
        })
        .collect()
}

/// The last instants of the `count` local quarters before the one containing `at`.
fn quarter_ends_before(at: Instant, rules: &RuleSet, count: u32) -> Vec<Instant> {
    let mut period = Cadence::Quarterly.period_containing(at, rules.time_zone);
    (0..count)
        .map(|_| {
            let end = period.start(rules.time_zone) - Duration::microseconds(1);
            period = period.previous();
            end
        })
        .collect()
}

fn local_midnight_after(instant: Instant, rules: &RuleSet) -> Instant {
    let day: NaiveDate = instant.with_timezone(&rules.time_zone).date_naive();
    let next = day.succ_opt().unwrap_or(day);
    rules
        .time_zone
        .from_local_datetime(&next.and_time(NaiveTime::MIN))
        .single()
        .map_or(bounds::plus(instant, Duration::days(1)), |local| local.to_utc())
}

/// Every instant at which a fact of the file became known.
fn fact_instants(file: &EnterpriseFile) -> Vec<Instant> {
    let mut instants: Vec<Instant> = file.profile_history.iter().map(|(at, _)| *at).collect();
    for document in file.documents.values() {
        instants.push(document.uploaded_at);
        if let Some(review) = &document.review {
            instants.push(review.reviewed_at);
        }
    }
    for hazard in file.hazards.values() {
        instants.push(hazard.recorded_at);
        instants.extend(hazard.extensions.iter().map(|extension| extension.extended_at));
        for rectification in &hazard.rectifications {
            instants.push(rectification.submitted_at);
            instants.extend(rectification.verdict.as_ref().map(|verdict| verdict.verified_at));
            if let Some(closure) = &rectification.self_closure {
                instants.push(closure.closed_at);
                instants.extend(closure.spot_check.as_ref().map(|check| check.checked_at));
            }
        }
    }
    instants.extend(file.accidents.iter().map(|accident| accident.reported_at));
    instants.extend(file.inspections.values().map(|inspection| inspection.recorded_at));
    instants
}
