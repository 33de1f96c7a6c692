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
    /// Its listed supervision (挂牌督办), if the city listed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<Listing>,
}

/// A major hazard's listed supervision (挂牌督办): listed by the city, progress reported and a
/// lift requested by the town, lifted by the city after its on-site review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub document_number: String,
    pub deadline: Instant,
    pub production_suspended: bool,
    pub listed_at: Instant,
    /// Progress reports, oldest first.
    pub progress: Vec<ListingProgress>,
    pub lift_request: Option<LiftRequest>,
    pub lifted: Option<ListingLifted>,
}

/// One progress report of a listed hazard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingProgress {
    pub text: String,
    pub files: Vec<FileRef>,
    pub reported_at: Instant,
}

/// The town's application to lift a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiftRequest {
    pub text: String,
    pub requested_at: Instant,
}

/// The city's lifting of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingLifted {
    pub note: String,
    pub delisted_at: Instant,
}

/// Where a listing stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingState {
    /// 督办中: listed, no lift requested yet.
    Listed,
    /// 申请摘牌: the town applied to lift it; the city reviews.
    LiftRequested,
    /// 已摘牌: lifted by the city.
    Lifted,
}

impl Listing {
    /// Tells whether the listing is in force at `instant`: listed by then and not yet lifted.
    pub fn in_force_at(&self, instant: Instant) -> bool {
        self.listed_at <= instant && self.lifted.as_ref().is_none_or(|lifted| lifted.delisted_at > instant)
    }

    /// Returns the listing's state at `instant`, or `None` before it was listed.
    pub fn state_at(&self, instant: Instant) -> Option<ListingState> {
        if self.listed_at > instant {
            return None;
        }
        if self.lifted.as_ref().is_some_and(|lifted| lifted.delisted_at <= instant) {
            return Some(ListingState::Lifted);
        }
        if self
            .lift_request
            .as_ref()
            .is_some_and(|request| request.requested_at <= instant)
        {
            return Some(ListingState::LiftRequested);
        }
        Some(ListingState::Listed)
    }

    /// Returns when the city's on-site review of the lift request is due: `review_days` after
    /// the request (domain.md §2: within 10 days).
    pub fn review_due(&self, review_days: u32) -> Option<Instant> {
        self.lift_request
            .as_ref()
            .map(|request| crate::bounds::plus(request.requested_at, chrono::Duration::days(i64::from(review_days))))
    }

    /// Tells whether the city's review is overdue at `instant`: requested, not lifted by then,
    /// and past the review period.
    pub fn review_overdue_at(&self, instant: Instant, review_days: u32) -> bool {
        self.state_at(instant) == Some(ListingState::LiftRequested)
            && self.review_due(review_days).is_some_and(|due| instant > due)
    }
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
    /// When the enterprise closed the hazard with this rectification itself (a self-reported
    /// hazard, as the rule set allows), and the spot check if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_closure: Option<SelfClosure>,
}

/// A self-reported hazard closed by the enterprise's own rectification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfClosure {
    pub closed_at: Instant,
    /// Drawn for a spot check by the rule set's sample.
    pub spot_check_drawn: bool,
    pub spot_check: Option<SpotCheck>,
}

/// An inspector's spot check of a self-closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotCheck {
    pub passed: bool,
    pub reason: String,
    pub checked_at: Instant,
}

impl SelfClosure {
    /// Tells whether the closure stands at `instant`: made by then and not undone by a failed
    /// spot check by then.
    pub fn stands_at(&self, instant: Instant) -> bool {
        self.closed_at <= instant
            && self
                .spot_check
                .as_ref()
                .is_none_or(|check| check.passed || check.checked_at > instant)
    }
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

    /// Returns when the hazard was closed, if it was by `instant`: an inspector accepted a
    /// rectification, or the enterprise closed it itself and no failed spot check undid that.
    pub fn closed_at(&self, instant: Instant) -> Option<Instant> {
        self.rectifications.iter().find_map(|rectification| {
            if let Some(verdict) = &rectification.verdict
                && verdict.accepted
                && verdict.verified_at <= instant
            {
                return Some(verdict.verified_at);
            }
            rectification
                .self_closure
                .as_ref()
                .filter(|closure| closure.stands_at(instant))
                .map(|closure| closure.closed_at)
        })
    }

    /// Tells whether a spot check of a self-closure failed (then only an inspector closes it).
    pub fn failed_spot_check(&self) -> bool {
        self.rectifications.iter().any(|rectification| {
            rectification
                .self_closure
                .as_ref()
                .and_then(|closure| closure.spot_check.as_ref())
                .is_some_and(|check| !check.passed)
        })
    }

    /// Returns the standing self-closure (now) that has not been spot-checked, if any.
    pub fn unchecked_self_closure(&self) -> Option<(&Rectification, &SelfClosure)> {
        self.rectifications.iter().find_map(|rectification| {
            rectification
                .self_closure
                .as_ref()
                .filter(|closure| closure.spot_check.is_none())
                .map(|closure| (rectification, closure))
        })
    }

    /// Returns the state at `instant`.
    pub fn state_at(&self, instant: Instant) -> HazardState {
        if self.closed_at(instant).is_some() {
            return HazardState::Closed;
        }
        let pending = self.rectifications.iter().any(|rectification| {
            rectification.self_closure.is_none()
                && rectification.submitted_at <= instant
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

    /// Tells whether the rule set counts this hazard toward the colour at `instant`: by its
    /// source, or (for the sources counted only once overdue) because it is overdue then.
    pub fn counts_toward_colour(&self, rules: &crate::rules::RuleSet, instant: Instant) -> bool {
        let sources = &rules.supervision.hazard_sources;
        let kind = self.source.kind();
        sources.colour.contains(&kind) || (sources.colour_once_overdue.contains(&kind) && self.overdue_at(instant))
    }

    /// Tells whether the rule set counts this hazard's source toward the veto.
    pub fn counts_toward_veto(&self, rules: &crate::rules::RuleSet) -> bool {
        rules.supervision.hazard_sources.veto.contains(&self.source.kind())
    }

    /// Tells whether the hazard is listed (挂牌督办) at `instant`.
    pub fn listed_at(&self, instant: Instant) -> bool {
        self.listing
            .as_ref()
            .is_some_and(|listing| listing.in_force_at(instant))
    }

    /// Tells whether the hazard counts as an open major hazard at `instant` for the veto or the
    /// colour, given whether its source counts (`source_counts`): major and not closed, or listed
    /// while the rule set counts a listing as an open major hazard until it is lifted.
    pub fn counts_as_open_major(&self, rules: &crate::rules::RuleSet, instant: Instant, source_counts: bool) -> bool {
        let open_major =
            source_counts && self.level_at(instant) == HazardLevel::Major && self.closed_at(instant).is_none();
        open_major
            || (rules.supervision.listed_supervision.counts_as_open_major_until_lifted && self.listed_at(instant))
    }

    /// Tells whether a government inspection found it.
    pub fn is_government(&self) -> bool {
        matches!(self.source, HazardSource::GovernmentInspection { .. })
    }

    /// Returns the rectification awaiting a verdict (now), if any.
    pub fn pending_rectification(&self) -> Option<&Rectification> {
        self.rectifications
            .iter()
            .find(|rectification| rectification.verdict.is_none() && rectification.self_closure.is_none())
    }
}
