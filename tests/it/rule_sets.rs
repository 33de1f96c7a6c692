//! The analysts' loop over the real binary: a v2 rule set that changes the emergency drill
//! (`R10.drill` needs an approved drill record at once instead of one per year) is rebuilt
//! beside v1, diffed (exactly the enterprises without a drill record change), and promoted
//! while a loop of GraphQL queries keeps succeeding; then live queries follow v2.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::compliance_flow::{review, upload};
use crate::support::{TestApp, binary, data};

const JWT_SECRET: &str = "black-box-tests-secret-of-at-least-32-bytes";
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [usize; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const REGISTER: &str =
    "mutation($input: RegisterEnterpriseInput!) { registerEnterprise(input: $input) { enterprise { id } } }";
const R10: &str = "query($id: ID!, $ruleSet: String) { enterprise(id: $id, ruleSet: $ruleSet) {
  compliance { indicators { code state } } } }";

/// A valid unified social credit code: 17 characters and the GB 32100 check character.
fn credit_code(serial: usize) -> String {
    let first = format!("91330481MA2R{serial:05}");
    let sum: usize = first
        .bytes()
        .zip(WEIGHTS)
        .map(|(byte, weight)| ALPHABET.iter().position(|c| *c == byte).unwrap() * weight)
        .sum();
    format!("{first}{}", ALPHABET[(31 - sum % 31) % 31] as char)
}

fn copy_rule_set(from: &Path, to: &Path, edit: impl Fn(&str, String) -> String) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(to.join(&name), edit(&name, text)).unwrap();
    }
}

/// Rule sets v1 (the repository's) and v2 (drills need a record, whatever the period) in a
/// temporary rules root.
fn rules_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../projections/v1");
    copy_rule_set(&v1, &root.path().join("v1"), |_, text| text);
    copy_rule_set(&v1, &root.path().join("v2"), |name, text| match name {
        "ruleset.toml" => text.replacen("version = \"v1\"", "version = \"v2\"", 1).replacen(
            "title = \"",
            "title = \"v2: drills need a record; ",
            1,
        ),
        "indicators.toml" => {
            let periodic = "[indicators.requirements.evidence]\nkind = \"periodic\"\ncadence = [\n    { when = { any_of = [{ flag = \"high_risk_industry\" }, { flag = \"crowded_place\" }, { class = \"key_supervised\" }] }, every = \"half_yearly\" },\n    { every = \"yearly\" },\n]";
            let start = text.find("code = \"R10.drill\"").unwrap();
            let at = start + text[start..].find(periodic).unwrap();
            format!(
                "{}[indicators.requirements.evidence]\nkind = \"review\"{}",
                &text[..at],
                &text[at + periodic.len()..]
            )
        }
        _ => text,
    });
    root
}

/// Starts the service with the rules root in `ANQUAN_RULES_ROOT`.
async fn spawn(rules: &Path) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
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
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(address) = log["fields"]["address"].as_str() {
                return address.to_owned();
            }
        }
        panic!("the service exited before listening");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    TestApp::from_parts(format!("http://{address}"), data_dir, child)
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
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}
