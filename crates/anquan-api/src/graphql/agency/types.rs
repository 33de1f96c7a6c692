//! GraphQL types of the service gate. Public types (`Public*`) carry only what an
//! unauthenticated caller may see: no certificate numbers, no phone numbers, no credit
//! breakdowns or sanctions. Private types are returned only to the city and the agency itself.

use crate::graphql::command::Recorded;
use crate::graphql::scalars::Int64;
use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_domain::agency::{AgencyProfile, StaffMember};
use anquan_domain::credit::{ComponentScore, CreditScore, Deduction};
use anquan_domain::enterprise::FileRef;
use anquan_projections::agency::{
    AgencyView, ContractView, DirectoryEntry, GradeKind, GradeView, ReportView, SanctionView, ServiceStatistics,
    StaffReportView, StaffView,
};

/// A half-yearly credit grade.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::credit::Grade")]
pub enum CreditGrade {
    /// 90 points or more: recommended first.
    A,
    /// 75 to 89.99 points.
    B,
    /// 60 to 74.99 points: a warning notice.
    C,
    /// Below 60 points, or an automatic-D fact: a summons and publication.
    D,
}

/// A kind of professional qualification.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::agency::QualificationKind")]
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

/// The level of a hazard found on a service visit.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::agency::HazardLevel")]
pub enum HazardLevel {
    /// 一般隐患.
    General,
    /// 重大隐患.
    Major,
}

/// An official notice.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::agency::WarningKind")]
pub enum WarningKind {
    /// 警示通报 (deducts points).
    WarningNotice,
    /// 约谈.
    Summons,
}

/// Misconduct found by the city.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::credit::MisconductKind")]
pub enum MisconductKind {
    /// A false service report, confirmed by enforcement (automatic D, blacklist).
    FalseReport,
    /// Subcontracting a service (automatic D).
    Subcontracting,
    /// A perfunctory finding, 走过场 (automatic D).
    PerfunctoryFinding,
    /// Malicious underpricing (automatic D).
    MaliciousUnderpricing,
    /// Refusing to rectify after a summons (blacklist).
    RefusedRectification,
}

/// Where a contract's fee lies against the published band.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::agency::FeeCheck")]
pub enum FeeCheck {
    /// Within the band (and its tolerance).
    WithinBand,
    /// Below the band: flagged.
    BelowBand,
    /// Above the band: flagged.
    AboveBand,
}

/// Where a contract stands between the agency, the enterprise and the town officer.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::agency::ContractStatus")]
pub enum ContractStatus {
    /// The agency proposed it; the enterprise has not answered. It does not count.
    Proposed,
    /// The enterprise confirmed it; the town officer has not filed it. It does not count.
    Confirmed,
    /// The enterprise rejected it. It never counts.
    Rejected,
    /// The town officer filed it: it counts toward coverage and shows on the public page.
    Filed,
}

/// A fee band in whole yuan per contract year.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "FeeBandInput")]
pub struct FeeBand {
    /// Lowest fee.
    pub min_yuan: Int64,
    /// Highest fee.
    pub max_yuan: Int64,
}

/// An agency's profile as the city registers it or the agency changes it.
#[derive(InputObject)]
pub struct AgencyProfileInput {
    /// Registered name.
    pub name: String,
    /// Provincial licence number (assessment, testing, inspection agencies).
    pub licence: Option<String>,
    /// Services offered.
    pub service_scope: Vec<String>,
    /// The service standard the agency commits to.
    pub service_standards: String,
    /// Published fee band.
    pub fee_band: FeeBand,
    /// Contact phone (private).
    pub contact_phone: Option<String>,
}

/// One qualification with its certificate number.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "QualificationInput")]
pub struct Qualification {
    /// The kind of qualification.
    pub kind: QualificationKind,
    /// The certificate number (private).
    pub certificate_number: String,
}

/// A staff member in a half-yearly report.
#[derive(InputObject)]
pub struct StaffMemberInput {
    /// The member's stable id; give the same id every half-year (one is made if absent).
    pub staff_id: Option<ID>,
    /// Name.
    pub name: String,
    /// Qualifications with certificate numbers.
    pub qualifications: Vec<Qualification>,
    /// Phone (private).
    pub phone: Option<String>,
}

/// A file stored before the command that names it.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "StoredFileInput")]
pub struct StoredFile {
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: Int64,
    /// Media type.
    pub media_type: String,
    /// Original file name.
    pub file_name: String,
}

impl From<&FileRef> for StoredFile {
    fn from(file: &FileRef) -> Self {
        StoredFile {
            sha256: file.sha256.clone(),
            size_bytes: Int64(file.size_bytes),
            media_type: file.media_type.clone(),
            file_name: file.file_name.clone(),
        }
    }
}

impl From<StoredFile> for FileRef {
    fn from(file: StoredFile) -> Self {
        FileRef {
            sha256: file.sha256,
            size_bytes: file.size_bytes.0,
            media_type: file.media_type,
            file_name: file.file_name,
        }
    }
}

/// Services counted in one calendar year (of the visit).
#[derive(SimpleObject, Clone, Copy)]
pub struct ServiceStatisticsView {
    /// The year.
    pub year: i32,
    /// Distinct enterprises served.
    pub enterprises_served: u32,
    /// Services (reported visits).
    pub services: u32,
    /// Rated services.
    pub ratings: u32,
    /// Total stars.
    pub total_stars: u32,
    /// Mean stars of the rated services.
    pub average_stars: Option<f64>,
}

impl From<&ServiceStatistics> for ServiceStatisticsView {
    fn from(statistics: &ServiceStatistics) -> Self {
        ServiceStatisticsView {
            year: statistics.year,
            enterprises_served: statistics.enterprises_served,
            services: statistics.services,
            ratings: statistics.ratings,
            total_stars: statistics.stars_total,
            average_stars: statistics.average_stars(),
        }
    }
}

/// A public grade: the half-year and the final grade, or "not graded" with the reason.
#[derive(SimpleObject, Clone)]
pub struct PublicGrade {
    /// The half-year, e.g. `2019-H1`.
    pub half_year: String,
    /// The final grade; null when the half-year was not graded (未评级: too little activity or
    /// evidence, see `notGradedReason`).
    pub grade: Option<CreditGrade>,
    /// Why the half-year was not graded (e.g. 未评级：该半年度服务报告 0 份，少于 2 份).
    pub not_graded_reason: Option<String>,
}

impl From<&GradeView> for PublicGrade {
    fn from(grade: &GradeView) -> Self {
        PublicGrade {
            half_year: grade.half_year.to_string(),
            grade: grade.grade.map(Into::into),
            not_graded_reason: not_graded_reason(grade.grade, &grade.computed),
        }
    }
}

/// The reason a grade is "not graded", when it is.
fn not_graded_reason(grade: Option<anquan_domain::credit::Grade>, computed: &CreditScore) -> Option<String> {
    if grade.is_some() {
        return None;
    }
    Some(
        computed
            .insufficient
            .as_ref()
            .map_or_else(|| "未评级".to_owned(), ToString::to_string),
    )
}

/// An agency in the public directory.
#[derive(SimpleObject)]
pub struct PublicAgencyListing {
    /// The agency's id.
    pub id: ID,
    /// Registered name.
    pub name: String,
    /// Services offered.
    pub service_scope: Vec<String>,
    /// Published fee band.
    pub fee_band: FeeBand,
    /// The latest final grade (or "not graded" with the reason); null if never graded. The
    /// directory ranks grades A to D first, then agencies not graded, then those never graded.
    pub latest_grade: Option<PublicGrade>,
    /// Services in the year asked for.
    pub statistics: ServiceStatisticsView,
    /// Whether the agency is on the blacklist.
    pub blacklisted: bool,
}

impl From<&DirectoryEntry> for PublicAgencyListing {
    fn from(entry: &DirectoryEntry) -> Self {
        let profile = &entry.agency.profile;
        PublicAgencyListing {
            id: ID(entry.agency.agency_id.to_string()),
            name: profile.name.clone(),
            service_scope: profile.service_scope.clone(),
            fee_band: fee_band(profile),
            latest_grade: entry.latest_grade.as_ref().map(|latest| PublicGrade {
                half_year: latest.half_year.to_string(),
                grade: latest.grade.map(Into::into),
                not_graded_reason: latest
                    .grade
                    .is_none()
                    .then(|| latest.not_graded_reason.clone().unwrap_or_else(|| "未评级".to_owned())),
            }),
            statistics: (&entry.statistics).into(),
            blacklisted: entry.agency.blacklisted_at.is_some(),
        }
    }
}

/// A staff member as the public sees them: no certificate numbers, no phone.
#[derive(SimpleObject)]
pub struct PublicStaff {
    /// The member's id.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Kinds of qualification held.
    pub qualifications: Vec<QualificationKind>,
}

impl From<&StaffMember> for PublicStaff {
    fn from(member: &StaffMember) -> Self {
        PublicStaff {
            id: ID(member.staff_id.to_string()),
            name: member.name.clone(),
            qualifications: member.qualifications.iter().map(|q| q.kind.into()).collect(),
        }
    }
}

/// A staff member's public page: qualifications and yearly services.
#[derive(SimpleObject)]
pub struct PublicStaffDetail {
    /// The member.
    pub staff: PublicStaff,
    /// The agency they were last reported by.
    pub agency_id: ID,
    /// The half-year they were last reported for.
    pub half_year: String,
    /// Services per year.
    pub statistics: Vec<ServiceStatisticsView>,
}

/// An agency's public page.
#[derive(SimpleObject)]
pub struct PublicAgency {
    /// The agency's id.
    pub id: ID,
    /// Registered name.
    pub name: String,
    /// Provincial licence number.
    pub licence: Option<String>,
    /// Services offered.
    pub service_scope: Vec<String>,
    /// The service standard it commits to.
    pub service_standards: String,
    /// Published fee band.
    pub fee_band: FeeBand,
    /// Whether it is on the blacklist.
    pub blacklisted: bool,
    /// The latest reported staff list.
    pub staff: Vec<PublicStaff>,
    /// Services per year.
    pub statistics: Vec<ServiceStatisticsView>,
    /// Final grades (after regrading, the new one), oldest first; provisional grades are not
    /// public.
    pub grades: Vec<PublicGrade>,
}

impl PublicAgency {
    /// Builds the public page from read-model values.
    pub fn new(
        agency: &AgencyView,
        staff: &[StaffView],
        statistics: &[ServiceStatistics],
        grades: &[GradeView],
    ) -> Self {
        let profile = &agency.profile;
        PublicAgency {
            id: ID(agency.agency_id.to_string()),
            name: profile.name.clone(),
            licence: profile.licence.clone(),
            service_scope: profile.service_scope.clone(),
            service_standards: profile.service_standards.clone(),
            fee_band: fee_band(profile),
            blacklisted: agency.blacklisted_at.is_some(),
            staff: staff.iter().map(|view| (&view.member).into()).collect(),
            statistics: statistics.iter().map(Into::into).collect(),
            grades: grades.iter().map(Into::into).collect(),
        }
    }
}

/// A staff member with private fields (certificate numbers, phone).
#[derive(SimpleObject)]
pub struct Staff {
    /// The member's id.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Qualifications with certificate numbers.
    pub qualifications: Vec<Qualification>,
    /// Phone.
    pub phone: Option<String>,
}

impl From<&StaffMember> for Staff {
    fn from(member: &StaffMember) -> Self {
        Staff {
            id: ID(member.staff_id.to_string()),
            name: member.name.clone(),
            qualifications: member
                .qualifications
                .iter()
                .map(|q| Qualification {
                    kind: q.kind.into(),
                    certificate_number: q.certificate_number.clone(),
                })
                .collect(),
            phone: member.phone.clone(),
        }
    }
}

/// A half-yearly staff report: when it came and whether it was late.
#[derive(SimpleObject)]
pub struct StaffReportInfo {
    /// The half-year.
    pub half_year: String,
    /// When the report was due.
    pub due_at: DateTime<Utc>,
    /// When it was (last) reported.
    pub reported_at: DateTime<Utc>,
    /// Whether it came after the due date.
    pub late: bool,
}

impl From<&StaffReportView> for StaffReportInfo {
    fn from(report: &StaffReportView) -> Self {
        StaffReportInfo {
            half_year: report.half_year.to_string(),
            due_at: report.due_at,
            reported_at: report.reported_at,
            late: report.late,
        }
    }
}

/// One component of a computed credit score.
#[derive(SimpleObject)]
pub struct ScoreComponent {
    /// The component (`ratings`, `report_quality`, `timeliness`, `hazard_findings`,
    /// `contract_compliance`, `staff_qualification`).
    pub component: String,
    /// Points earned.
    pub points: f64,
    /// Points available.
    pub max_points: u32,
    /// How the points were reached.
    pub basis: String,
    /// Whether the half-year holds evidence for the component; without, it scores nothing and
    /// is left out of the total.
    pub evidence: bool,
}

/// A deduction from a computed credit score.
#[derive(SimpleObject)]
pub struct ScoreDeduction {
    /// `founded_complaint` or `warning_notice`.
    pub kind: String,
    /// How many.
    pub count: u32,
    /// Points deducted.
    pub points: u32,
}

/// A half-year's grade with the computed score and its breakdown (private).
#[derive(SimpleObject)]
pub struct CreditGradeRecord {
    /// The half-year.
    pub half_year: String,
    /// The official's grade; null: not graded (未评级).
    pub grade: Option<CreditGrade>,
    /// Given before the half-year ended: replaced by the final grade, and not public.
    pub provisional: bool,
    /// A final grade changed later by a regrading (the reason says why).
    pub regraded: bool,
    /// Why the half-year was not graded, when it was not.
    pub not_graded_reason: Option<String>,
    /// The grade the score computed; null: too little activity or evidence to grade.
    pub computed_grade: Option<CreditGrade>,
    /// The computed score (0 to 100): the points of the components with evidence scaled to
    /// 100, minus deductions.
    pub computed_score: f64,
    /// The weight (of 100) of the components with evidence.
    pub evidence_points: u32,
    /// Points per component.
    pub components: Vec<ScoreComponent>,
    /// Deductions.
    pub deductions: Vec<ScoreDeduction>,
    /// Misconduct that forced grade D.
    pub automatic_d: Vec<MisconductKind>,
    /// Why the grade differs from the computed one, or why it was regraded.
    pub reason: Option<String>,
    /// When it was graded.
    pub graded_at: DateTime<Utc>,
}

impl From<&GradeView> for CreditGradeRecord {
    fn from(grade: &GradeView) -> Self {
        CreditGradeRecord {
            half_year: grade.half_year.to_string(),
            grade: grade.grade.map(Into::into),
            provisional: grade.kind == GradeKind::Provisional,
            regraded: grade.kind == GradeKind::Regraded,
            not_graded_reason: not_graded_reason(grade.grade, &grade.computed),
            computed_grade: grade.computed.grade.map(Into::into),
            computed_score: grade.computed.total,
            evidence_points: grade.computed.evidence_points,
            components: components(&grade.computed),
            deductions: grade.computed.deductions.iter().map(deduction).collect(),
            automatic_d: grade.computed.automatic_d.iter().map(|kind| (*kind).into()).collect(),
            reason: grade.reason.clone(),
            graded_at: grade.graded_at,
        }
    }
}

/// A sanction or supervision fact.
#[derive(SimpleObject)]
pub struct Sanction {
    /// `founded_complaint`, `warning_notice`, `summons`, a misconduct kind, `blacklisted` or
    /// `delisted`.
    pub kind: String,
    /// Why.
    pub reason: String,
    /// The service report concerned, if any.
    pub report_id: Option<ID>,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<&SanctionView> for Sanction {
    fn from(sanction: &SanctionView) -> Self {
        Sanction {
            kind: sanction.kind.clone(),
            reason: sanction.reason.clone(),
            report_id: sanction.report_id.map(|id| ID(id.to_string())),
            at: sanction.at,
        }
    }
}

/// A service contract.
#[derive(SimpleObject)]
pub struct ServiceContract {
    /// The contract's id.
    pub id: ID,
    /// The agency.
    pub agency_id: ID,
    /// The enterprise served.
    pub enterprise_id: ID,
    /// The enterprise's town at signing.
    pub town: String,
    /// In force from.
    pub valid_from: DateTime<Utc>,
    /// In force until (exclusive).
    pub valid_until: DateTime<Utc>,
    /// When it was terminated early, if it was.
    pub terminated_at: Option<DateTime<Utc>>,
    /// Services promised.
    pub services: Vec<String>,
    /// Visits promised.
    pub visits_promised: u32,
    /// Fee in yuan.
    pub fee_yuan: Int64,
    /// The band in force at signing.
    pub fee_band: FeeBand,
    /// Where the fee lies against the band; outside is flagged.
    pub fee_check: FeeCheck,
    /// Whether the fee is outside the band.
    pub fee_flagged: bool,
    /// When the agency proposed it (signed it, for a contract recorded before filing existed).
    pub signed_at: DateTime<Utc>,
    /// Where it stands: only a filed contract counts.
    pub status: ContractStatus,
    /// When the enterprise confirmed it.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When the enterprise rejected it.
    pub rejected_at: Option<DateTime<Utc>>,
    /// Why the enterprise rejected it.
    pub rejection_reason: Option<String>,
    /// When the town officer filed it.
    pub filed_at: Option<DateTime<Utc>>,
    /// The officer's reason for filing a fee outside the band.
    pub fee_exception_reason: Option<String>,
}

impl From<&ContractView> for ServiceContract {
    fn from(contract: &ContractView) -> Self {
        ServiceContract {
            id: ID(contract.contract_id.to_string()),
            agency_id: ID(contract.agency_id.to_string()),
            enterprise_id: ID(contract.enterprise_id.to_string()),
            town: contract.town.to_string(),
            valid_from: contract.valid_from,
            valid_until: contract.valid_until,
            terminated_at: contract.terminated_at,
            services: contract.services.clone(),
            visits_promised: contract.visits_promised,
            fee_yuan: Int64(contract.fee_yuan),
            fee_band: FeeBand {
                min_yuan: Int64(contract.fee_band.min_yuan),
                max_yuan: Int64(contract.fee_band.max_yuan),
            },
            fee_check: contract.fee_check.into(),
            fee_flagged: contract.fee_check != anquan_domain::agency::FeeCheck::WithinBand,
            signed_at: contract.signed_at,
            status: contract.status.into(),
            confirmed_at: contract.confirmed_at,
            rejected_at: contract.rejected_at,
            rejection_reason: contract.rejection_reason.clone(),
            filed_at: contract.filed_at,
            fee_exception_reason: contract.fee_exception_reason.clone(),
        }
    }
}

/// A hazard found on a service visit.
#[derive(SimpleObject)]
pub struct ServiceHazard {
    /// Its position in the report.
    pub index: u32,
    /// Category.
    pub category: String,
    /// Level.
    pub level: HazardLevel,
    /// Description.
    pub description: String,
    /// Photos.
    pub photos: Vec<StoredFile>,
    /// The deadline the agency suggests.
    pub suggested_deadline: Option<DateTime<Utc>>,
}

/// A service report with its rating.
#[derive(SimpleObject)]
pub struct ServiceReport {
    /// The report's id.
    pub id: ID,
    /// The agency.
    pub agency_id: ID,
    /// The contract.
    pub contract_id: ID,
    /// The enterprise served.
    pub enterprise_id: ID,
    /// When the visit was.
    pub visited_at: DateTime<Utc>,
    /// Staff who served.
    pub staff_ids: Vec<ID>,
    /// Findings.
    pub findings: String,
    /// Hazards found.
    pub hazards: Vec<ServiceHazard>,
    /// Photos.
    pub photos: Vec<StoredFile>,
    /// The report file.
    pub report_file: StoredFile,
    /// Whether it was uploaded within the timeliness window.
    pub on_time: bool,
    /// When it was uploaded.
    pub reported_at: DateTime<Utc>,
    /// The served enterprise's stars, once rated.
    pub stars: Option<u8>,
    /// The rating's comment.
    pub comment: Option<String>,
    /// The city's spot-check verdict, if sampled.
    pub spot_check_qualified: Option<bool>,
}

impl From<&ReportView> for ServiceReport {
    fn from(report: &ReportView) -> Self {
        ServiceReport {
            id: ID(report.report_id.to_string()),
            agency_id: ID(report.agency_id.to_string()),
            contract_id: ID(report.contract_id.to_string()),
            enterprise_id: ID(report.enterprise_id.to_string()),
            visited_at: report.visited_at,
            staff_ids: report.staff_ids.iter().map(|id| ID(id.to_string())).collect(),
            findings: report.findings.clone(),
            hazards: report
                .hazards
                .iter()
                .map(|hazard| ServiceHazard {
                    index: hazard.index,
                    category: hazard.category.clone(),
                    level: hazard.level.into(),
                    description: hazard.description.clone(),
                    photos: hazard.photos.iter().map(Into::into).collect(),
                    suggested_deadline: hazard.suggested_deadline,
                })
                .collect(),
            photos: report.photos.iter().map(Into::into).collect(),
            report_file: (&report.report_file).into(),
            on_time: report.on_time,
            reported_at: report.reported_at,
            stars: report.stars,
            comment: report.comment.clone(),
            spot_check_qualified: report.spot_check_qualified,
        }
    }
}

/// An agency with its private fields, for the city, city-wide auditors and the agency itself.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Agency {
    /// The agency's id, for its history.
    #[graphql(skip)]
    pub agency_id: anquan_domain::AgencyId,
    /// The public page.
    pub public: PublicAgency,
    /// Contact phone.
    pub contact_phone: Option<String>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// Since when it is on the blacklist.
    pub blacklisted_at: Option<DateTime<Utc>>,
    /// The latest staff list with certificate numbers and phones.
    pub staff: Vec<Staff>,
    /// Every half-yearly staff report, late ones flagged.
    pub staff_reports: Vec<StaffReportInfo>,
    /// Grades with the computed score and breakdown.
    pub grades: Vec<CreditGradeRecord>,
    /// Sanctions and supervision facts.
    pub sanctions: Vec<Sanction>,
    /// Contracts.
    pub contracts: Vec<ServiceContract>,
    /// Service reports.
    pub reports: Vec<ServiceReport>,
}

#[async_graphql::ComplexObject]
impl Agency {
    /// Every event of the agency's stream with its full envelope, oldest first, paged by version
    /// (`after` is the last version seen), as `enterprise { history }`. Events carry the private
    /// fields (staff phones, certificate numbers) as recorded.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn history(
        &self,
        ctx: &async_graphql::Context<'_>,
        #[graphql(default = 100)] first: i32,
        after: Option<String>,
    ) -> Result<crate::graphql::audit::HistoryConnection, crate::error::ApiError> {
        crate::graphql::audit::history(
            crate::graphql::app(ctx)?,
            crate::graphql::audit::AuditedStream::Agency(self.agency_id),
            first,
            after,
        )
        .await
    }

    /// The agency stream's hash chain, recomputed now.
    async fn verification(
        &self,
        ctx: &async_graphql::Context<'_>,
    ) -> Result<crate::graphql::audit::ChainVerification, crate::error::ApiError> {
        crate::graphql::audit::verification(
            crate::graphql::app(ctx)?,
            crate::graphql::audit::AuditedStream::Agency(self.agency_id),
        )
        .await
    }

    /// The inclusion proof of its event at `version` against the latest signed anchor; null
    /// until an anchor covers it. Reads the log up to the anchor.
    async fn inclusion_proof(
        &self,
        ctx: &async_graphql::Context<'_>,
        version: crate::graphql::scalars::Int64,
    ) -> Result<Option<crate::graphql::audit::InclusionProof>, crate::error::ApiError> {
        crate::graphql::audit::inclusion_proof(
            crate::graphql::app(ctx)?,
            crate::graphql::audit::AuditedStream::Agency(self.agency_id),
            version,
        )
        .await
    }
}

/// An enterprise's contracts and service history.
#[derive(SimpleObject)]
pub struct EnterpriseServices {
    /// The enterprise.
    pub enterprise_id: ID,
    /// Its contracts, oldest first.
    pub contracts: Vec<ServiceContract>,
    /// Service reports at it, by visit.
    pub reports: Vec<ServiceReport>,
}

/// Enterprises with a valid contract at an instant.
#[derive(SimpleObject)]
pub struct ServiceCoverage {
    /// The instant.
    pub at: DateTime<Utc>,
    /// The town, or every town.
    pub town: Option<String>,
    /// How many enterprises are covered.
    pub enterprises_covered: u32,
    /// The covered enterprises.
    pub enterprise_ids: Vec<ID>,
}

/// What an agency command did.
#[derive(SimpleObject)]
pub struct AgencyCommandPayload {
    /// What it wrote (the agency's stream version and the position).
    #[graphql(flatten)]
    pub recorded: Recorded,
    /// The types of the events written (e.g. `CreditGraded`, `AgencyBlacklisted`).
    pub event_types: Vec<String>,
    /// The agency.
    pub agency_id: ID,
    /// The contract created, if any.
    pub contract_id: Option<ID>,
    /// The service report created or concerned, if any.
    pub report_id: Option<ID>,
    /// The grade recorded, with the computed score, if the command graded.
    pub grade: Option<CreditGradeRecord>,
}

fn fee_band(profile: &AgencyProfile) -> FeeBand {
    FeeBand {
        min_yuan: Int64(profile.fee_band.min_yuan),
        max_yuan: Int64(profile.fee_band.max_yuan),
    }
}

fn components(score: &CreditScore) -> Vec<ScoreComponent> {
    score.components.iter().map(component).collect()
}

fn component(component: &ComponentScore) -> ScoreComponent {
    ScoreComponent {
        component: serde_name(&component.component),
        points: component.points,
        max_points: component.max_points,
        basis: component.basis.clone(),
        evidence: component.evidence,
    }
}

fn deduction(deduction: &Deduction) -> ScoreDeduction {
    ScoreDeduction {
        kind: serde_name(&deduction.kind),
        count: deduction.count,
        points: deduction.points,
    }
}

/// The snake_case name serde gives a unit enum variant.
fn serde_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}
