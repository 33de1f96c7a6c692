//! The supervision gate's queries, mutations and subscriptions: inspections, hazards and their
//! rectification, accidents, the four-colour risk, the overdue queue and the inspector's plan.
//! Status is computed by the domain at the instant asked for (`asOf`, default now); nothing here
//! decides a rule.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Subscription, Upload};
use chrono::{DateTime, Utc};
use futures::Stream;
use uuid::Uuid;

use anquan_domain::compliance::Veto;
use anquan_domain::enterprise::event::{CriterionRef, HazardSource, InspectionDocument};
use anquan_domain::enterprise::hazard::{HazardRecord, HazardState as DomainHazardState, InspectionRecord};
use anquan_domain::enterprise::supervision::{
    ExtendHazardDeadline, FILES_MAX, NewHazard, RecordHazard, RecordInspection, ReportAccident, SubmitRectification,
    VerifyRectification,
};
use anquan_domain::enterprise::{EnterpriseCommand, EnterpriseFile, FileRef};
use anquan_domain::rules::RuleSet;
use anquan_domain::{Actor, EnterpriseId, HazardId, InspectionId, Role, Town};
use anquan_projections::compliance::{self as read_model, HazardFilter, HazardStateFilter, HazardView};

use super::agency_types::{HazardLevel, StoredFile};
use super::query::{page_size, parse_enterprise_id, scoped_town};
use super::types::{Enterprise, PageInfo};
use super::{actor, app, created_id, instant_arg, optional_instant_arg, parse_command_id};
use crate::AppState;
use crate::blobs::StagedFile;
use crate::error::ApiError;
use crate::watcher::SupervisionEvent;

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

/// Where a hazard stands at an instant. As a filter, OPEN means "not closed" (submitted and
/// overdue ones included); as a hazard's state, OVERDUE wins over OPEN and SUBMITTED.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum HazardState {
    /// Not closed: waiting for the enterprise, or returned to it (待整改).
    Open,
    /// A rectification awaits verification (已提交).
    Submitted,
    /// Not closed and past the deadline in force (逾期).
    Overdue,
    /// Verified and closed (已复核通过).
    Closed,
}

impl From<HazardState> for HazardStateFilter {
    fn from(state: HazardState) -> Self {
        match state {
            HazardState::Open => HazardStateFilter::Open,
            HazardState::Submitted => HazardStateFilter::Submitted,
            HazardState::Overdue => HazardStateFilter::Overdue,
            HazardState::Closed => HazardStateFilter::Closed,
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

fn hazard_level(level: anquan_domain::enterprise::event::HazardLevel) -> HazardLevel {
    match level {
        anquan_domain::enterprise::event::HazardLevel::General => HazardLevel::General,
        anquan_domain::enterprise::event::HazardLevel::Major => HazardLevel::Major,
    }
}

fn domain_level(level: HazardLevel) -> anquan_domain::enterprise::event::HazardLevel {
    match level {
        HazardLevel::General => anquan_domain::enterprise::event::HazardLevel::General,
        HazardLevel::Major => anquan_domain::enterprise::event::HazardLevel::Major,
    }
}

// ----- inputs ----------------------------------------------------------------------------------

/// A hazard as found.
#[derive(InputObject)]
pub struct NewHazardInput {
    /// What it concerns.
    pub category: HazardCategory,
    /// General (一般) or major (重大).
    pub level: HazardLevel,
    /// For a general hazard: sets the default deadline (moderate if absent).
    pub severity: Option<HazardSeverity>,
    /// For a major hazard: the catalogue in force on the day found (e.g. `mem10_2023`).
    pub criterion_catalogue: Option<String>,
    /// For a major hazard: the item of that catalogue (e.g. `dust-3`).
    pub criterion_item: Option<String>,
    /// What is wrong.
    pub description: String,
    /// Overrides the rule set's default deadline; must be after the finding.
    pub deadline: Option<DateTime<Utc>>,
    /// Indexes into the mutation's `photos` list of the photos of this hazard (recordInspection);
    /// recordHazard takes every photo when absent.
    pub photo_indexes: Option<Vec<u32>>,
}

/// Record an inspection and the hazards it found. Enforcement documents come as the mutation's
/// `documents` uploads, with `documentKinds` giving the kind of each, in order.
#[derive(InputObject)]
pub struct RecordInspectionInput {
    /// The enterprise inspected.
    pub enterprise_id: ID,
    /// On site or online.
    pub kind: InspectionKind,
    /// When it was inspected (not in the future).
    pub inspected_at: DateTime<Utc>,
    /// The inspectors' names.
    pub inspectors: Vec<String>,
    /// Notes.
    #[graphql(default)]
    pub notes: String,
    /// The kind of each uploaded document, in the order of `documents` (OTHER if missing).
    #[graphql(default)]
    pub document_kinds: Vec<InspectionDocumentKind>,
    /// The hazards found.
    #[graphql(default)]
    pub hazards: Vec<NewHazardInput>,
}

/// Record a hazard the enterprise found itself (企业自查).
#[derive(InputObject)]
pub struct RecordHazardInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard.
    pub hazard: NewHazardInput,
}

/// Approve a later deadline.
#[derive(InputObject)]
pub struct ExtendHazardDeadlineInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard.
    pub hazard_id: ID,
    /// The new deadline; must be later than the one in force.
    pub deadline: DateTime<Utc>,
    /// Why it is extended.
    pub reason: String,
}

/// Submit a rectification; photos come as the mutation's `photos` uploads.
#[derive(InputObject)]
pub struct SubmitRectificationInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard rectified.
    pub hazard_id: ID,
    /// What was done.
    pub text: String,
}

/// Accept or return a submitted rectification.
#[derive(InputObject)]
pub struct VerifyRectificationInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard.
    pub hazard_id: ID,
    /// The rectification awaiting a verdict.
    pub rectification_id: ID,
    /// Accept or return.
    pub decision: VerificationDecision,
    /// Required when returning: what is still wrong.
    pub reason: Option<String>,
}

/// Report an accident.
#[derive(InputObject)]
pub struct ReportAccidentInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// People killed.
    pub fatalities: u32,
    /// What happened.
    pub description: String,
}

// ----- outputs ---------------------------------------------------------------------------------

/// What a supervision command did.
#[derive(SimpleObject)]
pub struct SupervisionPayload {
    /// The stream version after the command.
    pub stream_version: Option<u64>,
    /// The global position of the last event written.
    pub position: Option<u64>,
    /// True when `commandId` had been used before: nothing new was written.
    pub duplicate: bool,
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
    /// The instant it is shown at.
    pub at: DateTime<Utc>,
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
        let (source, inspection_id, agency_id) = match &record.source {
            HazardSource::GovernmentInspection { inspection_id } => (
                HazardSourceKind::GovernmentInspection,
                Some(ID(inspection_id.to_string())),
                None,
            ),
            HazardSource::SelfInspection => (HazardSourceKind::SelfInspection, None, None),
            HazardSource::AgencyService { agency_id, .. } => {
                (HazardSourceKind::AgencyService, None, Some(ID(agency_id.to_string())))
            }
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
            category: record.category.into(),
            level: hazard_level(record.level),
            severity: record.severity.map(Into::into),
            criterion_catalogue: record.criterion.as_ref().map(|criterion| criterion.catalogue.clone()),
            criterion_item: record.criterion.as_ref().map(|criterion| criterion.item.clone()),
            criterion_text,
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
            at,
        }
    }

    fn from_view(view: &HazardView, rules: &RuleSet, at: DateTime<Utc>) -> Self {
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
    /// The rule set version whose colour rules were applied.
    pub rule_set: String,
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

fn risk_view(assessment: &anquan_domain::risk::RiskAssessment, rules: &RuleSet) -> Risk {
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
pub(super) fn enterprise_risk(file: &EnterpriseFile, rules: &RuleSet, at: DateTime<Utc>) -> Option<Risk> {
    anquan_domain::risk::assess(file, rules, at).map(|assessment| risk_view(&assessment, rules))
}

/// The enterprise's colour changes from `from` to `to`.
pub(super) fn colour_history(
    file: &EnterpriseFile,
    rules: &RuleSet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ColourChange>, ApiError> {
    if to < from {
        return Err(ApiError::bad_input("`to` must not be before `from`"));
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
pub(super) fn vetoes(file: &EnterpriseFile, rules: &RuleSet, at: DateTime<Utc>) -> Vec<VetoView> {
    anquan_domain::compliance::vetoes(file, rules, at)
        .iter()
        .map(VetoView::from)
        .collect()
}

/// The enterprise's hazards known at `at`, optionally in one state, oldest found first.
pub(super) fn enterprise_hazards(
    file: &EnterpriseFile,
    rules: &RuleSet,
    at: DateTime<Utc>,
    state: Option<HazardState>,
) -> Vec<Hazard> {
    let Some(registration) = &file.registration else {
        return Vec::new();
    };
    let mut hazards: Vec<&HazardRecord> = file
        .hazards
        .values()
        .filter(|hazard| hazard.known_at(at))
        .filter(|hazard| state.is_none_or(|state| HazardStateFilter::from(state).matches(hazard, at)))
        .collect();
    hazards.sort_by_key(|hazard| (hazard.found_at, hazard.hazard_id));
    hazards
        .into_iter()
        .map(|hazard| Hazard::view_at(registration.enterprise_id, hazard, rules, at))
        .collect()
}

/// The enterprise's inspections recorded by `at`, newest first.
pub(super) fn enterprise_inspections(file: &EnterpriseFile, at: DateTime<Utc>) -> Vec<Inspection> {
    let mut inspections: Vec<&InspectionRecord> = file
        .inspections
        .values()
        .filter(|inspection| inspection.recorded_at <= at)
        .collect();
    inspections.sort_by_key(|inspection| std::cmp::Reverse((inspection.inspected_at, inspection.inspection_id)));
    inspections.into_iter().map(Inspection::from).collect()
}

// ----- queries ---------------------------------------------------------------------------------

/// Queries of the supervision gate.
#[derive(Default)]
pub struct SupervisionQuery;

#[Object]
impl SupervisionQuery {
    /// Hazards known at `asOf` (default now), by town, enterprise and state at that instant,
    /// ordered by id. Town officers and inspectors see their town, the city every town, an
    /// enterprise only its own hazards.
    #[expect(clippy::too_many_arguments, reason = "one argument per GraphQL filter")]
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn hazards(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        enterprise_id: Option<ID>,
        state: Option<HazardState>,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<HazardConnection, ApiError> {
        let app = app(ctx)?;
        let enterprise = enterprise_id.as_ref().map(parse_enterprise_id).transpose()?;
        let (town, enterprise) = hazard_scope(ctx, town, enterprise)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let filter = HazardFilter {
            town,
            enterprise,
            state: state.map(Into::into),
        };
        let page = read_model::hazards(
            app.compliance_read_models()?,
            &filter,
            at,
            page_size(first)?,
            after.as_deref(),
        )
        .await?;
        Ok(connection(&page, &app.rules, at))
    }

    /// A town's hazards overdue at `asOf` (default now), the oldest deadline in force first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn overdue_queue(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<HazardConnection, ApiError> {
        let app = app(ctx)?;
        let town = scoped_town(ctx, town)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let page = read_model::overdue_queue(
            app.compliance_read_models()?,
            town.as_ref(),
            at,
            page_size(first)?,
            after.as_deref(),
        )
        .await?;
        Ok(connection(&page, &app.rules, at))
    }

    /// How many enterprises of a town (or all) have each colour at `asOf` (default now) under
    /// rule set `ruleSet` (default: the request's, see `enterprise`).
    async fn colour_distribution(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<ColourDistribution, ApiError> {
        let app = app(ctx)?;
        let rules = super::audit::rules_for(app, rule_set.as_deref())?;
        let town = super::query::statistics_town(ctx, town)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let counts = read_model::colour_distribution(app.compliance_read_models()?, &rules, town.as_ref(), at).await?;
        Ok(ColourDistribution {
            at,
            town: town.map(|town| town.to_string()),
            red: counts.red,
            orange: counts.orange,
            yellow: counts.yellow,
            blue: counts.blue,
            complete: counts.complete,
            rule_set: rules.version.clone(),
        })
    }

    /// The enterprises of a town due an online check or an on-site inspection by `periodEnd`
    /// by their colour's cadence (colour at `asOf`, default now), with their escalation step,
    /// under rule set `ruleSet` (default: the request's, see `enterprise`).
    async fn supervision_plan(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        period_end: DateTime<Utc>,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<SupervisionPlan, ApiError> {
        let app = app(ctx)?;
        let rules = super::audit::rules_for(app, rule_set.as_deref())?;
        let town = scoped_town(ctx, town)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let period_end = instant_arg("periodEnd", period_end)?;
        if period_end < at {
            return Err(ApiError::bad_input("periodEnd must not be before asOf"));
        }
        let (entries, complete) =
            read_model::supervision_plan(app.compliance_read_models()?, &rules, town.as_ref(), period_end, at).await?;
        Ok(SupervisionPlan {
            town: town.map(|town| town.to_string()),
            period_end,
            at,
            entries: entries
                .iter()
                .map(|entry| SupervisionPlanEntry {
                    enterprise_id: ID(entry.registration.enterprise_id.to_string()),
                    name: entry.registration.name.clone(),
                    town: entry.registration.town.to_string(),
                    risk: risk_view(&entry.assessment, &rules),
                    online_check_due: entry.checks.online_check_due,
                    on_site_due: entry.checks.on_site_due,
                    enforcement_plan: entry.checks.enforcement_plan,
                    last_online_check: entry.checks.last_online_check,
                    last_on_site: entry.checks.last_on_site,
                    escalation: entry.escalation.as_ref().map(|step| EscalationStep {
                        code: step.code.clone(),
                        name_zh: step.name_zh.clone(),
                        name_en: step.name_en.clone(),
                    }),
                })
                .collect(),
            complete,
        })
    }
}

/// The town and enterprise a hazard list may show: enterprises only their own, towns their town.
fn hazard_scope(
    ctx: &Context<'_>,
    town: Option<String>,
    enterprise: Option<EnterpriseId>,
) -> Result<(Option<Town>, Option<EnterpriseId>), ApiError> {
    let actor = actor(ctx)?;
    if let Role::Enterprise { enterprise_id } = &actor.role {
        if enterprise.is_some_and(|asked| asked != *enterprise_id) {
            return Err(ApiError::Forbidden(
                "an enterprise sees only its own hazards".to_owned(),
            ));
        }
        if town.is_some() {
            return Err(ApiError::Forbidden("an enterprise may not list a town".to_owned()));
        }
        return Ok((None, Some(*enterprise_id)));
    }
    Ok((scoped_town(ctx, town)?, enterprise))
}

fn connection(page: &read_model::Page<HazardView>, rules: &RuleSet, at: DateTime<Utc>) -> HazardConnection {
    HazardConnection {
        nodes: page
            .items
            .iter()
            .map(|view| Hazard::from_view(view, rules, at))
            .collect(),
        page_info: PageInfo {
            has_next_page: page.has_next,
            end_cursor: page.end_cursor.clone(),
        },
    }
}

// ----- mutations -------------------------------------------------------------------------------

/// Mutations of the supervision gate.
#[derive(Default)]
pub struct SupervisionMutation;

#[Object]
impl SupervisionMutation {
    /// Records an inspection and the hazards it found (inspectors of the enterprise's town, or
    /// the city). GraphQL multipart request: `documents` are the enforcement documents,
    /// `photos` the hazard photos referred to by `photoIndexes`.
    async fn record_inspection(
        &self,
        ctx: &Context<'_>,
        input: RecordInspectionInput,
        #[graphql(default)] documents: Vec<Upload>,
        #[graphql(default)] photos: Vec<Upload>,
        command_id: Option<ID>,
    ) -> Result<SupervisionPayload, ApiError> {
        let app = app(ctx)?;
        actor(ctx)?;
        let enterprise_id = parse_enterprise_id(&input.enterprise_id)?;
        let mut staged = crate::uploads::stage(ctx, app, &documents, "documents", FILES_MAX)?;
        let staged_photos = crate::uploads::stage(ctx, app, &photos, "photos", FILES_MAX)?;
        let documents = file_refs(&staged);
        let photos = file_refs(&staged_photos);
        staged.extend(staged_photos);
        let documents = documents
            .into_iter()
            .enumerate()
            .map(|(index, file)| InspectionDocument {
                kind: input
                    .document_kinds
                    .get(index)
                    .copied()
                    .unwrap_or(InspectionDocumentKind::Other)
                    .into(),
                file,
            })
            .collect();
        let created_by = parse_command_id(command_id.as_ref())?;
        let hazards = input
            .hazards
            .into_iter()
            .enumerate()
            .map(|(index, hazard)| {
                let hazard_id = HazardId(created_id(created_by, "hazard", index));
                new_hazard(hazard_id, hazard, &photos, false)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inspection_id = InspectionId(created_id(created_by, "inspection", 0));
        let hazard_ids = hazards.iter().map(|hazard| hazard.hazard_id).collect();
        let command = EnterpriseCommand::RecordInspection(RecordInspection {
            enterprise_id,
            inspection_id,
            kind: input.kind.into(),
            inspected_at: input.inspected_at,
            inspectors: input.inspectors,
            documents,
            notes: input.notes,
            hazards,
        });
        let created = Created {
            inspection_id: Some(inspection_id),
            hazard_ids,
            ..Created::default()
        };
        run(ctx, command, command_id, None, created, &staged).await
    }

    /// Records a hazard the enterprise found itself (the enterprise, or the city).
    async fn record_hazard(
        &self,
        ctx: &Context<'_>,
        input: RecordHazardInput,
        #[graphql(default)] photos: Vec<Upload>,
        command_id: Option<ID>,
    ) -> Result<SupervisionPayload, ApiError> {
        let app = app(ctx)?;
        actor(ctx)?;
        let enterprise_id = parse_enterprise_id(&input.enterprise_id)?;
        let staged = crate::uploads::stage(ctx, app, &photos, "photos", FILES_MAX)?;
        let photos = file_refs(&staged);
        let hazard_id = HazardId(created_id(parse_command_id(command_id.as_ref())?, "hazard", 0));
        let hazard = new_hazard(hazard_id, input.hazard, &photos, true)?;
        let created = Created {
            hazard_ids: vec![hazard.hazard_id],
            ..Created::default()
        };
        let command = EnterpriseCommand::RecordHazard(RecordHazard {
            enterprise_id,
            source: HazardSource::SelfInspection,
            hazard,
        });
        run(ctx, command, command_id, None, created, &staged).await
    }

    /// Approves a later deadline for an open hazard (inspectors of its town, or the city).
    async fn extend_hazard_deadline(
        &self,
        ctx: &Context<'_>,
        input: ExtendHazardDeadlineInput,
        command_id: Option<ID>,
        expected_version: Option<u64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let command = EnterpriseCommand::ExtendHazardDeadline(ExtendHazardDeadline {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            deadline: input.deadline,
            reason: input.reason,
        });
        let created = Created {
            hazard_ids: vec![hazard_id],
            ..Created::default()
        };
        run(ctx, command, command_id, expected_version, created, &[]).await
    }

    /// Submits a rectification of one of the enterprise's own hazards, with photos (multipart).
    async fn submit_rectification(
        &self,
        ctx: &Context<'_>,
        input: SubmitRectificationInput,
        #[graphql(default)] photos: Vec<Upload>,
        command_id: Option<ID>,
        expected_version: Option<u64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let app = app(ctx)?;
        actor(ctx)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let staged = crate::uploads::stage(ctx, app, &photos, "photos", FILES_MAX)?;
        let photos = file_refs(&staged);
        let rectification_id = created_id(parse_command_id(command_id.as_ref())?, "rectification", 0);
        let command = EnterpriseCommand::SubmitRectification(SubmitRectification {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            rectification_id,
            text: input.text,
            photos,
        });
        let created = Created {
            hazard_ids: vec![hazard_id],
            rectification_id: Some(rectification_id),
            ..Created::default()
        };
        run(ctx, command, command_id, expected_version, created, &staged).await
    }

    /// Accepts a submitted rectification (the hazard closes) or returns it with a reason (it
    /// stays open); inspectors of the enterprise's town, or the city.
    async fn verify_rectification(
        &self,
        ctx: &Context<'_>,
        input: VerifyRectificationInput,
        command_id: Option<ID>,
        expected_version: Option<u64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let rectification_id = parse_id::<Uuid>(&input.rectification_id)?;
        let returned_because = match input.decision {
            VerificationDecision::Accept => None,
            VerificationDecision::Return => Some(input.reason.unwrap_or_default()),
        };
        let command = EnterpriseCommand::VerifyRectification(VerifyRectification {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            rectification_id,
            returned_because,
        });
        let created = Created {
            hazard_ids: vec![hazard_id],
            rectification_id: Some(rectification_id),
            ..Created::default()
        };
        run(ctx, command, command_id, expected_version, created, &[]).await
    }

    /// Reports an accident at the enterprise (inspectors of its town, or the city).
    async fn report_accident(
        &self,
        ctx: &Context<'_>,
        input: ReportAccidentInput,
        command_id: Option<ID>,
    ) -> Result<SupervisionPayload, ApiError> {
        let accident_id = created_id(parse_command_id(command_id.as_ref())?, "accident", 0);
        let command = EnterpriseCommand::ReportAccident(ReportAccident {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            accident_id,
            occurred_at: input.occurred_at,
            fatalities: input.fatalities,
            description: input.description,
        });
        let created = Created {
            accident_id: Some(accident_id),
            ..Created::default()
        };
        run(ctx, command, command_id, None, created, &[]).await
    }
}

/// The ids a command creates or refers to, returned in its payload.
#[derive(Default)]
struct Created {
    inspection_id: Option<InspectionId>,
    hazard_ids: Vec<HazardId>,
    rectification_id: Option<Uuid>,
    accident_id: Option<Uuid>,
}

fn new_hazard(
    hazard_id: HazardId,
    input: NewHazardInput,
    photos: &[FileRef],
    all_photos_by_default: bool,
) -> Result<NewHazard, ApiError> {
    let photos = match &input.photo_indexes {
        Some(indexes) => indexes
            .iter()
            .map(|&index| {
                usize::try_from(index)
                    .ok()
                    .and_then(|index| photos.get(index))
                    .cloned()
                    .ok_or_else(|| ApiError::bad_input(format!("photo index {index} is not among the uploads")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None if all_photos_by_default => photos.to_vec(),
        None => Vec::new(),
    };
    let criterion = match (input.criterion_catalogue, input.criterion_item) {
        (Some(catalogue), Some(item)) => Some(CriterionRef { catalogue, item }),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_input(
                "give criterionCatalogue and criterionItem together",
            ));
        }
    };
    Ok(NewHazard {
        hazard_id,
        category: input.category.into(),
        level: domain_level(input.level),
        severity: input.severity.map(Into::into),
        criterion,
        description: input.description,
        photos,
        deadline: input.deadline,
    })
}

/// The references of staged uploads, in order.
fn file_refs(staged: &[StagedFile]) -> Vec<FileRef> {
    staged.iter().map(|staged| staged.file.clone()).collect()
}

/// Executes a command for the caller and reads the enterprise back once projected.
async fn run(
    ctx: &Context<'_>,
    command: EnterpriseCommand,
    command_id: Option<ID>,
    expected_version: Option<u64>,
    created: Created,
    files: &[StagedFile],
) -> Result<SupervisionPayload, ApiError> {
    let command_id = parse_command_id(command_id.as_ref())?;
    let (outcome, enterprise) =
        super::mutation::execute_and_read_back(ctx, &command, command_id, expected_version, files).await?;
    Ok(SupervisionPayload {
        stream_version: outcome.as_ref().map(|outcome| outcome.last_version.0),
        position: outcome.as_ref().map(|outcome| outcome.last_position.sequence()),
        duplicate: outcome.as_ref().is_some_and(|outcome| outcome.duplicate),
        enterprise,
        inspection_id: created.inspection_id.map(|id| ID(id.to_string())),
        hazard_ids: created.hazard_ids.iter().map(|id| ID(id.to_string())).collect(),
        rectification_id: created.rectification_id.map(|id| ID(id.to_string())),
        accident_id: created.accident_id.map(|id| ID(id.to_string())),
    })
}

fn parse_id<T: std::str::FromStr>(id: &ID) -> Result<T, ApiError> {
    id.parse().map_err(|_| ApiError::BadInput {
        code: "INVALID_ID",
        message: format!("{:?} is not a valid id", id.as_str()),
    })
}

// ----- subscriptions ---------------------------------------------------------------------------

/// A hazard passed its deadline without being closed.
#[derive(SimpleObject, Clone)]
pub struct HazardBecameOverdue {
    /// The hazard.
    pub hazard_id: ID,
    /// Its enterprise.
    pub enterprise_id: ID,
    /// The enterprise's name.
    pub enterprise_name: String,
    /// The enterprise's town.
    pub town: String,
    /// General or major.
    pub level: HazardLevel,
    /// Found by a government inspection (its being overdue vetoes the enterprise).
    pub government: bool,
    /// The deadline that passed.
    pub deadline: DateTime<Utc>,
    /// When the service noticed.
    pub noticed_at: DateTime<Utc>,
}

/// An enterprise's colour changed.
#[derive(SimpleObject, Clone)]
pub struct ColourChanged {
    /// The enterprise.
    pub enterprise_id: ID,
    /// Its name.
    pub enterprise_name: String,
    /// Its town.
    pub town: String,
    /// The colour before (none for a newly registered enterprise).
    pub previous: Option<RiskColour>,
    /// The colour now.
    pub colour: RiskColour,
    /// The rule that decided it (none for blue).
    pub rule: Option<String>,
    /// The rule set version whose rules decided it: the live one (after a promotion, the
    /// enterprises whose colour the new version changes are pushed).
    pub rule_set: String,
    /// When it changed (as noticed).
    pub at: DateTime<Utc>,
}

/// Live notifications for dashboards, over the websocket at `/graphql/ws` (pass the bearer
/// token as `{"Authorization": "Bearer …"}` in `connection_init`).
#[derive(Default)]
pub struct SubscriptionRoot;

/// Live notifications for dashboards: hazards becoming overdue, colours changing.
#[Subscription]
impl SubscriptionRoot {
    /// Hazards of a town (scoped like queries) that become overdue, as the clock passes their
    /// deadline; no event is needed.
    async fn hazard_became_overdue(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
    ) -> Result<impl Stream<Item = HazardBecameOverdue> + use<>, ApiError> {
        let (app, scope) = subscription_scope(ctx, town)?;
        Ok(notifications(app, scope, |event| match event {
            SupervisionEvent::HazardOverdue(overdue) => Some(HazardBecameOverdue {
                hazard_id: ID(overdue.hazard_id.to_string()),
                enterprise_id: ID(overdue.enterprise_id.to_string()),
                enterprise_name: overdue.enterprise_name,
                town: overdue.town.to_string(),
                level: hazard_level(overdue.level),
                government: overdue.government,
                deadline: overdue.deadline,
                noticed_at: overdue.noticed_at,
            }),
            SupervisionEvent::ColourChanged(_) => None,
        }))
    }

    /// Enterprises of a town (scoped like queries) whose four-colour risk changes, after new
    /// facts, as deadlines pass, or when a promoted rule set colours them otherwise.
    async fn colour_changed(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
    ) -> Result<impl Stream<Item = ColourChanged> + use<>, ApiError> {
        let (app, scope) = subscription_scope(ctx, town)?;
        Ok(notifications(app, scope, |event| match event {
            SupervisionEvent::ColourChanged(changed) => Some(ColourChanged {
                enterprise_id: ID(changed.enterprise_id.to_string()),
                enterprise_name: changed.enterprise_name,
                town: changed.town.to_string(),
                previous: changed.previous.map(Into::into),
                colour: changed.colour.into(),
                rule: changed.rule,
                rule_set: changed.rule_set,
                at: changed.at,
            }),
            SupervisionEvent::HazardOverdue(_) => None,
        }))
    }
}

/// What a subscriber may see.
#[derive(Clone)]
enum Scope {
    Town(Option<Town>),
    Enterprise(EnterpriseId),
}

impl Scope {
    fn allows(&self, event: &SupervisionEvent) -> bool {
        match self {
            Scope::Town(None) => true,
            Scope::Town(Some(town)) => event.town() == town,
            Scope::Enterprise(enterprise_id) => event.enterprise_id() == *enterprise_id,
        }
    }
}

fn subscription_scope(ctx: &Context<'_>, town: Option<String>) -> Result<(AppState, Scope), ApiError> {
    let app = app(ctx)?.clone();
    let actor: &Actor = actor(ctx)?;
    let scope = match &actor.role {
        Role::Enterprise { enterprise_id } if town.is_none() => Scope::Enterprise(*enterprise_id),
        _ => Scope::Town(scoped_town(ctx, town)?),
    };
    Ok((app, scope))
}

fn notifications<T, F>(app: AppState, scope: Scope, pick: F) -> impl Stream<Item = T> + use<T, F>
where
    T: Send + 'static,
    F: Fn(SupervisionEvent) -> Option<T> + Send + Sync + 'static,
{
    let receiver = app.supervision.subscribe();
    futures::stream::unfold((receiver, scope, pick), |(mut receiver, scope, pick)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) if scope.allows(&event) => {
                    if let Some(item) = pick(event) {
                        return Some((item, (receiver, scope, pick)));
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "a subscriber fell behind; notifications skipped");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
