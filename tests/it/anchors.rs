//! Signed anchors against an insider: a stream rewritten in the database with its whole chain
//! recomputed passes `anquan verify`, and `anquan verify --anchors` (anchors kept elsewhere)
//! names the stream and the first differing event, on SQLite and PostgreSQL; an export's
//! inclusion proofs are checked by `docs/verify_anchor.py` with no service running.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, binary, data, spawn_app};

const ROTATE: &str = "mutation($id: ID!) { rotatePublicToken(enterpriseId: $id) { token } }";

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

fn anquan_ok(app: &TestApp, args: &[&str]) -> String {
    let output = anquan(app, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `docs/verify_anchor.py` on an export; `None` when Python does not run here.
fn verify_anchor_py(dir: &Path) -> Option<Output> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_anchor.py");
    match std::process::Command::new("python3").arg(&script).arg(dir).output() {
        Ok(output) => Some(output),
        Err(error) => {
            eprintln!("skipping docs/verify_anchor.py: python3 does not run ({error})");
            None
        }
    }
}

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn uuid_bytes(value: &Value) -> Vec<u8> {
    value
        .as_str()
        .map(|text| uuid::Uuid::parse_str(text).unwrap().as_bytes().to_vec())
        .unwrap_or_default()
}

/// The chain hash of a history line (`anquan replay`), as README.md's algorithm says.
fn chain_hash(previous: &[u8], line: &Value) -> Vec<u8> {
    let event = &line["event"];
    let metadata = &event["metadata"];
    let mut hasher = Sha256::new();
    hasher.update(previous);
    field(&mut hasher, event["stream_id"].as_str().unwrap().as_bytes());
    field(&mut hasher, &event["version"].as_u64().unwrap().to_be_bytes());
    field(&mut hasher, &uuid_bytes(&event["event_id"]));
    field(&mut hasher, event["event_type"].as_str().unwrap().as_bytes());
    field(
        &mut hasher,
        &u32::try_from(event["schema_version"].as_u64().unwrap())
            .unwrap()
            .to_be_bytes(),
    );
    field(&mut hasher, event["data"].as_str().unwrap().as_bytes());
    field(&mut hasher, &line["recorded_at_micros"].as_i64().unwrap().to_be_bytes());
    field(&mut hasher, &line["occurred_at_micros"].as_i64().unwrap().to_be_bytes());
    field(&mut hasher, line["actor_json"].as_str().unwrap().as_bytes());
    field(&mut hasher, &uuid_bytes(&metadata["correlation_id"]));
    field(&mut hasher, &uuid_bytes(&metadata["causation_id"]));
    field(&mut hasher, &uuid_bytes(&metadata["command_id"]));
    hasher.finalize().to_vec()
}

/// Rewrites version `from` of an enterprise's stream (its data) and recomputes the hash of it
/// and of every later event, directly in the database: what an insider with write access can
/// do, and what the hash chain alone cannot show.
async fn rewrite_and_rehash(app: &TestApp, enterprise_id: &str, from: u64) {
    let history: Vec<Value> = anquan_ok(app, &["replay", "enterprise", enterprise_id])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut previous = vec![0u8; 32];
    let mut sql = String::new();
    for mut line in history {
        let version = line["event"]["version"].as_u64().unwrap();
        if version == from {
            let data = line["event"]["data"].as_str().unwrap();
            let digest = "0".repeat(64);
            let rewritten = data.replacen(&data[data.find(":\"").unwrap() + 2..][..64], &digest, 1);
            assert_ne!(rewritten, data);
            line["event"]["data"] = json!(rewritten);
        }
        let hash = chain_hash(&previous, &line);
        if version >= from {
            let stream = line["event"]["stream_id"].as_str().unwrap();
            let data = line["event"]["data"].as_str().unwrap().replace('\'', "''");
            let hash_literal = match app.database_url() {
                Some(_) => format!("decode('{}', 'hex')", hex::encode(&hash)),
                None => format!("X'{}'", hex::encode(&hash)),
            };
            sql.push_str(&format!(
                "UPDATE event_log SET data = '{data}', hash = {hash_literal} WHERE stream_id = '{stream}' AND version = {version};\n"
            ));
        }
        previous = hash;
    }
    app.store_sql(&sql).await;
}

#[tokio::test]
async fn a_rewritten_and_rehashed_stream_fails_verify_against_the_anchors() {
    for backend in backends() {
        rewritten_stream(backend).await;
    }
}

async fn rewritten_stream(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise_id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let stream = format!("enterprise-{enterprise_id}");
    let rotate = || async {
        data(&app.graphql(Some(&admin), ROTATE, json!({ "id": enterprise_id })).await);
    };
    // Anchor 0 records the enterprise at version 0, anchor 1 at version 1, anchor 2 (signed
    // with a rotated key) at version 3.
    let first: Value = serde_json::from_str(&anquan_ok(&app, &["anchor"])).unwrap();
    rotate().await;
    anquan_ok(&app, &["anchor"]);
    rotate().await;
    rotate().await;
    let last: Value = serde_json::from_str(&anquan_ok(&app, &["anchor", "--rotate-key"])).unwrap();
    assert_ne!(first["key_id"], last["key_id"]);
    assert_eq!(last["sequence"], 2);

    // The published anchors, kept elsewhere: every anchor and both public keys.
    let published: Value = app
        .client
        .get(format!("{}/anchors", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published["anchors"].as_array().unwrap().len(), 3, "{published}");
    assert_eq!(published["keys"].as_array().unwrap().len(), 2, "{published}");
    let kept = tempfile::tempdir().unwrap();
    let anchors_file = kept.path().join("anchors.json");
    std::fs::write(&anchors_file, published.to_string()).unwrap();
    let anchors_path = anchors_file.to_str().unwrap();
    let url = format!("{}/anchors", app.base_url);
    for source in [anchors_path, url.as_str()] {
        let summary: Value = serde_json::from_str(&anquan_ok(&app, &["verify", "--anchors", source])).unwrap();
        assert_eq!(summary["broken"], 0, "{summary}");
        assert_eq!(summary["anchors"], 3, "{summary}");
    }

    // An export carries the anchors and a proof for each event; the offline verifier checks
    // them with no service running.
    let export = kept.path().join("export");
    anquan_ok(
        &app,
        &[
            "export",
            "enterprise",
            &enterprise_id,
            "--out",
            export.to_str().unwrap(),
        ],
    );
    let proofs = std::fs::read_to_string(export.join("proofs.jsonl")).unwrap();
    assert_eq!(proofs.lines().count(), 4, "{proofs}");
    // GraphQL gives an auditor the same proof as the export.
    let auditor = app.token(&["--role", "auditor"]);
    let answer = app
        .graphql(
            Some(&auditor),
            "query($id: ID!) { enterprise(id: $id) { inclusionProof(version: 1) { leafIndex root anchor path keyId } } }",
            json!({ "id": enterprise_id }),
        )
        .await;
    let proof = &data(&answer)["enterprise"]["inclusionProof"];
    let exported: Value = serde_json::from_str(proofs.lines().nth(1).unwrap()).unwrap();
    assert_eq!(proof["leafIndex"], exported["leaf_index"].to_string(), "{answer}");
    assert_eq!(proof["root"], exported["root"], "{answer}");
    assert_eq!(proof["path"], exported["path"], "{answer}");
    assert_eq!(proof["keyId"], last["key_id"], "{answer}");
    // No service runs from here on: the offline check, the insider and the auditor's verify
    // work on the export and the database alone.
    let mut app = app;
    app.terminate().await;
    if let Some(output) = verify_anchor_py(&export) {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "verify_anchor.py: {stdout}");
        assert!(stdout.contains("anchored: 4 of 4 events"), "{stdout}");
        // A proof with another path, or an anchor whose root was changed, is refused.
        let mut lines: Vec<Value> = proofs.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        lines[2]["path"][0] = json!("ab".repeat(32));
        let tampered = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
        std::fs::write(export.join("proofs.jsonl"), tampered).unwrap();
        let output = verify_anchor_py(&export).unwrap();
        assert!(!output.status.success(), "a wrong audit path passed");
        std::fs::write(export.join("proofs.jsonl"), &proofs).unwrap();
        let mut document = published.clone();
        document["anchors"][2]["root"] = json!("cd".repeat(32));
        std::fs::write(export.join("anchors.json"), document.to_string()).unwrap();
        let output = verify_anchor_py(&export).unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !output.status.success() && stdout.contains("signature"),
            "an altered anchor passed: {stdout}"
        );
    }

    // The insider rewrites version 1 and re-hashes the rest of the stream.
    rewrite_and_rehash(&app, &enterprise_id, 1).await;
    let summary: Value = serde_json::from_str(&anquan_ok(&app, &["verify"])).unwrap();
    assert_eq!(
        summary["broken"], 0,
        "plain verify must not see a re-hashed stream: {summary}"
    );
    let output = anquan(&app, &["verify", "--anchors", anchors_path]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "verify --anchors passed a rewritten stream");
    assert!(
        stderr.contains(&format!("stream {stream} was rewritten")),
        "the stream is not named: {stderr}"
    );
    assert!(
        stderr.contains("the first differing event is version 1"),
        "the first differing event is not named: {stderr}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_leading_node_takes_anchors_periodically_and_none_while_idle() {
    for backend in backends() {
        let app = spawn_app(backend, &["--anchor-interval-seconds", "1"]).await;
        let admin = app.token(&["--role", "city_admin"]);
        register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let anchors = || async {
            let document: Value = app
                .client
                .get(format!("{}/anchors", app.base_url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            document["anchors"].as_array().unwrap().clone()
        };
        let names_the_enterprise = |anchor: &Value| {
            anchor["heads"]
                .as_array()
                .unwrap()
                .iter()
                .any(|head| head["stream_id"].as_str().unwrap().starts_with("enterprise-"))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut taken = anchors().await;
        while !taken.iter().any(names_the_enterprise) {
            assert!(
                std::time::Instant::now() < deadline,
                "no periodic anchor in 20 s: {taken:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            taken = anchors().await;
        }
        // Nothing but the anchor itself was appended since: the next ticks take none.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        assert_eq!(anchors().await.len(), taken.len(), "an idle log was anchored again");
        app.stop().await;
    }
}
