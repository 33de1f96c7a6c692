//! The personal-data registry (`anquan_domain::personal::PERSONAL_DATA`) is complete: a walk over
//! every event type's fixture finds each field that names a person, and each must be sealed by
//! the registry or deliberately kept readable (`KEPT_READABLE`, with its reason). The registry
//! must name only real event types and fields the fixtures carry.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

use std::collections::BTreeSet;
use std::path::Path;

use anquan_domain::Event;
use anquan_domain::personal::{KEPT_READABLE, PERSONAL_DATA, matches, personal_fields};
use serde_json::Value;

/// Keys that hold a person's identifying data wherever they appear.
const PERSON_KEYS: &[&str] = &[
    "phone",
    "contact_phone",
    "mobile",
    "certificate_number",
    "id_number",
    "id_card",
    "inspectors",
    "person",
    "persons",
    "email",
];

/// `name` identifies a person under these containers (elsewhere it names an enterprise, an
/// agency or a file).
const PERSON_CONTAINERS: &[&str] = &["staff", "inspectors", "persons", "contacts"];

const AGENCY_STREAM: &str = "agency-0192f0c4-9c2f-7e0a-b1c3-000000000401";

fn fixture(event_type: &str, version: u32) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/events/{event_type}.v{version}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str::<Value>(&text).unwrap()["data"].clone()
}

/// Every leaf (and every array of strings) whose key names a person, as JSON pointers.
fn person_naming(value: &Value, pointer: &str, path: &mut Vec<String>, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let under_person =
                    key == "name" && path.iter().any(|segment| PERSON_CONTAINERS.contains(&segment.as_str()));
                if PERSON_KEYS.contains(&key.as_str()) || under_person {
                    collect_leaves(item, &format!("{pointer}/{key}"), out);
                } else {
                    path.push(key.clone());
                    person_naming(item, &format!("{pointer}/{key}"), path, out);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                person_naming(item, &format!("{pointer}/{index}"), path, out);
            }
        }
        _ => {}
    }
}

fn collect_leaves(value: &Value, pointer: &str, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                collect_leaves(item, &format!("{pointer}/{index}"), out);
            }
        }
        Value::Null => {}
        _ => out.push(pointer.to_owned()),
    }
}

#[test]
fn every_field_naming_a_person_is_sealed_or_deliberately_kept() {
    let mut sealed_somewhere = 0;
    for (event_type, current) in Event::CATALOGUE {
        for version in 1..=*current {
            let data = fixture(event_type, version);
            let sealed: BTreeSet<String> = personal_fields(AGENCY_STREAM, event_type, &data)
                .into_iter()
                .map(|field| field.pointer)
                .collect();
            sealed_somewhere += sealed.len();
            let kept: BTreeSet<String> = KEPT_READABLE
                .iter()
                .filter(|(kept_type, _, _)| kept_type == event_type)
                .flat_map(|(_, path, _)| matches(&data, path, String::new()))
                .map(|(pointer, _)| pointer)
                .collect();
            let mut naming = Vec::new();
            person_naming(&data, "", &mut Vec::new(), &mut naming);
            for pointer in naming {
                assert!(
                    sealed.contains(&pointer) || kept.contains(&pointer),
                    "{event_type} v{version}: {pointer} names a person but anquan_domain::personal::PERSONAL_DATA \
                     does not seal it (add it there, or to KEPT_READABLE with the reason)"
                );
            }
        }
    }
    assert!(sealed_somewhere > 0);
}

#[test]
fn the_registry_names_real_event_types_and_fields_the_fixtures_carry() {
    for record in PERSONAL_DATA {
        let Some((_, version)) = Event::CATALOGUE.iter().find(|(name, _)| *name == record.event_type) else {
            panic!("{} is not an event type", record.event_type);
        };
        let data = fixture(record.event_type, *version);
        let holders = matches(&data, record.at, String::new());
        assert!(!holders.is_empty(), "{}: nothing at {:?}", record.event_type, record.at);
        for field in record.fields {
            assert!(
                holders
                    .iter()
                    .any(|(_, holder)| !matches(holder, field, String::new()).is_empty()),
                "{}: no fixture value at {:?} / {:?}",
                record.event_type,
                record.at,
                field
            );
        }
    }
}
