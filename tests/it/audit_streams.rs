//! The auditors' commands over every kind of audited stream: `anquan replay agency <id>` and
//! `anquan replay rule-set` (with `--as-of`), `anquan export agency|rule-set` and
//! `verify-export` on what they write (and on a tampered copy), `verify --stream`; and the plain
//! progress lines `verify` and `projections rebuild` write when stderr is not a terminal.

use std::path::Path;
use std::process::Output;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::agency_flow::register_agency;
use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, binary, spawn_app};

/// Runs an operator command on the service's store (its data directory and, on PostgreSQL, its
/// database), with stderr piped as in a CI job and its log lines in JSON (the pretty format
/// colours its lines on any output), so a terminal control character on stderr can only come
/// from a progress display.
fn anquan(app: &TestApp, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(binary());
    command
        .args(args)
        .arg("--data-dir")
        .arg(app.data_dir())
        .env("ANQUAN_LOG_FORMAT", "json");
    if let Some(url) = app.database_url() {
        command.arg("--database").arg(url);
    }
    command.env_remove("ANQUAN_DATABASE_URL").output().unwrap()
}

/// [`anquan`], which must succeed; returns stdout.
fn anquan_ok(app: &TestApp, args: &[&str]) -> String {
    let output = anquan(app, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// [`anquan`], which must fail; returns stderr.
fn anquan_fails(app: &TestApp, args: &[&str]) -> String {
    let output = anquan(app, args);
    assert!(!output.status.success(), "{args:?} succeeded");
    String::from_utf8(output.stderr).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn instant_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Runs `anquan verify-export DIR` (offline: no store), which must succeed or fail as said.
fn verify_export(dir: &Path, succeeds: bool) -> Output {
    let output = std::process::Command::new(binary())
        .arg("verify-export")
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(
        output.status.success(),
        succeeds,
        "verify-export {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `verify-export` accepts the directory; `docs/verify_export.py` too, where Python runs.
fn assert_export_verifies(dir: &Path, stream: &str, events: usize) {
    let verified: Value = serde_json::from_slice(&verify_export(dir, true).stdout).unwrap();
    assert_eq!(verified["stream"], stream, "{verified}");
    assert_eq!(verified["events"], events, "{verified}");
    assert_eq!(verified["intact"], true, "{verified}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_export.py");
    match std::process::Command::new("python3").arg(&script).arg(dir).output() {
        Ok(output) => assert!(
            output.status.success(),
            "verify_export.py refused {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stdout)
        ),
        Err(error) => eprintln!("skipping docs/verify_export.py: python3 does not run ({error})"),
    }
}

#[tokio::test]
async fn agencies_and_the_rule_set_log_are_replayed_as_of_an_instant_exported_and_verified() {
    for backend in backends() {
        agency_and_rule_set_histories(backend).await;
    }
}

async fn agency_and_rule_set_histories(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let before_the_agency = instant_now();
    let agency_id = register_agency(&app, &admin).await;
    let agency_stream = format!("agency-{agency_id}");

    // The agency's history: its events in version order, each with its envelope.
    let history = json_lines(&anquan_ok(&app, &["replay", "agency", &agency_id]));
    assert!(!history.is_empty());
    assert_eq!(history[0]["event"]["event_type"], "AgencyRegistered", "{}", history[0]);
    for (version, line) in history.iter().enumerate() {
        assert_eq!(line["event"]["stream_id"], agency_stream.as_str());
        assert_eq!(line["event"]["version"], version);
    }
    // As of an instant: the state its aggregate folds from the events recorded by then.
    let before = json_lines(&anquan_ok(
        &app,
        &["replay", "agency", &agency_id, "--as-of", &before_the_agency],
    ));
    assert_eq!(before[0]["events_recorded_by_then"], 0, "{}", before[0]);
    assert_eq!(before[0]["registered"], false, "{}", before[0]);
    let now = json_lines(&anquan_ok(
        &app,
        &["replay", "agency", &agency_id, "--as-of", &instant_now()],
    ));
    assert_eq!(now[0]["registered"], true, "{}", now[0]);
    assert_eq!(now[0]["events_recorded_by_then"], history.len());
    assert_eq!(
        now[0]["agency"]["registration"]["profile"]["name"], "海宁市安信安全技术服务有限公司",
        "{}",
        now[0]
    );

    // The rule-set log: a publication, then a promotion.
    anquan_ok(&app, &["projections", "publish", "v1"]);
    let between = instant_now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    anquan_ok(&app, &["projections", "promote", "v1"]);
    let log = json_lines(&anquan_ok(&app, &["replay", "rule-set"]));
    let types: Vec<&str> = log
        .iter()
        .map(|line| line["event"]["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["RuleSetPublished", "RuleSetPromoted"]);
    assert!(log.iter().all(|line| line["event"]["stream_id"] == "rulesets"));
    let published = json_lines(&anquan_ok(&app, &["replay", "rule-set", "--as-of", &between]));
    assert_eq!(published[0]["published"][0]["version"], "v1", "{}", published[0]);
    assert_eq!(published[0]["live"], Value::Null, "not promoted yet: {}", published[0]);
    let promoted = json_lines(&anquan_ok(&app, &["replay", "rule-set", "--as-of", &instant_now()]));
    assert_eq!(promoted[0]["live"]["version"], "v1", "{}", promoted[0]);
    assert_eq!(promoted[0]["events_recorded_by_then"], 2);

    // Bad input is refused with a message that says what is wrong.
    assert!(anquan_fails(&app, &["replay", "rule-set", "v1"]).contains("rule-set takes no id"));
    assert!(anquan_fails(&app, &["replay", "agency"]).contains("agency needs the agency's id"));
    assert!(anquan_fails(&app, &["replay", "agency", "not-an-id"]).contains("is not an agency id"));
    let unknown = uuid::Uuid::now_v7().to_string();
    assert!(anquan_fails(&app, &["replay", "agency", &unknown]).contains("has no events"));
    assert!(anquan_fails(&app, &["replay", "agency", &agency_id, "--rule-set", "v1"]).contains("--rule-set"));

    // Exports in the enterprise's directory format, verified by anquan and by the script.
    let exports = tempfile::tempdir().unwrap();
    let agency_dir = exports.path().join("agency");
    let rule_set_dir = exports.path().join("rule-set");
    anquan_ok(
        &app,
        &["export", "agency", &agency_id, "--out", agency_dir.to_str().unwrap()],
    );
    anquan_ok(&app, &["export", "rule-set", "--out", rule_set_dir.to_str().unwrap()]);
    assert_export_verifies(&agency_dir, &agency_stream, history.len());
    assert_export_verifies(&rule_set_dir, "rulesets", 2);
    // A publication's title changed after the export: the chain shows it.
    let events = std::fs::read_to_string(rule_set_dir.join("events.jsonl")).unwrap();
    std::fs::write(
        rule_set_dir.join("events.jsonl"),
        events.replacen("Haining rule set", "Haining rules", 1),
    )
    .unwrap();
    assert_ne!(
        std::fs::read_to_string(rule_set_dir.join("events.jsonl")).unwrap(),
        events
    );
    verify_export(&rule_set_dir, false);

    // The store's own chains.
    for stream in [agency_stream.as_str(), "rulesets"] {
        let verified: Value = serde_json::from_str(&anquan_ok(&app, &["verify", "--stream", stream])).unwrap();
        assert_eq!(verified["broken"], 0, "{stream}: {verified}");
        assert!(verified["events"].as_u64().unwrap() > 0, "{stream}: {verified}");
    }
    app.stop().await;
}

#[tokio::test]
async fn verify_and_rebuild_write_plain_progress_lines_when_stderr_is_not_a_terminal() {
    for backend in backends() {
        let app = spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        register(&app, &admin, "91330100799655058B", "许村").await;

        let output = anquan(&app, &["verify"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(!stderr.contains('\u{1b}'), "no terminal control characters: {stderr:?}");
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["broken"], 0, "{summary}");
        let streams = summary["streams"].as_u64().unwrap();
        assert!(streams >= 2, "{summary}");
        assert!(stderr.contains("list streams: "), "{stderr}");
        assert!(
            stderr.contains(&format!("verify: {streams} of {streams} streams (100%)")),
            "{stderr}"
        );

        let into = app.data_dir().join("rebuilt.sqlite");
        let output = anquan(
            &app,
            &[
                "projections",
                "rebuild",
                "--read-models",
                "--into",
                into.to_str().unwrap(),
            ],
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(!stderr.contains('\u{1b}'), "no terminal control characters: {stderr:?}");
        let folded = stderr
            .lines()
            .find(|line| line.starts_with("read models: "))
            .unwrap_or_else(|| panic!("no progress line: {stderr}"));
        assert!(
            folded.contains("positions (100%)") && folded.contains("ETA 0s"),
            "{folded}"
        );
        assert!(stderr.contains("read models rebuilt: "), "{stderr}");
        assert!(stderr.contains("v1 snapshot: "), "{stderr}");
        app.stop().await;
    }
}
