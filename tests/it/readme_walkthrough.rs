//! The README's "Five minutes with the API", run as written: the tokens minted with the
//! `anquan token` arguments the README gives, the documents and variables taken from the
//! README's own text (not copies), the ids the previous steps returned filled in, and the answers
//! it promises asserted. A README edit that breaks the walk-through fails here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::doc_examples::{
    MarkdownPart, fill_placeholders, graphql_fence_documents, markdown_parts, repository_text, single_quoted_ranges,
};
use crate::support::{Backend, TestApp, backends, data, spawn_app};

/// The heading of the walk-through in `README.md`.
const SECTION: &str = "## Five minutes with the API";

/// The walk-through's steps as the README writes them, placeholders unfilled.
pub(crate) struct Walkthrough {
    /// `VARIABLE=$(… -- token ARGS)` lines, in order: the variable and the arguments.
    pub(crate) tokens: Vec<(String, Vec<String>)>,
    pub(crate) register: JsonRequest,
    /// The summary the README says registering answers, `…` standing for a number.
    pub(crate) registered_summary: String,
    pub(crate) upload: UploadRequest,
    pub(crate) review_queue: String,
    pub(crate) approve: String,
    pub(crate) return_with_feedback: String,
    pub(crate) enterprise_as_of: String,
}

/// A curl request with a JSON body.
pub(crate) struct JsonRequest {
    /// The shell variable holding the bearer token.
    pub(crate) token: String,
    pub(crate) query: String,
    pub(crate) variables: Value,
}

/// A curl GraphQL multipart request.
pub(crate) struct UploadRequest {
    pub(crate) token: String,
    /// The `operations` part: the query and its variables.
    pub(crate) operations: Value,
    /// The `map` part: which variable each file part fills.
    pub(crate) map: Value,
    /// The file part's name and file name (`-F 0=@certificate.pdf`).
    pub(crate) part: String,
    pub(crate) file_name: String,
}

impl Walkthrough {
    /// Reads the walk-through from `README.md`, panicking with what is missing.
    pub(crate) fn from_readme() -> Walkthrough {
        let readme = repository_text("README.md");
        let start = readme
            .find(SECTION)
            .unwrap_or_else(|| panic!("README.md has no \"{SECTION}\""));
        let section = &readme[start..];
        let section = &section[..section[SECTION.len()..]
            .find("\n## ")
            .map_or(section.len(), |end| end + SECTION.len())];
        let mut shell = String::new();
        let mut graphql = Vec::new();
        let mut prose = String::new();
        for part in markdown_parts(section) {
            match part {
                MarkdownPart::Fence { info, text, .. } if info == "sh" => shell.push_str(&text),
                MarkdownPart::Fence { info, text, .. } if info == "graphql" => {
                    graphql.extend(graphql_fence_documents(&text).into_iter().map(|(_, document)| document));
                }
                MarkdownPart::Fence { .. } => {}
                MarkdownPart::Prose { text, .. } => prose.push_str(&text),
            }
        }
        let document_with = |needle: &str| {
            graphql
                .iter()
                .find(|document| document.contains(needle))
                .unwrap_or_else(|| panic!("no GraphQL document with {needle} in the README's walk-through"))
                .clone()
        };
        Walkthrough {
            tokens: token_lines(&shell),
            register: json_request(&shell),
            registered_summary: quoted_summary(&prose),
            upload: upload_request(&shell),
            review_queue: document_with("reviewQueue"),
            approve: document_with("decision: APPROVE"),
            return_with_feedback: document_with("decision: RETURN"),
            enterprise_as_of: document_with("asOf"),
        }
    }

    /// The arguments of the token line that sets `variable`.
    pub(crate) fn token_arguments(&self, variable: &str) -> &[String] {
        &self
            .tokens
            .iter()
            .find(|(name, _)| name == variable)
            .unwrap_or_else(|| panic!("the README mints no ${variable}"))
            .1
    }

    /// Whether a summary is one the README's quoted summary stands for (`…` any number).
    pub(crate) fn summary_matches(&self, summary: &str) -> bool {
        let mut pieces = self.registered_summary.split('…');
        let Some(first) = pieces.next() else {
            return false;
        };
        let Some(mut rest) = summary.strip_prefix(first) else {
            return false;
        };
        for piece in pieces {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return false;
            }
            let Some(after) = rest[digits..].strip_prefix(piece) else {
                return false;
            };
            rest = after;
        }
        rest.is_empty()
    }
}

/// `NAME=$(… -- token ARGS)` lines.
fn token_lines(shell: &str) -> Vec<(String, Vec<String>)> {
    shell
        .lines()
        .filter_map(|line| {
            let (variable, command) = line.trim().split_once("=$(")?;
            let (_, arguments) = command.split_once("-- token ")?;
            let arguments = arguments.trim_end().strip_suffix(')')?;
            Some((
                variable.to_owned(),
                arguments.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect()
}

/// The shell variable after `Bearer $` in the curl command around `offset`.
fn bearer_before(shell: &str, offset: usize) -> String {
    let curl = shell[..offset]
        .rfind("curl ")
        .unwrap_or_else(|| panic!("no curl before the request body in the README"));
    let after = shell[curl..offset]
        .split_once("Bearer $")
        .unwrap_or_else(|| panic!("the README's curl sends no bearer token"))
        .1;
    after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The single-quoted value after `prefix` (`-d `, `operations=`, `map=`), as JSON, and where
/// it starts.
fn quoted_json_after(shell: &str, prefix: &str) -> (usize, Value) {
    let (start, end) = single_quoted_ranges(shell)
        .into_iter()
        .find(|(start, _)| shell[..start - 1].ends_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}'…' in the README's walk-through"));
    let value = serde_json::from_str(&shell[start..end])
        .unwrap_or_else(|error| panic!("the README's {prefix}'…' is not JSON: {error}"));
    (start, value)
}

fn json_request(shell: &str) -> JsonRequest {
    let (start, body) = quoted_json_after(shell, "-d ");
    JsonRequest {
        token: bearer_before(shell, start),
        query: body["query"].as_str().expect("the -d body has a query").to_owned(),
        variables: body["variables"].clone(),
    }
}

fn upload_request(shell: &str) -> UploadRequest {
    let (start, operations) = quoted_json_after(shell, "operations=");
    let (_, map) = quoted_json_after(shell, "map=");
    let (_, file) = shell
        .split_once("=@")
        .unwrap_or_else(|| panic!("the README's upload names no file (-F 0=@…)"));
    let part = shell
        .split_once("=@")
        .map(|(before, _)| before.rsplit(' ').next().unwrap_or_default())
        .unwrap_or_default();
    UploadRequest {
        token: bearer_before(shell, start),
        operations,
        map,
        part: part.to_owned(),
        file_name: file.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

/// The summary quoted as `"summary": "…"` in the prose.
fn quoted_summary(prose: &str) -> String {
    let (_, after) = prose
        .split_once("\"summary\": \"")
        .unwrap_or_else(|| panic!("the README's walk-through quotes no summary"));
    after.split('"').next().unwrap_or_default().to_owned()
}

/// The four counts of a summary `已落实 x / 未落实 y / 未到期 w / 不适用 z`.
fn summary_counts(summary: &str) -> Option<[u32; 4]> {
    let mut counts = [0; 4];
    let mut parts = summary.split(" / ");
    for (count, label) in counts.iter_mut().zip(["已落实 ", "未落实 ", "未到期 ", "不适用 "]) {
        *count = parts.next()?.strip_prefix(label)?.parse().ok()?;
    }
    parts.next().is_none().then_some(counts)
}

/// Fills `<name>` placeholders in every string of a JSON value.
pub(crate) fn fill_json(value: &Value, values: &[(&str, &str)]) -> Value {
    serde_json::from_str(&fill_placeholders(&value.to_string(), values)).unwrap()
}

/// Sends the README's multipart upload with `content` as the file; returns the response.
async fn upload(app: &TestApp, token: &str, request: &UploadRequest, id: &str, content: &[u8]) -> Value {
    let operations = fill_json(&request.operations, &[("id", id)]);
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", request.map.to_string())
        .part(
            request.part.clone(),
            reqwest::multipart::Part::bytes(content.to_vec())
                .file_name(request.file_name.clone())
                .mime_str("application/pdf")
                .unwrap(),
        );
    app.client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written() {
    let walkthrough = Walkthrough::from_readme();
    assert!(
        walkthrough.registered_summary.starts_with("已落实 "),
        "the README quotes {:?} as the summary, which is not one",
        walkthrough.registered_summary
    );
    for backend in backends() {
        walk(&walkthrough, backend).await;
    }
}

async fn walk(walkthrough: &Walkthrough, backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let mut tokens = BTreeMap::new();
    for (variable, arguments) in &walkthrough.tokens {
        if !arguments.iter().any(|argument| argument.contains('<')) {
            let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
            tokens.insert(variable.clone(), app.token(&arguments));
        }
    }
    let token = |variable: &str| -> String {
        tokens
            .get(variable)
            .unwrap_or_else(|| panic!("the README uses ${variable} before minting it"))
            .clone()
    };

    // Register: the README's request, its summary as promised.
    let register = &walkthrough.register;
    let response = app
        .graphql(
            Some(&token(&register.token)),
            &register.query,
            register.variables.clone(),
        )
        .await;
    let enterprise = &data(&response)["registerEnterprise"]["enterprise"];
    let id = enterprise["id"].as_str().unwrap().to_owned();
    let summary = enterprise["compliance"]["summary"].as_str().unwrap();
    assert!(
        walkthrough.summary_matches(summary),
        "{backend:?}: registering answered {summary:?}, the README promises {:?}",
        walkthrough.registered_summary
    );

    // The enterprise's own token, with the id it returned; two uploads, one to approve and
    // one to return.
    let upload_token = walkthrough.upload.token.clone();
    let arguments: Vec<String> = walkthrough
        .token_arguments(&upload_token)
        .iter()
        .map(|argument| fill_placeholders(argument, &[("id", &id)]))
        .collect();
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let enterprise_token = app.token(&arguments);
    let mut documents = Vec::new();
    for content in [&b"%PDF-1.4 approved"[..], &b"%PDF-1.4 returned"[..]] {
        let response = upload(&app, &enterprise_token, &walkthrough.upload, &id, content).await;
        documents.push(
            data(&response)["uploadDocument"]["documentId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (approved, returned) = (&documents[0], &documents[1]);

    // The town officer's review queue shows both; approve one, return the other.
    let officer = token("OFFICER");
    let response = app.graphql(Some(&officer), &walkthrough.review_queue, json!({})).await;
    let queued: Vec<&str> = data(&response)["reviewQueue"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap())
        .collect();
    assert!(
        queued.contains(&approved.as_str()) && queued.contains(&returned.as_str()),
        "{backend:?}: the review queue {queued:?} lacks {documents:?}"
    );
    let approve = fill_placeholders(&walkthrough.approve, &[("id", &id), ("doc", approved)]);
    let response = app.graphql(Some(&officer), &approve, json!({})).await;
    let summary = data(&response)["reviewDocument"]["enterprise"]["compliance"]["summary"]
        .as_str()
        .unwrap();
    assert_eq!(
        summary_counts(summary).map(|counts| counts.iter().sum::<u32>()),
        Some(21),
        "{backend:?}: approving answered the summary {summary:?}"
    );
    let return_with_feedback = fill_placeholders(&walkthrough.return_with_feedback, &[("id", &id), ("doc", returned)]);
    let response = app.graphql(Some(&officer), &return_with_feedback, json!({})).await;
    assert_eq!(data(&response)["reviewDocument"]["documentId"], returned.as_str());

    // The enterprise as of the README's instant: 21 indicators, each with its reasons, and the
    // approved certificate valid until the instant the upload stated.
    let enterprise_as_of = fill_placeholders(&walkthrough.enterprise_as_of, &[("id", &id)]);
    let response = app
        .graphql(Some(&token(&register.token)), &enterprise_as_of, json!({}))
        .await;
    let compliance = &data(&response)["enterprise"]["compliance"];
    let indicators = compliance["indicators"].as_array().unwrap();
    assert_eq!(indicators.len(), 21, "{backend:?}: {compliance}");
    assert!(
        indicators
            .iter()
            .filter(|indicator| indicator["state"] == "NOT_IMPLEMENTED")
            .all(|indicator| indicator["reasons"]
                .as_array()
                .is_some_and(|reasons| !reasons.is_empty())),
        "{backend:?}: an indicator not implemented without its reasons: {compliance}"
    );
    let uploaded = &walkthrough.upload.operations["variables"]["input"];
    let requirement = indicators
        .iter()
        .flat_map(|indicator| indicator["requirements"].as_array().unwrap())
        .find(|requirement| requirement["code"] == uploaded["requirement"])
        .unwrap_or_else(|| {
            panic!(
                "{backend:?}: no requirement {} in {compliance}",
                uploaded["requirement"]
            )
        });
    let instant = |value: &Value| chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap();
    assert_eq!(
        (requirement["state"].as_str(), instant(&requirement["validUntil"])),
        (Some("SATISFIED"), instant(&uploaded["validUntil"])),
        "{backend:?}: {requirement}"
    );
    assert_eq!(
        summary_counts(compliance["summary"].as_str().unwrap()).map(|counts| counts.iter().sum::<u32>()),
        Some(21),
        "{backend:?}: {compliance}"
    );
    eprintln!("{backend:?}: the README's walk-through ran as written: {requirement}");
    app.stop().await;
}
