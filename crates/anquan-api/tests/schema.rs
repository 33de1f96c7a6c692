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

/// The scalar policy (`anquan_api::graphql::scalars`), on the Rust side: no GraphQL-facing
/// field, argument or result is a 64-bit (or pointer-sized) integer, which async-graphql would
/// send as `Int` (32 bits in the specification). Such values are `Int64`.
#[test]
fn no_64_bit_integer_is_typed_int() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/graphql");
    let mut offenders = Vec::new();
    let mut files = vec![root];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let file = syn::parse_file(&source).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        checked += graphql_integers(&file.items, &path.display().to_string(), &mut offenders);
    }
    assert!(
        checked > 100,
        "the walk found only {checked} GraphQL fields and arguments"
    );
    assert!(
        offenders.is_empty(),
        "64-bit integers typed as GraphQL Int (use anquan_api::graphql::Int64):\n{}",
        offenders.join("\n")
    );
}

/// The scalar policy on the schema's side: a field or argument whose name says it holds a
/// 64-bit value (a version, a position, a size in bytes, an amount in yuan) is `Int64`.
#[test]
fn names_that_say_64_bits_are_int64() {
    let sdl = anquan_api::sdl();
    assert!(sdl.contains("scalar Int64"), "the schema declares no Int64 scalar");
    let document = async_graphql::parser::parse_schema(&sdl).unwrap();
    let says_64_bits = |name: &str| {
        let name = name.to_ascii_lowercase();
        ["version", "position", "bytes", "yuan", "attempts", "sequence"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
            && name != "schemaversion"
    };
    let base = |ty: &async_graphql::parser::types::Type| {
        let text = ty.to_string();
        text.trim_matches(|character| matches!(character, '[' | ']' | '!'))
            .to_owned()
    };
    let mut offenders = Vec::new();
    let mut seen = 0;
    for definition in &document.definitions {
        let async_graphql::parser::types::TypeSystemDefinition::Type(definition) = definition else {
            continue;
        };
        let owner = definition.node.name.node.as_str();
        let mut check = |name: &str, ty: &async_graphql::parser::types::Type| {
            if says_64_bits(name) {
                seen += 1;
                if base(ty) == "Int" {
                    offenders.push(format!("{owner}.{name}: {ty}"));
                }
            }
        };
        match &definition.node.kind {
            async_graphql::parser::types::TypeKind::Object(object) => {
                for field in &object.fields {
                    check(&field.node.name.node, &field.node.ty.node);
                    for argument in &field.node.arguments {
                        check(&argument.node.name.node, &argument.node.ty.node);
                    }
                }
            }
            async_graphql::parser::types::TypeKind::InputObject(input) => {
                for field in &input.fields {
                    check(&field.node.name.node, &field.node.ty.node);
                }
            }
            _ => {}
        }
    }
    assert!(
        seen > 10,
        "only {seen} fields named like 64-bit values: the walk is broken"
    );
    assert!(
        offenders.is_empty(),
        "named like 64-bit values, not Int64: {offenders:?}"
    );
}

/// Counts the GraphQL-facing fields, arguments and results in `items`, pushing those typed with
/// a 64-bit integer to `offenders`.
fn graphql_integers(items: &[syn::Item], file: &str, offenders: &mut Vec<String>) -> usize {
    let mut checked = 0;
    for item in items {
        match item {
            syn::Item::Struct(item) if has_derive(&item.attrs, &["SimpleObject", "InputObject"]) => {
                for field in item.fields.iter().filter(|field| !skipped(&field.attrs)) {
                    checked += 1;
                    if let Some(integer) = wide_integer(&field.ty) {
                        let name = field.ident.as_ref().map(ToString::to_string).unwrap_or_default();
                        offenders.push(format!("{file}: {}.{name}: {integer}", item.ident));
                    }
                }
            }
            syn::Item::Impl(item)
                if item.attrs.iter().any(|attr| {
                    attr.path().segments.last().is_some_and(|segment| {
                        ["Object", "ComplexObject", "Subscription"].contains(&segment.ident.to_string().as_str())
                    })
                }) =>
            {
                for member in &item.items {
                    let syn::ImplItem::Fn(function) = member else {
                        continue;
                    };
                    let name = function.sig.ident.to_string();
                    for input in &function.sig.inputs {
                        if let syn::FnArg::Typed(argument) = input {
                            checked += 1;
                            if let Some(integer) = wide_integer(&argument.ty) {
                                offenders.push(format!("{file}: {name}(…): argument {integer}"));
                            }
                        }
                    }
                    if let syn::ReturnType::Type(_, ty) = &function.sig.output {
                        checked += 1;
                        if let Some(integer) = wide_integer(ty) {
                            offenders.push(format!("{file}: {name}(…) -> {integer}"));
                        }
                    }
                }
            }
            syn::Item::Mod(module) => {
                if let Some((_, items)) = &module.content {
                    checked += graphql_integers(items, file, offenders);
                }
            }
            _ => {}
        }
    }
    checked
}

/// Whether a field carries `#[graphql(skip)]` (it is not part of the schema).
fn skipped(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().filter(|attr| attr.path().is_ident("graphql")).any(|attr| {
        let mut skip = false;
        let _ = attr.parse_nested_meta(|meta| {
            skip |= meta.path.is_ident("skip");
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
        skip
    })
}

fn has_derive(attrs: &[syn::Attribute], names: &[&str]) -> bool {
    attrs.iter().filter(|attr| attr.path().is_ident("derive")).any(|attr| {
        let mut found = false;
        let _ = attr.parse_nested_meta(|meta| {
            found |= meta
                .path
                .segments
                .last()
                .is_some_and(|segment| names.contains(&segment.ident.to_string().as_str()));
            Ok(())
        });
        found
    })
}

/// The 64-bit or pointer-sized integer a type is or wraps (`Option`, `Vec`, `Result`, …).
fn wide_integer(ty: &syn::Type) -> Option<String> {
    const WIDE: [&str; 6] = ["u64", "i64", "usize", "isize", "u128", "i128"];
    match ty {
        syn::Type::Path(path) => {
            let segment = path.path.segments.last()?;
            let name = segment.ident.to_string();
            if WIDE.contains(&name.as_str()) {
                return Some(name);
            }
            let syn::PathArguments::AngleBracketed(arguments) = &segment.arguments else {
                return None;
            };
            // Only the first type argument is the value (`Result<T, E>`'s `E` is not).
            arguments.args.iter().find_map(|argument| match argument {
                syn::GenericArgument::Type(inner) => Some(wide_integer(inner)),
                _ => None,
            })?
        }
        syn::Type::Reference(reference) => wide_integer(&reference.elem),
        syn::Type::Slice(slice) => wide_integer(&slice.elem),
        syn::Type::Array(array) => wide_integer(&array.elem),
        _ => None,
    }
}
