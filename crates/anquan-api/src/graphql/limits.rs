//! Limits on what one GraphQL operation may ask for, checked on the parsed document before it
//! is validated or run, on every transport (`POST`, `GET`, the websocket): the number of
//! fields once every fragment spread is expanded, the number of aliased fields, the number of
//! root fields, and a time limit on running a query. `graphql::operations` applies them, and
//! refuses a mutation sent with `GET` there too, from the operation the request actually
//! selects.
//!
//! The expanded size is counted without expanding anything: each fragment's size is computed
//! once (memoised, in an explicit stack, so a long chain of fragments cannot overflow the
//! thread's stack) and a spread adds it, with saturating arithmetic. A document of 25
//! fragments each spreading the one before twice is 2²⁴ fields when run, and refused here in
//! microseconds.

use std::collections::HashMap;
use std::time::Duration;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, ServerError};

/// Most fields one operation may select once its fragments are expanded.
pub const QUERY_FIELDS_MAX: usize = 2_000;
/// Most aliased fields one operation may select (fragments expanded).
pub const QUERY_ALIASES_MAX: usize = 50;
/// Most root fields one operation may select (fragments expanded).
pub const QUERY_ROOT_FIELDS_MAX: usize = 30;
/// The default time one query may run before it is cancelled (mutations are not cut short).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// The code of an operation over [`QUERY_FIELDS_MAX`], [`QUERY_ALIASES_MAX`] or
/// [`QUERY_ROOT_FIELDS_MAX`].
pub const QUERY_TOO_LARGE: &str = "QUERY_TOO_LARGE";
/// The code of an operation whose cost is over the complexity limit.
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
/// The code of an operation cancelled at the time limit.
pub const TIMEOUT: &str = "TIMEOUT";
/// The code of a mutation sent with `GET`.
pub const MUTATION_OVER_GET: &str = "MUTATION_OVER_GET";

/// Request data the HTTP handler adds to a `GET` request: its operation must not be a mutation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadOnlyTransport;

/// What one selection set (or fragment, or operation) selects once expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Size {
    /// Every field, at any depth.
    pub(crate) fields: usize,
    /// Every field with an alias, at any depth.
    pub(crate) aliases: usize,
    /// The fields directly in the selection set (through fragments, not into sub-selections).
    pub(crate) top: usize,
}

/// A fragment's own selections and the fragments it spreads.
struct Local<'a> {
    size: Size,
    /// Every spread, at any depth, once per occurrence.
    spreads: Vec<&'a Name>,
    /// The spreads directly in the selection set (through inline fragments), once per occurrence.
    top_spreads: Vec<&'a Name>,
}

fn local(selection_set: &SelectionSet) -> Local<'_> {
    let mut local = Local {
        size: Size::default(),
        spreads: Vec::new(),
        top_spreads: Vec::new(),
    };
    walk(selection_set, true, &mut local);
    local
}

/// Recursion here is bounded by the nesting of selection sets, which async-graphql's parser
/// limits (it refuses a document nested more than 64 selection sets deep); fragment spreads are
/// not followed here.
fn walk<'a>(selection_set: &'a SelectionSet, top: bool, local: &mut Local<'a>) {
    for selection in &selection_set.items {
        match &selection.node {
            Selection::Field(field) => {
                local.size.fields = local.size.fields.saturating_add(1);
                if field.node.alias.is_some() {
                    local.size.aliases = local.size.aliases.saturating_add(1);
                }
                if top {
                    local.size.top = local.size.top.saturating_add(1);
                }
                walk(&field.node.selection_set.node, false, local);
            }
            Selection::FragmentSpread(spread) => {
                local.spreads.push(&spread.node.fragment_name.node);
                if top {
                    local.top_spreads.push(&spread.node.fragment_name.node);
                }
            }
            Selection::InlineFragment(inline) => walk(&inline.node.selection_set.node, top, local),
        }
    }
}

fn add(size: Size, spread: Size, top: bool) -> Size {
    Size {
        fields: size.fields.saturating_add(spread.fields),
        aliases: size.aliases.saturating_add(spread.aliases),
        top: if top {
            size.top.saturating_add(spread.top)
        } else {
            size.top
        },
    }
}

/// Every fragment's expanded size, each computed once. An unknown fragment or one in a cycle
/// counts as empty: validation refuses such a document right after this check.
fn fragment_sizes(document: &ExecutableDocument) -> HashMap<&Name, Size> {
    let locals: HashMap<&Name, Local<'_>> = document
        .fragments
        .iter()
        .map(|(name, fragment)| (name, local(&fragment.node.selection_set.node)))
        .collect();
    let mut sizes: HashMap<&Name, Size> = HashMap::with_capacity(locals.len());
    let mut in_progress: std::collections::HashSet<&Name> = std::collections::HashSet::new();
    for start in locals.keys() {
        if sizes.contains_key(start) {
            continue;
        }
        // Post-order over the spreads, with an explicit stack.
        let mut stack: Vec<&Name> = vec![start];
        while let Some(&name) = stack.last() {
            let Some(fragment) = locals.get(name) else {
                sizes.insert(name, Size::default());
                stack.pop();
                continue;
            };
            if in_progress.insert(name) {
                for spread in &fragment.spreads {
                    if !sizes.contains_key(spread) && !in_progress.contains(spread) {
                        stack.push(spread);
                    }
                }
                continue;
            }
            stack.pop();
            if sizes.contains_key(name) {
                continue;
            }
            let size = expand(fragment, &sizes);
            sizes.insert(name, size);
        }
    }
    sizes
}

/// A selection set's size with its spreads replaced by their fragments' sizes (a spread of a
/// fragment not yet sized, in a cycle, counts as empty).
fn expand(local: &Local<'_>, sizes: &HashMap<&Name, Size>) -> Size {
    let mut size = local.size;
    for spread in &local.spreads {
        let spread_size = sizes.get(spread).copied().unwrap_or_default();
        size = add(size, Size { top: 0, ..spread_size }, false);
    }
    for spread in &local.top_spreads {
        let spread_size = sizes.get(spread).copied().unwrap_or_default();
        size.top = size.top.saturating_add(spread_size.top);
    }
    size
}

/// The expanded size of every operation in a document.
pub(crate) fn operation_sizes(document: &ExecutableDocument) -> Vec<Size> {
    let sizes = fragment_sizes(document);
    document
        .operations
        .iter()
        .map(|(_, operation)| expand(&local(&operation.node.selection_set.node), &sizes))
        .collect()
}

/// The operation a request selects, as async-graphql will pick it; `None` when it picks none
/// (and refuses the request itself).
pub(crate) fn selected<'a>(document: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => Some(&operation.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name).map(|operation| &operation.node),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

pub(crate) fn refused(code: &'static str, message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

/// Checks a parsed document against the limits: every operation in it, so a document cannot
/// bring an unchecked operation along.
pub(crate) fn check(document: &ExecutableDocument) -> Result<(), ServerError> {
    for size in operation_sizes(document) {
        if size.fields > QUERY_FIELDS_MAX {
            return Err(refused(
                QUERY_TOO_LARGE,
                format!(
                    "the operation selects {} fields once its fragments are expanded; at most {QUERY_FIELDS_MAX} \
                     are accepted",
                    display_count(size.fields)
                ),
            ));
        }
        if size.aliases > QUERY_ALIASES_MAX {
            return Err(refused(
                QUERY_TOO_LARGE,
                format!(
                    "the operation has {} aliased fields; at most {QUERY_ALIASES_MAX} are accepted",
                    display_count(size.aliases)
                ),
            ));
        }
        if size.top > QUERY_ROOT_FIELDS_MAX {
            return Err(refused(
                QUERY_TOO_LARGE,
                format!(
                    "the operation has {} root fields; at most {QUERY_ROOT_FIELDS_MAX} are accepted",
                    display_count(size.top)
                ),
            ));
        }
    }
    Ok(())
}

fn display_count(count: usize) -> String {
    if count == usize::MAX {
        "more than 2^64".to_owned()
    } else {
        count.to_string()
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::OperationType;

    use super::*;

    fn size(query: &str) -> Size {
        let document = async_graphql::parser::parse_query(query).unwrap();
        operation_sizes(&document)[0]
    }

    #[test]
    fn fragments_are_counted_expanded_without_expanding_them() {
        let mut query = String::from("query{...F24} fragment F0 on QueryRoot{__typename}");
        for i in 1..=24 {
            query.push_str(&format!(" fragment F{i} on QueryRoot{{...F{p} ...F{p}}}", p = i - 1));
        }
        let size = size(&query);
        assert_eq!(size.fields, 1 << 24);
        assert_eq!(size.top, 1 << 24);
        assert!(check(&async_graphql::parser::parse_query(&query).unwrap()).is_err());
    }

    #[test]
    fn a_long_chain_of_fragments_does_not_overflow_and_saturates() {
        let mut query = String::from("query{...F0} fragment F5000 on QueryRoot{__typename}");
        for i in 0..5000 {
            query.push_str(&format!(" fragment F{i} on QueryRoot{{...F{n} ...F{n}}}", n = i + 1));
        }
        assert_eq!(size(&query).fields, usize::MAX);
    }

    #[test]
    fn aliases_nested_fields_and_root_fields_are_counted() {
        let size = size("query { a: health { b: state x } ...R } fragment R on QueryRoot { c: health { state } }");
        assert_eq!(
            size,
            Size {
                fields: 5,
                aliases: 3,
                top: 2
            }
        );
    }

    #[test]
    fn cycles_and_unknown_fragments_count_as_empty() {
        let size = size("query { x ...A ...Z } fragment A on Q { y ...B } fragment B on Q { z ...A }");
        assert!(size.fields >= 1 && size.fields < 10);
    }

    #[test]
    fn the_selected_operation_decides() {
        let document = async_graphql::parser::parse_query("query A { x } mutation B { y }").unwrap();
        assert_eq!(
            selected(&document, Some("B")).map(|operation| operation.ty),
            Some(OperationType::Mutation)
        );
        assert_eq!(
            selected(&document, Some("A")).map(|operation| operation.ty),
            Some(OperationType::Query)
        );
        assert!(selected(&document, None).is_none());
        let document = async_graphql::parser::parse_query("\u{feff}#x\nmutation { y }").unwrap();
        assert_eq!(
            selected(&document, None).map(|operation| operation.ty),
            Some(OperationType::Mutation)
        );
    }
}
