//! The service gate's queries and mutations: agencies, staff, contracts, service reports,
//! ratings and the city's supervision. Public queries need no token and return only `Public*`
//! types; private ones are scoped to the city and the agency itself.

use async_graphql::{Context, ID, InputObject, Object, Upload};
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use anquan_domain::agency::{
    AgencyCommand, AgencyProfile, AgencyState, ChangeAgencyProfile, ChangeBlacklist, FoundComplaint, GradeAgency,
    HazardReport, RateService, RecordMisconduct, RegisterAgency, ReportService, ReportStaff, SignContract,
    SpotCheckReport, StaffMember, TerminateContract, WarnAgency,
};
use anquan_domain::enterprise::FileRef;
use anquan_domain::{
    Actor, AgencyId, ContractId, DecisionContext, EnterpriseId, Event, Period, Role, ServiceReportId, StaffId, Town,
};
use anquan_event_store::StreamVersion;
use anquan_event_store::execute::{CommandEnvelope, execute};
use anquan_projections::agency::{self as read_model, DirectoryFilter, StatisticsScope};
use anquan_projections::compliance as compliance_model;

use super::agency_types::{
    Agency, AgencyCommandPayload, AgencyProfileInput, CreditGrade, CreditGradeRecord, EnterpriseServices, HazardLevel,
    MisconductKind, PublicAgency, PublicAgencyListing, PublicStaff, PublicStaffDetail, ServiceContract,
    ServiceCoverage, ServiceReport, ServiceStatisticsView, Staff, StaffMemberInput, StoredFile, WarningKind,
};
use super::query::{parse_enterprise_id, scoped_town};
use super::{actor, app, created_id, optional_instant_arg, parse_command_id};
use crate::AppState;
use crate::blobs::StagedFile;
use crate::error::ApiError;

/// Queries of the service gate.
#[derive(Default)]
pub struct AgencyQuery;

/// Mutations of the service gate.
#[derive(Default)]
pub struct AgencyMutation;

/// Sign a service contract with a registered enterprise.
#[derive(InputObject)]
pub struct SignServiceContractInput {
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
    pub fee_yuan: u64,
}

/// A hazard found on a service visit.
#[derive(InputObject)]
pub struct ServiceHazardInput {
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
pub struct ReportServiceInput {
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
pub struct GradeAgencyInput {
    /// The agency.
    pub agency_id: ID,
    /// The half-year, e.g. `2019-H1`.
    pub half_year: String,
    /// Hazards a later government inspection found that the agency missed (default 0).
    #[graphql(default)]
    pub missed_findings: u32,
    /// The final grade.
    pub grade: CreditGrade,
    /// Required when the final grade differs from the computed one.
    pub reason: Option<String>,
}

#[Object]
impl AgencyQuery {
    /// The public agency directory (no token needed): profiles, latest grades and the year's
    /// services, ranked by grade, then mean stars. Blacklisted agencies are left out unless asked.
    async fn agency_directory(
        &self,
        ctx: &Context<'_>,
        service: Option<String>,
        grade: Option<CreditGrade>,
        #[graphql(default)] include_blacklisted: bool,
        year: Option<i32>,
    ) -> Result<Vec<PublicAgencyListing>, ApiError> {
        let app = app(ctx)?;
        let filter = DirectoryFilter {
            service,
            grade: grade.map(Into::into),
            include_blacklisted,
        };
        if let Some(year) = year {
            anquan_domain::bounds::check_year("year", year).map_err(ApiError::out_of_range)?;
        }
        let year = year.unwrap_or_else(|| current_year(app));
        let entries = read_model::directory(app.agency_read_models()?, &filter, year, app.rules.time_zone).await?;
        Ok(entries.iter().map(Into::into).collect())
    }

    /// An agency's public page (no token needed): profile, latest staff without certificate
    /// numbers or phones, services per year, final grades.
    async fn public_agency(&self, ctx: &Context<'_>, id: ID) -> Result<Option<PublicAgency>, ApiError> {
        let app = app(ctx)?;
        let agency_id = parse_id::<AgencyId>(&id)?;
        public_agency(app, agency_id).await
    }

    /// A staff member's public page (no token needed): qualifications and services per year.
    async fn public_staff_member(&self, ctx: &Context<'_>, id: ID) -> Result<Option<PublicStaffDetail>, ApiError> {
        let app = app(ctx)?;
        let staff_id = parse_id::<StaffId>(&id)?;
        let store = app.agency_read_models()?;
        let Some(view) = read_model::staff_member(store, staff_id).await? else {
            return Ok(None);
        };
        let statistics =
            read_model::yearly_statistics(store, StatisticsScope::Staff(staff_id), app.rules.time_zone).await?;
        Ok(Some(PublicStaffDetail {
            staff: PublicStaff::from(&view.member),
            agency_id: ID(view.agency_id.to_string()),
            half_year: view.half_year.to_string(),
            statistics: statistics.iter().map(Into::into).collect(),
        }))
    }

    /// An agency with its private fields (certificate numbers, phones, score breakdowns,
    /// sanctions, contracts and reports): the city, or the agency itself.
    async fn agency(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Agency>, ApiError> {
        let app = app(ctx)?;
        let agency_id = parse_id::<AgencyId>(&id)?;
        check_agency_reader(actor(ctx)?, agency_id)?;
        let store = app.agency_read_models()?;
        let Some(agency) = read_model::agency(store, agency_id).await? else {
            return Ok(None);
        };
        let Some(public) = public_agency(app, agency_id).await? else {
            return Ok(None);
        };
        let staff = read_model::staff_of_agency(store, agency_id, None).await?;
        Ok(Some(Agency {
            public,
            contact_phone: agency.profile.contact_phone.clone(),
            registered_at: agency.registered_at,
            blacklisted_at: agency.blacklisted_at,
            staff: staff.iter().map(|view| Staff::from(&view.member)).collect(),
            staff_reports: read_model::staff_reports(store, agency_id)
                .await?
                .iter()
                .map(Into::into)
                .collect(),
            grades: read_model::grades(store, agency_id)
                .await?
                .iter()
                .map(Into::into)
                .collect(),
            sanctions: read_model::sanctions(store, agency_id)
                .await?
                .iter()
                .map(Into::into)
                .collect(),
            contracts: read_model::contracts_of_agency(store, agency_id)
                .await?
                .iter()
                .map(Into::into)
                .collect(),
            reports: read_model::reports_of_agency(store, agency_id)
                .await?
                .iter()
                .map(Into::into)
                .collect(),
        }))
    }

    /// A staff member with certificate numbers and phone: the city, or their agency.
    async fn staff_member(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Staff>, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        let staff_id = parse_id::<StaffId>(&id)?;
        let Some(view) = read_model::staff_member(app.agency_read_models()?, staff_id).await? else {
            return Ok(None);
        };
        check_agency_reader(actor, view.agency_id)?;
        Ok(Some(Staff::from(&view.member)))
    }

    /// An enterprise's contracts and service history: whoever may read the enterprise's file.
    async fn enterprise_services(&self, ctx: &Context<'_>, enterprise_id: ID) -> Result<EnterpriseServices, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        let enterprise_id = parse_enterprise_id(&enterprise_id)?;
        let town = match enterprise_town(app, enterprise_id).await? {
            Some(town) => town,
            None if actor.may_know_enterprise(enterprise_id) => return Err(unknown_enterprise(enterprise_id)),
            None => return Err(super::query::forbidden_to_read(actor, enterprise_id)),
        };
        if !actor.may_read_enterprise(enterprise_id, &town) {
            return Err(ApiError::Forbidden(format!(
                "{} may not read the services of enterprise {enterprise_id}",
                actor.role.name()
            )));
        }
        let store = app.agency_read_models()?;
        Ok(EnterpriseServices {
            enterprise_id: ID(enterprise_id.to_string()),
            contracts: read_model::contracts_of_enterprise(store, enterprise_id)
                .await?
                .iter()
                .map(ServiceContract::from)
                .collect(),
            reports: read_model::reports_of_enterprise(store, enterprise_id)
                .await?
                .iter()
                .map(ServiceReport::from)
                .collect(),
        })
    }

    /// Enterprises with a valid service contract at `at` (default: now), in a town or all:
    /// the city for any town, town officers for theirs.
    async fn service_coverage(
        &self,
        ctx: &Context<'_>,
        at: Option<DateTime<Utc>>,
        town: Option<String>,
    ) -> Result<ServiceCoverage, ApiError> {
        let app = app(ctx)?;
        let town = scoped_town(ctx, town)?;
        let at = optional_instant_arg("at", at)?.unwrap_or_else(|| app.now());
        let covered = read_model::service_coverage(app.agency_read_models()?, at, town.as_ref()).await?;
        Ok(ServiceCoverage {
            at,
            town: town.map(|town| town.to_string()),
            enterprises_covered: u32::try_from(covered.len()).unwrap_or(u32::MAX),
            enterprise_ids: covered.iter().map(|(id, _)| ID(id.to_string())).collect(),
        })
    }

    /// Services of an agency per year (no token needed).
    async fn agency_statistics(&self, ctx: &Context<'_>, id: ID) -> Result<Vec<ServiceStatisticsView>, ApiError> {
        let app = app(ctx)?;
        let agency_id = parse_id::<AgencyId>(&id)?;
        let statistics = read_model::yearly_statistics(
            app.agency_read_models()?,
            StatisticsScope::Agency(agency_id),
            app.rules.time_zone,
        )
        .await?;
        Ok(statistics.iter().map(Into::into).collect())
    }
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
        let agency_id = match agency_id {
            Some(id) => parse_id::<AgencyId>(&id)?,
            None => AgencyId::from_uuid(created_id(parse_command_id(command_id.as_ref())?, "agency", 0)),
        };
        let command = AgencyCommand::Register(RegisterAgency {
            agency_id,
            profile: profile_of(profile),
        });
        run(ctx, command, command_id, None, Ids::default()).await
    }

    /// Changes an agency's published profile (the city or the agency).
    async fn change_agency_profile(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        profile: AgencyProfileInput,
        command_id: Option<ID>,
        expected_version: Option<u64>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let command = AgencyCommand::ChangeProfile(ChangeAgencyProfile {
            agency_id: parse_id(&agency_id)?,
            profile: profile_of(profile),
        });
        run(ctx, command, command_id, expected_version, Ids::default()).await
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
        let created_by = parse_command_id(command_id.as_ref())?;
        let staff = staff
            .into_iter()
            .enumerate()
            .map(|(index, member)| {
                Ok(StaffMember {
                    staff_id: match &member.staff_id {
                        Some(id) => parse_id(id)?,
                        None => StaffId::from_uuid(created_id(created_by, "staff", index)),
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
        run(ctx, command, command_id, None, Ids::default()).await
    }

    /// Signs a service contract with a registered enterprise (the agency; refused while it is
    /// blacklisted). A fee outside the published band is recorded and flagged.
    async fn sign_service_contract(
        &self,
        ctx: &Context<'_>,
        input: SignServiceContractInput,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let app = app(ctx)?;
        let enterprise_id = parse_enterprise_id(&input.enterprise_id)?;
        let agency_id = parse_id::<AgencyId>(&input.agency_id)?;
        // Authorised before the read model is read: a caller who may not sign for the agency
        // learns nothing, not even whether the enterprise is registered.
        may_act_for(actor(ctx)?, agency_id, "sign contracts for this agency")?;
        // Checked at read time: an enterprise is never deleted, so "registered" cannot become false.
        let enterprise_town = enterprise_town(app, enterprise_id)
            .await?
            .ok_or_else(|| unknown_enterprise(enterprise_id))?;
        let contract_id = match &input.contract_id {
            Some(id) => parse_id(id)?,
            None => ContractId::from_uuid(created_id(parse_command_id(command_id.as_ref())?, "contract", 0)),
        };
        let command = AgencyCommand::SignContract(SignContract {
            agency_id,
            contract_id,
            enterprise_id,
            enterprise_town,
            valid_from: input.valid_from,
            valid_until: input.valid_until,
            services: input.services,
            visits_promised: input.visits_promised,
            fee_yuan: input.fee_yuan,
        });
        let ids = Ids {
            contract_id: Some(contract_id),
            report_id: None,
        };
        run(ctx, command, command_id, None, ids).await
    }

    /// Ends a contract early (the agency or the city).
    async fn terminate_service_contract(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        contract_id: ID,
        reason: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
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
        run(ctx, command, command_id, None, ids).await
    }

    /// Stores a file (a photo) to name in a later service report; returns its reference (an
    /// agency, counted against its quota, or the city admin).
    async fn store_agency_file(&self, ctx: &Context<'_>, file: Upload) -> Result<StoredFile, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        if !matches!(actor.role, Role::Agency { .. } | Role::CityAdmin) {
            return Err(ApiError::Forbidden(format!(
                "{} may not store agency files; agencies and the city admin may",
                actor.role.name()
            )));
        }
        let staged = crate::uploads::stage(ctx, app, std::slice::from_ref(&file), "file", 1)?;
        crate::uploads::store_checked(app, actor, &staged).await?;
        let stored = staged
            .first()
            .map(|staged| staged.file.clone())
            .ok_or_else(|| ApiError::bad_input("the upload is missing"))?;
        Ok(StoredFile::from(&stored))
    }

    /// Reports a service visit (GraphQL multipart request; the upload is the report file).
    /// Hazards are kept with their index for the enterprise's hazard list.
    async fn report_service(
        &self,
        ctx: &Context<'_>,
        input: ReportServiceInput,
        report_file: Upload,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let app = app(ctx)?;
        let agency_id = parse_id::<AgencyId>(&input.agency_id)?;
        // Authorised before the blob store is read for the files the report names.
        may_act_for(actor(ctx)?, agency_id, "report services for this agency")?;
        let report_id = match &input.report_id {
            Some(id) => parse_id(id)?,
            None => ServiceReportId::from_uuid(created_id(parse_command_id(command_id.as_ref())?, "service_report", 0)),
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
            .ok_or_else(|| ApiError::bad_input("the upload is missing"))?;
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
        run_with_files(ctx, command, command_id, None, ids, &staged).await
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
        let report_id = parse_id(&report_id)?;
        let command = AgencyCommand::RateService(RateService {
            agency_id: parse_id(&agency_id)?,
            report_id,
            stars: i64::from(stars),
            comment,
        });
        run(ctx, command, command_id, None, Ids::report(report_id)).await
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
        let report_id = parse_id(&report_id)?;
        let command = AgencyCommand::SpotCheckReport(SpotCheckReport {
            agency_id: parse_id(&agency_id)?,
            report_id,
            qualified,
            note,
        });
        run(ctx, command, command_id, None, Ids::report(report_id)).await
    }

    /// Records a founded complaint about an agency (city admin).
    async fn record_agency_complaint(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        complaint: String,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let command = AgencyCommand::FoundComplaint(FoundComplaint {
            agency_id: parse_id(&agency_id)?,
            complaint,
        });
        run(ctx, command, command_id, None, Ids::default()).await
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
        let command = AgencyCommand::Warn(WarnAgency {
            agency_id: parse_id(&agency_id)?,
            kind: kind.into(),
            reason,
        });
        run(ctx, command, command_id, None, Ids::default()).await
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
        run(ctx, command, command_id, None, ids).await
    }

    /// Grades a half-year (city admin): the score is computed from the agency's facts and
    /// recorded with the final grade; two consecutive Ds also blacklist.
    async fn grade_agency(
        &self,
        ctx: &Context<'_>,
        input: GradeAgencyInput,
        command_id: Option<ID>,
    ) -> Result<AgencyCommandPayload, ApiError> {
        let command = AgencyCommand::Grade(GradeAgency {
            agency_id: parse_id(&input.agency_id)?,
            half_year: parse_period(&input.half_year)?,
            missed_findings: input.missed_findings,
            grade: input.grade.into(),
            reason: input.reason,
        });
        run(ctx, command, command_id, None, Ids::default()).await
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
        let command = AgencyCommand::ChangeBlacklist(ChangeBlacklist {
            agency_id: parse_id(&agency_id)?,
            blacklisted,
            reason,
        });
        run(ctx, command, command_id, None, Ids::default()).await
    }
}

/// Ids a command created or concerns, echoed in the payload.
#[derive(Default)]
struct Ids {
    contract_id: Option<ContractId>,
    report_id: Option<ServiceReportId>,
}

impl Ids {
    fn report(report_id: ServiceReportId) -> Self {
        Ids {
            contract_id: None,
            report_id: Some(report_id),
        }
    }
}

/// Executes an agency command for the caller and waits until the read models show it.
async fn run(
    ctx: &Context<'_>,
    command: AgencyCommand,
    command_id: Option<ID>,
    expected_version: Option<u64>,
    ids: Ids,
) -> Result<AgencyCommandPayload, ApiError> {
    run_with_files(ctx, command, command_id, expected_version, ids, &[]).await
}

/// Executes an agency command that names uploaded files, storing them only once the command
/// is authorised and decided (see `uploads`).
async fn run_with_files(
    ctx: &Context<'_>,
    command: AgencyCommand,
    command_id: Option<ID>,
    expected_version: Option<u64>,
    ids: Ids,
    files: &[StagedFile],
) -> Result<AgencyCommandPayload, ApiError> {
    let app = app(ctx)?;
    let actor = actor(ctx)?;
    let command_id = parse_command_id(command_id.as_ref())?;
    let decision_rules = app.decision_rules()?;
    let context = DecisionContext {
        actor,
        rules: &decision_rules,
        now: app.now(),
    };
    let envelope = CommandEnvelope {
        command_id,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        expected_version: expected_version.map(StreamVersion),
    };
    crate::uploads::store_for_command::<AgencyState>(app, &command, &context, &envelope, files).await?;
    let executed = execute::<AgencyState>(app.event_store.as_ref(), &command, &context, &envelope).await?;
    let outcome = executed.outcome;
    // The payload is made of the command's own events, not read back, so a stalled agency
    // read model does not fail the mutation: its queries answer PROJECTION_STALLED instead.
    if let Some(outcome) = &outcome
        && let Err(error) = app
            .wait_for_projection(anquan_projections::AgencyProjection::NAME, outcome.last_position)
            .await
    {
        tracing::warn!(position = %outcome.last_position, error = %error.message(), "agency read model is stalled");
    }
    let grade = executed.events.iter().find_map(|event| match event {
        Event::CreditGraded(graded) => Some(CreditGradeRecord::from(&read_model::GradeView {
            half_year: graded.half_year,
            grade: graded.grade,
            reason: graded.reason.clone(),
            inputs: graded.inputs.clone(),
            computed: graded.computed.clone(),
            graded_at: graded.graded_at,
        })),
        _ => None,
    });
    Ok(AgencyCommandPayload {
        stream_version: outcome.as_ref().map(|outcome| outcome.last_version.0),
        position: outcome.as_ref().map(|outcome| outcome.last_position.sequence()),
        duplicate: outcome.as_ref().is_some_and(|outcome| outcome.duplicate),
        event_types: executed
            .events
            .iter()
            .map(|event| event.event_type().to_owned())
            .collect(),
        agency_id: ID(command.agency_id().to_string()),
        contract_id: ids.contract_id.map(|id| ID(id.to_string())),
        report_id: ids.report_id.map(|id| ID(id.to_string())),
        grade,
    })
}

async fn public_agency(app: &AppState, agency_id: AgencyId) -> Result<Option<PublicAgency>, ApiError> {
    let store = app.agency_read_models()?;
    let Some(agency) = read_model::agency(store, agency_id).await? else {
        return Ok(None);
    };
    let staff = read_model::staff_of_agency(store, agency_id, None).await?;
    let statistics =
        read_model::yearly_statistics(store, StatisticsScope::Agency(agency_id), app.rules.time_zone).await?;
    let grades = read_model::grades(store, agency_id).await?;
    Ok(Some(PublicAgency::new(&agency, &staff, &statistics, &grades)))
}

/// The API's check, before it reads anything for an agency command, that the caller acts for
/// the agency (the agency itself or the city admin; never a read-only role). The aggregate
/// checks the same again when it decides.
fn may_act_for(actor: &Actor, agency_id: AgencyId, action: &str) -> Result<(), ApiError> {
    if actor.role.may_write() && actor.may_act_for_agency(agency_id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("{} may not {action}", actor.role.name())))
    }
}

/// The city and the agency itself may read an agency's private fields.
fn check_agency_reader(actor: &Actor, agency_id: AgencyId) -> Result<(), ApiError> {
    match &actor.role {
        Role::CityAdmin => Ok(()),
        Role::Agency { agency_id: own } if *own == agency_id => Ok(()),
        role => Err(ApiError::Forbidden(format!(
            "{} may not read the private fields of agency {agency_id}",
            role.name()
        ))),
    }
}

/// Returns a registered enterprise's town, from the compliance read model; `None` when it is
/// not registered.
async fn enterprise_town(app: &AppState, enterprise_id: EnterpriseId) -> Result<Option<Town>, ApiError> {
    Ok(
        compliance_model::enterprise_file(app.compliance_read_models()?, enterprise_id)
            .await?
            .and_then(|file| file.registration)
            .map(|registration| registration.town),
    )
}

fn unknown_enterprise(enterprise_id: EnterpriseId) -> ApiError {
    ApiError::Rejected {
        code: "UNKNOWN_ENTERPRISE",
        message: format!("enterprise {enterprise_id} is not registered"),
    }
}

/// Checks that files named by a command are stored, with the size claimed.
async fn stored_files(app: &AppState, files: Vec<StoredFile>) -> Result<Vec<FileRef>, ApiError> {
    let mut checked = Vec::with_capacity(files.len());
    for file in files {
        // A missing file is the caller's mistake; a store that cannot answer is not.
        let stored = app
            .blobs
            .size(&file.sha256)
            .await
            .map_err(|error| ApiError::internal(&error))?
            .ok_or_else(|| ApiError::BadInput {
                code: "UNKNOWN_FILE",
                message: format!(
                    "no stored file has sha256 {}; store it with storeAgencyFile first",
                    file.sha256
                ),
            })?;
        if stored != file.size_bytes {
            return Err(ApiError::bad_input(format!(
                "file {} has {} bytes, not {}",
                file.sha256, stored, file.size_bytes
            )));
        }
        checked.push(file.into());
    }
    Ok(checked)
}

fn profile_of(input: AgencyProfileInput) -> AgencyProfile {
    AgencyProfile {
        name: input.name,
        licence: input.licence,
        service_scope: input.service_scope,
        service_standards: input.service_standards,
        fee_band: anquan_domain::agency::FeeBand {
            min_yuan: input.fee_band.min_yuan,
            max_yuan: input.fee_band.max_yuan,
        },
        contact_phone: input.contact_phone,
    }
}

fn current_year(app: &AppState) -> i32 {
    app.now().with_timezone(&app.rules.time_zone).year()
}

fn parse_period(text: &str) -> Result<Period, ApiError> {
    text.parse()
        .map_err(|error: anquan_domain::period::PeriodParseError| ApiError::bad_input(error.to_string()))
}

fn parse_id<T>(id: &ID) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = anquan_domain::IdError>,
{
    id.parse().map_err(|error: anquan_domain::IdError| ApiError::BadInput {
        code: "INVALID_ID",
        message: error.to_string(),
    })
}
