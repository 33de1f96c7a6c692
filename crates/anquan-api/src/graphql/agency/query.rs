//! The service gate's queries: the public directory and pages, and agencies' private files.

use super::*;

/// Queries of the service gate; part of the query root.
#[derive(Default)]
pub struct AgencyQuery;

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
            agency_id,
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
            None => return Err(forbidden_to_read(enterprise_id)),
        };
        if !actor.may_read_enterprise(enterprise_id, &town) {
            return Err(ApiError::Forbidden(format!(
                "您无权查看企业 {enterprise_id} 的服务记录"
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

    /// One contract and where it stands: the city, the agency, the enterprise named in it, and
    /// the town's officers, inspectors and auditors. An unknown contract reads as refused to
    /// anyone else, so ids cannot be probed.
    async fn service_contract(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        contract_id: ID,
    ) -> Result<Option<ServiceContract>, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        let agency_id = parse_id::<AgencyId>(&agency_id)?;
        let contract_id = parse_id::<ContractId>(&contract_id)?;
        let refused = || ApiError::Forbidden(format!("您无权查看合同 {contract_id}"));
        let sees_all = matches!(
            actor.role,
            Role::CityAdmin | Role::CityInspector | Role::Auditor { town: None }
        ) || matches!(actor.role, Role::Agency { agency_id: own } if own == agency_id);
        if !sees_all
            && !matches!(
                actor.role,
                Role::Enterprise { .. } | Role::TownOfficer { .. } | Role::TownInspector { .. } | Role::Auditor { .. }
            )
        {
            return Err(refused());
        }
        match read_model::contract(app.agency_read_models()?, agency_id, contract_id).await? {
            Some(contract) if sees_all || actor.may_read_enterprise(contract.enterprise_id, &contract.town) => {
                Ok(Some(ServiceContract::from(&contract)))
            }
            None if sees_all => Ok(None),
            _ => Err(refused()),
        }
    }

    /// Contracts the enterprises have confirmed and no officer has filed yet, oldest first: a
    /// town officer's own town, or the city's for any town (all towns when none is given).
    async fn contracts_awaiting_filing(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
    ) -> Result<Vec<ServiceContract>, ApiError> {
        let app = app(ctx)?;
        let town = scoped_town(ctx, town)?;
        Ok(
            read_model::contracts_awaiting_filing(app.agency_read_models()?, town.as_ref())
                .await?
                .iter()
                .map(ServiceContract::from)
                .collect(),
        )
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
