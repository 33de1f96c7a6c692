//! Queries: read models only, with the caller's scope enforced here, where they read.

use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use anquan_domain::{EnterpriseId, Role, Town};
use anquan_projections::compliance as read_model;

use super::types::{
    Compliance, Document, DocumentConnection, Enterprise, EnterpriseConnection, EnterpriseSummary, PageInfo,
    RuleSetInfo,
};
use super::{actor, app, optional_instant_arg};
use crate::error::ApiError;

use anquan_projections::compliance::PAGE_SIZE_MAX;

/// Queries of the foundation gate (enterprises, compliance, review); part of the query root.
#[derive(Default)]
pub struct EnterpriseQuery;

/// Reads: enterprises, their compliance, review queues and the rule set.
#[Object]
impl EnterpriseQuery {
    /// One enterprise's file at `asOf` (default: now), with every rule-dependent field under it
    /// (compliance and its indicators, risk, colour history, vetoes, hazards) evaluated with
    /// rule set `ruleSet`: a version from `ruleSets`, read side by side with the live one.
    /// Without it, the request's rule set: the `x-anquan-rule-set` header's version, else the
    /// live one. Enterprises see only their own file, town officers only their town's.
    async fn enterprise(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<Option<Enterprise>, ApiError> {
        let app = app(ctx)?;
        let rules = super::audit::rules_for(app, rule_set.as_deref())?;
        let actor = actor(ctx)?;
        let enterprise_id = parse_enterprise_id(&id)?;
        let as_of = optional_instant_arg("asOf", as_of)?;
        let registered = read_model::enterprise_file(app.compliance_read_models()?, enterprise_id)
            .await?
            .filter(|file| file.registration.is_some());
        let Some(file) = registered else {
            return if actor.may_know_enterprise(enterprise_id) {
                Ok(None)
            } else {
                Err(forbidden_to_read(actor, enterprise_id))
            };
        };
        let Some(registration) = &file.registration else {
            return Ok(None);
        };
        if !actor.may_read_enterprise(enterprise_id, &registration.town) {
            return Err(forbidden_to_read(actor, enterprise_id));
        }
        let at = as_of.unwrap_or_else(|| app.now());
        Ok(Enterprise::at(Arc::new(file), &rules, at))
    }

    /// Enterprises with their status at `asOf` (default: now) under rule set `ruleSet`
    /// (default: the request's, see `enterprise`), filtered by town and by
    /// whether their main responsibility is implemented, ordered by id, paged by cursor.
    /// Town officers see only their town; enterprises cannot list.
    #[allow(clippy::too_many_arguments, reason = "each argument is a GraphQL argument")]
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn enterprises(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        responsibility_implemented: Option<bool>,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        rule_set: Option<String>,
    ) -> Result<EnterpriseConnection, ApiError> {
        let app = app(ctx)?;
        let rules = super::audit::rules_for(app, rule_set.as_deref())?;
        let town = scoped_town(ctx, town)?;
        let first = page_size(first)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let filter = read_model::SummaryFilter {
            town,
            responsibility_implemented,
            indicator: None,
        };
        let page = read_model::enterprise_summaries(
            app.compliance_read_models()?,
            &filter,
            &rules,
            at,
            first,
            after.as_deref(),
        )
        .await?;
        let nodes = page
            .items
            .iter()
            .map(|(registration, report)| EnterpriseSummary {
                id: ID(registration.enterprise_id.to_string()),
                name: registration.name.clone(),
                town: registration.town.to_string(),
                industry: registration.industry.clone(),
                compliance: Compliance::from_report(report, &rules),
            })
            .collect();
        Ok(EnterpriseConnection {
            nodes,
            page_info: PageInfo {
                has_next_page: page.has_next,
                end_cursor: page.end_cursor,
            },
        })
    }

    /// Records awaiting review, oldest upload first: a town's queue for town officers, any
    /// town (or all) for the city.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn review_queue(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<DocumentConnection, ApiError> {
        let app = app(ctx)?;
        let town = scoped_town(ctx, town)?;
        let first = page_size(first)?;
        let page =
            read_model::review_queue(app.compliance_read_models()?, town.as_ref(), first, after.as_deref()).await?;
        let now = app.now();
        let nodes = page
            .items
            .iter()
            .map(|pending| Document {
                enterprise_id: Some(ID(pending.enterprise_id.to_string())),
                enterprise_name: Some(pending.enterprise_name.clone()),
                town: Some(pending.town.to_string()),
                ..Document::at(&pending.record, now)
            })
            .collect();
        Ok(DocumentConnection {
            nodes,
            page_info: PageInfo {
                has_next_page: page.has_next,
                end_cursor: page.end_cursor,
            },
        })
    }

    /// The rule set in force: its indicators and requirements.
    async fn rule_set(&self, ctx: &Context<'_>) -> Result<RuleSetInfo, ApiError> {
        Ok(RuleSetInfo::from(app(ctx)?.rules.as_ref()))
    }
}

/// Applies the caller's scope to a town filter: town officers are held to their town.
pub(super) fn scoped_town(ctx: &Context<'_>, town: Option<String>) -> Result<Option<Town>, ApiError> {
    let actor = actor(ctx)?;
    let town = town
        .map(|town| {
            Town::parse(&town).map_err(|error| ApiError::BadInput {
                code: "INVALID_ID",
                message: error.to_string(),
            })
        })
        .transpose()?;
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
        (Role::TownOfficer { .. } | Role::TownInspector { .. } | Role::Auditor { .. }, Some(town)) => Err(
            ApiError::Forbidden(format!("a town {} may not list {town}", actor.role.name())),
        ),
        (Role::Enterprise { .. } | Role::Agency { .. } | Role::Analyst, _) => Err(ApiError::Forbidden(format!(
            "an {} may not list enterprises",
            actor.role.name()
        ))),
    }
}

/// The town a statistic (counts, no enterprise named) may be asked for: as [`scoped_town`],
/// and analysts city-wide.
pub(super) fn statistics_town(ctx: &Context<'_>, town: Option<String>) -> Result<Option<Town>, ApiError> {
    if matches!(actor(ctx)?.role, Role::Analyst) {
        return town
            .map(|town| {
                Town::parse(&town).map_err(|error| ApiError::BadInput {
                    code: "INVALID_ID",
                    message: error.to_string(),
                })
            })
            .transpose();
    }
    scoped_town(ctx, town)
}

/// Checks a page size argument (`first`).
pub(super) fn page_size(first: i32) -> Result<usize, ApiError> {
    usize::try_from(first)
        .ok()
        .filter(|first| (1..=PAGE_SIZE_MAX).contains(first))
        .ok_or_else(|| ApiError::bad_input(format!("first must be between 1 and {PAGE_SIZE_MAX}")))
}

pub(super) fn parse_enterprise_id(id: &ID) -> Result<EnterpriseId, ApiError> {
    id.parse().map_err(|error: anquan_domain::IdError| ApiError::BadInput {
        code: "INVALID_ID",
        message: error.to_string(),
    })
}

/// The one refusal for an enterprise the caller may not read, whether or not it exists.
pub(super) fn forbidden_to_read(actor: &anquan_domain::Actor, enterprise_id: EnterpriseId) -> ApiError {
    ApiError::Forbidden(format!("{} may not read enterprise {enterprise_id}", actor.role.name()))
}
