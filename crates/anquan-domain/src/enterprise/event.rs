//! Events of the enterprise stream.

use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::credit_code::UnifiedSocialCreditCode;
use crate::ids::{AgencyId, DocumentId, EnterpriseId, HazardId, InspectionId, RequirementCode, Town};
use crate::period::Period;
use crate::rules::{EnterpriseProfile, Severity};

/// An enterprise joined the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseRegistered {
    pub enterprise_id: EnterpriseId,
    pub name: String,
    pub credit_code: UnifiedSocialCreditCode,
    pub town: Town,
    pub industry: String,
    pub profile: EnterpriseProfile,
    pub registered_at: Instant,
}

/// An enterprise's name, town, industry or profile changed; the event holds the new values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseProfileChanged {
    pub name: String,
    pub town: Town,
    pub industry: String,
    pub profile: EnterpriseProfile,
    pub changed_at: Instant,
}

/// A stored file: content-addressed by its SHA-256; the bytes live in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub size_bytes: u64,
    pub media_type: String,
    pub file_name: String,
}

/// What time a record speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Coverage {
    /// A record with no period or validity (e.g. an appointment document).
    Once,
    /// A certificate, plan or test valid from `valid_from` until just before `valid_until`.
    Validity { valid_from: Instant, valid_until: Instant },
    /// A periodic record (a drill, a report) for one period.
    Period { period: Period },
}

/// An enterprise uploaded a record for a requirement; it awaits review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentUploaded {
    pub document_id: DocumentId,
    pub requirement: RequirementCode,
    pub title: String,
    pub file: FileRef,
    pub coverage: Coverage,
    pub uploaded_at: Instant,
}

/// A reviewer approved a record (审核通过).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentApproved {
    pub document_id: DocumentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub reviewed_at: Instant,
}

/// A reviewer returned a record with feedback (退回); the enterprise uploads a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentReturned {
    pub document_id: DocumentId,
    pub feedback: String,
    pub reviewed_at: Instant,
}

/// How an inspection was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionKind {
    /// On site (现场检查).
    OnSite,
    /// Online, on the enterprise's cloud file (网上检查).
    Online,
}

/// Who inspected: the city office or a town.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectorLevel {
    City,
    Town,
}

/// The kind of an enforcement document (执法文书).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionDocumentKind {
    /// 现场检查记录 / 安全检查记录.
    InspectionRecord,
    /// 责令限期整改指令书 / 隐患整改通知书.
    RectificationOrder,
    /// 整改复查意见书 / 复查记录.
    ReinspectionOpinion,
    /// 现场处理措施决定书.
    OnSiteMeasures,
    /// 强制措施决定书.
    CoerciveMeasures,
    Other,
}

/// A document filed with an inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionDocument {
    pub kind: InspectionDocumentKind,
    pub file: FileRef,
}

/// City or town inspectors inspected an enterprise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionRecorded {
    pub inspection_id: InspectionId,
    pub kind: InspectionKind,
    pub level: InspectorLevel,
    pub inspected_at: Instant,
    pub inspectors: Vec<String>,
    pub documents: Vec<InspectionDocument>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// When it was entered on the platform (status "as of" an instant uses what was known).
    pub recorded_at: Instant,
}

/// Where a hazard was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HazardSource {
    /// By government inspectors (政府检查).
    GovernmentInspection { inspection_id: InspectionId },
    /// By the enterprise's own inspection (企业自查).
    SelfInspection,
    /// By a safety-service agency's visit (中介服务).
    AgencyService { agency_id: AgencyId, report_id: uuid::Uuid },
}

impl HazardSource {
    /// Returns the kind of source, as the rule set names it.
    pub fn kind(&self) -> crate::rules::supervision::HazardSourceKind {
        use crate::rules::supervision::HazardSourceKind;
        match self {
            HazardSource::GovernmentInspection { .. } => HazardSourceKind::GovernmentInspection,
            HazardSource::SelfInspection => HazardSourceKind::SelfInspection,
            HazardSource::AgencyService { .. } => HazardSourceKind::AgencyService,
        }
    }
}

/// How grave a hazard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardLevel {
    /// 一般事故隐患.
    General,
    /// 重大事故隐患.
    Major,
}

/// What a hazard concerns (domain.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardCategory {
    Electrical,
    Fire,
    MachineGuarding,
    SpecialEquipment,
    HazardousChemicals,
    ConfinedSpace,
    Dust,
    WorkEnvironment,
    Records,
    Other,
}

/// An item of the major-hazard catalogue in force on the day a hazard was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionRef {
    pub catalogue: String,
    pub item: String,
}

/// A hazard was found; it must be rectified by its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardFound {
    pub hazard_id: HazardId,
    pub source: HazardSource,
    pub category: HazardCategory,
    pub level: HazardLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criterion: Option<CriterionRef>,
    pub description: String,
    pub photos: Vec<FileRef>,
    pub found_at: Instant,
    /// When it was entered on the platform.
    pub recorded_at: Instant,
    /// Rectified by this instant, or overdue from the first instant after it.
    pub deadline: Instant,
}

/// A major hazard was recorded without a catalogue item (none fits, or the item is not
/// transcribed): the recorder's free-text basis. Recorded with its `HazardFound`; until an
/// official confirms it (`MajorHazardConfirmed`) the hazard is "major, pending confirmation"
/// and counts as general: no veto, no red, not in the major-hazard figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MajorHazardBasisStated {
    pub hazard_id: HazardId,
    pub basis: String,
    pub stated_at: Instant,
}

/// An official (the town officer of the enterprise's town, or the city admin) confirmed a major
/// hazard recorded with a free-text basis: it counts as major from `confirmed_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MajorHazardConfirmed {
    pub hazard_id: HazardId,
    pub note: String,
    pub confirmed_at: Instant,
}

/// An inspector approved a later deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardDeadlineExtended {
    pub hazard_id: HazardId,
    pub deadline: Instant,
    pub reason: String,
    pub extended_at: Instant,
}

/// The enterprise submitted its rectification of a hazard for verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RectificationSubmitted {
    pub hazard_id: HazardId,
    pub rectification_id: uuid::Uuid,
    pub text: String,
    pub photos: Vec<FileRef>,
    pub submitted_at: Instant,
}

/// An inspector verified the rectification: the hazard is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RectificationAccepted {
    pub hazard_id: HazardId,
    pub rectification_id: uuid::Uuid,
    /// Passed at its first review (一次复核通过).
    pub first_time: bool,
    pub verified_at: Instant,
}

/// An inspector returned the rectification: the hazard stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RectificationReturned {
    pub hazard_id: HazardId,
    pub rectification_id: uuid::Uuid,
    pub reason: String,
    pub verified_at: Instant,
}

/// The enterprise closed a self-reported hazard by its own rectification with evidence (the
/// rectification recorded just before, `RectificationSubmitted`), as the rule set allows for the
/// hazard's source (`hazard_sources.self_closing`); no inspector accepted it. `spot_check` says
/// whether the rule set's deterministic sample drew it for an inspector's spot check (抽查).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardSelfClosed {
    pub hazard_id: HazardId,
    pub rectification_id: uuid::Uuid,
    pub spot_check: bool,
    pub closed_at: Instant,
}

/// An inspector spot-checked a self-closed hazard on site or from its evidence. A check that
/// fails reopens the hazard from `checked_at` (its deadline is unchanged, so it may be overdue
/// at once); from then on only an inspector closes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardSpotChecked {
    pub hazard_id: HazardId,
    pub rectification_id: uuid::Uuid,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub checked_at: Instant,
}

/// The city listed a major hazard for supervision (挂牌督办): by its listing document, with a
/// deadline for remediation, production suspended or not. While listed (until `HazardDelisted`)
/// the rule set may count it as an open major hazard even once its rectification is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardListed {
    pub hazard_id: HazardId,
    /// The listing document's number (督办文号), as written on it.
    pub document_number: String,
    /// Remediation is due by this instant (督办期限).
    pub deadline: Instant,
    /// Production (or the affected part of it) is suspended until the listing is lifted.
    pub production_suspended: bool,
    pub listed_at: Instant,
}

/// The town reported the progress of a listed hazard's remediation to the city.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingProgressReported {
    pub hazard_id: HazardId,
    pub text: String,
    pub files: Vec<FileRef>,
    pub reported_at: Instant,
}

/// The town applied to lift a listing (and resume production) after the hazard's remediation
/// was verified and assessed: the city reviews on site within the rule set's `review_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingLiftRequested {
    pub hazard_id: HazardId,
    /// The assessment and the application (评估意见、复产申请), in words.
    pub text: String,
    pub requested_at: Instant,
}

/// The city verified the remediation on site and lifted the listing (摘牌): production may
/// resume and the listing no longer counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardDelisted {
    pub hazard_id: HazardId,
    pub note: String,
    pub delisted_at: Instant,
}

/// The enterprise's public QR token was issued or replaced; the previous one stops working.
/// Only the token's SHA-256 is kept, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicTokenRotated {
    /// Lower-case hex SHA-256 of the token.
    pub token_digest: String,
    pub rotated_at: Instant,
}

/// An accident at the enterprise was reported to the office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccidentReported {
    pub accident_id: uuid::Uuid,
    pub occurred_at: Instant,
    pub fatalities: u32,
    pub description: String,
    pub reported_at: Instant,
}

/// Why an enterprise was closed (domain.md §5, A08's 注销).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosureKind {
    /// 注销: the business registration was cancelled.
    Deregistered,
    /// 停业: operations stopped (the registration stands; it may reopen).
    Suspended,
    /// 迁出: it moved out of the platform's area.
    MovedAway,
    Other,
}

impl ClosureKind {
    /// Every kind, in declaration order.
    pub const ALL: [ClosureKind; 4] = [
        ClosureKind::Deregistered,
        ClosureKind::Suspended,
        ClosureKind::MovedAway,
        ClosureKind::Other,
    ];

    /// Returns the kind's stable name, as events and read models store it.
    pub fn name(self) -> &'static str {
        match self {
            ClosureKind::Deregistered => "deregistered",
            ClosureKind::Suspended => "suspended",
            ClosureKind::MovedAway => "moved_away",
            ClosureKind::Other => "other",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<ClosureKind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Returns what a person reads (已注销, 停业, …).
    pub fn label(self) -> &'static str {
        match self {
            ClosureKind::Deregistered => "已注销",
            ClosureKind::Suspended => "停业",
            ClosureKind::MovedAway => "已迁出",
            ClosureKind::Other => "已关闭",
        }
    }
}

/// The enterprise was closed (注销/停业) by the officer of its town or the city admin: from
/// `effective_at` (once recorded, `recorded_at`) it is no longer active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseClosed {
    pub kind: ClosureKind,
    pub reason: String,
    /// When the closure took effect (at or before `recorded_at`).
    pub effective_at: Instant,
    /// When it was entered on the platform.
    pub recorded_at: Instant,
}

/// A closed enterprise resumed operations: active again from `effective_at` (once recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseReopened {
    pub reason: String,
    /// When it resumed (at or after the closure took effect, at or before `recorded_at`).
    pub effective_at: Instant,
    /// When it was entered on the platform.
    pub recorded_at: Instant,
}
