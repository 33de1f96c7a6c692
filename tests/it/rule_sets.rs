//! The analysts' loop over the real binary: a v2 rule set that changes the emergency drill
//! (`R10.drill` needs an approved drill record at once instead of one per year) is rebuilt
//! beside v1, diffed (exactly the enterprises without a drill record change), and promoted
//! while a loop of GraphQL queries keeps succeeding; then live queries follow v2.
//!
//! With a v2 that also paints every enterprise red: a `ruleSet` argument decides every
//! rule-dependent field under it (status, risk, colour history, colour counts, metrics), the
//! `x-anquan-rule-set` header is only the request's default, and commands are decided with the
//! live rules whatever the request reads with; after a promotion from the command line,
//! websocket subscribers are pushed the colours and town figures the new rules give.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::compliance_flow::{review, upload};
use crate::support::{TestApp, binary, credit_code, data, error_code, next_message, next_of, rules_root, subscribe};

const JWT_SECRET: &str = "black-box-tests-secret-of-at-least-32-bytes";
const REGISTER: &str =
    "mutation($input: RegisterEnterpriseInput!) { registerEnterprise(input: $input) { enterprise { id } } }";
const R10: &str = "query($id: ID!, $ruleSet: String) { enterprise(id: $id, ruleSet: $ruleSet) {
  compliance { indicators { code state } } } }";

/// Starts the service with the rules root in `ANQUAN_RULES_ROOT`.
async fn spawn(rules: &Path) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let child = Command::new(binary())
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--graphiql",
            "false",
        ])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("ANQUAN_JWT_SECRET", JWT_SECRET)
        .env("ANQUAN_RULES_ROOT", rules)
        .env("RUST_LOG", "info")
        .env_remove("ANQUAN_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    TestApp::listening(child, data_dir).await
}

/// Runs `anquan projections …` against the service's data directory; returns stdout.
fn projections(app: &TestApp, rules: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(binary())
        .arg("projections")
        .args(args)
        .arg("--data-dir")
        .arg(app.data_dir())
        .arg("--rules-root")
        .arg(rules)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

async fn r10(app: &TestApp, token: &str, id: &str, rule_set: Option<&str>) -> String {
    let response = app
        .graphql(Some(token), R10, json!({ "id": id, "ruleSet": rule_set }))
        .await;
    data(&response)["enterprise"]["compliance"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|indicator| indicator["code"] == "R10")
        .unwrap()["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_rule_set_is_rebuilt_beside_v1_diffed_and_promoted_while_queries_keep_succeeding() {
    let rules = rules_root();
    let app = spawn(rules.path()).await;
    let admin = app.token(&["--role", "city_admin"]);
    let mut enterprises = Vec::new();
    for serial in 0..4 {
        let input = json!({
            "name": format!("海宁演练企业{serial}"), "creditCode": credit_code(serial), "town": "许村", "industry": "家纺",
            "profile": { "staffCount": 20, "annualRevenue10kYuan": 300, "flags": [] }
        });
        let response = app.graphql(Some(&admin), REGISTER, json!({ "input": input })).await;
        let id = data(&response)["registerEnterprise"]["enterprise"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut records = vec![json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "应急预案" })];
        if serial < 2 {
            let year = chrono::Utc::now().format("%Y").to_string();
            records
                .push(json!({ "enterpriseId": id, "requirement": "R10.drill", "title": "演练记录", "period": year }));
        }
        for record in records {
            let uploaded = upload(&app, &admin, record).await;
            let document = data(&uploaded)["uploadDocument"]["documentId"]
                .as_str()
                .unwrap()
                .to_owned();
            data(&review(&app, &admin, &id, &document, "APPROVE", None).await);
        }
        enterprises.push(id);
    }
    for id in &enterprises {
        assert_eq!(r10(&app, &admin, id, None).await, "IMPLEMENTED");
    }
    // Side by side: v2 is readable before it is live.
    assert_eq!(r10(&app, &admin, &enterprises[2], Some("v2")).await, "NOT_IMPLEMENTED");

    projections(&app, rules.path(), &["rebuild", "--rules", "v2"]);
    let diff: Value = serde_json::from_str(&projections(&app, rules.path(), &["diff", "v1", "v2", "--json"])).unwrap();
    let changed: BTreeSet<String> = diff["enterprises"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["enterprise_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        changed,
        enterprises[2..].iter().cloned().collect::<BTreeSet<_>>(),
        "{diff}"
    );
    assert!(
        diff["towns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|town| town["town"] == "许村"),
        "{diff}"
    );

    // Promote while queries keep running.
    let stop = Arc::new(AtomicBool::new(false));
    let (succeeded, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let app = Arc::new(app);
    let load = {
        let (app, admin, id) = (app.clone(), admin.clone(), enterprises[0].clone());
        let (stop, succeeded, failed) = (stop.clone(), succeeded.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let response = app.graphql(Some(&admin), R10, json!({ "id": id })).await;
                let ok = response.get("errors").is_none_or(Value::is_null);
                (if ok { &succeeded } else { &failed }).fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    projections(&app, rules.path(), &["promote", "v2"]);
    let live = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = app
                .graphql(Some(&admin), "{ ruleSets { version live } }", json!({}))
                .await;
            let versions = data(&response)["ruleSets"].as_array().unwrap().clone();
            if versions.iter().any(|v| v["version"] == "v2" && v["live"] == true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(live.is_ok(), "the service did not switch to v2");
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(succeeded.load(Ordering::Relaxed) > 0);
    for (index, id) in enterprises.iter().enumerate() {
        let expected = if index < 2 { "IMPLEMENTED" } else { "NOT_IMPLEMENTED" };
        assert_eq!(r10(&app, &admin, id, None).await, expected, "enterprise {index}");
    }
    // The rule-set log's history says what was published and promoted, in order, and its chain
    // holds; analysts read it, a town officer does not.
    let analyst = app.token(&["--role", "analyst"]);
    let log = app
        .graphql(
            Some(&analyst),
            "{ ruleSetLog { history(first: 100) { nodes { version eventType data } }
               verification { intact eventsChecked } } }",
            json!({}),
        )
        .await;
    let nodes = data(&log)["ruleSetLog"]["history"]["nodes"].as_array().unwrap().clone();
    let kinds: Vec<&str> = nodes.iter().map(|node| node["eventType"].as_str().unwrap()).collect();
    assert_eq!(nodes[0]["version"], "0", "{log}");
    let promoted = nodes
        .iter()
        .rposition(|node| node["eventType"] == "RuleSetPromoted")
        .unwrap_or_else(|| panic!("no promotion in {kinds:?}"));
    assert!(nodes[promoted]["data"].as_str().unwrap().contains("v2"), "{log}");
    assert!(
        kinds
            .iter()
            .position(|kind| *kind == "RuleSetPublished")
            .is_some_and(|published| published < promoted),
        "{kinds:?}"
    );
    assert_eq!(data(&log)["ruleSetLog"]["verification"]["intact"], true, "{log}");
    assert_eq!(
        data(&log)["ruleSetLog"]["verification"]["eventsChecked"],
        nodes.len(),
        "{log}"
    );
    let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
    let refused = app
        .graphql(Some(&officer), "{ ruleSetLog { verification { intact } } }", json!({}))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

/// The red rule v2 puts ahead of v1's in the colour rules, so every enterprise is red in v2.
const RED_IN_V2: &str = "everyone_red_in_v2";

/// v1 and v2 as in `rules_root`, v2 also making every enterprise red.
fn rules_root_red_v2() -> tempfile::TempDir {
    let root = rules_root();
    let path = root.path().join("v2").join("supervision.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let first_red = text.find("[[risk.red]]").unwrap();
    let red = format!("[[risk.red]]\nname = \"{RED_IN_V2}\"\nwhen = {{ profile = \"always\" }}\n\n");
    std::fs::write(&path, format!("{}{red}{}", &text[..first_red], &text[first_red..])).unwrap();
    root
}

/// Registers an enterprise in 许村 with an approved emergency plan (R10 is implemented in v1
/// and not in v2, which wants a drill record); returns its id.
async fn plain_enterprise(app: &TestApp, admin: &str, serial: usize) -> String {
    let input = json!({
        "name": format!("海宁规则企业{serial}"), "creditCode": credit_code(serial), "town": "许村", "industry": "家纺",
        "profile": { "staffCount": 20, "annualRevenue10kYuan": 300, "flags": [] }
    });
    let response = app.graphql(Some(admin), REGISTER, json!({ "input": input })).await;
    let id = data(&response)["registerEnterprise"]["enterprise"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uploaded = upload(
        app,
        admin,
        json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "应急预案" }),
    )
    .await;
    let document = data(&uploaded)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();
    data(&review(app, admin, &id, &document, "APPROVE", None).await);
    id
}

/// A GraphQL request with the `x-anquan-rule-set` header.
async fn graphql_under(app: &TestApp, token: &str, header: &str, query: &str, variables: Value) -> Value {
    app.client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(token)
        .header("x-anquan-rule-set", header)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const ENTERPRISE_RULES: &str = "query($id: ID!, $ruleSet: String) { enterprise(id: $id, ruleSet: $ruleSet) {
  compliance { ruleSet indicators { code state } }
  risk { colour rule ruleSet }
  colourHistory { colour rule }
  vetoes { kind } } }";
const DISTRIBUTION_RULES: &str = "query($ruleSet: String) {
  colourDistribution(town: \"许村\", ruleSet: $ruleSet) { red ruleSet } }";
const METRICS_RULES: &str = "query($ruleSet: String) {
  townMetrics(town: \"许村\", ruleSet: $ruleSet) { ruleSet metrics { code numerator denominator } }
  headlineRates(town: \"许村\", ruleSet: $ruleSet) { ruleSet enterpriseResponsibilityRate } }";

/// What one enterprise looks like under the rule set a request picked: (compliance's rule
/// set, R10's state, risk's colour, rule and rule set, the colour history's last colour).
fn enterprise_view(response: &Value) -> (String, String, String, String, String, String) {
    let enterprise = &data(response)["enterprise"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let r10 = enterprise["compliance"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|indicator| indicator["code"] == "R10")
        .unwrap()["state"]
        .clone();
    let history = enterprise["colourHistory"].as_array().unwrap();
    (
        text(&enterprise["compliance"]["ruleSet"]),
        text(&r10),
        text(&enterprise["risk"]["colour"]),
        text(&enterprise["risk"]["rule"]),
        text(&enterprise["risk"]["ruleSet"]),
        text(&history.last().unwrap()["colour"]),
    )
}

/// (F01 red enterprises in 许村, the figures' rule set) from a `METRICS_RULES` response.
fn red_count(response: &Value) -> (f64, String) {
    let figures = &data(response)["townMetrics"];
    let f01 = figures["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|metric| metric["code"] == "F01")
        .unwrap()["numerator"]
        .as_f64()
        .unwrap();
    assert_eq!(figures["ruleSet"], data(response)["headlineRates"]["ruleSet"]);
    (f01, figures["ruleSet"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_set_argument_decides_every_rule_dependent_field_under_it_and_the_header_is_only_the_default() {
    let rules = rules_root_red_v2();
    let app = spawn(rules.path()).await;
    let admin = app.token(&["--role", "city_admin"]);
    let id = plain_enterprise(&app, &admin, 100).await;

    let live = enterprise_view(&app.graphql(Some(&admin), ENTERPRISE_RULES, json!({ "id": id })).await);
    assert_eq!(
        (live.0.as_str(), live.1.as_str(), live.4.as_str()),
        ("v1", "IMPLEMENTED", "v1")
    );
    assert_ne!(live.2, "RED", "{live:?}");
    assert_eq!(live.5, live.2, "the colour history ends with the colour");
    let v2 = (
        "v2".to_owned(),
        "NOT_IMPLEMENTED".to_owned(),
        "RED".to_owned(),
        RED_IN_V2.to_owned(),
        "v2".to_owned(),
        "RED".to_owned(),
    );
    // The argument decides status, indicators, risk and colour history alike.
    let named = app
        .graphql(Some(&admin), ENTERPRISE_RULES, json!({ "id": id, "ruleSet": "v2" }))
        .await;
    assert_eq!(enterprise_view(&named), v2);
    // The header is the request's default; an argument overrides it for its field.
    let by_header = graphql_under(&app, &admin, "v2", ENTERPRISE_RULES, json!({ "id": id })).await;
    assert_eq!(enterprise_view(&by_header), v2);
    let overridden = graphql_under(
        &app,
        &admin,
        "v2",
        ENTERPRISE_RULES,
        json!({ "id": id, "ruleSet": "v1" }),
    )
    .await;
    assert_eq!(enterprise_view(&overridden), live);

    // Colour counts and town figures take the argument too.
    let distribution = |response: Value| {
        let counts = &data(&response)["colourDistribution"];
        (
            counts["red"].as_u64().unwrap(),
            counts["ruleSet"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(
        distribution(app.graphql(Some(&admin), DISTRIBUTION_RULES, json!({})).await),
        (0, "v1".to_owned())
    );
    assert_eq!(
        distribution(
            app.graphql(Some(&admin), DISTRIBUTION_RULES, json!({ "ruleSet": "v2" }))
                .await
        ),
        (1, "v2".to_owned())
    );
    assert_eq!(
        distribution(graphql_under(&app, &admin, "v2", DISTRIBUTION_RULES, json!({})).await),
        (1, "v2".to_owned())
    );
    // "Now" comes from the metrics watcher's cache, kept with the live rules; another version
    // is computed, not read from it. Wait for the watcher to have folded the enterprise in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.graphql(Some(&admin), METRICS_RULES, json!({})).await;
        let figures = &data(&response)["townMetrics"]["metrics"];
        let enterprises = figures.as_array().unwrap().iter().find(|m| m["code"] == "A01").unwrap()["numerator"].clone();
        if enterprises == 1.0 {
            assert_eq!(red_count(&response), (0.0, "v1".to_owned()));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics never showed the enterprise: {response}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let named = app
        .graphql(Some(&admin), METRICS_RULES, json!({ "ruleSet": "v2" }))
        .await;
    assert_eq!(red_count(&named), (1.0, "v2".to_owned()));
    let by_header = graphql_under(&app, &admin, "v2", METRICS_RULES, json!({})).await;
    assert_eq!(red_count(&by_header), (1.0, "v2".to_owned()));
    let overridden = graphql_under(&app, &admin, "v2", METRICS_RULES, json!({ "ruleSet": "v1" })).await;
    assert_eq!(red_count(&overridden), (0.0, "v1".to_owned()));

    // A version this node does not have is refused by name.
    let unknown = app
        .graphql(Some(&admin), ENTERPRISE_RULES, json!({ "id": id, "ruleSet": "v9" }))
        .await;
    assert_eq!(error_code(&unknown), "UNKNOWN_RULE_SET");

    // Commands are decided with the live rules whatever the request reads with: a yearly drill
    // record is right for v1's R10.drill (periodic), wrong for v2's (a plain review).
    let year = chrono::Utc::now().format("%Y").to_string();
    let input = json!({ "enterpriseId": id, "requirement": "R10.drill", "title": "演练记录", "period": year });
    let operations = json!({
        "query": "mutation($input: UploadDocumentInput!, $file: Upload!) { uploadDocument(input: $input, file: $file) { documentId } }",
        "variables": { "input": input, "file": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(b"%PDF-1.4 drill".to_vec())
                .file_name("drill.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let uploaded: Value = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(&admin)
        .header("x-anquan-rule-set", "v2")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        data(&uploaded)["uploadDocument"]["documentId"].is_string(),
        "{uploaded}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_pushed_what_a_promotion_from_the_command_line_changes() {
    let rules = rules_root_red_v2();
    let app = spawn(rules.path()).await;
    let admin = app.token(&["--role", "city_admin"]);
    let mut socket = subscribe(
        &app,
        &admin,
        &[
            (
                "colour",
                "subscription { colourChanged { enterpriseId previous colour rule ruleSet } }",
            ),
            (
                "metrics",
                "subscription { metricsChanged(town: \"许村\") { town ruleSet metrics { code numerator } } }",
            ),
        ],
    )
    .await;
    // The enterprise registers after the subscriptions, and the pushes about it come before the
    // promotion's: the loops below skip them.
    let id = plain_enterprise(&app, &admin, 200).await;
    let (mut colour_live, mut metrics_live) = (false, false);
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(colour_live && metrics_live) {
        let message = next_message(
            &mut socket,
            until.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await;
        assert_ne!(message["type"], "error", "{message}");
        if message["type"] == "next" {
            colour_live |= message["id"] == "colour";
            metrics_live |= message["id"] == "metrics";
        }
    }
    let before = enterprise_view(&app.graphql(Some(&admin), ENTERPRISE_RULES, json!({ "id": id })).await);

    projections(&app, rules.path(), &["publish", "v2"]);
    projections(&app, rules.path(), &["promote", "v2"]);
    let promoted = std::time::Instant::now();
    // Both pushes are awaited in one loop, whichever comes first: waiting for one subscription
    // at a time would drop a push of the other that overtook it. Pushes about the registration
    // may still come first (under v1): they are skipped.
    let (mut colour, mut metrics) = (None, None);
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while colour.is_none() || metrics.is_none() {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let message = next_message(&mut socket, left).await;
        assert_ne!(message["type"], "error", "{message}");
        if message["type"] != "next" {
            continue;
        }
        let data = &message["payload"]["data"];
        match message["id"].as_str() {
            Some("colour") if colour.is_none() => {
                let changed = &data["colourChanged"];
                if changed["ruleSet"] == "v2" {
                    colour = Some((changed.clone(), promoted.elapsed()));
                } else {
                    assert_eq!(changed["ruleSet"], "v1", "{data}");
                }
            }
            Some("metrics") if metrics.is_none() && data["metricsChanged"]["ruleSet"] == "v2" => {
                metrics = Some((data["metricsChanged"].clone(), promoted.elapsed()));
            }
            _ => {}
        }
    }
    let ((colour, colour_latency), (metrics, metrics_latency)) = (colour.unwrap(), metrics.unwrap());
    assert_eq!(colour["enterpriseId"], id.as_str());
    assert_eq!(colour["previous"], before.2.as_str());
    assert_eq!(colour["colour"], "RED");
    assert_eq!(colour["rule"], RED_IN_V2);
    let red = metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|metric| metric["code"] == "F01")
        .unwrap()["numerator"]
        .clone();
    assert_eq!(metrics["town"], "许村");
    assert_eq!(red, 1.0, "{metrics}");
    eprintln!("after the promotion: colour pushed in {colour_latency:?}, town figures in {metrics_latency:?}");
    // The SQLite head watch sees the other process's append (no 10 s safety-net poll).
    assert!(
        colour_latency < Duration::from_secs(5),
        "the promotion took {colour_latency:?} to reach subscribers"
    );
    // Queries switched too, over HTTP and over the websocket.
    let after = enterprise_view(&app.graphql(Some(&admin), ENTERPRISE_RULES, json!({ "id": id })).await);
    assert_eq!((after.0.as_str(), after.2.as_str()), ("v2", "RED"));
    let query = json!({
        "id": "query", "type": "subscribe",
        "payload": { "query": "query($id: ID!) { enterprise(id: $id) { risk { colour ruleSet } } }", "variables": { "id": id } }
    });
    socket.send(Message::text(query.to_string())).await.unwrap();
    let over_socket = next_of(&mut socket, "query", Duration::from_secs(10)).await;
    assert_eq!(
        over_socket["enterprise"]["risk"],
        json!({ "colour": "RED", "ruleSet": "v2" })
    );
    app.stop().await;
}
