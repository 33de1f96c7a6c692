//! Why a command on the enterprise stream was refused; each variant names the broken rule.

use crate::Instant;
use crate::actor::Actor;
use crate::credit_code::UnifiedSocialCreditCode;
use crate::ids::{DocumentId, EnterpriseId, HazardId, InspectionId, RequirementCode};
use crate::period::{Cadence, Period};

/// A refused enterprise command. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnterpriseRejection {
    #[error("{actor_role} {user_id} may not {action}")]
    Forbidden {
        action: &'static str,
        actor_role: &'static str,
        user_id: String,
    },
    #[error("enterprise {enterprise_id} is not registered")]
    UnknownEnterprise { enterprise_id: EnterpriseId },
    #[error("an enterprise with credit code {credit_code} is already registered as {enterprise_id}")]
    AlreadyRegistered {
        enterprise_id: EnterpriseId,
        credit_code: UnifiedSocialCreditCode,
    },
    #[error("{field} {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A value outside the bounds every read model can hold (`crate::bounds`).
    #[error(transparent)]
    ValueOutOfRange(#[from] crate::bounds::OutOfRange),
    #[error("the file is empty")]
    EmptyFile,
    #[error("requirement {requirement} is not in rule set {rule_set}")]
    UnknownRequirement {
        requirement: RequirementCode,
        rule_set: String,
    },
    #[error("requirement {requirement} does not apply to this enterprise")]
    RequirementNotApplicable { requirement: RequirementCode },
    #[error("a record for {requirement} must state {expected}")]
    CoverageMismatch {
        requirement: RequirementCode,
        expected: &'static str,
    },
    #[error("validity must end after it starts (from {valid_from}, until {valid_until})")]
    InvalidValidity { valid_from: Instant, valid_until: Instant },
    #[error("a record for {requirement} may be valid for at most {days_max} days")]
    ValidityTooLong {
        requirement: RequirementCode,
        days_max: u32,
    },
    #[error("records for {requirement} are due {expected:?} for this enterprise, not for period {period}")]
    WrongCadence {
        requirement: RequirementCode,
        expected: Cadence,
        period: Period,
    },
    #[error("period {period} has not started yet")]
    PeriodNotStarted { period: Period },
    #[error("document {document_id} already exists")]
    DuplicateDocument { document_id: DocumentId },
    #[error("document {document_id} does not exist in this enterprise's file")]
    UnknownDocument { document_id: DocumentId },
    #[error("document {document_id} was already reviewed ({outcome})")]
    AlreadyReviewed {
        document_id: DocumentId,
        outcome: &'static str,
    },
    #[error("returning document {document_id} needs feedback for the enterprise")]
    FeedbackRequired { document_id: DocumentId },
    #[error("{field} is in the future")]
    InFuture { field: &'static str },
    #[error("inspection {inspection_id} already exists")]
    DuplicateInspection { inspection_id: InspectionId },
    #[error("hazard {hazard_id} already exists")]
    DuplicateHazard { hazard_id: HazardId },
    #[error("hazard {hazard_id} does not exist in this enterprise's file")]
    UnknownHazard { hazard_id: HazardId },
    #[error("a major hazard must cite an item of the major-hazard catalogue in force")]
    CriterionRequired,
    #[error("criterion {catalogue}/{item} is not in the catalogue in force on {on} ({})", in_force.as_deref().unwrap_or("none"))]
    CriterionNotInForce {
        catalogue: String,
        item: String,
        on: chrono::NaiveDate,
        in_force: Option<String>,
    },
    #[error("the deadline {deadline} is not after the hazard was found ({found_at})")]
    DeadlineNotAfterFinding { deadline: Instant, found_at: Instant },
    #[error("the new deadline {requested} is not later than the current one ({current})")]
    DeadlineNotLater { current: Instant, requested: Instant },
    #[error("hazard {hazard_id} is already closed")]
    HazardClosed { hazard_id: HazardId },
    #[error("hazard {hazard_id} already has a rectification awaiting verification")]
    RectificationPending { hazard_id: HazardId },
    #[error("hazard {hazard_id} has no rectification {rectification_id} awaiting verification")]
    NoPendingRectification {
        hazard_id: HazardId,
        rectification_id: uuid::Uuid,
    },
}

impl crate::aggregate::DomainRejection for EnterpriseRejection {
    fn code(&self) -> &'static str {
        EnterpriseRejection::code(self)
    }
}

impl EnterpriseRejection {
    pub(crate) fn forbidden(action: &'static str, actor: &Actor) -> Self {
        EnterpriseRejection::Forbidden {
            action,
            actor_role: actor.role.name(),
            user_id: actor.user_id.to_string(),
        }
    }

    /// Returns the stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            EnterpriseRejection::Forbidden { .. } => "FORBIDDEN",
            EnterpriseRejection::UnknownEnterprise { .. } => "UNKNOWN_ENTERPRISE",
            EnterpriseRejection::AlreadyRegistered { .. } => "ALREADY_REGISTERED",
            EnterpriseRejection::InvalidField { .. } => "INVALID_FIELD",
            EnterpriseRejection::ValueOutOfRange(_) => "VALUE_OUT_OF_RANGE",
            EnterpriseRejection::EmptyFile => "EMPTY_FILE",
            EnterpriseRejection::UnknownRequirement { .. } => "UNKNOWN_REQUIREMENT",
            EnterpriseRejection::RequirementNotApplicable { .. } => "REQUIREMENT_NOT_APPLICABLE",
            EnterpriseRejection::CoverageMismatch { .. } => "COVERAGE_MISMATCH",
            EnterpriseRejection::InvalidValidity { .. } => "INVALID_VALIDITY",
            EnterpriseRejection::ValidityTooLong { .. } => "VALIDITY_TOO_LONG",
            EnterpriseRejection::WrongCadence { .. } => "WRONG_CADENCE",
            EnterpriseRejection::PeriodNotStarted { .. } => "PERIOD_NOT_STARTED",
            EnterpriseRejection::DuplicateDocument { .. } => "DUPLICATE_DOCUMENT",
            EnterpriseRejection::UnknownDocument { .. } => "UNKNOWN_DOCUMENT",
            EnterpriseRejection::AlreadyReviewed { .. } => "ALREADY_REVIEWED",
            EnterpriseRejection::FeedbackRequired { .. } => "FEEDBACK_REQUIRED",
            EnterpriseRejection::InFuture { .. } => "IN_FUTURE",
            EnterpriseRejection::DuplicateInspection { .. } => "DUPLICATE_INSPECTION",
            EnterpriseRejection::DuplicateHazard { .. } => "DUPLICATE_HAZARD",
            EnterpriseRejection::UnknownHazard { .. } => "UNKNOWN_HAZARD",
            EnterpriseRejection::CriterionRequired => "CRITERION_REQUIRED",
            EnterpriseRejection::CriterionNotInForce { .. } => "CRITERION_NOT_IN_FORCE",
            EnterpriseRejection::DeadlineNotAfterFinding { .. } => "DEADLINE_BEFORE_FINDING",
            EnterpriseRejection::DeadlineNotLater { .. } => "DEADLINE_NOT_LATER",
            EnterpriseRejection::HazardClosed { .. } => "HAZARD_CLOSED",
            EnterpriseRejection::RectificationPending { .. } => "RECTIFICATION_PENDING",
            EnterpriseRejection::NoPendingRectification { .. } => "NO_PENDING_RECTIFICATION",
        }
    }
}
