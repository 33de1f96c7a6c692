//! The agency serving an enterprise at an instant, for the enterprise's public page.

use anquan_domain::credit::Grade;
use anquan_domain::{AgencyId, EnterpriseId, Instant, Period};
use anquan_event_store::ReadModelStore;

use super::query::{GradeKind, agency, contracts_of_enterprise, grade_history};
use crate::error::QueryError;

/// The agency with a contract in force with an enterprise, and its grade as known then.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingAgency {
    pub agency_id: AgencyId,
    /// The agency's registered name (public).
    pub name: String,
    /// The end (exclusive) of the contract in force.
    pub contract_valid_until: Instant,
    /// The latest final grade given by `at`, with its half-year; `None` if never graded, or
    /// if that half-year was not graded (未评级). Provisional grades are not shown.
    pub grade: Option<(Period, Grade)>,
    /// Whether the agency was on the blacklist at `at`.
    pub blacklisted: bool,
}

/// Finds the agency whose contract with the enterprise is in force at `at` (valid and not
/// terminated; filed by `at`; the latest filed if several), with its latest grade given by `at`.
pub async fn serving_agency(
    store: &dyn ReadModelStore,
    enterprise_id: EnterpriseId,
    at: Instant,
) -> Result<Option<ServingAgency>, QueryError> {
    let contracts = contracts_of_enterprise(store, enterprise_id).await?;
    let in_force = contracts
        .iter()
        .filter(|contract| contract.counts_at(at))
        .max_by_key(|contract| (contract.filed_at, contract.contract_id));
    let Some(contract) = in_force else {
        return Ok(None);
    };
    let Some(view) = agency(store, contract.agency_id).await? else {
        return Ok(None);
    };
    // The history is in half-year and log order: the last final or regraded row given by `at`.
    let grade = grade_history(store, contract.agency_id)
        .await?
        .into_iter()
        .rev()
        .find(|grade| grade.graded_at <= at && grade.kind != GradeKind::Provisional)
        .and_then(|grade| grade.grade.map(|letter| (grade.half_year, letter)));
    Ok(Some(ServingAgency {
        agency_id: view.agency_id,
        name: view.profile.name.clone(),
        contract_valid_until: contract.valid_until,
        grade,
        blacklisted: view.blacklisted_at.is_some_and(|since| since <= at),
    }))
}
