//! Supervision commands on the enterprise stream: inspections, hazards, deadline extensions,
//! rectifications and their verification, accidents.

use chrono::{Days, Duration, NaiveTime, TimeZone};

use super::event::{
    AccidentReported, CriterionRef, FileRef, HazardCategory, HazardDeadlineExtended, HazardFound, HazardLevel,
    HazardSelfClosed, HazardSource, HazardSpotChecked, InspectionDocument, InspectionKind, InspectionRecorded,
    InspectorLevel, MajorHazardBasisStated, MajorHazardConfirmed, RectificationAccepted, RectificationReturned,
    RectificationSubmitted,
};
use super::hazard::HazardRecord;
use super::rejection::EnterpriseRejection;
use super::state::EnterpriseFile;
use crate::aggregate::DecisionContext;
use crate::event::Event;
use crate::ids::{AgencyId, EnterpriseId, HazardId, InspectionId};
use crate::refusal::FieldProblem;
use crate::rules::{RuleSet, Severity};
use crate::{Instant, Role};

/// Longest hazard description, rectification text or reason, in characters.
pub const TEXT_CHARS_MAX: usize = 4000;
/// Most hazards one inspection may record.
pub const INSPECTION_HAZARDS_MAX: usize = 200;
/// Most files (photos, documents) on one record.
pub const FILES_MAX: usize = 50;

/// A hazard as an inspector, the enterprise or an agency describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewHazard {
    pub hazard_id: HazardId,
    pub category: HazardCategory,
    pub level: HazardLevel,
    /// For a general hazard: sets the default deadline (moderate if absent).
    pub severity: Option<Severity>,
    /// For a major hazard: the item of a catalogue in force on the day found.
    pub criterion: Option<CriterionRef>,
    /// For a major hazard no catalogue item fits (or whose item is not transcribed): the
    /// recorder's basis, in words. Such a hazard is major only once an official confirms it.
    pub basis: Option<String>,
    pub description: String,
    pub photos: Vec<FileRef>,
    /// Overrides the rule set's default deadline.
    pub deadline: Option<Instant>,
}

/// Record an inspection and the hazards it found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordInspection {
    pub enterprise_id: EnterpriseId,
    pub inspection_id: InspectionId,
    pub kind: InspectionKind,
    pub inspected_at: Instant,
    pub inspectors: Vec<String>,
    pub documents: Vec<InspectionDocument>,
    pub notes: String,
    pub hazards: Vec<NewHazard>,
}

/// Record a hazard found by the enterprise itself or by an agency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordHazard {
    pub enterprise_id: EnterpriseId,
    pub source: HazardSource,
    pub hazard: NewHazard,
}

/// Relay the hazards of an agency's service report into the enterprise's hazard list (source
/// 中介服务, with the agency and the report). Hazards already relayed are skipped, so relaying a
/// report again appends nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordReportedHazards {
    pub enterprise_id: EnterpriseId,
    pub agency_id: AgencyId,
    pub report_id: uuid::Uuid,
    /// The visit the report is about: when the hazards were found.
    pub found_at: Instant,
    pub hazards: Vec<NewHazard>,
}

/// An inspector spot-checks a hazard the enterprise closed itself (抽查).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpotCheckHazard {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    /// `None`: the closure stands; `Some(reason)`: it does not, and the hazard reopens.
    pub failed_because: Option<String>,
}

/// Tells whether the rule set's sample draws a self-closed hazard for a spot check: SHA-256 over
/// the hazard id's bytes and the closing instant's microseconds (big-endian), its first eight
/// bytes as a big-endian number, modulo 100, below `percent`. The instant is the server's, so
/// the enterprise cannot choose ids that escape the sample.
pub fn drawn_for_spot_check(hazard_id: HazardId, closed_at: Instant, percent: u32) -> bool {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(hazard_id.as_uuid().as_bytes());
    hasher.update(closed_at.timestamp_micros().to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100 < u64::from(percent)
}

/// An official confirms a major hazard recorded with a free-text basis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfirmMajorHazard {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    /// Why the official agrees it is major (e.g. the article of another standard it meets).
    pub note: String,
}

/// Approve a later deadline for a hazard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExtendHazardDeadline {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub deadline: Instant,
    pub reason: String,
}

/// Submit a rectification of a hazard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubmitRectification {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub rectification_id: uuid::Uuid,
    pub text: String,
    pub photos: Vec<FileRef>,
}

/// Accept or return a submitted rectification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyRectification {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub rectification_id: uuid::Uuid,
    /// `None` accepts; `Some(reason)` returns it.
    pub returned_because: Option<String>,
}

/// Report an accident at the enterprise.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportAccident {
    pub enterprise_id: EnterpriseId,
    pub accident_id: uuid::Uuid,
    pub occurred_at: Instant,
    pub fatalities: u32,
    pub description: String,
}

/// Returns the default deadline of a hazard found at `found_at`: local midnight ending the day
/// that is the rule set's number of days after the day found.
pub fn default_deadline(rules: &RuleSet, found_at: Instant, level: HazardLevel, severity: Option<Severity>) -> Instant {
    let deadlines = &rules.supervision.deadlines;
    let days = match level {
        HazardLevel::Major => deadlines.major_days,
        HazardLevel::General => {
            let severity = severity.unwrap_or(Severity::Moderate);
            deadlines.general.get(&severity).copied().unwrap_or(15)
        }
    };
    let local_day = found_at.with_timezone(&rules.time_zone).date_naive();
    let last_day = local_day
        .checked_add_days(Days::new(u64::from(days) + 1))
        .unwrap_or(local_day);
    rules
        .time_zone
        .from_local_datetime(&last_day.and_time(NaiveTime::MIN))
        .single()
        .map_or(
            crate::bounds::plus(found_at, Duration::days(i64::from(days) + 1)),
            |local| local.to_utc(),
        )
}

impl EnterpriseFile {
    pub(super) fn decide_record_inspection(
        &self,
        command: &RecordInspection,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let level = match context.actor.role {
            Role::TownInspector { .. } => InspectorLevel::Town,
            _ => InspectorLevel::City,
        };
        if self.inspections.contains_key(&command.inspection_id) {
            return Err(EnterpriseRejection::DuplicateInspection {
                inspection_id: command.inspection_id,
            });
        }
        if command.inspected_at > context.now {
            return Err(EnterpriseRejection::InFuture { field: "inspectedAt" });
        }
        if command.hazards.len() > INSPECTION_HAZARDS_MAX {
            return Err(EnterpriseRejection::InvalidField {
                field: "hazards",
                problem: FieldProblem::TooManyItems {
                    items_max: INSPECTION_HAZARDS_MAX,
                },
            });
        }
        if command.documents.len() > FILES_MAX {
            return Err(EnterpriseRejection::InvalidField {
                field: "documents",
                problem: FieldProblem::TooManyItems { items_max: FILES_MAX },
            });
        }
        let mut events = vec![Event::InspectionRecorded(InspectionRecorded {
            inspection_id: command.inspection_id,
            kind: command.kind,
            level,
            inspected_at: command.inspected_at,
            inspectors: command.inspectors.iter().map(|name| name.trim().to_owned()).collect(),
            documents: command.documents.clone(),
            notes: command.notes.trim().to_owned(),
            recorded_at: context.now,
        })];
        let source = HazardSource::GovernmentInspection {
            inspection_id: command.inspection_id,
        };
        for (index, hazard) in command.hazards.iter().enumerate() {
            if command.hazards[..index]
                .iter()
                .any(|earlier| earlier.hazard_id == hazard.hazard_id)
            {
                return Err(EnterpriseRejection::DuplicateHazard {
                    hazard_id: hazard.hazard_id,
                });
            }
            events.extend(self.hazard_found(hazard, source.clone(), command.inspected_at, context)?);
        }
        Ok(events)
    }

    pub(super) fn decide_record_hazard(
        &self,
        command: &RecordHazard,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        self.hazard_found(&command.hazard, command.source.clone(), context.now, context)
    }

    pub(super) fn decide_record_reported_hazards(
        &self,
        command: &RecordReportedHazards,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        if command.found_at > context.now {
            return Err(EnterpriseRejection::InFuture { field: "visitedAt" });
        }
        if command.hazards.len() > INSPECTION_HAZARDS_MAX {
            return Err(EnterpriseRejection::InvalidField {
                field: "hazards",
                problem: FieldProblem::TooManyItems {
                    items_max: INSPECTION_HAZARDS_MAX,
                },
            });
        }
        let source = HazardSource::AgencyService {
            agency_id: command.agency_id,
            report_id: command.report_id,
        };
        let mut events = Vec::new();
        for (index, hazard) in command.hazards.iter().enumerate() {
            let relayed = self
                .hazards
                .get(&hazard.hazard_id)
                .is_some_and(|existing| existing.source == source);
            if relayed {
                continue;
            }
            if command.hazards[..index]
                .iter()
                .any(|earlier| earlier.hazard_id == hazard.hazard_id)
            {
                return Err(EnterpriseRejection::DuplicateHazard {
                    hazard_id: hazard.hazard_id,
                });
            }
            events.extend(self.hazard_found(hazard, source.clone(), command.found_at, context)?);
        }
        Ok(events)
    }

    pub(super) fn decide_spot_check(
        &self,
        command: &SpotCheckHazard,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let hazard = self.hazard(command.hazard_id)?;
        let Some((rectification, _)) = hazard.unchecked_self_closure() else {
            return Err(EnterpriseRejection::NotSelfClosed {
                hazard_id: command.hazard_id,
            });
        };
        let reason = match &command.failed_because {
            None => String::new(),
            Some(reason) => {
                check_text("reason", reason)?;
                reason.trim().to_owned()
            }
        };
        Ok(vec![Event::HazardSpotChecked(HazardSpotChecked {
            hazard_id: command.hazard_id,
            rectification_id: rectification.rectification_id,
            passed: command.failed_because.is_none(),
            reason,
            checked_at: context.now,
        })])
    }

    pub(super) fn decide_confirm_major_hazard(
        &self,
        command: &ConfirmMajorHazard,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let hazard = self.hazard(command.hazard_id)?;
        let pending = hazard
            .free_text_basis
            .as_ref()
            .is_some_and(|basis| basis.confirmation.is_none());
        if !pending {
            return Err(EnterpriseRejection::NotPendingConfirmation {
                hazard_id: command.hazard_id,
            });
        }
        check_text("note", &command.note)?;
        Ok(vec![Event::MajorHazardConfirmed(MajorHazardConfirmed {
            hazard_id: command.hazard_id,
            note: command.note.trim().to_owned(),
            confirmed_at: context.now,
        })])
    }

    fn hazard_found(
        &self,
        hazard: &NewHazard,
        source: HazardSource,
        found_at: Instant,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let rules = context.rules;
        if self.hazards.contains_key(&hazard.hazard_id) {
            return Err(EnterpriseRejection::DuplicateHazard {
                hazard_id: hazard.hazard_id,
            });
        }
        check_text("description", &hazard.description)?;
        if hazard.photos.len() > FILES_MAX {
            return Err(EnterpriseRejection::InvalidField {
                field: "photos",
                problem: FieldProblem::TooManyItems { items_max: FILES_MAX },
            });
        }
        let basis = hazard.basis.as_deref().map(str::trim).filter(|basis| !basis.is_empty());
        match (&hazard.level, &hazard.criterion, basis) {
            (HazardLevel::Major, None, None) => return Err(EnterpriseRejection::CriterionRequired),
            (HazardLevel::Major, Some(_), Some(_)) | (HazardLevel::General, _, Some(_)) => {
                return Err(EnterpriseRejection::BasisNotAllowed);
            }
            (_, Some(criterion), None) => check_criterion(criterion, found_at, rules)?,
            (HazardLevel::Major, None, Some(basis)) => check_text("basis", basis)?,
            (HazardLevel::General, None, None) => {}
        }
        let deadline = match hazard.deadline {
            Some(deadline) if deadline <= found_at => {
                return Err(EnterpriseRejection::DeadlineNotAfterFinding { deadline, found_at });
            }
            Some(deadline) => deadline,
            None => default_deadline(rules, found_at, hazard.level, hazard.severity),
        };
        let severity = match hazard.level {
            HazardLevel::General => Some(hazard.severity.unwrap_or(Severity::Moderate)),
            HazardLevel::Major => None,
        };
        let mut events = vec![Event::HazardFound(HazardFound {
            hazard_id: hazard.hazard_id,
            source,
            category: hazard.category,
            level: hazard.level,
            severity,
            criterion: hazard.criterion.clone(),
            description: hazard.description.trim().to_owned(),
            photos: hazard.photos.clone(),
            found_at,
            recorded_at: context.now,
            deadline,
        })];
        if let (HazardLevel::Major, None, Some(basis)) = (&hazard.level, &hazard.criterion, basis) {
            events.push(Event::MajorHazardBasisStated(MajorHazardBasisStated {
                hazard_id: hazard.hazard_id,
                basis: basis.to_owned(),
                stated_at: context.now,
            }));
        }
        Ok(events)
    }

    pub(super) fn decide_extend_deadline(
        &self,
        command: &ExtendHazardDeadline,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let hazard = self.hazard(command.hazard_id)?;
        if hazard.closed_at(context.now).is_some() {
            return Err(EnterpriseRejection::HazardClosed {
                hazard_id: command.hazard_id,
            });
        }
        if command.deadline <= hazard.deadline() {
            return Err(EnterpriseRejection::DeadlineNotLater {
                current: hazard.deadline(),
                requested: command.deadline,
            });
        }
        check_text("reason", &command.reason)?;
        Ok(vec![Event::HazardDeadlineExtended(HazardDeadlineExtended {
            hazard_id: command.hazard_id,
            deadline: command.deadline,
            reason: command.reason.trim().to_owned(),
            extended_at: context.now,
        })])
    }

    pub(super) fn decide_submit_rectification(
        &self,
        command: &SubmitRectification,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let hazard = self.hazard(command.hazard_id)?;
        if hazard.closed_at(context.now).is_some() {
            return Err(EnterpriseRejection::HazardClosed {
                hazard_id: command.hazard_id,
            });
        }
        if hazard.pending_rectification().is_some() {
            return Err(EnterpriseRejection::RectificationPending {
                hazard_id: command.hazard_id,
            });
        }
        if hazard
            .rectifications
            .iter()
            .any(|r| r.rectification_id == command.rectification_id)
        {
            return Err(EnterpriseRejection::InvalidField {
                field: "rectificationId",
                problem: FieldProblem::UsedBefore,
            });
        }
        check_text("text", &command.text)?;
        if command.photos.len() > FILES_MAX {
            return Err(EnterpriseRejection::InvalidField {
                field: "photos",
                problem: FieldProblem::TooManyItems { items_max: FILES_MAX },
            });
        }
        let mut events = vec![Event::RectificationSubmitted(RectificationSubmitted {
            hazard_id: command.hazard_id,
            rectification_id: command.rectification_id,
            text: command.text.trim().to_owned(),
            photos: command.photos.clone(),
            submitted_at: context.now,
        })];
        if self.closes_itself(hazard, context) {
            if command.photos.is_empty() {
                // Evidence is what lets the enterprise close it without an inspector.
                return Err(EnterpriseRejection::InvalidField {
                    field: "photos",
                    problem: FieldProblem::NoItems,
                });
            }
            let percent = context.rules.supervision.hazard_sources.spot_check_percent;
            events.push(Event::HazardSelfClosed(HazardSelfClosed {
                hazard_id: command.hazard_id,
                rectification_id: command.rectification_id,
                spot_check: drawn_for_spot_check(command.hazard_id, context.now, percent),
                closed_at: context.now,
            }));
        }
        Ok(events)
    }

    pub(super) fn decide_verify_rectification(
        &self,
        command: &VerifyRectification,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let hazard = self.hazard(command.hazard_id)?;
        if hazard.closed_at(context.now).is_some() {
            return Err(EnterpriseRejection::HazardClosed {
                hazard_id: command.hazard_id,
            });
        }
        match hazard.pending_rectification() {
            Some(pending) if pending.rectification_id == command.rectification_id => {}
            _ => {
                return Err(EnterpriseRejection::NoPendingRectification {
                    hazard_id: command.hazard_id,
                    rectification_id: command.rectification_id,
                });
            }
        }
        let event = match &command.returned_because {
            None => Event::RectificationAccepted(RectificationAccepted {
                hazard_id: command.hazard_id,
                rectification_id: command.rectification_id,
                first_time: hazard.rectifications.iter().all(|r| r.verdict.is_none()),
                verified_at: context.now,
            }),
            Some(reason) => {
                check_text("reason", reason)?;
                Event::RectificationReturned(RectificationReturned {
                    hazard_id: command.hazard_id,
                    rectification_id: command.rectification_id,
                    reason: reason.trim().to_owned(),
                    verified_at: context.now,
                })
            }
        };
        Ok(vec![event])
    }

    pub(super) fn decide_report_accident(
        &self,
        command: &ReportAccident,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        if command.occurred_at > context.now {
            return Err(EnterpriseRejection::InFuture { field: "occurredAt" });
        }
        if self
            .accidents
            .iter()
            .any(|accident| accident.accident_id == command.accident_id)
        {
            return Err(EnterpriseRejection::InvalidField {
                field: "accidentId",
                problem: FieldProblem::UsedBefore,
            });
        }
        check_text("description", &command.description)?;
        Ok(vec![Event::AccidentReported(AccidentReported {
            accident_id: command.accident_id,
            occurred_at: command.occurred_at,
            fatalities: command.fatalities,
            description: command.description.trim().to_owned(),
            reported_at: context.now,
        })])
    }

    /// Tells whether the enterprise closes this hazard itself: its source is self-closing by the
    /// rule set, it counts as general now (a major hazard needs an official's acceptance), and
    /// no spot check found a self-closure of it wanting.
    fn closes_itself(&self, hazard: &HazardRecord, context: &DecisionContext<'_>) -> bool {
        context
            .rules
            .supervision
            .hazard_sources
            .self_closing
            .contains(&hazard.source.kind())
            && hazard.level_at(context.now) == HazardLevel::General
            && !hazard.failed_spot_check()
    }

    pub(super) fn hazard(&self, hazard_id: HazardId) -> Result<&HazardRecord, EnterpriseRejection> {
        self.hazards
            .get(&hazard_id)
            .ok_or(EnterpriseRejection::UnknownHazard { hazard_id })
    }
}

pub(super) fn check_text(field: &'static str, value: &str) -> Result<(), EnterpriseRejection> {
    if value.trim().is_empty() {
        return Err(EnterpriseRejection::InvalidField {
            field,
            problem: FieldProblem::Empty,
        });
    }
    if value.chars().count() > TEXT_CHARS_MAX {
        return Err(EnterpriseRejection::InvalidField {
            field,
            problem: FieldProblem::TooLong {
                chars_max: TEXT_CHARS_MAX,
            },
        });
    }
    Ok(())
}

/// Checks that the criterion is an item of a catalogue in force on the local day found (the
/// industry-and-trade one or, beside it, the hazardous-chemicals one: the inspector names which).
fn check_criterion(criterion: &CriterionRef, found_at: Instant, rules: &RuleSet) -> Result<(), EnterpriseRejection> {
    let day = found_at.with_timezone(&rules.time_zone).date_naive();
    let citable = rules
        .supervision
        .catalogues_in_force(day)
        .find(|catalogue| catalogue.code == criterion.catalogue)
        .is_some_and(|catalogue| catalogue.item(&criterion.item).is_some());
    if citable {
        return Ok(());
    }
    let codes: Vec<&str> = rules
        .supervision
        .catalogues_in_force(day)
        .map(|catalogue| catalogue.code.as_str())
        .collect();
    let in_force = (!codes.is_empty()).then(|| codes.join("、"));
    Err(EnterpriseRejection::CriterionNotInForce {
        catalogue: criterion.catalogue.clone(),
        item: criterion.item.clone(),
        on: day,
        in_force,
    })
}
