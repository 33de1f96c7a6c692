//! Why a command on the agency stream was refused; each variant names the broken rule.

use super::event::FeeCheck;
use crate::actor::Actor;
use crate::credit::Grade;
use crate::ids::{AgencyId, ContractId, EnterpriseId, ServiceReportId, StaffId, Town};
use crate::period::Period;
use crate::refusal::{Details, FieldProblem};

/// A refused agency command. Nothing was appended. Its `Display` is the sentence a person
/// reads, in Chinese; programs branch on [`AgencyRejection::code`] and read
/// `DomainRejection::details`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgencyRejection {
    /// `action` is what was refused, as a person reads it (抽查服务报告).
    #[error("{role_label}（{user_id}）无权{action}")]
    Forbidden {
        action: &'static str,
        actor_role: &'static str,
        role_label: &'static str,
        user_id: String,
    },
    #[error("编号为 {agency_id} 的服务机构尚未登记")]
    UnknownAgency { agency_id: AgencyId },
    #[error("编号为 {agency_id} 的服务机构已经登记，不能重复登记")]
    AlreadyRegistered { agency_id: AgencyId },
    #[error("{}", problem.sentence(field))]
    InvalidField { field: &'static str, problem: FieldProblem },
    /// A value outside the bounds every read model can hold (`crate::bounds`).
    #[error(transparent)]
    ValueOutOfRange(#[from] crate::bounds::OutOfRange),
    #[error("收费标准下限（{min_yuan}元）高于上限（{max_yuan}元）")]
    InvalidFeeBand { min_yuan: u64, max_yuan: u64 },
    #[error("服务机构 {agency_id} 已列入黑名单，不能签订服务合同")]
    Blacklisted { agency_id: AgencyId },
    #[error("服务机构 {agency_id} 不在黑名单中")]
    NotBlacklisted { agency_id: AgencyId },
    #[error("编号为 {contract_id} 的合同已经存在")]
    DuplicateContract { contract_id: ContractId },
    #[error("该服务机构没有编号为 {contract_id} 的合同")]
    UnknownContract { contract_id: ContractId },
    #[error("合同 {contract_id} 已经解除")]
    ContractTerminated { contract_id: ContractId },
    #[error("合同 {contract_id} 只能由合同所列企业（{enterprise_id}）确认或拒绝")]
    NotContractEnterprise {
        contract_id: ContractId,
        enterprise_id: EnterpriseId,
    },
    #[error("合同 {contract_id} 只能由企业所在镇（{town}）的镇街管理员备案")]
    NotContractTown { contract_id: ContractId, town: Town },
    #[error("合同 {contract_id} 已经由企业答复过，不能再确认或拒绝")]
    ContractAlreadyAnswered { contract_id: ContractId },
    #[error("合同 {contract_id} 已被企业拒绝")]
    ContractRejected { contract_id: ContractId },
    #[error("合同 {contract_id} 尚未经企业确认，不能备案")]
    ContractNotConfirmed { contract_id: ContractId },
    #[error("合同 {contract_id} 已经备案")]
    ContractAlreadyFiled { contract_id: ContractId },
    #[error("合同 {contract_id} 的收费不在服务机构公布的收费标准内，备案须写明例外理由")]
    FeeExceptionReasonRequired {
        contract_id: ContractId,
        fee_check: FeeCheck,
    },
    #[error("合同 {contract_id} 尚未备案，不能据此报送服务")]
    ContractNotFiled { contract_id: ContractId },
    #[error("服务发生时合同 {contract_id} 不在有效期内")]
    ContractNotInForce { contract_id: ContractId },
    #[error("合同的截止时间应晚于起始时间")]
    InvalidContractPeriod,
    #[error("人员 {staff_id} 不在该服务机构的人员名录中")]
    UnknownStaff { staff_id: StaffId },
    #[error("人员 {staff_id} 重复列出")]
    DuplicateStaff { staff_id: StaffId },
    #[error("编号为 {report_id} 的服务报告已经存在")]
    DuplicateReport { report_id: ServiceReportId },
    #[error("该服务机构没有编号为 {report_id} 的服务报告")]
    UnknownReport { report_id: ServiceReportId },
    #[error("服务时间不能晚于当前时间：尚未发生的服务不能报送")]
    VisitInFuture,
    #[error("服务报告 {report_id} 只能由接受服务的企业（{served}）评价")]
    NotServedEnterprise {
        report_id: ServiceReportId,
        served: EnterpriseId,
    },
    #[error("服务报告 {report_id} 已经评价过")]
    AlreadyRated { report_id: ServiceReportId },
    #[error("评价应为1至5星，收到的是 {stars}")]
    StarsOutOfRange { stars: i64 },
    #[error("服务报告 {report_id} 已经抽查过")]
    AlreadySpotChecked { report_id: ServiceReportId },
    #[error("报告期 {half_year} 不是半年度（应写作如 2026-H1），或该半年度尚未开始")]
    InvalidHalfYear { half_year: Period },
    #[error("{half_year} 的信用等级已经正式评定；如需改变，请重新评定并写明理由")]
    AlreadyGraded { half_year: Period },
    #[error("评定等级 {} 与计算得出的等级 {} 不同，须写明理由", grade_label(*.grade), grade_label(*.computed))]
    GradeReasonRequired {
        grade: Option<Grade>,
        computed: Option<Grade>,
    },
    /// The half-year shows too little activity or evidence to be graded; only D (misconduct
    /// found by other means, with a reason) or "not graded" may be recorded.
    #[error("{reason}，不能评为 {grade}")]
    NotGradable { grade: Grade, reason: String },
    #[error("{half_year} 尚无正式信用等级，不能重新评定")]
    NotFinallyGraded { half_year: Period },
    #[error("拒不整改须在约谈之后才能认定")]
    NoSummons,
    #[error("删除理由不能包含要删除的个人信息")]
    ReasonNamesPerson,
}

impl crate::aggregate::DomainRejection for AgencyRejection {
    fn code(&self) -> &'static str {
        AgencyRejection::code(self)
    }

    fn details(&self) -> Details {
        AgencyRejection::details(self)
    }
}

/// A grade as a person reads it: the letter, or 未评级.
fn grade_label(grade: Option<Grade>) -> &'static str {
    grade.map_or("未评级", Grade::letter)
}

impl AgencyRejection {
    pub(crate) fn forbidden(action: &'static str, actor: &Actor) -> Self {
        AgencyRejection::Forbidden {
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
            AgencyRejection::Forbidden { actor_role, .. } => vec![("role", (*actor_role).into())],
            AgencyRejection::UnknownAgency { agency_id }
            | AgencyRejection::AlreadyRegistered { agency_id }
            | AgencyRejection::Blacklisted { agency_id }
            | AgencyRejection::NotBlacklisted { agency_id } => vec![("agencyId", text(agency_id))],
            AgencyRejection::InvalidField { field, problem } => problem.details(field),
            AgencyRejection::ValueOutOfRange(out_of_range) => out_of_range.details(),
            AgencyRejection::InvalidFeeBand { min_yuan, max_yuan } => {
                vec![("minYuan", text(min_yuan)), ("maxYuan", text(max_yuan))]
            }
            AgencyRejection::NotContractEnterprise {
                contract_id,
                enterprise_id,
            } => vec![("contractId", text(contract_id)), ("enterpriseId", text(enterprise_id))],
            AgencyRejection::NotContractTown { contract_id, town } => {
                vec![("contractId", text(contract_id)), ("town", text(town))]
            }
            AgencyRejection::FeeExceptionReasonRequired { contract_id, fee_check } => vec![
                ("contractId", text(contract_id)),
                ("feeCheck", serde_json::to_value(fee_check).unwrap_or_default()),
            ],
            AgencyRejection::ContractAlreadyAnswered { contract_id }
            | AgencyRejection::ContractRejected { contract_id }
            | AgencyRejection::ContractNotConfirmed { contract_id }
            | AgencyRejection::ContractAlreadyFiled { contract_id }
            | AgencyRejection::ContractNotFiled { contract_id }
            | AgencyRejection::DuplicateContract { contract_id }
            | AgencyRejection::UnknownContract { contract_id }
            | AgencyRejection::ContractTerminated { contract_id }
            | AgencyRejection::ContractNotInForce { contract_id } => vec![("contractId", text(contract_id))],
            AgencyRejection::InvalidContractPeriod
            | AgencyRejection::VisitInFuture
            | AgencyRejection::NoSummons
            | AgencyRejection::ReasonNamesPerson => Vec::new(),
            AgencyRejection::UnknownStaff { staff_id } | AgencyRejection::DuplicateStaff { staff_id } => {
                vec![("staffId", text(staff_id))]
            }
            AgencyRejection::DuplicateReport { report_id }
            | AgencyRejection::UnknownReport { report_id }
            | AgencyRejection::AlreadyRated { report_id }
            | AgencyRejection::AlreadySpotChecked { report_id } => vec![("reportId", text(report_id))],
            AgencyRejection::NotServedEnterprise { report_id, served } => {
                vec![("reportId", text(report_id)), ("servedEnterpriseId", text(served))]
            }
            AgencyRejection::StarsOutOfRange { stars } => {
                vec![("stars", text(stars)), ("min", 1.into()), ("max", 5.into())]
            }
            AgencyRejection::InvalidHalfYear { half_year }
            | AgencyRejection::AlreadyGraded { half_year }
            | AgencyRejection::NotFinallyGraded { half_year } => {
                vec![("halfYear", text(half_year))]
            }
            AgencyRejection::GradeReasonRequired { grade, computed } => {
                let letter = |grade: &Option<Grade>| grade.map_or(serde_json::Value::Null, |grade| text(&grade));
                vec![("grade", letter(grade)), ("computedGrade", letter(computed))]
            }
            AgencyRejection::NotGradable { grade, reason } => {
                vec![("grade", text(grade)), ("notGradedReason", text(reason))]
            }
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
            AgencyRejection::NotContractEnterprise { .. } => "NOT_CONTRACT_ENTERPRISE",
            AgencyRejection::NotContractTown { .. } => "NOT_CONTRACT_TOWN",
            AgencyRejection::ContractAlreadyAnswered { .. } => "CONTRACT_ALREADY_ANSWERED",
            AgencyRejection::ContractRejected { .. } => "CONTRACT_REJECTED",
            AgencyRejection::ContractNotConfirmed { .. } => "CONTRACT_NOT_CONFIRMED",
            AgencyRejection::ContractAlreadyFiled { .. } => "CONTRACT_ALREADY_FILED",
            AgencyRejection::FeeExceptionReasonRequired { .. } => "FEE_EXCEPTION_REASON_REQUIRED",
            AgencyRejection::ContractNotFiled { .. } => "CONTRACT_NOT_FILED",
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
            AgencyRejection::NotGradable { .. } => "NOT_GRADABLE",
            AgencyRejection::NotFinallyGraded { .. } => "NOT_FINALLY_GRADED",
            AgencyRejection::NoSummons => "NO_SUMMONS",
            AgencyRejection::ReasonNamesPerson => "REASON_NAMES_PERSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The position of each variant in the samples below. Adding a variant breaks this match,
    /// and the test then fails until a sample of it is added.
    fn variant_index(rejection: &AgencyRejection) -> usize {
        match rejection {
            AgencyRejection::Forbidden { .. } => 0,
            AgencyRejection::UnknownAgency { .. } => 1,
            AgencyRejection::AlreadyRegistered { .. } => 2,
            AgencyRejection::InvalidField { .. } => 3,
            AgencyRejection::ValueOutOfRange(_) => 4,
            AgencyRejection::InvalidFeeBand { .. } => 5,
            AgencyRejection::Blacklisted { .. } => 6,
            AgencyRejection::NotBlacklisted { .. } => 7,
            AgencyRejection::DuplicateContract { .. } => 8,
            AgencyRejection::UnknownContract { .. } => 9,
            AgencyRejection::ContractTerminated { .. } => 10,
            AgencyRejection::ContractNotInForce { .. } => 11,
            AgencyRejection::InvalidContractPeriod => 12,
            AgencyRejection::UnknownStaff { .. } => 13,
            AgencyRejection::DuplicateStaff { .. } => 14,
            AgencyRejection::DuplicateReport { .. } => 15,
            AgencyRejection::UnknownReport { .. } => 16,
            AgencyRejection::VisitInFuture => 17,
            AgencyRejection::NotServedEnterprise { .. } => 18,
            AgencyRejection::AlreadyRated { .. } => 19,
            AgencyRejection::StarsOutOfRange { .. } => 20,
            AgencyRejection::AlreadySpotChecked { .. } => 21,
            AgencyRejection::InvalidHalfYear { .. } => 22,
            AgencyRejection::AlreadyGraded { .. } => 23,
            AgencyRejection::GradeReasonRequired { .. } => 24,
            AgencyRejection::NoSummons => 25,
            AgencyRejection::ReasonNamesPerson => 26,
            AgencyRejection::NotGradable { .. } => 27,
            AgencyRejection::NotFinallyGraded { .. } => 28,
            AgencyRejection::NotContractEnterprise { .. } => 29,
            AgencyRejection::NotContractTown { .. } => 30,
            AgencyRejection::ContractAlreadyAnswered { .. } => 31,
            AgencyRejection::ContractRejected { .. } => 32,
            AgencyRejection::ContractNotConfirmed { .. } => 33,
            AgencyRejection::ContractAlreadyFiled { .. } => 34,
            AgencyRejection::FeeExceptionReasonRequired { .. } => 35,
            AgencyRejection::ContractNotFiled { .. } => 36,
        }
    }

    fn samples() -> Vec<AgencyRejection> {
        let agency_id = AgencyId::from_uuid(uuid::Uuid::from_u128(1));
        let contract_id = ContractId::from_uuid(uuid::Uuid::from_u128(2));
        let report_id = ServiceReportId::from_uuid(uuid::Uuid::from_u128(3));
        let staff_id = StaffId::from_uuid(uuid::Uuid::from_u128(4));
        let half_year: Period = "2026-H1".parse().unwrap();
        let actor = Actor {
            user_id: crate::UserId::parse("li").unwrap(),
            role: crate::Role::Analyst,
        };
        vec![
            AgencyRejection::forbidden("抽查服务报告", &actor),
            AgencyRejection::UnknownAgency { agency_id },
            AgencyRejection::AlreadyRegistered { agency_id },
            AgencyRejection::InvalidField {
                field: "staffIds",
                problem: FieldProblem::NoItems,
            },
            crate::bounds::check_yuan("feeYuan", u64::MAX).unwrap_err().into(),
            AgencyRejection::InvalidFeeBand {
                min_yuan: 2,
                max_yuan: 1,
            },
            AgencyRejection::Blacklisted { agency_id },
            AgencyRejection::NotBlacklisted { agency_id },
            AgencyRejection::DuplicateContract { contract_id },
            AgencyRejection::UnknownContract { contract_id },
            AgencyRejection::ContractTerminated { contract_id },
            AgencyRejection::ContractNotInForce { contract_id },
            AgencyRejection::InvalidContractPeriod,
            AgencyRejection::UnknownStaff { staff_id },
            AgencyRejection::DuplicateStaff { staff_id },
            AgencyRejection::DuplicateReport { report_id },
            AgencyRejection::UnknownReport { report_id },
            AgencyRejection::VisitInFuture,
            AgencyRejection::NotServedEnterprise {
                report_id,
                served: EnterpriseId::from_uuid(uuid::Uuid::from_u128(5)),
            },
            AgencyRejection::AlreadyRated { report_id },
            AgencyRejection::StarsOutOfRange { stars: 6 },
            AgencyRejection::AlreadySpotChecked { report_id },
            AgencyRejection::InvalidHalfYear { half_year },
            AgencyRejection::AlreadyGraded { half_year },
            AgencyRejection::GradeReasonRequired {
                grade: Some(Grade::A),
                computed: Some(Grade::B),
            },
            AgencyRejection::NoSummons,
            AgencyRejection::ReasonNamesPerson,
            AgencyRejection::NotGradable {
                grade: Grade::A,
                reason: "未评级：该半年度服务报告 0 份，少于 2 份".to_owned(),
            },
            AgencyRejection::NotFinallyGraded { half_year },
            AgencyRejection::NotContractEnterprise {
                contract_id,
                enterprise_id: EnterpriseId::from_uuid(uuid::Uuid::from_u128(5)),
            },
            AgencyRejection::NotContractTown {
                contract_id,
                town: crate::ids::Town::parse("许村").unwrap(),
            },
            AgencyRejection::ContractAlreadyAnswered { contract_id },
            AgencyRejection::ContractRejected { contract_id },
            AgencyRejection::ContractNotConfirmed { contract_id },
            AgencyRejection::ContractAlreadyFiled { contract_id },
            AgencyRejection::FeeExceptionReasonRequired {
                contract_id,
                fee_check: FeeCheck::AboveBand,
            },
            AgencyRejection::ContractNotFiled { contract_id },
        ]
    }

    #[test]
    fn every_rejection_tells_a_person_in_chinese_and_a_program_in_an_english_code() {
        crate::refusal::assert_every_variant_speaks_to_both_audiences(&samples(), variant_index, 37);
    }

    #[test]
    fn an_amount_out_of_range_names_the_field_and_the_limit_for_programs() {
        let rejection: AgencyRejection = crate::bounds::check_yuan("feeYuan", u64::MAX).unwrap_err().into();
        assert_eq!(
            rejection.to_string(),
            format!("服务费用为 {}，超过了上限 {}", u64::MAX, crate::bounds::YUAN_MAX)
        );
        let details = rejection.details();
        assert!(details.contains(&("field", "feeYuan".into())), "{details:?}");
        assert!(
            details.contains(&("max", crate::bounds::YUAN_MAX.to_string().into())),
            "{details:?}"
        );
    }
}
