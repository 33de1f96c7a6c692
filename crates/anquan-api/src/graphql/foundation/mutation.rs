//! Mutations: each parses its input into a domain command, runs `execute`, waits until the
//! read models show the write, and returns the result. Nothing here decides a rule.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Upload};
use chrono::{DateTime, Utc};

use anquan_domain::enterprise::{
    ChangeEnterpriseProfile, CloseEnterprise, Coverage, EnterpriseCommand, EnterpriseFile, RegisterEnterprise,
    ReopenEnterprise, ReviewDecision, ReviewDocument, UploadDocument,
};
use anquan_domain::{DocumentId, RequirementCode, UnifiedSocialCreditCode};
use anquan_projections::compliance as read_model;

use super::types::{ClosureKind, Enterprise, Profile};
use crate::blobs::StagedFile;
use crate::error::ApiError;
use crate::graphql::args::{parse_enterprise_id, parse_id, parse_town};
use crate::graphql::command::{CommandArgs, ReadBack, Recorded, execute_command};
use crate::graphql::scalars::Int64;
use crate::graphql::{actor, app};

/// Mutations of the foundation gate; part of the mutation root.
#[derive(Default)]
pub struct EnterpriseMutation;

/// Enrol an enterprise.
#[derive(InputObject)]
pub struct RegisterEnterpriseInput {
    /// Registered name.
    pub name: String,
    /// 18-character unified social credit code; its check character is verified.
    pub credit_code: String,
    /// Town or sub-district (镇/街道).
    pub town: String,
    /// Industry.
    pub industry: String,
    /// The facts that decide which indicators apply.
    pub profile: Profile,
}

/// Change an enterprise's name, town, industry or profile.
#[derive(InputObject)]
pub struct ChangeEnterpriseProfileInput {
    /// The enterprise to change.
    pub enterprise_id: ID,
    /// New registered name.
    pub name: String,
    /// New town.
    pub town: String,
    /// New industry.
    pub industry: String,
    /// New profile.
    pub profile: Profile,
}

/// Describe an uploaded record. Give `validFrom` and `validUntil` for a requirement with a
/// validity, `period` (`2019`, `2019-H1`, `2019-Q3`, `2019-07`) for a periodic one, neither
/// for a one-off record.
#[derive(InputObject)]
pub struct UploadDocumentInput {
    /// The enterprise whose file it joins.
    pub enterprise_id: ID,
    /// A client-chosen id for the record; one is made if absent.
    pub document_id: Option<ID>,
    /// The requirement item, e.g. `R10.drill` (see `ruleSet`).
    pub requirement: String,
    /// A title for reviewers.
    pub title: String,
    /// Start of the validity the record states.
    pub valid_from: Option<DateTime<Utc>>,
    /// The instant the validity ends (exclusive).
    pub valid_until: Option<DateTime<Utc>>,
    /// The reporting period the record is for.
    pub period: Option<String>,
}

/// Close an enterprise (注销/停业): from `effectiveAt` it leaves A01 and every snapshot
/// metric, has no colour, and refuses uploads, inspections, new hazards and a new QR token.
#[derive(InputObject)]
pub struct CloseEnterpriseInput {
    /// The enterprise to close.
    pub enterprise_id: ID,
    /// Why it closes.
    pub kind: ClosureKind,
    /// The reason, for the record (1 to 500 characters).
    pub reason: String,
    /// When the closure took effect (default: now); not before its registration or last
    /// reopening, not in the future.
    pub effective_at: Option<DateTime<Utc>>,
}

/// Reopen a closed enterprise: active again from `effectiveAt`.
#[derive(InputObject)]
pub struct ReopenEnterpriseInput {
    /// The enterprise to reopen.
    pub enterprise_id: ID,
    /// The reason, for the record (1 to 500 characters).
    pub reason: String,
    /// When it resumed (default: now); not before the closure took effect, not in the future.
    pub effective_at: Option<DateTime<Utc>>,
}

/// A reviewer's decision.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ReviewDecisionKind {
    /// 审核通过.
    Approve,
    /// 退回 with feedback.
    Return,
}

/// Review a pending record.
#[derive(InputObject)]
pub struct ReviewDocumentInput {
    /// The enterprise whose record it is.
    pub enterprise_id: ID,
    /// The record to review.
    pub document_id: ID,
    /// Approve or return.
    pub decision: ReviewDecisionKind,
    /// Required when returning: what the enterprise must fix.
    pub feedback: Option<String>,
    /// Optional remark when approving.
    pub comment: Option<String>,
}

/// What a command did.
#[derive(SimpleObject)]
pub struct CommandPayload {
    /// What it wrote.
    #[graphql(flatten)]
    pub recorded: Recorded,
    /// The enterprise as the read models now show it.
    pub enterprise: Option<Enterprise>,
    /// The record the command created or reviewed, if any.
    pub document_id: Option<ID>,
}

/// Commands: each is decided against the current state of its enterprise and appended as events.
#[Object]
impl EnterpriseMutation {
    /// Enrols an enterprise (city admin, or the officer of its town). Its id derives from the
    /// credit code, so a code registers once.
    async fn register_enterprise(
        &self,
        ctx: &Context<'_>,
        input: RegisterEnterpriseInput,
        command_id: Option<ID>,
    ) -> Result<CommandPayload, ApiError> {
        let credit_code = UnifiedSocialCreditCode::parse(&input.credit_code)
            .map_err(|error| ApiError::invalid_credit_code(&error))?;
        let command = EnterpriseCommand::Register(RegisterEnterprise {
            name: input.name,
            credit_code,
            town: parse_town(&input.town)?,
            industry: input.industry,
            profile: input.profile.into(),
        });
        run(ctx, command, CommandArgs::parse(command_id.as_ref(), None)?, None, &[]).await
    }

    /// Changes an enterprise's name, town, industry or profile flags.
    async fn change_enterprise_profile(
        &self,
        ctx: &Context<'_>,
        input: ChangeEnterpriseProfileInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<CommandPayload, ApiError> {
        let command = EnterpriseCommand::ChangeProfile(ChangeEnterpriseProfile {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            name: input.name,
            town: parse_town(&input.town)?,
            industry: input.industry,
            profile: input.profile.into(),
        });
        run(
            ctx,
            command,
            CommandArgs::parse(command_id.as_ref(), expected_version)?,
            None,
            &[],
        )
        .await
    }

    /// Closes an enterprise (注销/停业; the officer of its town, or the city admin). Refused
    /// with `ENTERPRISE_CLOSED` when it is closed already.
    async fn close_enterprise(
        &self,
        ctx: &Context<'_>,
        input: CloseEnterpriseInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<CommandPayload, ApiError> {
        let command = EnterpriseCommand::Close(CloseEnterprise {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            kind: input.kind.into(),
            reason: input.reason,
            effective_at: input.effective_at,
        });
        run(
            ctx,
            command,
            CommandArgs::parse(command_id.as_ref(), expected_version)?,
            None,
            &[],
        )
        .await
    }

    /// Reopens a closed enterprise (the officer of its town, or the city admin). Refused with
    /// `ENTERPRISE_NOT_CLOSED` when it is not closed.
    async fn reopen_enterprise(
        &self,
        ctx: &Context<'_>,
        input: ReopenEnterpriseInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<CommandPayload, ApiError> {
        let command = EnterpriseCommand::Reopen(ReopenEnterprise {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            reason: input.reason,
            effective_at: input.effective_at,
        });
        run(
            ctx,
            command,
            CommandArgs::parse(command_id.as_ref(), expected_version)?,
            None,
            &[],
        )
        .await
    }

    /// Uploads a record for a requirement (GraphQL multipart request). The file is stored by
    /// its SHA-256; the record awaits review.
    async fn upload_document(
        &self,
        ctx: &Context<'_>,
        input: UploadDocumentInput,
        file: Upload,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<CommandPayload, ApiError> {
        let app = app(ctx)?;
        actor(ctx)?;
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let enterprise_id = parse_enterprise_id(&input.enterprise_id)?;
        let document_id = match &input.document_id {
            Some(id) => parse_id::<DocumentId>(id)?,
            None => DocumentId::from_uuid(args.created_id("document", 0)),
        };
        let requirement = RequirementCode::parse(&input.requirement).map_err(|_| ApiError::BadInput {
            code: "INVALID_ID",
            message: format!("“{}”不是有效的要求编号（例如 R10.drill）", input.requirement),
        })?;
        let coverage = coverage(&input)?;
        // Read and checked, not stored: stored only once the command is authorised and decided.
        let staged = crate::uploads::stage(ctx, app, std::slice::from_ref(&file), "file", 1)?;
        let stored = staged
            .first()
            .map(|staged| staged.file.clone())
            .ok_or_else(|| ApiError::bad_input("缺少上传的文件"))?;
        let command = EnterpriseCommand::UploadDocument(UploadDocument {
            enterprise_id,
            document_id,
            requirement,
            title: input.title,
            file: stored,
            coverage,
        });
        run(ctx, command, args, Some(document_id), &staged).await
    }

    /// Approves a pending record, or returns it with feedback (the officer of the
    /// enterprise's town, or the city).
    async fn review_document(
        &self,
        ctx: &Context<'_>,
        input: ReviewDocumentInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<CommandPayload, ApiError> {
        let document_id = parse_id::<DocumentId>(&input.document_id)?;
        let decision = match input.decision {
            ReviewDecisionKind::Approve => ReviewDecision::Approve { comment: input.comment },
            ReviewDecisionKind::Return => ReviewDecision::Return {
                feedback: input.feedback.unwrap_or_default(),
            },
        };
        let command = EnterpriseCommand::ReviewDocument(ReviewDocument {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            document_id,
            decision,
        });
        run(
            ctx,
            command,
            CommandArgs::parse(command_id.as_ref(), expected_version)?,
            Some(document_id),
            &[],
        )
        .await
    }
}

/// Runs an enterprise command down the one path and reads the enterprise back; `files` are
/// its uploads, stored only once it is authorised and decided.
async fn run(
    ctx: &Context<'_>,
    command: EnterpriseCommand,
    args: CommandArgs,
    document_id: Option<DocumentId>,
    files: &[StagedFile],
) -> Result<CommandPayload, ApiError> {
    let (recorded, enterprise) = execute_and_read_back(ctx, &command, args, files).await?;
    Ok(CommandPayload {
        recorded,
        enterprise,
        document_id: document_id.map(|id| ID(id.to_string())),
    })
}

/// Runs an enterprise command down the one path, then reads the enterprise back as the read
/// models now show it (the foundation and supervision gates' payloads carry it).
pub(in crate::graphql) async fn execute_and_read_back(
    ctx: &Context<'_>,
    command: &EnterpriseCommand,
    args: CommandArgs,
    files: &[StagedFile],
) -> Result<(Recorded, Option<Enterprise>), ApiError> {
    let app = app(ctx)?;
    let executed = execute_command::<EnterpriseFile>(
        ctx,
        command,
        args,
        files,
        ReadBack::Required(anquan_projections::ComplianceProjection::NAME),
    )
    .await?;
    let file = read_model::enterprise_file(app.compliance_read_models()?, command.enterprise_id()).await?;
    let at = executed.decided_at.max(app.now());
    let enterprise = file.and_then(|file| Enterprise::at(Arc::new(file), &app.rules, at));
    Ok((executed.recorded(), enterprise))
}

fn coverage(input: &UploadDocumentInput) -> Result<Coverage, ApiError> {
    match (&input.valid_from, &input.valid_until, &input.period) {
        (None, None, None) => Ok(Coverage::Once),
        (Some(valid_from), Some(valid_until), None) => Ok(Coverage::Validity {
            valid_from: *valid_from,
            valid_until: *valid_until,
        }),
        (None, None, Some(period)) => Ok(Coverage::Period {
            period: period.parse().map_err(|error| ApiError::invalid_period(&error))?,
        }),
        _ => Err(ApiError::bad_input(
            "有效期起止（validFrom、validUntil）须同时填写，或只填报告期（period），或都不填",
        )),
    }
}
