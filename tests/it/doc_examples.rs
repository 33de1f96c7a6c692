//! The GraphQL in the docs cannot drift: every document in `README.md`, `deploy/README.md` and
//! `docs/` is extracted and validated against `schema.graphql` with apollo-compiler, and each
//! one that fails is named by its file and line.
//!
//! What counts as a document (the convention the docs follow):
//! - a ```` ```graphql ```` fence: one document per line, or per run of lines whose braces balance;
//! - a ```` ```sh ```` fence: every single-quoted JSON body with a `"query"` (curl's `-d '…'`,
//!   `-F operations='…'`), whose `"variables"` are checked too, and any other `"query": "…"`;
//! - prose: a backticked span that starts with a root field of the schema (or with `{`, `query`,
//!   `mutation`, `subscription`) and has a selection `{ … }` or an argument list `( … )`; a root
//!   field alone is wrapped in `{ }` (`mutation { }`, `subscription { }` for those roots) and,
//!   without a selection where its type needs one, given `{ __typename }`;
//! - a `.graphql` file under `docs/`: one document.
//!
//! Placeholders are filled before validating: `"…"` is a sample string, `…` elsewhere is a
//! selection (`__typename`), and `<name>` (`<id>`, `<doc>`, `<cursor>`, …) a sample value.

use std::path::{Path, PathBuf};

use apollo_compiler::ast::OperationType;
use apollo_compiler::executable::Operation;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::Value;

/// Where a document was found in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    GraphqlFence,
    ShellBody,
    ShellQuery,
    ProseSpan,
    GraphqlFile,
}

/// One GraphQL document found in the docs, placeholders as written.
#[derive(Debug, Clone)]
pub(crate) struct DocExample {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) origin: Origin,
    pub(crate) document: String,
    /// The `"variables"` of a shell body, when it has them.
    pub(crate) variables: Option<Value>,
}

/// A block of a Markdown file: a fence with its info string, or a paragraph of prose; `line`
/// is the 1-based line of its first content line.
#[derive(Debug, Clone)]
pub(crate) enum MarkdownPart {
    Fence { info: String, line: usize, text: String },
    Prose { line: usize, text: String },
}

/// `schema.graphql`, parsed and validated.
pub(crate) struct SchemaUnderTest {
    schema: Valid<Schema>,
}

/// The sample every `<name>` placeholder gets when no value is given for it.
const SAMPLE_ID: &str = "0190c1d2-0000-7000-8000-000000000000";

impl DocExample {
    /// `file:line`, how a failure names the document.
    pub(crate) fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

impl SchemaUnderTest {
    /// The repository's `schema.graphql`.
    pub(crate) fn load() -> SchemaUnderTest {
        SchemaUnderTest::parse(&repository_text("schema.graphql"))
    }

    pub(crate) fn parse(sdl: &str) -> SchemaUnderTest {
        let schema = Schema::parse_and_validate(sdl, "schema.graphql")
            .unwrap_or_else(|invalid| panic!("schema.graphql is not a valid schema:\n{}", invalid.errors));
        SchemaUnderTest { schema }
    }

    /// The root a field of that name belongs to (query first), and whether its type needs a
    /// selection.
    fn root_field(&self, name: &str) -> Option<(OperationType, bool)> {
        [
            OperationType::Query,
            OperationType::Mutation,
            OperationType::Subscription,
        ]
        .into_iter()
        .find_map(|operation_type| {
            let root = self.schema.root_operation(operation_type)?;
            let field = self.schema.get_object(root)?.fields.get(name)?;
            let needs_selection = self
                .schema
                .types
                .get(field.ty.inner_named_type())
                .is_some_and(|ty| !ty.is_leaf());
            Some((operation_type, needs_selection))
        })
    }

    /// Checks one example: its document (placeholders filled) parses and validates, and its
    /// variables, if any, coerce to the operation's variable types. The error names the place.
    pub(crate) fn check(&self, example: &DocExample) -> Result<(), String> {
        let place = example.place();
        let document = fill_samples(&example.document);
        let valid = ExecutableDocument::parse_and_validate(&self.schema, document.as_str(), place.as_str())
            .map_err(|invalid| format!("{place}: {document}\n{}", invalid.errors))?;
        let Some(variables) = &example.variables else {
            return Ok(());
        };
        let variables: Value = serde_json::from_str(&fill_samples(&variables.to_string()))
            .map_err(|error| format!("{place}: variables are not JSON once filled: {error}"))?;
        for operation in valid.operations.iter() {
            let values = uploads_filled(operation, &variables);
            let values: JsonMap = serde_json::from_value(values)
                .map_err(|error| format!("{place}: variables are not a JSON object: {error}"))?;
            apollo_compiler::request::coerce_variable_values(&self.schema, operation, &values)
                .map_err(|error| format!("{place}: {document}\nvariables {variables}: {}", error.message()))?;
        }
        Ok(())
    }

    /// Turns a backticked span into a document when it is one by the module's convention.
    fn prose_document(&self, span: &str) -> Option<String> {
        let span = span.trim();
        if let Some(inner) = span.strip_prefix('{') {
            let (name, _) = split_name(inner.trim_start());
            return self.root_field(name).map(|_| span.to_owned());
        }
        let (name, rest) = split_name(span);
        if matches!(name, "query" | "mutation" | "subscription") && span.contains('{') {
            return Some(span.to_owned());
        }
        let (operation_type, needs_selection) = self.root_field(name)?;
        let rest = rest.trim_start();
        let document = if rest.starts_with('{') || (rest.starts_with('(') && rest.contains('{')) {
            span.to_owned()
        } else if rest.starts_with('(') && rest.ends_with(')') {
            if needs_selection {
                format!("{span} {{ __typename }}")
            } else {
                span.to_owned()
            }
        } else {
            return None;
        };
        Some(match operation_type {
            OperationType::Query => format!("{{ {document} }}"),
            OperationType::Mutation => format!("mutation {{ {document} }}"),
            OperationType::Subscription => format!("subscription {{ {document} }}"),
        })
    }

    /// Every document in one documentation file (Markdown or GraphQL), as written.
    pub(crate) fn examples_in(&self, file: &str, text: &str) -> Vec<DocExample> {
        if file.ends_with(".graphql") {
            return vec![DocExample {
                file: file.to_owned(),
                line: 1,
                origin: Origin::GraphqlFile,
                document: text.to_owned(),
                variables: None,
            }];
        }
        let mut examples = Vec::new();
        for part in markdown_parts(text) {
            match part {
                MarkdownPart::Fence { info, line, text } if info == "graphql" => {
                    examples.extend(
                        graphql_fence_documents(&text)
                            .into_iter()
                            .map(|(offset, document)| DocExample {
                                file: file.to_owned(),
                                line: line + offset,
                                origin: Origin::GraphqlFence,
                                document,
                                variables: None,
                            }),
                    );
                }
                MarkdownPart::Fence { info, line, text } if matches!(info.as_str(), "sh" | "bash" | "shell") => {
                    examples.extend(shell_examples(file, line, &text));
                }
                MarkdownPart::Fence { .. } => {}
                MarkdownPart::Prose { line, text } => {
                    for (offset, span) in backtick_spans(&text) {
                        if let Some(document) = self.prose_document(&span) {
                            examples.push(DocExample {
                                file: file.to_owned(),
                                line: line + offset,
                                origin: Origin::ProseSpan,
                                document,
                                variables: None,
                            });
                        }
                    }
                }
            }
        }
        examples
    }
}

/// A GraphQL name at the start of `text`, and the rest.
fn split_name(text: &str) -> (&str, &str) {
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    text.split_at(name_end)
}

/// The repository's root folder.
pub(crate) fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the repository, by its path from the root.
pub(crate) fn repository_text(relative: &str) -> String {
    let path = repository_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// The documentation files whose GraphQL is checked, by their path from the root.
pub(crate) fn documented_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned(), "deploy/README.md".to_owned()];
    let mut folders = vec![PathBuf::from("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(repository_root().join(&folder)).unwrap() {
            let entry = entry.unwrap();
            let relative = folder.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                folders.push(relative);
            } else if relative
                .extension()
                .is_some_and(|extension| extension == "md" || extension == "graphql")
            {
                files.push(relative.to_str().unwrap().to_owned());
            }
        }
    }
    files.sort();
    files
}

/// Splits Markdown into fences and paragraphs of prose.
pub(crate) fn markdown_parts(markdown: &str) -> Vec<MarkdownPart> {
    let mut parts = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    let mut prose: Option<(usize, String)> = None;
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            parts.extend(prose.take().map(|(line, text)| MarkdownPart::Prose { line, text }));
            let mut text = String::new();
            for (_, line) in lines.by_ref() {
                if line.trim_start().starts_with("```") {
                    break;
                }
                text.push_str(line);
                text.push('\n');
            }
            parts.push(MarkdownPart::Fence {
                info: info.trim().to_owned(),
                line: index + 2,
                text,
            });
        } else if trimmed.is_empty() {
            parts.extend(prose.take().map(|(line, text)| MarkdownPart::Prose { line, text }));
        } else {
            let (_, text) = prose.get_or_insert_with(|| (index + 1, String::new()));
            text.push_str(line);
            text.push('\n');
        }
    }
    parts.extend(prose.map(|(line, text)| MarkdownPart::Prose { line, text }));
    parts
}

/// The documents of a GraphQL fence with the line each starts on (0-based in the fence): a
/// document ends at the end of a line where its braces balance.
pub(crate) fn graphql_fence_documents(fence: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut depth = 0_i64;
    for (index, line) in fence.lines().enumerate() {
        if current.is_none() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        let (_, text) = current.get_or_insert_with(|| (index, String::new()));
        text.push_str(line);
        text.push('\n');
        depth += brace_balance(line);
        if depth <= 0 && text.contains('{') {
            documents.extend(current.take());
            depth = 0;
        }
    }
    documents.extend(current);
    documents
}

/// Opening minus closing braces in a line of GraphQL, outside string literals.
fn brace_balance(line: &str) -> i64 {
    let mut balance = 0;
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => balance += 1,
            '}' if !in_string => balance -= 1,
            _ => {}
        }
    }
    balance
}

/// The GraphQL of a shell fence that starts on `line`: single-quoted JSON bodies with a query,
/// and any other `"query": "…"` string.
fn shell_examples(file: &str, line: usize, fence: &str) -> Vec<DocExample> {
    let line_of = |offset: usize| line + fence[..offset].matches('\n').count();
    let mut examples = Vec::new();
    let mut covered = Vec::new();
    for (start, end) in single_quoted_ranges(fence) {
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&fence[start..end]) else {
            continue;
        };
        let Some(Value::String(query)) = body.get("query") else {
            continue;
        };
        covered.push(start..end);
        examples.push(DocExample {
            file: file.to_owned(),
            line: line_of(start + fence[start..end].find("\"query\"").unwrap_or(0)),
            origin: Origin::ShellBody,
            document: query.clone(),
            variables: body.get("variables").cloned(),
        });
    }
    for (offset, _) in fence.match_indices("\"query\"") {
        if covered.iter().any(|range| range.contains(&offset)) {
            continue;
        }
        if let Some(query) = json_string_after_colon(&fence[offset + "\"query\"".len()..]) {
            examples.push(DocExample {
                file: file.to_owned(),
                line: line_of(offset),
                origin: Origin::ShellQuery,
                document: query,
                variables: None,
            });
        }
    }
    examples
}

/// The byte ranges inside each pair of single quotes of a shell text.
pub(crate) fn single_quoted_ranges(shell: &str) -> Vec<(usize, usize)> {
    let quotes: Vec<usize> = shell.match_indices('\'').map(|(offset, _)| offset).collect();
    quotes.chunks_exact(2).map(|pair| (pair[0] + 1, pair[1])).collect()
}

/// The JSON string literal after `: ` at the start of `text`, decoded.
fn json_string_after_colon(text: &str) -> Option<String> {
    let text = text.trim_start().strip_prefix(':')?.trim_start();
    if !text.starts_with('"') {
        return None;
    }
    let mut escaped = false;
    for (offset, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return serde_json::from_str(&text[..=offset]).ok(),
            _ => {}
        }
    }
    None
}

/// The backticked spans of a paragraph with the line each starts on (0-based in the paragraph),
/// line breaks inside a span read as spaces.
pub(crate) fn backtick_spans(paragraph: &str) -> Vec<(usize, String)> {
    let ticks: Vec<usize> = paragraph.match_indices('`').map(|(offset, _)| offset).collect();
    ticks
        .chunks_exact(2)
        .map(|pair| {
            let line = paragraph[..pair[0]].matches('\n').count();
            (line, paragraph[pair[0] + 1..pair[1]].replace('\n', " "))
        })
        .collect()
}

/// Fills the placeholders with the given values: each `<name>` with its value.
pub(crate) fn fill_placeholders(text: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text.to_owned(), |text, (name, value)| {
        text.replace(&format!("<{name}>"), value)
    })
}

/// Fills every placeholder with a sample: `"…"` a string, `…` a selection, `<name>` an id.
pub(crate) fn fill_samples(text: &str) -> String {
    let text = text.replace("\"…\"", "\"sample\"").replace('…', "__typename");
    let mut filled = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let name_end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        filled.push_str(&rest[..open]);
        if name_end > 0 && after[name_end..].starts_with('>') {
            filled.push_str(SAMPLE_ID);
            rest = &after[name_end + 1..];
        } else {
            filled.push('<');
            rest = after;
        }
    }
    filled.push_str(rest);
    filled
}

/// The variables with a sample in place of each `null` an `Upload` variable holds (a multipart
/// request's `map` puts the file there).
fn uploads_filled(operation: &Operation, variables: &Value) -> Value {
    let mut variables = variables.clone();
    if let Value::Object(values) = &mut variables {
        for definition in &operation.variables {
            if definition.ty.inner_named_type() == "Upload"
                && values.get(definition.name.as_str()).is_none_or(Value::is_null)
            {
                values.insert(definition.name.to_string(), Value::from("0"));
            }
        }
    }
    variables
}

/// Every document in every documented file.
pub(crate) fn all_examples(schema: &SchemaUnderTest) -> Vec<DocExample> {
    documented_files()
        .iter()
        .flat_map(|file| schema.examples_in(file, &repository_text(file)))
        .collect()
}

#[test]
fn every_graphql_example_in_the_docs_validates_against_the_schema() {
    let schema = SchemaUnderTest::load();
    let examples = all_examples(&schema);
    for origin in [
        Origin::GraphqlFence,
        Origin::ShellBody,
        Origin::ProseSpan,
        Origin::GraphqlFile,
    ] {
        assert!(
            examples.iter().any(|example| example.origin == origin),
            "no {origin:?} document found: the extraction is broken, not the docs"
        );
    }
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|example| schema.check(example).err())
        .collect();
    eprintln!(
        "checked {} GraphQL documents in {} files",
        examples.len(),
        documented_files().len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} GraphQL documents in the docs do not validate against schema.graphql:\n\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_drifted_field_is_named_by_its_file_and_line() {
    let schema = SchemaUnderTest::load();
    let markdown = "# Drift\n\nText with `ruleSets { version digest live }` in it.\n\n```graphql\n{ ruleSets { version digestOfOld } }\n```\n\nAnd `ruleSets { versionName }` on\na line; `{ reviewQueue(town: \"许村\") { nodes { id } } }`.\n\n```sh\ncurl -d '{\"query\": \"mutation($input: RegisterEnterpriseInput!) { registerEnterprise(input: $input) { enterprise { id } } }\", \"variables\": {\"input\": {\"nameOfOld\": \"x\"}}}'\n```\n";
    let examples = schema.examples_in("DRIFT.md", markdown);
    let places: Vec<String> = examples.iter().map(DocExample::place).collect();
    assert_eq!(
        places,
        ["DRIFT.md:3", "DRIFT.md:6", "DRIFT.md:9", "DRIFT.md:10", "DRIFT.md:13"],
        "{examples:#?}"
    );
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|example| schema.check(example).err())
        .collect();
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(failures[0].starts_with("DRIFT.md:6:") && failures[0].contains("digestOfOld"));
    assert!(failures[1].starts_with("DRIFT.md:9:") && failures[1].contains("versionName"));
    assert!(failures[2].starts_with("DRIFT.md:13:") && failures[2].contains("nameOfOld"));
}
