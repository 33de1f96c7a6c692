//! Queries: read models only, with the caller's scope enforced here, where they read.

use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use anquan_projections::compliance as read_model;

use super::types::{
    Compliance, Document, DocumentConnection, Enterprise, EnterpriseConnection, EnterpriseState, EnterpriseSummary,
    PageInfo, RuleSetInfo, state_of,
};
use crate::error::ApiError;
use crate::graphql::args::{forbidden_to_read, page_size, parse_enterprise_id, scoped_town};
use crate::graphql::supervision::RiskColour;
use crate::graphql::{actor, app, optional_instant_arg};

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
    /// live one. Enterprises see only their own file, town officers only their town's. Null when
    /// no enterprise has this id (for callers who may know that); an `asOf` before the
    /// enterprise was registered is refused with `NOT_YET_REGISTERED`, naming the registration.
    async fn enterprise(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<Option<Enterprise>, ApiError> {
        let app = app(ctx)?;
        let as_of = optional_instant_arg("asOf", as_of)?;
        let rules = crate::graphql::audit::rules_for(app, rule_set.as_deref(), as_of)?;
        let actor = actor(ctx)?;
        let enterprise_id = parse_enterprise_id(&id)?;
        let registered = read_model::enterprise_file(app.compliance_read_models()?, enterprise_id)
            .await?
            .filter(|file| file.registration.is_some());
        let Some(file) = registered else {
            return if actor.may_know_enterprise(enterprise_id) {
                Ok(None)
            } else {
                Err(forbidden_to_read(enterprise_id))
            };
        };
        let Some(registration) = &file.registration else {
            return Ok(None);
        };
        if !actor.may_read_enterprise(enterprise_id, &registration.town) {
            return Err(forbidden_to_read(enterprise_id));
        }
        let at = as_of.unwrap_or_else(|| app.now());
        if at < registration.registered_at {
            return Err(ApiError::BadInput {
                code: "NOT_YET_REGISTERED",
                message: format!(
                    "企业 {enterprise_id} 于 {} 登记，所问时点 {} 早于登记，尚无状态",
                    registration.registered_at.to_rfc3339(),
                    at.to_rfc3339()
                ),
            });
        }
        Ok(Enterprise::at(Arc::new(file), &rules, at))
    }

    /// Enterprises with their status at `asOf` (default: now) under rule set `ruleSet`
    /// (default: the request's, see `enterprise`), filtered by town, by whether their main
    /// responsibility is implemented, by `industry` (exactly as registered), by `colour` at
    /// `asOf` (a closed enterprise has none, so never matches) and by `state` at `asOf`
    /// (ACTIVE or CLOSED), ordered by id, paged by cursor. Town, industry and closures are
    /// filtered in the database; status and colour are computed per enterprise, at most 5,000
    /// per request: a rare filter may end a page early with `hasNextPage` and a cursor to go on
    /// from. Town officers see only their town; enterprises cannot list.
    #[allow(clippy::too_many_arguments, reason = "each argument is a GraphQL argument")]
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn enterprises(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        responsibility_implemented: Option<bool>,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        rule_set: Option<String>,
        industry: Option<String>,
        colour: Option<RiskColour>,
        state: Option<EnterpriseState>,
    ) -> Result<EnterpriseConnection, ApiError> {
        let app = app(ctx)?;
        let as_of = optional_instant_arg("asOf", as_of)?;
        let rules = crate::graphql::audit::rules_for(app, rule_set.as_deref(), as_of)?;
        let town = scoped_town(ctx, town)?;
        let first = page_size(first)?;
        let at = as_of.unwrap_or_else(|| app.now());
        let filter = read_model::SummaryFilter {
            town,
            responsibility_implemented,
            indicator: None,
            industry: industry.map(|industry| industry.trim().to_owned()),
            colour: colour.map(Into::into),
            closed: state.map(|state| state == EnterpriseState::Closed),
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
            .map(|summary| {
                let registration = &summary.registration;
                let (state, closure) = state_of(summary.closure.as_ref());
                EnterpriseSummary {
                    id: ID(registration.enterprise_id.to_string()),
                    name: registration.name.clone(),
                    town: registration.town.to_string(),
                    industry: registration.industry.clone(),
                    compliance: Compliance::from_report(&summary.report, &rules),
                    state,
                    closure,
                    colour: summary.colour.map(Into::into),
                }
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
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
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
