//! Every GraphQL operation over HTTP is counted and timed (by `graphql::operations`), labelled
//! by what it is and how it ended, with label values from bounded sets, since clients choose
//! operation names and documents.
//!
//! `operation` is the operation's type and its distinct root fields, sorted and joined with a
//! comma (`query enterprises`, `query enterprise,health`, `mutation uploadDocument`); more than
//! [`ROOT_FIELDS_IN_LABEL_MAX`] root fields give `query (several)`, and a document that does
//! not parse, selects no operation, or names a root field the schema does not have gives
//! `invalid`. So every value is built from the schema's own field names, at most two at a time.
//! `outcome` is `OK`, or the first error's `extensions.code`: every code is a constant of the
//! code base (`ApiError::code`, the domain's rejections, the transport's limits), and one that
//! does not look like one counts as `INTERNAL`.
//!
//! Operations over the websocket (subscriptions, mostly) are not measured: a subscription's
//! lifetime is not a request's duration.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{OutputType, Response, SubscriptionType};

use crate::observability::{GRAPHQL_REQUEST_DURATION_SECONDS, GRAPHQL_REQUESTS_TOTAL};

/// Most distinct root fields an `operation` label names; an operation with more is `(several)`.
/// With 25 query, 25 mutation and 3 subscription root fields (and `__typename`, `__schema`,
/// `__type`), this keeps the label under 800 values (every single field and every pair),
/// whatever clients send; a test holds it under 1,500 as the schema grows.
pub const ROOT_FIELDS_IN_LABEL_MAX: usize = 2;
/// The `operation` label of a document that does not parse, selects no operation, or names a
/// root field the schema does not have.
pub const INVALID_OPERATION: &str = "invalid";
/// The `outcome` label of an operation without errors.
pub const OUTCOME_OK: &str = "OK";
/// The `outcome` label of an error without a code that looks like one of ours.
const OUTCOME_INTERNAL: &str = "INTERNAL";
/// Longest code taken as an `outcome` label.
const CODE_BYTES_MAX: usize = 64;

/// Counts and times one operation: `operation` is its label ([`operation_label`]), `started`
/// when it was received.
pub(crate) fn record(operation: &str, response: &Response, started: Instant) {
    let outcome = outcome(response);
    metrics::histogram!(
        GRAPHQL_REQUEST_DURATION_SECONDS,
        "operation" => operation.to_owned(),
        "outcome" => outcome.clone(),
    )
    .record(started.elapsed());
    metrics::counter!(GRAPHQL_REQUESTS_TOTAL, "operation" => operation.to_owned(), "outcome" => outcome).increment(1);
}

/// The schema's root fields by operation type, read once from its types: what an `operation`
/// label may name.
pub(crate) struct RootFields {
    query: HashSet<String>,
    mutation: HashSet<String>,
    subscription: HashSet<String>,
}

impl RootFields {
    pub(crate) fn of<Query: OutputType, Mutation: OutputType, Subscription: SubscriptionType>() -> Self {
        let mut registry = Registry::default();
        Query::create_type_info(&mut registry);
        Mutation::create_type_info(&mut registry);
        Subscription::create_type_info(&mut registry);
        let fields = |type_name: &str| -> HashSet<String> {
            registry
                .types
                .get(type_name)
                .and_then(|root| root.fields())
                .map(|fields| fields.keys().cloned().collect())
                .unwrap_or_default()
        };
        let mut query = fields(&Query::type_name());
        // async-graphql adds the introspection fields to the query root itself.
        query.extend(["__schema".to_owned(), "__type".to_owned()]);
        Self {
            query,
            mutation: fields(&Mutation::type_name()),
            subscription: fields(&Subscription::type_name()),
        }
    }

    /// Whether the root type of `operation_type` has a field `name`.
    pub(crate) fn contains(&self, operation_type: OperationType, name: &str) -> bool {
        match operation_type {
            OperationType::Query => &self.query,
            OperationType::Mutation => &self.mutation,
            OperationType::Subscription => &self.subscription,
        }
        .contains(name)
    }
}

/// The `operation` label of the operation `operation_name` selects in `document` (see the
/// module's documentation). Fragment spreads and inline fragments at the root are followed,
/// each fragment once, so the walk is linear in the document's size.
/// `is_root_field(type, name)` says whether the schema's root type of that operation type has a
/// field of that name.
pub fn operation_label(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    is_root_field: &dyn Fn(OperationType, &str) -> bool,
) -> String {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => &operation.node,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => &operation.node,
            None => return INVALID_OPERATION.to_owned(),
        },
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => match operations.values().next() {
            Some(operation) => &operation.node,
            None => return INVALID_OPERATION.to_owned(),
        },
        _ => return INVALID_OPERATION.to_owned(),
    };
    let kind = match operation.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    let Some(names) = root_field_names(document, &operation.selection_set.node) else {
        return INVALID_OPERATION.to_owned();
    };
    let known = |name: &str| name == "__typename" || is_root_field(operation.ty, name);
    if names.is_empty() || !names.iter().all(|name| known(name)) {
        return INVALID_OPERATION.to_owned();
    }
    if names.len() > ROOT_FIELDS_IN_LABEL_MAX {
        return format!("{kind} (several)");
    }
    let names: Vec<&str> = names.into_iter().collect();
    format!("{kind} {}", names.join(","))
}

/// The distinct names of the fields directly in `selection_set`, through fragments; `None` when
/// it spreads a fragment the document does not define.
fn root_field_names<'a>(
    document: &'a ExecutableDocument,
    selection_set: &'a SelectionSet,
) -> Option<BTreeSet<&'a str>> {
    let mut names = BTreeSet::new();
    let mut visited = HashSet::new();
    let mut pending = vec![selection_set];
    while let Some(selection_set) = pending.pop() {
        for selection in &selection_set.items {
            match &selection.node {
                Selection::Field(field) => {
                    names.insert(field.node.name.node.as_str());
                }
                Selection::InlineFragment(inline) => pending.push(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let fragment = document.fragments.get(name)?;
                    if visited.insert(name) {
                        pending.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    Some(names)
}

/// The `outcome` label of a response: `OK`, the first error's code, or `INTERNAL`.
fn outcome(response: &Response) -> String {
    let Some(error) = response.errors.first() else {
        return OUTCOME_OK.to_owned();
    };
    let code = error.extensions.as_ref().and_then(|extensions| extensions.get("code"));
    match code {
        Some(async_graphql::Value::String(code)) if looks_like_a_code(code) => code.clone(),
        _ => OUTCOME_INTERNAL.to_owned(),
    }
}

/// Whether a string has the shape of our codes (`UPPER_SNAKE_CASE`, short): a guard on the
/// label's size should a code ever carry something a client sent.
fn looks_like_a_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= CODE_BYTES_MAX
        && code.starts_with(|first: char| first.is_ascii_uppercase())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    use super::*;

    /// The root fields of the schema's SDL (what `schema.graphql` holds), by operation type.
    fn sdl_root_fields() -> HashMap<String, HashSet<String>> {
        let document = async_graphql::parser::parse_schema(crate::graphql::sdl()).unwrap();
        let mut roots = HashMap::new();
        for definition in document.definitions {
            let TypeSystemDefinition::Type(definition) = definition else {
                continue;
            };
            let operation_type = match definition.node.name.node.as_str() {
                "QueryRoot" => OperationType::Query,
                "MutationRoot" => OperationType::Mutation,
                "Subscription" => OperationType::Subscription,
                _ => continue,
            }
            .to_string();
            let TypeKind::Object(object) = definition.node.kind else {
                panic!("a root type is an object");
            };
            let names = object
                .fields
                .into_iter()
                .map(|field| field.node.name.node.to_string())
                .collect();
            roots.insert(operation_type, names);
        }
        assert_eq!(roots.len(), 3);
        roots
    }

    fn label(query: &str, operation_name: Option<&str>) -> String {
        let roots = sdl_root_fields();
        let is_root_field = |operation_type: OperationType, name: &str| {
            roots
                .get(&operation_type.to_string())
                .is_some_and(|names| names.contains(name))
        };
        match async_graphql::parser::parse_query(query) {
            Ok(document) => operation_label(&document, operation_name, &is_root_field),
            Err(_) => INVALID_OPERATION.to_owned(),
        }
    }

    #[test]
    fn the_label_is_the_operation_type_and_its_sorted_root_fields() {
        assert_eq!(label("{ health { state } }", None), "query health");
        assert_eq!(
            label("query Anything { enterprises { nodes { id } } }", None),
            "query enterprises"
        );
        assert_eq!(
            label("query Q { ruleSets { version } health { state } }", Some("Q")),
            "query health,ruleSets"
        );
        assert_eq!(
            label("query { a: health { state } b: health { state } }", None),
            "query health",
            "aliases of one field are one field"
        );
        assert_eq!(
            label("mutation { uploadDocument(input: {}) { documentId } }", None),
            "mutation uploadDocument"
        );
        assert_eq!(
            label(
                "query { ...F } fragment F on QueryRoot { health { state } ... on QueryRoot { __typename } }",
                None
            ),
            "query __typename,health"
        );
        assert_eq!(
            label(
                "query A { health { state } } mutation B { uploadDocument(input: {}) { documentId } }",
                Some("B")
            ),
            "mutation uploadDocument"
        );
    }

    #[test]
    fn the_label_takes_at_most_about_a_thousand_values() {
        let roots = sdl_root_fields();
        let pairs_and_singles = |fields: usize| fields + fields * fields.saturating_sub(1) / 2;
        let values: usize = roots
            .values()
            .map(|fields| pairs_and_singles(fields.len() + 1) + 1)
            .sum::<usize>()
            + 1;
        // Every single field (with `__typename`) and every pair, `(several)` per type, `invalid`.
        assert!(
            values <= 1_500,
            "{values} values; lower ROOT_FIELDS_IN_LABEL_MAX or update the docs"
        );
        eprintln!(
            "root fields: {:?}, label values at most {values}",
            roots
                .iter()
                .map(|(kind, fields)| (kind, fields.len()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_root_fields_read_from_the_types_are_the_sdl_s() {
        let from_types =
            RootFields::of::<super::super::QueryRoot, super::super::MutationRoot, super::super::SubscriptionRoot>();
        for (kind, names) in sdl_root_fields() {
            let kind = match kind.as_str() {
                "query" => OperationType::Query,
                "mutation" => OperationType::Mutation,
                _ => OperationType::Subscription,
            };
            let mut read = match kind {
                OperationType::Query => from_types.query.clone(),
                OperationType::Mutation => from_types.mutation.clone(),
                OperationType::Subscription => from_types.subscription.clone(),
            };
            assert!(names.iter().all(|name| from_types.contains(kind, name)), "{kind}");
            read.retain(|name| !name.starts_with("__"));
            assert_eq!(read, names, "{kind}");
        }
        assert!(from_types.contains(OperationType::Query, "__schema"));
        assert!(!from_types.contains(OperationType::Mutation, "health"));
    }

    #[test]
    fn many_root_fields_are_several() {
        assert_eq!(
            label(
                "query { health { state } ruleSets { version } enterprises { nodes { id } } }",
                None
            ),
            "query (several)"
        );
    }

    #[test]
    fn client_chosen_names_never_reach_the_label() {
        for (query, name) in [
            ("query { thisFieldDoesNotExist }", None),
            ("query { health { state } noSuchField }", None),
            ("mutation { health { state } }", None),
            ("query { ...Missing }", None),
            ("query A { health { state } }", Some("B")),
            ("query A { health { state } } query B { health { state } }", None),
            ("this is not { graphql", None),
            ("", None),
        ] {
            assert_eq!(label(query, name), INVALID_OPERATION, "{query}");
        }
    }

    #[test]
    fn a_fragment_spread_twice_or_in_a_cycle_is_walked_once() {
        let mut query = String::from("query{...F24} fragment F0 on QueryRoot{health{state}}");
        for i in 1..=24 {
            query.push_str(&format!(" fragment F{i} on QueryRoot{{...F{p} ...F{p}}}", p = i - 1));
        }
        assert_eq!(label(&query, None), "query health");
        assert_eq!(
            label(
                "query { ...A } fragment A on QueryRoot { health { state } ...B } fragment B on QueryRoot { ...A }",
                None
            ),
            "query health"
        );
    }

    #[test]
    fn the_outcome_is_ok_the_first_code_or_internal() {
        let coded = |code: &str| {
            let mut error = async_graphql::ServerError::new("refused", None);
            error.extensions.get_or_insert_with(Default::default).set("code", code);
            error
        };
        assert_eq!(outcome(&async_graphql::Response::new(async_graphql::Value::Null)), "OK");
        assert_eq!(
            outcome(&async_graphql::Response::from_errors(vec![
                coded("FORBIDDEN"),
                coded("NOT_FOUND")
            ])),
            "FORBIDDEN"
        );
        assert_eq!(
            outcome(&async_graphql::Response::from_errors(vec![coded("client says <hi>")])),
            "INTERNAL"
        );
        assert_eq!(
            outcome(&async_graphql::Response::from_errors(vec![
                async_graphql::ServerError::new("bare", None)
            ])),
            "INTERNAL"
        );
    }
}
