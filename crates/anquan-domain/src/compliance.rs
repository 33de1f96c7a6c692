//! The status engine (domain.md §1.3): from an enterprise's file, a rule set and an instant, the
//! status of each indicator with its reason, and "x of 21 implemented".
//!
//! Time is a parameter: the same file, rules and instant always give the same report, and an
//! instant in the past gives the report as it stood then (facts recorded later are ignored).

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::enterprise::{Coverage, DocumentRecord, EnterpriseFile, ReviewOutcome};
use crate::ids::{DocumentId, HazardId, IndicatorCode, RequirementCode};
use crate::period::{Cadence, Period};
use crate::rules::{EnterpriseProfile, Evidence, Indicator, Requirement, ResponsibilityRule, RuleSet};

/// Bounds the walk back over periods whose grace has not yet run out.
const DUE_PERIOD_STEPS_MAX: usize = 64;

/// An enterprise's compliance at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    pub at: Instant,
    pub rule_set: String,
    pub implemented: u32,
    pub not_implemented: u32,
    /// 未到期: applicable indicators with nothing due yet (see [`IndicatorState::NotYetDue`]).
    pub not_yet_due: u32,
    pub not_applicable: u32,
    /// The enterprise-level flag (主体责任落实): see [`ResponsibilityRule`]; false whenever a
    /// veto applies.
    pub responsibility_implemented: bool,
    /// What overrides the indicators (否决项), if anything.
    pub vetoes: Vec<Veto>,
    pub indicators: Vec<IndicatorStatus>,
}

/// A fact that makes the main responsibility "not implemented" whatever the indicators show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Veto {
    /// A government-found hazard past its deadline and not closed.
    OverdueGovernmentHazard { hazard_id: HazardId, deadline: Instant },
    /// An open major hazard.
    OpenMajorHazard { hazard_id: HazardId },
    /// A fatal accident within the rule set's window.
    FatalAccident {
        accident_id: uuid::Uuid,
        occurred_at: Instant,
    },
}

/// The status of one indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorState {
    /// 已落实: every applicable mandatory requirement is satisfied.
    Implemented,
    /// 未落实: at least one is not.
    NotImplemented,
    /// 未到期: none is unsatisfied and every applicable mandatory requirement is not yet due (a
    /// periodic item whose first due instant has not come). An indicator with some requirements
    /// satisfied and the rest not yet due is implemented: everything due so far is done.
    NotYetDue,
    /// 不适用: the enterprise's profile excludes the indicator.
    NotApplicable,
}

/// One indicator's status and the requirements behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorStatus {
    pub code: IndicatorCode,
    pub state: IndicatorState,
    pub requirements: Vec<RequirementStatus>,
}

/// Whether one requirement is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementState {
    Satisfied,
    Unsatisfied,
    /// A periodic item with no record whose first period has not come due since registration
    /// (the detail names the first due instant).
    NotYetDue,
    NotApplicable,
}

/// One requirement's status, with the fact that decides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementStatus {
    pub code: RequirementCode,
    pub mandatory: bool,
    pub state: RequirementState,
    pub detail: Detail,
}

/// The fact that decides a requirement's state: what satisfies it, or what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// The profile excludes the requirement.
    ProfileExcludes,
    /// An approved record satisfies it for good.
    Approved { document_id: DocumentId },
    /// An approved record is valid until `valid_until` (exclusive).
    ValidUntil {
        document_id: DocumentId,
        valid_until: Instant,
        expiring_soon: bool,
    },
    /// An approved record covers the due period or a later one.
    PeriodCovered { document_id: DocumentId, period: Period },
    /// No period has come due since the enterprise registered (the requirement is not yet due;
    /// `due_at` is the first due instant).
    NothingDueYet { next_period: Period, due_at: Instant },
    /// No record was ever uploaded.
    NoRecord,
    /// The newest record awaits review.
    AwaitingReview { document_id: DocumentId },
    /// The newest record was returned with feedback.
    Returned { document_id: DocumentId, feedback: String },
    /// The newest approved record's validity ended.
    Expired {
        document_id: DocumentId,
        valid_until: Instant,
    },
    /// The approved record is not valid yet.
    NotYetValid {
        document_id: DocumentId,
        valid_from: Instant,
    },
    /// The record for a due period is missing (its due instant has passed).
    PeriodMissing { period: Period, due_at: Instant },
}

/// Evaluates an enterprise's compliance at `at`, or `None` if it was not registered by then.
pub fn evaluate(file: &EnterpriseFile, rules: &RuleSet, at: Instant) -> Option<ComplianceReport> {
    let registration = file.registration.as_ref()?;
    let profile = file.profile_at(at)?;
    let documents: Vec<&DocumentRecord> = file
        .documents
        .values()
        .filter(|document| document.uploaded_at <= at)
        .collect();
    let context = Evaluation {
        rules,
        profile,
        registered_at: registration.registered_at,
        at,
        documents: &documents,
    };
    let indicators: Vec<IndicatorStatus> = rules
        .indicators
        .iter()
        .map(|indicator| context.indicator(indicator))
        .collect();
    let count =
        |state| u32::try_from(indicators.iter().filter(|status| status.state == state).count()).unwrap_or(u32::MAX);
    let implemented = count(IndicatorState::Implemented);
    let not_implemented = count(IndicatorState::NotImplemented);
    let not_yet_due = count(IndicatorState::NotYetDue);
    let not_applicable = count(IndicatorState::NotApplicable);
    let vetoes = vetoes(file, rules, at);
    let (met, judged) = rules
        .status
        .not_yet_due
        .tally(implemented, not_implemented, not_yet_due);
    let indicators_implemented = match rules.status.responsibility {
        ResponsibilityRule::AllApplicable => met == judged,
        ResponsibilityRule::ShareOfApplicable { percent_min } => {
            u64::from(met) * 100 >= u64::from(percent_min) * u64::from(judged)
        }
    };
    Some(ComplianceReport {
        at,
        rule_set: rules.version.clone(),
        implemented,
        not_implemented,
        not_yet_due,
        not_applicable,
        responsibility_implemented: indicators_implemented && vetoes.is_empty(),
        vetoes,
        indicators,
    })
}

/// The vetoes in force at `at`, in a stable order (hazards by id, then accidents).
pub fn vetoes(file: &EnterpriseFile, rules: &RuleSet, at: Instant) -> Vec<Veto> {
    let veto = &rules.supervision.veto;
    let mut vetoes = Vec::new();
    // Only hazards of the sources the rule set counts toward the veto (`hazard_sources`), and
    // listed hazards whatever their source while the rule set counts a listing as open.
    for hazard in file.hazards.values().filter(|hazard| hazard.known_at(at)) {
        let source_counts = hazard.counts_toward_veto(rules);
        if veto.open_major_hazard && hazard.counts_as_open_major(rules, at, source_counts) {
            vetoes.push(Veto::OpenMajorHazard {
                hazard_id: hazard.hazard_id,
            });
        }
        if source_counts && veto.overdue_government_hazard && hazard.is_government() && hazard.overdue_at(at) {
            vetoes.push(Veto::OverdueGovernmentHazard {
                hazard_id: hazard.hazard_id,
                deadline: hazard.deadline_at(at),
            });
        }
    }
    if veto.fatal_accident_days > 0 {
        let window = Duration::days(i64::from(veto.fatal_accident_days));
        for accident in &file.accidents {
            if accident.fatalities > 0
                && accident.reported_at <= at
                && accident.occurred_at <= at
                && at - accident.occurred_at < window
            {
                vetoes.push(Veto::FatalAccident {
                    accident_id: accident.accident_id,
                    occurred_at: accident.occurred_at,
                });
            }
        }
    }
    vetoes
}

struct Evaluation<'a> {
    rules: &'a RuleSet,
    profile: &'a EnterpriseProfile,
    registered_at: Instant,
    at: Instant,
    /// Records uploaded by `at`.
    documents: &'a [&'a DocumentRecord],
}

impl Evaluation<'_> {
    fn indicator(&self, indicator: &Indicator) -> IndicatorStatus {
        let applies = self.rules.holds(&indicator.applies_to, self.profile);
        let requirements: Vec<RequirementStatus> = indicator
            .requirements
            .iter()
            .map(|requirement| {
                if applies {
                    self.requirement(requirement)
                } else {
                    not_applicable(requirement)
                }
            })
            .collect();
        let applicable = requirements
            .iter()
            .any(|status| status.state != RequirementState::NotApplicable);
        let mandatory = || {
            requirements
                .iter()
                .filter(|status| status.mandatory && status.state != RequirementState::NotApplicable)
        };
        let unmet = mandatory().any(|status| status.state == RequirementState::Unsatisfied);
        let nothing_due =
            mandatory().next().is_some() && mandatory().all(|status| status.state == RequirementState::NotYetDue);
        let state = match (applicable, unmet, nothing_due) {
            (false, _, _) => IndicatorState::NotApplicable,
            (true, true, _) => IndicatorState::NotImplemented,
            (true, false, true) => IndicatorState::NotYetDue,
            (true, false, false) => IndicatorState::Implemented,
        };
        IndicatorStatus {
            code: indicator.code.clone(),
            state,
            requirements,
        }
    }

    fn requirement(&self, requirement: &Requirement) -> RequirementStatus {
        if !self.rules.holds(&requirement.applies_to, self.profile) {
            return not_applicable(requirement);
        }
        let records: Vec<&DocumentRecord> = self
            .documents
            .iter()
            .copied()
            .filter(|document| document.requirement == requirement.code)
            .collect();
        let outcome = match &requirement.evidence {
            Evidence::Review => self.review_evidence(&records),
            Evidence::Validity { .. } => self.validity_evidence(&records),
            Evidence::Periodic { .. } => match self.rules.cadence_for(&requirement.evidence, self.profile) {
                Some(cadence) => {
                    self.periodic_evidence(&records, cadence, self.rules.grace_days(&requirement.evidence))
                }
                None => return not_applicable(requirement),
            },
        };
        let (state, detail) = match outcome {
            Ok(detail @ Detail::NothingDueYet { .. }) => (RequirementState::NotYetDue, detail),
            Ok(detail) => (RequirementState::Satisfied, detail),
            Err(detail) => (RequirementState::Unsatisfied, detail),
        };
        RequirementStatus {
            code: requirement.code.clone(),
            mandatory: requirement.mandatory,
            state,
            detail,
        }
    }

    fn review_evidence(&self, records: &[&DocumentRecord]) -> Result<Detail, Detail> {
        match records
            .iter()
            .filter(|record| record.approved_by(self.at))
            .max_by_key(|record| record.uploaded_at)
        {
            Some(record) => Ok(Detail::Approved {
                document_id: record.document_id,
            }),
            None => Err(self.newest_unapproved(records).unwrap_or(Detail::NoRecord)),
        }
    }

    fn validity_evidence(&self, records: &[&DocumentRecord]) -> Result<Detail, Detail> {
        let approved = records
            .iter()
            .filter(|record| record.approved_by(self.at))
            .filter_map(|record| match record.coverage {
                Coverage::Validity {
                    valid_from,
                    valid_until,
                } => Some((record.document_id, valid_from, valid_until)),
                Coverage::Once | Coverage::Period { .. } => None,
            });
        let mut covering: Option<(DocumentId, Instant)> = None;
        let mut not_yet_valid: Option<(DocumentId, Instant)> = None;
        let mut expired: Option<(DocumentId, Instant)> = None;
        for (document_id, valid_from, valid_until) in approved {
            if valid_from > self.at {
                keep_if(&mut not_yet_valid, (document_id, valid_from), |new, old| new < old);
            } else if self.at < valid_until {
                keep_if(&mut covering, (document_id, valid_until), |new, old| new > old);
            } else {
                keep_if(&mut expired, (document_id, valid_until), |new, old| new > old);
            }
        }
        if let Some((document_id, valid_until)) = covering {
            let soon = Duration::days(i64::from(self.rules.status.expiring_soon_days));
            return Ok(Detail::ValidUntil {
                document_id,
                valid_until,
                expiring_soon: valid_until - self.at <= soon,
            });
        }
        if let Some(detail) = self.newest_unapproved(records) {
            return Err(detail);
        }
        Err(match (not_yet_valid, expired) {
            (Some((document_id, valid_from)), _) => Detail::NotYetValid {
                document_id,
                valid_from,
            },
            (None, Some((document_id, valid_until))) => Detail::Expired {
                document_id,
                valid_until,
            },
            (None, None) => Detail::NoRecord,
        })
    }

    fn periodic_evidence(
        &self,
        records: &[&DocumentRecord],
        cadence: Cadence,
        grace_days: u32,
    ) -> Result<Detail, Detail> {
        let time_zone = self.rules.time_zone;
        let grace = Duration::days(i64::from(grace_days));
        let due_at = |period: &Period| crate::bounds::plus(period.end(time_zone), grace);
        // The due period is the latest one whose record is already late if missing.
        let mut due = cadence.period_containing(self.at, time_zone).previous();
        for _ in 0..DUE_PERIOD_STEPS_MAX {
            if due_at(&due) <= self.at {
                break;
            }
            due = due.previous();
        }
        let covered = records
            .iter()
            .filter(|record| record.approved_by(self.at))
            .filter_map(|record| match record.coverage {
                Coverage::Period { period } if period.cadence() == cadence && period >= due => {
                    Some((period, record.document_id))
                }
                _ => None,
            })
            .max();
        if let Some((period, document_id)) = covered {
            return Ok(Detail::PeriodCovered { document_id, period });
        }
        if due.end(time_zone) <= self.registered_at {
            let next_period = due.next();
            return Ok(Detail::NothingDueYet {
                next_period,
                due_at: due_at(&next_period),
            });
        }
        let pending_for_due = records
            .iter()
            .copied()
            .filter(|record| matches!(record.coverage, Coverage::Period { period } if period >= due))
            .collect::<Vec<_>>();
        Err(self
            .newest_unapproved(&pending_for_due)
            .unwrap_or(Detail::PeriodMissing {
                period: due,
                due_at: due_at(&due),
            }))
    }

    /// Describes the newest record if it is awaiting review or was returned, as of `at`.
    fn newest_unapproved(&self, records: &[&DocumentRecord]) -> Option<Detail> {
        let newest = records
            .iter()
            .max_by_key(|record| (record.uploaded_at, record.document_id))?;
        match newest.review_at(self.at) {
            None => Some(Detail::AwaitingReview {
                document_id: newest.document_id,
            }),
            Some(review) => match &review.outcome {
                ReviewOutcome::Returned { feedback } => Some(Detail::Returned {
                    document_id: newest.document_id,
                    feedback: feedback.clone(),
                }),
                ReviewOutcome::Approved { .. } => None,
            },
        }
    }
}

/// Keeps `candidate` in `slot` when the slot is empty or `better(candidate time, slot time)`.
fn keep_if(
    slot: &mut Option<(DocumentId, Instant)>,
    candidate: (DocumentId, Instant),
    better: fn(Instant, Instant) -> bool,
) {
    if slot.is_none_or(|(_, held)| better(candidate.1, held)) {
        *slot = Some(candidate);
    }
}

fn not_applicable(requirement: &Requirement) -> RequirementStatus {
    RequirementStatus {
        code: requirement.code.clone(),
        mandatory: requirement.mandatory,
        state: RequirementState::NotApplicable,
        detail: Detail::ProfileExcludes,
    }
}
