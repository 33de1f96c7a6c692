//! The supervision gate's types: enums, outputs and the fields it adds to `Enterprise`.

use async_graphql::{Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_domain::EnterpriseId;
use anquan_domain::compliance::Veto;
use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::enterprise::event::HazardSource;
use anquan_domain::enterprise::hazard::{
    HazardRecord, HazardState as DomainHazardState, InspectionRecord, Listing, ListingState as DomainListingState,
};
use anquan_domain::rules::RuleSet;
use anquan_projections::compliance::{HazardStateFilter, HazardView, ListingFilter};

use crate::error::ApiError;
use crate::graphql::agency::types::{HazardLevel, StoredFile};
use crate::graphql::command::Recorded;
use crate::graphql::foundation::types::{Enterprise, PageInfo};

// ----- enums -----------------------------------------------------------------------------------

/// How an inspection was done.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::enterprise::event::InspectionKind")]
pub enum InspectionKind {
    /// On site (现场检查).
    OnSite,
    /// Online, on the enterprise's cloud file (网上检查).
    Online,
}

/// Who inspected.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::enterprise::event::InspectorLevel")]
pub enum InspectorLevel {
    /// The city office (市级).
    City,
    /// A town (镇/街道).
    Town,
}

/// The kind of an enforcement document (执法文书).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::enterprise::event::InspectionDocumentKind")]
pub enum InspectionDocumentKind {
    /// 现场检查记录.
    InspectionRecord,
    /// 责令限期整改指令书.
    RectificationOrder,
    /// 整改复查意见书.
    ReinspectionOpinion,
    /// 现场处理措施决定书.
    OnSiteMeasures,
    /// 强制措施决定书.
    CoerciveMeasures,
    /// Any other document.
    Other,
}

/// What a hazard concerns.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::enterprise::event::HazardCategory")]
pub enum HazardCategory {
    /// Electrical safety.
    Electrical,
    /// Fire safety.
    Fire,
    /// Machine guarding.
    MachineGuarding,
    /// Special equipment.
    SpecialEquipment,
    /// Hazardous chemicals.
    HazardousChemicals,
    /// Confined spaces.
    ConfinedSpace,
    /// Combustible dust.
    Dust,
    /// Work environment.
    WorkEnvironment,
    /// Records and management.
    Records,
    /// Anything else.
    Other,
}

/// How serious a general hazard is; it sets the default deadline.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::rules::Severity")]
pub enum HazardSeverity {
    /// Rectify by the end of the day found (当场整改).
    OnTheSpot,
    /// Minor.
    Minor,
    /// Moderate (the default).
    Moderate,
    /// Serious.
    Serious,
}

/// Where a hazard was found.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum HazardSourceKind {
    /// A government inspection (政府检查).
    GovernmentInspection,
    /// The enterprise's own inspection (企业自查).
    SelfInspection,
    /// A safety-service agency's visit (中介服务).
    AgencyService,
}

/// What a hazard is at an instant (a state: each hazard is in exactly one). OVERDUE wins over
/// OPEN and SUBMITTED: a hazard past its deadline is OVERDUE until it is closed. Example:
/// `{ hazards { nodes { id state } } }` answers `"state": "OVERDUE"` for a hazard whose
/// deadline passed while it waited for the enterprise.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum HazardState {
    /// Not closed, within its deadline, waiting for the enterprise or returned to it (待整改).
    Open,
    /// Within its deadline, a rectification awaits verification (已提交).
    Submitted,
    /// Not closed and past the deadline in force (逾期), submitted or not.
    Overdue,
    /// Verified and closed (已复核通过).
    Closed,
}

/// Which hazards a list selects at the instant asked for (a filter: the selections overlap).
/// Example: `hazards(filter: NOT_CLOSED)` lists every hazard still to be dealt with, overdue or
/// not; `hazards(filter: OVERDUE)` only those past their deadline.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "HazardFilter")]
pub enum HazardSelection {
    /// Every hazard not closed: OPEN, SUBMITTED and OVERDUE ones.
    NotClosed,
    /// Hazards whose rectification awaits verification, overdue or not.
    Submitted,
    /// Hazards not closed and past the deadline in force.
    Overdue,
    /// Hazards verified and closed.
    Closed,
}

impl From<HazardSelection> for HazardStateFilter {
    fn from(selection: HazardSelection) -> Self {
        match selection {
            HazardSelection::NotClosed => HazardStateFilter::NotClosed,
            HazardSelection::Submitted => HazardStateFilter::Submitted,
            HazardSelection::Overdue => HazardStateFilter::Overdue,
            HazardSelection::Closed => HazardStateFilter::Closed,
        }
    }
}

/// The four colours of risk (红橙黄蓝).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::rules::RiskColour")]
pub enum RiskColour {
    /// 红: 重大风险.
    Red,
    /// 橙: 较大风险.
    Orange,
    /// 黄: 一般风险.
    Yellow,
    /// 蓝: 低风险.
    Blue,
}

/// An inspector's verdict on a rectification.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum VerificationDecision {
    /// Accept: the hazard is closed (复核通过).
    Accept,
    /// Return with a reason: the hazard stays open (退回).
    Return,
}

/// What vetoes the enterprise's main responsibility.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum VetoKind {
    /// A government-found hazard past its deadline and not closed.
    OverdueGovernmentHazard,
    /// An open major hazard.
    OpenMajorHazard,
    /// A fatal accident within the rule set's window.
    FatalAccident,
}

pub(crate) fn hazard_level(level: anquan_domain::enterprise::event::HazardLevel) -> HazardLevel {
    match level {
        anquan_domain::enterprise::event::HazardLevel::General => HazardLevel::General,
        anquan_domain::enterprise::event::HazardLevel::Major => HazardLevel::Major,
    }
}

pub(crate) fn domain_level(level: HazardLevel) -> anquan_domain::enterprise::event::HazardLevel {
    match level {
        HazardLevel::General => anquan_domain::enterprise::event::HazardLevel::General,
        HazardLevel::Major => anquan_domain::enterprise::event::HazardLevel::Major,
    }
}

// ----- outputs ---------------------------------------------------------------------------------

/// What a supervision command did.
#[derive(SimpleObject)]
pub struct SupervisionPayload {
    /// What it wrote.
    #[graphql(flatten)]
    pub recorded: Recorded,
    /// The enterprise as the read models now show it.
    pub enterprise: Option<Enterprise>,
    /// The inspection recorded, if any.
    pub inspection_id: Option<ID>,
    /// The hazards recorded, in input order.
    pub hazard_ids: Vec<ID>,
    /// The rectification submitted or verified, if any.
    pub rectification_id: Option<ID>,
    /// The accident reported, if any.
    pub accident_id: Option<ID>,
}

/// An enterprise's four-colour risk at an instant.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Risk {
    /// The instant it is for.
    pub at: DateTime<Utc>,
    /// The colour.
    pub colour: RiskColour,
    /// The name of the rule-set rule that decided it (none for blue).
    pub rule: Option<String>,
    /// Applicable indicators implemented, in percent (rounded down).
    pub compliance_percent: u32,
    /// The rule set version whose colour rules decided it.
    pub rule_set: String,
}

#[async_graphql::ComplexObject]
impl Risk {
    /// The SHA-256 digest of the files of the rule set named by `ruleSet` (as published in the
    /// rule-set log).
    async fn rule_set_digest(&self, ctx: &async_graphql::Context<'_>) -> Result<String, crate::error::ApiError> {
        Ok(crate::graphql::app(ctx)?.rule_set_digest(&self.rule_set))
    }
}

/// A change of colour.
#[derive(SimpleObject, Clone)]
pub struct ColourChange {
    /// When the colour began.
    pub at: DateTime<Utc>,
    /// The colour from then on.
    pub colour: RiskColour,
    /// The rule that decided it (none for blue).
    pub rule: Option<String>,
}

/// A fact that makes the main responsibility "not implemented" (否决项).
#[derive(SimpleObject, Clone)]
#[graphql(name = "Veto")]
pub struct VetoView {
    /// What kind of veto.
    pub kind: VetoKind,
    /// The hazard, for hazard vetoes.
    pub hazard_id: Option<ID>,
    /// The deadline that passed, for an overdue hazard.
    pub deadline: Option<DateTime<Utc>>,
    /// The accident, for an accident veto.
    pub accident_id: Option<ID>,
    /// When the accident happened.
    pub occurred_at: Option<DateTime<Utc>>,
}

impl From<&Veto> for VetoView {
    fn from(veto: &Veto) -> Self {
        let empty = VetoView {
            kind: VetoKind::OpenMajorHazard,
            hazard_id: None,
            deadline: None,
            accident_id: None,
            occurred_at: None,
        };
        match veto {
            Veto::OverdueGovernmentHazard { hazard_id, deadline } => VetoView {
                kind: VetoKind::OverdueGovernmentHazard,
                hazard_id: Some(ID(hazard_id.to_string())),
                deadline: Some(*deadline),
                ..empty
            },
            Veto::OpenMajorHazard { hazard_id } => VetoView {
                hazard_id: Some(ID(hazard_id.to_string())),
                ..empty
            },
            Veto::FatalAccident {
                accident_id,
                occurred_at,
            } => VetoView {
                kind: VetoKind::FatalAccident,
                accident_id: Some(ID(accident_id.to_string())),
                occurred_at: Some(*occurred_at),
                ..empty
            },
        }
    }
}

/// An enforcement document of an inspection.
#[derive(SimpleObject, Clone)]
#[graphql(name = "InspectionDocument")]
pub struct InspectionDocumentView {
    /// Its kind.
    pub kind: InspectionDocumentKind,
    /// The stored file.
    pub file: StoredFile,
}

/// An inspection.
#[derive(SimpleObject, Clone)]
pub struct Inspection {
    /// The inspection id.
    pub id: ID,
    /// On site or online.
    pub kind: InspectionKind,
    /// City or town.
    pub level: InspectorLevel,
    /// When it was inspected.
    pub inspected_at: DateTime<Utc>,
    /// When it was entered.
    pub recorded_at: DateTime<Utc>,
    /// The inspectors.
    pub inspectors: Vec<String>,
    /// Notes.
    pub notes: String,
    /// Enforcement documents.
    pub documents: Vec<InspectionDocumentView>,
    /// The hazards it found.
    pub hazard_ids: Vec<ID>,
}

impl From<&InspectionRecord> for Inspection {
    fn from(record: &InspectionRecord) -> Self {
        Inspection {
            id: ID(record.inspection_id.to_string()),
            kind: record.kind.into(),
            level: record.level.into(),
            inspected_at: record.inspected_at,
            recorded_at: record.recorded_at,
            inspectors: record.inspectors.clone(),
            notes: record.notes.clone(),
            documents: record
                .documents
                .iter()
                .map(|document| InspectionDocumentView {
                    kind: document.kind.into(),
                    file: StoredFile::from(&document.file),
                })
                .collect(),
            hazard_ids: record.hazards.iter().map(|id| ID(id.to_string())).collect(),
        }
    }
}

/// An approved later deadline.
#[derive(SimpleObject, Clone)]
#[graphql(name = "DeadlineExtension")]
pub struct DeadlineExtensionView {
    /// The new deadline.
    pub deadline: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// When it was approved.
    pub extended_at: DateTime<Utc>,
}

/// A rectification and its verdict (as of the instant asked for).
#[derive(SimpleObject, Clone)]
#[graphql(name = "Rectification")]
pub struct RectificationView {
    /// The rectification id.
    pub id: ID,
    /// What was done.
    pub text: String,
    /// Photos.
    pub photos: Vec<StoredFile>,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// Accepted (true), returned (false) or awaiting verification (null).
    pub accepted: Option<bool>,
    /// Accepted at its first review (一次复核通过).
    pub first_time: Option<bool>,
    /// Why it was returned.
    pub reason: Option<String>,
    /// When it was verified.
    pub verified_at: Option<DateTime<Utc>>,
    /// When the enterprise closed the hazard with it itself (a self-reported hazard, as the
    /// rule set allows); null when an inspector verifies it.
    pub self_closed_at: Option<DateTime<Utc>>,
    /// Whether the rule set's sample drew the self-closure for a spot check (抽查).
    pub spot_check_drawn: Option<bool>,
    /// The spot check's result: the closure stands (true) or the hazard reopened (false); null
    /// when not checked.
    pub spot_check_passed: Option<bool>,
    /// Why a spot check failed.
    pub spot_check_reason: Option<String>,
    /// When it was spot-checked.
    pub spot_checked_at: Option<DateTime<Utc>>,
}

/// A hazard as it stood at an instant.
#[derive(SimpleObject, Clone)]
pub struct Hazard {
    /// The hazard id.
    pub id: ID,
    /// The enterprise.
    pub enterprise_id: ID,
    /// The enterprise's name (in lists across enterprises).
    pub enterprise_name: Option<String>,
    /// The enterprise's town (in lists across enterprises).
    pub town: Option<String>,
    /// Where it was found.
    pub source: HazardSourceKind,
    /// The inspection that found it, for government hazards.
    pub inspection_id: Option<ID>,
    /// The agency that found it, for agency hazards.
    pub agency_id: Option<ID>,
    /// For a hazard from an agency's service report: the report.
    pub report_id: Option<ID>,
    /// What it concerns.
    pub category: HazardCategory,
    /// General or major.
    pub level: HazardLevel,
    /// Severity of a general hazard.
    pub severity: Option<HazardSeverity>,
    /// The catalogue of a major hazard's criterion.
    pub criterion_catalogue: Option<String>,
    /// The item of that catalogue.
    pub criterion_item: Option<String>,
    /// The item's text, from the rule set.
    pub criterion_text: Option<String>,
    /// A major hazard citing no catalogue item: its basis in words.
    pub basis: Option<String>,
    /// Major, with a free-text basis not yet confirmed by an official at `at`: counts as
    /// general (no veto, no red) until confirmed.
    pub pending_confirmation: bool,
    /// When an official confirmed the free-text basis, if by `at`.
    pub basis_confirmed_at: Option<DateTime<Utc>>,
    /// What is wrong.
    pub description: String,
    /// Photos.
    pub photos: Vec<StoredFile>,
    /// When it was found.
    pub found_at: DateTime<Utc>,
    /// When it was entered.
    pub recorded_at: DateTime<Utc>,
    /// The deadline set when found.
    pub initial_deadline: DateTime<Utc>,
    /// The deadline in force at `at` (after extensions approved by then).
    pub deadline: DateTime<Utc>,
    /// Its state at `at` (OVERDUE wins over OPEN and SUBMITTED).
    pub state: HazardState,
    /// Not closed and past the deadline in force at `at`.
    pub overdue: bool,
    /// When it was closed, if by `at`.
    pub closed_at: Option<DateTime<Utc>>,
    /// Whether the accepted rectification passed at its first review (when closed).
    pub first_time_pass: Option<bool>,
    /// Extensions approved by `at`.
    pub extensions: Vec<DeadlineExtensionView>,
    /// Rectifications submitted by `at`, oldest first.
    pub rectifications: Vec<RectificationView>,
    /// Its listed supervision (挂牌督办) as it stood at `at`; null when not listed by then.
    pub listing: Option<HazardListing>,
    /// The instant it is shown at.
    pub at: DateTime<Utc>,
}

/// Where a listed supervision (挂牌督办) stands at an instant.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ListingState {
    /// Listed by the city; remediation under way (督办中).
    Listed,
    /// The town applied to lift it; the city reviews on site (申请摘牌).
    LiftRequested,
    /// Lifted by the city after its review (已摘牌).
    Lifted,
}

/// Which listed hazards a list selects at the instant asked for (a filter: IN_FORCE covers
/// LISTED and LIFT_REQUESTED; REVIEW_OVERDUE is part of LIFT_REQUESTED).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ListingSelection {
    /// Listed and not yet lifted.
    InForce,
    /// A lift was requested and the city has not decided.
    LiftRequested,
    /// The city's on-site review of a lift request is past the rule set's review days.
    ReviewOverdue,
    /// Lifted by the city.
    Lifted,
}

/// A progress report of a listed hazard, by the town.
#[derive(SimpleObject, Clone)]
pub struct ListingProgressView {
    /// What was reported.
    pub text: String,
    /// Evidence files.
    pub files: Vec<StoredFile>,
    /// When it was reported.
    pub reported_at: DateTime<Utc>,
}

/// A hazard's listed supervision (挂牌督办) as it stood at an instant. While in force the rule
/// set may count the hazard as an open major hazard (veto, red) even once its rectification is
/// verified: `[listed_supervision]` in `supervision.toml`.
#[derive(SimpleObject, Clone)]
pub struct HazardListing {
    /// Its state at `at`.
    pub state: ListingState,
    /// The listing document's number (督办文号).
    pub document_number: String,
    /// Remediation is due by this instant (督办期限).
    pub deadline: DateTime<Utc>,
    /// Production is suspended until the listing is lifted.
    pub production_suspended: bool,
    /// In force at `at`, the hazard not closed by then and `at` past the listing's deadline.
    pub overdue: bool,
    /// When the city listed it.
    pub listed_at: DateTime<Utc>,
    /// Progress reports by `at`, oldest first.
    pub progress: Vec<ListingProgressView>,
    /// The town's application to lift it (assessment and request to resume), if by `at`.
    pub lift_request: Option<String>,
    /// When the lift was requested, if by `at`.
    pub lift_requested_at: Option<DateTime<Utc>>,
    /// When the city's on-site review of the lift request is due (the rule set's review days
    /// after the request).
    pub review_due: Option<DateTime<Utc>>,
    /// The review is past due at `at` and the listing not lifted.
    pub review_overdue: bool,
    /// When the city lifted it, if by `at`.
    pub lifted_at: Option<DateTime<Utc>>,
    /// The city's note on lifting it.
    pub lift_note: Option<String>,
}

impl HazardListing {
    /// The listing as it stood at `at`, or `None` before it was listed.
    fn view_at(listing: &Listing, hazard_closed: bool, review_days: u32, at: DateTime<Utc>) -> Option<Self> {
        let state = match listing.state_at(at)? {
            DomainListingState::Listed => ListingState::Listed,
            DomainListingState::LiftRequested => ListingState::LiftRequested,
            DomainListingState::Lifted => ListingState::Lifted,
        };
        let request = listing
            .lift_request
            .as_ref()
            .filter(|request| request.requested_at <= at);
        let lifted = listing.lifted.as_ref().filter(|lifted| lifted.delisted_at <= at);
        Some(HazardListing {
            state,
            document_number: listing.document_number.clone(),
            deadline: listing.deadline,
            production_suspended: listing.production_suspended,
            overdue: listing.in_force_at(at) && !hazard_closed && at > listing.deadline,
            listed_at: listing.listed_at,
            progress: listing
                .progress
                .iter()
                .filter(|progress| progress.reported_at <= at)
                .map(|progress| ListingProgressView {
                    text: progress.text.clone(),
                    files: progress.files.iter().map(StoredFile::from).collect(),
                    reported_at: progress.reported_at,
                })
                .collect(),
            lift_request: request.map(|request| request.text.clone()),
            lift_requested_at: request.map(|request| request.requested_at),
            review_due: request.and_then(|_| listing.review_due(review_days)),
            review_overdue: listing.review_overdue_at(at, review_days),
            lifted_at: lifted.map(|lifted| lifted.delisted_at),
            lift_note: lifted.map(|lifted| lifted.note.clone()),
        })
    }
}

impl ListingSelection {
    /// The read model's filter, with the rule set's review days.
    pub(crate) fn filter(self, review_days: u32) -> ListingFilter {
        match self {
            ListingSelection::InForce => ListingFilter::InForce,
            ListingSelection::LiftRequested => ListingFilter::LiftRequested,
            ListingSelection::ReviewOverdue => ListingFilter::ReviewOverdue { review_days },
            ListingSelection::Lifted => ListingFilter::Lifted,
        }
    }
}

impl Hazard {
    /// The hazard as it stood at `at`.
    pub fn view_at(enterprise_id: EnterpriseId, record: &HazardRecord, rules: &RuleSet, at: DateTime<Utc>) -> Self {
        let overdue = record.overdue_at(at);
        let state = match record.state_at(at) {
            DomainHazardState::Closed => HazardState::Closed,
            _ if overdue => HazardState::Overdue,
            DomainHazardState::Submitted => HazardState::Submitted,
            DomainHazardState::Open => HazardState::Open,
        };
        let (source, inspection_id, agency_id, report_id) = match &record.source {
            HazardSource::GovernmentInspection { inspection_id } => (
                HazardSourceKind::GovernmentInspection,
                Some(ID(inspection_id.to_string())),
                None,
                None,
            ),
            HazardSource::SelfInspection => (HazardSourceKind::SelfInspection, None, None, None),
            HazardSource::AgencyService { agency_id, report_id } => (
                HazardSourceKind::AgencyService,
                None,
                Some(ID(agency_id.to_string())),
                Some(ID(report_id.to_string())),
            ),
        };
        let criterion_text = record.criterion.as_ref().and_then(|criterion| {
            rules
                .supervision
                .major_hazard_catalogues
                .iter()
                .find(|catalogue| catalogue.code == criterion.catalogue)
                .and_then(|catalogue| catalogue.items.iter().find(|item| item.code == criterion.item))
                .map(|item| item.text.clone())
        });
        let closed_at = record.closed_at(at);
        let rectifications: Vec<RectificationView> = record
            .rectifications
            .iter()
            .filter(|rectification| rectification.submitted_at <= at)
            .map(|rectification| {
                let verdict = rectification
                    .verdict
                    .as_ref()
                    .filter(|verdict| verdict.verified_at <= at);
                let closure = rectification
                    .self_closure
                    .as_ref()
                    .filter(|closure| closure.closed_at <= at);
                let check = closure
                    .and_then(|closure| closure.spot_check.as_ref())
                    .filter(|check| check.checked_at <= at);
                RectificationView {
                    id: ID(rectification.rectification_id.to_string()),
                    text: rectification.text.clone(),
                    photos: rectification.photos.iter().map(StoredFile::from).collect(),
                    submitted_at: rectification.submitted_at,
                    accepted: verdict.map(|verdict| verdict.accepted),
                    first_time: verdict
                        .filter(|verdict| verdict.accepted)
                        .map(|verdict| verdict.first_time),
                    reason: verdict
                        .filter(|verdict| !verdict.accepted)
                        .map(|verdict| verdict.reason.clone()),
                    verified_at: verdict.map(|verdict| verdict.verified_at),
                    self_closed_at: closure.map(|closure| closure.closed_at),
                    spot_check_drawn: closure.map(|closure| closure.spot_check_drawn),
                    spot_check_passed: check.map(|check| check.passed),
                    spot_check_reason: check.filter(|check| !check.passed).map(|check| check.reason.clone()),
                    spot_checked_at: check.map(|check| check.checked_at),
                }
            })
            .collect();
        let first_time_pass = closed_at.and_then(|_| {
            rectifications
                .iter()
                .find(|rectification| rectification.accepted == Some(true))
                .and_then(|rectification| rectification.first_time)
        });
        Hazard {
            id: ID(record.hazard_id.to_string()),
            enterprise_id: ID(enterprise_id.to_string()),
            enterprise_name: None,
            town: None,
            source,
            inspection_id,
            agency_id,
            report_id,
            category: record.category.into(),
            level: hazard_level(record.level),
            severity: record.severity.map(Into::into),
            criterion_catalogue: record.criterion.as_ref().map(|criterion| criterion.catalogue.clone()),
            criterion_item: record.criterion.as_ref().map(|criterion| criterion.item.clone()),
            criterion_text,
            basis: record.free_text_basis.as_ref().map(|basis| basis.basis.clone()),
            pending_confirmation: record.pending_confirmation_at(at),
            basis_confirmed_at: record
                .free_text_basis
                .as_ref()
                .and_then(|basis| basis.confirmation.as_ref())
                .map(|confirmation| confirmation.confirmed_at)
                .filter(|confirmed_at| *confirmed_at <= at),
            description: record.description.clone(),
            photos: record.photos.iter().map(StoredFile::from).collect(),
            found_at: record.found_at,
            recorded_at: record.recorded_at,
            initial_deadline: record.initial_deadline,
            deadline: record.deadline_at(at),
            state,
            overdue,
            closed_at,
            first_time_pass,
            extensions: record
                .extensions
                .iter()
                .filter(|extension| extension.extended_at <= at)
                .map(|extension| DeadlineExtensionView {
                    deadline: extension.deadline,
                    reason: extension.reason.clone(),
                    extended_at: extension.extended_at,
                })
                .collect(),
            rectifications,
            listing: record.listing.as_ref().and_then(|listing| {
                let review_days = rules.supervision.listed_supervision.review_days;
                HazardListing::view_at(listing, closed_at.is_some(), review_days, at)
            }),
            at,
        }
    }

    pub(crate) fn from_view(view: &HazardView, rules: &RuleSet, at: DateTime<Utc>) -> Self {
        Hazard {
            enterprise_name: Some(view.enterprise_name.clone()),
            town: Some(view.town.to_string()),
            ..Hazard::view_at(view.enterprise_id, &view.record, rules, at)
        }
    }
}

/// A page of hazards.
#[derive(SimpleObject, Clone)]
pub struct HazardConnection {
    /// The hazards of this page.
    pub nodes: Vec<Hazard>,
    /// Where the page ends.
    pub page_info: PageInfo,
}

/// How many enterprises have each colour.
#[derive(SimpleObject, Clone)]
pub struct ColourDistribution {
    /// The instant it is for.
    pub at: DateTime<Utc>,
    /// The town counted (none: every town).
    pub town: Option<String>,
    /// Red enterprises.
    pub red: u32,
    /// Orange enterprises.
    pub orange: u32,
    /// Yellow enterprises.
    pub yellow: u32,
    /// Blue enterprises.
    pub blue: u32,
    /// False when the count stopped at the scan limit.
    pub complete: bool,
    /// The rule set version whose colour rules were applied: the one in force at `at` (by the
    /// rule-set log), unless `ruleSet` or the request named another.
    pub rule_set: String,
    /// The SHA-256 digest of that rule set's files (as published in the rule-set log).
    pub rule_set_digest: String,
}

/// A step of the escalation path.
#[derive(SimpleObject, Clone)]
pub struct EscalationStep {
    /// Stable code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
}

/// An enterprise on an inspector's plan.
#[derive(SimpleObject, Clone)]
pub struct SupervisionPlanEntry {
    /// The enterprise.
    pub enterprise_id: ID,
    /// Its name.
    pub name: String,
    /// Its town.
    pub town: String,
    /// Its risk at the plan's instant.
    pub risk: Risk,
    /// An online check is due by the period end.
    pub online_check_due: bool,
    /// An on-site inspection is due by the period end.
    pub on_site_due: bool,
    /// On the annual enforcement plan.
    pub enforcement_plan: bool,
    /// The last online check.
    pub last_online_check: Option<DateTime<Utc>>,
    /// The last on-site inspection.
    pub last_on_site: Option<DateTime<Utc>>,
    /// Its step on the escalation path.
    pub escalation: Option<EscalationStep>,
}

/// The enterprises due a check in a period, by their colour's cadence.
#[derive(SimpleObject, Clone)]
pub struct SupervisionPlan {
    /// The town (none: every town).
    pub town: Option<String>,
    /// The end of the period planned.
    pub period_end: DateTime<Utc>,
    /// The instant colours are taken at.
    pub at: DateTime<Utc>,
    /// The enterprises due, red first.
    pub entries: Vec<SupervisionPlanEntry>,
    /// False when the plan stopped at the scan limit.
    pub complete: bool,
}

pub(crate) fn risk_view(assessment: &anquan_domain::risk::RiskAssessment, rules: &RuleSet) -> Risk {
    Risk {
        at: assessment.at,
        colour: assessment.colour.into(),
        rule: assessment.rule.clone(),
        compliance_percent: assessment.compliance_percent,
        rule_set: rules.version.clone(),
    }
}

// ----- fields on Enterprise --------------------------------------------------------------------

/// The enterprise's risk at `at`.
pub(crate) fn enterprise_risk(file: &EnterpriseFile, rules: &RuleSet, at: DateTime<Utc>) -> Option<Risk> {
    anquan_domain::risk::assess(file, rules, at).map(|assessment| risk_view(&assessment, rules))
}

/// The enterprise's colour changes from `from` to `to`.
pub(crate) fn colour_history(
    file: &EnterpriseFile,
    rules: &RuleSet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ColourChange>, ApiError> {
    if to < from {
        return Err(ApiError::bad_input("结束时间（to）不能早于开始时间（from）"));
    }
    Ok(anquan_domain::risk::colour_history(file, rules, from, to)
        .into_iter()
        .map(|change| ColourChange {
            at: change.at,
            colour: change.colour.into(),
            rule: change.rule,
        })
        .collect())
}

/// The enterprise's vetoes at `at`.
pub(crate) fn vetoes(file: &EnterpriseFile, rules: &RuleSet, at: DateTime<Utc>) -> Vec<VetoView> {
    anquan_domain::compliance::vetoes(file, rules, at)
        .iter()
        .map(VetoView::from)
        .collect()
}

/// The enterprise's hazards known at `at`, optionally only those `filter` selects, oldest found
/// first.
pub(crate) fn enterprise_hazards(
    file: &EnterpriseFile,
    rules: &RuleSet,
    at: DateTime<Utc>,
    filter: Option<HazardSelection>,
) -> Vec<Hazard> {
    let Some(registration) = &file.registration else {
        return Vec::new();
    };
    let mut hazards: Vec<&HazardRecord> = file
        .hazards
        .values()
        .filter(|hazard| hazard.known_at(at))
        .filter(|hazard| filter.is_none_or(|filter| HazardStateFilter::from(filter).matches(hazard, at)))
        .collect();
    hazards.sort_by_key(|hazard| (hazard.found_at, hazard.hazard_id));
    hazards
        .into_iter()
        .map(|hazard| Hazard::view_at(registration.enterprise_id, hazard, rules, at))
        .collect()
}

/// The enterprise's inspections recorded by `at`, newest first.
pub(crate) fn enterprise_inspections(file: &EnterpriseFile, at: DateTime<Utc>) -> Vec<Inspection> {
    let mut inspections: Vec<&InspectionRecord> = file
        .inspections
        .values()
        .filter(|inspection| inspection.recorded_at <= at)
        .collect();
    inspections.sort_by_key(|inspection| std::cmp::Reverse((inspection.inspected_at, inspection.inspection_id)));
    inspections.into_iter().map(Inspection::from).collect()
}
