//! Town and city statistics: the 78 metrics' catalogue, one town's figures, all towns side by
//! side, the city, a town ranking, the five headline rates, and a subscription that pushes
//! changed figures. City admins and inspectors see everything; town officers and inspectors see
//! their town and the city aggregates; enterprises, agencies and the public see none.

use std::sync::Arc;

use async_graphql::{Context, Enum, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::Stream;

use anquan_domain::metrics::{Covers, Headline, Metric, Scope, Tally, Unit, Window, metric_span};
use anquan_domain::{Role, Town};
use anquan_projections::metrics::{ScopeTallies, Snapshot};

use super::args::parse_town;
use super::{actor, app, optional_instant_arg};
use crate::AppState;
use crate::error::ApiError;
use crate::metrics_service::snapshots_at;

/// A metric of the catalogue.
#[derive(SimpleObject)]
pub struct MetricDefinition {
    /// A01…I06 (domain.md §5).
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// The numerator in words.
    pub numerator: String,
    /// The denominator in words (empty for a plain count).
    pub denominator: String,
    /// The stretch of time it looks at.
    pub window: MetricWindow,
    /// How the value reads.
    pub unit: MetricUnit,
    /// True for city-wide figures no town owns (agencies).
    pub city_only: bool,
    /// The headline rate it carries, if any (snake_case name).
    pub headline: Option<String>,
    /// False when no fact is recorded for it yet (it reads 0).
    pub recorded: bool,
    /// True when it counts only periods that ended by the instant (cadence metrics G02, G03,
    /// D04): the latest completed half-year, or the completed part of its year, not the period
    /// in progress; each figure's `period` says which.
    pub completed_periods_only: bool,
}

/// A metric's window.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum MetricWindow {
    /// The state at the instant.
    Snapshot,
    /// 1 January to the instant.
    YearToDate,
    /// The current half-year to the instant.
    HalfYear,
}

/// A metric's unit.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    /// A count (or a mean count when there is a denominator).
    Count,
    /// A percentage, 1 decimal.
    Percent,
    /// Days, 1 decimal.
    Days,
    /// Stars, 2 decimals.
    Stars,
}

impl From<&Metric> for MetricDefinition {
    fn from(metric: &Metric) -> Self {
        MetricDefinition {
            code: metric.code.clone(),
            name_zh: metric.name_zh.clone(),
            name_en: metric.name_en.clone(),
            numerator: metric.numerator.clone(),
            denominator: metric.denominator.clone(),
            window: match metric.window {
                Window::Snapshot => MetricWindow::Snapshot,
                Window::Ytd => MetricWindow::YearToDate,
                Window::HalfYear => MetricWindow::HalfYear,
            },
            unit: match metric.unit {
                Unit::Count => MetricUnit::Count,
                Unit::Percent => MetricUnit::Percent,
                Unit::Days => MetricUnit::Days,
                Unit::Stars => MetricUnit::Stars,
            },
            city_only: metric.scope == Scope::City,
            headline: metric.headline.map(headline_name),
            recorded: metric.recorded,
            completed_periods_only: metric.covers == Covers::CompletedPeriods,
        }
    }
}

fn headline_name(headline: Headline) -> String {
    serde_json::to_value(headline)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One part of a figure (A08 created/closed, I04 grades, I05 kinds, D06 sessions/attendees).
#[derive(SimpleObject)]
pub struct MetricPart {
    /// The part's name.
    pub name: String,
    /// Its count.
    pub value: f64,
}

/// The stretch of time a figure covers.
#[derive(SimpleObject, Clone)]
pub struct MetricPeriod {
    /// Its first instant (the instant asked for, for a snapshot).
    pub start: DateTime<Utc>,
    /// Its end: the instant asked for, or, for a figure of completed periods, the end of the
    /// latest one (exclusive).
    pub end: DateTime<Utc>,
    /// As a person reads it, local time: 2026年下半年, 2026年（截至12月6日 10:03）, 截至2026年12月6日 10:03.
    pub label: String,
    /// The local period (2026, 2026-H2), none for a snapshot.
    pub period: Option<String>,
    /// True when the figure counts only periods that ended by the instant.
    pub completed: bool,
}

/// One metric's figure in one scope.
#[derive(SimpleObject)]
pub struct MetricValue {
    /// The metric's code.
    pub code: String,
    /// The stretch of time the figure covers (the window to the instant, the latest completed
    /// period for cadence metrics, or the instant for a snapshot).
    pub period: Arc<MetricPeriod>,
    /// The value (none: a ratio over nothing, or a city-wide metric asked of a town).
    pub value: Option<f64>,
    /// The summed numerator.
    pub numerator: f64,
    /// The summed denominator.
    pub denominator: f64,
    /// The value one local month earlier.
    pub previous_value: Option<f64>,
    /// Month-over-month change: value − previous value.
    pub change: Option<f64>,
    /// The parts, for metrics that have them.
    pub parts: Vec<MetricPart>,
}

/// The figures of one scope at one instant.
#[derive(SimpleObject)]
pub struct ScopeMetrics {
    /// The town, or none for the city.
    pub town: Option<String>,
    /// The instant the figures are for.
    pub at: DateTime<Utc>,
    /// The breakdown (enterprise type) they are restricted to, if any.
    pub breakdown: Option<String>,
    /// Every metric, in catalogue order.
    pub metrics: Vec<MetricValue>,
    /// The rule set version the figures were computed with: the one in force at the instant
    /// asked for (by the rule-set log), unless `ruleSet` or the request named another.
    pub rule_set: String,
    /// The SHA-256 digest of that rule set's files (as published in the rule-set log).
    pub rule_set_digest: String,
}

/// One town in a ranking.
#[derive(SimpleObject)]
pub struct RankingEntry {
    /// 1 for the highest value; towns without a value come last, unranked.
    pub rank: Option<i32>,
    /// The town.
    pub town: String,
    /// Its value.
    pub value: Option<f64>,
    /// Month-over-month change.
    pub change: Option<f64>,
    /// The stretch of time the value covers (the same for every town).
    pub period: MetricPeriod,
}

/// The five rates the source article names, in one scope.
#[derive(SimpleObject)]
pub struct HeadlineRates {
    /// The town, or none for the city.
    pub town: Option<String>,
    /// The instant.
    pub at: DateTime<Utc>,
    /// 企业主体落实率 (B02), percent.
    pub enterprise_responsibility_rate: Option<f64>,
    /// 负责人、安管员培训率 (D03), percent.
    pub principal_and_safety_officer_training_rate: Option<f64>,
    /// 应急演练完成率 (G02), percent.
    pub emergency_drill_completion_rate: Option<f64>,
    /// 社会化服务覆盖率 (H01), percent.
    pub social_service_coverage: Option<f64>,
    /// 500万以上企业服务覆盖率 (H02), percent.
    #[graphql(name = "serviceCoverageOver5mRevenue")]
    pub service_coverage_over_5m_revenue: Option<f64>,
    /// The rule set version the rates were computed with: the one in force at the instant
    /// asked for (by the rule-set log), unless `ruleSet` or the request named another.
    pub rule_set: String,
    /// The SHA-256 digest of that rule set's files (as published in the rule-set log).
    pub rule_set_digest: String,
    /// The stretch of time each rate covers, in the order of the fields above (G02 counts
    /// completed periods only).
    pub periods: Vec<HeadlinePeriod>,
}

/// The stretch of time one headline rate covers.
#[derive(SimpleObject)]
pub struct HeadlinePeriod {
    /// The rate's snake_case name (`emergency_drill_completion_rate`, …).
    pub rate: String,
    /// The metric carrying it (B02, D03, G02, H01, H02 in rule set v1).
    pub code: String,
    /// The stretch of time it covers.
    pub period: MetricPeriod,
}

/// An enterprise type the figures can be restricted to.
#[derive(SimpleObject)]
pub struct MetricBreakdown {
    /// Its name (pass as `breakdown`).
    pub name: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
}

/// Town and city statistics.
#[derive(Default)]
pub struct MetricsQuery;

/// What a caller may see: every town, or one town (plus the city).
pub(crate) enum Visibility {
    All,
    Town(Town),
}

pub(super) fn visibility(ctx: &Context<'_>) -> Result<Visibility, ApiError> {
    visibility_of(actor(ctx)?)
}

/// What `actor` may see of the town statistics and reports.
pub(crate) fn visibility_of(actor: &anquan_domain::Actor) -> Result<Visibility, ApiError> {
    match &actor.role {
        Role::CityAdmin | Role::CityInspector | Role::Analyst | Role::Auditor { town: None } => Ok(Visibility::All),
        Role::TownOfficer { town } | Role::TownInspector { town } | Role::Auditor { town: Some(town) } => {
            Ok(Visibility::Town(town.clone()))
        }
        Role::Enterprise { .. } | Role::Agency { .. } => {
            Err(ApiError::Forbidden("企业和服务机构不能查看镇（街道）统计".to_owned()))
        }
    }
}

/// The state a metrics field reads with: `app` with `rules` set to the version its `ruleSet`
/// argument names (default: the request's).
fn with_rules(app: &AppState, rule_set: Option<&str>, as_of: Option<DateTime<Utc>>) -> Result<AppState, ApiError> {
    let as_of = optional_instant_arg("asOf", as_of)?;
    Ok(AppState {
        rules: super::audit::rules_for(app, rule_set, as_of)?,
        ..app.clone()
    })
}

/// How long a request for "now" under the live rules waits for the watcher's first computation
/// (after the service starts or a promotion) before it is told to come back.
const FIRST_COMPUTATION_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The snapshot at `as_of` (or now) and the one a month earlier, under `app.rules`; for a past
/// instant, the month-ago one only when `month_ago` (a lookup of its own). "Now" is
/// the watcher's cache when it was computed with the same version. Under the live rules it is
/// never computed per request: one pass reads every enterprise's file, minutes at province
/// scale, and a dashboard opened while the service starts must not start one per request; the
/// request waits for the watcher a while, then gets `NOT_READY`. Under another version "now"
/// is computed for the request.
async fn snapshots(
    app: &AppState,
    as_of: Option<DateTime<Utc>>,
    month_ago: bool,
) -> Result<(Arc<Snapshot>, Option<Arc<Snapshot>>), ApiError> {
    let as_of = optional_instant_arg("asOf", as_of)?;
    // The figures count enterprises and agencies: neither read model may be stalled.
    app.read_models_of(&[
        anquan_projections::ComplianceProjection::NAME,
        anquan_projections::AgencyProjection::NAME,
    ])?;
    match as_of {
        None => match app.metrics.current() {
            Some(current) if current.rules.version == app.rules.version => Ok((current.now, Some(current.month_ago))),
            _ if app.rules.version == app.rule_sets.active_version() => app
                .metrics
                .current_with(&app.rules.version, FIRST_COMPUTATION_WAIT)
                .await
                .map(|current| (current.now, Some(current.month_ago)))
                .ok_or_else(|| {
                    ApiError::NotReady(format!(
                        "规则集 {} 下的当前镇（街道）统计仍在计算中（服务刚启动或规则集刚切换），请稍后再试",
                        app.rules.version
                    ))
                }),
            _ => {
                let now = app.now();
                compute(app, now, month_ago).await
            }
        },
        Some(at) => compute(app, at, month_ago).await,
    }
}

/// The snapshot at `at` and, when `month_ago`, the one a local month earlier, looked up together.
async fn compute(
    app: &AppState,
    at: DateTime<Utc>,
    month_ago: bool,
) -> Result<(Arc<Snapshot>, Option<Arc<Snapshot>>), ApiError> {
    let mut instants = vec![at];
    if month_ago {
        instants.push(anquan_projections::metrics::month_before(&app.rules, at));
    }
    let mut snapshots = snapshots_at(app, &instants)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .into_iter();
    let now = snapshots
        .next()
        .ok_or_else(|| ApiError::Internal("no snapshot computed".into()))?;
    Ok((now, snapshots.next()))
}

/// Whether a field's answer shows month-ago figures: its selection names one of `fields` under
/// `path` (through fragments; a field under `@skip` or `@include` counts as asked, so the
/// month-ago figures are looked up when unsure, never left out when shown).
fn month_ago_asked(ctx: &Context<'_>, path: &[&str], fields: &[&str]) -> bool {
    let mut selection = ctx.look_ahead();
    for name in path {
        selection = selection.field(name);
    }
    fields.iter().any(|name| selection.field(name).exists())
}

/// The fields of a `MetricValue` that show the month-ago figures.
const MONTH_AGO_FIELDS: [&str; 2] = ["previousValue", "change"];

/// Each metric's period at `at`, in catalogue order: the same in every scope of an answer.
fn periods(app: &AppState, at: DateTime<Utc>) -> Vec<Arc<MetricPeriod>> {
    app.rules
        .metrics
        .metrics
        .iter()
        .map(|metric| Arc::new(covered(app, metric, at)))
        .collect()
}

fn breakdown_index(app: &AppState, breakdown: Option<&str>) -> Result<Option<usize>, ApiError> {
    breakdown
        .map(|name| {
            app.rules
                .metrics
                .breakdown(name)
                .map(|(index, _)| index)
                .ok_or_else(|| ApiError::bad_input(format!("没有名为“{name}”的分组方式")))
        })
        .transpose()
}

/// The span a metric's figure at `at` covers (`metrics::metric_span`), as the API gives it.
fn covered(app: &AppState, metric: &Metric, at: DateTime<Utc>) -> MetricPeriod {
    let span = metric_span(metric, at, &app.rules);
    MetricPeriod {
        start: span.start,
        end: span.end,
        label: span.label(app.rules.time_zone),
        period: span.period.map(|period| period.to_string()),
        completed: span.completed,
    }
}

fn values(
    app: &AppState,
    town: bool,
    periods: &[Arc<MetricPeriod>],
    now: Option<&[Tally]>,
    earlier: Option<&[Tally]>,
) -> Vec<MetricValue> {
    app.rules
        .metrics
        .metrics
        .iter()
        .zip(periods)
        .enumerate()
        .map(|(index, (metric, period))| {
            let hidden = town && metric.scope == Scope::City;
            let tally = now.and_then(|tallies| tallies.get(index)).copied().unwrap_or_default();
            let value = if hidden { None } else { metric.value(&tally) };
            let previous_value = if hidden {
                None
            } else {
                earlier
                    .and_then(|tallies| tallies.get(index))
                    .and_then(|tally| metric.value(tally))
            };
            #[allow(clippy::cast_precision_loss, reason = "tallies are far below 2^52")]
            let parts = metric
                .measure
                .part_names()
                .iter()
                .zip(tally.parts)
                .map(|(name, value)| MetricPart {
                    name: (*name).to_owned(),
                    value: value as f64,
                })
                .collect();
            #[allow(clippy::cast_precision_loss, reason = "tallies are far below 2^52")]
            MetricValue {
                code: metric.code.clone(),
                period: Arc::clone(period),
                value,
                numerator: tally.numerator as f64,
                denominator: tally.denominator as f64,
                change: value
                    .zip(previous_value)
                    .map(|(value, previous)| ((value - previous) * 100.0).round() / 100.0),
                previous_value,
                parts,
            }
        })
        .collect()
}

fn scope_metrics(
    app: &AppState,
    town: Option<&Town>,
    breakdown: Option<(usize, &str)>,
    periods: &[Arc<MetricPeriod>],
    now: &Snapshot,
    earlier: Option<&Snapshot>,
) -> ScopeMetrics {
    let index = breakdown.map(|(index, _)| index);
    let pick = |snapshot: &Snapshot| -> Option<Vec<Tally>> {
        let scope: Option<&ScopeTallies> = match town {
            None => Some(&snapshot.city),
            Some(town) => snapshot.town(town),
        };
        scope.and_then(|scope| scope.tallies(index)).map(<[Tally]>::to_vec)
    };
    ScopeMetrics {
        town: town.map(ToString::to_string),
        at: now.at,
        breakdown: breakdown.map(|(_, name)| name.to_owned()),
        metrics: values(
            app,
            town.is_some(),
            periods,
            pick(now).as_deref(),
            earlier.and_then(pick).as_deref(),
        ),
        rule_set: app.rules.version.clone(),
        rule_set_digest: app.rule_set_digest(&app.rules.version),
    }
}

#[Object]
impl MetricsQuery {
    /// The 78 metrics of rule set `ruleSet` (default: the request's: the `x-anquan-rule-set`
    /// header's version, else the live one), in catalogue order.
    async fn metric_catalogue(
        &self,
        ctx: &Context<'_>,
        rule_set: Option<String>,
    ) -> Result<Vec<MetricDefinition>, ApiError> {
        Ok(super::audit::rules_for(app(ctx)?, rule_set.as_deref(), None)?
            .metrics
            .metrics
            .iter()
            .map(MetricDefinition::from)
            .collect())
    }

    /// The enterprise types figures can be restricted to under rule set `ruleSet` (default: the
    /// request's).
    async fn metric_breakdowns(
        &self,
        ctx: &Context<'_>,
        rule_set: Option<String>,
    ) -> Result<Vec<MetricBreakdown>, ApiError> {
        Ok(super::audit::rules_for(app(ctx)?, rule_set.as_deref(), None)?
            .metrics
            .breakdowns
            .iter()
            .map(|breakdown| MetricBreakdown {
                name: breakdown.name.clone(),
                name_zh: breakdown.name_zh.clone(),
                name_en: breakdown.name_en.clone(),
            })
            .collect())
    }

    /// Every metric of one town at `asOf` (default now), optionally for one enterprise type,
    /// computed with rule set `ruleSet` (default: the request's: the `x-anquan-rule-set`
    /// header's version, else the live one).
    #[graphql(complexity = "super::metrics_cost(as_of, child_complexity)")]
    async fn town_metrics(
        &self,
        ctx: &Context<'_>,
        town: String,
        as_of: Option<DateTime<Utc>>,
        breakdown: Option<String>,
        rule_set: Option<String>,
    ) -> Result<ScopeMetrics, ApiError> {
        let app = &with_rules(app(ctx)?, rule_set.as_deref(), as_of)?;
        let town = parse_town(&town)?;
        if let Visibility::Town(own) = visibility(ctx)?
            && own != town
        {
            return Err(ApiError::Forbidden(format!("您的权限限于{own}，不能查看{town}的数据")));
        }
        let index = breakdown_index(app, breakdown.as_deref())?;
        let month_ago = month_ago_asked(ctx, &["metrics"], &MONTH_AGO_FIELDS);
        let (now, earlier) = snapshots(app, as_of, month_ago).await?;
        if now.town(&town).is_none() && !app.rules.metrics.towns.contains(&town) {
            return Err(ApiError::NotFound(format!("镇（街道）{town}")));
        }
        Ok(scope_metrics(
            app,
            Some(&town),
            index.zip(breakdown.as_deref()),
            &periods(app, now.at),
            &now,
            earlier.as_deref(),
        ))
    }

    /// Every metric of every town the caller may see, side by side, at `asOf` (default now),
    /// under rule set `ruleSet` (default: the request's).
    #[graphql(complexity = "super::metrics_cost(as_of, child_complexity)")]
    async fn all_town_metrics(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime<Utc>>,
        breakdown: Option<String>,
        rule_set: Option<String>,
    ) -> Result<Vec<ScopeMetrics>, ApiError> {
        let app = &with_rules(app(ctx)?, rule_set.as_deref(), as_of)?;
        let visible = visibility(ctx)?;
        let index = breakdown_index(app, breakdown.as_deref())?;
        let month_ago = month_ago_asked(ctx, &["metrics"], &MONTH_AGO_FIELDS);
        let (now, earlier) = snapshots(app, as_of, month_ago).await?;
        let periods = periods(app, now.at);
        Ok(now
            .towns
            .iter()
            .filter(|(town, _)| match &visible {
                Visibility::All => true,
                Visibility::Town(own) => own == town,
            })
            .map(|(town, _)| {
                scope_metrics(
                    app,
                    Some(town),
                    index.zip(breakdown.as_deref()),
                    &periods,
                    &now,
                    earlier.as_deref(),
                )
            })
            .collect())
    }

    /// Every metric of the whole city at `asOf` (default now), under rule set `ruleSet`
    /// (default: the request's).
    #[graphql(complexity = "super::metrics_cost(as_of, child_complexity)")]
    async fn city_metrics(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime<Utc>>,
        breakdown: Option<String>,
        rule_set: Option<String>,
    ) -> Result<ScopeMetrics, ApiError> {
        let app = &with_rules(app(ctx)?, rule_set.as_deref(), as_of)?;
        visibility(ctx)?;
        let index = breakdown_index(app, breakdown.as_deref())?;
        let month_ago = month_ago_asked(ctx, &["metrics"], &MONTH_AGO_FIELDS);
        let (now, earlier) = snapshots(app, as_of, month_ago).await?;
        Ok(scope_metrics(
            app,
            None,
            index.zip(breakdown.as_deref()),
            &periods(app, now.at),
            &now,
            earlier.as_deref(),
        ))
    }

    /// The towns ordered by one metric (highest first) at `asOf` under rule set `ruleSet`
    /// (default: the request's), with month-over-month change.
    /// Town officers see the whole ranking of values (no enterprise detail).
    #[graphql(complexity = "super::metrics_cost(as_of, child_complexity)")]
    async fn town_ranking(
        &self,
        ctx: &Context<'_>,
        metric: String,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<Vec<RankingEntry>, ApiError> {
        let app = &with_rules(app(ctx)?, rule_set.as_deref(), as_of)?;
        visibility(ctx)?;
        let index = app
            .rules
            .metrics
            .index_of(&metric)
            .ok_or_else(|| ApiError::bad_input(format!("没有编号为“{metric}”的指标")))?;
        let definition = &app.rules.metrics.metrics[index];
        if definition.scope == Scope::City {
            return Err(ApiError::bad_input(format!(
                "指标 {metric} 只有全市数值，各镇（街道）没有"
            )));
        }
        let (now, earlier) = snapshots(app, as_of, month_ago_asked(ctx, &[], &["change"])).await?;
        let period = covered(app, definition, now.at);
        let mut entries: Vec<RankingEntry> = now
            .towns
            .iter()
            .map(|(town, tallies)| {
                let value = tallies.all.get(index).and_then(|tally| definition.value(tally));
                let previous = earlier
                    .as_ref()
                    .and_then(|earlier| earlier.town(town))
                    .and_then(|tallies| tallies.all.get(index))
                    .and_then(|tally| definition.value(tally));
                RankingEntry {
                    period: period.clone(),
                    rank: None,
                    town: town.to_string(),
                    value,
                    change: value
                        .zip(previous)
                        .map(|(value, previous)| ((value - previous) * 100.0).round() / 100.0),
                }
            })
            .collect();
        rank_highest_first(
            &mut entries,
            |entry| entry.value,
            |entry, rank| {
                entry.rank = Some(i32::try_from(rank).unwrap_or(i32::MAX));
            },
        );
        Ok(entries)
    }

    /// The five headline rates of a town (or the city when `town` is absent) at `asOf`, under
    /// rule set `ruleSet` (default: the request's).
    #[graphql(complexity = "super::metrics_cost(as_of, child_complexity)")]
    async fn headline_rates(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
        as_of: Option<DateTime<Utc>>,
        rule_set: Option<String>,
    ) -> Result<HeadlineRates, ApiError> {
        let app = &with_rules(app(ctx)?, rule_set.as_deref(), as_of)?;
        let visible = visibility(ctx)?;
        let town = town.as_deref().map(parse_town).transpose()?;
        if let (Visibility::Town(own), Some(town)) = (&visible, &town)
            && own != town
        {
            return Err(ApiError::Forbidden(format!("您的权限限于{own}，不能查看{town}的数据")));
        }
        let (now, _) = snapshots(app, as_of, false).await?;
        let tallies = match &town {
            None => Some(&now.city),
            Some(town) => now.town(town),
        };
        let rate = |headline: Headline| {
            let (index, metric) = app.rules.metrics.headline(headline)?;
            tallies
                .and_then(|tallies| tallies.all.get(index))
                .and_then(|tally| metric.value(tally))
        };
        Ok(HeadlineRates {
            town: town.map(|town| town.to_string()),
            at: now.at,
            enterprise_responsibility_rate: rate(Headline::EnterpriseResponsibilityRate),
            principal_and_safety_officer_training_rate: rate(Headline::PrincipalAndSafetyOfficerTrainingRate),
            emergency_drill_completion_rate: rate(Headline::EmergencyDrillCompletionRate),
            social_service_coverage: rate(Headline::SocialServiceCoverage),
            service_coverage_over_5m_revenue: rate(Headline::ServiceCoverageOver5mRevenue),
            rule_set: app.rules.version.clone(),
            rule_set_digest: app.rule_set_digest(&app.rules.version),
            periods: Headline::ALL
                .into_iter()
                .filter_map(|headline| {
                    let (_, metric) = app.rules.metrics.headline(headline)?;
                    Some(HeadlinePeriod {
                        rate: headline_name(headline),
                        code: metric.code.clone(),
                        period: covered(app, metric, now.at),
                    })
                })
                .collect(),
        })
    }
}

/// Live town statistics.
#[derive(Default)]
pub struct MetricsSubscription;

#[Subscription]
impl MetricsSubscription {
    /// The figures of a town (default: the caller's town, or the city for city staff) each time
    /// they change, after new facts, as time passes, or when a rule set is promoted (then
    /// computed with the new live version, `ruleSet` says which).
    async fn metrics_changed(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
    ) -> Result<impl Stream<Item = ScopeMetrics> + use<>, ApiError> {
        let app = app(ctx)?.clone();
        let visible = visibility(ctx)?;
        let town = town.as_deref().map(parse_town).transpose()?;
        let town = match (visible, town) {
            (Visibility::All, town) => town,
            (Visibility::Town(own), None) => Some(own),
            (Visibility::Town(own), Some(town)) if own == town => Some(town),
            (Visibility::Town(own), Some(town)) => {
                return Err(ApiError::Forbidden(format!("您的权限限于{own}，不能订阅{town}的数据")));
            }
        };
        let receiver = app.metrics.subscribe();
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(changed) => return Some((changed, receiver)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(futures::StreamExt::filter_map(stream, move |changed| {
            let app = app.clone();
            let town = town.clone();
            async move {
                if !changed.towns.contains(&town) {
                    return None;
                }
                let current = app.metrics.current()?;
                // The figures' own rule set: the live one, also after a promotion.
                let app = AppState {
                    rules: current.rules.clone(),
                    ..app
                };
                Some(scope_metrics(
                    &app,
                    town.as_ref(),
                    None,
                    &periods(&app, current.now.at),
                    &current.now,
                    Some(&current.month_ago),
                ))
            }
        }))
    }
}

/// Orders towns' entries by value, highest first and those without a value last, and gives
/// each valued entry its competition rank (1-based; equal values share a rank, the next rank
/// skips as many places): the town ranking of the dashboard and of the monthly reports.
pub(crate) fn rank_highest_first<T>(
    entries: &mut [T],
    value: impl Fn(&T) -> Option<f64>,
    mut set_rank: impl FnMut(&mut T, usize),
) {
    entries.sort_by(|a, b| match (value(a), value(b)) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let mut rank = 0;
    let mut last: Option<f64> = None;
    for (position, entry) in entries.iter_mut().enumerate() {
        if let Some(current) = value(entry) {
            if last != Some(current) {
                rank = position + 1;
                last = Some(current);
            }
            set_rank(entry, rank);
        }
    }
}
