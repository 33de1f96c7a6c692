//! Monthly town reports: computing a month's document of every town and the city at the month's
//! end (the 78 metrics with month-over-month and year-over-year values, the towns ranked by each
//! headline metric, the colour distribution), issuing it as a `MonthlyReportIssued` event on the
//! month's stream, reading it back, and the scheduler that issues every ended month once.
//!
//! Exactly once across nodes: the first version is appended with the expected state "no stream",
//! so when two nodes issue the same month one append wins and the other is a conflict; a later
//! version (a correction) is appended at the stream's version it read.

use std::sync::Arc;
use std::time::Duration;

use anquan_domain::assessment::{ANNUAL_ASSESSMENT_STREAM_PREFIX, AnnualAssessmentIssued};
use anquan_domain::metrics::{Scope, Tally};
use anquan_domain::report::{
    ColourCounts, MonthlyReportIssued, REPORT_REASON_CHARS_MAX, RankedTown, ReportFigure, ReportMonth, ReportRanking,
    ReportScope,
};
use anquan_domain::rules::RuleSet;
use anquan_domain::{Actor, Event, Role, Town, UserId};
use anquan_event_store::{AppendError, AppendMetadata, AppendRequest, StreamId, StreamState, StreamVersion};
use anquan_projections::metrics::{ScopeTallies, Snapshot};

use crate::AppState;
use crate::error::ApiError;
use crate::graphql::metrics::rank_highest_first;
use crate::metrics_service::snapshots_at;

/// How often the scheduler looks for an ended month without a report.
pub const REPORT_CHECK_EVERY: Duration = Duration::from_secs(2);
/// Months the scheduler issues in one check at most (a store a few years old catches up over
/// a few checks).
const MONTHS_PER_CHECK_MAX: usize = 24;
/// Versions of one month's report read at most (corrections are rare).
const VERSIONS_MAX: usize = 1_000;

/// The stream of a month's reports.
pub fn report_stream(month: ReportMonth) -> StreamId {
    // `monthly-report-YYYY-MM`: letters, digits and hyphens, always a valid stream id.
    StreamId::parse(&month.stream_name()).unwrap_or_else(|_| unreachable!("a month's stream name is a valid stream id"))
}

/// Every version of a month's report, oldest first.
pub async fn read_versions(app: &AppState, month: ReportMonth) -> Result<Vec<MonthlyReportIssued>, ApiError> {
    read_document_versions(app, &report_stream(month), |event| match event {
        Event::MonthlyReportIssued(report) => Ok(report),
        other => Err(other.event_type()),
    })
    .await
}

/// Every version of a frozen document's stream (a month's report, a year's assessment),
/// oldest first; `pick` takes the document out of its event and names the type of any other
/// event, which such a stream never holds.
async fn read_document_versions<T>(
    app: &AppState,
    stream: &StreamId,
    pick: impl Fn(Event) -> Result<T, &'static str>,
) -> Result<Vec<T>, ApiError> {
    let events = app
        .event_store
        .read_stream(stream, StreamVersion::FIRST, VERSIONS_MAX)
        .await
        .map_err(|error| ApiError::internal(&error))?;
    events
        .iter()
        .map(|recorded| match recorded.decode().map(&pick) {
            Ok(Ok(document)) => Ok(document),
            Ok(Err(event_type)) => Err(ApiError::Internal(format!(
                "{} holds a {event_type} event",
                recorded.stream_id
            ))),
            Err(error) => Err(ApiError::internal(&error)),
        })
        .collect()
}

/// The month's report at `version` (default: the latest).
pub async fn read_report(
    app: &AppState,
    month: ReportMonth,
    version: Option<u32>,
) -> Result<Option<MonthlyReportIssued>, ApiError> {
    let mut versions = read_versions(app, month).await?;
    Ok(match version {
        None => versions.pop(),
        Some(version) => versions.into_iter().find(|report| report.version == version),
    })
}

/// Issues `month`'s report: version 1 when there is none (`reason` optional), else a correction,
/// which needs a reason. The month must have ended. Answers `REPORT_ALREADY_ISSUED` when a first
/// version is asked for and one exists (also when another node issued it at the same moment).
pub async fn issue(
    app: &AppState,
    actor: &Actor,
    month: ReportMonth,
    reason: Option<String>,
) -> Result<MonthlyReportIssued, ApiError> {
    check_reason(reason.as_deref())?;
    let now = app.now();
    let at = month.end(app.rules.time_zone);
    if at > now {
        return Err(ApiError::Rejected {
            code: "REPORT_MONTH_NOT_OVER",
            message: format!("{month} 尚未结束，月度报告在月末之后生成"),
        });
    }
    let existing = read_versions(app, month).await?;
    if reason.is_none() && !existing.is_empty() {
        return Err(already_issued(month));
    }
    // Every event appended before now is in the read models the figures are computed from.
    wait_for_read_models(app).await?;
    let version = u32::try_from(existing.len() + 1).unwrap_or(u32::MAX);
    let report = compute(app, month, version, reason, now).await?;
    let event = Event::MonthlyReportIssued(report.clone());
    match append_version(app, actor, report_stream(month), existing.len(), &event, now).await {
        Ok(()) => {
            tracing::info!(month = %month, version, "monthly report issued");
            Ok(report)
        }
        Err(AppendError::Conflict { .. }) if version == 1 => Err(already_issued(month)),
        Err(AppendError::Conflict { .. }) => Err(ApiError::Conflict),
        Err(error) => Err(ApiError::internal(&error)),
    }
}

/// Appends the next version of a document stream that holds `existing` versions: "no stream"
/// for the first, so only one node issues it.
async fn append_version(
    app: &AppState,
    actor: &Actor,
    stream_id: StreamId,
    existing: usize,
    event: &Event,
    now: anquan_domain::Instant,
) -> Result<(), AppendError> {
    let expected = match existing {
        0 => StreamState::NoStream,
        count => StreamState::At(StreamVersion(u64::try_from(count - 1).unwrap_or(u64::MAX))),
    };
    let request = AppendRequest {
        stream_id,
        expected,
        command: None,
        metadata: AppendMetadata {
            occurred_at: now,
            actor: actor.clone(),
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
        },
        events: vec![anquan_event_store::execute::new_event(event)],
    };
    app.event_store.append(request).await.map(|_| ())
}

/// A reason is 1 to [`REPORT_REASON_CHARS_MAX`] characters without NUL.
fn check_reason(reason: Option<&str>) -> Result<(), ApiError> {
    if let Some(reason) = reason
        && (reason.trim().is_empty() || reason.chars().count() > REPORT_REASON_CHARS_MAX || reason.contains('\0'))
    {
        return Err(ApiError::Refused {
            code: "VALUE_OUT_OF_RANGE",
            message: format!("理由（reason）须为 1 至 {REPORT_REASON_CHARS_MAX} 个字符，且不含空字符"),
            details: vec![("field", "reason".into())],
        });
    }
    Ok(())
}

/// The stream of a year's town assessments.
pub fn assessment_stream(year: i32) -> StreamId {
    // `annual-assessment-YYYY`: always a valid stream id.
    StreamId::parse(&format!("{ANNUAL_ASSESSMENT_STREAM_PREFIX}{year}"))
        .unwrap_or_else(|_| unreachable!("a year's assessment stream name is a valid stream id"))
}

/// Every version of a year's assessment, oldest first.
pub async fn read_assessments(app: &AppState, year: i32) -> Result<Vec<AnnualAssessmentIssued>, ApiError> {
    read_document_versions(app, &assessment_stream(year), |event| match event {
        Event::AnnualAssessmentIssued(assessment) => Ok(assessment),
        other => Err(other.event_type()),
    })
    .await
}

/// Scores `year`'s assessment of every town from the latest version of December's report,
/// with the assessment rules of the rule set that report was computed with. A first version
/// when there is none, else (with a reason) the next version.
pub async fn issue_assessment(
    app: &AppState,
    actor: &Actor,
    year: i32,
    reason: Option<String>,
) -> Result<AnnualAssessmentIssued, ApiError> {
    check_reason(reason.as_deref())?;
    let december = ReportMonth::new(year, 12).ok_or_else(|| ApiError::Refused {
        code: "VALUE_OUT_OF_RANGE",
        message: "年份（year）须在 1970 至 2198 之间".to_owned(),
        details: vec![("field", "year".into())],
    })?;
    let existing = read_assessments(app, year).await?;
    if reason.is_none() && !existing.is_empty() {
        return Err(assessment_already_issued(year));
    }
    let report = read_report(app, december, None)
        .await?
        .ok_or_else(|| ApiError::Rejected {
            code: "REPORT_NOT_ISSUED",
            message: format!("{year} 年 12 月的月度报告尚未生成，年度考核依据该报告评分"),
        })?;
    let rules = app
        .rule_sets
        .get(&report.rule_set)
        .map(|loaded| loaded.rules)
        .ok_or_else(|| ApiError::RuleSetUnavailable {
            reason: format!(
                "rule set {} of the December report is not on this node",
                report.rule_set
            ),
        })?;
    let scoring = rules.metrics.assessment.as_ref().ok_or_else(|| ApiError::Rejected {
        code: "ASSESSMENT_NOT_DEFINED",
        message: format!("规则集 {} 没有规定年度考核的评分办法", rules.version),
    })?;
    let now = app.now();
    let version = u32::try_from(existing.len() + 1).unwrap_or(u32::MAX);
    let assessment = AnnualAssessmentIssued {
        year,
        version,
        reason,
        report_version: report.version,
        at: report.at,
        issued_at: now,
        rule_set: report.rule_set.clone(),
        rule_set_digest: report.rule_set_digest.clone(),
        towns: scoring.score(&report),
    };
    let event = Event::AnnualAssessmentIssued(assessment.clone());
    match append_version(app, actor, assessment_stream(year), existing.len(), &event, now).await {
        Ok(()) => {
            tracing::info!(year, version, "annual assessment issued");
            Ok(assessment)
        }
        Err(AppendError::Conflict { .. }) if version == 1 => Err(assessment_already_issued(year)),
        Err(AppendError::Conflict { .. }) => Err(ApiError::Conflict),
        Err(error) => Err(ApiError::internal(&error)),
    }
}

fn assessment_already_issued(year: i32) -> ApiError {
    ApiError::Rejected {
        code: "ASSESSMENT_ALREADY_ISSUED",
        message: format!("{year} 年度考核已经生成；如需重新评分，请说明理由"),
    }
}

fn already_issued(month: ReportMonth) -> ApiError {
    ApiError::Rejected {
        code: "REPORT_ALREADY_ISSUED",
        message: format!("{month} 的月度报告已经生成；如需更正，请说明理由"),
    }
}

/// Waits until both read models the figures read have applied the log as it stands now.
async fn wait_for_read_models(app: &AppState) -> Result<(), ApiError> {
    let head = *app.event_store.head().borrow();
    if let Some(head) = head {
        for projection in [
            anquan_projections::ComplianceProjection::NAME,
            anquan_projections::AgencyProjection::NAME,
        ] {
            app.wait_for_projection(projection, head).await?;
        }
    }
    Ok(())
}

/// Computes `month`'s document with the rule set in force at its end, from the read models.
pub async fn compute(
    app: &AppState,
    month: ReportMonth,
    version: u32,
    reason: Option<String>,
    issued_at: anquan_domain::Instant,
) -> Result<MonthlyReportIssued, ApiError> {
    let at = month.end(app.rules.time_zone);
    let rules = crate::graphql::audit::rules_for(app, None, Some(at))?;
    let app = &AppState {
        rules: rules.clone(),
        ..app.clone()
    };
    app.read_models_of(&[
        anquan_projections::ComplianceProjection::NAME,
        anquan_projections::AgencyProjection::NAME,
    ])?;
    let previous_month = month.previous();
    let year_ago_month = month.year_before();
    let mut instants = vec![at];
    instants.extend(previous_month.map(|month| month.end(rules.time_zone)));
    instants.extend(year_ago_month.map(|month| month.end(rules.time_zone)));
    let snapshots = snapshots_at(app, &instants).await?;
    let now = snapshots
        .first()
        .ok_or_else(|| ApiError::Internal("no snapshot computed".into()))?;
    let mut rest = snapshots.iter().skip(1);
    let previous_snapshot = previous_month.and_then(|_| rest.next());
    let year_ago_snapshot = year_ago_month.and_then(|_| rest.next());
    // An earlier month's report, when issued, is what the change is measured against.
    let previous_report = match previous_month {
        Some(month) => read_report(app, month, None).await?,
        None => None,
    };
    let year_ago_report = match year_ago_month {
        Some(month) => read_report(app, month, None).await?,
        None => None,
    };
    let earlier =
        |town: Option<&Town>, snapshot: Option<&Arc<Snapshot>>, report: Option<&MonthlyReportIssued>| Earlier {
            tallies: snapshot
                .and_then(|snapshot| scope_of(snapshot, town))
                .map(|scope| scope.all.clone()),
            frozen: report.and_then(|report| {
                report
                    .scopes
                    .iter()
                    .find(|scope| scope.town.as_deref() == town.map(Town::as_str))
                    .cloned()
            }),
        };
    let compliance = app.compliance_read_models()?;
    let mut scopes = Vec::with_capacity(now.towns.len() + 1);
    let towns: Vec<Option<&Town>> = std::iter::once(None)
        .chain(now.towns.iter().map(|(town, _)| Some(town)))
        .collect();
    for town in towns {
        let colours = anquan_projections::compliance::colour_distribution(compliance, &rules, town, at).await?;
        let tallies = scope_of(now, town)
            .map(|scope| scope.all.as_slice())
            .unwrap_or_default();
        scopes.push(ReportScope {
            town: town.map(ToString::to_string),
            figures: figures(
                &rules,
                town.is_some(),
                tallies,
                &earlier(town, previous_snapshot, previous_report.as_ref()),
                &earlier(town, year_ago_snapshot, year_ago_report.as_ref()),
            ),
            colours: ColourCounts {
                red: colours.red,
                orange: colours.orange,
                yellow: colours.yellow,
                blue: colours.blue,
            },
        });
    }
    Ok(MonthlyReportIssued {
        month: month.to_string(),
        version,
        reason,
        at,
        issued_at,
        rule_set: rules.version.clone(),
        rule_set_digest: app.rule_set_digest(&rules.version),
        rankings: rankings(&rules, now),
        scopes,
    })
}

fn scope_of<'a>(snapshot: &'a Snapshot, town: Option<&Town>) -> Option<&'a ScopeTallies> {
    match town {
        None => Some(&snapshot.city),
        Some(town) => snapshot.town(town),
    }
}

/// A scope's figures at an earlier month's end: the issued report's when there is one, else
/// computed at that instant.
struct Earlier {
    tallies: Option<Vec<Tally>>,
    frozen: Option<ReportScope>,
}

impl Earlier {
    fn value(&self, rules: &RuleSet, index: usize) -> Option<f64> {
        let metric = rules.metrics.metrics.get(index)?;
        match &self.frozen {
            Some(scope) => scope
                .figures
                .iter()
                .find(|figure| figure.code == metric.code)
                .and_then(|figure| figure.value),
            None => self.tallies.as_ref()?.get(index).and_then(|tally| metric.value(tally)),
        }
    }
}

fn figures(
    rules: &RuleSet,
    town: bool,
    tallies: &[Tally],
    previous: &Earlier,
    year_ago: &Earlier,
) -> Vec<ReportFigure> {
    rules
        .metrics
        .metrics
        .iter()
        .enumerate()
        .map(|(index, metric)| {
            let hidden = town && metric.scope == Scope::City;
            let tally = tallies.get(index).copied().unwrap_or_default();
            let shown = |value: Option<f64>| if hidden { None } else { value };
            ReportFigure {
                code: metric.code.clone(),
                numerator: tally.numerator,
                denominator: tally.denominator,
                value: shown(metric.value(&tally)),
                previous_value: shown(previous.value(rules, index)),
                year_ago_value: shown(year_ago.value(rules, index)),
            }
        })
        .collect()
}

/// The towns ranked by each headline metric, highest first; equal values share a rank.
fn rankings(rules: &RuleSet, now: &Snapshot) -> Vec<ReportRanking> {
    rules
        .metrics
        .metrics
        .iter()
        .enumerate()
        .filter(|(_, metric)| metric.headline.is_some() && metric.scope != Scope::City)
        .map(|(index, metric)| {
            let mut towns: Vec<RankedTown> = now
                .towns
                .iter()
                .map(|(town, tallies)| RankedTown {
                    town: town.to_string(),
                    rank: None,
                    value: tallies.all.get(index).and_then(|tally| metric.value(tally)),
                })
                .collect();
            rank_highest_first(
                &mut towns,
                |entry| entry.value,
                |entry, rank| {
                    entry.rank = Some(u32::try_from(rank).unwrap_or(u32::MAX));
                },
            );
            ReportRanking {
                code: metric.code.clone(),
                towns,
            }
        })
        .collect()
}

/// Issues each ended month's report once, on the node that leads the read models: from the
/// month of the log's first event (nothing is reported before anything was recorded) to the
/// month before the current one.
pub struct MonthlyReportScheduler {
    app: AppState,
    every: Duration,
    /// The first month not known to be issued.
    next: Option<ReportMonth>,
}

impl MonthlyReportScheduler {
    pub fn new(app: AppState, every: Duration) -> Self {
        MonthlyReportScheduler { app, every, next: None }
    }

    /// Runs forever; failures are logged and retried at the next check.
    pub async fn run(mut self) {
        let actor = Actor {
            user_id: match UserId::parse("service:reports") {
                Ok(user_id) => user_id,
                Err(error) => {
                    tracing::error!(%error, "the report actor's id is invalid; no scheduled reports");
                    return std::future::pending().await;
                }
            },
            role: Role::CityAdmin,
        };
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if self.app.projections.leading().is_none() {
                continue;
            }
            if let Err(error) = self.check(&actor).await {
                tracing::warn!(error = %error.message(), "monthly reports could not be issued; retrying");
            }
        }
    }

    async fn check(&mut self, actor: &Actor) -> Result<(), ApiError> {
        let app = self.app.for_request(None).unwrap_or_else(|| self.app.clone());
        let time_zone = app.rules.time_zone;
        let Some(current) = ReportMonth::of(app.now(), time_zone) else {
            return Ok(());
        };
        let mut month = match self.next {
            Some(month) => month,
            None => {
                let first = app
                    .event_store
                    .read_all(None, 1)
                    .await
                    .map_err(|error| ApiError::internal(&error))?;
                let Some(first) = first
                    .first()
                    .and_then(|event| ReportMonth::of(event.recorded_at, time_zone))
                else {
                    return Ok(());
                };
                first
            }
        };
        for _ in 0..MONTHS_PER_CHECK_MAX {
            if month >= current {
                break;
            }
            if read_versions(&app, month).await?.is_empty() {
                match issue(&app, actor, month, None).await {
                    Ok(_) => {}
                    Err(ApiError::Rejected {
                        code: "REPORT_ALREADY_ISSUED",
                        ..
                    }) => {}
                    Err(error) => return Err(error),
                }
            }
            if month.month() == 12 && read_assessments(&app, month.year()).await?.is_empty() {
                match issue_assessment(&app, actor, month.year(), None).await {
                    Ok(_) => {}
                    Err(ApiError::Rejected {
                        code: "ASSESSMENT_ALREADY_ISSUED" | "ASSESSMENT_NOT_DEFINED",
                        ..
                    }) => {}
                    Err(error) => return Err(error),
                }
            }
            self.next = month.next();
            match month.next() {
                Some(next) => month = next,
                None => break,
            }
        }
        Ok(())
    }
}

/// The scope of `town` (the city when none) in a report.
pub fn scope_of_report<'a>(report: &'a MonthlyReportIssued, town: Option<&Town>) -> Option<&'a ReportScope> {
    report
        .scopes
        .iter()
        .find(|scope| scope.town.as_deref() == town.map(Town::as_str))
}

/// One line of a report's table, as every rendering shows it (GraphQL, CSV, XLSX, HTML).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportLine {
    pub code: String,
    /// The metric's Chinese name under the report's rule set (empty when this node lacks it).
    pub name_zh: String,
    pub value: Option<f64>,
    pub numerator: i64,
    pub denominator: i64,
    pub previous_value: Option<f64>,
    /// Month-over-month change: value − previous value, 2 decimals.
    pub month_over_month: Option<f64>,
    pub year_ago_value: Option<f64>,
    /// Year-over-year change: value − the value a year earlier, 2 decimals.
    pub year_over_year: Option<f64>,
}

/// The lines of one scope of a report.
pub fn report_lines(app: &AppState, report: &MonthlyReportIssued, scope: &ReportScope) -> Vec<ReportLine> {
    let rules = app.rule_sets.get(&report.rule_set).map(|loaded| loaded.rules);
    let name_of = |code: &str| {
        rules
            .as_ref()
            .and_then(|rules| rules.metrics.metrics.iter().find(|metric| metric.code == code))
            .map(|metric| metric.name_zh.clone())
            .unwrap_or_default()
    };
    scope
        .figures
        .iter()
        .map(|figure| ReportLine {
            code: figure.code.clone(),
            name_zh: name_of(&figure.code),
            value: figure.value,
            numerator: figure.numerator,
            denominator: figure.denominator,
            previous_value: figure.previous_value,
            month_over_month: change(figure.value, figure.previous_value),
            year_ago_value: figure.year_ago_value,
            year_over_year: change(figure.value, figure.year_ago_value),
        })
        .collect()
}

/// `value − earlier`, rounded to 2 decimals, when both are known.
pub fn change(value: Option<f64>, earlier: Option<f64>) -> Option<f64> {
    value
        .zip(earlier)
        .map(|(value, earlier)| ((value - earlier) * 100.0).round() / 100.0)
}
