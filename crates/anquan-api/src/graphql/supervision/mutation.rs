//! The supervision gate's mutations: inspections, hazards, rectifications, accidents.

use async_graphql::{Context, ID, InputObject, Object, Upload};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use anquan_domain::enterprise::event::{CriterionRef, HazardSource, InspectionDocument};
use anquan_domain::enterprise::listing::{LiftHazardListing, ListHazard, ReportListingProgress, RequestListingLift};
use anquan_domain::enterprise::supervision::{
    ConfirmMajorHazard, ExtendHazardDeadline, FILES_MAX, NewHazard, RecordHazard, RecordInspection, ReportAccident,
    SpotCheckHazard, SubmitRectification, VerifyRectification,
};
use anquan_domain::enterprise::{EnterpriseCommand, FileRef};
use anquan_domain::{HazardId, InspectionId};

use super::types::*;
use crate::blobs::StagedFile;
use crate::error::ApiError;
use crate::graphql::agency::types::HazardLevel;
use crate::graphql::args::{parse_enterprise_id, parse_id};
use crate::graphql::command::CommandArgs;
use crate::graphql::scalars::Int64;
use crate::graphql::{actor, app};

// ----- inputs ----------------------------------------------------------------------------------

/// A hazard as found.
#[derive(InputObject)]
pub(super) struct NewHazardInput {
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
    /// For a major hazard no catalogue item fits (or whose item the rule set lacks): the basis
    /// in words, instead of `criterionCatalogue`/`criterionItem`. The hazard is then "major,
    /// pending confirmation" and counts as general until a town officer or the city admin
    /// confirms it (`confirmMajorHazard`).
    pub basis: Option<String>,
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
pub(super) struct RecordInspectionInput {
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
pub(super) struct RecordHazardInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard.
    pub hazard: NewHazardInput,
}

/// Approve a later deadline.
#[derive(InputObject)]
pub(super) struct ExtendHazardDeadlineInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard.
    pub hazard_id: ID,
    /// The new deadline; must be later than the one in force.
    pub deadline: DateTime<Utc>,
    /// Why it is extended.
    pub reason: String,
}

/// Confirm a major hazard recorded with a free-text basis.
#[derive(InputObject)]
pub(super) struct ConfirmMajorHazardInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard, "major, pending confirmation".
    pub hazard_id: ID,
    /// Why it is major (e.g. the article of the standard it meets).
    pub note: String,
}

/// List an open major hazard for supervision (挂牌督办).
#[derive(InputObject)]
pub(super) struct ListHazardInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard: open, and major as it counts now.
    pub hazard_id: ID,
    /// The listing document's number (督办文号).
    pub document_number: String,
    /// Remediation is due by this instant (督办期限); must be in the future.
    pub deadline: DateTime<Utc>,
    /// Whether production (or the affected part) is suspended until the listing is lifted.
    pub production_suspended: bool,
}

/// Report the progress of a listed hazard's remediation (evidence files as the mutation's
/// `files` uploads).
#[derive(InputObject)]
pub(super) struct ReportListingProgressInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The listed hazard.
    pub hazard_id: ID,
    /// What was done and what remains.
    pub text: String,
}

/// Apply to lift a listing once the hazard's remediation is verified (复产申请).
#[derive(InputObject)]
pub(super) struct RequestListingLiftInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The listed hazard, closed by an inspector's verification.
    pub hazard_id: ID,
    /// The assessment and the application, in words.
    pub text: String,
}

/// Lift a listing after the city's on-site review (摘牌).
#[derive(InputObject)]
pub(super) struct LiftHazardListingInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The listed hazard, with a lift requested.
    pub hazard_id: ID,
    /// The review's conclusion.
    pub note: String,
}

/// Spot-check a hazard the enterprise closed itself (抽查).
#[derive(InputObject)]
pub(super) struct SpotCheckHazardInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The self-closed hazard.
    pub hazard_id: ID,
    /// Absent: the closure stands. Given: why it does not; the hazard reopens, and from then on
    /// only an inspector closes it.
    pub failed_because: Option<String>,
}

/// Submit a rectification; photos come as the mutation's `photos` uploads.
#[derive(InputObject)]
pub(super) struct SubmitRectificationInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// The hazard rectified.
    pub hazard_id: ID,
    /// What was done.
    pub text: String,
}

/// Accept or return a submitted rectification.
#[derive(InputObject)]
pub(super) struct VerifyRectificationInput {
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
pub(super) struct ReportAccidentInput {
    /// The enterprise.
    pub enterprise_id: ID,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// People killed.
    pub fatalities: u32,
    /// What happened.
    pub description: String,
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
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
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
        let hazards = input
            .hazards
            .into_iter()
            .enumerate()
            .map(|(index, hazard)| {
                let hazard_id = HazardId(args.created_id("hazard", index));
                new_hazard(hazard_id, hazard, &photos, false)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inspection_id = InspectionId(args.created_id("inspection", 0));
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
        run(ctx, command, args, created, &staged).await
    }

    /// Records a hazard the enterprise found itself (the enterprise, or the city).
    async fn record_hazard(
        &self,
        ctx: &Context<'_>,
        input: RecordHazardInput,
        #[graphql(default)] photos: Vec<Upload>,
        command_id: Option<ID>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let app = app(ctx)?;
        actor(ctx)?;
        let enterprise_id = parse_enterprise_id(&input.enterprise_id)?;
        let staged = crate::uploads::stage(ctx, app, &photos, "photos", FILES_MAX)?;
        let photos = file_refs(&staged);
        let hazard_id = HazardId(args.created_id("hazard", 0));
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
        run(ctx, command, args, created, &staged).await
    }

    /// Approves a later deadline for an open hazard (inspectors of its town, or the city).
    async fn extend_hazard_deadline(
        &self,
        ctx: &Context<'_>,
        input: ExtendHazardDeadlineInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
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
        run(ctx, command, args, created, &[]).await
    }

    /// Confirms a major hazard recorded with a free-text basis (the town officer of its town, or
    /// the city admin): from now on it counts as major (veto, red, major-hazard figures).
    async fn confirm_major_hazard(
        &self,
        ctx: &Context<'_>,
        input: ConfirmMajorHazardInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let command = EnterpriseCommand::ConfirmMajorHazard(ConfirmMajorHazard {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            note: input.note,
        });
        let created = Created {
            hazard_ids: vec![hazard_id],
            ..Created::default()
        };
        run(ctx, command, args, created, &[]).await
    }

    /// Lists an open major hazard for supervision (挂牌督办; the city admin). While listed, the
    /// rule set counts it as an open major hazard (veto, red) until `liftHazardListing`.
    async fn list_hazard(
        &self,
        ctx: &Context<'_>,
        input: ListHazardInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let command = EnterpriseCommand::ListHazard(ListHazard {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            document_number: input.document_number,
            deadline: input.deadline,
            production_suspended: input.production_suspended,
        });
        run(ctx, command, args, Created::hazard(hazard_id), &[]).await
    }

    /// Reports the progress of a listed hazard's remediation, with evidence files (multipart;
    /// the town officer of its town, or the city admin).
    async fn report_listing_progress(
        &self,
        ctx: &Context<'_>,
        input: ReportListingProgressInput,
        #[graphql(default)] files: Vec<Upload>,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let app = app(ctx)?;
        actor(ctx)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let staged = crate::uploads::stage(ctx, app, &files, "files", FILES_MAX)?;
        let command = EnterpriseCommand::ReportListingProgress(ReportListingProgress {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            text: input.text,
            files: file_refs(&staged),
        });
        run(ctx, command, args, Created::hazard(hazard_id), &staged).await
    }

    /// Applies to lift a listing once an inspector verified the hazard's remediation (the town
    /// officer of its town, or the city admin); the city reviews on site within the rule set's
    /// review days.
    async fn request_listing_lift(
        &self,
        ctx: &Context<'_>,
        input: RequestListingLiftInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let command = EnterpriseCommand::RequestListingLift(RequestListingLift {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            text: input.text,
        });
        run(ctx, command, args, Created::hazard(hazard_id), &[]).await
    }

    /// Lifts a listing after the city's on-site review of the town's request (the city admin);
    /// the hazard must still be closed.
    async fn lift_hazard_listing(
        &self,
        ctx: &Context<'_>,
        input: LiftHazardListingInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let command = EnterpriseCommand::LiftHazardListing(LiftHazardListing {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            note: input.note,
        });
        run(ctx, command, args, Created::hazard(hazard_id), &[]).await
    }

    /// Spot-checks a self-reported hazard the enterprise closed itself (an inspector of its
    /// town, or a city inspector). A rectification's `spotCheckDrawn` says whether the rule
    /// set's sample drew it; an inspector may check any self-closure once.
    async fn spot_check_hazard(
        &self,
        ctx: &Context<'_>,
        input: SpotCheckHazardInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let command = EnterpriseCommand::SpotCheckHazard(SpotCheckHazard {
            enterprise_id: parse_enterprise_id(&input.enterprise_id)?,
            hazard_id,
            failed_because: input.failed_because,
        });
        let created = Created {
            hazard_ids: vec![hazard_id],
            ..Created::default()
        };
        run(ctx, command, args, created, &[]).await
    }

    /// Submits a rectification of one of the enterprise's own hazards, with photos (multipart).
    async fn submit_rectification(
        &self,
        ctx: &Context<'_>,
        input: SubmitRectificationInput,
        #[graphql(default)] photos: Vec<Upload>,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let app = app(ctx)?;
        actor(ctx)?;
        let hazard_id = parse_id::<HazardId>(&input.hazard_id)?;
        let staged = crate::uploads::stage(ctx, app, &photos, "photos", FILES_MAX)?;
        let photos = file_refs(&staged);
        let rectification_id = args.created_id("rectification", 0);
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
        run(ctx, command, args, created, &staged).await
    }

    /// Accepts a submitted rectification (the hazard closes) or returns it with a reason (it
    /// stays open); inspectors of the enterprise's town, or the city.
    async fn verify_rectification(
        &self,
        ctx: &Context<'_>,
        input: VerifyRectificationInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
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
        run(ctx, command, args, created, &[]).await
    }

    /// Reports an accident at the enterprise (inspectors of its town, or the city).
    async fn report_accident(
        &self,
        ctx: &Context<'_>,
        input: ReportAccidentInput,
        command_id: Option<ID>,
    ) -> Result<SupervisionPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let accident_id = args.created_id("accident", 0);
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
        run(ctx, command, args, created, &[]).await
    }
}

/// The ids a command creates or refers to, returned in its payload.
#[derive(Default)]
pub(crate) struct Created {
    inspection_id: Option<InspectionId>,
    hazard_ids: Vec<HazardId>,
    rectification_id: Option<Uuid>,
    accident_id: Option<Uuid>,
}

impl Created {
    /// A command about one existing hazard.
    fn hazard(hazard_id: HazardId) -> Self {
        Created {
            hazard_ids: vec![hazard_id],
            ..Created::default()
        }
    }
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
                    .ok_or_else(|| ApiError::bad_input(format!("照片序号 {index} 超出了本次上传的照片范围")))
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
                "重大隐患判定依据的目录（criterionCatalogue）和条目（criterionItem）须同时填写",
            ));
        }
    };
    Ok(NewHazard {
        hazard_id,
        category: input.category.into(),
        level: domain_level(input.level),
        severity: input.severity.map(Into::into),
        criterion,
        basis: input.basis,
        description: input.description,
        photos,
        deadline: input.deadline,
    })
}

/// The references of staged uploads, in order.
fn file_refs(staged: &[StagedFile]) -> Vec<FileRef> {
    staged.iter().map(|staged| staged.file.clone()).collect()
}

/// Runs a supervision command down the one path and reads the enterprise back.
async fn run(
    ctx: &Context<'_>,
    command: EnterpriseCommand,
    args: CommandArgs,
    created: Created,
    files: &[StagedFile],
) -> Result<SupervisionPayload, ApiError> {
    let (recorded, enterprise) =
        crate::graphql::foundation::mutation::execute_and_read_back(ctx, &command, args, files).await?;
    Ok(SupervisionPayload {
        recorded,
        enterprise,
        inspection_id: created.inspection_id.map(|id| ID(id.to_string())),
        hazard_ids: created.hazard_ids.iter().map(|id| ID(id.to_string())).collect(),
        rectification_id: created.rectification_id.map(|id| ID(id.to_string())),
        accident_id: created.accident_id.map(|id| ID(id.to_string())),
    })
}
