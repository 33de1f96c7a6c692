//! Why a command on the enterprise stream was refused; each variant names the broken rule.

use crate::Instant;
use crate::actor::Actor;
use crate::credit_code::UnifiedSocialCreditCode;
use crate::ids::{DocumentId, EnterpriseId, HazardId, InspectionId, RequirementCode};
use crate::period::{Cadence, Period};
use crate::refusal::{Details, FieldProblem, field_label, instant_text};

/// A refused enterprise command. Nothing was appended. Its `Display` is the sentence a person
/// reads, in Chinese; programs branch on [`EnterpriseRejection::code`] and read
/// `DomainRejection::details`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnterpriseRejection {
    /// `action` is what was refused, as a person reads it (审核该企业的资料).
    #[error("{}（{user_id}）无权{action}", role_label)]
    Forbidden {
        action: &'static str,
        actor_role: &'static str,
        role_label: &'static str,
        user_id: String,
    },
    #[error("编号为 {enterprise_id} 的企业尚未登记")]
    UnknownEnterprise { enterprise_id: EnterpriseId },
    #[error("统一社会信用代码为 {credit_code} 的企业已经登记（企业编号 {enterprise_id}），不能重复登记")]
    AlreadyRegistered {
        enterprise_id: EnterpriseId,
        credit_code: UnifiedSocialCreditCode,
    },
    #[error("{}", problem.sentence(field))]
    InvalidField { field: &'static str, problem: FieldProblem },
    /// A value outside the bounds every read model can hold (`crate::bounds`).
    #[error(transparent)]
    ValueOutOfRange(#[from] crate::bounds::OutOfRange),
    #[error("上传的文件是空的，请重新选择文件")]
    EmptyFile,
    #[error("规则集 {rule_set} 中没有要求项 {requirement}")]
    UnknownRequirement {
        requirement: RequirementCode,
        rule_set: String,
    },
    #[error("要求项 {requirement} 不适用于该企业")]
    RequirementNotApplicable { requirement: RequirementCode },
    #[error("要求项 {requirement} 的资料{}", expected.sentence())]
    CoverageMismatch {
        requirement: RequirementCode,
        expected: ExpectedCoverage,
    },
    #[error(
        "有效期截止时间（{}）应晚于起始时间（{}）",
        instant_text(*valid_until),
        instant_text(*valid_from)
    )]
    InvalidValidity { valid_from: Instant, valid_until: Instant },
    #[error("要求项 {requirement} 的资料有效期最长{days_max}天")]
    ValidityTooLong {
        requirement: RequirementCode,
        days_max: u32,
    },
    #[error("该企业要求项 {requirement} 的资料按{}报送，报告期 {period} 不是{}报告期", expected.label(), expected.label())]
    WrongCadence {
        requirement: RequirementCode,
        expected: Cadence,
        period: Period,
    },
    #[error("报告期 {period} 尚未开始，不能提前报送")]
    PeriodNotStarted { period: Period },
    #[error("编号为 {document_id} 的资料已经存在")]
    DuplicateDocument { document_id: DocumentId },
    #[error("该企业的档案中没有编号为 {document_id} 的资料")]
    UnknownDocument { document_id: DocumentId },
    /// `outcome` is the review's stable name (`approved`, `returned`).
    #[error("资料 {document_id} 已经审核（{}），不能再次审核", review_outcome_label(outcome))]
    AlreadyReviewed {
        document_id: DocumentId,
        outcome: &'static str,
    },
    #[error("退回资料 {document_id} 时须写明给企业的反馈意见")]
    FeedbackRequired { document_id: DocumentId },
    #[error("{}不能晚于当前时间", field_label(field))]
    InFuture { field: &'static str },
    #[error("编号为 {inspection_id} 的检查记录已经存在")]
    DuplicateInspection { inspection_id: InspectionId },
    #[error("编号为 {hazard_id} 的隐患已经存在")]
    DuplicateHazard { hazard_id: HazardId },
    #[error("该企业的档案中没有编号为 {hazard_id} 的隐患")]
    UnknownHazard { hazard_id: HazardId },
    #[error(
        "重大事故隐患须注明依据的是现行判定标准中的哪一条；没有适用条目时，请填写认定依据说明，由镇（街道）或市应急管理部门确认"
    )]
    CriterionRequired,
    #[error("只有未引用判定标准条目的重大事故隐患才填写认定依据说明")]
    BasisNotAllowed,
    #[error("编号为 {hazard_id} 的隐患不是待确认的重大事故隐患")]
    NotPendingConfirmation { hazard_id: HazardId },
    #[error("编号为 {hazard_id} 的隐患没有待抽查的企业自行整改销号")]
    NotSelfClosed { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 现在不算重大事故隐患，不能挂牌督办")]
    NotMajorHazard { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 已经挂牌督办过，不能重复挂牌")]
    AlreadyListed { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 没有正在督办的挂牌")]
    NotListed { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 的整改尚未复核通过，不能申请或批准摘牌")]
    HazardNotClosed { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 的挂牌尚未申请摘牌（复产）")]
    LiftNotRequested { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 的摘牌申请已经提交，等待市应急管理部门核查")]
    LiftAlreadyRequested { hazard_id: HazardId },
    #[error("督办期限（{}）应晚于现在（{}）", instant_text(*deadline), instant_text(*now))]
    ListingDeadlineNotInFuture { deadline: Instant, now: Instant },
    #[error(
        "判定标准条目 {catalogue}/{item} 不在 {on} 施行的判定标准中（当日施行：{}）",
        in_force.as_deref().unwrap_or("无")
    )]
    CriterionNotInForce {
        catalogue: String,
        item: String,
        on: chrono::NaiveDate,
        in_force: Option<String>,
    },
    #[error(
        "整改期限（{}）应晚于发现隐患的时间（{}）",
        instant_text(*deadline),
        instant_text(*found_at)
    )]
    DeadlineNotAfterFinding { deadline: Instant, found_at: Instant },
    #[error(
        "新的整改期限（{}）应晚于现在的整改期限（{}）",
        instant_text(*requested),
        instant_text(*current)
    )]
    DeadlineNotLater { current: Instant, requested: Instant },
    #[error("隐患 {hazard_id} 已经销号")]
    HazardClosed { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 已有一次整改等待核查，请待核查后再提交")]
    RectificationPending { hazard_id: HazardId },
    #[error("隐患 {hazard_id} 没有编号为 {rectification_id} 的待核查整改")]
    NoPendingRectification {
        hazard_id: HazardId,
        rectification_id: uuid::Uuid,
    },
    #[error("该企业已于 {} 注销或停业，不再接受此项操作", instant_text(*since))]
    EnterpriseClosed {
        enterprise_id: EnterpriseId,
        since: Instant,
    },
    #[error("该企业没有注销或停业，无需恢复")]
    NotClosed { enterprise_id: EnterpriseId },
    #[error("生效时间不能早于 {}（企业登记或上次恢复经营、停业的时间）", instant_text(*not_before))]
    EffectiveTooEarly { not_before: Instant },
}

/// What a record for a requirement must state, by the requirement's kind of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedCoverage {
    /// A one-off record: neither a period nor a validity.
    Once,
    /// A certificate or agreement: when it is valid from and until.
    Validity,
    /// A periodic record: the reporting period it covers.
    Period,
}

impl ExpectedCoverage {
    /// Returns the stable name programs see as `extensions.expected`.
    pub fn name(self) -> &'static str {
        match self {
            ExpectedCoverage::Once => "ONCE",
            ExpectedCoverage::Validity => "VALIDITY",
            ExpectedCoverage::Period => "PERIOD",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            ExpectedCoverage::Once => "只需上传一次，不填写报告期或有效期",
            ExpectedCoverage::Validity => "须填写有效期（起始和截止时间）",
            ExpectedCoverage::Period => "须填写所属报告期",
        }
    }
}

fn review_outcome_label(outcome: &str) -> &str {
    match outcome {
        "approved" => "已通过",
        "returned" => "已退回",
        other => other,
    }
}

impl crate::aggregate::DomainRejection for EnterpriseRejection {
    fn code(&self) -> &'static str {
        EnterpriseRejection::code(self)
    }

    fn details(&self) -> Details {
        EnterpriseRejection::details(self)
    }
}

impl EnterpriseRejection {
    pub(crate) fn forbidden(action: &'static str, actor: &Actor) -> Self {
        EnterpriseRejection::Forbidden {
            action,
            actor_role: actor.role.name(),
            role_label: actor.role.label(),
            user_id: actor.user_id.to_string(),
        }
    }

    /// Returns the facts programs need besides the code: the field and its limit, the record
    /// at fault.
    pub fn details(&self) -> Details {
        let text = |value: &dyn std::fmt::Display| serde_json::Value::from(value.to_string());
        match self {
            EnterpriseRejection::Forbidden { actor_role, .. } => vec![("role", (*actor_role).into())],
            EnterpriseRejection::UnknownEnterprise { enterprise_id }
            | EnterpriseRejection::NotClosed { enterprise_id } => vec![("enterpriseId", text(enterprise_id))],
            EnterpriseRejection::EnterpriseClosed { enterprise_id, since } => {
                vec![
                    ("enterpriseId", text(enterprise_id)),
                    ("since", since.to_rfc3339().into()),
                ]
            }
            EnterpriseRejection::EffectiveTooEarly { not_before } => {
                vec![("notBefore", not_before.to_rfc3339().into())]
            }
            EnterpriseRejection::AlreadyRegistered {
                enterprise_id,
                credit_code,
            } => vec![("enterpriseId", text(enterprise_id)), ("creditCode", text(credit_code))],
            EnterpriseRejection::InvalidField { field, problem } => problem.details(field),
            EnterpriseRejection::ValueOutOfRange(out_of_range) => out_of_range.details(),
            EnterpriseRejection::EmptyFile
            | EnterpriseRejection::CriterionRequired
            | EnterpriseRejection::BasisNotAllowed => Vec::new(),
            EnterpriseRejection::NotPendingConfirmation { hazard_id } => vec![("hazardId", text(hazard_id))],
            EnterpriseRejection::NotSelfClosed { hazard_id } => vec![("hazardId", text(hazard_id))],
            EnterpriseRejection::NotMajorHazard { hazard_id }
            | EnterpriseRejection::AlreadyListed { hazard_id }
            | EnterpriseRejection::NotListed { hazard_id }
            | EnterpriseRejection::HazardNotClosed { hazard_id }
            | EnterpriseRejection::LiftNotRequested { hazard_id }
            | EnterpriseRejection::LiftAlreadyRequested { hazard_id } => vec![("hazardId", text(hazard_id))],
            EnterpriseRejection::ListingDeadlineNotInFuture { deadline, .. } => {
                vec![("deadline", instant_text(*deadline).into())]
            }
            EnterpriseRejection::UnknownRequirement { requirement, rule_set } => {
                vec![("requirement", text(requirement)), ("ruleSet", rule_set.clone().into())]
            }
            EnterpriseRejection::RequirementNotApplicable { requirement } => vec![("requirement", text(requirement))],
            EnterpriseRejection::CoverageMismatch { requirement, expected } => {
                vec![("requirement", text(requirement)), ("expected", expected.name().into())]
            }
            EnterpriseRejection::InvalidValidity {
                valid_from,
                valid_until,
            } => vec![
                ("validFrom", valid_from.to_rfc3339().into()),
                ("validUntil", valid_until.to_rfc3339().into()),
            ],
            EnterpriseRejection::ValidityTooLong { requirement, days_max } => {
                vec![("requirement", text(requirement)), ("daysMax", (*days_max).into())]
            }
            EnterpriseRejection::WrongCadence {
                requirement,
                expected,
                period,
            } => vec![
                ("requirement", text(requirement)),
                ("expected", expected.name().into()),
                ("period", text(period)),
            ],
            EnterpriseRejection::PeriodNotStarted { period } => vec![("period", text(period))],
            EnterpriseRejection::DuplicateDocument { document_id }
            | EnterpriseRejection::UnknownDocument { document_id }
            | EnterpriseRejection::FeedbackRequired { document_id } => vec![("documentId", text(document_id))],
            EnterpriseRejection::AlreadyReviewed { document_id, outcome } => vec![
                ("documentId", text(document_id)),
                ("outcome", outcome.to_ascii_uppercase().into()),
            ],
            EnterpriseRejection::InFuture { field } => vec![("field", (*field).into())],
            EnterpriseRejection::DuplicateInspection { inspection_id } => {
                vec![("inspectionId", text(inspection_id))]
            }
            EnterpriseRejection::DuplicateHazard { hazard_id }
            | EnterpriseRejection::UnknownHazard { hazard_id }
            | EnterpriseRejection::HazardClosed { hazard_id }
            | EnterpriseRejection::RectificationPending { hazard_id } => vec![("hazardId", text(hazard_id))],
            EnterpriseRejection::CriterionNotInForce {
                catalogue,
                item,
                on,
                in_force,
            } => vec![
                ("catalogue", catalogue.clone().into()),
                ("item", item.clone().into()),
                ("on", text(on)),
                ("inForce", in_force.clone().into()),
            ],
            EnterpriseRejection::DeadlineNotAfterFinding { deadline, found_at } => vec![
                ("deadline", deadline.to_rfc3339().into()),
                ("foundAt", found_at.to_rfc3339().into()),
            ],
            EnterpriseRejection::DeadlineNotLater { current, requested } => vec![
                ("currentDeadline", current.to_rfc3339().into()),
                ("deadline", requested.to_rfc3339().into()),
            ],
            EnterpriseRejection::NoPendingRectification {
                hazard_id,
                rectification_id,
            } => vec![
                ("hazardId", text(hazard_id)),
                ("rectificationId", text(rectification_id)),
            ],
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
            EnterpriseRejection::BasisNotAllowed => "BASIS_NOT_ALLOWED",
            EnterpriseRejection::NotPendingConfirmation { .. } => "NOT_PENDING_CONFIRMATION",
            EnterpriseRejection::NotSelfClosed { .. } => "NOT_SELF_CLOSED",
            EnterpriseRejection::NotMajorHazard { .. } => "NOT_MAJOR_HAZARD",
            EnterpriseRejection::AlreadyListed { .. } => "ALREADY_LISTED",
            EnterpriseRejection::NotListed { .. } => "NOT_LISTED",
            EnterpriseRejection::HazardNotClosed { .. } => "HAZARD_NOT_CLOSED",
            EnterpriseRejection::LiftNotRequested { .. } => "LIFT_NOT_REQUESTED",
            EnterpriseRejection::LiftAlreadyRequested { .. } => "LIFT_ALREADY_REQUESTED",
            EnterpriseRejection::ListingDeadlineNotInFuture { .. } => "DEADLINE_NOT_IN_FUTURE",
            EnterpriseRejection::CriterionNotInForce { .. } => "CRITERION_NOT_IN_FORCE",
            EnterpriseRejection::DeadlineNotAfterFinding { .. } => "DEADLINE_BEFORE_FINDING",
            EnterpriseRejection::DeadlineNotLater { .. } => "DEADLINE_NOT_LATER",
            EnterpriseRejection::HazardClosed { .. } => "HAZARD_CLOSED",
            EnterpriseRejection::RectificationPending { .. } => "RECTIFICATION_PENDING",
            EnterpriseRejection::NoPendingRectification { .. } => "NO_PENDING_RECTIFICATION",
            EnterpriseRejection::EnterpriseClosed { .. } => "ENTERPRISE_CLOSED",
            EnterpriseRejection::NotClosed { .. } => "ENTERPRISE_NOT_CLOSED",
            EnterpriseRejection::EffectiveTooEarly { .. } => "EFFECTIVE_TOO_EARLY",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The position of each variant in the samples below. Adding a variant breaks this match,
    /// and the test then fails until a sample of it is added.
    fn variant_index(rejection: &EnterpriseRejection) -> usize {
        match rejection {
            EnterpriseRejection::Forbidden { .. } => 0,
            EnterpriseRejection::UnknownEnterprise { .. } => 1,
            EnterpriseRejection::AlreadyRegistered { .. } => 2,
            EnterpriseRejection::InvalidField { .. } => 3,
            EnterpriseRejection::ValueOutOfRange(_) => 4,
            EnterpriseRejection::EmptyFile => 5,
            EnterpriseRejection::UnknownRequirement { .. } => 6,
            EnterpriseRejection::RequirementNotApplicable { .. } => 7,
            EnterpriseRejection::CoverageMismatch { .. } => 8,
            EnterpriseRejection::InvalidValidity { .. } => 9,
            EnterpriseRejection::ValidityTooLong { .. } => 10,
            EnterpriseRejection::WrongCadence { .. } => 11,
            EnterpriseRejection::PeriodNotStarted { .. } => 12,
            EnterpriseRejection::DuplicateDocument { .. } => 13,
            EnterpriseRejection::UnknownDocument { .. } => 14,
            EnterpriseRejection::AlreadyReviewed { .. } => 15,
            EnterpriseRejection::FeedbackRequired { .. } => 16,
            EnterpriseRejection::InFuture { .. } => 17,
            EnterpriseRejection::DuplicateInspection { .. } => 18,
            EnterpriseRejection::DuplicateHazard { .. } => 19,
            EnterpriseRejection::UnknownHazard { .. } => 20,
            EnterpriseRejection::CriterionRequired => 21,
            EnterpriseRejection::CriterionNotInForce { .. } => 22,
            EnterpriseRejection::DeadlineNotAfterFinding { .. } => 23,
            EnterpriseRejection::DeadlineNotLater { .. } => 24,
            EnterpriseRejection::HazardClosed { .. } => 25,
            EnterpriseRejection::RectificationPending { .. } => 26,
            EnterpriseRejection::NoPendingRectification { .. } => 27,
            EnterpriseRejection::BasisNotAllowed => 28,
            EnterpriseRejection::NotPendingConfirmation { .. } => 29,
            EnterpriseRejection::NotSelfClosed { .. } => 30,
            EnterpriseRejection::NotMajorHazard { .. } => 31,
            EnterpriseRejection::AlreadyListed { .. } => 32,
            EnterpriseRejection::NotListed { .. } => 33,
            EnterpriseRejection::HazardNotClosed { .. } => 34,
            EnterpriseRejection::LiftNotRequested { .. } => 35,
            EnterpriseRejection::LiftAlreadyRequested { .. } => 36,
            EnterpriseRejection::ListingDeadlineNotInFuture { .. } => 37,
            EnterpriseRejection::EnterpriseClosed { .. } => 38,
            EnterpriseRejection::NotClosed { .. } => 39,
            EnterpriseRejection::EffectiveTooEarly { .. } => 40,
        }
    }

    fn samples() -> Vec<EnterpriseRejection> {
        let enterprise_id = EnterpriseId::from_uuid(uuid::Uuid::from_u128(1));
        let document_id = DocumentId::from_uuid(uuid::Uuid::from_u128(2));
        let hazard_id = HazardId::from_uuid(uuid::Uuid::from_u128(3));
        let requirement = RequirementCode::parse("R10.drill").unwrap();
        let period: Period = "2026-Q1".parse().unwrap();
        let at = crate::bounds::INSTANT_MIN;
        let actor = Actor {
            user_id: crate::UserId::parse("zhang").unwrap(),
            role: crate::Role::Analyst,
        };
        vec![
            EnterpriseRejection::forbidden("审核该企业的资料", &actor),
            EnterpriseRejection::UnknownEnterprise { enterprise_id },
            EnterpriseRejection::AlreadyRegistered {
                enterprise_id,
                credit_code: UnifiedSocialCreditCode::parse("91330481MA28A0XX07").unwrap(),
            },
            EnterpriseRejection::InvalidField {
                field: "title",
                problem: FieldProblem::TooLong { chars_max: 200 },
            },
            crate::bounds::check_count("fatalities", u64::MAX).unwrap_err().into(),
            EnterpriseRejection::EmptyFile,
            EnterpriseRejection::UnknownRequirement {
                requirement: requirement.clone(),
                rule_set: "2024.1".into(),
            },
            EnterpriseRejection::RequirementNotApplicable {
                requirement: requirement.clone(),
            },
            EnterpriseRejection::CoverageMismatch {
                requirement: requirement.clone(),
                expected: ExpectedCoverage::Validity,
            },
            EnterpriseRejection::InvalidValidity {
                valid_from: at,
                valid_until: at,
            },
            EnterpriseRejection::ValidityTooLong {
                requirement: requirement.clone(),
                days_max: 365,
            },
            EnterpriseRejection::WrongCadence {
                requirement,
                expected: Cadence::Monthly,
                period,
            },
            EnterpriseRejection::PeriodNotStarted { period },
            EnterpriseRejection::DuplicateDocument { document_id },
            EnterpriseRejection::UnknownDocument { document_id },
            EnterpriseRejection::AlreadyReviewed {
                document_id,
                outcome: "approved",
            },
            EnterpriseRejection::FeedbackRequired { document_id },
            EnterpriseRejection::InFuture { field: "inspectedAt" },
            EnterpriseRejection::DuplicateInspection {
                inspection_id: InspectionId::from_uuid(uuid::Uuid::from_u128(4)),
            },
            EnterpriseRejection::DuplicateHazard { hazard_id },
            EnterpriseRejection::UnknownHazard { hazard_id },
            EnterpriseRejection::CriterionRequired,
            EnterpriseRejection::CriterionNotInForce {
                catalogue: "GB-2023".into(),
                item: "4.1".into(),
                on: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                in_force: None,
            },
            EnterpriseRejection::DeadlineNotAfterFinding {
                deadline: at,
                found_at: at,
            },
            EnterpriseRejection::DeadlineNotLater {
                current: at,
                requested: at,
            },
            EnterpriseRejection::HazardClosed { hazard_id },
            EnterpriseRejection::RectificationPending { hazard_id },
            EnterpriseRejection::NoPendingRectification {
                hazard_id,
                rectification_id: uuid::Uuid::from_u128(5),
            },
            EnterpriseRejection::BasisNotAllowed,
            EnterpriseRejection::NotPendingConfirmation { hazard_id },
            EnterpriseRejection::NotSelfClosed { hazard_id },
            EnterpriseRejection::NotMajorHazard { hazard_id },
            EnterpriseRejection::AlreadyListed { hazard_id },
            EnterpriseRejection::NotListed { hazard_id },
            EnterpriseRejection::HazardNotClosed { hazard_id },
            EnterpriseRejection::LiftNotRequested { hazard_id },
            EnterpriseRejection::LiftAlreadyRequested { hazard_id },
            EnterpriseRejection::ListingDeadlineNotInFuture { deadline: at, now: at },
            EnterpriseRejection::EnterpriseClosed {
                enterprise_id,
                since: at,
            },
            EnterpriseRejection::NotClosed { enterprise_id },
            EnterpriseRejection::EffectiveTooEarly { not_before: at },
        ]
    }

    #[test]
    fn every_rejection_tells_a_person_in_chinese_and_a_program_in_an_english_code() {
        crate::refusal::assert_every_variant_speaks_to_both_audiences(&samples(), variant_index, 41);
    }

    #[test]
    fn refusals_name_the_field_and_its_limit_for_programs() {
        let too_long = EnterpriseRejection::InvalidField {
            field: "title",
            problem: FieldProblem::TooLong { chars_max: 200 },
        };
        assert_eq!(too_long.to_string(), "标题不能超过200个字");
        assert_eq!(
            too_long.details(),
            vec![
                ("field", "title".into()),
                ("problem", "TOO_LONG".into()),
                ("charsMax", 200.into())
            ]
        );
        let actor = Actor {
            user_id: crate::UserId::parse("zhang").unwrap(),
            role: crate::Role::Analyst,
        };
        assert_eq!(
            EnterpriseRejection::forbidden("修改任何数据", &actor).to_string(),
            "分析人员（zhang）无权修改任何数据"
        );
    }
}
