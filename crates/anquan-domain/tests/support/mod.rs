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
