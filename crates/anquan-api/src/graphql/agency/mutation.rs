//! The service gate's mutations: agencies, staff, contracts, service reports, ratings and the
//! city's supervision of agencies.

use super::*;

use anquan_domain::agency::EraseDataSubject;
use anquan_domain::personal::DataSubject;

/// Mutations of the service gate; part of the mutation root.
#[derive(Default)]
pub struct AgencyMutation;

/// Propose a service contract to a registered enterprise.
#[derive(InputObject)]
pub(super) struct ProposeContractInput {
    /// The agency.
    pub agency_id: ID,
    /// A client-chosen contract id; one is made if absent.
    pub contract_id: Option<ID>,
    /// The enterprise; it must be registered.
    pub enterprise_id: ID,
    /// In force from.
    pub valid_from: DateTime<Utc>,
    /// In force until (exclusive).
    pub valid_until: DateTime<Utc>,
    /// Services promised.
    pub services: Vec<String>,
    /// Visits promised over the period.
    pub visits_promised: u32,
    /// Fee in whole yuan.
    pub fee_yuan: Int64,
}

/// A hazard found on a service visit.
#[derive(InputObject)]
pub(super) struct ServiceHazardInput {
    /// Category (电气, 消防, …).
    pub category: String,
    /// Level.
    pub level: HazardLevel,
    /// Description.
    pub description: String,
    /// Photos, stored first with `storeAgencyFile`.
    #[graphql(default)]
    pub photos: Vec<StoredFile>,
    /// The deadline the agency suggests.
    pub suggested_deadline: Option<DateTime<Utc>>,
}

/// Report a service visit; the report file is the request's upload.
#[derive(InputObject)]
pub(super) struct ReportServiceInput {
    /// The agency.
    pub agency_id: ID,
    /// A client-chosen report id; one is made if absent.
    pub report_id: Option<ID>,
    /// The contract served under.
    pub contract_id: ID,
    /// When the visit was.
    pub visited_at: DateTime<Utc>,
    /// Staff who served (from the staff registry).
    pub staff_ids: Vec<ID>,
    /// Findings.
    pub findings: String,
    /// Hazards found.
    #[graphql(default)]
    pub hazards: Vec<ServiceHazardInput>,
    /// Photos, stored first with `storeAgencyFile`.
    #[graphql(default)]
    pub photos: Vec<StoredFile>,
}

/// Grade an agency's half-year.
#[derive(InputObject)]
pub(super) struct GradeAgencyInput {
    /// The agency.
    pub agency_id: ID,
    /// The half-year, e.g. `2019-H1`.
    pub half_year: String,
    /// Hazards a later government inspection found that the agency missed (default 0).
    #[graphql(default)]
    pub missed_findings: u32,
    /// The grade; null or absent: not graded (未评级). A half-year with too little activity or
    /// evidence may only be left ungraded or, with a reason, graded D (`NOT_GRADABLE`).
    pub grade: Option<CreditGrade>,
    /// Required when the grade differs from the computed one.
    pub reason: Option<String>,
}

/// Regrade an agency's half-year that has a final grade.
#[derive(InputObject)]
pub(super) struct RegradeAgencyInput {
    /// The agency.
    pub agency_id: ID,
    /// The half-year, e.g. `2019-H1`.
    pub half_year: String,
    /// Hazards a later government inspection found that the agency missed (default 0).
    #[graphql(default)]
    pub missed_findings: u32,
    /// The new grade; null or absent: not graded (未评级).
    pub grade: Option<CreditGrade>,
    /// Why the grade changes (required).
    pub reason: String,
}

#[Object]
impl AgencyMutation {
    /// Registers an agency (city admin). Its id is client-chosen, or made here: derived from
    /// `commandId` when one is sent (a retry names the same agency), else a UUID v7.
    async fn register_agency(
        &self,
        ctx: &Context<'_>,
        profile: AgencyProfileInput,
        agency_id: Option<ID>,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let agency_id = match agency_id {
            Some(id) => parse_id::<AgencyId>(&id)?,
            None => AgencyId::from_uuid(args.created_id("agency", 0)),
        };
        let command = AgencyCommand::Register(RegisterAgency {
            agency_id,
            profile: profile_of(profile),
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Changes an agency's published profile (the city or the agency).
    async fn change_agency_profile(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        profile: AgencyProfileInput,
        command_id: Option<ID>,
        expected_version: Option<Int64>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), expected_version)?;
        let command = AgencyCommand::ChangeProfile(ChangeAgencyProfile {
            agency_id: parse_id(&agency_id)?,
            profile: profile_of(profile),
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Reports the staff of a half-year; it replaces that half-year's list. Reports after the
    /// due date are accepted and flagged late.
    async fn report_agency_staff(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        half_year: String,
        staff: Vec<StaffMemberInput>,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let staff = staff
            .into_iter()
            .enumerate()
            .map(|(index, member)| {
                Ok(StaffMember {
                    staff_id: match &member.staff_id {
                        Some(id) => parse_id(id)?,
                        None => StaffId::from_uuid(args.created_id("staff", index)),
                    },
                    name: member.name,
                    qualifications: member
                        .qualifications
                        .into_iter()
                        .map(|q| anquan_domain::agency::Qualification {
                            kind: q.kind.into(),
                            certificate_number: q.certificate_number,
                        })
                        .collect(),
                    phone: member.phone,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let command = AgencyCommand::ReportStaff(ReportStaff {
            agency_id: parse_id(&agency_id)?,
            half_year: parse_period(&half_year)?,
            staff,
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Proposes a service contract to a registered enterprise (the agency; refused while it is
    /// blacklisted). A fee outside the published band is recorded and flagged. The contract
    /// counts once the enterprise confirms it (`confirmContract`) and the officer of its town
    /// files it (`fileContract`).
    async fn propose_contract(
        &self,
        ctx: &Context<'_>,
        input: ProposeContractInput,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let app = app(ctx)?;
        let enterprise_id = parse_enterprise_id(&input.enterprise_id)?;
        let agency_id = parse_id::<AgencyId>(&input.agency_id)?;
        // Authorised before the read model is read: a caller who may not sign for the agency
        // learns nothing, not even whether the enterprise is registered.
        may_act_for(actor(ctx)?, agency_id, "代表它提出服务合同")?;
        // Checked at read time: an enterprise is never deleted, so "registered" cannot become
        // false; one closed just before may still be proposed to while the read model lags.
        let enterprise_town = contractable_enterprise_town(app, enterprise_id).await?;
        let contract_id = match &input.contract_id {
            Some(id) => parse_id(id)?,
            None => ContractId::from_uuid(args.created_id("contract", 0)),
        };
        let command = AgencyCommand::ProposeContract(ProposeContract {
            agency_id,
            contract_id,
            enterprise_id,
            enterprise_town,
            valid_from: input.valid_from,
            valid_until: input.valid_until,
            services: input.services,
            visits_promised: input.visits_promised,
            fee_yuan: input.fee_yuan.0,
        });
        let ids = Ids {
            contract_id: Some(contract_id),
            report_id: None,
        };
        run(ctx, command, args, ids).await
    }

    /// Confirms a proposed contract (the enterprise named in it).
    async fn confirm_contract(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        contract_id: ID,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let contract_id = parse_id(&contract_id)?;
        let command = AgencyCommand::ConfirmContract(ConfirmContract {
            agency_id: parse_id(&agency_id)?,
            contract_id,
        });
        run(ctx, command, args, Ids::contract(contract_id)).await
    }

    /// Rejects a proposed contract with a reason (the enterprise named in it); it never counts.
    async fn reject_contract(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        contract_id: ID,
        reason: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let contract_id = parse_id(&contract_id)?;
        let command = AgencyCommand::RejectContract(RejectContract {
            agency_id: parse_id(&agency_id)?,
            contract_id,
            reason,
        });
        run(ctx, command, args, Ids::contract(contract_id)).await
    }

    /// Files (备案) a confirmed contract (the officer of the enterprise's town); from then on it
    /// counts toward coverage and shows on the public page. A fee outside the agency's band is
    /// filed only with an exception reason (`FEE_EXCEPTION_REASON_REQUIRED`).
    async fn file_contract(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        contract_id: ID,
        exception_reason: Option<String>,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let contract_id = parse_id(&contract_id)?;
        let command = AgencyCommand::FileContract(FileContract {
            agency_id: parse_id(&agency_id)?,
            contract_id,
            exception_reason,
        });
        run(ctx, command, args, Ids::contract(contract_id)).await
    }

    /// Ends a contract early (the agency or the city): before filing it is withdrawn.
    async fn terminate_service_contract(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        contract_id: ID,
        reason: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let contract_id = parse_id(&contract_id)?;
        let command = AgencyCommand::TerminateContract(TerminateContract {
            agency_id: parse_id(&agency_id)?,
            contract_id,
            reason,
        });
        let ids = Ids {
            contract_id: Some(contract_id),
            report_id: None,
        };
        run(ctx, command, args, ids).await
    }

    /// Stores a file (a photo) to name in a later service report; returns its reference (an
    /// agency, counted against its quota, or the city admin). A file that names a person is
    /// marked with `personalSubject`, the person's data subject id
    /// (`agency-<agencyId>/staff/<staffId>` of a reported staff member, or
    /// `agency-<agencyId>/contact`): it is then stored encrypted under that person's key, the
    /// reference's `sha256` and `sizeBytes` are those of the encrypted bytes, and erasing the
    /// person (`eraseDataSubject`) leaves the file with no readable content.
    async fn store_agency_file(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        personal_subject: Option<String>,
    ) -> Result<StoredFile, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        if !matches!(actor.role, Role::Agency { .. } | Role::CityAdmin) {
            return Err(ApiError::Forbidden(
                "只有服务机构和市级管理员可以上传服务机构文件".to_owned(),
            ));
        }
        let subject = match personal_subject.as_deref() {
            None => None,
            Some(text) => Some(personal_subject_of(app, actor, text).await?),
        };
        if subject.is_some() && !app.blobs.seals_personal_files() {
            return Err(ApiError::Refused {
                code: "PERSONAL_FILES_UNAVAILABLE",
                message: "本服务的存储后端不支持可删除的个人文件，请不要上传含个人信息的文件".to_owned(),
                details: vec![("field", "personalSubject".into())],
            });
        }
        let mut staged = crate::uploads::stage(ctx, app, std::slice::from_ref(&file), "file", 1)?;
        if let Some(subject) = &subject {
            let mut sealed = Vec::with_capacity(staged.len());
            for file in &staged {
                sealed.push(
                    app.blobs
                        .seal(file, subject)
                        .await
                        .map_err(|error| ApiError::internal(&error))?,
                );
            }
            staged = sealed;
        }
        crate::uploads::store_checked(app, actor, &staged).await?;
        let stored = staged
            .first()
            .map(|staged| staged.file.clone())
            .ok_or_else(|| ApiError::bad_input("缺少上传的文件"))?;
        Ok(StoredFile::from(&stored))
    }

    /// Reports a service visit (GraphQL multipart request; the upload is the report file).
    /// Its hazards are kept with their index and then recorded in the enterprise's hazard list
    /// (source `AGENCY_SERVICE`, with the agency and the report); a retry with the same
    /// `commandId` records any that are missing.
    async fn report_service(
        &self,
        ctx: &Context<'_>,
        input: ReportServiceInput,
        report_file: Upload,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let app = app(ctx)?;
        let agency_id = parse_id::<AgencyId>(&input.agency_id)?;
        // Authorised before the blob store is read for the files the report names.
        may_act_for(actor(ctx)?, agency_id, "代表它报送服务记录")?;
        let report_id = match &input.report_id {
            Some(id) => parse_id(id)?,
            None => ServiceReportId::from_uuid(args.created_id("service_report", 0)),
        };
        let mut hazards = Vec::with_capacity(input.hazards.len());
        for hazard in input.hazards {
            hazards.push(HazardReport {
                category: hazard.category,
                level: hazard.level.into(),
                description: hazard.description,
                photos: stored_files(app, hazard.photos).await?,
                suggested_deadline: hazard.suggested_deadline,
            });
        }
        let photos = stored_files(app, input.photos).await?;
        // Read and checked, not stored: stored only once the report is authorised and decided.
        let staged = crate::uploads::stage(ctx, app, std::slice::from_ref(&report_file), "reportFile", 1)?;
        let report_file = staged
            .first()
            .map(|staged| staged.file.clone())
            .ok_or_else(|| ApiError::bad_input("缺少上传的文件"))?;
        let command = AgencyCommand::ReportService(ReportService {
            agency_id,
            report_id,
            contract_id: parse_id(&input.contract_id)?,
            visited_at: input.visited_at,
            staff_ids: input.staff_ids.iter().map(parse_id).collect::<Result<_, _>>()?,
            findings: input.findings,
            hazards,
            photos,
            report_file,
        });
        let ids = Ids {
            contract_id: None,
            report_id: Some(report_id),
        };
        let (payload, events) = run_with_files_and_events(ctx, command, args, ids, &staged).await?;
        // The hazards enter the enterprise's hazard list (issue 21). A failure here leaves the
        // report recorded: the caller retries with the same commandId, which answers the report
        // again and relays what is missing.
        for event in &events {
            if let Event::ServiceReported(reported) = event {
                crate::graphql::supervision::relay::relay_reported_hazards(ctx, agency_id, reported).await?;
            }
        }
        Ok(payload)
    }

    /// Rates a service record 1 to 5 stars (the served enterprise, once).
    async fn rate_service(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        report_id: ID,
        stars: i32,
        comment: Option<String>,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let report_id = parse_id(&report_id)?;
        let command = AgencyCommand::RateService(RateService {
            agency_id: parse_id(&agency_id)?,
            report_id,
            stars: i64::from(stars),
            comment,
        });
        run(ctx, command, args, Ids::report(report_id)).await
    }

    /// Records the city's verdict on a sampled service report (city admin).
    async fn spot_check_service_report(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        report_id: ID,
        qualified: bool,
        note: Option<String>,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let report_id = parse_id(&report_id)?;
        let command = AgencyCommand::SpotCheckReport(SpotCheckReport {
            agency_id: parse_id(&agency_id)?,
            report_id,
            qualified,
            note,
        });
        run(ctx, command, args, Ids::report(report_id)).await
    }

    /// Records a founded complaint about an agency (city admin).
    async fn record_agency_complaint(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        complaint: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let command = AgencyCommand::FoundComplaint(FoundComplaint {
            agency_id: parse_id(&agency_id)?,
            complaint,
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Issues a warning notice or a summons (city admin).
    async fn warn_agency(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        kind: WarningKind,
        reason: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let command = AgencyCommand::Warn(WarnAgency {
            agency_id: parse_id(&agency_id)?,
            kind: kind.into(),
            reason,
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Records misconduct (city admin); a false report or refusing to rectify after a summons
    /// also puts the agency on the blacklist.
    async fn record_agency_misconduct(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        kind: MisconductKind,
        reason: String,
        report_id: Option<ID>,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let report_id = report_id.as_ref().map(parse_id).transpose()?;
        let command = AgencyCommand::RecordMisconduct(RecordMisconduct {
            agency_id: parse_id(&agency_id)?,
            kind: kind.into(),
            report_id,
            reason,
        });
        let ids = Ids {
            contract_id: None,
            report_id,
        };
        run(ctx, command, args, ids).await
    }

    /// Grades a half-year (city admin): the score is computed from the agency's facts and
    /// recorded with the grade. Before the half-year ends the grade is provisional (it may be
    /// given again, and is not public); after, it is final, given once, and two consecutive
    /// final Ds also blacklist.
    async fn grade_agency(
        &self,
        ctx: &Context<'_>,
        input: GradeAgencyInput,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let command = AgencyCommand::Grade(GradeAgency {
            agency_id: parse_id(&input.agency_id)?,
            half_year: parse_period(&input.half_year)?,
            missed_findings: input.missed_findings,
            grade: input.grade.map(Into::into),
            reason: input.reason,
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Changes a half-year's final grade (city admin), with a reason: the score is recomputed
    /// from the facts known now and recorded as a new event (`CreditRegraded`); the earlier
    /// grade stays in the log.
    async fn regrade_agency(
        &self,
        ctx: &Context<'_>,
        input: RegradeAgencyInput,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let command = AgencyCommand::Regrade(RegradeAgency {
            agency_id: parse_id(&input.agency_id)?,
            half_year: parse_period(&input.half_year)?,
            missed_findings: input.missed_findings,
            grade: input.grade.map(Into::into),
            reason: input.reason,
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Puts an agency on the blacklist or takes it off (city admin).
    async fn set_agency_blacklisted(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        blacklisted: bool,
        reason: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let command = AgencyCommand::ChangeBlacklist(ChangeBlacklist {
            agency_id: parse_id(&agency_id)?,
            blacklisted,
            reason,
        });
        run(ctx, command, args, Ids::default()).await
    }

    /// Erases a data subject's personal data (city admin): a staff member
    /// (`agency-<agencyId>/staff/<staffId>`: name, certificate numbers, phone) or an agency's
    /// contact (`agency-<agencyId>/contact`: the contact phone). Records `DataSubjectErased` on
    /// the agency's stream, then the store deletes the subject's key; the answer comes once the
    /// agency read model shows the fields as erased (〔已删除〕). The reason must not contain
    /// what is erased (`REASON_NAMES_PERSON`).
    async fn erase_data_subject(
        &self,
        ctx: &Context<'_>,
        subject_id: String,
        reason: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let args = CommandArgs::parse(command_id.as_ref(), None)?;
        let subject = DataSubject::parse(&subject_id).map_err(|_| ApiError::BadInput {
            code: "INVALID_ID",
            message: format!(
                "subjectId {subject_id:?} 不是有效的个人信息主体编号（应为 agency-<机构编号>/staff/<人员编号> 或 agency-<机构编号>/contact）"
            ),
        })?;
        let command = AgencyCommand::EraseDataSubject(EraseDataSubject { subject, reason });
        let executed = execute_command::<AgencyState>(
            ctx,
            &command,
            args,
            &[],
            ReadBack::Required(anquan_projections::AgencyProjection::NAME),
        )
        .await?;
        // The rows are rewritten; older copies of their pages go too (SQLite's WAL).
        if let Err(error) = app(ctx)?.read_models.settle_erasure().await {
            tracing::warn!(error = %error, "could not settle the read models after an erasure");
        }
        Ok(AgencyCommandPayload {
            recorded: executed.recorded(),
            event_types: executed
                .events
                .iter()
                .map(|event| event.event_type().to_owned())
                .collect(),
            agency_id: ID(command.agency_id().to_string()),
            contract_id: None,
            report_id: None,
            grade: None,
        })
    }
}

/// Ids a command created or concerns, echoed in the payload.
#[derive(Default)]
struct Ids {
    contract_id: Option<ContractId>,
    report_id: Option<ServiceReportId>,
}

impl Ids {
    fn contract(contract_id: ContractId) -> Self {
        Ids {
            contract_id: Some(contract_id),
            report_id: None,
        }
    }

    fn report(report_id: ServiceReportId) -> Self {
        Ids {
            contract_id: None,
            report_id: Some(report_id),
        }
    }
}

/// Runs an agency command down the one path.
async fn run(
    ctx: &Context<'_>,
    command: AgencyCommand,
    args: CommandArgs,
    ids: Ids,
) -> Result<AgencyCommandPayload, ApiError> {
    run_with_files(ctx, command, args, ids, &[]).await
}

/// Runs an agency command that names uploaded files down the one path; the files are stored
/// only once the command is authorised and decided. The payload is made of the command's own
/// events, not read back, so a stalled agency read model does not fail the mutation: its queries
/// answer `PROJECTION_STALLED` instead.
async fn run_with_files(
    ctx: &Context<'_>,
    command: AgencyCommand,
    args: CommandArgs,
    ids: Ids,
    files: &[StagedFile],
) -> Result<AgencyCommandPayload, ApiError> {
    Ok(run_with_files_and_events(ctx, command, args, ids, files).await?.0)
}

/// As `run_with_files`, also returning the command's events (those of the first call for a
/// repeated `commandId`).
async fn run_with_files_and_events(
    ctx: &Context<'_>,
    command: AgencyCommand,
    args: CommandArgs,
    ids: Ids,
    files: &[StagedFile],
) -> Result<(AgencyCommandPayload, Vec<Event>), ApiError> {
    let executed = execute_command::<AgencyState>(
        ctx,
        &command,
        args,
        files,
        ReadBack::BestEffort(anquan_projections::AgencyProjection::NAME),
    )
    .await?;
    let grade = executed.events.iter().find_map(|event| match event {
        Event::CreditGraded(graded) => Some(CreditGradeRecord::from(&read_model::GradeView {
            half_year: graded.half_year,
            grade: graded.grade,
            kind: if graded.provisional {
                read_model::GradeKind::Provisional
            } else {
                read_model::GradeKind::Final
            },
            reason: graded.reason.clone(),
            inputs: graded.inputs.clone(),
            computed: graded.computed.clone(),
            graded_at: graded.graded_at,
        })),
        Event::CreditRegraded(regraded) => Some(CreditGradeRecord::from(&read_model::GradeView {
            half_year: regraded.half_year,
            grade: regraded.grade,
            kind: read_model::GradeKind::Regraded,
            reason: Some(regraded.reason.clone()),
            inputs: regraded.inputs.clone(),
            computed: regraded.computed.clone(),
            graded_at: regraded.regraded_at,
        })),
        _ => None,
    });
    let payload = AgencyCommandPayload {
        recorded: executed.recorded(),
        event_types: executed
            .events
            .iter()
            .map(|event| event.event_type().to_owned())
            .collect(),
        agency_id: ID(command.agency_id().to_string()),
        contract_id: ids.contract_id.map(|id| ID(id.to_string())),
        report_id: ids.report_id.map(|id| ID(id.to_string())),
        grade,
    };
    Ok((payload, executed.events))
}

/// The data subject a personal file names: well formed (`INVALID_ID`), of an agency the caller
/// acts for (`FORBIDDEN`), and one `eraseDataSubject` can erase: a staff member the agency
/// reported or the agency's contact (`UNKNOWN_STAFF`), so no file is sealed under a key that
/// could never be erased.
async fn personal_subject_of(app: &AppState, actor: &Actor, text: &str) -> Result<DataSubject, ApiError> {
    let subject = DataSubject::parse(text).map_err(|_| ApiError::Refused {
        code: "INVALID_ID",
        message: format!("“{}”不是有效的个人信息主体标识", text.escape_debug()),
        details: vec![("field", "personalSubject".into())],
    })?;
    may_act_for(actor, subject.agency_id(), "为它上传个人文件")?;
    let known = match &subject {
        DataSubject::Staff { agency_id, staff_id } => {
            anquan_projections::agency::staff_member(app.read_models.as_ref(), *staff_id)
                .await?
                .is_some_and(|staff| staff.agency_id == *agency_id)
        }
        DataSubject::AgencyContact { agency_id } => {
            anquan_projections::agency::agency(app.read_models.as_ref(), *agency_id)
                .await?
                .is_some()
        }
    };
    if !known {
        return Err(ApiError::Refused {
            code: "UNKNOWN_STAFF",
            message: "该服务机构没有报送过这名人员，不能把文件标记为其个人文件".to_owned(),
            details: vec![("field", "personalSubject".into())],
        });
    }
    Ok(subject)
}
