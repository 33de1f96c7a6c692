//! Supervision-gate rules as data (`supervision.toml`): rectification deadlines, the
//! major-hazard catalogues with the dates they are in force, the veto, the four-colour risk
//! rules and the supervision cadence by colour.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::Condition;

/// Everything `supervision.toml` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionRules {
    pub deadlines: DeadlineRules,
    pub major_hazard_catalogues: Vec<MajorHazardCatalogue>,
    pub veto: VetoRules,
    pub risk: RiskRules,
    /// How often enterprises of each colour get an online check and an on-site inspection.
    pub cadence: BTreeMap<RiskColour, SupervisionCadence>,
    /// The escalation path (网上检查 → 上门服务/督查辅导 → 降低诚信等级 + 列入年度执法计划 →
    /// 联合/委托/交办/派驻执法): the step for an enterprise by its colour and how many of the last
    /// quarter-ends it was red.
    pub escalation: Vec<EscalationStep>,
    /// Which hazard sources count toward the colour and the veto, and how self-reported
    /// hazards are closed and spot-checked (issue 21). Absent: every source counts and only
    /// an inspector closes a hazard, as before.
    #[serde(default)]
    pub hazard_sources: HazardSourceRules,
    /// Listed supervision of major hazards (挂牌督办): the review period and the listing's
    /// effect on the veto and the colour. Absent: a 10-day review and no effect beyond the
    /// hazard's own.
    #[serde(default)]
    pub listed_supervision: ListedSupervisionRules,
}

/// Listed supervision of major hazards (`[listed_supervision]` in `supervision.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedSupervisionRules {
    /// Days the city has to review on site after the town applies to lift a listing (复产申请);
    /// a lift request older than this without a decision is overdue in the town's list.
    pub review_days: u32,
    /// Whether a listed hazard counts as an open major hazard (for the veto `open_major_hazard`
    /// and the colour condition `open_major_hazard`) from its listing until the city lifts it,
    /// even once its rectification is verified and whatever its source.
    pub counts_as_open_major_until_lifted: bool,
}

impl Default for ListedSupervisionRules {
    fn default() -> Self {
        ListedSupervisionRules {
            review_days: 10,
            counts_as_open_major_until_lifted: false,
        }
    }
}

/// Where a hazard was found, as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardSourceKind {
    /// 政府检查.
    GovernmentInspection,
    /// 企业自查.
    SelfInspection,
    /// 中介服务.
    AgencyService,
}

impl HazardSourceKind {
    /// Every source, in a stable order.
    pub const ALL: [HazardSourceKind; 3] = [
        HazardSourceKind::GovernmentInspection,
        HazardSourceKind::SelfInspection,
        HazardSourceKind::AgencyService,
    ];
}

/// How the sources of hazards are treated (`[hazard_sources]` in `supervision.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HazardSourceRules {
    /// Sources whose hazards the colour rules (红橙黄) look at while they are known.
    pub colour: BTreeSet<HazardSourceKind>,
    /// Sources whose hazards the colour rules look at only once they are overdue (a hazard the
    /// enterprise reported and then left past its deadline).
    #[serde(default)]
    pub colour_once_overdue: BTreeSet<HazardSourceKind>,
    /// Sources whose hazards the veto (否决项: an open major hazard, an overdue hazard) looks at.
    pub veto: BTreeSet<HazardSourceKind>,
    /// Sources whose general hazards the enterprise closes itself, by submitting a
    /// rectification with at least one photo as evidence; no inspector accepts it.
    #[serde(default)]
    pub self_closing: BTreeSet<HazardSourceKind>,
    /// Percent (0 to 100) of self-closed hazards drawn for an inspector's spot check (抽查):
    /// a hazard is drawn when the first eight bytes of SHA-256 over its id and the instant its
    /// rectification was recorded, read as a big-endian number modulo 100, are below this.
    #[serde(default)]
    pub spot_check_percent: u32,
}

impl Default for HazardSourceRules {
    fn default() -> Self {
        HazardSourceRules {
            colour: HazardSourceKind::ALL.into_iter().collect(),
            colour_once_overdue: BTreeSet::new(),
            veto: HazardSourceKind::ALL.into_iter().collect(),
            self_closing: BTreeSet::new(),
            spot_check_percent: 0,
        }
    }
}

/// Default rectification deadlines, in days after the local day the hazard was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineRules {
    /// For general hazards, by severity; 0 means by the end of the day found (当场整改).
    pub general: BTreeMap<Severity, u32>,
    /// For major hazards (set by the remediation plan; this is the default).
    pub major_days: u32,
}

/// How serious a general hazard is, which sets its default deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    OnTheSpot,
    Minor,
    Moderate,
    Serious,
}

/// One version of a major-hazard judgement standard (重大事故隐患判定标准), with the document it
/// comes from. Catalogues of one scope replace each other by date; catalogues of different
/// scopes (industry and trade, hazardous chemicals) are in force side by side, and an inspector
/// names the catalogue and item a hazard meets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MajorHazardCatalogue {
    pub code: String,
    pub title: String,
    /// The document: issuer and number (文号), e.g. `应急管理部令第10号`.
    pub document: String,
    /// Which enterprises the standard is written for.
    pub scope: CatalogueScope,
    /// First day (local) the catalogue applies to a hazard found on that day.
    pub in_force_from: NaiveDate,
    /// First day it no longer applies (the next catalogue's first day), if replaced.
    pub in_force_until: Option<NaiveDate>,
    /// Where the transcription was read, by key; items name their keys.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    pub items: Vec<CatalogueItem>,
    /// Items of the document not transcribed, with the reason: they cannot be cited, so an
    /// inspector records such a hazard with a free-text basis an official confirms.
    #[serde(default)]
    pub missing: Vec<MissingItems>,
}

/// Which enterprises a catalogue is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogueScope {
    /// 工贸行业 (冶金、有色、建材、机械、轻工、纺织、烟草、商贸).
    IndustryAndTrade,
    /// 化工和危险化学品生产经营单位.
    HazardousChemicals,
}

/// Which part of a standard an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogueCategory {
    /// 管理类: applies to every enterprise of the scope.
    Management,
    /// 行业类: applies to one industry.
    Industry,
    /// 专项类: applies to every enterprise with that kind of site or process (dust, ammonia,
    /// confined spaces).
    Special,
    /// A standard without parts (the hazardous-chemicals one).
    General,
}

/// One criterion of a catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueItem {
    pub code: String,
    pub category: CatalogueCategory,
    /// The industry or field the item is written for (e.g. `纺织`, `存在粉尘爆炸危险的`).
    pub industry: String,
    /// Where in the document (e.g. `第九条第（一）项`, `二、（一）1.`).
    pub article: String,
    pub text: String,
    /// Keys of the catalogue's `sources` the text was read from.
    pub source: Vec<String>,
}

/// Items of a document that the catalogue does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingItems {
    /// Where in the document (e.g. `第九条（纺织企业）`).
    pub article: String,
    pub industry: String,
    /// How many items are missing, when known.
    #[serde(default)]
    pub count: Option<u32>,
    pub reason: String,
}

/// What overrides the 21 indicators (否决项).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VetoRules {
    /// A government-found hazard past its deadline and not closed.
    pub overdue_government_hazard: bool,
    /// Any open major hazard.
    pub open_major_hazard: bool,
    /// A fatal accident within this many days (0: no such veto).
    pub fatal_accident_days: u32,
}

/// The four colours (红橙黄蓝).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskColour {
    Red,
    Orange,
    Yellow,
    Blue,
}

impl RiskColour {
    /// Returns the colour's stable name.
    pub fn name(self) -> &'static str {
        match self {
            RiskColour::Red => "red",
            RiskColour::Orange => "orange",
            RiskColour::Yellow => "yellow",
            RiskColour::Blue => "blue",
        }
    }
}

/// The colour rules: the first colour (red, then orange, then yellow) with a matching rule
/// wins; blue otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRules {
    pub red: Vec<RiskRule>,
    pub orange: Vec<RiskRule>,
    pub yellow: Vec<RiskRule>,
}

/// A named colour rule, so an enterprise's colour can say which rule decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    pub name: String,
    pub when: RiskCondition,
}

/// A condition over an enterprise's facts at an instant, written in TOML as e.g.
/// `"open_major_hazard"`, `{ government_hazard_overdue_days_over = 30 }`,
/// `{ compliance_percent_below = 70 }` or `{ all_of = [...] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RiskCondition {
    /// An open major hazard (重大事故隐患).
    OpenMajorHazard,
    /// Any open hazard, overdue or not.
    OpenHazard,
    /// Any hazard past its deadline and not closed.
    OverdueHazard,
    /// A government-found hazard overdue by more than this many days.
    GovernmentHazardOverdueDaysOver(u32),
    /// Applicable indicators implemented below this percentage.
    CompliancePercentBelow(u32),
    /// Main responsibility not implemented now and at each of the last N local month ends.
    ResponsibilityNotImplementedMonths(u32),
    /// A fatal accident within this many days.
    FatalAccidentWithinDays(u32),
    /// At least this many hazards found in the last government inspection.
    HazardsInLastGovernmentInspectionAtLeast(u32),
    /// A condition on the enterprise profile (flags, classes, staff, revenue).
    Profile(Condition),
    AnyOf(Vec<RiskCondition>),
    AllOf(Vec<RiskCondition>),
    Not(Box<RiskCondition>),
}

/// How often an enterprise of one colour is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionCadence {
    /// Months between online checks (网上检查); none: no scheduled online check.
    pub online_check_months: Option<u32>,
    /// Months between on-site inspections; none: only by random selection (双随机抽查).
    pub on_site_months: Option<u32>,
    /// Put on the annual enforcement plan (年度执法计划).
    #[serde(default)]
    pub enforcement_plan: bool,
}

/// One step of the escalation path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// The colours this step is for.
    pub colours: Vec<RiskColour>,
    /// The step applies when the enterprise was red at least this many of the last four
    /// local quarter ends (repeat offenders).
    #[serde(default)]
    pub red_quarters_at_least: u32,
}

impl RiskCondition {
    /// Returns every profile condition inside, to check the classes they name.
    pub fn profile_conditions(&self) -> Vec<&Condition> {
        match self {
            RiskCondition::Profile(condition) => vec![condition],
            RiskCondition::AnyOf(conditions) | RiskCondition::AllOf(conditions) => {
                conditions.iter().flat_map(RiskCondition::profile_conditions).collect()
            }
            RiskCondition::Not(condition) => condition.profile_conditions(),
            _ => Vec::new(),
        }
    }
}

impl MajorHazardCatalogue {
    /// Tells whether the catalogue applies to a hazard found on a local date.
    pub fn in_force_on(&self, date: NaiveDate) -> bool {
        self.in_force_from <= date && self.in_force_until.is_none_or(|until| date < until)
    }

    /// Returns the item with a code.
    pub fn item(&self, code: &str) -> Option<&CatalogueItem> {
        self.items.iter().find(|item| item.code == code)
    }

    fn check(&self) -> Result<(), String> {
        let blank = |value: &str| value.trim().is_empty();
        if blank(&self.code) || blank(&self.title) || blank(&self.document) {
            return Err(format!(
                "catalogue {:?} needs a code, a title and a document",
                self.code
            ));
        }
        let mut codes: Vec<&str> = self.items.iter().map(|item| item.code.as_str()).collect();
        codes.sort_unstable();
        if codes.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(format!("catalogue {} lists an item code twice", self.code));
        }
        for item in &self.items {
            if blank(&item.code) || blank(&item.text) || blank(&item.industry) || blank(&item.article) {
                return Err(format!(
                    "catalogue {} item {:?} needs a code, a text, an industry and an article",
                    self.code, item.code
                ));
            }
            if item.source.is_empty() {
                return Err(format!("catalogue {} item {} names no source", self.code, item.code));
            }
            if let Some(unknown) = item.source.iter().find(|key| !self.sources.contains_key(*key)) {
                return Err(format!(
                    "catalogue {} item {} names the unknown source {unknown}",
                    self.code, item.code
                ));
            }
        }
        for missing in &self.missing {
            if blank(&missing.article) || blank(&missing.reason) {
                return Err(format!(
                    "catalogue {}: a missing part needs its article and the reason",
                    self.code
                ));
            }
        }
        Ok(())
    }
}

impl SupervisionRules {
    /// Returns the catalogues in force on a local date (at most one per scope).
    pub fn catalogues_in_force(&self, date: NaiveDate) -> impl Iterator<Item = &MajorHazardCatalogue> {
        self.major_hazard_catalogues
            .iter()
            .filter(move |catalogue| catalogue.in_force_on(date))
    }

    /// Checks the catalogues of one scope do not overlap and every item is citable: a unique
    /// code, a text, an article and known sources.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut codes: Vec<&str> = self
            .major_hazard_catalogues
            .iter()
            .map(|catalogue| catalogue.code.as_str())
            .collect();
        codes.sort_unstable();
        if codes.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err("two major-hazard catalogues share a code".to_owned());
        }
        for (index, catalogue) in self.major_hazard_catalogues.iter().enumerate() {
            if catalogue
                .in_force_until
                .is_some_and(|until| until <= catalogue.in_force_from)
            {
                return Err(format!("catalogue {} ends before it starts", catalogue.code));
            }
            for other in &self.major_hazard_catalogues[index + 1..] {
                let overlaps = catalogue.in_force_until.is_none_or(|until| other.in_force_from < until)
                    && other.in_force_until.is_none_or(|until| catalogue.in_force_from < until);
                if overlaps && other.scope == catalogue.scope {
                    return Err(format!(
                        "catalogues {} and {} of one scope are in force at the same time",
                        catalogue.code, other.code
                    ));
                }
            }
            catalogue.check()?;
        }
        for colour in [
            RiskColour::Red,
            RiskColour::Orange,
            RiskColour::Yellow,
            RiskColour::Blue,
        ] {
            if !self.cadence.contains_key(&colour) {
                return Err(format!("no supervision cadence for {}", colour.name()));
            }
        }
        if self.listed_supervision.review_days == 0 || self.listed_supervision.review_days > 366 {
            return Err("listed_supervision.review_days is not between 1 and 366".to_owned());
        }
        if self.hazard_sources.spot_check_percent > 100 {
            return Err("hazard_sources.spot_check_percent is above 100".to_owned());
        }
        if self
            .hazard_sources
            .self_closing
            .contains(&HazardSourceKind::GovernmentInspection)
        {
            return Err(
                "hazards found by government inspections are closed by an inspector, never by the enterprise"
                    .to_owned(),
            );
        }
        Ok(())
    }
}
