//! Shared test support: rule set v1, actors, instants, and a given/when/then harness for the
//! enterprise aggregate.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: a broken fixture aborts the test"
)]

use anquan_domain::enterprise::{
    Coverage, DecisionContext, EnterpriseCommand, EnterpriseFile, EnterpriseRejection, FileRef, RegisterEnterprise,
    UploadDocument,
};
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag, RuleSet};
use anquan_domain::{
    Actor, DocumentId, EnterpriseId, Event, Instant, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId,
};

pub fn rules() -> RuleSet {
    anquan_domain::rules::builtin_v1().unwrap()
}

pub fn at(text: &str) -> Instant {
    text.parse().unwrap()
}

pub fn admin() -> Actor {
    Actor {
        user_id: UserId::parse("admin").unwrap(),
        role: Role::CityAdmin,
    }
}

pub fn officer(town: &str) -> Actor {
    Actor {
        user_id: UserId::parse(&format!("officer-{town}")).unwrap(),
        role: Role::TownOfficer {
            town: Town::parse(town).unwrap(),
        },
    }
}

pub fn enterprise_user(enterprise_id: EnterpriseId) -> Actor {
    Actor {
        user_id: UserId::parse("safety-officer").unwrap(),
        role: Role::Enterprise { enterprise_id },
    }
}

pub fn credit_code(n: u32) -> UnifiedSocialCreditCode {
    UnifiedSocialCreditCode::with_check_character(&format!("913304810000{n:05}")).unwrap()
}

pub fn plain_profile() -> EnterpriseProfile {
    EnterpriseProfile {
        staff_count: 50,
        annual_revenue_10k_yuan: 300,
        flags: Default::default(),
    }
}

pub fn profile_with(flags: &[ProfileFlag]) -> EnterpriseProfile {
    EnterpriseProfile {
        flags: flags.iter().copied().collect(),
        ..plain_profile()
    }
}

pub fn register(n: u32, town: &str, profile: EnterpriseProfile) -> EnterpriseCommand {
    EnterpriseCommand::Register(RegisterEnterprise {
        name: format!("企业{n}"),
        credit_code: credit_code(n),
        town: Town::parse(town).unwrap(),
        industry: "经编".into(),
        profile,
    })
}

pub fn file_ref(seed: u8) -> FileRef {
    FileRef {
        sha256: format!("{seed:02x}").repeat(32),
        size_bytes: 1024,
        media_type: "application/pdf".into(),
        file_name: "record.pdf".into(),
    }
}

pub fn upload(enterprise_id: EnterpriseId, document: u128, requirement: &str, coverage: Coverage) -> EnterpriseCommand {
    EnterpriseCommand::UploadDocument(UploadDocument {
        enterprise_id,
        document_id: document_id(document),
        requirement: RequirementCode::parse(requirement).unwrap(),
        title: format!("record {document}"),
        file: file_ref(document as u8),
        coverage,
    })
}

pub fn document_id(n: u128) -> DocumentId {
    DocumentId::from_uuid(uuid::Uuid::from_u128(n))
}

/// given(events).when(actor, now, command) → events or rejection.
pub struct Given {
    pub file: EnterpriseFile,
    pub rules: RuleSet,
}

pub fn given(events: &[Event]) -> Given {
    Given {
        file: EnterpriseFile::from_events(events),
        rules: rules(),
    }
}

impl Given {
    pub fn when(
        &self,
        actor: &Actor,
        now: &str,
        command: &EnterpriseCommand,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let context = DecisionContext {
            actor,
            rules: &self.rules,
            now: at(now),
        };
        self.file.decide(command, &context)
    }
}

/// Decides and applies commands in order, panicking on a rejection; returns all events.
pub fn history(steps: &[(Actor, &str, EnterpriseCommand)]) -> Vec<Event> {
    let rules = rules();
    let mut file = EnterpriseFile::default();
    let mut events = Vec::new();
    for (actor, now, command) in steps {
        let context = DecisionContext {
            actor,
            rules: &rules,
            now: at(now),
        };
        let decided = file
            .decide(command, &context)
            .unwrap_or_else(|rejection| panic!("{command:?} rejected: {rejection}"));
        for event in decided {
            file.apply(&event);
            events.push(event);
        }
    }
    events
}

/// A file in which every applicable requirement has an approved record valid at `now`: 100 %
/// compliance, so colour tests start from blue (or the profile's inherent yellow).
pub fn fully_compliant(n: u32, town: &str, profile: EnterpriseProfile, registered: &str, now: &str) -> EnterpriseFile {
    use anquan_domain::compliance::{RequirementState, evaluate};
    use anquan_domain::enterprise::ReviewDecision;
    use anquan_domain::rules::Evidence;
    let rules = rules();
    let id = anquan_domain::enterprise::enterprise_id_for(&credit_code(n));
    let now = at(now);
    let mut file = EnterpriseFile::from_events(&history(&[(officer(town), registered, register(n, town, profile))]));
    let owner = enterprise_user(id);
    let reviewer = officer(town);
    let decide = |file: &mut EnterpriseFile, actor: &Actor, command: EnterpriseCommand| {
        let context = DecisionContext {
            actor,
            rules: &rules,
            now,
        };
        for event in file.decide(&command, &context).unwrap() {
            file.apply(&event);
        }
    };
    let applicable: Vec<_> = evaluate(&file, &rules, now)
        .unwrap()
        .indicators
        .iter()
        .flat_map(|indicator| indicator.requirements.clone())
        .filter(|requirement| requirement.state != RequirementState::NotApplicable)
        .collect();
    for (index, requirement) in applicable.into_iter().enumerate() {
        let (_, rule) = rules.requirement(&requirement.code).unwrap();
        let coverage = match &rule.evidence {
            Evidence::Review => Coverage::Once,
            Evidence::Validity { .. } => Coverage::Validity {
                valid_from: now - chrono::Duration::days(30),
                valid_until: now + chrono::Duration::days(300),
            },
            evidence @ Evidence::Periodic { .. } => {
                let cadence = rules.cadence_for(evidence, file.current_profile()).unwrap();
                Coverage::Period {
                    period: cadence.period_containing(now, rules.time_zone),
                }
            }
        };
        let document = 10_000 + index as u128;
        decide(
            &mut file,
            &owner,
            upload(id, document, requirement.code.as_str(), coverage),
        );
        decide(
            &mut file,
            &reviewer,
            EnterpriseCommand::ReviewDocument(anquan_domain::enterprise::ReviewDocument {
                enterprise_id: id,
                document_id: document_id(document),
                decision: ReviewDecision::Approve { comment: None },
            }),
        );
    }
    file
}

pub fn inspector(town: &str) -> Actor {
    Actor {
        user_id: UserId::parse(&format!("inspector-{town}")).unwrap(),
        role: Role::TownInspector {
            town: Town::parse(town).unwrap(),
        },
    }
}

pub fn city_inspector() -> Actor {
    Actor {
        user_id: UserId::parse("city-inspector").unwrap(),
        role: Role::CityInspector,
    }
}
