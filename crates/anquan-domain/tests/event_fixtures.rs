//! Stored sample events of every type and schema version: each fixture must decode forever
//! (upcasting old versions), and every event type at its current version must have one, whose
//! data re-encodes byte for byte, so a changed event without a new version fails here.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

use std::path::Path;

use anquan_domain::Event;

#[derive(serde::Deserialize)]
struct Fixture {
    event_type: String,
    schema_version: u32,
    data: serde_json::Value,
}

fn fixtures() -> Vec<(String, Fixture)> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events");
    let mut fixtures: Vec<_> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str::<Fixture>(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display())),
            )
        })
        .collect();
    fixtures.sort_by(|a, b| a.0.cmp(&b.0));
    fixtures
}

#[test]
fn every_fixture_decodes() {
    for (name, fixture) in fixtures() {
        assert_eq!(name, format!("{}.v{}.json", fixture.event_type, fixture.schema_version));
        let data = fixture.data.to_string();
        Event::decode(&fixture.event_type, fixture.schema_version, &data)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}

#[test]
fn every_event_type_has_a_fixture_of_every_version_that_re_encodes_identically() {
    let fixtures = fixtures();
    for (event_type, current) in Event::CATALOGUE {
        for version in 1..=*current {
            let name = format!("{event_type}.v{version}.json");
            let Some((_, fixture)) = fixtures.iter().find(|(file, _)| *file == name) else {
                panic!("missing fixture tests/fixtures/events/{name}: add one for every event type and version");
            };
            if version == *current {
                let data = fixture.data.to_string();
                let decoded = Event::decode(event_type, version, &data).unwrap();
                let reencoded: serde_json::Value = serde_json::from_str(&decoded.encode_data()).unwrap();
                assert_eq!(
                    reencoded, fixture.data,
                    "{name}: the event's shape changed; ship a new schema version"
                );
            }
        }
    }
}
