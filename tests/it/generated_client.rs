//! A client generated from `schema.graphql` with a mainstream generator walks the README: at
//! test time ariadne-codegen (Python, from PyPI) generates a typed client from the current
//! schema and `docs/client/walkthrough.graphql` into a temporary package, and
//! `docs/client/walkthrough.py` runs the README's walk-through through it against a live
//! service. Nothing generated is committed, so the client always follows the schema.
//!
//! It needs a Python with ariadne-codegen installed, named by `ANQUAN_TEST_CODEGEN_PYTHON`
//! (`.ci/run` installs one into `target/anquan-ci/codegen-venv/`); without it the test is
//! skipped with the reason printed, and with `ANQUAN_TEST_REQUIRE_CODEGEN=1` it fails instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::doc_examples::{repository_root, repository_text};
use crate::readme_walkthrough::Walkthrough;
use crate::support::{Backend, TestApp, spawn_app};

/// How the generated client maps each custom scalar `schema.graphql` may declare, as the body of
/// ariadne-codegen's `[tool.ariadne-codegen.scalars.<name>]` table (functions from
/// `docs/client/scalars.py`). `Upload` is ariadne-codegen's own class, sent as multipart.
const SCALAR_MAPPINGS: &[(&str, &str)] = &[
    (
        "DateTime",
        "type = \"datetime.datetime\"\nparse = \".scalars.parse_datetime\"\nserialize = \".scalars.serialize_datetime\"",
    ),
    (
        "Int64",
        "type = \"int\"\nparse = \".scalars.parse_int64\"\nserialize = \".scalars.serialize_int64\"",
    ),
];
/// The custom scalars ariadne-codegen handles itself.
const GENERATOR_SCALARS: &[&str] = &["Upload"];
/// How long generating the client, and then the walk-through, may take.
const CODEGEN_TIMEOUT: Duration = Duration::from_secs(120);
/// The name of the generated package.
const PACKAGE: &str = "anquan_client";

/// The Python that has ariadne-codegen, or `None` (the reason printed) when the test may skip.
fn codegen_python() -> Option<PathBuf> {
    match std::env::var_os("ANQUAN_TEST_CODEGEN_PYTHON") {
        Some(python) => Some(PathBuf::from(python)),
        None if std::env::var("ANQUAN_TEST_REQUIRE_CODEGEN").is_ok_and(|value| value == "1") => {
            panic!("ANQUAN_TEST_REQUIRE_CODEGEN=1 but ANQUAN_TEST_CODEGEN_PYTHON is not set")
        }
        None => {
            eprintln!(
                "skipping the generated client: ANQUAN_TEST_CODEGEN_PYTHON does not name a Python with ariadne-codegen"
            );
            None
        }
    }
}

/// The custom scalars an SDL declares (`scalar Name` lines).
fn declared_scalars(sdl: &str) -> Vec<&str> {
    sdl.lines()
        .filter_map(|line| line.trim().strip_prefix("scalar "))
        .map(str::trim)
        .collect()
}

/// ariadne-codegen's configuration: the schema, the walk-through's operations, a synchronous
/// client in `package_dir`, and a mapping for each custom scalar the schema declares, so the
/// table can name scalars the schema does not have yet. A declared scalar without a mapping
/// fails the test: the generator would type it `Any` and no client would notice.
fn codegen_config(package_dir: &Path, scalars: &[&str]) -> String {
    let root = repository_root();
    let path = |path: PathBuf| serde_json::to_string(path.to_str().unwrap()).unwrap();
    let mut config = format!(
        "[tool.ariadne-codegen]\nschema_path = {}\nqueries_path = {}\ntarget_package_name = \"{PACKAGE}\"\ntarget_package_path = {}\nasync_client = false\nfiles_to_include = [{}]\n",
        path(root.join("schema.graphql")),
        path(root.join("docs/client/walkthrough.graphql")),
        path(package_dir.to_owned()),
        path(root.join("docs/client/scalars.py")),
    );
    for scalar in scalars {
        if GENERATOR_SCALARS.contains(scalar) {
            continue;
        }
        let (_, mapping) = SCALAR_MAPPINGS
            .iter()
            .find(|(name, _)| name == scalar)
            .unwrap_or_else(|| {
                panic!("schema.graphql declares scalar {scalar}: map it for the generated client in SCALAR_MAPPINGS and docs/client/scalars.py")
            });
        config.push_str(&format!("\n[tool.ariadne-codegen.scalars.{scalar}]\n{mapping}\n"));
    }
    config
}

/// Runs a command to completion within [`CODEGEN_TIMEOUT`], panicking with its output when it
/// fails.
async fn run(command: &mut Command, what: &str) {
    let output = tokio::time::timeout(CODEGEN_TIMEOUT, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} took over {CODEGEN_TIMEOUT:?}"))
        .unwrap_or_else(|error| panic!("{what} could not start: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `docs/client/walkthrough.py` against the service, minting the tokens it asks for;
/// returns what it printed.
async fn walk(app: &TestApp, python: &Path, package_root: &Path, walkthrough: &Walkthrough) -> String {
    let mint = |variable: &str| {
        let arguments: Vec<&str> = walkthrough
            .token_arguments(variable)
            .iter()
            .map(String::as_str)
            .collect();
        app.token(&arguments)
    };
    let register_input = &walkthrough.register.variables["input"];
    let upload_input = &walkthrough.upload.operations["variables"]["input"];
    let mut child = Command::new(python)
        .arg(repository_root().join("docs/client/walkthrough.py"))
        .env("PYTHONPATH", package_root)
        .env("ANQUAN_GRAPHQL_URL", format!("{}/graphql", app.base_url))
        .env("ANQUAN_ADMIN_TOKEN", mint(&walkthrough.register.token))
        .env("ANQUAN_OFFICER_TOKEN", mint("OFFICER"))
        .env("ANQUAN_REGISTER_INPUT", register_input.to_string())
        .env("ANQUAN_UPLOAD_INPUT", upload_input.to_string())
        .env("ANQUAN_SUMMARY", &walkthrough.registered_summary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let mut printed = String::new();
    let conversation = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            let request = serde_json::from_str::<Value>(&line).ok();
            match request.as_ref().and_then(|request| request["mint"].as_array()) {
                Some(arguments) => {
                    let arguments: Vec<&str> = arguments.iter().map(|argument| argument.as_str().unwrap()).collect();
                    let token = app.token(&arguments);
                    stdin.write_all(format!("{token}\n").as_bytes()).await.unwrap();
                    stdin.flush().await.unwrap();
                }
                None => {
                    printed.push_str(&line);
                    printed.push('\n');
                }
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(CODEGEN_TIMEOUT, conversation)
        .await
        .unwrap_or_else(|_| panic!("the walk-through took over {CODEGEN_TIMEOUT:?}"));
    let mut errors = String::new();
    stderr.read_to_string(&mut errors).await.unwrap();
    assert!(
        status.success(),
        "the generated client's walk-through failed ({status}):\n{printed}\n{errors}"
    );
    printed
}

#[tokio::test]
async fn a_client_generated_from_the_schema_walks_the_readme() {
    let Some(python) = codegen_python() else {
        return;
    };
    let walkthrough = Walkthrough::from_readme();
    let app = spawn_app(Backend::Sqlite, &[]).await;
    let workspace = tempfile::tempdir().unwrap();
    let sdl = repository_text("schema.graphql");
    let config = codegen_config(workspace.path(), &declared_scalars(&sdl));
    std::fs::write(workspace.path().join("pyproject.toml"), config).unwrap();
    let started = std::time::Instant::now();
    run(
        Command::new(&python)
            .args(["-m", "ariadne_codegen", "--config", "pyproject.toml", "client"])
            .current_dir(workspace.path()),
        "ariadne-codegen",
    )
    .await;
    assert!(workspace.path().join(PACKAGE).join("client.py").exists());
    let generated = started.elapsed();
    let printed = walk(&app, &python, workspace.path(), &walkthrough).await;
    eprintln!(
        "generated the client in {generated:?}, walked the README in {:?}: {printed}",
        started.elapsed() - generated
    );
    app.stop().await;
}
