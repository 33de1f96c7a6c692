//! The article's five headline rates (domain.md §5), computed from folded aggregates with the
//! domain's status engine, so the generator can report them and a test can recompute them from
//! the log alone.
//!
//! Definitions used (domain.md §5, at the instant `at`, the end of the last generated year; by
//! default the history has two years and enterprises join in the first, so at `at` their annual
//! duties are due and can fail: nothing is 未到期 there, and B02 tests the annual records too):
//! - B02 企业主体落实率: `compliance::evaluate(..).responsibility_implemented` / enterprises.
//! - D03 负责人、安管员培训率: enterprises whose training requirement
//!   (`R04.leader_certificates`, the certificates of the principal and the safety officers) is
//!   satisfied / enterprises.
//! - G02 应急演练完成率: enterprises with an approved drill record (`R10.drill`) for every period
//!   of their drill cadence in the span the metric covers (completed periods only, and not
//!   ended before they registered) / enterprises the drill requirement applies to: the metric
//!   engine's `cadence_met_in` over G02's `metric_span`, the one `headlineRates` uses.
//! - H01 社会化服务覆盖率: enterprises with an agency contract in force / enterprises.
//! - H02 500万以上企业服务覆盖率: the same among enterprises with revenue of at least 5 M yuan.

use std::collections::BTreeSet;

use anquan_domain::agency::AgencyState;
use anquan_domain::compliance::{self, RequirementState};
use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::metrics::{Headline, cadence_met_in, metric_span};
use anquan_domain::rules::RuleSet;
use anquan_domain::{EnterpriseId, Instant};

/// The requirement behind D03.
pub const TRAINING_REQUIREMENT: &str = "R04.leader_certificates";
/// The requirement behind G02.
pub const DRILL_REQUIREMENT: &str = "R10.drill";
/// The class behind H02 (500万以上).
pub const REVENUE_CLASS: &str = "revenue_over_5m";

/// What one enterprise contributes to the rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnterpriseFacts {
    pub registered: bool,
    pub responsibility_implemented: bool,
    pub trained: bool,
    pub drill_applies: bool,
    pub drills_done: bool,
    pub revenue_over_5m: bool,
}

/// Decides one enterprise's facts at `at`.
pub fn enterprise_facts(file: &EnterpriseFile, rules: &RuleSet, at: Instant) -> EnterpriseFacts {
    let Some(report) = compliance::evaluate(file, rules, at) else {
        return EnterpriseFacts::default();
    };
    let Some(profile) = file.profile_at(at) else {
        return EnterpriseFacts::default();
    };
    let trained = report
        .indicators
        .iter()
        .flat_map(|indicator| &indicator.requirements)
        .any(|requirement| {
            requirement.code.as_str() == TRAINING_REQUIREMENT && requirement.state == RequirementState::Satisfied
        });
    let revenue_over_5m = rules
        .classes
        .get(REVENUE_CLASS)
        .is_some_and(|condition| rules.holds(condition, profile));
    let mut facts = EnterpriseFacts {
        registered: true,
        responsibility_implemented: report.responsibility_implemented,
        trained,
        drill_applies: false,
        drills_done: false,
        revenue_over_5m,
    };
    // G02 is the metric engine's own definition (`cadence_met_in` over the span G02 covers),
    // so the generator reports what `headlineRates` shows for the same instant.
    let Some(code) = anquan_domain::RequirementCode::parse(DRILL_REQUIREMENT).ok() else {
        return facts;
    };
    let Some((_, g02)) = rules.metrics.headline(Headline::EmergencyDrillCompletionRate) else {
        return facts;
    };
    if let Some(met) = cadence_met_in(file, rules, &code, &metric_span(g02, at, rules), at) {
        facts.drill_applies = true;
        facts.drills_done = met;
    }
    facts
}

/// The enterprises with a contract in force at `at` in one agency's stream.
pub fn covered_enterprises(agency: &AgencyState, at: Instant, into: &mut BTreeSet<EnterpriseId>) {
    for contract in agency.contracts.values() {
        let in_force = contract.valid_from <= at
            && at < contract.valid_until
            && contract.terminated_at.is_none_or(|terminated| terminated > at);
        if in_force {
            into.insert(contract.enterprise_id);
        }
    }
}

/// Counts behind the five rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateCounts {
    pub enterprises: u64,
    pub responsibility_implemented: u64,
    pub trained: u64,
    pub drill_applicable: u64,
    pub drills_done: u64,
    pub covered: u64,
    pub over_5m: u64,
    pub over_5m_covered: u64,
}

impl RateCounts {
    /// Adds one enterprise.
    pub fn add(&mut self, facts: &EnterpriseFacts, covered: bool) {
        if !facts.registered {
            return;
        }
        self.enterprises += 1;
        self.responsibility_implemented += u64::from(facts.responsibility_implemented);
        self.trained += u64::from(facts.trained);
        self.drill_applicable += u64::from(facts.drill_applies);
        self.drills_done += u64::from(facts.drill_applies && facts.drills_done);
        self.covered += u64::from(covered);
        self.over_5m += u64::from(facts.revenue_over_5m);
        self.over_5m_covered += u64::from(facts.revenue_over_5m && covered);
    }

    /// The five rates in percent.
    pub fn rates(&self) -> HeadlineRates {
        let percent = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 * 100.0 / d as f64 };
        HeadlineRates {
            b02: percent(self.responsibility_implemented, self.enterprises),
            d03: percent(self.trained, self.enterprises),
            g02: percent(self.drills_done, self.drill_applicable),
            h01: percent(self.covered, self.enterprises),
            h02: percent(self.over_5m_covered, self.over_5m),
        }
    }
}

/// The article's five rates, in percent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HeadlineRates {
    pub b02: f64,
    pub d03: f64,
    pub g02: f64,
    pub h01: f64,
    pub h02: f64,
}

impl HeadlineRates {
    /// The article's 2019 values (domain.md §5).
    pub const ARTICLE: HeadlineRates = HeadlineRates {
        b02: 89.1,
        d03: 92.5,
        g02: 85.2,
        h01: 80.5,
        h02: 93.6,
    };

    /// The rates as (code, value) pairs.
    pub fn pairs(&self) -> [(&'static str, f64); 5] {
        [
            ("B02", self.b02),
            ("D03", self.d03),
            ("G02", self.g02),
            ("H01", self.h01),
            ("H02", self.h02),
        ]
    }

    /// The largest distance from the article's values, in points.
    pub fn max_distance_from_article(&self) -> f64 {
        self.pairs()
            .iter()
            .zip(HeadlineRates::ARTICLE.pairs())
            .map(|((_, ours), (_, theirs))| (ours - theirs).abs())
            .fold(0.0, f64::max)
    }
}
