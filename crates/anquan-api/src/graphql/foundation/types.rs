//! GraphQL object and input types, converted from domain and read-model values.

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_domain::compliance::{ComplianceReport, Detail, IndicatorState, RequirementState};
use anquan_domain::enterprise::{ClosureRecord, Coverage, DocumentRecord, EnterpriseFile, ReviewOutcome};
use anquan_domain::rules::{EnterpriseProfile, RuleSet};

use crate::error::ApiError;
use crate::graphql::scalars::Int64;
use crate::graphql::supervision;

/// Whether an enterprise operates at an instant.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum EnterpriseState {
    /// Operating: counted in A01 and every snapshot metric, assessed for colour.
    Active,
    /// Closed (注销/停业/迁出): out of A01 and the snapshot metrics, no colour.
    Closed,
}

/// Why an enterprise was closed.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::enterprise::ClosureKind")]
pub enum ClosureKind {
    /// 注销: its business registration was cancelled.
    Deregistered,
    /// 停业: it stopped operating (it may reopen).
    Suspended,
    /// 迁出: it moved out of the platform's area.
    MovedAway,
    /// Another reason, in `reason`.
    Other,
}

/// A closure of an enterprise (注销/停业) as known at the instant asked for.
#[derive(SimpleObject, Clone)]
pub struct Closure {
    /// Why it closed.
    pub kind: ClosureKind,
    /// What a person reads: 已注销, 停业, 已迁出, 已关闭.
    pub label: String,
    /// The reason given by the official who closed it.
    pub reason: String,
    /// When the closure took effect.
    pub effective_at: DateTime<Utc>,
    /// When it was entered on the platform.
    pub recorded_at: DateTime<Utc>,
}

impl From<&ClosureRecord> for Closure {
    fn from(record: &ClosureRecord) -> Self {
        Closure {
            kind: record.kind.into(),
            label: record.kind.label().to_owned(),
            reason: record.reason.clone(),
            effective_at: record.effective_at,
            recorded_at: record.recorded_at,
        }
    }
}

/// The state and closure of an enterprise whose closure at an instant is `closure`.
pub fn state_of(closure: Option<&ClosureRecord>) -> (EnterpriseState, Option<Closure>) {
    match closure {
        Some(record) => (EnterpriseState::Closed, Some(Closure::from(record))),
        None => (EnterpriseState::Active, None),
    }
}

/// A yes/no fact about an enterprise that decides which indicators apply.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "anquan_domain::rules::ProfileFlag")]
pub enum ProfileFlag {
    /// Above designated size (规上).
    AboveDesignatedSize,
    /// Uses hazardous chemicals (危化使用).
    HazardousChemicals,
    /// Combustible-dust explosion risk (粉尘涉爆).
    DustExplosion,
    /// Confined-space work (有限空间).
    ConfinedSpace,
    /// Spray painting (喷涂作业).
    SprayPainting,
    /// Ammonia refrigeration (涉氨制冷).
    AmmoniaRefrigeration,
    /// Molten metal (金属冶炼).
    MoltenMetal,
    /// Special equipment (特种设备).
    SpecialEquipment,
    /// Employs special operators (特种作业人员).
    SpecialOperators,
    /// Occupational-hazard factors (职业危害).
    OccupationalHazards,
    /// Contracts out work or leases out premises (发包出租).
    ContractsOrLeases,
    /// One of the eight high-risk industries (高危行业).
    HighRiskIndustry,
    /// Safety-cost extraction is mandatory (安全费用提取范围).
    SafetyCostMandatory,
    /// A crowded place (人员密集场所).
    CrowdedPlace,
}

/// The facts about an enterprise that rules are conditioned on.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "ProfileInput")]
pub struct Profile {
    /// Number of employees.
    pub staff_count: u32,
    /// Annual main-business revenue in units of 10,000 yuan (万元).
    #[graphql(name = "annualRevenue10kYuan")]
    pub annual_revenue_10k_yuan: Int64,
    /// Profile flags (hazardous chemicals, dust explosion, …).
    pub flags: Vec<ProfileFlag>,
}

impl From<&EnterpriseProfile> for Profile {
    fn from(profile: &EnterpriseProfile) -> Self {
        Profile {
            staff_count: profile.staff_count,
            annual_revenue_10k_yuan: Int64(profile.annual_revenue_10k_yuan),
            flags: profile.flags.iter().copied().map(ProfileFlag::from).collect(),
        }
    }
}

impl From<Profile> for EnterpriseProfile {
    fn from(profile: Profile) -> Self {
        EnterpriseProfile {
            staff_count: profile.staff_count,
            annual_revenue_10k_yuan: profile.annual_revenue_10k_yuan.0,
            flags: profile.flags.into_iter().map(Into::into).collect(),
        }
    }
}

/// An enterprise's cloud file, with its compliance at the instant asked for.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Enterprise {
    /// The enterprise id (derived from the credit code).
    pub id: ID,
    /// Registered name.
    pub name: String,
    /// Unified social credit code (统一社会信用代码).
    pub credit_code: String,
    /// Town or sub-district (镇/街道).
    pub town: String,
    /// Industry.
    pub industry: String,
    /// When it joined the platform.
    pub registered_at: DateTime<Utc>,
    /// The profile in force at `compliance.at`.
    pub profile: Profile,
    /// Its status at the instant asked for (`asOf`, or now).
    pub compliance: Compliance,
    /// Whether it operates at `compliance.at` (a closed enterprise keeps its file and status,
    /// but has no colour and counts in no snapshot metric).
    pub state: EnterpriseState,
    /// The closure it is under at `compliance.at`; null while active.
    pub closure: Option<Closure>,
    #[graphql(skip)]
    pub file: Arc<EnterpriseFile>,
    #[graphql(skip)]
    pub at: DateTime<Utc>,
    /// The rule set every rule-dependent field of this enterprise is evaluated with (status,
    /// risk, colour history, vetoes, hazards): the one the field that returned it chose.
    #[graphql(skip)]
    pub rules: Arc<RuleSet>,
}

#[ComplexObject]
impl Enterprise {
    /// Its complete history, oldest first: every event with its actor, recorded and occurred
    /// times, correlation and causation, hash and the files it references (read from the
    /// event store, not a read model). `after` is a version from `pageInfo.endCursor`.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
        after: Option<String>,
    ) -> Result<crate::graphql::audit::HistoryConnection, ApiError> {
        let enterprise_id = crate::graphql::args::parse_enterprise_id(&self.id)?;
        crate::graphql::audit::history(
            crate::graphql::app(ctx)?,
            crate::graphql::audit::AuditedStream::Enterprise(enterprise_id),
            first,
            after,
        )
        .await
    }

    /// Its hash chain recomputed now from the stored events: intact, or where it breaks.
    async fn verification(&self, ctx: &Context<'_>) -> Result<crate::graphql::audit::ChainVerification, ApiError> {
        let enterprise_id = crate::graphql::args::parse_enterprise_id(&self.id)?;
        crate::graphql::audit::verification(
            crate::graphql::app(ctx)?,
            crate::graphql::audit::AuditedStream::Enterprise(enterprise_id),
        )
        .await
    }

    /// The inclusion proof of its event at `version` against the latest signed anchor; null
    /// until an anchor covers it. Reads the log up to the anchor.
    async fn inclusion_proof(
        &self,
        ctx: &Context<'_>,
        version: crate::graphql::scalars::Int64,
    ) -> Result<Option<crate::graphql::audit::InclusionProof>, ApiError> {
        let enterprise_id = crate::graphql::args::parse_enterprise_id(&self.id)?;
        crate::graphql::audit::inclusion_proof(
            crate::graphql::app(ctx)?,
            crate::graphql::audit::AuditedStream::Enterprise(enterprise_id),
            version,
        )
        .await
    }

    /// Records uploaded by `compliance.at`, newest first, optionally for one requirement.
    async fn documents(&self, requirement: Option<String>) -> Vec<Document> {
        let mut documents: Vec<&DocumentRecord> = self
            .file
            .documents
            .values()
            .filter(|document| document.uploaded_at <= self.at)
            .filter(|document| {
                requirement
                    .as_deref()
                    .is_none_or(|code| document.requirement.as_str() == code)
            })
            .collect();
        documents.sort_by_key(|document| std::cmp::Reverse((document.uploaded_at, document.document_id)));
        documents
            .into_iter()
            .map(|document| Document::at(document, self.at))
            .collect()
    }

    /// Its four-colour risk at `compliance.at` under `compliance.ruleSet`: the colour, the rule
    /// that decided it and the compliance percentage. Null while it is closed: a closed
    /// enterprise is not assessed.
    async fn risk(&self) -> Option<supervision::Risk> {
        if self.state == EnterpriseState::Closed {
            return None;
        }
        supervision::enterprise_risk(&self.file, &self.rules, self.at)
    }

    /// Its colour changes under `compliance.ruleSet` from `from` (default: registration) to
    /// `to` (default: `compliance.at`), evaluated at every local midnight and every recorded
    /// fact; the first entry is the colour at `from`.
    #[graphql(complexity = "crate::graphql::colour_history_cost(from, to, child_complexity)")]
    async fn colour_history(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<supervision::ColourChange>, ApiError> {
        let from = crate::graphql::optional_instant_arg("from", from)?;
        let to = crate::graphql::optional_instant_arg("to", to)?;
        let from = from.unwrap_or(self.registered_at).max(self.registered_at);
        supervision::colour_history(&self.file, &self.rules, from, to.unwrap_or(self.at))
    }

    /// What vetoes its main responsibility at `compliance.at` under `compliance.ruleSet` (否决项).
    async fn vetoes(&self) -> Vec<supervision::VetoView> {
        supervision::vetoes(&self.file, &self.rules, self.at)
    }

    /// Its hazards known at `compliance.at`, optionally only those `filter` selects then, oldest
    /// found first (major-hazard criteria named from `compliance.ruleSet`'s catalogues).
    async fn hazards(&self, filter: Option<supervision::HazardSelection>) -> Vec<supervision::Hazard> {
        supervision::enterprise_hazards(&self.file, &self.rules, self.at, filter)
    }

    /// Its inspections recorded by `compliance.at`, newest first.
    async fn inspections(&self) -> Vec<supervision::Inspection> {
        supervision::enterprise_inspections(&self.file, self.at)
    }

    /// Its public QR page, now (not at `compliance.at`): when the current token was issued;
    /// null when none was issued or the caller may not read the enterprise. The URL is shown
    /// only once, by `rotatePublicToken`.
    async fn public_page(&self, ctx: &Context<'_>) -> Result<Option<super::public_page::PublicPageInfo>, ApiError> {
        super::public_page::page_info(ctx, &self.file).await
    }
}

impl Enterprise {
    /// Builds the view of a file at an instant, every rule-dependent field evaluated with
    /// `rules`; `None` if it was not registered by then.
    pub fn at(file: Arc<EnterpriseFile>, rules: &Arc<RuleSet>, at: DateTime<Utc>) -> Option<Self> {
        let registration = file.registration.as_ref()?;
        let report = anquan_domain::compliance::evaluate(&file, rules, at)?;
        let profile = file.profile_at(at).map(Profile::from)?;
        let (state, closure) = state_of(file.closure_at(at));
        Some(Enterprise {
            state,
            closure,
            id: ID(registration.enterprise_id.to_string()),
            name: registration.name.clone(),
            credit_code: registration.credit_code.to_string(),
            town: registration.town.to_string(),
            industry: registration.industry.clone(),
            registered_at: registration.registered_at,
            profile,
            compliance: Compliance::from_report(&report, rules),
            file: file.clone(),
            at,
            rules: Arc::clone(rules),
        })
    }
}

/// An enterprise in a list: who it is and how it stands.
#[derive(SimpleObject, Clone)]
pub struct EnterpriseSummary {
    /// The enterprise id.
    pub id: ID,
    /// Registered name.
    pub name: String,
    /// Town or sub-district (镇/街道).
    pub town: String,
    /// Industry.
    pub industry: String,
    /// Its status at the list's instant.
    pub compliance: Compliance,
    /// Whether it operates at the list's instant.
    pub state: EnterpriseState,
    /// The closure it is under at the list's instant; null while active.
    pub closure: Option<Closure>,
    /// Its colour at the list's instant; null while closed (not assessed).
    pub colour: Option<supervision::RiskColour>,
}

/// "x of 21 implemented" and each indicator's status, at one instant.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Compliance {
    /// The instant the status is for.
    pub at: DateTime<Utc>,
    /// The rule set version that decided it: at a past or future `asOf`, the one in force then
    /// by the rule-set log, unless `ruleSet` or the request named another; now, the live one.
    pub rule_set: String,
    /// Indicators implemented (已落实).
    pub implemented: u32,
    /// Indicators not implemented (未落实).
    pub not_implemented: u32,
    /// Indicators with nothing due yet (未到期): every applicable mandatory item is periodic and
    /// its first due instant has not come. Not counted as implemented.
    pub not_yet_due: u32,
    /// Indicators not applicable (不适用).
    pub not_applicable: u32,
    /// Whether the enterprise's main responsibility is implemented (主体责任落实).
    pub responsibility_implemented: bool,
    /// "已落实 x / 未落实 y / 未到期 w / 不适用 z".
    pub summary: String,
    /// Every indicator of the rule set, in order.
    pub indicators: Vec<IndicatorStatusView>,
}

#[ComplexObject]
impl Compliance {
    /// The SHA-256 digest of the files of the rule set named by `ruleSet` (as published in the
    /// rule-set log): with the version, what an auditor needs to reproduce this status.
    async fn rule_set_digest(&self, ctx: &Context<'_>) -> Result<String, ApiError> {
        Ok(crate::graphql::app(ctx)?.rule_set_digest(&self.rule_set))
    }
}

impl Compliance {
    pub fn from_report(report: &ComplianceReport, rules: &RuleSet) -> Self {
        let indicators = report
            .indicators
            .iter()
            .map(|status| {
                let rule = rules.indicator(&status.code);
                let requirements: Vec<RequirementStatusView> = status
                    .requirements
                    .iter()
                    .map(|requirement| {
                        let names = rules
                            .requirement(&requirement.code)
                            .map(|(_, r)| (r.name_zh.clone(), r.name_en.clone()));
                        RequirementStatusView::new(requirement, names.unwrap_or_default(), rules.time_zone)
                    })
                    .collect();
                let reasons = requirements
                    .iter()
                    .filter(|requirement| {
                        requirement.mandatory && requirement.state == RequirementStateView::Unsatisfied
                    })
                    .map(|requirement| format!("{}：{}", requirement.name_zh, requirement.message))
                    .collect();
                IndicatorStatusView {
                    code: status.code.to_string(),
                    name_zh: rule.map(|rule| rule.name_zh.clone()).unwrap_or_default(),
                    name_en: rule.map(|rule| rule.name_en.clone()).unwrap_or_default(),
                    state: status.state.into(),
                    reasons,
                    requirements,
                }
            })
            .collect();
        Compliance {
            at: report.at,
            rule_set: report.rule_set.clone(),
            implemented: report.implemented,
            not_implemented: report.not_implemented,
            not_yet_due: report.not_yet_due,
            not_applicable: report.not_applicable,
            responsibility_implemented: report.responsibility_implemented,
            summary: format!(
                "已落实 {} / 未落实 {} / 未到期 {} / 不适用 {}",
                report.implemented, report.not_implemented, report.not_yet_due, report.not_applicable
            ),
            indicators,
        }
    }
}

/// An indicator's state.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "IndicatorState")]
pub enum IndicatorStateView {
    /// 已落实.
    Implemented,
    /// 未落实.
    NotImplemented,
    /// 未到期: nothing is due yet (each applicable mandatory item's first due instant is still to
    /// come; its requirements' `dueAt` say when).
    NotYetDue,
    /// 不适用.
    NotApplicable,
}

impl From<IndicatorState> for IndicatorStateView {
    fn from(state: IndicatorState) -> Self {
        match state {
            IndicatorState::Implemented => IndicatorStateView::Implemented,
            IndicatorState::NotImplemented => IndicatorStateView::NotImplemented,
            IndicatorState::NotYetDue => IndicatorStateView::NotYetDue,
            IndicatorState::NotApplicable => IndicatorStateView::NotApplicable,
        }
    }
}

/// One indicator's status.
#[derive(SimpleObject, Clone)]
#[graphql(name = "IndicatorStatus")]
pub struct IndicatorStatusView {
    /// R01 … R21.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Implemented, not implemented or not applicable.
    pub state: IndicatorStateView,
    /// Why it is not implemented, for people (Chinese): one line per unmet mandatory requirement.
    pub reasons: Vec<String>,
    /// Each requirement item and the fact that decides it.
    pub requirements: Vec<RequirementStatusView>,
}

/// A requirement's state.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "RequirementState")]
pub enum RequirementStateView {
    /// Met by an approved record.
    Satisfied,
    /// Not met; `detail` says why.
    Unsatisfied,
    /// 未到期: a periodic item with no period due yet since registration (`detail`
    /// NOTHING_DUE_YET; `dueAt` is the first due instant).
    NotYetDue,
    /// Excluded by the enterprise's profile.
    NotApplicable,
}

/// One requirement item and the fact that decides it.
#[derive(SimpleObject, Clone)]
#[graphql(name = "RequirementStatus")]
pub struct RequirementStatusView {
    /// Requirement code, e.g. `R10.drill`.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Whether it decides the indicator (optional items are shown only).
    pub mandatory: bool,
    /// Satisfied, unsatisfied, not yet due or not applicable.
    pub state: RequirementStateView,
    /// What decides the state: APPROVED, VALID_UNTIL, PERIOD_COVERED, NOTHING_DUE_YET,
    /// NO_RECORD, AWAITING_REVIEW, RETURNED, EXPIRED, NOT_YET_VALID, PERIOD_MISSING,
    /// PROFILE_EXCLUDES.
    pub detail: String,
    /// The same for people, in Chinese with local times (programs read `detail` and the fields).
    pub message: String,
    /// The record the detail is about, if any.
    pub document_id: Option<ID>,
    /// Start of the validity the detail is about.
    pub valid_from: Option<DateTime<Utc>>,
    /// End (exclusive) of the validity the detail is about.
    pub valid_until: Option<DateTime<Utc>>,
    /// A satisfied validity that ends within the rule set's warning window.
    pub expiring_soon: bool,
    /// The reporting period the detail is about (`2019-Q1`, …).
    pub period: Option<String>,
    /// When the record for `period` is (or was) due.
    pub due_at: Option<DateTime<Utc>>,
    /// The reviewer's feedback on a returned record.
    pub feedback: Option<String>,
}

impl RequirementStatusView {
    fn new(
        status: &anquan_domain::compliance::RequirementStatus,
        (name_zh, name_en): (String, String),
        time_zone: chrono::FixedOffset,
    ) -> Self {
        // People read the message: local time, Chinese; programs read `detail` and the fields.
        let local = |instant: &DateTime<Utc>| instant.with_timezone(&time_zone).format("%Y-%m-%d %H:%M").to_string();
        let state = match status.state {
            RequirementState::Satisfied => RequirementStateView::Satisfied,
            RequirementState::Unsatisfied => RequirementStateView::Unsatisfied,
            RequirementState::NotYetDue => RequirementStateView::NotYetDue,
            RequirementState::NotApplicable => RequirementStateView::NotApplicable,
        };
        let mut view = RequirementStatusView {
            code: status.code.to_string(),
            name_zh,
            name_en,
            mandatory: status.mandatory,
            state,
            detail: String::new(),
            message: String::new(),
            document_id: None,
            valid_from: None,
            valid_until: None,
            expiring_soon: false,
            period: None,
            due_at: None,
            feedback: None,
        };
        let id = |document_id: &anquan_domain::DocumentId| Some(ID(document_id.to_string()));
        let (detail, message) = match &status.detail {
            Detail::ProfileExcludes => ("PROFILE_EXCLUDES", "按本企业的情况不适用".to_owned()),
            Detail::Approved { document_id } => {
                view.document_id = id(document_id);
                ("APPROVED", "已有审核通过的记录".to_owned())
            }
            Detail::ValidUntil {
                document_id,
                valid_until,
                expiring_soon,
            } => {
                view.document_id = id(document_id);
                view.valid_until = Some(*valid_until);
                view.expiring_soon = *expiring_soon;
                let soon = if *expiring_soon { "，即将到期" } else { "" };
                ("VALID_UNTIL", format!("有效期至 {}{soon}", local(valid_until)))
            }
            Detail::PeriodCovered { document_id, period } => {
                view.document_id = id(document_id);
                view.period = Some(period.to_string());
                ("PERIOD_COVERED", format!("{period} 的记录已审核通过"))
            }
            Detail::NothingDueYet { next_period, due_at } => {
                view.period = Some(next_period.to_string());
                view.due_at = Some(*due_at);
                (
                    "NOTHING_DUE_YET",
                    format!("首份记录为 {next_period} 期，应于 {} 前上传", local(due_at)),
                )
            }
            Detail::NoRecord => ("NO_RECORD", "尚未上传记录".to_owned()),
            Detail::AwaitingReview { document_id } => {
                view.document_id = id(document_id);
                ("AWAITING_REVIEW", "最新记录等待审核".to_owned())
            }
            Detail::Returned { document_id, feedback } => {
                view.document_id = id(document_id);
                view.feedback = Some(feedback.clone());
                ("RETURNED", format!("最新记录被退回：{feedback}"))
            }
            Detail::Expired {
                document_id,
                valid_until,
            } => {
                view.document_id = id(document_id);
                view.valid_until = Some(*valid_until);
                ("EXPIRED", format!("已通过的记录于 {} 到期", local(valid_until)))
            }
            Detail::NotYetValid {
                document_id,
                valid_from,
            } => {
                view.document_id = id(document_id);
                view.valid_from = Some(*valid_from);
                (
                    "NOT_YET_VALID",
                    format!("已通过的记录自 {} 起才生效", local(valid_from)),
                )
            }
            Detail::PeriodMissing { period, due_at } => {
                view.period = Some(period.to_string());
                view.due_at = Some(*due_at);
                (
                    "PERIOD_MISSING",
                    format!("{period} 期没有已通过的记录，应于 {} 前上传", local(due_at)),
                )
            }
        };
        view.detail = detail.to_owned();
        view.message = message;
        view
    }
}

/// A record's review state.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ReviewState {
    /// 待审核.
    Pending,
    /// 审核通过.
    Approved,
    /// 退回.
    Returned,
}

/// One uploaded record.
#[derive(SimpleObject, Clone)]
pub struct Document {
    /// The record id.
    pub id: ID,
    /// The enterprise (in lists that span enterprises).
    pub enterprise_id: Option<ID>,
    /// The enterprise name (in lists that span enterprises).
    pub enterprise_name: Option<String>,
    /// The enterprise town (in lists that span enterprises).
    pub town: Option<String>,
    /// The requirement item it was uploaded for.
    pub requirement: String,
    /// The indicator of that requirement.
    pub indicator: String,
    /// Title given at upload.
    pub title: String,
    /// SHA-256 of the stored file (its address in the blob store).
    pub file_sha256: String,
    /// File size in bytes.
    pub file_size_bytes: Int64,
    /// Media type given at upload.
    pub media_type: String,
    /// File name given at upload.
    pub file_name: String,
    /// Start of the validity it states, if any.
    pub valid_from: Option<DateTime<Utc>>,
    /// End (exclusive) of the validity it states, if any.
    pub valid_until: Option<DateTime<Utc>>,
    /// The reporting period it is for, if any.
    pub period: Option<String>,
    /// When it was uploaded.
    pub uploaded_at: DateTime<Utc>,
    /// Pending, approved or returned (as of the instant asked for).
    pub review_state: ReviewState,
    /// When it was reviewed.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The reviewer's feedback, when returned.
    pub feedback: Option<String>,
    /// The reviewer's remark, when approved.
    pub comment: Option<String>,
}

impl Document {
    /// The record as it stood at `at` (a later review is not shown).
    pub fn at(record: &DocumentRecord, at: DateTime<Utc>) -> Self {
        let (valid_from, valid_until, period) = match &record.coverage {
            Coverage::Once => (None, None, None),
            Coverage::Validity {
                valid_from,
                valid_until,
            } => (Some(*valid_from), Some(*valid_until), None),
            Coverage::Period { period } => (None, None, Some(period.to_string())),
        };
        let review = record.review_at(at);
        let (review_state, feedback, comment) = match review.map(|review| &review.outcome) {
            None => (ReviewState::Pending, None, None),
            Some(ReviewOutcome::Approved { comment }) => (ReviewState::Approved, None, comment.clone()),
            Some(ReviewOutcome::Returned { feedback }) => (ReviewState::Returned, Some(feedback.clone()), None),
        };
        Document {
            id: ID(record.document_id.to_string()),
            enterprise_id: None,
            enterprise_name: None,
            town: None,
            requirement: record.requirement.to_string(),
            indicator: record.requirement.indicator().to_string(),
            title: record.title.clone(),
            file_sha256: record.file.sha256.clone(),
            file_size_bytes: Int64(record.file.size_bytes),
            media_type: record.file.media_type.clone(),
            file_name: record.file.file_name.clone(),
            valid_from,
            valid_until,
            period,
            uploaded_at: record.uploaded_at,
            review_state,
            reviewed_at: review.map(|review| review.reviewed_at),
            feedback,
            comment,
        }
    }
}

/// Paging information of a connection.
#[derive(SimpleObject, Clone)]
pub struct PageInfo {
    /// Whether another page follows.
    pub has_next_page: bool,
    /// Pass as `after` to get the next page.
    pub end_cursor: Option<String>,
}

/// A page of enterprises.
#[derive(SimpleObject, Clone)]
pub struct EnterpriseConnection {
    /// The enterprises of this page.
    pub nodes: Vec<EnterpriseSummary>,
    /// Where the page ends.
    pub page_info: PageInfo,
}

/// A page of records.
#[derive(SimpleObject, Clone)]
pub struct DocumentConnection {
    /// The records of this page.
    pub nodes: Vec<Document>,
    /// Where the page ends.
    pub page_info: PageInfo,
}

/// An indicator of the rule set in force, with its requirements.
#[derive(SimpleObject, Clone)]
pub struct IndicatorRule {
    /// R01 … R21.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Its requirement items.
    pub requirements: Vec<RequirementRule>,
}

/// A requirement of the rule set in force.
#[derive(SimpleObject, Clone)]
pub struct RequirementRule {
    /// Requirement code, e.g. `R10.drill`.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Whether it decides the indicator.
    pub mandatory: bool,
    /// REVIEW, VALIDITY or PERIODIC: what a record must state when uploaded.
    pub evidence: String,
}

/// The rule set the service evaluates with.
#[derive(SimpleObject, Clone)]
pub struct RuleSetInfo {
    /// Rule set version, e.g. `v1`.
    pub version: String,
    /// Human title.
    pub title: String,
    /// The indicators, in order.
    pub indicators: Vec<IndicatorRule>,
}

impl From<&RuleSet> for RuleSetInfo {
    fn from(rules: &RuleSet) -> Self {
        use anquan_domain::rules::Evidence;
        RuleSetInfo {
            version: rules.version.clone(),
            title: rules.title.clone(),
            indicators: rules
                .indicators
                .iter()
                .map(|indicator| IndicatorRule {
                    code: indicator.code.to_string(),
                    name_zh: indicator.name_zh.clone(),
                    name_en: indicator.name_en.clone(),
                    requirements: indicator
                        .requirements
                        .iter()
                        .map(|requirement| RequirementRule {
                            code: requirement.code.to_string(),
                            name_zh: requirement.name_zh.clone(),
                            name_en: requirement.name_en.clone(),
                            mandatory: requirement.mandatory,
                            evidence: match requirement.evidence {
                                Evidence::Review => "REVIEW",
                                Evidence::Validity { .. } => "VALIDITY",
                                Evidence::Periodic { .. } => "PERIODIC",
                            }
                            .to_owned(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
