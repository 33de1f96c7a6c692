//! Rule sets as data: the indicators, their requirements, cadences, grace periods, validity
//! rules and applicability. Rule set files live under `projections/<version>/`; this module
//! parses and checks them but never reads a file itself.

mod condition;
pub mod log;
pub mod supervision;

use std::collections::{BTreeMap, BTreeSet};

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

pub use condition::{Condition, EnterpriseProfile, ProfileFlag};
pub use supervision::{RiskColour, RiskCondition, Severity, SupervisionRules};

use crate::credit::CreditRules;
use crate::ids::{IndicatorCode, RequirementCode};
use crate::period::Cadence;

/// The file names a rule set is made of, in `projections/<version>/`. Each gate adds its file.
pub const RULE_SET_FILES: [&str; 5] = [
    "ruleset.toml",
    "indicators.toml",
    "supervision.toml",
    "credit.toml",
    "metrics.toml",
];

/// The texts of a rule set's files, by file name.
pub type RuleSetFiles = BTreeMap<String, String>;

/// The files of rule set v1 as built into the binary (read at compile time from
/// `projections/v1/`), the default rule set and the one tests use.
pub fn builtin_v1_files() -> RuleSetFiles {
    [
        ("ruleset.toml", include_str!("../../../../projections/v1/ruleset.toml")),
        (
            "indicators.toml",
            include_str!("../../../../projections/v1/indicators.toml"),
        ),
        (
            "supervision.toml",
            include_str!("../../../../projections/v1/supervision.toml"),
        ),
        ("credit.toml", include_str!("../../../../projections/v1/credit.toml")),
        ("metrics.toml", include_str!("../../../../projections/v1/metrics.toml")),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_owned(), text.to_owned()))
    .collect()
}

/// Rule set v1 as built into the binary.
pub fn builtin_v1() -> Result<RuleSet, RuleSetError> {
    RuleSet::from_files(&builtin_v1_files())
}

/// A complete, checked rule set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSet {
    pub version: String,
    pub title: String,
    /// The offset of the local calendar periods are counted in (China: +08:00).
    #[serde(serialize_with = "serialize_offset")]
    pub time_zone: FixedOffset,
    pub status: StatusRules,
    /// Named enterprise classes (KEY, 3S2E, 500W...) that conditions can refer to.
    pub classes: BTreeMap<String, Condition>,
    pub indicators: Vec<Indicator>,
    /// Deadlines, major-hazard catalogues, veto, colours and cadences (`supervision.toml`).
    pub supervision: SupervisionRules,
    /// The agency credit model, fee band tolerance and agency deadlines (`credit.toml`).
    pub credit: CreditRules,
    /// The town dashboard's 78 metrics (`metrics.toml`).
    pub metrics: crate::metrics::MetricCatalogue,
}

/// Parameters of the status engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRules {
    /// A satisfied validity requirement is flagged "expiring soon" this many days before its end.
    pub expiring_soon_days: u32,
    /// Days after a period's end during which its record is still on time, unless a requirement
    /// says otherwise.
    pub default_grace_days: u32,
    /// How the enterprise-level "responsibility implemented" follows from the indicators.
    pub responsibility: ResponsibilityRule,
    /// How an indicator with nothing due yet (未到期) counts toward the responsibility flag and
    /// the risk colour's compliance share (`met` when a rule set does not say: the reading before
    /// the state existed).
    #[serde(default)]
    pub not_yet_due: NotYetDue,
}

/// How a tally treats an indicator or requirement with nothing due yet (未到期).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotYetDue {
    /// Counted as met: nothing that is due is missing.
    #[default]
    Met,
    /// Counted as not met: only evidence on file counts.
    Unmet,
    /// Left out of both the met count and the count judged.
    Excluded,
}

impl NotYetDue {
    /// `(met, judged)` for `met` met, `unmet` not met and `not_yet_due` not yet due items.
    pub fn tally(self, met: u32, unmet: u32, not_yet_due: u32) -> (u32, u32) {
        let judged = met.saturating_add(unmet);
        match self {
            NotYetDue::Met => (met.saturating_add(not_yet_due), judged.saturating_add(not_yet_due)),
            NotYetDue::Unmet => (met, judged.saturating_add(not_yet_due)),
            NotYetDue::Excluded => (met, judged),
        }
    }
}

/// How the enterprise-level responsibility flag (主体落实) is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponsibilityRule {
    /// Every applicable indicator implemented, and no veto.
    AllApplicable,
    /// At least this share (percent) of the applicable indicators implemented, and no veto.
    ShareOfApplicable { percent_min: u32 },
}

/// One safety-responsibility indicator (R01..R21).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    pub code: IndicatorCode,
    pub name_zh: String,
    pub name_en: String,
    #[serde(default)]
    pub applies_to: Condition,
    #[serde(default)]
    pub basis: String,
    pub requirements: Vec<Requirement>,
}

/// One item of an indicator: what a record must show, and for how long it counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub code: RequirementCode,
    pub name_zh: String,
    pub name_en: String,
    /// A requirement that is not mandatory is shown but does not decide the indicator.
    #[serde(default = "default_true")]
    pub mandatory: bool,
    #[serde(default)]
    pub applies_to: Condition,
    pub evidence: Evidence,
}

/// How approved records satisfy a requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Evidence {
    /// One approved record satisfies it for good (until a newer rule set says otherwise).
    Review,
    /// An approved record satisfies it from its `valid_from` until its `valid_until` (exclusive).
    Validity {
        /// The longest validity a record may claim, in days; longer claims are rejected.
        validity_days_max: Option<u32>,
    },
    /// A record is due for every period of the cadence, by the period's end plus the grace days.
    Periodic {
        /// The first rule whose condition holds gives the cadence; none holding means the
        /// requirement does not apply.
        cadence: Vec<CadenceRule>,
        grace_days: Option<u32>,
    },
}

/// A cadence, possibly only for enterprises matching a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CadenceRule {
    #[serde(default)]
    pub when: Condition,
    pub every: Cadence,
}

/// Why a rule set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    #[error("rule set file {file} is not valid: {message}")]
    Syntax { file: &'static str, message: String },
    #[error("rule set file {0} is missing")]
    MissingFile(&'static str),
    #[error("rule set time zone {0:?} is not an offset like +08:00")]
    TimeZone(String),
    #[error("rule set is inconsistent: {0}")]
    Inconsistent(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSetFile {
    version: String,
    title: String,
    time_zone: String,
    status: StatusRules,
    #[serde(default)]
    classes: BTreeMap<String, Condition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorsFile {
    indicators: Vec<Indicator>,
}

/// Parses one TOML file of the rule set.
fn parse_file<T: serde::de::DeserializeOwned>(files: &RuleSetFiles, name: &'static str) -> Result<T, RuleSetError> {
    let text = files.get(name).ok_or(RuleSetError::MissingFile(name))?;
    toml::from_str(text).map_err(|error| RuleSetError::Syntax {
        file: name,
        message: error.to_string(),
    })
}

fn default_true() -> bool {
    true
}

fn serialize_offset<S: serde::Serializer>(offset: &FixedOffset, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&offset.to_string())
}

impl RuleSet {
    /// Parses a rule set from the texts of its files (see [`RULE_SET_FILES`]) and checks it is
    /// consistent.
    pub fn from_files(files: &RuleSetFiles) -> Result<Self, RuleSetError> {
        let head: RuleSetFile = parse_file(files, "ruleset.toml")?;
        let body: IndicatorsFile = parse_file(files, "indicators.toml")?;
        let supervision: SupervisionRules = parse_file(files, "supervision.toml")?;
        let credit: CreditRules = parse_file(files, "credit.toml")?;
        let metrics = parse_file::<crate::metrics::MetricsFile>(files, "metrics.toml")?
            .into_catalogue()
            .map_err(|error| RuleSetError::Inconsistent(error.to_string()))?;
        let time_zone: FixedOffset = head
            .time_zone
            .parse()
            .map_err(|_| RuleSetError::TimeZone(head.time_zone.clone()))?;
        let rules = RuleSet {
            version: head.version,
            title: head.title,
            time_zone,
            status: head.status,
            classes: head.classes,
            indicators: body.indicators,
            supervision,
            credit,
            metrics,
        };
        rules.check()?;
        Ok(rules)
    }

    /// Finds an indicator by code.
    pub fn indicator(&self, code: &IndicatorCode) -> Option<&Indicator> {
        self.indicators.iter().find(|indicator| &indicator.code == code)
    }

    /// Finds a requirement by code, with its indicator.
    pub fn requirement(&self, code: &RequirementCode) -> Option<(&Indicator, &Requirement)> {
        let indicator = self.indicator(&code.indicator())?;
        let requirement = indicator
            .requirements
            .iter()
            .find(|requirement| &requirement.code == code)?;
        Some((indicator, requirement))
    }

    /// Evaluates a condition for a profile, resolving class names.
    pub fn holds(&self, condition: &Condition, profile: &EnterpriseProfile) -> bool {
        condition.holds(profile, &|name| self.classes.get(name))
    }

    /// Returns the cadence that applies to this profile, if the evidence is periodic and one
    /// of its rules holds.
    pub fn cadence_for(&self, evidence: &Evidence, profile: &EnterpriseProfile) -> Option<Cadence> {
        match evidence {
            Evidence::Periodic { cadence, .. } => cadence
                .iter()
                .find(|rule| self.holds(&rule.when, profile))
                .map(|rule| rule.every),
            Evidence::Review | Evidence::Validity { .. } => None,
        }
    }

    /// Returns the grace days of a periodic evidence.
    pub fn grace_days(&self, evidence: &Evidence) -> u32 {
        match evidence {
            Evidence::Periodic {
                grace_days: Some(days), ..
            } => *days,
            _ => self.status.default_grace_days,
        }
    }

    fn check(&self) -> Result<(), RuleSetError> {
        let fail = |message: String| Err(RuleSetError::Inconsistent(message));
        if self.version.is_empty() || !self.version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return fail(format!("version {:?} must be letters, digits and _", self.version));
        }
        if self.indicators.is_empty() {
            return fail("it has no indicators".into());
        }
        if let ResponsibilityRule::ShareOfApplicable { percent_min } = self.status.responsibility
            && percent_min > 100
        {
            return fail(format!("responsibility share {percent_min}% is above 100%"));
        }
        for (name, condition) in &self.classes {
            if condition.refers_to_class() {
                return fail(format!(
                    "class {name} refers to another class; classes must use flags only"
                ));
            }
        }
        self.check_supervision()?;
        self.credit
            .check()
            .map_err(|error| RuleSetError::Inconsistent(error.to_string()))?;
        let mut indicator_codes = BTreeSet::new();
        let mut requirement_codes = BTreeSet::new();
        for indicator in &self.indicators {
            if !indicator_codes.insert(indicator.code.clone()) {
                return fail(format!("indicator {} is defined twice", indicator.code));
            }
            if indicator.requirements.is_empty() {
                return fail(format!("indicator {} has no requirements", indicator.code));
            }
            self.check_classes(&indicator.applies_to, indicator.code.as_str())?;
            for requirement in &indicator.requirements {
                let code = requirement.code.as_str();
                if requirement.code.indicator() != indicator.code {
                    return fail(format!(
                        "requirement {code} is listed under indicator {}",
                        indicator.code
                    ));
                }
                if !requirement_codes.insert(requirement.code.clone()) {
                    return fail(format!("requirement {code} is defined twice"));
                }
                self.check_classes(&requirement.applies_to, code)?;
                if let Evidence::Periodic { cadence, .. } = &requirement.evidence {
                    if cadence.is_empty() {
                        return fail(format!("periodic requirement {code} has no cadence"));
                    }
                    for rule in cadence {
                        self.check_classes(&rule.when, code)?;
                    }
                }
            }
        }
        // After the indicators: metrics name indicators and requirements.
        self.check_metrics()
    }

    fn check_metrics(&self) -> Result<(), RuleSetError> {
        for (condition, owner) in self.metrics.conditions() {
            self.check_classes(condition, &owner)?;
        }
        let (indicators, requirements) = self.metrics.references();
        for (code, owner) in indicators {
            if self.indicator(code).is_none() {
                return Err(RuleSetError::Inconsistent(format!(
                    "metric {owner} names unknown indicator {code}"
                )));
            }
        }
        for (code, owner) in requirements {
            if self.requirement(code).is_none() {
                return Err(RuleSetError::Inconsistent(format!(
                    "metric {owner} names unknown requirement {code}"
                )));
            }
        }
        for metric in &self.metrics.metrics {
            if let crate::metrics::Measure::CadenceMet { requirement } = &metric.measure
                && !matches!(
                    self.requirement(requirement),
                    Some((
                        _,
                        Requirement {
                            evidence: Evidence::Periodic { .. },
                            ..
                        }
                    ))
                )
            {
                return Err(RuleSetError::Inconsistent(format!(
                    "metric {} keeps the cadence of {requirement}, which is not periodic",
                    metric.code
                )));
            }
        }
        Ok(())
    }

    fn check_supervision(&self) -> Result<(), RuleSetError> {
        self.supervision.check().map_err(RuleSetError::Inconsistent)?;
        let risk = &self.supervision.risk;
        for rule in risk.red.iter().chain(&risk.orange).chain(&risk.yellow) {
            for condition in rule.when.profile_conditions() {
                self.check_classes(condition, &rule.name)?;
            }
        }
        Ok(())
    }

    fn check_classes(&self, condition: &Condition, owner: &str) -> Result<(), RuleSetError> {
        match condition.unknown_class(&|name| self.classes.contains_key(name)) {
            Some(name) => Err(RuleSetError::Inconsistent(format!(
                "{owner} refers to unknown class {name}"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The repository's rule set v1, read at compile time so the domain tests run on it.
    pub(crate) fn rule_set_v1() -> RuleSet {
        builtin_v1().unwrap()
    }

    fn with_indicators(body: &str) -> Result<RuleSet, RuleSetError> {
        let mut files = builtin_v1_files();
        files.insert("indicators.toml".into(), body.into());
        RuleSet::from_files(&files)
    }

    #[test]
    fn rule_set_v1_has_21_indicators_and_parses() {
        let rules = rule_set_v1();
        assert_eq!(rules.version, "v1");
        assert_eq!(rules.indicators.len(), 21);
        assert_eq!(rules.time_zone.local_minus_utc(), 8 * 3600);
    }

    #[test]
    fn an_unknown_class_is_reported_with_its_owner() {
        let body = r#"
            [[indicators]]
            code = "R01"
            name_zh = "x"
            name_en = "x"
            applies_to = { class = "no_such_class" }
            [[indicators.requirements]]
            code = "R01.a"
            name_zh = "x"
            name_en = "x"
            evidence = { kind = "review" }
        "#;
        let error = with_indicators(body).unwrap_err();
        assert_eq!(
            error.to_string(),
            "rule set is inconsistent: R01 refers to unknown class no_such_class"
        );
    }

    #[test]
    fn a_requirement_under_the_wrong_indicator_is_rejected() {
        let body = r#"
            [[indicators]]
            code = "R01"
            name_zh = "x"
            name_en = "x"
            [[indicators.requirements]]
            code = "R02.a"
            name_zh = "x"
            name_en = "x"
            evidence = { kind = "review" }
        "#;
        assert!(matches!(with_indicators(body), Err(RuleSetError::Inconsistent(_))));
    }
}
