//! Closing and reopening an enterprise: who may, what a closed enterprise refuses, and whether
//! it is active at an instant.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod support;

use anquan_domain::Event;
use anquan_domain::enterprise::{
    CloseEnterprise, ClosureKind, Coverage, EnterpriseCommand, EnterpriseFile, ReopenEnterprise, ReviewDecision,
    ReviewDocument, enterprise_id_for,
};
use anquan_domain::metrics::enterprise_contribution;
use support::*;

const REGISTERED: &str = "2019-01-10T00:00:00Z";
const NOW: &str = "2019-03-01T00:00:00Z";

fn close(n: u32, effective_at: Option<&str>) -> EnterpriseCommand {
    EnterpriseCommand::Close(CloseEnterprise {
        enterprise_id: enterprise_id_for(&credit_code(n)),
        kind: ClosureKind::Deregistered,
        reason: "营业执照注销".into(),
        effective_at: effective_at.map(at),
    })
}

fn reopen(n: u32, effective_at: Option<&str>) -> EnterpriseCommand {
    EnterpriseCommand::Reopen(ReopenEnterprise {
        enterprise_id: enterprise_id_for(&credit_code(n)),
        reason: "恢复经营".into(),
        effective_at: effective_at.map(at),
    })
}

fn closed(n: u32) -> Vec<Event> {
    history(&[
        (officer("许村"), REGISTERED, register(n, "许村", plain_profile())),
        (officer("许村"), "2019-02-01T00:00:00Z", close(n, None)),
    ])
}

#[test]
fn the_officer_of_its_town_or_the_city_admin_closes_an_enterprise() {
    let given = given(&history(&[(
        officer("许村"),
        REGISTERED,
        register(1, "许村", plain_profile()),
    )]));
    let events = given.when(&officer("许村"), NOW, &close(1, None)).unwrap();
    assert!(matches!(events.as_slice(), [Event::EnterpriseClosed(e)] if e.effective_at == at(NOW)));
    assert!(given.when(&admin(), NOW, &close(1, None)).is_ok());
    for actor in [
        officer("长安"),
        inspector("许村"),
        enterprise_user(enterprise_id_for(&credit_code(1))),
    ] {
        assert_eq!(
            given.when(&actor, NOW, &close(1, None)).unwrap_err().code(),
            "FORBIDDEN"
        );
    }
}

#[test]
fn a_closure_needs_a_reason_and_an_instant_between_registration_and_now() {
    let given = given(&history(&[(
        officer("许村"),
        REGISTERED,
        register(2, "许村", plain_profile()),
    )]));
    let mut command = close(2, None);
    if let EnterpriseCommand::Close(close) = &mut command {
        close.reason = "  ".into();
    }
    assert_eq!(given.when(&admin(), NOW, &command).unwrap_err().code(), "INVALID_FIELD");
    if let EnterpriseCommand::Close(close) = &mut command {
        close.reason = "注".repeat(501);
    }
    assert_eq!(given.when(&admin(), NOW, &command).unwrap_err().code(), "INVALID_FIELD");
    let future = close(2, Some("2019-03-02T00:00:00Z"));
    assert_eq!(given.when(&admin(), NOW, &future).unwrap_err().code(), "IN_FUTURE");
    let before_registration = close(2, Some("2019-01-01T00:00:00Z"));
    assert_eq!(
        given.when(&admin(), NOW, &before_registration).unwrap_err().code(),
        "EFFECTIVE_TOO_EARLY"
    );
    let out_of_range = close(2, Some("1900-01-01T00:00:00Z"));
    assert_eq!(
        given.when(&admin(), NOW, &out_of_range).unwrap_err().code(),
        "VALUE_OUT_OF_RANGE"
    );
    assert!(
        given
            .when(&admin(), NOW, &close(2, Some("2019-02-15T00:00:00Z")))
            .is_ok()
    );
}

#[test]
fn a_closed_enterprise_is_closed_once_and_reopened_once() {
    let events = closed(3);
    assert_eq!(
        given(&events).when(&admin(), NOW, &close(3, None)).unwrap_err().code(),
        "ENTERPRISE_CLOSED"
    );
    let open = history(&[(officer("许村"), REGISTERED, register(3, "许村", plain_profile()))]);
    assert_eq!(
        given(&open).when(&admin(), NOW, &reopen(3, None)).unwrap_err().code(),
        "ENTERPRISE_NOT_CLOSED"
    );
    let early = reopen(3, Some("2019-01-20T00:00:00Z"));
    assert_eq!(
        given(&events).when(&admin(), NOW, &early).unwrap_err().code(),
        "EFFECTIVE_TOO_EARLY"
    );
    let mut reopened = events.clone();
    reopened.extend(given(&events).when(&officer("许村"), NOW, &reopen(3, None)).unwrap());
    assert_eq!(
        given(&reopened)
            .when(&admin(), NOW, &reopen(3, None))
            .unwrap_err()
            .code(),
        "ENTERPRISE_NOT_CLOSED"
    );
    assert!(given(&reopened).when(&admin(), NOW, &close(3, None)).is_ok());
}

#[test]
fn a_closed_enterprise_refuses_uploads_but_officials_finish_its_reviews() {
    let id = enterprise_id_for(&credit_code(4));
    let mut events = history(&[(officer("许村"), REGISTERED, register(4, "许村", plain_profile()))]);
    events.extend(
        given(&events)
            .when(
                &enterprise_user(id),
                "2019-01-20T00:00:00Z",
                &upload(id, 1, "R10.plan", Coverage::Once),
            )
            .unwrap(),
    );
    events.extend(
        given(&events)
            .when(&admin(), "2019-02-01T00:00:00Z", &close(4, None))
            .unwrap(),
    );
    let rejection = given(&events)
        .when(&enterprise_user(id), NOW, &upload(id, 2, "R10.plan", Coverage::Once))
        .unwrap_err();
    assert_eq!(rejection.code(), "ENTERPRISE_CLOSED");
    let review = EnterpriseCommand::ReviewDocument(ReviewDocument {
        enterprise_id: id,
        document_id: document_id(1),
        decision: ReviewDecision::Approve { comment: None },
    });
    assert!(given(&events).when(&officer("许村"), NOW, &review).is_ok());
}

#[test]
fn an_enterprise_is_closed_from_the_closure_until_the_reopening_as_known_then() {
    // Backdated: effective 2019-02-10, recorded 2019-02-20.
    let events = history(&[
        (officer("许村"), REGISTERED, register(5, "许村", plain_profile())),
        (
            officer("许村"),
            "2019-02-20T00:00:00Z",
            close(5, Some("2019-02-10T00:00:00Z")),
        ),
        (officer("许村"), "2019-04-01T00:00:00Z", reopen(5, None)),
    ]);
    let file = EnterpriseFile::from_events(&events);
    assert!(file.closure_at(at("2019-02-09T00:00:00Z")).is_none());
    // Effective but not yet known: still active as the platform knew it then.
    assert!(file.closure_at(at("2019-02-15T00:00:00Z")).is_none());
    assert!(file.closure_at(at("2019-02-20T00:00:00Z")).is_some());
    assert!(file.closure_at(at("2019-03-31T00:00:00Z")).is_some());
    assert!(file.closure_at(at("2019-04-01T00:00:00Z")).is_none());
    assert!(file.current_closure().is_none());
}

#[test]
fn a_closed_enterprise_leaves_a01_and_counts_in_a08_closed() {
    let rules = rules();
    let catalogue = &rules.metrics;
    let a01 = catalogue.index_of("A01").unwrap();
    let a08 = catalogue.index_of("A08").unwrap();
    let file = EnterpriseFile::from_events(&closed(6));
    let services = Default::default();
    let before = enterprise_contribution(catalogue, &rules, &file, &services, at("2019-01-31T00:00:00Z")).unwrap();
    assert_eq!(before.tallies[a01], (1, 1));
    assert_eq!(before.tallies[a08].0, 1);
    assert_eq!(before.parts, vec![(u16::try_from(a08).unwrap(), [1, 0, 0, 0])]);
    let after = enterprise_contribution(catalogue, &rules, &file, &services, at(NOW)).unwrap();
    assert_eq!(after.tallies[a01], (0, 0));
    assert_eq!(after.tallies[a08].0, 2);
    assert_eq!(after.parts, vec![(u16::try_from(a08).unwrap(), [1, 1, 0, 0])]);
}
