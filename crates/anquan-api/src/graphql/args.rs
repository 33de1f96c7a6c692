//! What clients pass beside commands and filters, checked once: ids, towns, page sizes,
//! instants, and the scope a caller may list or read.

use async_graphql::{Context, ID};
use chrono::{DateTime, Utc};

use anquan_domain::{EnterpriseId, Role, Town};
use anquan_projections::compliance::PAGE_SIZE_MAX;

use super::actor;
use crate::error::ApiError;

/// Checks an instant a client passed as an argument (`asOf`, `from`, `at`, …) against the
/// platform's window (`anquan_domain::bounds`): every computation a query makes with it (a
/// metric's window a year back, a colour history's days) then stays far inside the calendar.
pub(crate) fn instant_arg(field: &'static str, instant: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    anquan_domain::bounds::check_instant(field, instant).map_err(ApiError::out_of_range)?;
    Ok(instant)
}

/// [`instant_arg`] for an optional argument.
pub(crate) fn optional_instant_arg(
    field: &'static str,
    instant: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    instant.map(|instant| instant_arg(field, instant)).transpose()
}

/// Parses a town argument (`INVALID_ID`, with the domain's details, when it is not a town's name).
pub(super) fn parse_town(town: &str) -> Result<Town, ApiError> {
    Town::parse(town).map_err(|error| ApiError::invalid_id(&error))
}

/// Parses an id argument of any kind (`INVALID_ID` when it does not parse).
pub(super) fn parse_id<T: std::str::FromStr>(id: &ID) -> Result<T, ApiError> {
    id.parse().map_err(|_| ApiError::BadInput {
        code: "INVALID_ID",
        message: format!("“{}”不是有效的编号", id.as_str()),
    })
}

/// Parses an enterprise id (`INVALID_ID`, with the domain's details).
pub(super) fn parse_enterprise_id(id: &ID) -> Result<EnterpriseId, ApiError> {
    id.parse()
        .map_err(|error: anquan_domain::IdError| ApiError::invalid_id(&error))
}

/// Applies the caller's scope to a town filter: town officers, town inspectors and town
/// auditors are held to their town; enterprises, agencies and analysts list no enterprises.
pub(super) fn scoped_town(ctx: &Context<'_>, town: Option<String>) -> Result<Option<Town>, ApiError> {
    let actor = actor(ctx)?;
    let town = town.as_deref().map(parse_town).transpose()?;
    match (&actor.role, town) {
        (Role::CityAdmin | Role::CityInspector | Role::Auditor { town: None }, town) => Ok(town),
        (
            Role::TownOfficer { town: own } | Role::TownInspector { town: own } | Role::Auditor { town: Some(own) },
            None,
        ) => Ok(Some(own.clone())),
        (
            Role::TownOfficer { town: own } | Role::TownInspector { town: own } | Role::Auditor { town: Some(own) },
            Some(town),
        ) if &town == own => Ok(Some(town)),
        (
            Role::TownOfficer { town: own } | Role::TownInspector { town: own } | Role::Auditor { town: Some(own) },
            Some(town),
        ) => Err(ApiError::Forbidden(format!("您的权限限于{own}，不能查看{town}的数据"))),
        (Role::Enterprise { .. } | Role::Agency { .. } | Role::Analyst, _) => {
            Err(ApiError::Forbidden("您的角色不能查看企业名单".to_owned()))
        }
    }
}

/// The town a statistic (counts, no enterprise named) may be asked for: as [`scoped_town`],
/// and analysts city-wide.
pub(super) fn statistics_town(ctx: &Context<'_>, town: Option<String>) -> Result<Option<Town>, ApiError> {
    if matches!(actor(ctx)?.role, Role::Analyst) {
        return town.as_deref().map(parse_town).transpose();
    }
    scoped_town(ctx, town)
}

/// Checks a page size argument (`first`).
pub(super) fn page_size(first: i32) -> Result<usize, ApiError> {
    usize::try_from(first)
        .ok()
        .filter(|first| (1..=PAGE_SIZE_MAX).contains(first))
        .ok_or_else(|| ApiError::bad_input(format!("每页条数 first 应在 1 到 {PAGE_SIZE_MAX} 之间")))
}

/// The one refusal for an enterprise the caller may not read, whether or not it exists.
pub(super) fn forbidden_to_read(enterprise_id: EnterpriseId) -> ApiError {
    ApiError::Forbidden(format!("您无权查看企业 {enterprise_id}"))
}
