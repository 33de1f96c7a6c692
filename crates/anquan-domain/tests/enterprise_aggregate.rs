//! The enterprise aggregate's rules: given events, when a command, then events or a rejection.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod support;

use anquan_domain::Event;
use anquan_domain::enterprise::{Coverage, EnterpriseCommand, ReviewDecision, ReviewDocument, enterprise_id_for};
use support::*;

const NOW: &str = "2019-03-01T00:00:00Z";

fn registered(n: u32, town: &str) -> Vec<Event> {
    history(&[(
        officer(town),
        "2019-01-10T00:00:00Z",
        register(n, town, plain_profile()),
    )])
}

#[test]
fn a_town_officer_registers_an_enterprise_in_their_town_only() {
    let events = given(&[])
        .when(&officer("许村"), NOW, &register(1, "许村", plain_profile()))
        .unwrap();
    assert!(
        matches!(events.as_slice(), [Event::EnterpriseRegistered(e)] if e.enterprise_id == enterprise_id_for(&credit_code(1)))
    );
    let rejection = given(&[])
        .when(&officer("长安"), NOW, &register(1, "许村", plain_profile()))
        .unwrap_err();
    assert_eq!(rejection.code(), "FORBIDDEN");
}

#[test]
fn a_credit_code_registers_once() {
    let rejection = given(&registered(2, "许村"))
        .when(&admin(), NOW, &register(2, "许村", plain_profile()))
        .unwrap_err();
    assert_eq!(rejection.code(), "ALREADY_REGISTERED");
}

#[test]
fn an_enterprise_uploads_only_to_its_own_file() {
    let id = enterprise_id_for(&credit_code(3));
    let other = enterprise_id_for(&credit_code(4));
    let given = given(&registered(3, "许村"));
    assert!(
        given
            .when(&enterprise_user(id), NOW, &upload(id, 1, "R10.plan", Coverage::Once))
            .is_ok()
    );
    let rejection = given
        .when(&enterprise_user(other), NOW, &upload(id, 1, "R10.plan", Coverage::Once))
        .unwrap_err();
    assert_eq!(rejection.code(), "FORBIDDEN");
    let rejection = given
        .when(&officer("许村"), NOW, &upload(id, 1, "R10.plan", Coverage::Once))
        .unwrap_err();
    assert_eq!(rejection.code(), "FORBIDDEN");
}

#[test]
fn a_town_officer_cannot_review_another_towns_records() {
    let id = enterprise_id_for(&credit_code(5));
    let mut events = registered(5, "许村");
    events.extend(
        given(&events)
            .when(&enterprise_user(id), NOW, &upload(id, 1, "R10.plan", Coverage::Once))
            .unwrap(),
    );
    let review = EnterpriseCommand::ReviewDocument(ReviewDocument {
        enterprise_id: id,
        document_id: document_id(1),
        decision: ReviewDecision::Approve { comment: None },
    });
    assert_eq!(
        given(&events).when(&officer("长安"), NOW, &review).unwrap_err().code(),
        "FORBIDDEN"
    );
    let approved = given(&events).when(&officer("许村"), NOW, &review).unwrap();
    events.extend(approved);
    assert_eq!(
        given(&events).when(&officer("许村"), NOW, &review).unwrap_err().code(),
        "ALREADY_REVIEWED"
    );
}

#[test]
fn returning_a_record_needs_feedback() {
    let id = enterprise_id_for(&credit_code(6));
    let mut events = registered(6, "许村");
    events.extend(
        given(&events)
            .when(&enterprise_user(id), NOW, &upload(id, 1, "R10.plan", Coverage::Once))
            .unwrap(),
    );
    let review = EnterpriseCommand::ReviewDocument(ReviewDocument {
        enterprise_id: id,
        document_id: document_id(1),
        decision: ReviewDecision::Return { feedback: "  ".into() },
    });
    assert_eq!(
        given(&events).when(&officer("许村"), NOW, &review).unwrap_err().code(),
        "FEEDBACK_REQUIRED"
    );
}

#[test]
fn uploads_are_checked_against_the_rule_set() {
    let id = enterprise_id_for(&credit_code(7));
    let given = given(&registered(7, "许村"));
    let owner = enterprise_user(id);
    let code = |command| given.when(&owner, NOW, &command).unwrap_err().code();
    assert_eq!(
        code(upload(id, 1, "R10.no_such_item", Coverage::Once)),
        "UNKNOWN_REQUIREMENT"
    );
    assert_eq!(
        code(upload(
            id,
            1,
            "R12.chemicals_ledger",
            Coverage::Period {
                period: "2019-02".parse().unwrap()
            }
        )),
        "REQUIREMENT_NOT_APPLICABLE"
    );
    assert_eq!(
        code(upload(id, 1, "R04.leader_certificates", Coverage::Once)),
        "COVERAGE_MISMATCH"
    );
    assert_eq!(
        code(upload(
            id,
            1,
            "R04.leader_certificates",
            Coverage::Validity {
                valid_from: at("2019-02-01T00:00:00Z"),
                valid_until: at("2019-01-01T00:00:00Z")
            }
        )),
        "INVALID_VALIDITY"
    );
    assert_eq!(
        code(upload(
            id,
            1,
            "R04.leader_certificates",
            Coverage::Validity {
                valid_from: at("2019-01-01T00:00:00Z"),
                valid_until: at("2025-01-01T00:00:00Z")
            }
        )),
        "VALIDITY_TOO_LONG"
    );
    assert_eq!(
        code(upload(
            id,
            1,
            "R09.quarterly_report",
            Coverage::Period {
                period: "2019-Q2".parse().unwrap()
            }
        )),
        "PERIOD_NOT_STARTED"
    );
    assert_eq!(
        code(upload(
            id,
            1,
            "R09.quarterly_report",
            Coverage::Period {
                period: "2019-03".parse().unwrap()
            }
        )),
        "WRONG_CADENCE"
    );
}

#[test]
fn an_empty_file_and_a_duplicate_document_id_are_refused() {
    let id = enterprise_id_for(&credit_code(8));
    let mut events = registered(8, "许村");
    let owner = enterprise_user(id);
    let mut empty = upload(id, 1, "R10.plan", Coverage::Once);
    if let EnterpriseCommand::UploadDocument(command) = &mut empty {
        command.file.size_bytes = 0;
    }
    assert_eq!(
        given(&events).when(&owner, NOW, &empty).unwrap_err().code(),
        "EMPTY_FILE"
    );
    events.extend(
        given(&events)
            .when(&owner, NOW, &upload(id, 1, "R10.plan", Coverage::Once))
            .unwrap(),
    );
    assert_eq!(
        given(&events)
            .when(&owner, NOW, &upload(id, 1, "R10.plan", Coverage::Once))
            .unwrap_err()
            .code(),
        "DUPLICATE_DOCUMENT"
    );
}

#[test]
fn commands_on_an_unregistered_enterprise_are_refused() {
    let id = enterprise_id_for(&credit_code(9));
    let rejection = given(&[])
        .when(&enterprise_user(id), NOW, &upload(id, 1, "R10.plan", Coverage::Once))
        .unwrap_err();
    assert_eq!(rejection.code(), "UNKNOWN_ENTERPRISE");
}
