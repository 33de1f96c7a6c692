//! Commands on the agency stream and the `decide` function that turns them into events.

use std::collections::BTreeSet;

use chrono::Duration;

use super::event::{
    AgencyBlacklisted, AgencyComplaintFounded, AgencyDelisted, AgencyMisconductFound, AgencyProfile,
    AgencyProfileChanged, AgencyRegistered, AgencyWarned, ContractConfirmed, ContractFiled, ContractProposed,
    ContractRejected, ContractTerminated, CreditGraded, CreditRegraded, DataSubjectErased, ErasedStaffEntry, FeeCheck,
    HazardLevel, ReportSpotChecked, ReportedHazard, ServiceRated, ServiceReported, StaffMember, StaffReported,
    WarningKind,
};
use super::rejection::AgencyRejection;
use super::state::{AgencyRecord, AgencyState, ContractRecord, ContractStatus};
use crate::Instant;
use crate::actor::{Actor, Role};
pub use crate::aggregate::DecisionContext;
use crate::bounds::{self, OutOfRange};
use crate::credit::{Grade, MisconductKind, compute_score};
use crate::enterprise::FileRef;
use crate::event::Event;
use crate::ids::{AgencyId, ContractId, EnterpriseId, ServiceReportId, StaffId, Town};
use crate::period::{Cadence, Period};
use crate::personal::{DataSubject, ERASED};
use crate::refusal::FieldProblem;

/// Longest name (agency, staff), in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// Longest free text (standards, findings, reasons, comments), in characters.
pub const TEXT_CHARS_MAX: usize = 4000;
/// Longest short label (licence, certificate number, phone, scope item), in characters.
pub const LABEL_CHARS_MAX: usize = 100;
/// Most items in a list (scope items, services, staff, hazards, photos).
pub const LIST_ITEMS_MAX: usize = 500;

/// Register an agency (city admin). The id is chosen by the caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegisterAgency {
    pub agency_id: AgencyId,
    pub profile: AgencyProfile,
}

/// Change an agency's published profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeAgencyProfile {
    pub agency_id: AgencyId,
    pub profile: AgencyProfile,
}

/// Report the staff of a half-year; replaces that half-year's list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportStaff {
    pub agency_id: AgencyId,
    pub half_year: Period,
    pub staff: Vec<StaffMember>,
}

/// Propose a service contract to a registered enterprise (the agency). The API checked that the
/// enterprise is registered and supplies its town. The contract counts once the enterprise has
/// confirmed it and the town officer has filed it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProposeContract {
    pub agency_id: AgencyId,
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    /// Read by the API, not given by the client: left out of the command's canonical form, so a
    /// retry after the enterprise moved town is still the same command.
    #[serde(skip_serializing)]
    pub enterprise_town: Town,
    pub valid_from: Instant,
    pub valid_until: Instant,
    pub services: Vec<String>,
    pub visits_promised: u32,
    pub fee_yuan: u64,
}

/// Confirm a proposed contract (the enterprise's own user).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfirmContract {
    pub agency_id: AgencyId,
    pub contract_id: ContractId,
}

/// Reject a proposed contract, with a reason (the enterprise's own user).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectContract {
    pub agency_id: AgencyId,
    pub contract_id: ContractId,
    pub reason: String,
}

/// File (备案) a confirmed contract (the officer of the enterprise's town). A fee outside the
/// agency's band needs an exception reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileContract {
    pub agency_id: AgencyId,
    pub contract_id: ContractId,
    pub exception_reason: Option<String>,
}

/// End a contract early: before filing, the agency withdraws it; after, it stops counting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TerminateContract {
    pub agency_id: AgencyId,
    pub contract_id: ContractId,
    pub reason: String,
}

/// A hazard as the agency reports it; its index is given by its place in the list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HazardReport {
    pub category: String,
    pub level: HazardLevel,
    pub description: String,
    pub photos: Vec<FileRef>,
    pub suggested_deadline: Option<Instant>,
}

/// Report a service visit under a contract.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportService {
    pub agency_id: AgencyId,
    pub report_id: ServiceReportId,
    pub contract_id: ContractId,
    pub visited_at: Instant,
    pub staff_ids: Vec<StaffId>,
    pub findings: String,
    pub hazards: Vec<HazardReport>,
    pub photos: Vec<FileRef>,
    pub report_file: FileRef,
}

/// Rate a service record, 1 to 5 stars (the served enterprise, once).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RateService {
    pub agency_id: AgencyId,
    pub report_id: ServiceReportId,
    /// Checked to be 1..=5 by `decide`, so out-of-range input is a rule, not a parse error.
    pub stars: i64,
    pub comment: Option<String>,
}

/// Record the city's quality verdict on a sampled report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpotCheckReport {
    pub agency_id: AgencyId,
    pub report_id: ServiceReportId,
    pub qualified: bool,
    pub note: Option<String>,
}

/// Record a founded complaint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundComplaint {
    pub agency_id: AgencyId,
    pub complaint: String,
}

/// Issue a warning notice or a summons.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WarnAgency {
    pub agency_id: AgencyId,
    pub kind: WarningKind,
    pub reason: String,
}

/// Record misconduct found by the city.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordMisconduct {
    pub agency_id: AgencyId,
    pub kind: MisconductKind,
    pub report_id: Option<ServiceReportId>,
    pub reason: String,
}

/// Grade a half-year: the computed score is decided from the agency's facts; the official gives
/// the grade (`None`: not graded; with a reason when it differs from the computed one) and the
/// count of missed findings. Before the half-year ends the grade is provisional and may be
/// given again; after, it is final and given once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GradeAgency {
    pub agency_id: AgencyId,
    pub half_year: Period,
    pub missed_findings: u32,
    pub grade: Option<Grade>,
    pub reason: Option<String>,
}

/// Change a half-year's final grade (city admin), with a reason: the score is recomputed from
/// the facts known now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegradeAgency {
    pub agency_id: AgencyId,
    pub half_year: Period,
    pub missed_findings: u32,
    pub grade: Option<Grade>,
    pub reason: String,
}

/// Put an agency on the blacklist, or take it off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeBlacklist {
    pub agency_id: AgencyId,
    pub blacklisted: bool,
    pub reason: String,
}

/// Erase a data subject's personal data (city admin): the store deletes the subject's key once
/// the event is appended. The reason must not name the person.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EraseDataSubject {
    pub subject: DataSubject,
    pub reason: String,
}

/// Every command of the agency stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum AgencyCommand {
    Register(RegisterAgency),
    ChangeProfile(ChangeAgencyProfile),
    ReportStaff(ReportStaff),
    ProposeContract(ProposeContract),
    ConfirmContract(ConfirmContract),
    RejectContract(RejectContract),
    FileContract(FileContract),
    TerminateContract(TerminateContract),
    ReportService(ReportService),
    RateService(RateService),
    SpotCheckReport(SpotCheckReport),
    FoundComplaint(FoundComplaint),
    Warn(WarnAgency),
    RecordMisconduct(RecordMisconduct),
    Grade(GradeAgency),
    Regrade(RegradeAgency),
    ChangeBlacklist(ChangeBlacklist),
    EraseDataSubject(EraseDataSubject),
}

impl AgencyCommand {
    /// Checks every value the command carries against the platform's bounds (`crate::bounds`),
    /// before anything else is decided.
    pub fn check_bounds(&self) -> Result<(), OutOfRange> {
        match self {
            AgencyCommand::Register(RegisterAgency { profile, .. })
            | AgencyCommand::ChangeProfile(ChangeAgencyProfile { profile, .. }) => {
                bounds::check_yuan("profile.feeBand.minYuan", profile.fee_band.min_yuan)?;
                bounds::check_yuan("profile.feeBand.maxYuan", profile.fee_band.max_yuan)
            }
            AgencyCommand::ReportStaff(c) => bounds::check_period("halfYear", &c.half_year),
            AgencyCommand::ProposeContract(c) => {
                bounds::check_instant("validFrom", c.valid_from)?;
                bounds::check_instant("validUntil", c.valid_until)?;
                bounds::check_count("visitsPromised", u64::from(c.visits_promised))?;
                bounds::check_yuan("feeYuan", c.fee_yuan)
            }
            AgencyCommand::ReportService(c) => {
                bounds::check_instant("visitedAt", c.visited_at)?;
                c.hazards.iter().try_for_each(|hazard| {
                    bounds::check_optional_instant("hazards.suggestedDeadline", hazard.suggested_deadline)
                })
            }
            AgencyCommand::Grade(GradeAgency {
                half_year,
                missed_findings,
                ..
            })
            | AgencyCommand::Regrade(RegradeAgency {
                half_year,
                missed_findings,
                ..
            }) => {
                bounds::check_period("halfYear", half_year)?;
                bounds::check_count("missedFindings", u64::from(*missed_findings))
            }
            AgencyCommand::TerminateContract(_)
            | AgencyCommand::ConfirmContract(_)
            | AgencyCommand::RejectContract(_)
            | AgencyCommand::FileContract(_)
            | AgencyCommand::RateService(_)
            | AgencyCommand::SpotCheckReport(_)
            | AgencyCommand::FoundComplaint(_)
            | AgencyCommand::Warn(_)
            | AgencyCommand::RecordMisconduct(_)
            | AgencyCommand::ChangeBlacklist(_)
            | AgencyCommand::EraseDataSubject(_) => Ok(()),
        }
    }

    /// Returns the agency whose stream the command goes to.
    pub fn agency_id(&self) -> AgencyId {
        match self {
            AgencyCommand::Register(c) => c.agency_id,
            AgencyCommand::ChangeProfile(c) => c.agency_id,
            AgencyCommand::ReportStaff(c) => c.agency_id,
            AgencyCommand::ProposeContract(c) => c.agency_id,
            AgencyCommand::ConfirmContract(c) => c.agency_id,
            AgencyCommand::RejectContract(c) => c.agency_id,
            AgencyCommand::FileContract(c) => c.agency_id,
            AgencyCommand::TerminateContract(c) => c.agency_id,
            AgencyCommand::ReportService(c) => c.agency_id,
            AgencyCommand::RateService(c) => c.agency_id,
            AgencyCommand::SpotCheckReport(c) => c.agency_id,
            AgencyCommand::FoundComplaint(c) => c.agency_id,
            AgencyCommand::Warn(c) => c.agency_id,
            AgencyCommand::RecordMisconduct(c) => c.agency_id,
            AgencyCommand::Grade(c) => c.agency_id,
            AgencyCommand::Regrade(c) => c.agency_id,
            AgencyCommand::ChangeBlacklist(c) => c.agency_id,
            AgencyCommand::EraseDataSubject(c) => c.subject.agency_id(),
        }
    }

    /// Returns the command's name for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            AgencyCommand::Register(_) => "register_agency",
            AgencyCommand::ChangeProfile(_) => "change_agency_profile",
            AgencyCommand::ReportStaff(_) => "report_agency_staff",
            AgencyCommand::ProposeContract(_) => "propose_service_contract",
            AgencyCommand::ConfirmContract(_) => "confirm_service_contract",
            AgencyCommand::RejectContract(_) => "reject_service_contract",
            AgencyCommand::FileContract(_) => "file_service_contract",
            AgencyCommand::TerminateContract(_) => "terminate_service_contract",
            AgencyCommand::ReportService(_) => "report_service",
            AgencyCommand::RateService(_) => "rate_service",
            AgencyCommand::SpotCheckReport(_) => "spot_check_service_report",
            AgencyCommand::FoundComplaint(_) => "found_agency_complaint",
            AgencyCommand::Warn(_) => "warn_agency",
            AgencyCommand::RecordMisconduct(_) => "record_agency_misconduct",
            AgencyCommand::Grade(_) => "grade_agency",
            AgencyCommand::Regrade(_) => "regrade_agency",
            AgencyCommand::ChangeBlacklist(_) => "change_agency_blacklist",
            AgencyCommand::EraseDataSubject(_) => "erase_data_subject",
        }
    }
}

impl AgencyState {
    /// Tells whether the actor may issue the command against this agency: every scope check of
    /// the agency stream, in one place. A command on an unregistered agency (other than
    /// registering it) is `UNKNOWN_AGENCY`, and a rating of an unknown report `UNKNOWN_REPORT`,
    /// as `decide` has always answered first.
    pub fn authorise(&self, command: &AgencyCommand, actor: &Actor) -> Result<(), AgencyRejection> {
        let city_admin = |action| match actor.role {
            Role::CityAdmin => Ok(()),
            _ => Err(AgencyRejection::forbidden(action, actor)),
        };
        let act_for = |action| {
            if actor.may_act_for_agency(command.agency_id()) {
                Ok(())
            } else {
                Err(AgencyRejection::forbidden(action, actor))
            }
        };
        // Read-only roles are refused before anything about the agency is looked at.
        if !actor.role.may_write() {
            return Err(AgencyRejection::forbidden("修改任何数据", actor));
        }
        if let AgencyCommand::Register(_) = command {
            return city_admin("登记服务机构");
        }
        self.registered(command.agency_id())?;
        match command {
            AgencyCommand::Register(_) => city_admin("登记服务机构"),
            AgencyCommand::ChangeProfile(_) => act_for("修改该服务机构的基本信息"),
            AgencyCommand::ReportStaff(_) => act_for("报送该服务机构的人员名单"),
            AgencyCommand::ProposeContract(_) => act_for("以该服务机构名义提出服务合同"),
            AgencyCommand::ConfirmContract(ConfirmContract { contract_id, .. })
            | AgencyCommand::RejectContract(RejectContract { contract_id, .. }) => {
                let Role::Enterprise { enterprise_id } = &actor.role else {
                    return Err(AgencyRejection::forbidden("确认或拒绝服务合同", actor));
                };
                let contract = self.contract(*contract_id)?;
                if *enterprise_id == contract.enterprise_id {
                    Ok(())
                } else {
                    Err(AgencyRejection::NotContractEnterprise {
                        contract_id: *contract_id,
                        enterprise_id: contract.enterprise_id,
                    })
                }
            }
            AgencyCommand::FileContract(c) => {
                let Role::TownOfficer { town } = &actor.role else {
                    return Err(AgencyRejection::forbidden("备案服务合同", actor));
                };
                let contract = self.contract(c.contract_id)?;
                if *town == contract.enterprise_town {
                    Ok(())
                } else {
                    Err(AgencyRejection::NotContractTown {
                        contract_id: c.contract_id,
                        town: contract.enterprise_town.clone(),
                    })
                }
            }
            AgencyCommand::TerminateContract(_) => act_for("解除该服务机构的合同"),
            AgencyCommand::ReportService(_) => act_for("以该服务机构名义报送服务报告"),
            AgencyCommand::RateService(c) => {
                let report = self.report(c.report_id)?;
                match &actor.role {
                    Role::Enterprise { enterprise_id } if *enterprise_id == report.enterprise_id => Ok(()),
                    Role::Enterprise { .. } => Err(AgencyRejection::NotServedEnterprise {
                        report_id: c.report_id,
                        served: report.enterprise_id,
                    }),
                    _ => Err(AgencyRejection::forbidden("评价服务", actor)),
                }
            }
            AgencyCommand::SpotCheckReport(_) => city_admin("抽查服务报告"),
            AgencyCommand::FoundComplaint(_) => city_admin("认定投诉成立"),
            AgencyCommand::Warn(_) => city_admin("对服务机构作出警示"),
            AgencyCommand::RecordMisconduct(_) => city_admin("记录服务机构的违规行为"),
            AgencyCommand::Grade(_) => city_admin("评定服务机构的信用等级"),
            AgencyCommand::Regrade(_) => city_admin("重新评定服务机构的信用等级"),
            AgencyCommand::ChangeBlacklist(_) => city_admin("调整黑名单"),
            AgencyCommand::EraseDataSubject(_) => city_admin("删除个人信息"),
        }
    }

    /// Decides a command against the agency's current state: the events to append, or why not.
    pub fn decide(
        &self,
        command: &AgencyCommand,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        let events = self.decide_events(command, context)?;
        bounds::check_events(&events)?;
        Ok(events)
    }

    fn decide_events(
        &self,
        command: &AgencyCommand,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        self.authorise(command, context.actor)?;
        command.check_bounds()?;
        if let AgencyCommand::Register(command) = command {
            return self.decide_register(command, context);
        }
        let agency = self.registered(command.agency_id())?;
        match command {
            AgencyCommand::Register(_) => Ok(Vec::new()),
            AgencyCommand::ChangeProfile(c) => {
                check_profile(&c.profile)?;
                Ok(vec![Event::AgencyProfileChanged(AgencyProfileChanged {
                    profile: clean_profile(&c.profile),
                    changed_at: context.now,
                })])
            }
            AgencyCommand::ReportStaff(c) => self.decide_report_staff(c, context),
            AgencyCommand::ProposeContract(c) => self.decide_propose(agency, c, context),
            AgencyCommand::ConfirmContract(c) => {
                let contract = self.open_contract(c.contract_id)?;
                if contract.status != ContractStatus::Proposed {
                    return Err(AgencyRejection::ContractAlreadyAnswered {
                        contract_id: c.contract_id,
                    });
                }
                Ok(vec![Event::ContractConfirmed(ContractConfirmed {
                    contract_id: c.contract_id,
                    enterprise_id: contract.enterprise_id,
                    confirmed_at: context.now,
                })])
            }
            AgencyCommand::RejectContract(c) => {
                let contract = self.open_contract(c.contract_id)?;
                if contract.status != ContractStatus::Proposed {
                    return Err(AgencyRejection::ContractAlreadyAnswered {
                        contract_id: c.contract_id,
                    });
                }
                Ok(vec![Event::ContractRejected(ContractRejected {
                    contract_id: c.contract_id,
                    enterprise_id: contract.enterprise_id,
                    reason: text("reason", &c.reason, TEXT_CHARS_MAX)?,
                    rejected_at: context.now,
                })])
            }
            AgencyCommand::FileContract(c) => self.decide_file(agency, c, context),
            AgencyCommand::TerminateContract(c) => self.decide_terminate(c, context),
            AgencyCommand::ReportService(c) => self.decide_report_service(c, context),
            AgencyCommand::RateService(c) => self.decide_rate(c, context),
            AgencyCommand::SpotCheckReport(c) => {
                let report = self.report(c.report_id)?;
                if report.spot_check.is_some() {
                    return Err(AgencyRejection::AlreadySpotChecked { report_id: c.report_id });
                }
                let note = optional_text("note", c.note.as_deref(), TEXT_CHARS_MAX)?;
                Ok(vec![Event::ReportSpotChecked(ReportSpotChecked {
                    report_id: c.report_id,
                    qualified: c.qualified,
                    note,
                    checked_at: context.now,
                })])
            }
            AgencyCommand::FoundComplaint(c) => Ok(vec![Event::AgencyComplaintFounded(AgencyComplaintFounded {
                complaint: text("complaint", &c.complaint, TEXT_CHARS_MAX)?,
                decided_at: context.now,
            })]),
            AgencyCommand::Warn(c) => Ok(vec![Event::AgencyWarned(AgencyWarned {
                kind: c.kind,
                reason: text("reason", &c.reason, TEXT_CHARS_MAX)?,
                issued_at: context.now,
            })]),
            AgencyCommand::RecordMisconduct(c) => self.decide_misconduct(c, context),
            AgencyCommand::Grade(c) => self.decide_grade(c, context),
            AgencyCommand::Regrade(c) => self.decide_regrade(c, context),
            AgencyCommand::ChangeBlacklist(c) => self.decide_blacklist(agency, c, context),
            AgencyCommand::EraseDataSubject(c) => self.decide_erase(agency, c, context),
        }
    }

    fn decide_erase(
        &self,
        agency: &AgencyRecord,
        command: &EraseDataSubject,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        let reason = text("reason", &command.reason, TEXT_CHARS_MAX)?;
        let (personal, staff_entries): (Vec<&str>, Vec<ErasedStaffEntry>) = match &command.subject {
            DataSubject::Staff { staff_id, .. } => {
                let mut values = Vec::new();
                let mut entries = Vec::new();
                for (half_year, report) in &self.staff_reports {
                    for member in report.staff.iter().filter(|member| member.staff_id == *staff_id) {
                        values.push(member.name.as_str());
                        values.extend(member.phone.as_deref());
                        values.extend(member.qualifications.iter().map(|q| q.certificate_number.as_str()));
                        entries.push(ErasedStaffEntry {
                            half_year: *half_year,
                            qualifications: member.qualifications.iter().map(|q| q.kind).collect(),
                            had_phone: member.phone.is_some(),
                        });
                    }
                }
                if entries.is_empty() {
                    return Err(AgencyRejection::UnknownStaff { staff_id: *staff_id });
                }
                (values, entries)
            }
            DataSubject::AgencyContact { .. } => (
                agency.profile.contact_phone.as_deref().into_iter().collect(),
                Vec::new(),
            ),
        };
        // The event is kept forever: a reason that repeats what is erased would keep it.
        if personal.iter().any(|value| *value != ERASED && reason.contains(value)) {
            return Err(AgencyRejection::ReasonNamesPerson);
        }
        Ok(vec![Event::DataSubjectErased(DataSubjectErased {
            subject: command.subject.clone(),
            reason,
            staff_entries,
            erased_at: context.now,
        })])
    }

    fn decide_register(
        &self,
        command: &RegisterAgency,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        if self.registration.is_some() {
            return Err(AgencyRejection::AlreadyRegistered {
                agency_id: command.agency_id,
            });
        }
        check_profile(&command.profile)?;
        Ok(vec![Event::AgencyRegistered(AgencyRegistered {
            agency_id: command.agency_id,
            profile: clean_profile(&command.profile),
            registered_at: context.now,
        })])
    }

    fn decide_report_staff(
        &self,
        command: &ReportStaff,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        let start = started_half_year(command.half_year, context)?;
        check_count("staff", command.staff.len())?;
        let mut seen = BTreeSet::new();
        let mut staff = Vec::with_capacity(command.staff.len());
        for member in &command.staff {
            if !seen.insert(member.staff_id) {
                return Err(AgencyRejection::DuplicateStaff {
                    staff_id: member.staff_id,
                });
            }
            check_count("qualifications", member.qualifications.len())?;
            let mut qualifications = member.qualifications.clone();
            for qualification in &mut qualifications {
                qualification.certificate_number =
                    text("certificateNumber", &qualification.certificate_number, LABEL_CHARS_MAX)?;
            }
            staff.push(StaffMember {
                staff_id: member.staff_id,
                name: text("staff.name", &member.name, NAME_CHARS_MAX)?,
                qualifications,
                phone: optional_text("phone", member.phone.as_deref(), LABEL_CHARS_MAX)?,
            });
        }
        let due_at = bounds::plus(
            start,
            Duration::days(i64::from(context.rules.credit.staff.report_due_days)),
        );
        Ok(vec![Event::StaffReported(StaffReported {
            half_year: command.half_year,
            staff,
            due_at,
            late: context.now > due_at,
            reported_at: context.now,
        })])
    }

    fn decide_propose(
        &self,
        agency: &AgencyRecord,
        command: &ProposeContract,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        if self.is_blacklisted() {
            return Err(AgencyRejection::Blacklisted {
                agency_id: agency.agency_id,
            });
        }
        if self.contracts.contains_key(&command.contract_id) {
            return Err(AgencyRejection::DuplicateContract {
                contract_id: command.contract_id,
            });
        }
        if command.valid_from >= command.valid_until {
            return Err(AgencyRejection::InvalidContractPeriod);
        }
        let services = labels("services", &command.services)?;
        let band = agency.profile.fee_band;
        let fee_check = if context
            .rules
            .credit
            .fee_within_band(command.fee_yuan, band.min_yuan, band.max_yuan)
        {
            FeeCheck::WithinBand
        } else if command.fee_yuan < band.min_yuan {
            FeeCheck::BelowBand
        } else {
            FeeCheck::AboveBand
        };
        Ok(vec![Event::ContractProposed(ContractProposed {
            contract_id: command.contract_id,
            enterprise_id: command.enterprise_id,
            enterprise_town: command.enterprise_town.clone(),
            valid_from: command.valid_from,
            valid_until: command.valid_until,
            services,
            visits_promised: command.visits_promised,
            fee_yuan: command.fee_yuan,
            fee_band: band,
            fee_check,
            proposed_at: context.now,
        })])
    }

    fn decide_file(
        &self,
        agency: &AgencyRecord,
        command: &FileContract,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        let contract = self.open_contract(command.contract_id)?;
        match contract.status {
            ContractStatus::Proposed => {
                return Err(AgencyRejection::ContractNotConfirmed {
                    contract_id: command.contract_id,
                });
            }
            ContractStatus::Filed => {
                return Err(AgencyRejection::ContractAlreadyFiled {
                    contract_id: command.contract_id,
                });
            }
            ContractStatus::Rejected | ContractStatus::Confirmed => {}
        }
        if self.is_blacklisted() {
            return Err(AgencyRejection::Blacklisted {
                agency_id: agency.agency_id,
            });
        }
        let exception_reason = optional_text("exceptionReason", command.exception_reason.as_deref(), TEXT_CHARS_MAX)?;
        if contract.fee_check != FeeCheck::WithinBand && exception_reason.is_none() {
            return Err(AgencyRejection::FeeExceptionReasonRequired {
                contract_id: command.contract_id,
                fee_check: contract.fee_check,
            });
        }
        Ok(vec![Event::ContractFiled(ContractFiled {
            contract_id: command.contract_id,
            enterprise_id: contract.enterprise_id,
            enterprise_town: contract.enterprise_town.clone(),
            fee_check: contract.fee_check,
            fee_exception_reason: exception_reason,
            filed_at: context.now,
        })])
    }

    fn contract(&self, contract_id: ContractId) -> Result<&ContractRecord, AgencyRejection> {
        self.contracts
            .get(&contract_id)
            .ok_or(AgencyRejection::UnknownContract { contract_id })
    }

    /// A contract the parties or the officer may still act on: neither rejected nor terminated.
    fn open_contract(&self, contract_id: ContractId) -> Result<&ContractRecord, AgencyRejection> {
        let contract = self.contract(contract_id)?;
        if contract.status == ContractStatus::Rejected {
            return Err(AgencyRejection::ContractRejected { contract_id });
        }
        if contract.terminated_at.is_some() {
            return Err(AgencyRejection::ContractTerminated { contract_id });
        }
        Ok(contract)
    }

    fn decide_terminate(
        &self,
        command: &TerminateContract,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        let contract = self
            .contracts
            .get(&command.contract_id)
            .ok_or(AgencyRejection::UnknownContract {
                contract_id: command.contract_id,
            })?;
        if contract.terminated_at.is_some() {
            return Err(AgencyRejection::ContractTerminated {
                contract_id: command.contract_id,
            });
        }
        if contract.status == ContractStatus::Rejected {
            return Err(AgencyRejection::ContractRejected {
                contract_id: command.contract_id,
            });
        }
        Ok(vec![Event::ContractTerminated(ContractTerminated {
            contract_id: command.contract_id,
            reason: text("reason", &command.reason, TEXT_CHARS_MAX)?,
            terminated_at: context.now,
        })])
    }

    fn decide_report_service(
        &self,
        command: &ReportService,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        if self.reports.contains_key(&command.report_id) {
            return Err(AgencyRejection::DuplicateReport {
                report_id: command.report_id,
            });
        }
        let contract = self
            .contracts
            .get(&command.contract_id)
            .ok_or(AgencyRejection::UnknownContract {
                contract_id: command.contract_id,
            })?;
        if command.visited_at > context.now {
            return Err(AgencyRejection::VisitInFuture);
        }
        if contract.status != ContractStatus::Filed {
            return Err(AgencyRejection::ContractNotFiled {
                contract_id: command.contract_id,
            });
        }
        if !contract.in_force_at(command.visited_at) {
            return Err(AgencyRejection::ContractNotInForce {
                contract_id: command.contract_id,
            });
        }
        if command.staff_ids.is_empty() {
            return Err(invalid("staffIds", FieldProblem::NoItems));
        }
        let known = self.known_staff();
        let mut seen = BTreeSet::new();
        for staff_id in &command.staff_ids {
            if !known.contains(staff_id) {
                return Err(AgencyRejection::UnknownStaff { staff_id: *staff_id });
            }
            if !seen.insert(*staff_id) {
                return Err(AgencyRejection::DuplicateStaff { staff_id: *staff_id });
            }
        }
        check_count("hazards", command.hazards.len())?;
        check_count("photos", command.photos.len())?;
        let mut hazards = Vec::with_capacity(command.hazards.len());
        for (index, hazard) in command.hazards.iter().enumerate() {
            check_count("hazards.photos", hazard.photos.len())?;
            hazards.push(ReportedHazard {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                category: text("hazards.category", &hazard.category, LABEL_CHARS_MAX)?,
                level: hazard.level,
                description: text("hazards.description", &hazard.description, TEXT_CHARS_MAX)?,
                photos: hazard.photos.clone(),
                suggested_deadline: hazard.suggested_deadline,
            });
        }
        let window = Duration::days(i64::from(context.rules.credit.timeliness.window_days));
        Ok(vec![Event::ServiceReported(ServiceReported {
            report_id: command.report_id,
            contract_id: command.contract_id,
            enterprise_id: contract.enterprise_id,
            visited_at: command.visited_at,
            staff_ids: command.staff_ids.clone(),
            findings: text("findings", &command.findings, TEXT_CHARS_MAX)?,
            hazards,
            photos: command.photos.clone(),
            report_file: command.report_file.clone(),
            on_time: context.now - command.visited_at <= window,
            reported_at: context.now,
        })])
    }

    fn decide_rate(&self, command: &RateService, context: &DecisionContext<'_>) -> Result<Vec<Event>, AgencyRejection> {
        let report = self.report(command.report_id)?;
        if report.rating.is_some() {
            return Err(AgencyRejection::AlreadyRated {
                report_id: command.report_id,
            });
        }
        let stars = u8::try_from(command.stars)
            .ok()
            .filter(|stars| (1..=5).contains(stars))
            .ok_or(AgencyRejection::StarsOutOfRange { stars: command.stars })?;
        Ok(vec![Event::ServiceRated(ServiceRated {
            report_id: command.report_id,
            enterprise_id: report.enterprise_id,
            stars,
            comment: optional_text("comment", command.comment.as_deref(), TEXT_CHARS_MAX)?,
            rated_at: context.now,
        })])
    }

    fn decide_misconduct(
        &self,
        command: &RecordMisconduct,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        if let Some(report_id) = command.report_id {
            self.report(report_id)?;
        }
        if command.kind == MisconductKind::RefusedRectification
            && !self.warnings.iter().any(|(kind, _)| *kind == WarningKind::Summons)
        {
            return Err(AgencyRejection::NoSummons);
        }
        let reason = text("reason", &command.reason, TEXT_CHARS_MAX)?;
        let mut events = vec![Event::AgencyMisconductFound(AgencyMisconductFound {
            kind: command.kind,
            report_id: command.report_id,
            reason: reason.clone(),
            found_at: context.now,
        })];
        if context.rules.credit.blacklist.misconduct.contains(&command.kind) && !self.is_blacklisted() {
            events.push(Event::AgencyBlacklisted(AgencyBlacklisted {
                reason: format!("misconduct {}: {reason}", misconduct_name(command.kind)),
                blacklisted_at: context.now,
            }));
        }
        Ok(events)
    }

    fn decide_grade(
        &self,
        command: &GradeAgency,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        started_half_year(command.half_year, context)?;
        if self.finally_graded(command.half_year) {
            return Err(AgencyRejection::AlreadyGraded {
                half_year: command.half_year,
            });
        }
        let provisional = context.now < command.half_year.end(context.rules.time_zone);
        let (inputs, computed) = self.score(command.half_year, command.missed_findings, context);
        let reason = optional_text("reason", command.reason.as_deref(), TEXT_CHARS_MAX)?;
        check_official_grade(command.grade, &computed, reason.is_some())?;
        let mut events = vec![Event::CreditGraded(CreditGraded {
            half_year: command.half_year,
            inputs,
            computed,
            grade: command.grade,
            provisional,
            reason,
            graded_at: context.now,
        })];
        if !provisional {
            events.extend(self.blacklist_after_d(command.half_year, command.grade, context));
        }
        Ok(events)
    }

    fn decide_regrade(
        &self,
        command: &RegradeAgency,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        let previous = self
            .grades
            .get(&command.half_year)
            .filter(|grade| !grade.provisional)
            .ok_or(AgencyRejection::NotFinallyGraded {
                half_year: command.half_year,
            })?;
        let reason = text("reason", &command.reason, TEXT_CHARS_MAX)?;
        let (inputs, computed) = self.score(command.half_year, command.missed_findings, context);
        check_official_grade(command.grade, &computed, true)?;
        let mut events = vec![Event::CreditRegraded(CreditRegraded {
            half_year: command.half_year,
            inputs,
            computed,
            grade: command.grade,
            previous_grade: previous.grade,
            reason,
            regraded_at: context.now,
        })];
        events.extend(self.blacklist_after_d(command.half_year, command.grade, context));
        Ok(events)
    }

    /// The half-year's inputs and computed score as of now (its end at the latest).
    fn score(
        &self,
        half_year: Period,
        missed_findings: u32,
        context: &DecisionContext<'_>,
    ) -> (crate::credit::CreditInputs, crate::credit::CreditScore) {
        let rules = &context.rules.credit;
        let inputs = self.credit_inputs(half_year, missed_findings, context.now, rules, context.rules.time_zone);
        let computed = compute_score(&inputs, rules);
        (inputs, computed)
    }

    /// The blacklisting a final D brings when it completes `blacklist.consecutive_d`
    /// consecutive final Ds.
    fn blacklist_after_d(
        &self,
        half_year: Period,
        grade: Option<Grade>,
        context: &DecisionContext<'_>,
    ) -> Option<Event> {
        let consecutive = context.rules.credit.blacklist.consecutive_d;
        if grade != Some(Grade::D) || self.is_blacklisted() {
            return None;
        }
        let mut earlier = half_year;
        let mut run_of_d = 1;
        while run_of_d < consecutive {
            earlier = earlier.previous();
            match self.grades.get(&earlier) {
                Some(record) if !record.provisional && record.grade == Some(Grade::D) => run_of_d += 1,
                _ => break,
            }
        }
        (run_of_d >= consecutive).then(|| {
            Event::AgencyBlacklisted(AgencyBlacklisted {
                reason: format!("{consecutive} consecutive half-years graded D, the last {half_year}"),
                blacklisted_at: context.now,
            })
        })
    }

    fn decide_blacklist(
        &self,
        agency: &AgencyRecord,
        command: &ChangeBlacklist,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, AgencyRejection> {
        let reason = text("reason", &command.reason, TEXT_CHARS_MAX)?;
        match (command.blacklisted, self.is_blacklisted()) {
            // Blacklisting an agency already on the list changes nothing: no event.
            (true, true) => Ok(Vec::new()),
            (true, false) => Ok(vec![Event::AgencyBlacklisted(AgencyBlacklisted {
                reason,
                blacklisted_at: context.now,
            })]),
            (false, true) => Ok(vec![Event::AgencyDelisted(AgencyDelisted {
                reason,
                delisted_at: context.now,
            })]),
            (false, false) => Err(AgencyRejection::NotBlacklisted {
                agency_id: agency.agency_id,
            }),
        }
    }

    fn registered(&self, agency_id: AgencyId) -> Result<&AgencyRecord, AgencyRejection> {
        self.registration
            .as_ref()
            .ok_or(AgencyRejection::UnknownAgency { agency_id })
    }

    fn report(&self, report_id: ServiceReportId) -> Result<&super::state::ReportRecord, AgencyRejection> {
        self.reports
            .get(&report_id)
            .ok_or(AgencyRejection::UnknownReport { report_id })
    }
}

/// Returns the stable name of a misconduct kind.
pub fn misconduct_name(kind: MisconductKind) -> &'static str {
    match kind {
        MisconductKind::FalseReport => "false_report",
        MisconductKind::Subcontracting => "subcontracting",
        MisconductKind::PerfunctoryFinding => "perfunctory_finding",
        MisconductKind::MaliciousUnderpricing => "malicious_underpricing",
        MisconductKind::RefusedRectification => "refused_rectification",
    }
}

/// Checks the official's grade against the computed one: a different grade needs a reason, and
/// a half-year with too little activity or evidence may only be left ungraded or, with a
/// reason, graded D (never A, B or C).
fn check_official_grade(
    grade: Option<Grade>,
    computed: &crate::credit::CreditScore,
    has_reason: bool,
) -> Result<(), AgencyRejection> {
    if let (Some(given), Some(insufficient)) = (grade, &computed.insufficient)
        && given != Grade::D
        && computed.grade != Some(given)
    {
        return Err(AgencyRejection::NotGradable {
            grade: given,
            reason: insufficient.to_string(),
        });
    }
    if grade != computed.grade && !has_reason {
        return Err(AgencyRejection::GradeReasonRequired {
            grade,
            computed: computed.grade,
        });
    }
    Ok(())
}

/// Checks that a period is a half-year that has started; returns its first instant.
fn started_half_year(half_year: Period, context: &DecisionContext<'_>) -> Result<Instant, AgencyRejection> {
    let start = half_year.start(context.rules.time_zone);
    if half_year.cadence() != Cadence::HalfYearly || start > context.now {
        return Err(AgencyRejection::InvalidHalfYear { half_year });
    }
    Ok(start)
}

fn check_profile(profile: &AgencyProfile) -> Result<(), AgencyRejection> {
    text("name", &profile.name, NAME_CHARS_MAX)?;
    optional_text("licence", profile.licence.as_deref(), LABEL_CHARS_MAX)?;
    labels("serviceScope", &profile.service_scope)?;
    text("serviceStandards", &profile.service_standards, TEXT_CHARS_MAX)?;
    optional_text("contactPhone", profile.contact_phone.as_deref(), LABEL_CHARS_MAX)?;
    let band = profile.fee_band;
    if band.min_yuan > band.max_yuan {
        return Err(AgencyRejection::InvalidFeeBand {
            min_yuan: band.min_yuan,
            max_yuan: band.max_yuan,
        });
    }
    Ok(())
}

/// Trims a checked profile's texts.
fn clean_profile(profile: &AgencyProfile) -> AgencyProfile {
    let trim = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    AgencyProfile {
        name: profile.name.trim().to_owned(),
        licence: trim(&profile.licence),
        service_scope: profile
            .service_scope
            .iter()
            .map(|item| item.trim().to_owned())
            .collect(),
        service_standards: profile.service_standards.trim().to_owned(),
        fee_band: profile.fee_band,
        contact_phone: trim(&profile.contact_phone),
    }
}

fn invalid(field: &'static str, problem: FieldProblem) -> AgencyRejection {
    AgencyRejection::InvalidField { field, problem }
}

/// Checks a required text and returns it trimmed.
fn text(field: &'static str, value: &str, chars_max: usize) -> Result<String, AgencyRejection> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(field, FieldProblem::Empty));
    }
    if trimmed.chars().count() > chars_max {
        return Err(invalid(field, FieldProblem::TooLong { chars_max }));
    }
    Ok(trimmed.to_owned())
}

/// Checks an optional text; blank counts as absent.
fn optional_text(
    field: &'static str,
    value: Option<&str>,
    chars_max: usize,
) -> Result<Option<String>, AgencyRejection> {
    match value.map(str::trim).filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => text(field, value, chars_max).map(Some),
    }
}

fn labels(field: &'static str, values: &[String]) -> Result<Vec<String>, AgencyRejection> {
    if values.is_empty() {
        return Err(invalid(field, FieldProblem::NoItems));
    }
    check_count(field, values.len())?;
    values.iter().map(|value| text(field, value, LABEL_CHARS_MAX)).collect()
}

fn check_count(field: &'static str, count: usize) -> Result<(), AgencyRejection> {
    if count > LIST_ITEMS_MAX {
        return Err(invalid(
            field,
            FieldProblem::TooManyItems {
                items_max: LIST_ITEMS_MAX,
            },
        ));
    }
    Ok(())
}
