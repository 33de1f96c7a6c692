//! `execute` and command ids: a retry gets the first answer with its events; the same id for
//! another command is refused; a caller who may not issue the command is refused before its
//! command id is looked up.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test at once")]

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

use anquan_domain::enterprise::{
    ChangeEnterpriseProfile, Coverage, EnterpriseCommand, EnterpriseFile, EnterpriseRejection, FileRef,
    RegisterEnterprise, UploadDocument, enterprise_id_for,
};
use anquan_domain::rules::{EnterpriseProfile, RuleSet, builtin_v1};
use anquan_domain::{
    Actor, CommandId, DocumentId, EnterpriseId, Event, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId,
};
use anquan_event_store::execute::{CommandEnvelope, DecisionContext, ExecuteError, Executed, command_digest, execute};
use anquan_event_store::{EventStore, InMemoryEventStore, StreamId, StreamVersion};

fn actor(user: &str, role: Role) -> Actor {
    Actor {
        user_id: UserId::parse(user).unwrap(),
        role,
    }
}

fn envelope(command_id: Option<CommandId>) -> CommandEnvelope {
    CommandEnvelope {
        command_id,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        expected_version: None,
    }
}

async fn run(
    store: &dyn EventStore,
    rules: &RuleSet,
    actor: &Actor,
    command: &EnterpriseCommand,
    command_id: Option<CommandId>,
) -> Result<Executed, ExecuteError<EnterpriseRejection>> {
    let context = DecisionContext {
        actor,
        rules,
        now: Utc::now().trunc_subsecs(6),
    };
    execute::<EnterpriseFile>(store, command, &context, &envelope(command_id)).await
}

async fn register(store: &dyn EventStore, rules: &RuleSet, code: &str, town: &str) -> EnterpriseId {
    let credit_code = UnifiedSocialCreditCode::parse(code).unwrap();
    let admin = actor("admin", Role::CityAdmin);
    let command = EnterpriseCommand::Register(RegisterEnterprise {
        name: "海宁市某家纺有限公司".to_owned(),
        credit_code: credit_code.clone(),
        town: Town::parse(town).unwrap(),
        industry: "家纺".to_owned(),
        profile: EnterpriseProfile::default(),
    });
    run(store, rules, &admin, &command, None).await.unwrap();
    enterprise_id_for(&credit_code)
}

fn upload(enterprise_id: EnterpriseId, title: &str) -> EnterpriseCommand {
    EnterpriseCommand::UploadDocument(UploadDocument {
        enterprise_id,
        document_id: DocumentId::from_uuid(Uuid::from_u128(7)),
        requirement: RequirementCode::parse("R10.plan").unwrap(),
        title: title.to_owned(),
        file: FileRef {
            sha256: "ab".repeat(32),
            size_bytes: 10,
            media_type: "application/pdf".to_owned(),
            file_name: "plan.pdf".to_owned(),
        },
        coverage: Coverage::Once,
    })
}

async fn stream_len(store: &dyn EventStore, enterprise_id: EnterpriseId) -> usize {
    let stream = StreamId::for_uuid("enterprise", enterprise_id.as_uuid());
    store
        .read_stream(&stream, StreamVersion::FIRST, 100)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_retry_returns_the_first_outcome_and_events_and_another_command_with_the_id_is_refused() {
    let store = InMemoryEventStore::new();
    let rules = builtin_v1().unwrap();
    let first = register(&store, &rules, "91330481MA28A0XX07", "许村").await;
    let owner = actor("owner", Role::Enterprise { enterprise_id: first });
    let key = CommandId::from_uuid(Uuid::now_v7());

    let done = run(&store, &rules, &owner, &upload(first, "应急预案"), Some(key))
        .await
        .unwrap();
    let outcome = done.outcome.unwrap();
    assert!(!outcome.duplicate);
    let retry = run(&store, &rules, &owner, &upload(first, "应急预案"), Some(key))
        .await
        .unwrap();
    assert_eq!(retry.outcome.unwrap().last_position, outcome.last_position);
    assert!(
        matches!(retry.events.as_slice(), [Event::DocumentUploaded(_)]),
        "the first events come back"
    );

    // Other input with the same key: refused, nothing appended.
    let other = run(&store, &rules, &owner, &upload(first, "另一份"), Some(key)).await;
    assert!(
        matches!(other, Err(ExecuteError::IdempotencyKeyReused { .. })),
        "{other:?}"
    );
    // Another caller who may write the same file, same input, same key: another digest.
    let admin = actor("admin", Role::CityAdmin);
    let other = run(&store, &rules, &admin, &upload(first, "应急预案"), Some(key)).await;
    assert!(
        matches!(other, Err(ExecuteError::IdempotencyKeyReused { .. })),
        "{other:?}"
    );
    assert_eq!(stream_len(&store, first).await, 2, "registered and one upload");
}

#[tokio::test]
async fn a_caller_who_may_not_issue_the_command_is_refused_before_its_command_id_is_looked_up() {
    let store = InMemoryEventStore::new();
    let rules = builtin_v1().unwrap();
    let first = register(&store, &rules, "91330481MA28A0XX07", "许村").await;
    let second = register(&store, &rules, "91330100799655058B", "长安").await;
    let stranger = actor("stranger", Role::Enterprise { enterprise_id: second });
    let key = CommandId::from_uuid(Uuid::now_v7());
    run(&store, &rules, &stranger, &upload(second, "应急预案"), Some(key))
        .await
        .unwrap();

    // Its own command id, aimed at the first enterprise's file.
    let replay = EnterpriseCommand::ChangeProfile(ChangeEnterpriseProfile {
        enterprise_id: first,
        name: "x".to_owned(),
        town: Town::parse("许村").unwrap(),
        industry: "x".to_owned(),
        profile: EnterpriseProfile::default(),
    });
    let refused = run(&store, &rules, &stranger, &replay, Some(key)).await;
    assert!(
        matches!(&refused, Err(ExecuteError::Rejected(rejection)) if rejection.code() == "FORBIDDEN"),
        "{refused:?}"
    );
    assert_eq!(stream_len(&store, first).await, 1);
}

#[test]
fn the_digest_depends_on_the_command_and_the_actor_only() {
    let enterprise_id = EnterpriseId::from_uuid(Uuid::from_u128(1));
    let owner = actor("owner", Role::Enterprise { enterprise_id });
    let admin = actor("admin", Role::CityAdmin);
    let digest =
        |actor: &Actor, title: &str| command_digest::<EnterpriseFile>(&upload(enterprise_id, title), actor).unwrap();
    assert_eq!(digest(&owner, "a"), digest(&owner, "a"));
    assert_ne!(digest(&owner, "a"), digest(&owner, "b"));
    assert_ne!(digest(&owner, "a"), digest(&admin, "a"));
}
