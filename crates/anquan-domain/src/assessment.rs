//! The annual town assessment (年度安全生产责任制考核): each town's score and grade for a
//! calendar year, scored from the December monthly report's frozen figures by rule-set data
//! (`[assessment]` in `metrics.toml`). Scoring is a pure function of the report and the rules;
//! the event records the result, the items and the report version it was scored from.

use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::metrics::{MetricCatalogue, Scope, Unit};
use crate::report::MonthlyReportIssued;

/// Every year's assessment lives on a stream named by this prefix and the year.
pub const ANNUAL_ASSESSMENT_STREAM_PREFIX: &str = "annual-assessment-";

/// The scoring rules: weighted percentage metrics adding up to 100 points, and grades by score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentRules {
    /// The scored metrics; their weights add up to 100.
    pub items: Vec<AssessmentRuleItem>,
    /// Grades from the best down; the first whose `min_score` the score reaches applies; the
    /// last has `min_score = 0`.
    pub grades: Vec<AssessmentGrade>,
}

/// One scored metric: `weight × value / 100` points (a value of none scores 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentRuleItem {
    pub metric: String,
    pub weight: u32,
}

/// A grade and the score it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentGrade {
    pub grade: String,
    pub min_score: u32,
}

impl AssessmentRules {
    /// Checks the rules against the catalogue: known town-scope percentage metrics, weights
    /// adding up to 100, grades from the best down ending at 0.
    pub fn check(&self, catalogue: &MetricCatalogue) -> Result<(), String> {
        for item in &self.items {
            let metric = catalogue
                .metrics
                .iter()
                .find(|metric| metric.code == item.metric)
                .ok_or_else(|| format!("assessment item {} is not a metric", item.metric))?;
            if metric.unit != Unit::Percent || metric.scope == Scope::City {
                return Err(format!("assessment item {} must be a town percentage", item.metric));
            }
        }
        if self.items.iter().map(|item| item.weight).sum::<u32>() != 100 {
            return Err("assessment weights must add up to 100".into());
        }
        let descending = self.grades.windows(2).all(|pair| match pair {
            [better, worse] => better.min_score > worse.min_score,
            _ => true,
        });
        if !descending || self.grades.last().is_none_or(|grade| grade.min_score != 0) {
            return Err("assessment grades must go from the best down and end at min_score = 0".into());
        }
        Ok(())
    }

    /// Scores every town of a December report.
    pub fn score(&self, report: &MonthlyReportIssued) -> Vec<TownAssessment> {
        report
            .scopes
            .iter()
            .filter_map(|scope| {
                let town = scope.town.clone()?;
                let items: Vec<AssessmentItem> = self
                    .items
                    .iter()
                    .map(|item| {
                        let value = scope
                            .figures
                            .iter()
                            .find(|figure| figure.code == item.metric)
                            .and_then(|figure| figure.value);
                        let points = value.map_or(0.0, |value| {
                            round1(f64::from(item.weight) * value.clamp(0.0, 100.0) / 100.0)
                        });
                        AssessmentItem {
                            metric: item.metric.clone(),
                            weight: item.weight,
                            value,
                            points,
                        }
                    })
                    .collect();
                let score = round1(items.iter().map(|item| item.points).sum());
                let grade = self
                    .grades
                    .iter()
                    .find(|grade| score >= f64::from(grade.min_score))
                    .map(|grade| grade.grade.clone())
                    .unwrap_or_default();
                Some(TownAssessment {
                    town,
                    score,
                    grade,
                    items,
                })
            })
            .collect()
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// One scored metric of a town.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessmentItem {
    pub metric: String,
    pub weight: u32,
    /// The December report's value (percent).
    pub value: Option<f64>,
    /// `weight × value / 100`, 1 decimal.
    pub points: f64,
}

/// A town's assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TownAssessment {
    pub town: String,
    /// 0 to 100, 1 decimal.
    pub score: f64,
    pub grade: String,
    pub items: Vec<AssessmentItem>,
}

/// A year's assessment of every town was issued (version 1 after December's report, a later
/// version with a reason when the city admin scores again, e.g. after a corrected report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnualAssessmentIssued {
    pub year: i32,
    pub version: u32,
    pub reason: Option<String>,
    /// The version of December's report it was scored from, and that report's instant.
    pub report_version: u32,
    pub at: Instant,
    pub issued_at: Instant,
    pub rule_set: String,
    pub rule_set_digest: String,
    pub towns: Vec<TownAssessment>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ColourCounts, ReportFigure, ReportScope};

    fn rules() -> AssessmentRules {
        AssessmentRules {
            items: vec![
                AssessmentRuleItem {
                    metric: "B02".into(),
                    weight: 60,
                },
                AssessmentRuleItem {
                    metric: "H01".into(),
                    weight: 40,
                },
            ],
            grades: ["优秀", "良好", "合格", "不合格"]
                .into_iter()
                .zip([90, 80, 60, 0])
                .map(|(grade, min_score)| AssessmentGrade {
                    grade: grade.into(),
                    min_score,
                })
                .collect(),
        }
    }

    fn figure(code: &str, value: Option<f64>) -> ReportFigure {
        ReportFigure {
            code: code.into(),
            numerator: 0,
            denominator: 0,
            value,
            previous_value: None,
            year_ago_value: None,
        }
    }

    #[test]
    fn a_town_scores_the_weighted_rates_and_gets_the_first_grade_it_reaches() {
        let scope = |town: Option<&str>, b02, h01| ReportScope {
            town: town.map(str::to_owned),
            figures: vec![figure("B02", b02), figure("H01", h01)],
            colours: ColourCounts::default(),
        };
        let report = MonthlyReportIssued {
            month: "2027-12".into(),
            version: 1,
            reason: None,
            at: crate::bounds::INSTANT_MIN,
            issued_at: crate::bounds::INSTANT_MIN,
            rule_set: "v1".into(),
            rule_set_digest: String::new(),
            scopes: vec![
                scope(None, Some(50.0), Some(50.0)),
                scope(Some("许村"), Some(100.0), Some(75.0)),
                scope(Some("长安"), Some(80.0), None),
            ],
            rankings: vec![],
        };
        let towns = rules().score(&report);
        assert_eq!(towns.len(), 2, "the city is not assessed");
        assert_eq!((towns[0].score, towns[0].grade.as_str()), (90.0, "优秀"));
        assert_eq!((towns[1].score, towns[1].grade.as_str()), (48.0, "不合格"));
    }

    #[test]
    fn the_built_in_rules_are_consistent() {
        let rules = crate::rules::builtin_v1().unwrap();
        let assessment = rules.metrics.assessment.as_ref().expect("v1 defines the assessment");
        assert_eq!(assessment.check(&rules.metrics), Ok(()));
    }
}
