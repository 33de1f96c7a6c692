//! Who acts: every command carries an actor, and every event records it.

use serde::{Deserialize, Serialize};

use crate::ids::{AgencyId, EnterpriseId, Town, UserId};

/// A role together with the scope it acts in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// The city emergency-management office: every town, every enterprise, the rules.
    CityAdmin,
    /// A town (镇/街道) officer: reviews and supervises the enterprises of one town.
    TownOfficer { town: Town },
    /// An enterprise's safety officer: its own cloud file only.
    Enterprise { enterprise_id: EnterpriseId },
    /// A city inspector: inspects and verifies rectifications in every town.
    CityInspector,
    /// A town inspector: inspects and verifies rectifications in one town.
    TownInspector { town: Town },
    /// A safety-service agency's staff: its own profile, staff, contracts and reports.
    Agency { agency_id: AgencyId },
    /// An auditor: reads every enterprise's history, verification and status as of any
    /// instant, city-wide or in one town, and writes nothing.
    Auditor {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        town: Option<Town>,
    },
    /// An analyst: reads statistics, metrics and rule sets city-wide, and writes nothing through
    /// the API (promotion stays with the city admin).
    Analyst,
}

impl Role {
    /// Returns the role's stable name, as used in tokens and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Role::CityAdmin => "city_admin",
            Role::TownOfficer { .. } => "town_officer",
            Role::Enterprise { .. } => "enterprise",
            Role::CityInspector => "city_inspector",
            Role::TownInspector { .. } => "town_inspector",
            Role::Agency { .. } => "agency",
            Role::Auditor { .. } => "auditor",
            Role::Analyst => "analyst",
        }
    }

    /// Returns the role's name as a person reads it, in Chinese.
    pub fn label(&self) -> &'static str {
        match self {
            Role::CityAdmin => "市级管理人员",
            Role::TownOfficer { .. } => "镇（街道）监管人员",
            Role::Enterprise { .. } => "企业用户",
            Role::CityInspector => "市级检查人员",
            Role::TownInspector { .. } => "镇（街道）检查人员",
            Role::Agency { .. } => "服务机构用户",
            Role::Auditor { .. } => "审计人员",
            Role::Analyst => "分析人员",
        }
    }

    /// Every role name, as tokens spell them.
    pub const NAMES: [&'static str; 8] = [
        "city_admin",
        "town_officer",
        "enterprise",
        "city_inspector",
        "town_inspector",
        "agency",
        "auditor",
        "analyst",
    ];

    /// Tells whether the role may issue commands at all: auditors and analysts read only, and
    /// every aggregate refuses them first (`FORBIDDEN`, before any other check).
    pub fn may_write(&self) -> bool {
        !matches!(self, Role::Auditor { .. } | Role::Analyst)
    }
}

/// The authenticated caller of a command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: UserId,
    #[serde(flatten)]
    pub role: Role,
}

impl Actor {
    /// Tells whether this actor may learn whether an enterprise is registered: those who may
    /// read every enterprise, and an enterprise about itself. Anyone else gets the same refusal
    /// for an unknown id as for an enterprise outside their scope, so ids cannot be probed.
    pub fn may_know_enterprise(&self, enterprise_id: EnterpriseId) -> bool {
        match &self.role {
            Role::CityAdmin | Role::CityInspector | Role::Auditor { town: None } => true,
            Role::Enterprise { enterprise_id: own } => *own == enterprise_id,
            Role::TownOfficer { .. }
            | Role::TownInspector { .. }
            | Role::Agency { .. }
            | Role::Auditor { town: Some(_) }
            | Role::Analyst => false,
        }
    }

    /// Tells whether this actor may see the file of an enterprise in `town`.
    pub fn may_read_enterprise(&self, enterprise_id: EnterpriseId, town: &Town) -> bool {
        match &self.role {
            Role::CityAdmin | Role::CityInspector | Role::Auditor { town: None } => true,
            Role::TownOfficer { town: own } | Role::TownInspector { town: own } | Role::Auditor { town: Some(own) } => {
                own == town
            }
            Role::Enterprise { enterprise_id: own } => *own == enterprise_id,
            Role::Agency { .. } | Role::Analyst => false,
        }
    }

    /// Tells whether this actor may inspect enterprises in `town` and verify their
    /// rectifications.
    pub fn may_inspect_town(&self, town: &Town) -> bool {
        match &self.role {
            Role::CityAdmin | Role::CityInspector => true,
            Role::TownInspector { town: own } => own == town,
            Role::TownOfficer { .. }
            | Role::Enterprise { .. }
            | Role::Agency { .. }
            | Role::Auditor { .. }
            | Role::Analyst => false,
        }
    }

    /// Tells whether this actor acts for the agency.
    pub fn may_act_for_agency(&self, agency_id: AgencyId) -> bool {
        match &self.role {
            Role::CityAdmin => true,
            Role::Agency { agency_id: own } => *own == agency_id,
            _ => false,
        }
    }

    /// Tells whether this actor may supervise (review, inspect) enterprises in `town`.
    pub fn may_supervise_town(&self, town: &Town) -> bool {
        match &self.role {
            Role::CityAdmin => true,
            Role::TownOfficer { town: own } => own == town,
            _ => false,
        }
    }

    /// Tells whether this actor may write the enterprise's own records (uploads).
    pub fn may_write_enterprise_file(&self, enterprise_id: EnterpriseId) -> bool {
        match &self.role {
            Role::CityAdmin => true,
            Role::Enterprise { enterprise_id: own } => *own == enterprise_id,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_serialises_flat_with_its_role() {
        let actor = Actor {
            user_id: UserId::parse("officer-1").unwrap(),
            role: Role::TownOfficer {
                town: Town::parse("许村").unwrap(),
            },
        };
        let json = serde_json::to_string(&actor).unwrap();
        assert_eq!(json, r#"{"user_id":"officer-1","role":"town_officer","town":"许村"}"#);
        assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), actor);
    }

    #[test]
    fn auditors_and_analysts_read_in_their_scope_and_write_nothing() {
        let town = Town::parse("许村").unwrap();
        let other = Town::parse("长安镇").unwrap();
        let enterprise = EnterpriseId::from_uuid(uuid::Uuid::nil());
        let actor = |role| Actor {
            user_id: UserId::parse("reader").unwrap(),
            role,
        };
        let city_auditor = actor(Role::Auditor { town: None });
        let town_auditor = actor(Role::Auditor {
            town: Some(town.clone()),
        });
        let analyst = actor(Role::Analyst);
        assert!(city_auditor.may_read_enterprise(enterprise, &other));
        assert!(city_auditor.may_know_enterprise(enterprise));
        assert!(town_auditor.may_read_enterprise(enterprise, &town));
        assert!(!town_auditor.may_read_enterprise(enterprise, &other));
        assert!(!town_auditor.may_know_enterprise(enterprise));
        assert!(!analyst.may_read_enterprise(enterprise, &town));
        for reader in [&city_auditor, &town_auditor, &analyst] {
            assert!(!reader.role.may_write());
            assert!(!reader.may_write_enterprise_file(enterprise));
            assert!(!reader.may_supervise_town(&town));
            assert!(!reader.may_inspect_town(&town));
        }
        let json = serde_json::to_string(&city_auditor).unwrap();
        assert_eq!(json, r#"{"user_id":"reader","role":"auditor"}"#);
        assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), city_auditor);
        let json = serde_json::to_string(&town_auditor).unwrap();
        assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), town_auditor);
    }
}
