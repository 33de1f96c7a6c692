//! Monthly town reports: the list of a year's reports, one report (a town's or the city's
//! figures as the month's document froze them), and the city admin's mutation that issues a
//! report late or corrects one as a new version. City staff, analysts and city-wide auditors
//! read every town; town officers, inspectors and town auditors their town and the city;
//! enterprises and agencies none.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_domain::report::{MonthlyReportIssued, ReportMonth};
use anquan_domain::{Role, Town};

use super::args::parse_town;
use super::metrics::{Visibility, visibility};
use super::{Int64, actor, app};
use crate::AppState;
use crate::error::ApiError;
use crate::reports::{self, ReportLine};

/// One metric of a monthly report.
#[derive(SimpleObject)]
pub struct MonthlyReportMetric {
    /// The metric's code (A01…I06).
    pub code: String,
    /// Its Chinese name under the report's rule set.
    pub name_zh: String,
    /// The value at the month's end (none: a ratio over nothing, or a city-wide metric of a town).
    pub value: Option<f64>,
    /// The summed numerator.
    pub numerator: f64,
    /// The summed denominator.
    pub denominator: f64,
    /// The value at the previous month's end (that month's report when it was issued).
    pub previous_value: Option<f64>,
    /// Month-over-month change: value − previous value.
    pub month_over_month: Option<f64>,
    /// The value at the same month's end a year earlier.
    pub year_ago_value: Option<f64>,
    /// Year-over-year change: value − the value a year earlier.
    pub year_over_year: Option<f64>,
}

impl From<ReportLine> for MonthlyReportMetric {
    #[allow(clippy::cast_precision_loss, reason = "tallies are far below 2^52")]
    fn from(line: ReportLine) -> Self {
        MonthlyReportMetric {
            code: line.code,
            name_zh: line.name_zh,
            value: line.value,
            numerator: line.numerator as f64,
            denominator: line.denominator as f64,
            previous_value: line.previous_value,
            month_over_month: line.month_over_month,
            year_ago_value: line.year_ago_value,
            year_over_year: line.year_over_year,
        }
    }
}

/// How many enterprises of the scope had each risk colour at the month's end.
#[derive(SimpleObject)]
pub struct MonthlyReportColours {
    /// Red (红).
    pub red: u32,
    /// Orange (橙).
    pub orange: u32,
    /// Yellow (黄).
    pub yellow: u32,
    /// Blue (蓝).
    pub blue: u32,
}

/// One town in a report's ranking.
#[derive(SimpleObject)]
pub struct MonthlyReportRankedTown {
    /// 1 for the highest value, equal values share a rank; none: no value.
    pub rank: Option<u32>,
    /// The town.
    pub town: String,
    /// Its value.
    pub value: Option<f64>,
}

/// The towns ordered by one headline metric in a report.
#[derive(SimpleObject)]
pub struct MonthlyReportRanking {
    /// The metric's code.
    pub code: String,
    /// The towns, highest first.
    pub towns: Vec<MonthlyReportRankedTown>,
}

/// A town's (or the city's) monthly report, as the month's document froze it.
#[derive(SimpleObject)]
pub struct MonthlyReport {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// 1 for the first report of the month, one more for each correction.
    pub version: Int64,
    /// How many versions the month has (the latest is `versions`).
    pub versions: Int64,
    /// Why this version was issued (none for the scheduled first version).
    pub reason: Option<String>,
    /// The instant the figures are taken at: the month's exclusive end (local midnight of the
    /// next month's first day).
    pub at: DateTime<Utc>,
    /// When the report was issued.
    pub issued_at: DateTime<Utc>,
    /// The rule set in force at `at`, which computed the figures.
    pub rule_set: String,
    /// The SHA-256 digest of that rule set's files.
    pub rule_set_digest: String,
    /// The town, or none for the city.
    pub town: Option<String>,
    /// Every metric, in catalogue order.
    pub metrics: Vec<MonthlyReportMetric>,
    /// The colour distribution of the scope.
    pub colours: MonthlyReportColours,
    /// The towns ranked by each headline metric (the same in every scope of the month).
    pub rankings: Vec<MonthlyReportRanking>,
}

/// The view of one scope of a report; none when the report has no such town.
pub(crate) fn view(
    app: &AppState,
    report: &MonthlyReportIssued,
    town: Option<&Town>,
    versions: u32,
) -> Option<MonthlyReport> {
    let scope = reports::scope_of_report(report, town)?;
    Some(MonthlyReport {
        month: report.month.clone(),
        version: Int64(u64::from(report.version)),
        versions: Int64(u64::from(versions)),
        reason: report.reason.clone(),
        at: report.at,
        issued_at: report.issued_at,
        rule_set: report.rule_set.clone(),
        rule_set_digest: report.rule_set_digest.clone(),
        town: scope.town.clone(),
        metrics: reports::report_lines(app, report, scope)
            .into_iter()
            .map(MonthlyReportMetric::from)
            .collect(),
        colours: MonthlyReportColours {
            red: scope.colours.red,
            orange: scope.colours.orange,
            yellow: scope.colours.yellow,
            blue: scope.colours.blue,
        },
        rankings: report
            .rankings
            .iter()
            .map(|ranking| MonthlyReportRanking {
                code: ranking.code.clone(),
                towns: ranking
                    .towns
                    .iter()
                    .map(|town| MonthlyReportRankedTown {
                        rank: town.rank,
                        town: town.town.clone(),
                        value: town.value,
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Parses a `YYYY-MM` argument (`INVALID_MONTH`).
pub(crate) fn parse_month(month: &str) -> Result<ReportMonth, ApiError> {
    ReportMonth::parse(month).map_err(|error| ApiError::Refused {
        code: "INVALID_MONTH",
        message: "月份须写作 YYYY-MM，年份在 1970 至 2198 之间".to_owned(),
        details: vec![("reason", error.to_string().into())],
    })
}

/// The town a caller asks for, checked against what it may see: a town officer's own town or
/// the city; city staff any town or the city.
pub(crate) fn readable_town(visible: &Visibility, town: Option<Town>) -> Result<Option<Town>, ApiError> {
    match (visible, town) {
        (Visibility::Town(own), Some(town)) if *own != town => {
            Err(ApiError::Forbidden(format!("您的权限限于{own}，不能查看{town}的报告")))
        }
        (_, town) => Ok(town),
    }
}

/// Monthly reports.
#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// The latest version of each issued monthly report of `year` for `town` (default: the
    /// city), January first.
    async fn monthly_reports(
        &self,
        ctx: &Context<'_>,
        year: i32,
        town: Option<String>,
    ) -> Result<Vec<MonthlyReport>, ApiError> {
        let app = app(ctx)?;
        let visible = visibility(ctx)?;
        let town = readable_town(&visible, town.as_deref().map(parse_town).transpose()?)?;
        let Some(january) = ReportMonth::new(year, 1) else {
            return Err(ApiError::Refused {
                code: "VALUE_OUT_OF_RANGE",
                message: "年份（year）须在 1970 至 2198 之间".to_owned(),
                details: vec![("field", "year".into())],
            });
        };
        let mut listed = Vec::new();
        let mut month = Some(january);
        while let Some(current) = month.filter(|month| month.year() == year) {
            let mut versions = reports::read_versions(app, current).await?;
            let count = u32::try_from(versions.len()).unwrap_or(u32::MAX);
            if let Some(report) = versions.pop()
                && let Some(view) = view(app, &report, town.as_ref(), count)
            {
                listed.push(view);
            }
            month = current.next();
        }
        Ok(listed)
    }

    /// A monthly report of `town` (default: the city) at `version` (default: the latest);
    /// none when the month has no report yet. `month` is `YYYY-MM`.
    async fn monthly_report(
        &self,
        ctx: &Context<'_>,
        month: String,
        town: Option<String>,
        version: Option<Int64>,
    ) -> Result<Option<MonthlyReport>, ApiError> {
        let app = app(ctx)?;
        let visible = visibility(ctx)?;
        let town = readable_town(&visible, town.as_deref().map(parse_town).transpose()?)?;
        let month = parse_month(&month)?;
        let version = version
            .map(|version| {
                u32::try_from(version.0)
                    .ok()
                    .filter(|version| *version >= 1)
                    .ok_or_else(|| ApiError::Refused {
                        code: "VALUE_OUT_OF_RANGE",
                        message: "版本号（version）须不小于 1".to_owned(),
                        details: vec![("field", "version".into())],
                    })
            })
            .transpose()?;
        let versions = reports::read_versions(app, month).await?;
        let count = u32::try_from(versions.len()).unwrap_or(u32::MAX);
        let report = match version {
            None => versions.last(),
            Some(version) => versions.iter().find(|report| report.version == version),
        };
        let Some(report) = report else {
            return Ok(None);
        };
        view(app, report, town.as_ref(), count)
            .map(Some)
            .ok_or_else(|| ApiError::NotFound(format!("{}的报告中的镇（街道）", report.month)))
    }
}

/// The city admin's report commands.
#[derive(Default)]
pub struct ReportsMutation;

#[Object]
impl ReportsMutation {
    /// Issues the city's and every town's report of an ended `month` (`YYYY-MM`) now (city
    /// admin only): the first version when the service has not issued it yet, or, with a
    /// `reason`, a correction: a new version computed again from the facts as they stand, which
    /// never edits the earlier one. Answers the city's view of the new version.
    async fn issue_monthly_report(
        &self,
        ctx: &Context<'_>,
        month: String,
        reason: Option<String>,
    ) -> Result<MonthlyReport, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        if !matches!(actor.role, Role::CityAdmin) {
            return Err(ApiError::Forbidden("只有市级管理员可以生成或更正月度报告".to_owned()));
        }
        let month = parse_month(&month)?;
        let report = reports::issue(app, actor, month, reason).await?;
        view(app, &report, None, report.version).ok_or_else(|| ApiError::Internal("a report without the city".into()))
    }
}

/// One scored metric of a town's annual assessment.
#[derive(SimpleObject)]
pub struct AssessmentItemView {
    /// The metric's code.
    pub metric: String,
    /// Its weight (the weights add up to 100).
    pub weight: u32,
    /// December's value of the metric, percent.
    pub value: Option<f64>,
    /// The points it scored: weight × value / 100.
    pub points: f64,
}

/// A town's annual assessment.
#[derive(SimpleObject)]
pub struct TownAssessmentView {
    /// The town.
    pub town: String,
    /// 0 to 100 points, 1 decimal.
    pub score: f64,
    /// 优秀, 良好, 合格 or 不合格 (the rule set's grades).
    pub grade: String,
    /// The scored metrics.
    pub items: Vec<AssessmentItemView>,
}

/// A year's annual town assessment (年度安全生产责任制考核), scored from December's report.
#[derive(SimpleObject)]
pub struct AnnualAssessment {
    /// The year.
    pub year: i32,
    /// 1 for the first assessment of the year, one more for each re-scoring.
    pub version: Int64,
    /// How many versions the year has.
    pub versions: Int64,
    /// Why this version was issued (none for the scheduled first version).
    pub reason: Option<String>,
    /// The version of December's report it was scored from.
    pub report_version: Int64,
    /// That report's instant: local 1 January 00:00 of the next year.
    pub at: DateTime<Utc>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// The rule set whose scoring it used (December's report's).
    pub rule_set: String,
    /// The SHA-256 digest of that rule set's files.
    pub rule_set_digest: String,
    /// The towns the caller may see, in the report's order.
    pub towns: Vec<TownAssessmentView>,
}

fn assessment_view(
    assessment: &anquan_domain::assessment::AnnualAssessmentIssued,
    visible: &Visibility,
    versions: u32,
) -> AnnualAssessment {
    AnnualAssessment {
        year: assessment.year,
        version: Int64(u64::from(assessment.version)),
        versions: Int64(u64::from(versions)),
        reason: assessment.reason.clone(),
        report_version: Int64(u64::from(assessment.report_version)),
        at: assessment.at,
        issued_at: assessment.issued_at,
        rule_set: assessment.rule_set.clone(),
        rule_set_digest: assessment.rule_set_digest.clone(),
        towns: assessment
            .towns
            .iter()
            .filter(|town| match visible {
                Visibility::All => true,
                Visibility::Town(own) => own.as_str() == town.town,
            })
            .map(|town| TownAssessmentView {
                town: town.town.clone(),
                score: town.score,
                grade: town.grade.clone(),
                items: town
                    .items
                    .iter()
                    .map(|item| AssessmentItemView {
                        metric: item.metric.clone(),
                        weight: item.weight,
                        value: item.value,
                        points: item.points,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Annual town assessments.
#[derive(Default)]
pub struct AssessmentsQuery;

#[Object]
impl AssessmentsQuery {
    /// The annual town assessment of `year` at `version` (default: the latest); none until it
    /// is issued (after December's report). Town roles see their town only.
    async fn annual_assessment(
        &self,
        ctx: &Context<'_>,
        year: i32,
        version: Option<Int64>,
    ) -> Result<Option<AnnualAssessment>, ApiError> {
        let app = app(ctx)?;
        let visible = visibility(ctx)?;
        if ReportMonth::new(year, 12).is_none() {
            return Err(ApiError::Refused {
                code: "VALUE_OUT_OF_RANGE",
                message: "年份（year）须在 1970 至 2198 之间".to_owned(),
                details: vec![("field", "year".into())],
            });
        }
        let versions = reports::read_assessments(app, year).await?;
        let count = u32::try_from(versions.len()).unwrap_or(u32::MAX);
        let found = match version {
            None => versions.last(),
            Some(version) => versions
                .iter()
                .find(|assessment| u64::from(assessment.version) == version.0),
        };
        Ok(found.map(|assessment| assessment_view(assessment, &visible, count)))
    }
}

#[Object]
impl AssessmentsMutation {
    /// Scores `year`'s annual town assessment from December's report now (city admin only):
    /// the first version when the service has not issued it yet, or, with a `reason`, a new
    /// version scored from the latest version of December's report (e.g. after a correction).
    async fn issue_annual_assessment(
        &self,
        ctx: &Context<'_>,
        year: i32,
        reason: Option<String>,
    ) -> Result<AnnualAssessment, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        if !matches!(actor.role, Role::CityAdmin) {
            return Err(ApiError::Forbidden("只有市级管理员可以生成年度考核".to_owned()));
        }
        let assessment = reports::issue_assessment(app, actor, year, reason).await?;
        Ok(assessment_view(&assessment, &Visibility::All, assessment.version))
    }
}

/// The city admin's assessment commands.
#[derive(Default)]
pub struct AssessmentsMutation;
