//! Why a command on the agency stream was refused; each variant names the broken rule.

use crate::actor::Actor;
use crate::credit::Grade;
use crate::ids::{AgencyId, ContractId, EnterpriseId, ServiceReportId, StaffId};
use crate::period::Period;

/// A refused agency command. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgencyRejection {
    #[error("{actor_role} {user_id} may not {action}")]
    Forbidden {
        action: &'static str,
        actor_role: &'static str,
        user_id: String,
    },
    #[error("agency {agency_id} is not registered")]
    UnknownAgency { agency_id: AgencyId },
    #[error("agency {agency_id} is already registered")]
    AlreadyRegistered { agency_id: AgencyId },
    #[error("{field} {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A value outside the bounds every read model can hold (`crate::bounds`).
    #[error(transparent)]
    ValueOutOfRange(#[from] crate::bounds::OutOfRange),
    #[error("the fee band's minimum {min_yuan} is above its maximum {max_yuan}")]
    InvalidFeeBand { min_yuan: u64, max_yuan: u64 },
    #[error("agency {agency_id} is on the blacklist and may not sign contracts")]
    Blacklisted { agency_id: AgencyId },
    #[error("agency {agency_id} is not on the blacklist")]
    NotBlacklisted { agency_id: AgencyId },
    #[error("contract {contract_id} already exists")]
    DuplicateContract { contract_id: ContractId },
    #[error("contract {contract_id} does not exist at this agency")]
    UnknownContract { contract_id: ContractId },
    #[error("contract {contract_id} was already terminated")]
    ContractTerminated { contract_id: ContractId },
    #[error("contract {contract_id} is not in force at the visit")]
    ContractNotInForce { contract_id: ContractId },
    #[error("a contract must end after it starts")]
    InvalidContractPeriod,
    #[error("staff member {staff_id} is not in the agency's staff registry")]
    UnknownStaff { staff_id: StaffId },
    #[error("staff member {staff_id} is listed twice")]
    DuplicateStaff { staff_id: StaffId },
    #[error("service report {report_id} already exists")]
    DuplicateReport { report_id: ServiceReportId },
    #[error("service report {report_id} does not exist at this agency")]
    UnknownReport { report_id: ServiceReportId },
    #[error("a visit cannot be reported before it happens")]
    VisitInFuture,
    #[error("only the served enterprise {served} may rate service report {report_id}")]
    NotServedEnterprise {
        report_id: ServiceReportId,
        served: EnterpriseId,
    },
    #[error("service report {report_id} was already rated")]
    AlreadyRated { report_id: ServiceReportId },
    #[error("stars must be 1 to 5, not {stars}")]
    StarsOutOfRange { stars: i64 },
    #[error("service report {report_id} was already spot-checked")]
    AlreadySpotChecked { report_id: ServiceReportId },
    #[error("half-year {half_year} is not a half-year, or has not started")]
    InvalidHalfYear { half_year: Period },
    #[error("half-year {half_year} was already graded")]
    AlreadyGraded { half_year: Period },
    #[error("the final grade {grade} differs from the computed grade {computed}: give the reason")]
    GradeReasonRequired { grade: Grade, computed: Grade },
    #[error("refusing to rectify is only found after a summons")]
    NoSummons,
}

impl crate::aggregate::DomainRejection for AgencyRejection {
    fn code(&self) -> &'static str {
        AgencyRejection::code(self)
    }
}

impl AgencyRejection {
    pub(crate) fn forbidden(action: &'static str, actor: &Actor) -> Self {
        AgencyRejection::Forbidden {
            action,
            actor_role: actor.role.name(),
            user_id: actor.user_id.to_string(),
        }
    }

    /// Returns the stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AgencyRejection::Forbidden { .. } => "FORBIDDEN",
            AgencyRejection::UnknownAgency { .. } => "UNKNOWN_AGENCY",
            AgencyRejection::AlreadyRegistered { .. } => "ALREADY_REGISTERED",
            AgencyRejection::InvalidField { .. } => "INVALID_FIELD",
            AgencyRejection::ValueOutOfRange(_) => "VALUE_OUT_OF_RANGE",
            AgencyRejection::InvalidFeeBand { .. } => "INVALID_FEE_BAND",
            AgencyRejection::Blacklisted { .. } => "AGENCY_BLACKLISTED",
            AgencyRejection::NotBlacklisted { .. } => "NOT_BLACKLISTED",
            AgencyRejection::DuplicateContract { .. } => "DUPLICATE_CONTRACT",
            AgencyRejection::UnknownContract { .. } => "UNKNOWN_CONTRACT",
            AgencyRejection::ContractTerminated { .. } => "CONTRACT_TERMINATED",
            AgencyRejection::ContractNotInForce { .. } => "CONTRACT_NOT_IN_FORCE",
            AgencyRejection::InvalidContractPeriod => "INVALID_CONTRACT_PERIOD",
            AgencyRejection::UnknownStaff { .. } => "UNKNOWN_STAFF",
            AgencyRejection::DuplicateStaff { .. } => "DUPLICATE_STAFF",
            AgencyRejection::DuplicateReport { .. } => "DUPLICATE_REPORT",
            AgencyRejection::UnknownReport { .. } => "UNKNOWN_REPORT",
            AgencyRejection::VisitInFuture => "VISIT_IN_FUTURE",
            AgencyRejection::NotServedEnterprise { .. } => "NOT_SERVED_ENTERPRISE",
            AgencyRejection::AlreadyRated { .. } => "ALREADY_RATED",
            AgencyRejection::StarsOutOfRange { .. } => "STARS_OUT_OF_RANGE",
            AgencyRejection::AlreadySpotChecked { .. } => "ALREADY_SPOT_CHECKED",
            AgencyRejection::InvalidHalfYear { .. } => "INVALID_HALF_YEAR",
            AgencyRejection::AlreadyGraded { .. } => "ALREADY_GRADED",
            AgencyRejection::GradeReasonRequired { .. } => "GRADE_REASON_REQUIRED",
            AgencyRejection::NoSummons => "NO_SUMMONS",
        }
    }
}
