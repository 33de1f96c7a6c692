//! The supervision gate's queries.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use anquan_domain::rules::RuleSet;
use anquan_domain::{EnterpriseId, Role, Town};
use anquan_projections::compliance::{self as read_model, HazardFilter, HazardView, ListingFilter};

use super::types::*;
use crate::error::ApiError;
use crate::graphql::args::{page_size, parse_enterprise_id, scoped_town, statistics_town};
use crate::graphql::foundation::types::PageInfo;
use crate::graphql::{actor, app, instant_arg, optional_instant_arg};

// ----- queries ---------------------------------------------------------------------------------

/// Queries of the supervision gate.
#[derive(Default)]
pub struct SupervisionQuery;

#[Object]
impl SupervisionQuery {
    /// Hazards known at `asOf` (default now), by town, enterprise and `filter` at that instant,
    /// ordered by id. Town officers and inspectors see their town, the city every town, an
    /// enterprise only its own hazards.
    #[expect(clippy::too_many_arguments, reason = "one argument per GraphQL filter")]
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn hazards(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        enterprise_id: Option<ID>,
        filter: Option<HazardSelection>,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<HazardConnection, ApiError> {
        let app = app(ctx)?;
        let enterprise = enterprise_id.as_ref().map(parse_enterprise_id).transpose()?;
        let (town, enterprise) = hazard_scope(ctx, town, enterprise)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let filter = HazardFilter {
            town,
            enterprise,
            state: filter.map(Into::into),
            listing: None,
        };
        hazard_page(app, &filter, at, first, after).await
    }

    /// Hazards under listed supervision (挂牌督办) by `asOf` (default now), by their listing's
    /// state then (`state`, default: every listed hazard), ordered by hazard id. The town's list:
    /// town officers and inspectors see their town, the city and auditors every town (or
    /// `town`), an enterprise only its own hazards.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn listed_hazards(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        state: Option<ListingSelection>,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<HazardConnection, ApiError> {
        let app = app(ctx)?;
        let (town, enterprise) = hazard_scope(ctx, town, None)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let review_days = app.rules.supervision.listed_supervision.review_days;
        let filter = HazardFilter {
            town,
            enterprise,
            state: None,
            listing: Some(state.map_or(ListingFilter::Any, |state| state.filter(review_days))),
        };
        hazard_page(app, &filter, at, first, after).await
    }

    /// A town's hazards overdue at `asOf` (default now), the oldest deadline in force first.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn overdue_queue(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<HazardConnection, ApiError> {
        let app = app(ctx)?;
        let town = scoped_town(ctx, town)?;
        let at = optional_instant_arg("asOf", as_of)?.unwrap_or_else(|| app.now());
        let page = read_model::overdue_queue(
            app.compliance_read_models()?,
            town.as_ref(),
            at,
            page_size(first)?,
            after.as_deref(),
        )
        .await?;
        Ok(connection(&page, &app.rules, at))
    }

    /// How many enterprises of a town (or all) have each colour at `asOf` (default now) under
    /// rule set `ruleSet` (default: the request's, see `enterprise`).
    async fn colour_distribution(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<ColourDistribution, ApiError> {
        let app = app(ctx)?;
        let as_of = optional_instant_arg("asOf", as_of)?;
        let rules = crate::graphql::audit::rules_for(app, rule_set.as_deref(), as_of)?;
        let town = statistics_town(ctx, town)?;
        let at = as_of.unwrap_or_else(|| app.now());
        let counts = read_model::colour_distribution(app.compliance_read_models()?, &rules, town.as_ref(), at).await?;
        Ok(ColourDistribution {
            at,
            town: town.map(|town| town.to_string()),
            red: counts.red,
            orange: counts.orange,
            yellow: counts.yellow,
            blue: counts.blue,
            complete: counts.complete,
            rule_set: rules.version.clone(),
            rule_set_digest: app.rule_set_digest(&rules.version),
        })
    }

    /// The enterprises of a town due an online check or an on-site inspection by `periodEnd`
    /// by their colour's cadence (colour at `asOf`, default now), with their escalation step,
    /// under rule set `ruleSet` (default: the request's, see `enterprise`).
    async fn supervision_plan(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        period_end: DateTime<Utc>,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<SupervisionPlan, ApiError> {
        let app = app(ctx)?;
        let as_of = optional_instant_arg("asOf", as_of)?;
        let rules = crate::graphql::audit::rules_for(app, rule_set.as_deref(), as_of)?;
        let town = scoped_town(ctx, town)?;
        let at = as_of.unwrap_or_else(|| app.now());
        let period_end = instant_arg("periodEnd", period_end)?;
        if period_end < at {
            return Err(ApiError::bad_input("计划截止时间（periodEnd）不能早于所问时点（asOf）"));
        }
        let (entries, complete) =
            read_model::supervision_plan(app.compliance_read_models()?, &rules, town.as_ref(), period_end, at).await?;
        Ok(SupervisionPlan {
            town: town.map(|town| town.to_string()),
            period_end,
            at,
            entries: entries
                .iter()
                .map(|entry| SupervisionPlanEntry {
                    enterprise_id: ID(entry.registration.enterprise_id.to_string()),
                    name: entry.registration.name.clone(),
                    town: entry.registration.town.to_string(),
                    risk: risk_view(&entry.assessment, &rules),
                    online_check_due: entry.checks.online_check_due,
                    on_site_due: entry.checks.on_site_due,
                    enforcement_plan: entry.checks.enforcement_plan,
                    last_online_check: entry.checks.last_online_check,
                    last_on_site: entry.checks.last_on_site,
                    escalation: entry.escalation.as_ref().map(|step| EscalationStep {
                        code: step.code.clone(),
                        name_zh: step.name_zh.clone(),
                        name_en: step.name_en.clone(),
                    }),
                })
                .collect(),
            complete,
        })
    }
}

/// The town and enterprise a hazard list may show: enterprises only their own, towns their town.
fn hazard_scope(
    ctx: &Context<'_>,
    town: Option<String>,
    enterprise: Option<EnterpriseId>,
) -> Result<(Option<Town>, Option<EnterpriseId>), ApiError> {
    let actor = actor(ctx)?;
    if let Role::Enterprise { enterprise_id } = &actor.role {
        if enterprise.is_some_and(|asked| asked != *enterprise_id) {
            return Err(ApiError::Forbidden("企业只能查看本企业的隐患".to_owned()));
        }
        if town.is_some() {
            return Err(ApiError::Forbidden("企业不能按镇（街道）查看隐患".to_owned()));
        }
        return Ok((None, Some(*enterprise_id)));
    }
    Ok((scoped_town(ctx, town)?, enterprise))
}

/// One page of the hazards `filter` selects at `at`: the hazard lists' common read.
async fn hazard_page(
    app: &crate::AppState,
    filter: &HazardFilter,
    at: DateTime<Utc>,
    first: i32,
    after: Option<String>,
) -> Result<HazardConnection, ApiError> {
    let page = read_model::hazards(
        app.compliance_read_models()?,
        filter,
        at,
        page_size(first)?,
        after.as_deref(),
    )
    .await?;
    Ok(connection(&page, &app.rules, at))
}

fn connection(page: &read_model::Page<HazardView>, rules: &RuleSet, at: DateTime<Utc>) -> HazardConnection {
    HazardConnection {
        nodes: page
            .items
            .iter()
            .map(|view| Hazard::from_view(view, rules, at))
            .collect(),
        page_info: PageInfo {
            has_next_page: page.has_next,
            end_cursor: page.end_cursor.clone(),
        },
    }
}
