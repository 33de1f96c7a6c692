//! The brute-force oracle of the 78 town metrics: every metric of every town and the city at
//! an instant, computed directly over the raw event list, sharing no code with
//! `anquan_projections::metrics` or `anquan_domain::metrics` (see `metrics_oracle.rs` for what
//! it does share: the aggregate's fold and the status engine). Used by `metrics_oracle.rs`
//! over generated histories and by the black-box test of the monthly reports
//! (`tests/it/monthly_reports.rs`) over the log a year of API calls left.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::type_complexity,
    clippy::collapsible_match,
    clippy::filter_next,
    clippy::manual_find,
    dead_code,
    reason = "test code fails the test on any error; the oracle keeps raw tuples on purpose"
)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use anquan_domain::agency::{QualificationKind, WarningKind};
use anquan_domain::compliance::{IndicatorState, RequirementState, evaluate};
use anquan_domain::credit::Grade;
use anquan_domain::enterprise::event::{HazardLevel, HazardSource, InspectorLevel};
use anquan_domain::enterprise::{Coverage, EnterpriseFile};
use anquan_domain::metrics::{Covers, Measure, Scope, Tally, Window};
use anquan_domain::rules::NotYetDue;
use anquan_domain::rules::RuleSet;
use anquan_domain::{
    AgencyId, Cadence, ContractId, DocumentId, EnterpriseId, Event, HazardId, InspectionId, Period, ServiceReportId,
    StaffId, Town,
};

/// The raw log: (stream id, event), in log order.
pub(crate) type Log = Vec<(String, Event)>;

pub(crate) fn enterprise_of(stream: &str) -> Option<EnterpriseId> {
    stream.strip_prefix("enterprise-").and_then(|id| id.parse().ok())
}

pub(crate) fn agency_of(stream: &str) -> Option<AgencyId> {
    stream.strip_prefix("agency-").and_then(|id| id.parse().ok())
}

/// Brute-force tallies of every metric for every town (and the city under `None`) at `at`,
/// over the enterprises matching breakdown `breakdown` (or all).
pub(crate) fn oracle(
    rules: &RuleSet,
    log: &Log,
    at: DateTime<Utc>,
    breakdown: Option<usize>,
) -> BTreeMap<Option<Town>, Vec<Tally>> {
    let tz = rules.time_zone;
    let catalogue = &rules.metrics;
    // A window ends at `at`; an instant on a boundary closes the period before it.
    let closing = |cadence: Cadence| {
        let period = cadence.period_containing(at, tz);
        if period.start(tz) == at {
            period.previous()
        } else {
            period
        }
    };
    let year_start = closing(Cadence::Yearly).start(tz);
    let half_start = closing(Cadence::HalfYearly).start(tz);
    let start_of = |window: Window| match window {
        Window::Snapshot => at,
        Window::Ytd => year_start,
        Window::HalfYear => half_start,
    };
    let inside = |t: DateTime<Utc>, window: Window| start_of(window) <= t && t <= at;
    // Completed periods only: the latest half-year ended by `at`, walked back from the one
    // containing `at`; a year-to-date window is that half-year's year up to its end.
    let mut last_half = Cadence::HalfYearly.period_containing(at, tz);
    while last_half.end(tz) > at {
        last_half = last_half.previous();
    }
    let completed = |window: Window| -> Period {
        let year = Cadence::Yearly.period_containing(last_half.start(tz), tz);
        match window {
            Window::Ytd if year.end(tz) == last_half.end(tz) => year,
            _ => last_half,
        }
    };
    // The periods of a cadence an enterprise is judged on over a completed span: those inside
    // it, or else the latest that ended by its end.
    let judged = |cadence: Cadence, span: Period| -> Vec<Period> {
        let (from, to) = (span.start(tz), span.end(tz));
        let mut period = cadence.period_containing(from - Duration::days(400), tz);
        let mut inside = Vec::new();
        let mut latest = None;
        while period.start(tz) < to {
            if period.end(tz) <= to {
                latest = Some(period);
                if period.start(tz) >= from {
                    inside.push(period);
                }
            }
            period = period.next();
        }
        if inside.is_empty() {
            inside.extend(latest);
        }
        inside
    };

    // Each enterprise's raw events, its current town, and its file folded from them.
    let mut streams: BTreeMap<EnterpriseId, Vec<&Event>> = BTreeMap::new();
    for (stream, event) in log {
        if let Some(id) = enterprise_of(stream) {
            streams.entry(id).or_default().push(event);
        }
    }
    // Agency facts about enterprises, straight from the agency events.
    let mut contract_enterprise: BTreeMap<ContractId, EnterpriseId> = BTreeMap::new();
    let mut report_enterprise: BTreeMap<ServiceReportId, EnterpriseId> = BTreeMap::new();
    for (_, event) in log {
        match event {
            Event::ContractSigned(e) => {
                contract_enterprise.insert(e.contract_id, e.enterprise_id);
            }
            Event::ContractProposed(e) => {
                contract_enterprise.insert(e.contract_id, e.enterprise_id);
            }
            Event::ServiceReported(e) => {
                report_enterprise.insert(e.report_id, e.enterprise_id);
            }
            _ => {}
        }
    }

    let mut result: BTreeMap<Option<Town>, Vec<Tally>> = BTreeMap::new();
    for (enterprise_id, events) in &streams {
        let file = EnterpriseFile::from_events(events.iter().copied());
        let Some(registration) = &file.registration else {
            continue;
        };
        if registration.registered_at > at {
            continue;
        }
        // The profile and the town at `at`, from the raw events.
        let mut profile = None;
        let mut town_then = None;
        for event in events {
            match event {
                Event::EnterpriseRegistered(e) if e.registered_at <= at => {
                    profile = Some(e.profile.clone());
                    town_then = Some(e.town.clone());
                }
                Event::EnterpriseProfileChanged(e) if e.changed_at <= at => {
                    profile = Some(e.profile.clone());
                    town_then = Some(e.town.clone());
                }
                _ => {}
            }
        }
        let profile = profile.unwrap();
        let town_then = town_then.unwrap();
        if let Some(index) = breakdown
            && !rules.holds(&catalogue.breakdowns[index].when, &profile)
        {
            continue;
        }
        let report = evaluate(&file, rules, at).unwrap();
        let colour = anquan_domain::risk::assess(&file, rules, at).unwrap().colour;
        let requirement_state = |code: &str| {
            report
                .indicators
                .iter()
                .flat_map(|indicator| &indicator.requirements)
                .find(|requirement| requirement.code.as_str() == code)
                .map_or(RequirementState::NotApplicable, |requirement| requirement.state)
        };

        // Raw facts of this enterprise.
        let mut uploads: BTreeMap<DocumentId, (String, DateTime<Utc>, Coverage)> = BTreeMap::new();
        let mut reviews: Vec<(DocumentId, bool, bool, DateTime<Utc>)> = Vec::new(); // (doc, approved, commented, at)
        let mut inspections: BTreeMap<InspectionId, (InspectorLevel, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        // Major hazards on a free-text basis, with when an official confirmed them (if ever).
        let mut pending: BTreeMap<HazardId, Option<DateTime<Utc>>> = BTreeMap::new();
        let mut hazards: BTreeMap<HazardId, (bool, bool, HazardLevel, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> =
            BTreeMap::new(); // (government, self, level, found, recorded, deadline)
        let mut extensions: Vec<(HazardId, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        let mut verdicts: Vec<(HazardId, bool, DateTime<Utc>)> = Vec::new();
        for event in events {
            match event {
                Event::DocumentUploaded(e) => {
                    uploads.insert(
                        e.document_id,
                        (e.requirement.as_str().to_owned(), e.uploaded_at, e.coverage.clone()),
                    );
                }
                Event::DocumentApproved(e) => reviews.push((
                    e.document_id,
                    true,
                    e.comment.as_deref().is_some_and(|c| !c.trim().is_empty()),
                    e.reviewed_at,
                )),
                Event::DocumentReturned(e) => reviews.push((e.document_id, false, true, e.reviewed_at)),
                Event::InspectionRecorded(e) => {
                    inspections.insert(e.inspection_id, (e.level, e.inspected_at, e.recorded_at));
                }
                Event::HazardFound(e) => {
                    hazards.insert(
                        e.hazard_id,
                        (
                            matches!(e.source, HazardSource::GovernmentInspection { .. }),
                            matches!(e.source, HazardSource::SelfInspection),
                            e.level,
                            e.found_at,
                            e.recorded_at,
                            e.deadline,
                        ),
                    );
                }
                Event::MajorHazardBasisStated(e) => {
                    pending.insert(e.hazard_id, None);
                }
                Event::MajorHazardConfirmed(e) => {
                    pending.insert(e.hazard_id, Some(e.confirmed_at));
                }
                Event::HazardDeadlineExtended(e) => extensions.push((e.hazard_id, e.deadline, e.extended_at)),
                Event::RectificationAccepted(e) => verdicts.push((e.hazard_id, true, e.verified_at)),
                Event::RectificationReturned(e) => verdicts.push((e.hazard_id, false, e.verified_at)),
                _ => {}
            }
        }
        let closed_at = |hazard: &HazardId| {
            verdicts
                .iter()
                .filter(|(id, accepted, when)| id == hazard && *accepted && *when <= at)
                .map(|(_, _, when)| *when)
                .min()
        };
        let deadline_at = |hazard: &HazardId, initial: DateTime<Utc>| {
            extensions
                .iter()
                .filter(|(id, _, when)| id == hazard && *when <= at)
                .map(|(_, deadline, _)| *deadline)
                .next_back()
                .unwrap_or(initial)
        };
        // Only filed contracts count, from their filing on.
        let filed_at = |contract: ContractId| {
            log.iter().find_map(|(_, event)| match event {
                Event::ContractFiled(e) if e.contract_id == contract => Some(e.filed_at),
                _ => None,
            })
        };
        let contracts: Vec<&anquan_domain::agency::event::ContractProposed> = log
            .iter()
            .filter_map(|(_, event)| match event {
                Event::ContractProposed(e) if e.enterprise_id == *enterprise_id => Some(e),
                _ => None,
            })
            .collect();
        let terminated = |contract: ContractId| {
            log.iter().find_map(|(_, event)| match event {
                Event::ContractTerminated(e) if e.contract_id == contract && e.terminated_at <= at => {
                    Some(e.terminated_at)
                }
                _ => None,
            })
        };
        let in_force: Vec<ContractId> = contracts
            .iter()
            .filter(|c| {
                filed_at(c.contract_id).is_some_and(|filed| filed <= at)
                    && c.valid_from <= at
                    && at < c.valid_until
                    && terminated(c.contract_id).is_none_or(|t| at < t)
            })
            .map(|c| c.contract_id)
            .collect();
        let service_reports: Vec<&anquan_domain::agency::event::ServiceReported> = log
            .iter()
            .filter_map(|(_, event)| match event {
                Event::ServiceReported(e) if e.enterprise_id == *enterprise_id => Some(e),
                _ => None,
            })
            .collect();
        let ratings: Vec<(u8, DateTime<Utc>)> = log
            .iter()
            .filter_map(|(_, event)| match event {
                Event::ServiceRated(e) if report_enterprise.get(&e.report_id) == Some(enterprise_id) => {
                    Some((e.stars, e.rated_at))
                }
                _ => None,
            })
            .collect();

        // Closures from the raw events: (effective, recorded, reopened (effective, recorded)).
        let mut closures: Vec<(DateTime<Utc>, DateTime<Utc>, Option<(DateTime<Utc>, DateTime<Utc>)>)> = Vec::new();
        for event in events {
            match event {
                Event::EnterpriseClosed(e) => closures.push((e.effective_at, e.recorded_at, None)),
                Event::EnterpriseReopened(e) => closures.last_mut().unwrap().2 = Some((e.effective_at, e.recorded_at)),
                _ => {}
            }
        }
        let known = |(effective, recorded): (DateTime<Utc>, DateTime<Utc>)| effective <= at && recorded <= at;
        let closed_now = closures
            .iter()
            .rev()
            .find(|c| known((c.0, c.1)))
            .is_some_and(|c| !c.2.is_some_and(known));
        let town = town_then;
        let mut tallies = Vec::new();
        for metric in &catalogue.metrics {
            let w = metric.window;
            let count = |n: usize| n as i64;
            let reviewed_in = |filter: &dyn Fn(&(DocumentId, bool, bool, DateTime<Utc>)) -> bool| {
                count(reviews.iter().filter(|r| inside(r.3, w) && filter(r)).count())
            };
            // A free-text major hazard counts as general until confirmed (docs/roles.md).
            let level_at = |id: &HazardId, level: HazardLevel| {
                let unconfirmed = pending
                    .get(id)
                    .is_some_and(|confirmed| confirmed.is_none_or(|when| when > at));
                if level == HazardLevel::Major && unconfirmed {
                    HazardLevel::General
                } else {
                    level
                }
            };
            let gov_found = |level: Option<HazardLevel>| -> Vec<HazardId> {
                hazards
                    .iter()
                    .filter(|(id, h)| {
                        h.0 && h.4 <= at && inside(h.3, w) && level.is_none_or(|l| level_at(id, h.2) == l)
                    })
                    .map(|(id, _)| *id)
                    .collect()
            };
            let held = |level: Option<InspectorLevel>| {
                count(
                    inspections
                        .values()
                        .filter(|(l, inspected, recorded)| {
                            *recorded <= at && inside(*inspected, w) && level.is_none_or(|x| x == *l)
                        })
                        .count(),
                )
            };
            let created = i64::from(inside(registration.registered_at, w));
            let closed_in_window = count(closures.iter().filter(|c| known((c.0, c.1)) && inside(c.0, w)).count());
            let (numerator, denominator) = if metric.scope == Scope::City || (closed_now && w == Window::Snapshot) {
                (0, 0)
            } else {
                match &metric.measure {
                    Measure::Enterprises { filter } => (i64::from(rules.holds(filter, &profile)), 1),
                    Measure::RegisteredInWindow => (created + closed_in_window, 0),
                    Measure::ResponsibilityImplemented => (i64::from(report.responsibility_implemented), 1),
                    Measure::IndicatorImplemented { indicator } => {
                        let state = report.indicators.iter().find(|s| &s.code == indicator).unwrap().state;
                        // 未到期 counts as the catalogue says (met / unmet / left out).
                        match (state, catalogue.not_yet_due) {
                            (IndicatorState::Implemented, _) => (1, 1),
                            (IndicatorState::NotImplemented, _) => (0, 1),
                            (IndicatorState::NotApplicable, _) => (0, 0),
                            (IndicatorState::NotYetDue, NotYetDue::Met) => (1, 1),
                            (IndicatorState::NotYetDue, NotYetDue::Unmet) => (0, 1),
                            (IndicatorState::NotYetDue, NotYetDue::Excluded) => (0, 0),
                        }
                    }
                    Measure::DocumentsUploaded => (count(uploads.values().filter(|u| inside(u.1, w)).count()), 0),
                    Measure::DocumentsReviewed => (reviewed_in(&|_| true), 0),
                    Measure::DocumentsReturned => (reviewed_in(&|r| !r.1), reviewed_in(&|_| true)),
                    Measure::FeedbackIssued => (reviewed_in(&|r| r.2), 0),
                    Measure::ReviewBacklog => {
                        let cutoff = at - Duration::days(i64::from(catalogue.pending_review_days));
                        let pending = uploads
                            .iter()
                            .filter(|(id, u)| u.1 < cutoff && !reviews.iter().any(|r| r.0 == **id && r.3 <= at))
                            .count();
                        (count(pending), 0)
                    }
                    Measure::RequirementSatisfied {
                        requirement,
                        denominator_of,
                    } => {
                        let state = requirement_state(requirement.as_str());
                        let active = matches!(denominator_of, anquan_domain::metrics::DenominatorOf::Active);
                        match (state, catalogue.not_yet_due) {
                            (RequirementState::Satisfied, _) => (1, 1),
                            (RequirementState::Unsatisfied, _) => (0, 1),
                            (RequirementState::NotApplicable, _) => (0, i64::from(active)),
                            (RequirementState::NotYetDue, NotYetDue::Met) => (1, 1),
                            (RequirementState::NotYetDue, NotYetDue::Unmet) => (0, 1),
                            (RequirementState::NotYetDue, NotYetDue::Excluded) => (0, 0),
                        }
                    }
                    Measure::PeriodRecordApproved { requirements, filter }
                        if metric.covers == Covers::CompletedPeriods =>
                    {
                        if rules.holds(filter, &profile) {
                            let covered = requirements.iter().any(|requirement| {
                                let (indicator, rule) = rules.requirement(requirement).unwrap();
                                if !rules.holds(&indicator.applies_to, &profile)
                                    || !rules.holds(&rule.applies_to, &profile)
                                {
                                    return false;
                                }
                                let Some(cadence) = rules.cadence_for(&rule.evidence, &profile) else {
                                    return false;
                                };
                                judged(cadence, completed(w)).into_iter().all(|period| {
                                    uploads.iter().any(|(id, u)| {
                                        u.0 == requirement.as_str()
                                            && u.1 <= at
                                            && u.2 == Coverage::Period { period }
                                            && reviews.iter().any(|r| r.0 == *id && r.1 && r.3 <= at)
                                    })
                                })
                            });
                            (i64::from(covered), 1)
                        } else {
                            (0, 0)
                        }
                    }
                    Measure::CadenceMet { requirement } if metric.covers == Covers::CompletedPeriods => {
                        if requirement_state(requirement.as_str()) == RequirementState::NotApplicable {
                            (0, 0)
                        } else {
                            let (_, rule) = rules.requirement(requirement).unwrap();
                            let cadence = rules.cadence_for(&rule.evidence, &profile).unwrap();
                            let due: Vec<Period> = judged(cadence, completed(w))
                                .into_iter()
                                .filter(|period| period.end(tz) > registration.registered_at)
                                .collect();
                            let met = due.iter().all(|period| {
                                uploads.iter().any(|(id, u)| {
                                    u.0 == requirement.as_str()
                                        && u.1 <= at
                                        && u.2 == Coverage::Period { period: *period }
                                        && reviews.iter().any(|r| r.0 == *id && r.1 && r.3 <= at)
                                })
                            });
                            // Registered after the span: not in the rate yet.
                            if due.is_empty() { (0, 0) } else { (i64::from(met), 1) }
                        }
                    }
                    Measure::PeriodRecordApproved { requirements, filter } => {
                        if rules.holds(filter, &profile) {
                            let current = match w {
                                Window::HalfYear => closing(Cadence::HalfYearly),
                                Window::Ytd => closing(Cadence::Yearly),
                                Window::Snapshot => Cadence::Yearly.period_containing(at, tz),
                            };
                            let covered = uploads.iter().any(|(id, u)| {
                                requirements.iter().any(|r| r.as_str() == u.0)
                                    && u.1 <= at
                                    && reviews.iter().any(|r| r.0 == *id && r.1 && r.3 <= at)
                                    && matches!(&u.2, Coverage::Period { period }
                                        if period.start(tz) < current.end(tz) && period.end(tz) > current.start(tz))
                            });
                            (i64::from(covered), 1)
                        } else {
                            (0, 0)
                        }
                    }
                    Measure::CadenceMet { requirement } => {
                        // Applies as the status engine says; the periods are walked here.
                        if requirement_state(requirement.as_str()) == RequirementState::NotApplicable {
                            (0, 0)
                        } else {
                            let (_, rule) = rules.requirement(requirement).unwrap();
                            let cadence = rules.cadence_for(&rule.evidence, &profile).unwrap();
                            let mut period = cadence.period_containing(start_of(w), tz);
                            let mut met = true;
                            while period.start(tz) < at {
                                let due =
                                    period.start(tz) >= start_of(w) && period.end(tz) > registration.registered_at;
                                let covered = uploads.iter().any(|(id, u)| {
                                    u.0 == requirement.as_str()
                                        && u.1 <= at
                                        && u.2 == Coverage::Period { period }
                                        && reviews.iter().any(|r| r.0 == *id && r.1 && r.3 <= at)
                                });
                                met &= !due || covered;
                                period = period.next();
                            }
                            (i64::from(met), 1)
                        }
                    }
                    Measure::RecordsApproved { requirements } => (
                        reviewed_in(&|r| r.1 && requirements.iter().any(|q| q.as_str() == uploads[&r.0].0)),
                        0,
                    ),
                    Measure::TrainingSessions => (0, 0),
                    Measure::Inspections { level } => (held(*level), 0),
                    Measure::EnterprisesInspected => (i64::from(held(None) > 0), 1),
                    Measure::GovernmentHazards { level } => (count(gov_found(*level).len()), 0),
                    Measure::GovernmentHazardsClosed { level } => {
                        let found = gov_found(*level);
                        (
                            count(found.iter().filter(|id| closed_at(id).is_some()).count()),
                            count(found.len()),
                        )
                    }
                    Measure::OverdueGovernmentHazards => (
                        count(
                            hazards
                                .iter()
                                .filter(|(id, h)| {
                                    h.0 && h.4 <= at && closed_at(id).is_none() && at > deadline_at(id, h.5)
                                })
                                .count(),
                        ),
                        0,
                    ),
                    Measure::RectificationTime => {
                        let mut seconds = 0;
                        let mut closed = 0;
                        for id in gov_found(None) {
                            if let Some(when) = closed_at(&id) {
                                seconds += (when - hazards[&id].3).num_seconds();
                                closed += 1;
                            }
                        }
                        (seconds, closed)
                    }
                    Measure::HazardsPerInspection => (count(gov_found(None).len()), held(None)),
                    Measure::FirstReviewPass => {
                        let mut passed = 0;
                        let mut given = 0;
                        for (id, h) in &hazards {
                            if !h.0 || h.4 > at {
                                continue;
                            }
                            let first = verdicts.iter().filter(|v| v.0 == *id && v.2 <= at).min_by_key(|v| v.2);
                            if let Some(v) = first
                                && inside(v.2, w)
                            {
                                given += 1;
                                passed += i64::from(v.1);
                            }
                        }
                        (passed, given)
                    }
                    Measure::SelfInspectionHazards => (
                        count(hazards.values().filter(|h| h.1 && h.4 <= at && inside(h.3, w)).count()),
                        0,
                    ),
                    Measure::RiskColour { colours } => (i64::from(colours.contains(&colour)), 1),
                    Measure::ServiceCovered { filter } => {
                        if rules.holds(filter, &profile) {
                            (i64::from(!in_force.is_empty()), 1)
                        } else {
                            (0, 0)
                        }
                    }
                    Measure::ContractsInForce => (count(in_force.len()), 0),
                    Measure::ServiceReports => (
                        count(service_reports.iter().filter(|r| inside(r.reported_at, w)).count()),
                        0,
                    ),
                    Measure::ServiceReportHazards => (
                        service_reports
                            .iter()
                            .filter(|r| inside(r.reported_at, w))
                            .map(|r| r.hazards.len() as i64)
                            .sum(),
                        0,
                    ),
                    Measure::ServiceReportsOnTime => {
                        let due: Vec<_> = service_reports
                            .iter()
                            .filter(|r| r.reported_at <= at && inside(r.visited_at, w))
                            .collect();
                        (count(due.iter().filter(|r| r.on_time).count()), count(due.len()))
                    }
                    Measure::ServiceRating => {
                        let given: Vec<_> = ratings.iter().filter(|(_, when)| inside(*when, w)).collect();
                        (
                            given.iter().map(|(stars, _)| i64::from(*stars)).sum(),
                            count(given.len()),
                        )
                    }
                    _ => (0, 0),
                }
            };
            let mut tally = Tally {
                numerator,
                denominator,
                parts: [0; 4],
            };
            if metric.measure == Measure::RegisteredInWindow {
                tally.parts[0] = created;
                tally.parts[1] = closed_in_window;
            }
            tallies.push(tally);
        }
        for key in [Some(town.clone()), None] {
            let sums = result
                .entry(key)
                .or_insert_with(|| vec![Tally::default(); catalogue.metrics.len()]);
            for (sum, tally) in sums.iter_mut().zip(&tallies) {
                sum.add(tally);
            }
        }
    }
    // City-wide agency metrics, from the agency events.
    let city = result
        .entry(None)
        .or_insert_with(|| vec![Tally::default(); catalogue.metrics.len()]);
    let mut registered: BTreeSet<AgencyId> = BTreeSet::new();
    let mut lists: BTreeMap<(AgencyId, Period), (DateTime<Utc>, Vec<(StaffId, bool)>)> = BTreeMap::new();
    // Final gradings and regradings in log order (provisional grades are no metric's fact).
    let mut grades: Vec<(AgencyId, Period, Option<Grade>, DateTime<Utc>)> = Vec::new();
    let mut warnings: Vec<(AgencyId, WarningKind, DateTime<Utc>)> = Vec::new();
    let mut listed: BTreeMap<AgencyId, Vec<(bool, DateTime<Utc>)>> = BTreeMap::new();
    for (stream, event) in log {
        let Some(agency) = agency_of(stream) else { continue };
        match event {
            Event::AgencyRegistered(e) if e.registered_at <= at => {
                registered.insert(agency);
            }
            Event::StaffReported(e) => {
                // A re-report of a half-year replaces its list (and its reporting instant).
                let staff = e
                    .staff
                    .iter()
                    .map(|m| {
                        (
                            m.staff_id,
                            m.qualifications
                                .iter()
                                .any(|q| q.kind == QualificationKind::RegisteredSafetyEngineer),
                        )
                    })
                    .collect();
                lists.insert((agency, e.half_year), (e.reported_at, staff));
            }
            Event::CreditGraded(e) if !e.provisional => grades.push((agency, e.half_year, e.grade, e.graded_at)),
            Event::CreditRegraded(e) => grades.push((agency, e.half_year, e.grade, e.regraded_at)),
            Event::AgencyWarned(e) => warnings.push((agency, e.kind, e.issued_at)),
            Event::AgencyBlacklisted(e) => listed.entry(agency).or_default().push((true, e.blacklisted_at)),
            Event::AgencyDelisted(e) => listed.entry(agency).or_default().push((false, e.delisted_at)),
            _ => {}
        }
    }
    let last_half = Cadence::HalfYearly.period_containing(at, tz).previous();
    for (index, metric) in catalogue.metrics.iter().enumerate() {
        let mut tally = Tally::default();
        match &metric.measure {
            Measure::AgenciesRegistered => tally.numerator = registered.len() as i64,
            Measure::AgencyStaff { qualification } => {
                for agency in &registered {
                    let latest = lists
                        .iter()
                        .filter(|((a, _), (reported, _))| a == agency && *reported <= at)
                        .max_by_key(|((_, half), _)| *half);
                    if let Some((_, (_, staff))) = latest {
                        let unique: BTreeMap<StaffId, bool> = staff.iter().copied().collect();
                        match qualification {
                            None => tally.numerator += unique.len() as i64,
                            Some(_) => {
                                tally.denominator += unique.len() as i64;
                                tally.numerator += unique.values().filter(|q| **q).count() as i64;
                            }
                        }
                    }
                }
            }
            Measure::AgencyGrades => {
                // Each agency's last grading of the last half-year given by `at`.
                let mut current: BTreeMap<AgencyId, Option<Grade>> = BTreeMap::new();
                for (agency, half, grade, when) in &grades {
                    if registered.contains(agency) && *half == last_half && *when <= at {
                        current.insert(*agency, *grade);
                    }
                }
                for grade in current.values().flatten() {
                    tally.numerator += 1;
                    tally.parts[*grade as usize] += 1;
                }
            }
            Measure::AgencyWarnings => {
                for (agency, kind, when) in &warnings {
                    if registered.contains(agency) && year_start <= *when && *when <= at {
                        tally.numerator += 1;
                        tally.parts[usize::from(*kind == WarningKind::Summons)] += 1;
                    }
                }
            }
            Measure::AgenciesBlacklisted => {
                tally.numerator = registered
                    .iter()
                    .filter(|agency| {
                        listed.get(agency).is_some_and(|changes| {
                            changes
                                .iter()
                                .filter(|(_, when)| *when <= at)
                                .next_back()
                                .is_some_and(|(on, _)| *on)
                        })
                    })
                    .count() as i64;
            }
            _ => continue,
        }
        if breakdown.is_none() || metric.scope == Scope::City {
            city[index] = tally;
        }
    }
    result
}
