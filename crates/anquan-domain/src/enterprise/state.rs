//! The enterprise file: the state folded from the enterprise stream, used both to decide
//! commands and, by the status engine, to evaluate compliance at any instant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event::{Coverage, FileRef};
use super::hazard::{
    AccidentRecord, BasisConfirmation, DeadlineExtension, FreeTextBasis, HazardRecord, InspectionRecord, LiftRequest,
    Listing, ListingLifted, ListingProgress, Rectification, SelfClosure, SpotCheck, Verdict,
};
use crate::Instant;
use crate::credit_code::UnifiedSocialCreditCode;
use crate::event::Event;
use crate::ids::{DocumentId, EnterpriseId, HazardId, InspectionId, RequirementCode, Town};
use crate::rules::EnterpriseProfile;

/// An enterprise's cloud file (云档案), folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseFile {
    pub registration: Option<Registration>,
    /// Every profile the enterprise had, oldest first, with the instant it took effect; the
    /// first is the registration's. Kept so that status "as of" a past instant uses the profile
    /// of that instant.
    pub profile_history: Vec<(Instant, EnterpriseProfile)>,
    /// Every town the enterprise belonged to, oldest first, with the instant it took effect
    /// (registration, then each `EnterpriseProfileChanged`): past town metrics attribute the
    /// enterprise to its town at that instant ([`EnterpriseFile::town_at`]). Empty in a file
    /// built without it; `town_at` then answers the current town.
    #[serde(default)]
    pub town_history: Vec<(Instant, Town)>,
    pub documents: BTreeMap<DocumentId, DocumentRecord>,
    pub inspections: BTreeMap<InspectionId, InspectionRecord>,
    pub hazards: BTreeMap<HazardId, HazardRecord>,
    pub accidents: Vec<AccidentRecord>,
    /// Every closure (注销/停业), oldest first, each with its reopening if it reopened.
    #[serde(default)]
    pub closures: Vec<super::closure::ClosureRecord>,
}

/// Who the enterprise is (current values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub enterprise_id: EnterpriseId,
    pub name: String,
    pub credit_code: UnifiedSocialCreditCode,
    pub town: Town,
    pub industry: String,
    pub registered_at: Instant,
}

/// One uploaded record and its review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub document_id: DocumentId,
    pub requirement: RequirementCode,
    pub title: String,
    pub file: FileRef,
    pub coverage: Coverage,
    pub uploaded_at: Instant,
    pub review: Option<Review>,
}

/// A review of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub outcome: ReviewOutcome,
    pub reviewed_at: Instant,
}

/// What a reviewer decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReviewOutcome {
    Approved { comment: Option<String> },
    Returned { feedback: String },
}

impl ReviewOutcome {
    /// Returns the outcome's stable name.
    pub fn name(&self) -> &'static str {
        match self {
            ReviewOutcome::Approved { .. } => "approved",
            ReviewOutcome::Returned { .. } => "returned",
        }
    }
}

impl DocumentRecord {
    /// Tells whether the record was approved at or before `instant`.
    pub fn approved_by(&self, instant: Instant) -> bool {
        matches!(&self.review, Some(Review { outcome: ReviewOutcome::Approved { .. }, reviewed_at }) if *reviewed_at <= instant)
    }

    /// Returns the review as it stood at `instant` (none if it came later).
    pub fn review_at(&self, instant: Instant) -> Option<&Review> {
        self.review.as_ref().filter(|review| review.reviewed_at <= instant)
    }
}

impl EnterpriseFile {
    /// Folds one event into the file. Events come from the store already decided, so the fold
    /// never refuses one; an event for an unregistered file is ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::EnterpriseRegistered(registered) => {
                self.registration = Some(Registration {
                    enterprise_id: registered.enterprise_id,
                    name: registered.name.clone(),
                    credit_code: registered.credit_code.clone(),
                    town: registered.town.clone(),
                    industry: registered.industry.clone(),
                    registered_at: registered.registered_at,
                });
                self.profile_history
                    .push((registered.registered_at, registered.profile.clone()));
                self.town_history
                    .push((registered.registered_at, registered.town.clone()));
            }
            Event::EnterpriseProfileChanged(changed) => {
                if let Some(registration) = &mut self.registration {
                    registration.name = changed.name.clone();
                    registration.town = changed.town.clone();
                    registration.industry = changed.industry.clone();
                    self.profile_history.push((changed.changed_at, changed.profile.clone()));
                    self.town_history.push((changed.changed_at, changed.town.clone()));
                }
            }
            Event::DocumentUploaded(uploaded) => {
                self.documents.insert(
                    uploaded.document_id,
                    DocumentRecord {
                        document_id: uploaded.document_id,
                        requirement: uploaded.requirement.clone(),
                        title: uploaded.title.clone(),
                        file: uploaded.file.clone(),
                        coverage: uploaded.coverage.clone(),
                        uploaded_at: uploaded.uploaded_at,
                        review: None,
                    },
                );
            }
            Event::DocumentApproved(approved) => {
                if let Some(document) = self.documents.get_mut(&approved.document_id) {
                    document.review = Some(Review {
                        outcome: ReviewOutcome::Approved {
                            comment: approved.comment.clone(),
                        },
                        reviewed_at: approved.reviewed_at,
                    });
                }
            }
            Event::DocumentReturned(returned) => {
                if let Some(document) = self.documents.get_mut(&returned.document_id) {
                    document.review = Some(Review {
                        outcome: ReviewOutcome::Returned {
                            feedback: returned.feedback.clone(),
                        },
                        reviewed_at: returned.reviewed_at,
                    });
                }
            }
            Event::InspectionRecorded(recorded) => {
                self.inspections.insert(
                    recorded.inspection_id,
                    InspectionRecord {
                        inspection_id: recorded.inspection_id,
                        kind: recorded.kind,
                        level: recorded.level,
                        inspected_at: recorded.inspected_at,
                        recorded_at: recorded.recorded_at,
                        inspectors: recorded.inspectors.clone(),
                        documents: recorded.documents.clone(),
                        notes: recorded.notes.clone(),
                        hazards: Vec::new(),
                    },
                );
            }
            Event::HazardFound(found) => {
                if let super::event::HazardSource::GovernmentInspection { inspection_id } = &found.source
                    && let Some(inspection) = self.inspections.get_mut(inspection_id)
                {
                    inspection.hazards.push(found.hazard_id);
                }
                self.hazards.insert(
                    found.hazard_id,
                    HazardRecord {
                        hazard_id: found.hazard_id,
                        source: found.source.clone(),
                        category: found.category,
                        level: found.level,
                        severity: found.severity,
                        criterion: found.criterion.clone(),
                        description: found.description.clone(),
                        photos: found.photos.clone(),
                        found_at: found.found_at,
                        recorded_at: found.recorded_at,
                        initial_deadline: found.deadline,
                        extensions: Vec::new(),
                        rectifications: Vec::new(),
                        free_text_basis: None,
                        listing: None,
                    },
                );
            }
            Event::MajorHazardBasisStated(stated) => {
                if let Some(hazard) = self.hazards.get_mut(&stated.hazard_id) {
                    hazard.free_text_basis = Some(FreeTextBasis {
                        basis: stated.basis.clone(),
                        stated_at: stated.stated_at,
                        confirmation: None,
                    });
                }
            }
            Event::MajorHazardConfirmed(confirmed) => {
                if let Some(basis) = self
                    .hazards
                    .get_mut(&confirmed.hazard_id)
                    .and_then(|hazard| hazard.free_text_basis.as_mut())
                {
                    basis.confirmation = Some(BasisConfirmation {
                        note: confirmed.note.clone(),
                        confirmed_at: confirmed.confirmed_at,
                    });
                }
            }
            Event::HazardDeadlineExtended(extended) => {
                if let Some(hazard) = self.hazards.get_mut(&extended.hazard_id) {
                    hazard.extensions.push(DeadlineExtension {
                        deadline: extended.deadline,
                        reason: extended.reason.clone(),
                        extended_at: extended.extended_at,
                    });
                }
            }
            Event::RectificationSubmitted(submitted) => {
                if let Some(hazard) = self.hazards.get_mut(&submitted.hazard_id) {
                    hazard.rectifications.push(Rectification {
                        rectification_id: submitted.rectification_id,
                        text: submitted.text.clone(),
                        photos: submitted.photos.clone(),
                        submitted_at: submitted.submitted_at,
                        verdict: None,
                        self_closure: None,
                    });
                }
            }
            Event::RectificationAccepted(accepted) => {
                self.set_verdict(
                    accepted.hazard_id,
                    accepted.rectification_id,
                    Verdict {
                        accepted: true,
                        first_time: accepted.first_time,
                        reason: String::new(),
                        verified_at: accepted.verified_at,
                    },
                );
            }
            Event::RectificationReturned(returned) => {
                self.set_verdict(
                    returned.hazard_id,
                    returned.rectification_id,
                    Verdict {
                        accepted: false,
                        first_time: false,
                        reason: returned.reason.clone(),
                        verified_at: returned.verified_at,
                    },
                );
            }
            Event::HazardSelfClosed(closed) => {
                if let Some(rectification) = self.rectification_mut(closed.hazard_id, closed.rectification_id) {
                    rectification.self_closure = Some(SelfClosure {
                        closed_at: closed.closed_at,
                        spot_check_drawn: closed.spot_check,
                        spot_check: None,
                    });
                }
            }
            Event::HazardSpotChecked(checked) => {
                if let Some(closure) = self
                    .rectification_mut(checked.hazard_id, checked.rectification_id)
                    .and_then(|rectification| rectification.self_closure.as_mut())
                {
                    closure.spot_check = Some(SpotCheck {
                        passed: checked.passed,
                        reason: checked.reason.clone(),
                        checked_at: checked.checked_at,
                    });
                }
            }
            Event::HazardListed(listed) => {
                if let Some(hazard) = self.hazards.get_mut(&listed.hazard_id) {
                    hazard.listing = Some(Listing {
                        document_number: listed.document_number.clone(),
                        deadline: listed.deadline,
                        production_suspended: listed.production_suspended,
                        listed_at: listed.listed_at,
                        progress: Vec::new(),
                        lift_request: None,
                        lifted: None,
                    });
                }
            }
            Event::ListingProgressReported(reported) => {
                if let Some(listing) = self.listing_mut(reported.hazard_id) {
                    listing.progress.push(ListingProgress {
                        text: reported.text.clone(),
                        files: reported.files.clone(),
                        reported_at: reported.reported_at,
                    });
                }
            }
            Event::ListingLiftRequested(requested) => {
                if let Some(listing) = self.listing_mut(requested.hazard_id) {
                    listing.lift_request = Some(LiftRequest {
                        text: requested.text.clone(),
                        requested_at: requested.requested_at,
                    });
                }
            }
            Event::HazardDelisted(delisted) => {
                if let Some(listing) = self.listing_mut(delisted.hazard_id) {
                    listing.lifted = Some(ListingLifted {
                        note: delisted.note.clone(),
                        delisted_at: delisted.delisted_at,
                    });
                }
            }
            Event::AccidentReported(reported) => {
                self.accidents.push(AccidentRecord {
                    accident_id: reported.accident_id,
                    occurred_at: reported.occurred_at,
                    fatalities: reported.fatalities,
                    description: reported.description.clone(),
                    reported_at: reported.reported_at,
                });
            }
            Event::EnterpriseClosed(closed) => self.apply_closed(closed),
            Event::EnterpriseReopened(reopened) => self.apply_reopened(reopened),
            #[allow(unreachable_patterns, reason = "events of other aggregates arrive with later gates")]
            _ => {}
        }
    }

    fn set_verdict(&mut self, hazard_id: HazardId, rectification_id: uuid::Uuid, verdict: Verdict) {
        if let Some(rectification) = self.rectification_mut(hazard_id, rectification_id) {
            rectification.verdict = Some(verdict);
        }
    }

    fn listing_mut(&mut self, hazard_id: HazardId) -> Option<&mut Listing> {
        self.hazards
            .get_mut(&hazard_id)
            .and_then(|hazard| hazard.listing.as_mut())
    }

    fn rectification_mut(&mut self, hazard_id: HazardId, rectification_id: uuid::Uuid) -> Option<&mut Rectification> {
        self.hazards.get_mut(&hazard_id).and_then(|hazard| {
            hazard
                .rectifications
                .iter_mut()
                .find(|r| r.rectification_id == rectification_id)
        })
    }

    /// Builds a file from its events, oldest first.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut file = EnterpriseFile::default();
        for event in events {
            file.apply(event);
        }
        file
    }

    /// Returns the profile in force now (the latest one).
    pub fn current_profile(&self) -> &EnterpriseProfile {
        static EMPTY: EnterpriseProfile = EnterpriseProfile {
            staff_count: 0,
            annual_revenue_10k_yuan: 0,
            flags: std::collections::BTreeSet::new(),
        };
        self.profile_history.last().map_or(&EMPTY, |(_, profile)| profile)
    }

    /// Returns the town the enterprise belonged to at `instant`: the last one that took effect
    /// at or before it; the current town when the history does not reach back that far.
    pub fn town_at(&self, instant: Instant) -> Option<&Town> {
        self.town_history
            .iter()
            .rev()
            .find(|(since, _)| *since <= instant)
            .map(|(_, town)| town)
            .or_else(|| self.registration.as_ref().map(|registration| &registration.town))
    }

    /// The profile in force at `instant`: the last one that took effect at or before it.
    pub fn profile_at(&self, instant: Instant) -> Option<&EnterpriseProfile> {
        self.profile_history
            .iter()
            .rev()
            .find(|(since, _)| *since <= instant)
            .map(|(_, profile)| profile)
    }
}
