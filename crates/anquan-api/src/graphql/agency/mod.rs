//! The service gate's queries and mutations: agencies, staff, contracts, service reports,
//! ratings and the city's supervision. Public queries need no token and return only `Public*`
//! types; private ones are scoped to the city, city-wide auditors and the agency itself.

mod mutation;
mod query;
pub mod types;

pub use mutation::AgencyMutation;
pub use query::AgencyQuery;

// The gate's prelude: `query` and `mutation` take these with `use super::*`, with the helpers
// below that both use.
use async_graphql::{Context, ID, InputObject, Object, Upload};
use chrono::{DateTime, Datelike, Utc};

use anquan_domain::agency::{
    AgencyCommand, AgencyProfile, AgencyState, ChangeAgencyProfile, ChangeBlacklist, ConfirmContract, FileContract,
    FoundComplaint, GradeAgency, HazardReport, ProposeContract, RateService, RecordMisconduct, RegisterAgency,
    RegradeAgency, RejectContract, ReportService, ReportStaff, SpotCheckReport, StaffMember, TerminateContract,
    WarnAgency,
};
use anquan_domain::enterprise::FileRef;
use anquan_domain::{Actor, AgencyId, ContractId, EnterpriseId, Event, Period, Role, ServiceReportId, StaffId, Town};
use anquan_projections::agency::{self as read_model, DirectoryFilter, StatisticsScope};
use anquan_projections::compliance as compliance_model;

use crate::AppState;
use crate::blobs::StagedFile;
use crate::error::ApiError;
use crate::graphql::args::{forbidden_to_read, parse_enterprise_id, parse_id, scoped_town};
use crate::graphql::command::{CommandArgs, ReadBack, execute_command};
use crate::graphql::scalars::Int64;
use crate::graphql::{actor, app, optional_instant_arg};
use types::{
    Agency, AgencyCommandPayload, AgencyProfileInput, CreditGrade, CreditGradeRecord, EnterpriseServices, HazardLevel,
    MisconductKind, PublicAgency, PublicAgencyListing, PublicStaff, PublicStaffDetail, ServiceContract,
    ServiceCoverage, ServiceReport, ServiceStatisticsView, Staff, StaffMemberInput, StoredFile, WarningKind,
};

/// An agency's public page, from the read model; `None` when it is not registered.
async fn public_agency(app: &AppState, agency_id: AgencyId) -> Result<Option<PublicAgency>, ApiError> {
    let store = app.agency_read_models()?;
    let Some(agency) = read_model::agency(store, agency_id).await? else {
        return Ok(None);
    };
    let staff = read_model::staff_of_agency(store, agency_id, None).await?;
    let statistics =
        read_model::yearly_statistics(store, StatisticsScope::Agency(agency_id), app.rules.time_zone).await?;
    // Final grades only: a half-year whose only grade is provisional is not public yet.
    let finals: Vec<_> = read_model::grade_history(store, agency_id)
        .await?
        .into_iter()
        .filter(|grade| grade.kind != read_model::GradeKind::Provisional)
        .collect();
    let grades = read_model::current_per_half_year(finals);
    Ok(Some(PublicAgency::new(&agency, &staff, &statistics, &grades)))
}

/// The API's check, before it reads anything for an agency command, that the caller acts for
/// the agency (the agency itself or the city admin; never a read-only role). The aggregate
/// checks the same again when it decides.
fn may_act_for(actor: &Actor, agency_id: AgencyId, action: &str) -> Result<(), ApiError> {
    if actor.role.may_write() && actor.may_act_for_agency(agency_id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "只有服务机构 {agency_id} 本身或市级管理员可以{action}"
        )))
    }
}

/// The city admin, city-wide auditors (read-only, for audits) and the agency itself may read an
/// agency's private fields and its history.
fn check_agency_reader(actor: &Actor, agency_id: AgencyId) -> Result<(), ApiError> {
    match &actor.role {
        Role::CityAdmin | Role::Auditor { town: None } => Ok(()),
        Role::Agency { agency_id: own } if *own == agency_id => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "您无权查看服务机构 {agency_id} 的非公开信息"
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

/// Returns the town of a registered enterprise a contract may be proposed to: refused with
/// `UNKNOWN_ENTERPRISE` when it is not registered and `ENTERPRISE_CLOSED` when it is closed now
/// (a closed enterprise takes no new service; read at proposal time, like its registration).
async fn contractable_enterprise_town(app: &AppState, enterprise_id: EnterpriseId) -> Result<Town, ApiError> {
    let file = compliance_model::enterprise_file(app.compliance_read_models()?, enterprise_id).await?;
    let Some(file) = file else {
        return Err(unknown_enterprise(enterprise_id));
    };
    if let Some(closure) = file.current_closure() {
        return Err(ApiError::Rejected {
            code: "ENTERPRISE_CLOSED",
            message: format!(
                "企业 {enterprise_id} 已于 {} {}，不能提出服务合同",
                closure.effective_at.to_rfc3339(),
                closure.kind.label()
            ),
        });
    }
    file.registration
        .map(|registration| registration.town)
        .ok_or_else(|| unknown_enterprise(enterprise_id))
}

fn unknown_enterprise(enterprise_id: EnterpriseId) -> ApiError {
    ApiError::Rejected {
        code: "UNKNOWN_ENTERPRISE",
        message: format!("企业 {enterprise_id} 尚未登记"),
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
                message: format!("找不到 SHA-256 为 {} 的文件：请先用 storeAgencyFile 上传", file.sha256),
            })?;
        if stored != file.size_bytes.0 {
            return Err(ApiError::bad_input(format!(
                "文件 {} 实际为 {stored} 字节，与所报的 {} 字节不符",
                file.sha256, file.size_bytes
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
            min_yuan: input.fee_band.min_yuan.0,
            max_yuan: input.fee_band.max_yuan.0,
        },
        contact_phone: input.contact_phone,
    }
}

fn current_year(app: &AppState) -> i32 {
    app.now().with_timezone(&app.rules.time_zone).year()
}

fn parse_period(text: &str) -> Result<Period, ApiError> {
    text.parse().map_err(|error| ApiError::invalid_period(&error))
}
