//! Listed supervision of major hazards (挂牌督办) on the enterprise stream: the city lists an
//! open major hazard, the town reports progress and applies to lift the listing once the
//! remediation is verified, and the city lifts it after its on-site review (domain.md §2).

use super::event::{FileRef, HazardDelisted, HazardLevel, HazardListed, ListingLiftRequested, ListingProgressReported};
use super::hazard::ListingState;
use super::rejection::EnterpriseRejection;
use super::state::EnterpriseFile;
use super::supervision::{FILES_MAX, check_text};
use crate::Instant;
use crate::aggregate::DecisionContext;
use crate::event::Event;
use crate::ids::{EnterpriseId, HazardId};
use crate::refusal::FieldProblem;

/// Longest listing document number (督办文号), in characters.
pub const DOCUMENT_NUMBER_CHARS_MAX: usize = 100;

/// The city lists an open major hazard for supervision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListHazard {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub document_number: String,
    pub deadline: Instant,
    pub production_suspended: bool,
}

/// The town reports the progress of a listed hazard's remediation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportListingProgress {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub text: String,
    pub files: Vec<FileRef>,
}

/// The town applies to lift a listing once the hazard's remediation is verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestListingLift {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub text: String,
}

/// The city lifts a listing after its on-site review.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LiftHazardListing {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub note: String,
}

impl EnterpriseFile {
    pub(super) fn decide_list_hazard(
        &self,
        command: &ListHazard,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let hazard = self.hazard(command.hazard_id)?;
        if hazard.listing.is_some() {
            return Err(EnterpriseRejection::AlreadyListed {
                hazard_id: command.hazard_id,
            });
        }
        if hazard.closed_at(context.now).is_some() {
            return Err(EnterpriseRejection::HazardClosed {
                hazard_id: command.hazard_id,
            });
        }
        // Major as it counts now: a free-text basis still pending confirmation is not listed.
        if hazard.level_at(context.now) != HazardLevel::Major {
            return Err(EnterpriseRejection::NotMajorHazard {
                hazard_id: command.hazard_id,
            });
        }
        let document_number = command.document_number.trim();
        if document_number.is_empty() {
            return Err(EnterpriseRejection::InvalidField {
                field: "documentNumber",
                problem: FieldProblem::Empty,
            });
        }
        if document_number.chars().count() > DOCUMENT_NUMBER_CHARS_MAX {
            return Err(EnterpriseRejection::InvalidField {
                field: "documentNumber",
                problem: FieldProblem::TooLong {
                    chars_max: DOCUMENT_NUMBER_CHARS_MAX,
                },
            });
        }
        if command.deadline <= context.now {
            return Err(EnterpriseRejection::ListingDeadlineNotInFuture {
                deadline: command.deadline,
                now: context.now,
            });
        }
        Ok(vec![Event::HazardListed(HazardListed {
            hazard_id: command.hazard_id,
            document_number: document_number.to_owned(),
            deadline: command.deadline,
            production_suspended: command.production_suspended,
            listed_at: context.now,
        })])
    }

    pub(super) fn decide_report_listing_progress(
        &self,
        command: &ReportListingProgress,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        self.listing_in_force(command.hazard_id, context.now)?;
        check_text("text", &command.text)?;
        if command.files.len() > FILES_MAX {
            return Err(EnterpriseRejection::InvalidField {
                field: "files",
                problem: FieldProblem::TooManyItems { items_max: FILES_MAX },
            });
        }
        Ok(vec![Event::ListingProgressReported(ListingProgressReported {
            hazard_id: command.hazard_id,
            text: command.text.trim().to_owned(),
            files: command.files.clone(),
            reported_at: context.now,
        })])
    }

    pub(super) fn decide_request_listing_lift(
        &self,
        command: &RequestListingLift,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let state = self.listing_in_force(command.hazard_id, context.now)?;
        if state == ListingState::LiftRequested {
            return Err(EnterpriseRejection::LiftAlreadyRequested {
                hazard_id: command.hazard_id,
            });
        }
        self.verified_closed(command.hazard_id, context.now)?;
        check_text("text", &command.text)?;
        Ok(vec![Event::ListingLiftRequested(ListingLiftRequested {
            hazard_id: command.hazard_id,
            text: command.text.trim().to_owned(),
            requested_at: context.now,
        })])
    }

    pub(super) fn decide_lift_listing(
        &self,
        command: &LiftHazardListing,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let state = self.listing_in_force(command.hazard_id, context.now)?;
        if state != ListingState::LiftRequested {
            return Err(EnterpriseRejection::LiftNotRequested {
                hazard_id: command.hazard_id,
            });
        }
        self.verified_closed(command.hazard_id, context.now)?;
        check_text("note", &command.note)?;
        Ok(vec![Event::HazardDelisted(HazardDelisted {
            hazard_id: command.hazard_id,
            note: command.note.trim().to_owned(),
            delisted_at: context.now,
        })])
    }

    /// Returns the state of the hazard's listing if it is in force now.
    fn listing_in_force(&self, hazard_id: HazardId, now: Instant) -> Result<ListingState, EnterpriseRejection> {
        let hazard = self.hazard(hazard_id)?;
        match hazard.listing.as_ref().and_then(|listing| listing.state_at(now)) {
            Some(state @ (ListingState::Listed | ListingState::LiftRequested)) => Ok(state),
            Some(ListingState::Lifted) | None => Err(EnterpriseRejection::NotListed { hazard_id }),
        }
    }

    /// Checks that an inspector verified the hazard's remediation (the lift needs it).
    fn verified_closed(&self, hazard_id: HazardId, now: Instant) -> Result<(), EnterpriseRejection> {
        if self.hazard(hazard_id)?.closed_at(now).is_some() {
            Ok(())
        } else {
            Err(EnterpriseRejection::HazardNotClosed { hazard_id })
        }
    }
}
