//! Rotating an enterprise's public QR token: who may, what the event keeps, and what the file
//! does with it.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod support;

use anquan_domain::enterprise::{EnterpriseCommand, EnterpriseFile, PublicToken, RotatePublicToken, enterprise_id_for};
use anquan_domain::{Actor, AgencyId, Event, Role, UserId};
use support::*;

const NOW: &str = "2019-03-01T00:00:00Z";
const TOKEN: &str = "k7q2m5x9a3c8e1g4j6n0p2r5t7";

fn rotate(n: u32, token: &str) -> EnterpriseCommand {
    EnterpriseCommand::RotatePublicToken(RotatePublicToken {
        enterprise_id: enterprise_id_for(&credit_code(n)),
        token: PublicToken::parse(token).unwrap(),
    })
}

fn registered(n: u32) -> Vec<Event> {
    history(&[(
        officer("许村"),
        "2019-01-10T00:00:00Z",
        register(n, "许村", plain_profile()),
    )])
}

#[test]
fn the_enterprise_itself_rotates_its_token_and_the_event_keeps_only_the_digest() {
    let id = enterprise_id_for(&credit_code(1));
    let events = given(&registered(1))
        .when(&enterprise_user(id), NOW, &rotate(1, TOKEN))
        .unwrap();
    let [Event::PublicTokenRotated(rotated)] = events.as_slice() else {
        panic!("expected one PublicTokenRotated, got {events:?}");
    };
    assert_eq!(rotated.token_digest, PublicToken::parse(TOKEN).unwrap().digest());
    assert_eq!(rotated.rotated_at, at(NOW));
    let encoded = events[0].encode_data();
    assert!(
        !encoded.contains(TOKEN),
        "the token itself must never be stored: {encoded}"
    );
}

#[test]
fn the_city_admin_rotates_any_enterprises_token() {
    assert!(given(&registered(2)).when(&admin(), NOW, &rotate(2, TOKEN)).is_ok());
}

#[test]
fn nobody_else_rotates_a_token() {
    let other = enterprise_id_for(&credit_code(9));
    let agency = Actor {
        user_id: UserId::parse("agency-1").unwrap(),
        role: Role::Agency {
            agency_id: AgencyId::from_uuid(uuid::Uuid::from_u128(7)),
        },
    };
    for actor in [
        enterprise_user(other),
        officer("许村"),
        inspector("许村"),
        city_inspector(),
        agency,
    ] {
        let rejection = given(&registered(3)).when(&actor, NOW, &rotate(3, TOKEN)).unwrap_err();
        assert_eq!(rejection.code(), "FORBIDDEN", "{actor:?}");
    }
}

#[test]
fn an_unregistered_enterprise_has_no_token() {
    let rejection = given(&[]).when(&admin(), NOW, &rotate(4, TOKEN)).unwrap_err();
    assert_eq!(rejection.code(), "UNKNOWN_ENTERPRISE");
}

#[test]
fn rotating_leaves_the_file_as_it_was() {
    let mut events = registered(5);
    let before = EnterpriseFile::from_events(&events);
    events.extend(given(&events).when(&admin(), NOW, &rotate(5, TOKEN)).unwrap());
    assert_eq!(EnterpriseFile::from_events(&events), before);
}
