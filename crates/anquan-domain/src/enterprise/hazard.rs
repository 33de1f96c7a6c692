//! The supervision part of an enterprise's file: inspections, hazards with their deadlines and
//! rectifications, and accidents; and how each stands at an instant.

use serde::{Deserialize, Serialize};

use super::event::{
    CriterionRef, FileRef, HazardCategory, HazardLevel, HazardSource, InspectionDocument, InspectionKind,
    InspectorLevel,
};
use crate::Instant;
use crate::ids::{HazardId, InspectionId};
use crate::rules::Severity;

/// An inspection as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionRecord {
    pub inspection_id: InspectionId,
    pub kind: InspectionKind,
    pub level: InspectorLevel,
    pub inspected_at: Instant,
    pub recorded_at: Instant,
    pub inspectors: Vec<String>,
    pub documents: Vec<InspectionDocument>,
    pub notes: String,
    /// Who recorded it (the actor's user id is in the envelope; the read model keeps it).
    pub hazards: Vec<HazardId>,
}

/// A hazard and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardRecord {
    pub hazard_id: HazardId,
    pub source: HazardSource,
    pub category: HazardCategory,
    pub level: HazardLevel,
    pub severity: Option<Severity>,
    pub criterion: Option<CriterionRef>,
    pub description: String,
    pub photos: Vec<FileRef>,
    pub found_at: Instant,
    pub recorded_at: Instant,
    /// The deadline set when found.
    pub initial_deadline: Instant,
    /// Approved extensions, oldest first.
    pub extensions: Vec<DeadlineExtension>,
    /// Submitted rectifications, oldest first.
    pub rectifications: Vec<Rectification>,
    /// For a major hazard recorded without a catalogue item: its free-text basis and whether
    /// an official confirmed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_text_basis: Option<FreeTextBasis>,
}

/// The free-text basis of a major hazard that cites no catalogue item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeTextBasis {
    pub basis: String,
    pub stated_at: Instant,
    pub confirmation: Option<BasisConfirmation>,
}

/// An official's confirmation that a hazard with a free-text basis is major.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasisConfirmation {
    pub note: String,
    pub confirmed_at: Instant,
}

/// An approved later deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineExtension {
    pub deadline: Instant,
    pub reason: String,
    pub extended_at: Instant,
}

/// One rectification submitted by the enterprise and the inspector's verdict on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rectification {
    pub rectification_id: uuid::Uuid,
    pub text: String,
    pub photos: Vec<FileRef>,
    pub submitted_at: Instant,
    pub verdict: Option<Verdict>,
}

/// An inspector's verdict on a rectification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub accepted: bool,
    pub first_time: bool,
    pub reason: String,
    pub verified_at: Instant,
}

/// A reported accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccidentRecord {
    pub accident_id: uuid::Uuid,
    pub occurred_at: Instant,
    pub fatalities: u32,
    pub description: String,
    pub reported_at: Instant,
}

/// Where a hazard stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardState {
    /// 待整改: waiting for the enterprise (or returned to it).
    Open,
    /// 已提交: a rectification awaits verification.
    Submitted,
    /// 已复核通过: verified and closed.
    Closed,
}

impl HazardRecord {
    /// Returns the level the hazard counts at `instant`: a major hazard with a free-text basis
    /// counts as general until an official confirmed it (the rule in docs/roles.md, "Major
    /// hazards"); the veto, red and the metrics read this, never `level` alone.
    pub fn level_at(&self, instant: Instant) -> HazardLevel {
        if self.level == HazardLevel::Major && self.pending_confirmation_at(instant) {
            HazardLevel::General
        } else {
            self.level
        }
    }

    /// Tells whether the hazard is "major, pending confirmation" at `instant`.
    pub fn pending_confirmation_at(&self, instant: Instant) -> bool {
        self.free_text_basis.as_ref().is_some_and(|basis| {
            basis
                .confirmation
                .as_ref()
                .is_none_or(|confirmation| confirmation.confirmed_at > instant)
        })
    }

    /// Tells whether the platform knew of the hazard at `instant`.
    pub fn known_at(&self, instant: Instant) -> bool {
        self.recorded_at <= instant
    }

    /// Returns the deadline in force at `instant`: the latest extension approved by then.
    pub fn deadline_at(&self, instant: Instant) -> Instant {
        self.extensions
            .iter()
            .filter(|extension| extension.extended_at <= instant)
            .map(|extension| extension.deadline)
            .next_back()
            .unwrap_or(self.initial_deadline)
    }

    /// Returns the deadline in force now (after every extension).
    pub fn deadline(&self) -> Instant {
        self.extensions
            .last()
            .map_or(self.initial_deadline, |extension| extension.deadline)
    }

    /// Returns when the hazard was closed, if it was by `instant`.
    pub fn closed_at(&self, instant: Instant) -> Option<Instant> {
        self.rectifications
            .iter()
            .filter_map(|rectification| rectification.verdict.as_ref())
            .find(|verdict| verdict.accepted && verdict.verified_at <= instant)
            .map(|verdict| verdict.verified_at)
    }

    /// Returns the state at `instant`.
    pub fn state_at(&self, instant: Instant) -> HazardState {
        if self.closed_at(instant).is_some() {
            return HazardState::Closed;
        }
        let pending = self.rectifications.iter().any(|rectification| {
            rectification.submitted_at <= instant
                && rectification
                    .verdict
                    .as_ref()
                    .is_none_or(|verdict| verdict.verified_at > instant)
        });
        if pending {
            HazardState::Submitted
        } else {
            HazardState::Open
        }
    }

    /// Tells whether the hazard is overdue at `instant`: not closed, and `instant` is after
    /// the deadline in force (overdue from the first instant after it).
    pub fn overdue_at(&self, instant: Instant) -> bool {
        self.known_at(instant) && self.closed_at(instant).is_none() && instant > self.deadline_at(instant)
    }

    /// Tells whether a government inspection found it.
    pub fn is_government(&self) -> bool {
        matches!(self.source, HazardSource::GovernmentInspection { .. })
    }

    /// Returns the rectification awaiting a verdict (now), if any.
    pub fn pending_rectification(&self) -> Option<&Rectification> {
        self.rectifications
            .iter()
            .find(|rectification| rectification.verdict.is_none())
    }
}
