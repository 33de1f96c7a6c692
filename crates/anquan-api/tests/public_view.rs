//! The public (unauthenticated) agency queries can reach no private field: every type reachable
//! from their results is walked in the generated schema, and none has a certificate number, a
//! phone, a score breakdown, a sanction or a private type.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on failure")]

use std::collections::{BTreeMap, BTreeSet};

/// Queries that need no token.
const PUBLIC_QUERIES: [&str; 5] = [
    "agencyDirectory",
    "publicAgency",
    "publicStaffMember",
    "agencyStatistics",
    "health",
];
/// Field names that must never be public.
const PRIVATE_WORDS: [&str; 7] = [
    "certificate",
    "phone",
    "sanction",
    "reason",
    "computed",
    "component",
    "contract",
];
/// Fields whose name has a private word but which are public by design, each with why.
const PUBLIC_BY_DESIGN: [(&str, &str); 1] = [
    // 未评级 with its reason is what the directory must show (issue #21): the reason is built
    // only from activity counts the public statistics already publish, never from an
    // official's free-text reason or a sanction.
    ("PublicGrade", "notGradedReason"),
];
/// Types that hold private fields.
const PRIVATE_TYPES: [&str; 5] = ["Staff", "Qualification", "Agency", "CreditGradeRecord", "Sanction"];

/// Parses `type X { field(args): Type }` blocks into type → [(field, named type)].
fn object_types(sdl: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut types = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    let mut in_docstring = false;
    for line in sdl.lines().map(str::trim) {
        if line.starts_with("\"\"\"") {
            let one_line = line.len() > 3 && line.ends_with("\"\"\"");
            if !one_line {
                in_docstring = !in_docstring;
            }
            continue;
        }
        if in_docstring {
            if line.ends_with("\"\"\"") {
                in_docstring = false;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("type ") {
            let name = rest.split([' ', '{']).next().unwrap().to_owned();
            current = Some((name, Vec::new()));
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                types.insert(name, fields);
            }
        } else if let Some((_, fields)) = &mut current
            && let Some((head, tail)) = line.rsplit_once(':')
        {
            let field = head.split('(').next().unwrap().trim().to_owned();
            let named = tail.trim().trim_matches(['[', ']', '!', ' ']).to_owned();
            fields.push((field, named));
        }
    }
    types
}

#[test]
fn the_public_agency_queries_reach_no_private_field() {
    let types = object_types(&anquan_api::sdl());
    let query = &types["QueryRoot"];
    let mut pending: Vec<String> = PUBLIC_QUERIES
        .iter()
        .map(|name| {
            query
                .iter()
                .find(|(field, _)| field == name)
                .unwrap_or_else(|| panic!("query {name} is missing"))
                .1
                .clone()
        })
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        assert!(
            !PRIVATE_TYPES.contains(&name.as_str()),
            "public queries reach private type {name}"
        );
        let Some(fields) = types.get(&name) else {
            continue;
        };
        for (field, named) in fields {
            let lower = field.to_lowercase();
            let by_design = PUBLIC_BY_DESIGN.contains(&(name.as_str(), field.as_str()));
            assert!(
                by_design || !PRIVATE_WORDS.iter().any(|word| lower.contains(word)),
                "public type {name} has private field {field}"
            );
            pending.push(named.clone());
        }
    }
    assert!(
        seen.contains("PublicStaff"),
        "the walk must reach the public staff type: {seen:?}"
    );
}
