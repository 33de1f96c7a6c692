//! Commands on the enterprise stream and the `decide` function that turns them into events.

use chrono::Duration;

use super::closure::{CloseEnterprise, ReopenEnterprise};
use super::enterprise_id_for;
use super::event::{
    Coverage, DocumentApproved, DocumentReturned, DocumentUploaded, EnterpriseProfileChanged, EnterpriseRegistered,
    FileRef, HazardSource,
};
use super::listing::{LiftHazardListing, ListHazard, ReportListingProgress, RequestListingLift};
use super::public_token::RotatePublicToken;
use super::rejection::{EnterpriseRejection, ExpectedCoverage};
use super::state::EnterpriseFile;
use super::supervision::{
    ConfirmMajorHazard, ExtendHazardDeadline, RecordHazard, RecordInspection, RecordReportedHazards, ReportAccident,
    SpotCheckHazard, SubmitRectification, VerifyRectification,
};
use crate::actor::Actor;
pub use crate::aggregate::DecisionContext;
use crate::bounds::{self, OutOfRange, check_count};
use crate::credit_code::UnifiedSocialCreditCode;
use crate::event::Event;
use crate::ids::{DocumentId, EnterpriseId, RequirementCode, Town};
use crate::refusal::FieldProblem;
use crate::rules::{EnterpriseProfile, Evidence};

/// Longest enterprise name, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// Longest industry label, in characters.
pub const INDUSTRY_CHARS_MAX: usize = 64;
/// Longest record title, in characters.
pub const TITLE_CHARS_MAX: usize = 200;
/// Longest review feedback or comment, in characters.
pub const FEEDBACK_CHARS_MAX: usize = 2000;
/// Longest file name, in characters.
pub const FILE_NAME_CHARS_MAX: usize = 255;

/// Enrol an enterprise on the platform. Its id is derived from the credit code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegisterEnterprise {
    pub name: String,
    pub credit_code: UnifiedSocialCreditCode,
    pub town: Town,
    pub industry: String,
    pub profile: EnterpriseProfile,
}

/// Change an enterprise's name, town, industry or profile flags.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeEnterpriseProfile {
    pub enterprise_id: EnterpriseId,
    pub name: String,
    pub town: Town,
    pub industry: String,
    pub profile: EnterpriseProfile,
}

/// Upload a record for one requirement of an indicator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadDocument {
    pub enterprise_id: EnterpriseId,
    pub document_id: DocumentId,
    pub requirement: RequirementCode,
    pub title: String,
    pub file: FileRef,
    pub coverage: Coverage,
}

/// Approve a pending record, or return it with feedback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReviewDocument {
    pub enterprise_id: EnterpriseId,
    pub document_id: DocumentId,
    pub decision: ReviewDecision,
}

/// A reviewer's decision on a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ReviewDecision {
    Approve { comment: Option<String> },
    Return { feedback: String },
}

/// Every command of the enterprise stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum EnterpriseCommand {
    Register(RegisterEnterprise),
    ChangeProfile(ChangeEnterpriseProfile),
    UploadDocument(UploadDocument),
    ReviewDocument(ReviewDocument),
    RecordInspection(RecordInspection),
    RecordHazard(RecordHazard),
    RecordReportedHazards(RecordReportedHazards),
    SpotCheckHazard(SpotCheckHazard),
    ExtendHazardDeadline(ExtendHazardDeadline),
    ConfirmMajorHazard(ConfirmMajorHazard),
    ListHazard(ListHazard),
    ReportListingProgress(ReportListingProgress),
    RequestListingLift(RequestListingLift),
    LiftHazardListing(LiftHazardListing),
    SubmitRectification(SubmitRectification),
    VerifyRectification(VerifyRectification),
    ReportAccident(ReportAccident),
    RotatePublicToken(RotatePublicToken),
    Close(CloseEnterprise),
    Reopen(ReopenEnterprise),
}

impl EnterpriseCommand {
    /// Checks every value the command carries against the platform's bounds (`crate::bounds`),
    /// before anything else is decided.
    pub fn check_bounds(&self) -> Result<(), OutOfRange> {
        match self {
            EnterpriseCommand::Register(command) => check_profile_bounds(&command.profile),
            EnterpriseCommand::ChangeProfile(command) => check_profile_bounds(&command.profile),
            EnterpriseCommand::UploadDocument(command) => {
                check_count("file.sizeBytes", command.file.size_bytes)?;
                match &command.coverage {
                    Coverage::Once => Ok(()),
                    Coverage::Validity {
                        valid_from,
                        valid_until,
                    } => {
                        bounds::check_instant("validFrom", *valid_from)?;
                        bounds::check_instant("validUntil", *valid_until)
                    }
                    Coverage::Period { period } => bounds::check_period("period", period),
                }
            }
            EnterpriseCommand::ReviewDocument(_)
            | EnterpriseCommand::ConfirmMajorHazard(_)
            | EnterpriseCommand::ReportListingProgress(_)
            | EnterpriseCommand::RequestListingLift(_)
            | EnterpriseCommand::LiftHazardListing(_)
            | EnterpriseCommand::SpotCheckHazard(_)
            | EnterpriseCommand::SubmitRectification(_)
            | EnterpriseCommand::VerifyRectification(_)
            | EnterpriseCommand::RotatePublicToken(_) => Ok(()),
            EnterpriseCommand::RecordInspection(command) => {
                bounds::check_instant("inspectedAt", command.inspected_at)?;
                command
                    .hazards
                    .iter()
                    .try_for_each(|hazard| bounds::check_optional_instant("hazards.deadline", hazard.deadline))
            }
            EnterpriseCommand::RecordHazard(command) => {
                bounds::check_optional_instant("hazard.deadline", command.hazard.deadline)
            }
            EnterpriseCommand::RecordReportedHazards(command) => {
                bounds::check_instant("visitedAt", command.found_at)?;
                command
                    .hazards
                    .iter()
                    .try_for_each(|hazard| bounds::check_optional_instant("hazards.deadline", hazard.deadline))
            }
            EnterpriseCommand::ExtendHazardDeadline(command) => bounds::check_instant("deadline", command.deadline),
            EnterpriseCommand::ListHazard(command) => bounds::check_instant("deadline", command.deadline),
            EnterpriseCommand::ReportAccident(command) => {
                bounds::check_instant("occurredAt", command.occurred_at)?;
                check_count("fatalities", u64::from(command.fatalities))
            }
            EnterpriseCommand::Close(command) => bounds::check_optional_instant("effectiveAt", command.effective_at),
            EnterpriseCommand::Reopen(command) => bounds::check_optional_instant("effectiveAt", command.effective_at),
        }
    }

    /// Returns the enterprise whose stream the command goes to.
    pub fn enterprise_id(&self) -> EnterpriseId {
        match self {
            EnterpriseCommand::Register(command) => enterprise_id_for(&command.credit_code),
            EnterpriseCommand::ChangeProfile(command) => command.enterprise_id,
            EnterpriseCommand::UploadDocument(command) => command.enterprise_id,
            EnterpriseCommand::ReviewDocument(command) => command.enterprise_id,
            EnterpriseCommand::RecordInspection(command) => command.enterprise_id,
            EnterpriseCommand::RecordHazard(command) => command.enterprise_id,
            EnterpriseCommand::RecordReportedHazards(command) => command.enterprise_id,
            EnterpriseCommand::SpotCheckHazard(command) => command.enterprise_id,
            EnterpriseCommand::ExtendHazardDeadline(command) => command.enterprise_id,
            EnterpriseCommand::ConfirmMajorHazard(command) => command.enterprise_id,
            EnterpriseCommand::ListHazard(command) => command.enterprise_id,
            EnterpriseCommand::ReportListingProgress(command) => command.enterprise_id,
            EnterpriseCommand::RequestListingLift(command) => command.enterprise_id,
            EnterpriseCommand::LiftHazardListing(command) => command.enterprise_id,
            EnterpriseCommand::SubmitRectification(command) => command.enterprise_id,
            EnterpriseCommand::VerifyRectification(command) => command.enterprise_id,
            EnterpriseCommand::ReportAccident(command) => command.enterprise_id,
            EnterpriseCommand::RotatePublicToken(command) => command.enterprise_id,
            EnterpriseCommand::Close(command) => command.enterprise_id,
            EnterpriseCommand::Reopen(command) => command.enterprise_id,
        }
    }

    /// Tells whether a closed enterprise refuses the command (`ENTERPRISE_CLOSED`): everything
    /// that adds to its file as a working business (records, inspections, hazards, a new QR
    /// token). What was open when it closed is still finished: the enterprise rectifies its open
    /// hazards (停业整顿, suspension for rectification, is a common reason to close) and
    /// officials review pending records, verify rectifications, spot-check, extend deadlines and
    /// confirm major hazards; the city lists a major hazard and lifts the listing (listed
    /// supervision applies most to an enterprise suspended for rectification); an accident that happened is reported, the profile corrected, and
    /// the enterprise reopened. An agency's service report, already on the agency's stream,
    /// still relays its hazards (the visit happened).
    pub fn refused_when_closed(&self) -> bool {
        match self {
            EnterpriseCommand::UploadDocument(_)
            | EnterpriseCommand::RecordInspection(_)
            | EnterpriseCommand::RecordHazard(_)
            | EnterpriseCommand::RotatePublicToken(_) => true,
            EnterpriseCommand::Register(_)
            | EnterpriseCommand::ChangeProfile(_)
            | EnterpriseCommand::RecordReportedHazards(_)
            | EnterpriseCommand::SubmitRectification(_)
            | EnterpriseCommand::ReviewDocument(_)
            | EnterpriseCommand::SpotCheckHazard(_)
            | EnterpriseCommand::ExtendHazardDeadline(_)
            | EnterpriseCommand::ConfirmMajorHazard(_)
            | EnterpriseCommand::ListHazard(_)
            | EnterpriseCommand::ReportListingProgress(_)
            | EnterpriseCommand::RequestListingLift(_)
            | EnterpriseCommand::LiftHazardListing(_)
            | EnterpriseCommand::VerifyRectification(_)
            | EnterpriseCommand::ReportAccident(_)
            | EnterpriseCommand::Close(_)
            | EnterpriseCommand::Reopen(_) => false,
        }
    }

    /// Returns the command's name for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            EnterpriseCommand::Register(_) => "register_enterprise",
            EnterpriseCommand::ChangeProfile(_) => "change_enterprise_profile",
            EnterpriseCommand::UploadDocument(_) => "upload_document",
            EnterpriseCommand::ReviewDocument(_) => "review_document",
            EnterpriseCommand::RecordInspection(_) => "record_inspection",
            EnterpriseCommand::RecordHazard(_) => "record_hazard",
            EnterpriseCommand::RecordReportedHazards(_) => "record_reported_hazards",
            EnterpriseCommand::SpotCheckHazard(_) => "spot_check_hazard",
            EnterpriseCommand::ExtendHazardDeadline(_) => "extend_hazard_deadline",
            EnterpriseCommand::ConfirmMajorHazard(_) => "confirm_major_hazard",
            EnterpriseCommand::ListHazard(_) => "list_hazard",
            EnterpriseCommand::ReportListingProgress(_) => "report_listing_progress",
            EnterpriseCommand::RequestListingLift(_) => "request_listing_lift",
            EnterpriseCommand::LiftHazardListing(_) => "lift_hazard_listing",
            EnterpriseCommand::SubmitRectification(_) => "submit_rectification",
            EnterpriseCommand::VerifyRectification(_) => "verify_rectification",
            EnterpriseCommand::ReportAccident(_) => "report_accident",
            EnterpriseCommand::RotatePublicToken(_) => "rotate_public_token",
            EnterpriseCommand::Close(_) => "close_enterprise",
            EnterpriseCommand::Reopen(_) => "reopen_enterprise",
        }
    }
}

impl EnterpriseFile {
    /// Tells whether the actor may issue the command against this file: every scope check of
    /// the enterprise stream, in one place. A command on an unregistered enterprise (other than
    /// registering it) is `UNKNOWN_ENTERPRISE`, as `decide` has always answered first.
    pub fn authorise(&self, command: &EnterpriseCommand, actor: &Actor) -> Result<(), EnterpriseRejection> {
        // Read-only roles are refused before anything about the enterprise is looked at.
        if !actor.role.may_write() {
            return Err(EnterpriseRejection::forbidden("修改任何数据", actor));
        }
        // Whether an enterprise is registered is itself private: a caller who may not know
        // gets the same refusal for an unknown id as for one outside their scope.
        if self.registration.is_none()
            && !matches!(command, EnterpriseCommand::Register(_))
            && !actor.may_know_enterprise(command.enterprise_id())
        {
            return Err(EnterpriseRejection::forbidden("操作该企业", actor));
        }
        let (allowed, action) = match command {
            EnterpriseCommand::Register(command) => (actor.may_supervise_town(&command.town), "在该镇（街道）登记企业"),
            EnterpriseCommand::ChangeProfile(command) => {
                let registration = self.registered(command.enterprise_id)?;
                (
                    actor.may_supervise_town(&registration.town) && actor.may_supervise_town(&command.town),
                    "修改该企业的基本信息",
                )
            }
            EnterpriseCommand::UploadDocument(command) => {
                self.registered(command.enterprise_id)?;
                (
                    actor.may_write_enterprise_file(command.enterprise_id),
                    "向该企业的档案上传资料",
                )
            }
            EnterpriseCommand::ReviewDocument(command) => (
                actor.may_supervise_town(&self.registered(command.enterprise_id)?.town),
                "审核该企业的资料",
            ),
            EnterpriseCommand::RecordInspection(command) => (
                actor.may_inspect_town(&self.registered(command.enterprise_id)?.town),
                "检查该镇（街道）的企业",
            ),
            EnterpriseCommand::RecordHazard(command) => {
                self.registered(command.enterprise_id)?;
                let allowed = match &command.source {
                    HazardSource::SelfInspection => actor.may_write_enterprise_file(command.enterprise_id),
                    HazardSource::AgencyService { agency_id, .. } => actor.may_act_for_agency(*agency_id),
                    HazardSource::GovernmentInspection { .. } => false,
                };
                (allowed, "登记这条隐患")
            }
            // The agency that filed the report relays its hazards (the API does so right after
            // the report is recorded on the agency's stream).
            EnterpriseCommand::RecordReportedHazards(command) => {
                self.registered(command.enterprise_id)?;
                (
                    actor.may_act_for_agency(command.agency_id),
                    "登记该机构服务记录中的隐患",
                )
            }
            EnterpriseCommand::SpotCheckHazard(command) => (
                actor.may_inspect_town(&self.registered(command.enterprise_id)?.town),
                "抽查该镇（街道）企业自行整改销号的隐患",
            ),
            EnterpriseCommand::ExtendHazardDeadline(command) => (
                actor.may_inspect_town(&self.registered(command.enterprise_id)?.town),
                "延长该镇（街道）隐患的整改期限",
            ),
            // Officials (town officer, city admin) confirm; inspectors record (docs/roles.md).
            EnterpriseCommand::ConfirmMajorHazard(command) => (
                actor.may_supervise_town(&self.registered(command.enterprise_id)?.town),
                "确认该镇（街道）的重大事故隐患",
            ),
            // 挂牌督办: the city lists and lifts; the town officer of the enterprise's town (or
            // the city admin) reports progress and applies for the lift (docs/roles.md).
            EnterpriseCommand::ListHazard(command) => {
                self.registered(command.enterprise_id)?;
                (matches!(actor.role, crate::Role::CityAdmin), "挂牌督办重大事故隐患")
            }
            EnterpriseCommand::LiftHazardListing(command) => {
                self.registered(command.enterprise_id)?;
                (matches!(actor.role, crate::Role::CityAdmin), "批准重大事故隐患摘牌")
            }
            EnterpriseCommand::ReportListingProgress(command) => (
                actor.may_supervise_town(&self.registered(command.enterprise_id)?.town),
                "报告该镇（街道）挂牌隐患的整改进展",
            ),
            EnterpriseCommand::RequestListingLift(command) => (
                actor.may_supervise_town(&self.registered(command.enterprise_id)?.town),
                "申请该镇（街道）挂牌隐患摘牌",
            ),
            EnterpriseCommand::VerifyRectification(command) => (
                actor.may_inspect_town(&self.registered(command.enterprise_id)?.town),
                "核查该镇（街道）的隐患整改",
            ),
            EnterpriseCommand::SubmitRectification(command) => {
                self.registered(command.enterprise_id)?;
                (
                    actor.may_write_enterprise_file(command.enterprise_id),
                    "提交该企业的隐患整改",
                )
            }
            EnterpriseCommand::ReportAccident(command) => (
                actor.may_inspect_town(&self.registered(command.enterprise_id)?.town),
                "上报该镇（街道）的事故",
            ),
            EnterpriseCommand::RotatePublicToken(command) => {
                self.registered(command.enterprise_id)?;
                (
                    actor.may_write_enterprise_file(command.enterprise_id),
                    "更换该企业的公示二维码",
                )
            }
            // The officer of its town or the city admin, as for a change of its profile.
            EnterpriseCommand::Close(command) => (
                actor.may_supervise_town(&self.registered(command.enterprise_id)?.town),
                "注销或停业该镇（街道）的企业",
            ),
            EnterpriseCommand::Reopen(command) => (
                actor.may_supervise_town(&self.registered(command.enterprise_id)?.town),
                "恢复该镇（街道）企业的经营",
            ),
        };
        if allowed {
            Ok(())
        } else {
            Err(EnterpriseRejection::forbidden(action, actor))
        }
    }

    /// Decides a command against the file's current state: the events to append, or why not.
    pub fn decide(
        &self,
        command: &EnterpriseCommand,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let events = self.decide_events(command, context)?;
        bounds::check_events(&events)?;
        Ok(events)
    }

    fn decide_events(
        &self,
        command: &EnterpriseCommand,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        self.authorise(command, context.actor)?;
        command.check_bounds()?;
        if command.refused_when_closed() {
            self.refuse_if_closed(command.enterprise_id())?;
        }
        match command {
            EnterpriseCommand::Register(command) => self.decide_register(command, context),
            EnterpriseCommand::ChangeProfile(command) => self.decide_change_profile(command, context),
            EnterpriseCommand::UploadDocument(command) => self.decide_upload(command, context),
            EnterpriseCommand::ReviewDocument(command) => self.decide_review(command, context),
            EnterpriseCommand::RecordInspection(command) => self.decide_record_inspection(command, context),
            EnterpriseCommand::RecordHazard(command) => self.decide_record_hazard(command, context),
            EnterpriseCommand::RecordReportedHazards(command) => self.decide_record_reported_hazards(command, context),
            EnterpriseCommand::SpotCheckHazard(command) => self.decide_spot_check(command, context),
            EnterpriseCommand::ExtendHazardDeadline(command) => self.decide_extend_deadline(command, context),
            EnterpriseCommand::ConfirmMajorHazard(command) => self.decide_confirm_major_hazard(command, context),
            EnterpriseCommand::ListHazard(command) => self.decide_list_hazard(command, context),
            EnterpriseCommand::ReportListingProgress(command) => self.decide_report_listing_progress(command, context),
            EnterpriseCommand::RequestListingLift(command) => self.decide_request_listing_lift(command, context),
            EnterpriseCommand::LiftHazardListing(command) => self.decide_lift_listing(command, context),
            EnterpriseCommand::SubmitRectification(command) => self.decide_submit_rectification(command, context),
            EnterpriseCommand::VerifyRectification(command) => self.decide_verify_rectification(command, context),
            EnterpriseCommand::ReportAccident(command) => self.decide_report_accident(command, context),
            EnterpriseCommand::RotatePublicToken(command) => self.decide_rotate_public_token(command, context),
            EnterpriseCommand::Close(command) => self.decide_close(command, context),
            EnterpriseCommand::Reopen(command) => self.decide_reopen(command, context),
        }
    }

    fn decide_register(
        &self,
        command: &RegisterEnterprise,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        if let Some(registration) = &self.registration {
            return Err(EnterpriseRejection::AlreadyRegistered {
                enterprise_id: registration.enterprise_id,
                credit_code: registration.credit_code.clone(),
            });
        }
        check_text("name", &command.name, NAME_CHARS_MAX)?;
        check_text("industry", &command.industry, INDUSTRY_CHARS_MAX)?;
        Ok(vec![Event::EnterpriseRegistered(EnterpriseRegistered {
            enterprise_id: enterprise_id_for(&command.credit_code),
            name: command.name.trim().to_owned(),
            credit_code: command.credit_code.clone(),
            town: command.town.clone(),
            industry: command.industry.trim().to_owned(),
            profile: command.profile.clone(),
            registered_at: context.now,
        })])
    }

    fn decide_change_profile(
        &self,
        command: &ChangeEnterpriseProfile,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        check_text("name", &command.name, NAME_CHARS_MAX)?;
        check_text("industry", &command.industry, INDUSTRY_CHARS_MAX)?;
        Ok(vec![Event::EnterpriseProfileChanged(EnterpriseProfileChanged {
            name: command.name.trim().to_owned(),
            town: command.town.clone(),
            industry: command.industry.trim().to_owned(),
            profile: command.profile.clone(),
            changed_at: context.now,
        })])
    }

    fn decide_upload(
        &self,
        command: &UploadDocument,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        if self.documents.contains_key(&command.document_id) {
            return Err(EnterpriseRejection::DuplicateDocument {
                document_id: command.document_id,
            });
        }
        check_text("title", &command.title, TITLE_CHARS_MAX)?;
        check_file(&command.file)?;
        let rules = context.rules;
        let Some((indicator, requirement)) = rules.requirement(&command.requirement) else {
            return Err(EnterpriseRejection::UnknownRequirement {
                requirement: command.requirement.clone(),
                rule_set: rules.version.clone(),
            });
        };
        let profile = self.current_profile();
        if !rules.holds(&indicator.applies_to, profile) || !rules.holds(&requirement.applies_to, profile) {
            return Err(EnterpriseRejection::RequirementNotApplicable {
                requirement: command.requirement.clone(),
            });
        }
        check_coverage(
            &command.requirement,
            &requirement.evidence,
            &command.coverage,
            profile,
            context,
        )?;
        Ok(vec![Event::DocumentUploaded(DocumentUploaded {
            document_id: command.document_id,
            requirement: command.requirement.clone(),
            title: command.title.trim().to_owned(),
            file: command.file.clone(),
            coverage: command.coverage.clone(),
            uploaded_at: context.now,
        })])
    }

    fn decide_review(
        &self,
        command: &ReviewDocument,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let Some(document) = self.documents.get(&command.document_id) else {
            return Err(EnterpriseRejection::UnknownDocument {
                document_id: command.document_id,
            });
        };
        if let Some(review) = &document.review {
            return Err(EnterpriseRejection::AlreadyReviewed {
                document_id: command.document_id,
                outcome: review.outcome.name(),
            });
        }
        let event = match &command.decision {
            ReviewDecision::Approve { comment } => {
                if let Some(comment) = comment {
                    check_length("comment", comment, FEEDBACK_CHARS_MAX)?;
                }
                Event::DocumentApproved(DocumentApproved {
                    document_id: command.document_id,
                    comment: comment.as_ref().map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()),
                    reviewed_at: context.now,
                })
            }
            ReviewDecision::Return { feedback } => {
                if feedback.trim().is_empty() {
                    return Err(EnterpriseRejection::FeedbackRequired {
                        document_id: command.document_id,
                    });
                }
                check_length("feedback", feedback, FEEDBACK_CHARS_MAX)?;
                Event::DocumentReturned(DocumentReturned {
                    document_id: command.document_id,
                    feedback: feedback.trim().to_owned(),
                    reviewed_at: context.now,
                })
            }
        };
        Ok(vec![event])
    }

    pub(super) fn registered(
        &self,
        enterprise_id: EnterpriseId,
    ) -> Result<&super::state::Registration, EnterpriseRejection> {
        self.registration
            .as_ref()
            .ok_or(EnterpriseRejection::UnknownEnterprise { enterprise_id })
    }
}

fn check_text(field: &'static str, value: &str, chars_max: usize) -> Result<(), EnterpriseRejection> {
    if value.trim().is_empty() {
        return Err(EnterpriseRejection::InvalidField {
            field,
            problem: FieldProblem::Empty,
        });
    }
    check_length(field, value, chars_max)
}

fn check_length(field: &'static str, value: &str, chars_max: usize) -> Result<(), EnterpriseRejection> {
    if value.chars().count() > chars_max {
        return Err(EnterpriseRejection::InvalidField {
            field,
            problem: FieldProblem::TooLong { chars_max },
        });
    }
    Ok(())
}

fn check_file(file: &FileRef) -> Result<(), EnterpriseRejection> {
    if file.size_bytes == 0 {
        return Err(EnterpriseRejection::EmptyFile);
    }
    let hash_ok = file.sha256.len() == 64
        && file
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hash_ok {
        return Err(EnterpriseRejection::InvalidField {
            field: "file.sha256",
            problem: FieldProblem::NotSha256,
        });
    }
    check_text("file.fileName", &file.file_name, FILE_NAME_CHARS_MAX)?;
    check_text("file.mediaType", &file.media_type, 127)
}

fn check_coverage(
    requirement_code: &RequirementCode,
    evidence: &Evidence,
    coverage: &Coverage,
    profile: &EnterpriseProfile,
    context: &DecisionContext<'_>,
) -> Result<(), EnterpriseRejection> {
    let mismatch = |expected: ExpectedCoverage| EnterpriseRejection::CoverageMismatch {
        requirement: requirement_code.clone(),
        expected,
    };
    match (evidence, coverage) {
        (Evidence::Review, Coverage::Once) => Ok(()),
        (Evidence::Review, _) => Err(mismatch(ExpectedCoverage::Once)),
        (
            Evidence::Validity { validity_days_max },
            Coverage::Validity {
                valid_from,
                valid_until,
            },
        ) => {
            if valid_from >= valid_until {
                return Err(EnterpriseRejection::InvalidValidity {
                    valid_from: *valid_from,
                    valid_until: *valid_until,
                });
            }
            if let Some(days) = validity_days_max
                && *valid_until - *valid_from > Duration::days(i64::from(*days))
            {
                return Err(EnterpriseRejection::ValidityTooLong {
                    requirement: requirement_code.clone(),
                    days_max: *days,
                });
            }
            Ok(())
        }
        (Evidence::Validity { .. }, _) => Err(mismatch(ExpectedCoverage::Validity)),
        (Evidence::Periodic { .. }, Coverage::Period { period }) => {
            let Some(cadence) = context.rules.cadence_for(evidence, profile) else {
                return Err(EnterpriseRejection::RequirementNotApplicable {
                    requirement: requirement_code.clone(),
                });
            };
            if period.cadence() != cadence {
                return Err(EnterpriseRejection::WrongCadence {
                    requirement: requirement_code.clone(),
                    expected: cadence,
                    period: *period,
                });
            }
            if period.start(context.rules.time_zone) > context.now {
                return Err(EnterpriseRejection::PeriodNotStarted { period: *period });
            }
            Ok(())
        }
        (Evidence::Periodic { .. }, _) => Err(mismatch(ExpectedCoverage::Period)),
    }
}

fn check_profile_bounds(profile: &EnterpriseProfile) -> Result<(), OutOfRange> {
    check_count("profile.staffCount", u64::from(profile.staff_count))?;
    bounds::check_yuan(
        "profile.annualRevenue10kYuan",
        profile.annual_revenue_10k_yuan.saturating_mul(10_000),
    )
}
