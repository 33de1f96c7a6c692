//! Statuses true to their time (issue #22, item 2), over the real binary on SQLite and
//! PostgreSQL: an `asOf` answer is evaluated under the rule set in force at that instant by the
//! rule-set log, so promoting v2 (drills need a record at once) leaves every answer about the
//! time before the promotion as it was; every answer names the version and digest it used; a
//! `ruleSet` argument still asks for another. Then the rule files are deleted from disk and the
//! service restarted: the log alone (each publication carries its files) reproduces the past
//! statuses under v2.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::compliance_flow::{review, upload};
use crate::support::{Backend, TestApp, backends, binary, credit_code, data, rules_root, spawn_app_with_env};

const REGISTER: &str =
    "mutation($input: RegisterEnterpriseInput!) { registerEnterprise(input: $input) { enterprise { id } } }";
const STATUS: &str = "query($id: ID!, $asOf: DateTime, $ruleSet: String) {
  enterprise(id: $id, asOf: $asOf, ruleSet: $ruleSet) {
    compliance { at ruleSet ruleSetDigest indicators { code state } }
    risk { ruleSet ruleSetDigest } }
  colourDistribution(asOf: $asOf, ruleSet: $ruleSet) { ruleSet ruleSetDigest }
  enterprises(asOf: $asOf, ruleSet: $ruleSet, first: 5) { nodes { compliance { ruleSet ruleSetDigest } } } }";

/// What one status answer says: the instant, R10's state, and the (version, digest) of every
/// rule-dependent part of it, which must agree.
#[derive(Debug, PartialEq)]
struct Answer {
    at: String,
    r10: String,
    rule_set: (String, String),
}

async fn status(app: &TestApp, token: &str, id: &str, as_of: Option<&str>, rule_set: Option<&str>) -> Answer {
    let response = app
        .graphql(
            Some(token),
            STATUS,
            json!({ "id": id, "asOf": as_of, "ruleSet": rule_set }),
        )
        .await;
    let body = data(&response);
    let compliance = &body["enterprise"]["compliance"];
    let pair = |value: &Value| {
        (
            value["ruleSet"].as_str().unwrap().to_owned(),
            value["ruleSetDigest"].as_str().unwrap().to_owned(),
        )
    };
    let rule_set = pair(compliance);
    assert_eq!(pair(&body["enterprise"]["risk"]), rule_set, "{response}");
    assert_eq!(pair(&body["colourDistribution"]), rule_set, "{response}");
    for node in body["enterprises"]["nodes"].as_array().unwrap() {
        assert_eq!(pair(&node["compliance"]), rule_set, "{response}");
    }
    assert_eq!(rule_set.1.len(), 64, "a SHA-256 digest: {response}");
    Answer {
        at: compliance["at"].as_str().unwrap().to_owned(),
        r10: compliance["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|indicator| indicator["code"] == "R10")
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned(),
        rule_set,
    }
}

/// Runs `anquan projections …` against the service's store.
fn projections(app: &TestApp, rules: &Path, args: &[&str]) {
    let mut command = std::process::Command::new(binary());
    command
        .arg("projections")
        .args(args)
        .arg("--data-dir")
        .arg(app.data_dir())
        .arg("--rules-root")
        .arg(rules)
        .env_remove("ANQUAN_DATABASE_URL");
    if let Some(url) = app.database_url() {
        command.arg("--database").arg(url);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `anquan replay enterprise <id> --as-of <at>` against the service's store, as an
/// auditor would; returns its JSON.
fn replay(app: &TestApp, rules: &Path, id: &str, at: &str) -> Value {
    let mut command = std::process::Command::new(binary());
    command
        .args(["replay", "enterprise", id, "--as-of", at])
        .arg("--data-dir")
        .arg(app.data_dir())
        .arg("--rules-root")
        .arg(rules)
        .env_remove("ANQUAN_DATABASE_URL");
    if let Some(url) = app.database_url() {
        command.arg("--database").arg(url);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits until the service says `version` is live.
async fn wait_live(app: &TestApp, token: &str, version: &str) -> Vec<Value> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let response = app
                .graphql(Some(token), "{ ruleSets { version digest live } }", json!({}))
                .await;
            if let Some(versions) = response["data"]["ruleSets"].as_array()
                && versions.iter().any(|v| v["version"] == version && v["live"] == true)
            {
                return versions.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{version} did not become live"))
}

fn digest_of(versions: &[Value], version: &str) -> String {
    versions
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("{version} is not loaded: {versions:?}"))["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_v2_leaves_answers_about_the_time_before_it_unchanged_and_the_log_alone_reproduces_them() {
    for backend in backends() {
        run(backend).await;
    }
}

async fn run(backend: Backend) {
    let rules = rules_root();
    let root = rules.path().to_str().unwrap().to_owned();
    let app = spawn_app_with_env(backend, &[], &[("ANQUAN_RULES_ROOT", &root)]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let input = json!({
        "name": "海宁时点企业", "creditCode": credit_code(4200), "town": "许村", "industry": "家纺",
        "profile": { "staffCount": 20, "annualRevenue10kYuan": 300, "flags": [] }
    });
    let response = app.graphql(Some(&admin), REGISTER, json!({ "input": input })).await;
    let id = data(&response)["registerEnterprise"]["enterprise"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An emergency plan, no drill record: implemented under v1 (no drill is due yet), not
    // under v2 (a drill record is needed at once).
    let record = json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "应急预案" });
    let uploaded = upload(&app, &admin, record).await;
    let document = data(&uploaded)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();
    data(&review(&app, &admin, &id, &document, "APPROVE", None).await);

    let versions = wait_live(&app, &admin, "v1").await;
    let (v1, v2) = (digest_of(&versions, "v1"), digest_of(&versions, "v2"));
    let before = status(&app, &admin, &id, None, None).await;
    assert_eq!(before.r10, "IMPLEMENTED");
    assert_eq!(before.rule_set, ("v1".to_owned(), v1.clone()));
    let t0 = before.at.clone();
    let at_t0 = status(&app, &admin, &id, Some(&t0), None).await;
    assert_eq!(at_t0, before);

    tokio::time::sleep(Duration::from_millis(20)).await;
    projections(&app, rules.path(), &["promote", "v2"]);
    wait_live(&app, &admin, "v2").await;

    // Now: v2. Before the promotion: v1, exactly as before. Asked for by name: v2 at t0.
    let after = status(&app, &admin, &id, None, None).await;
    assert_eq!(after.r10, "NOT_IMPLEMENTED", "{backend:?}");
    assert_eq!(after.rule_set, ("v2".to_owned(), v2.clone()));
    let t1 = after.at.clone();
    assert_eq!(
        status(&app, &admin, &id, Some(&t0), None).await,
        at_t0,
        "{backend:?}: an answer about the time before the promotion changed"
    );
    let asked = status(&app, &admin, &id, Some(&t0), Some("v2")).await;
    assert_eq!(
        (asked.r10.as_str(), asked.rule_set.0.as_str()),
        ("NOT_IMPLEMENTED", "v2")
    );
    let at_t1 = status(&app, &admin, &id, Some(&t1), None).await;
    assert_eq!(
        at_t1, after,
        "{backend:?}: asOf after the promotion is evaluated under v2"
    );

    // The rule files are deleted from disk; the restarted service has only the built-in v1
    // and the log, whose publication of v2 carries its files.
    std::fs::remove_dir_all(rules.path().join("v1")).unwrap();
    std::fs::remove_dir_all(rules.path().join("v2")).unwrap();
    let app = app.restart_with_env(&[("ANQUAN_RULES_ROOT", &root)]).await;
    let versions = wait_live(&app, &admin, "v2").await;
    assert_eq!(digest_of(&versions, "v2"), v2, "{backend:?}: v2 loaded from the log");
    assert_eq!(status(&app, &admin, &id, Some(&t0), None).await, at_t0, "{backend:?}");
    assert_eq!(status(&app, &admin, &id, Some(&t1), None).await, at_t1, "{backend:?}");
    assert_eq!(
        status(&app, &admin, &id, None, None).await.rule_set,
        ("v2".to_owned(), v2.clone())
    );
    // An auditor's replay from the log alone says the same.
    for (at, version, digest) in [(&t0, "v1", &v1), (&t1, "v2", &v2)] {
        let replayed = replay(&app, rules.path(), &id, at);
        assert_eq!(replayed["rule_set"], version, "{backend:?}: {replayed}");
        assert_eq!(replayed["rule_set_digest"], digest.as_str(), "{backend:?}: {replayed}");
    }
    app.stop().await;
}
