//! Enterprise profiles and the conditions over them that decide which rules apply.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A yes/no fact about an enterprise that decides which indicators apply (domain.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileFlag {
    /// Above designated size (规上).
    AboveDesignatedSize,
    /// Uses hazardous chemicals (HC).
    HazardousChemicals,
    /// Has combustible-dust explosion risk (粉尘涉爆).
    DustExplosion,
    /// Has confined-space work (有限空间).
    ConfinedSpace,
    /// Has spray painting (喷涂作业).
    SprayPainting,
    /// Uses ammonia refrigeration (涉氨制冷).
    AmmoniaRefrigeration,
    /// Handles molten metal (金属冶炼 / 高温熔融金属).
    MoltenMetal,
    /// Runs special equipment (特种设备): forklifts, cranes, boilers, pressure vessels.
    SpecialEquipment,
    /// Employs special operators (特种作业人员).
    SpecialOperators,
    /// Has occupational-hazard factors (OH).
    OccupationalHazards,
    /// Contracts out work or leases out premises (CT).
    ContractsOrLeases,
    /// In one of the eight high-risk industries of the liability-insurance rules (HR).
    HighRiskIndustry,
    /// In the industries where safety-cost extraction is mandatory (财企〔2012〕16号).
    SafetyCostMandatory,
    /// A crowded place (人员密集场所): half-yearly drills.
    CrowdedPlace,
}

/// The facts about an enterprise that rules are conditioned on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseProfile {
    pub staff_count: u32,
    /// 主营业务收入 in units of 10,000 yuan (万元).
    pub annual_revenue_10k_yuan: u64,
    pub flags: BTreeSet<ProfileFlag>,
}

impl EnterpriseProfile {
    /// Tells whether the profile has a flag.
    pub fn has(&self, flag: ProfileFlag) -> bool {
        self.flags.contains(&flag)
    }
}

/// A condition over an enterprise profile, written in rule-set TOML as
/// `"always"`, `{ flag = "hazardous_chemicals" }`, `{ class = "key_supervised" }`,
/// `{ any_of = [...] }`, `{ all_of = [...] }`, `{ not = ... }`, `{ staff_at_least = 300 }` or
/// `{ revenue_10k_yuan_at_least = 500 }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    #[default]
    Always,
    Never,
    Flag(ProfileFlag),
    Class(String),
    AnyOf(Vec<Condition>),
    AllOf(Vec<Condition>),
    Not(Box<Condition>),
    StaffAtLeast(u32),
    #[serde(rename = "revenue_10k_yuan_at_least")]
    RevenueAtLeast10kYuan(u64),
}

impl Condition {
    /// Evaluates the condition; `class` resolves a class name to its definition.
    pub fn holds<'c>(&self, profile: &EnterpriseProfile, class: &dyn Fn(&str) -> Option<&'c Condition>) -> bool {
        match self {
            Condition::Always => true,
            Condition::Never => false,
            Condition::Flag(flag) => profile.has(*flag),
            // Rule sets are checked at load: classes exist and use no classes themselves,
            // so this recursion is one level deep.
            Condition::Class(name) => class(name).is_some_and(|definition| definition.holds(profile, class)),
            Condition::AnyOf(conditions) => conditions.iter().any(|c| c.holds(profile, class)),
            Condition::AllOf(conditions) => conditions.iter().all(|c| c.holds(profile, class)),
            Condition::Not(condition) => !condition.holds(profile, class),
            Condition::StaffAtLeast(count) => profile.staff_count >= *count,
            Condition::RevenueAtLeast10kYuan(amount) => profile.annual_revenue_10k_yuan >= *amount,
        }
    }

    pub(crate) fn refers_to_class(&self) -> bool {
        self.unknown_class(&|_| false).is_some()
    }

    pub(crate) fn unknown_class(&self, known: &dyn Fn(&str) -> bool) -> Option<String> {
        match self {
            Condition::Class(name) if !known(name) => Some(name.clone()),
            Condition::AnyOf(conditions) | Condition::AllOf(conditions) => {
                conditions.iter().find_map(|c| c.unknown_class(known))
            }
            Condition::Not(condition) => condition.unknown_class(known),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_from_rule_set_toml() {
        #[derive(Deserialize)]
        struct Holder {
            c: Condition,
        }
        let parsed: Holder = toml::from_str(
            r#"c = { any_of = [{ flag = "hazardous_chemicals" }, { staff_at_least = 300 }, "always"] }"#,
        )
        .unwrap();
        assert_eq!(
            parsed.c,
            Condition::AnyOf(vec![
                Condition::Flag(ProfileFlag::HazardousChemicals),
                Condition::StaffAtLeast(300),
                Condition::Always
            ])
        );
    }

    #[test]
    fn a_class_resolves_through_its_definition() {
        let key = Condition::AnyOf(vec![Condition::Flag(ProfileFlag::DustExplosion)]);
        let lookup = |name: &str| (name == "key").then_some(&key);
        let dusty = EnterpriseProfile {
            flags: [ProfileFlag::DustExplosion].into(),
            ..Default::default()
        };
        assert!(Condition::Class("key".into()).holds(&dusty, &lookup));
        assert!(!Condition::Class("key".into()).holds(&EnterpriseProfile::default(), &lookup));
    }
}
