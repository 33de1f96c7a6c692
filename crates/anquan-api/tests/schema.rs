//! `schema.graphql` is the schema the code generates: a drift rewrites the file and fails, so the
//! change shows in review. Every type and field of ours has a description.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on failure")]

use std::path::Path;

#[test]
fn schema_graphql_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema.graphql");
    let generated = anquan_api::sdl();
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        std::fs::write(&path, &generated).unwrap();
        panic!("schema.graphql was out of date and has been rewritten; review and commit it");
    }
}

#[test]
fn every_type_and_field_is_described() {
    let sdl = anquan_api::sdl();
    let mut undescribed = Vec::new();
    let mut in_docstring = false;
    let mut described = false;
    let mut owner: Option<String> = None;
    for line in sdl.lines().map(str::trim) {
        if line.starts_with("\"\"\"") {
            // A docstring opens and closes on one line (`"""text"""`) or spans several.
            let closes_here = line.len() > 3 && line.ends_with("\"\"\"");
            if in_docstring || closes_here {
                in_docstring = false;
                described = true;
            } else {
                in_docstring = true;
            }
            continue;
        }
        if in_docstring {
            if line.ends_with("\"\"\"") {
                in_docstring = false;
                described = true;
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            owner = None;
            continue;
        }
        let is_declaration = ["type ", "input ", "enum ", "scalar ", "directive ", "schema"]
            .iter()
            .any(|kind| line.starts_with(kind));
        if is_declaration {
            let name = line.split([' ', '{', '(']).nth(1).unwrap_or_default().to_owned();
            let ours = !["Upload", "DateTime", "ID", "String", "Int", "Boolean", "Float", ""].contains(&name.as_str())
                && !line.starts_with("directive ")
                && !line.starts_with("schema");
            if ours && !described {
                undescribed.push(name.clone());
            }
            owner = (line.ends_with('{') && !name.is_empty()).then_some(name);
        } else if let Some(owner) = &owner
            && !described
        {
            undescribed.push(format!(
                "{owner}.{}",
                line.split(['(', ':', ' ']).next().unwrap_or_default()
            ));
        }
        described = false;
    }
    assert!(undescribed.is_empty(), "add doc comments to: {undescribed:#?}");
}
