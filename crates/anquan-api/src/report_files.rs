//! A monthly report as a file to file: CSV (UTF-8 with a byte-order mark, so spreadsheet programs
//! read the Chinese labels), an XLSX workbook (`rust_xlsxwriter`: the metrics, the rankings and
//! the colour distribution on three sheets) and a printable HTML page (A4, print CSS, no script).
//! Every rendering shows the same lines (`reports::report_lines`).

use std::fmt::Write as _;

use anquan_domain::assessment::{AnnualAssessmentIssued, TownAssessment};
use anquan_domain::report::{MonthlyReportIssued, ReportScope};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::AppState;
use crate::reports::{ReportLine, report_lines};

/// The columns of the metrics table, in order.
pub const COLUMNS: [&str; 9] = [
    "指标编号",
    "指标名称",
    "本月数值",
    "分子",
    "分母",
    "上月数值",
    "环比变化",
    "去年同期数值",
    "同比变化",
];

/// The scope's name as a report shows it.
pub fn scope_name(scope: &ReportScope) -> String {
    scope.town.clone().unwrap_or_else(|| "全市".to_owned())
}

/// The report's title: `许村 2027年1月 安全生产工作落实情况月报 (第1版)`.
pub fn title(report: &MonthlyReportIssued, scope: &ReportScope) -> String {
    let (year, month) = report.month.split_once('-').unwrap_or((&report.month, ""));
    let month = month.trim_start_matches('0');
    format!(
        "{} {year}年{month}月 安全生产工作落实情况月报（第{}版）",
        scope_name(scope),
        report.version
    )
}

fn number(value: Option<f64>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn line_cells(line: &ReportLine) -> [String; 9] {
    [
        line.code.clone(),
        line.name_zh.clone(),
        number(line.value),
        line.numerator.to_string(),
        line.denominator.to_string(),
        number(line.previous_value),
        number(line.month_over_month),
        number(line.year_ago_value),
        number(line.year_over_year),
    ]
}

/// The CSV: the metrics table (header, one line per metric), a blank line, then the colour
/// distribution (`颜色,企业数`).
pub fn csv(app: &AppState, report: &MonthlyReportIssued, scope: &ReportScope) -> String {
    let mut out = String::from("\u{feff}");
    let mut push = |cells: &[String]| {
        let line: Vec<String> = cells.iter().map(|cell| csv_field(cell)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    };
    push(&COLUMNS.map(str::to_owned));
    for line in report_lines(app, report, scope) {
        push(&line_cells(&line));
    }
    push(&[]);
    push(&["颜色".to_owned(), "企业数".to_owned()]);
    for (name, count) in colours(scope) {
        push(&[name.to_owned(), count.to_string()]);
    }
    out
}

fn colours(scope: &ReportScope) -> [(&'static str, u32); 4] {
    [
        ("红", scope.colours.red),
        ("橙", scope.colours.orange),
        ("黄", scope.colours.yellow),
        ("蓝", scope.colours.blue),
    ]
}

/// The XLSX workbook: sheet `指标` (a title row, the header, one row per metric; numbers as
/// numbers), `排名` (each headline metric's towns) and `颜色分布`.
pub fn xlsx(app: &AppState, report: &MonthlyReportIssued, scope: &ReportScope) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let metrics = workbook.add_worksheet();
    metrics.set_name("指标")?;
    metrics.write_string_with_format(0, 0, title(report, scope), &bold)?;
    for (column, name) in (0u16..).zip(COLUMNS) {
        metrics.write_string_with_format(1, column, name, &bold)?;
    }
    for (row, line) in (2u32..).zip(report_lines(app, report, scope)) {
        metrics.write_string(row, 0, &line.code)?;
        metrics.write_string(row, 1, &line.name_zh)?;
        #[allow(clippy::cast_precision_loss, reason = "tallies are far below 2^52")]
        let values = [
            line.value,
            Some(line.numerator as f64),
            Some(line.denominator as f64),
            line.previous_value,
            line.month_over_month,
            line.year_ago_value,
            line.year_over_year,
        ];
        for (column, value) in (2u16..).zip(values) {
            if let Some(value) = value {
                metrics.write_number(row, column, value)?;
            }
        }
    }
    let rankings = workbook.add_worksheet();
    rankings.set_name("排名")?;
    for (column, name) in (0u16..).zip(["指标编号", "名次", "镇（街道）", "数值"]) {
        rankings.write_string_with_format(0, column, name, &bold)?;
    }
    let mut row = 1u32;
    for ranking in &report.rankings {
        for town in &ranking.towns {
            rankings.write_string(row, 0, &ranking.code)?;
            if let Some(rank) = town.rank {
                rankings.write_number(row, 1, rank)?;
            }
            rankings.write_string(row, 2, &town.town)?;
            if let Some(value) = town.value {
                rankings.write_number(row, 3, value)?;
            }
            row = row.saturating_add(1);
        }
    }
    let colour_sheet = workbook.add_worksheet();
    colour_sheet.set_name("颜色分布")?;
    colour_sheet.write_string_with_format(0, 0, "颜色", &bold)?;
    colour_sheet.write_string_with_format(0, 1, "企业数", &bold)?;
    for (row, (name, count)) in (1u32..).zip(colours(scope)) {
        colour_sheet.write_string(row, 0, name)?;
        colour_sheet.write_number(row, 1, count)?;
    }
    workbook.save_to_buffer()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// An instant as officials read it: local time in the rule set's zone, to the minute.
fn local(app: &AppState, instant: anquan_domain::Instant) -> String {
    instant
        .with_timezone(&app.rules.time_zone)
        .format("%Y-%m-%d %H:%M (UTC%:z)")
        .to_string()
}

const PRINT_CSS: &str = "@page { size: A4 landscape; margin: 12mm; }
body { font-family: 'Noto Sans CJK SC', 'Source Han Sans SC', 'Microsoft YaHei', sans-serif; font-size: 10pt; color: #000; }
h1 { font-size: 15pt; margin: 0 0 4pt; }
h2 { font-size: 12pt; margin: 12pt 0 4pt; break-after: avoid; }
p.meta { margin: 0 0 8pt; color: #333; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 0.5pt solid #666; padding: 2pt 4pt; }
th { background: #eee; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
section { break-inside: avoid; }
@media screen { body { max-width: 1100px; margin: 16px auto; } }";

/// The printable page: title, the document's facts, the metrics table, the colour distribution
/// and the rankings. No script; the style is inline, so a saved page prints the same.
pub fn html(app: &AppState, report: &MonthlyReportIssued, scope: &ReportScope) -> String {
    let title = escape(&title(report, scope));
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>{PRINT_CSS}</style></head><body>\n<h1>{title}</h1>\n\
         <p class=\"meta\">统计时点：{at}（月末，不含）　生成时间：{issued}　规则集：{rule_set}（{digest}）{reason}</p>\n",
        at = local(app, report.at),
        issued = local(app, report.issued_at),
        rule_set = escape(&report.rule_set),
        digest = escape(report.rule_set_digest.get(..16).unwrap_or(&report.rule_set_digest)),
        reason = report
            .reason
            .as_deref()
            .map(|reason| format!("　更正理由：{}", escape(reason)))
            .unwrap_or_default(),
    );
    page.push_str("<h2>指标</h2>\n<table id=\"metrics\"><thead><tr>");
    for name in COLUMNS {
        let _ = write!(page, "<th>{name}</th>");
    }
    page.push_str("</tr></thead><tbody>\n");
    for line in report_lines(app, report, scope) {
        let cells = line_cells(&line);
        let _ = write!(page, "<tr data-code=\"{}\">", escape(&line.code));
        for (index, cell) in cells.iter().enumerate() {
            let class = if index >= 2 { " class=\"number\"" } else { "" };
            let _ = write!(page, "<td{class}>{}</td>", escape(cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table>\n<section><h2>风险颜色分布</h2>\n<table id=\"colours\"><thead><tr><th>颜色</th><th>企业数</th></tr></thead><tbody>");
    for (name, count) in colours(scope) {
        let _ = write!(page, "<tr><td>{name}</td><td class=\"number\">{count}</td></tr>");
    }
    page.push_str("</tbody></table></section>\n<section><h2>镇（街道）排名</h2>\n<table id=\"rankings\"><thead><tr><th>指标编号</th><th>名次</th><th>镇（街道）</th><th>数值</th></tr></thead><tbody>");
    for ranking in &report.rankings {
        for town in &ranking.towns {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"number\">{}</td><td>{}</td><td class=\"number\">{}</td></tr>",
                escape(&ranking.code),
                town.rank.map(|rank| rank.to_string()).unwrap_or_default(),
                escape(&town.town),
                number(town.value),
            );
        }
    }
    page.push_str("</tbody></table></section>\n</body></html>\n");
    page
}

/// The annual assessment as CSV: one line per town the caller may see (`镇（街道）,得分,等级`, then
/// each scored metric's value and points).
pub fn assessment_csv(assessment: &AnnualAssessmentIssued, towns: &[&TownAssessment]) -> String {
    let mut out = String::from("\u{feff}");
    let mut header = vec!["镇（街道）".to_owned(), "得分".to_owned(), "等级".to_owned()];
    if let Some(first) = towns.first() {
        for item in &first.items {
            header.push(format!("{}数值", item.metric));
            header.push(format!("{}得分（权重{}）", item.metric, item.weight));
        }
    }
    let mut push = |cells: &[String]| {
        let line: Vec<String> = cells.iter().map(|cell| csv_field(cell)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    };
    push(&[format!(
        "{}年度安全生产责任制考核（第{}版）",
        assessment.year, assessment.version
    )]);
    push(&header);
    for town in towns {
        let mut cells = vec![town.town.clone(), town.score.to_string(), town.grade.clone()];
        for item in &town.items {
            cells.push(number(item.value));
            cells.push(item.points.to_string());
        }
        push(&cells);
    }
    out
}
