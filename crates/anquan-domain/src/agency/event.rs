//! Events of the agency stream: the agency's profile and staff, its contracts, service reports
//! and ratings, and the city's supervision of it (spot checks, complaints, warnings, misconduct,
//! grades, blacklist).

use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::credit::{CreditInputs, CreditScore, Grade, MisconductKind};
use crate::enterprise::FileRef;
use crate::ids::{AgencyId, ContractId, EnterpriseId, ServiceReportId, StaffId, Town};
use crate::period::Period;
use crate::personal::DataSubject;

/// What an agency publishes about itself. `contact_phone` is private: only the city and the
/// agency see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyProfile {
    pub name: String,
    /// The provincial licence number, for assessment, testing and inspection agencies;
    /// consultancy ("safety housekeeper") services have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// What the agency offers (安全评价, 检测检验, 安全咨询, 安全管家, …).
    pub service_scope: Vec<String>,
    /// The service standard it commits to.
    pub service_standards: String,
    /// The published fee band of one contract year.
    pub fee_band: FeeBand,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_phone: Option<String>,
}

/// A published fee range in whole yuan per contract year; fees may float within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeBand {
    pub min_yuan: u64,
    pub max_yuan: u64,
}

/// A kind of professional qualification a staff member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualificationKind {
    /// 注册安全工程师.
    RegisteredSafetyEngineer,
    /// 安全评价师.
    SafetyAssessor,
    /// 职业卫生检测.
    OccupationalHealth,
    /// 特种设备检验.
    SpecialEquipment,
    /// Any other certificate.
    Other,
}

/// One qualification with its certificate number (private).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qualification {
    pub kind: QualificationKind,
    pub certificate_number: String,
}

/// One staff member as reported for a half-year. Certificate numbers and the phone are
/// private.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffMember {
    pub staff_id: StaffId,
    pub name: String,
    pub qualifications: Vec<Qualification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The city registered an agency on the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRegistered {
    pub agency_id: AgencyId,
    pub profile: AgencyProfile,
    pub registered_at: Instant,
}

/// An agency's profile changed; the event holds the new values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyProfileChanged {
    pub profile: AgencyProfile,
    pub changed_at: Instant,
}

/// An agency reported its staff for a half-year; the list replaces any earlier list of that
/// half-year. `late` says whether it came after `due_at` (rule data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffReported {
    pub half_year: Period,
    pub staff: Vec<StaffMember>,
    pub due_at: Instant,
    pub late: bool,
    pub reported_at: Instant,
}

/// Where a contract's fee lies against the agency's published band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeCheck {
    WithinBand,
    BelowBand,
    AboveBand,
}

/// An agency signed a service contract with an enterprise, on its own (before issue #21). Old
/// logs keep it; the platform reads it as a contract proposed, confirmed and filed at
/// `signed_at`, since it counted toward coverage from then. No new one is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractSigned {
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    /// The enterprise's town at signing, for coverage per town.
    pub enterprise_town: Town,
    /// The contract is in force from `valid_from` until just before `valid_until`.
    pub valid_from: Instant,
    pub valid_until: Instant,
    /// The services promised (e.g. 安全管家, 隐患排查, 安全培训).
    pub services: Vec<String>,
    /// Visits promised over the contract's period.
    pub visits_promised: u32,
    pub fee_yuan: u64,
    pub fee_band: FeeBand,
    pub fee_check: FeeCheck,
    pub signed_at: Instant,
}

/// An agency proposed a service contract to an enterprise. The fee is checked against the band
/// in force at the proposal; a fee outside it is recorded and flagged, and the town officer
/// files it only with an exception reason. The contract counts for nothing until it is filed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractProposed {
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    /// The enterprise's town at the proposal: its officer files the contract, and coverage
    /// counts it in this town.
    pub enterprise_town: Town,
    /// The contract is in force from `valid_from` until just before `valid_until`, once filed.
    pub valid_from: Instant,
    pub valid_until: Instant,
    /// The services promised (e.g. 安全管家, 隐患排查, 安全培训).
    pub services: Vec<String>,
    /// Visits promised over the contract's period.
    pub visits_promised: u32,
    pub fee_yuan: u64,
    pub fee_band: FeeBand,
    pub fee_check: FeeCheck,
    pub proposed_at: Instant,
}

/// The enterprise confirmed a proposed contract (its own user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractConfirmed {
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    pub confirmed_at: Instant,
}

/// The enterprise rejected a proposed contract, with its reason; the contract never counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRejected {
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    pub reason: String,
    pub rejected_at: Instant,
}

/// The officer of the enterprise's town filed (备案) a confirmed contract: from now on it counts
/// toward coverage, credit and the public pages. A fee outside the band is filed only with the
/// officer's exception reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractFiled {
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    /// The town the contract was filed in (the one recorded at the proposal).
    pub enterprise_town: Town,
    /// The fee check of the proposal, as the officer saw it.
    pub fee_check: FeeCheck,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_exception_reason: Option<String>,
    pub filed_at: Instant,
}

/// A contract ended before its period did. Before filing it is withdrawn (it never counted);
/// after filing it stops counting from `terminated_at`. A rejected contract cannot be
/// terminated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractTerminated {
    pub contract_id: ContractId,
    pub reason: String,
    pub terminated_at: Instant,
}

/// The level of a hazard found on a service visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardLevel {
    /// 一般隐患.
    General,
    /// 重大隐患.
    Major,
}

/// A hazard found on a service visit. It enters the enterprise's hazard list (source
/// "agency") through a relay keyed by (report id, index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedHazard {
    /// The hazard's position in the report, from 0.
    pub index: u32,
    pub category: String,
    pub level: HazardLevel,
    pub description: String,
    pub photos: Vec<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_deadline: Option<Instant>,
}

/// An agency reported a service visit under a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReported {
    pub report_id: ServiceReportId,
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    pub visited_at: Instant,
    /// The staff who served, all from the agency's staff registry.
    pub staff_ids: Vec<StaffId>,
    pub findings: String,
    pub hazards: Vec<ReportedHazard>,
    pub photos: Vec<FileRef>,
    pub report_file: FileRef,
    /// Whether the report came within the timeliness window after the visit (rule data).
    pub on_time: bool,
    pub reported_at: Instant,
}

/// The served enterprise rated a service record (once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRated {
    pub report_id: ServiceReportId,
    pub enterprise_id: EnterpriseId,
    pub stars: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub rated_at: Instant,
}

/// The city sampled a service report and judged its quality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSpotChecked {
    pub report_id: ServiceReportId,
    pub qualified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub checked_at: Instant,
}

/// The city found a complaint about the agency founded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyComplaintFounded {
    pub complaint: String,
    pub decided_at: Instant,
}

/// The kind of an official notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// 警示通报.
    WarningNotice,
    /// 约谈.
    Summons,
}

/// The city issued a warning notice or a summons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyWarned {
    pub kind: WarningKind,
    pub reason: String,
    pub issued_at: Instant,
}

/// The city found misconduct (false report, subcontracting, …); some kinds force grade D or
/// the blacklist (rule data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyMisconductFound {
    pub kind: MisconductKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<ServiceReportId>,
    pub reason: String,
    pub found_at: Instant,
}

/// The city graded a half-year: the computed score with its inputs and breakdown, and the
/// official's grade, with the reason when it differs from the computed one.
///
/// v2 (issue #21): `grade` may be `None` (not graded, 未评级), `provisional` says the half-year
/// had not ended (the grade is replaced by the final one), and the score leaves out components
/// without evidence. v1 data decode into this shape: its grade is `Some`, it is final, and its
/// score's components all had evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditGraded {
    pub half_year: Period,
    pub inputs: CreditInputs,
    pub computed: CreditScore,
    pub grade: Option<Grade>,
    #[serde(default)]
    pub provisional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub graded_at: Instant,
}

/// The city changed a half-year's final grade, with a reason: the score recomputed from the
/// facts known now (a late spot check, a missed finding found since), the new grade and the
/// one it replaces. The earlier `CreditGraded` stays in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditRegraded {
    pub half_year: Period,
    pub inputs: CreditInputs,
    pub computed: CreditScore,
    pub grade: Option<Grade>,
    pub previous_grade: Option<Grade>,
    pub reason: String,
    pub regraded_at: Instant,
}

/// The agency went on the blacklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyBlacklisted {
    pub reason: String,
    pub blacklisted_at: Instant,
}

/// The agency came off the blacklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyDelisted {
    pub reason: String,
    pub delisted_at: Instant,
}

/// The city erased a data subject's personal data (个人信息删除): the subject's key is deleted,
/// so every field sealed under it reads as [`crate::personal::ERASED`] from then on, in events,
/// read models and exports. The event holds no personal data: the subject's id, the reason, and
/// which read-model rows to blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSubjectErased {
    pub subject: DataSubject,
    pub reason: String,
    /// For a staff member, each half-year list naming them as the agency's state held it: what
    /// the blanked row keeps (qualification kinds, whether a phone was given). Empty for a
    /// contact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staff_entries: Vec<ErasedStaffEntry>,
    pub erased_at: Instant,
}

/// A half-year's staff row of an erased staff member, without the personal values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedStaffEntry {
    pub half_year: Period,
    pub qualifications: Vec<QualificationKind>,
    pub had_phone: bool,
}
