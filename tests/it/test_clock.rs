//! The controllable clock of black-box tests: `ANQUAN_TEST_CLOCK` names a file holding an
//! offset in seconds that the service adds to the system's clock, accepted only in test mode
//! (a binary built with the feature `test-clock`, which these tests build, and
//! `ANQUAN_TEST_MODE=1`). Without test mode the service refuses to start; with it, moving the
//! clock past a certificate's validity end changes the status "now", and the instant commands
//! are decided at (`occurredAt`) and recorded at (`recordedAt`).

use std::process::Stdio;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::compliance_flow::{register, review, upload};
use crate::support::{TestApp, backends, binary, data, spawn_app_with_env};

const NOW: &str = "query($id: ID!) { enterprise(id: $id) { compliance { at indicators { code requirements { code state detail } } } } }";

/// The state and detail of a requirement in the status "now".
async fn certificate_now(app: &TestApp, token: &str, id: &str) -> (DateTime<Utc>, String, String) {
    let response = app.graphql(Some(token), NOW, json!({ "id": id })).await;
    let compliance = &data(&response)["enterprise"]["compliance"];
    let requirement = compliance["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|indicator| indicator["requirements"].as_array().unwrap().iter())
        .find(|requirement| requirement["code"] == "R04.leader_certificates")
        .unwrap();
    (
        compliance["at"].as_str().unwrap().parse().unwrap(),
        requirement["state"].as_str().unwrap().to_owned(),
        requirement["detail"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_test_mode_the_test_clock_is_refused() {
    let data_dir = tempfile::tempdir().unwrap();
    let clock = data_dir.path().join("clock");
    let run = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--graphiql", "false"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("ANQUAN_JWT_SECRET", "black-box-tests-secret-of-at-least-32-bytes")
        .env("ANQUAN_TEST_CLOCK", &clock)
        .env_remove("ANQUAN_TEST_MODE")
        .env_remove("ANQUAN_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(StdDuration::from_secs(60), run)
        .await
        .expect("the service must refuse to start, not serve on a controllable clock")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("ANQUAN_TEST_CLOCK") && stderr.contains("ANQUAN_TEST_MODE=1"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_test_clock_past_a_certificates_validity_end_changes_its_status() {
    for backend in backends() {
        let clock_dir = tempfile::tempdir().unwrap();
        let clock = clock_dir.path().join("clock");
        let clock_env = clock.to_str().unwrap().to_owned();
        let app = spawn_app_with_env(
            backend,
            &[],
            &[("ANQUAN_TEST_CLOCK", &clock_env), ("ANQUAN_TEST_MODE", "1")],
        )
        .await;
        let admin = app.token(&["--role", "city_admin"]);
        let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let valid_until = (Utc::now() + Duration::days(2)).trunc_subsecs(0);
        let certificate = json!({
            "enterpriseId": id, "requirement": "R04.leader_certificates", "title": "主要负责人安全培训合格证",
            "validFrom": Utc::now() - Duration::days(10), "validUntil": valid_until
        });
        let uploaded = upload(&app, &admin, certificate).await;
        let document = data(&uploaded)["uploadDocument"]["documentId"]
            .as_str()
            .unwrap()
            .to_owned();
        data(&review(&app, &admin, &id, &document, "APPROVE", None).await);
        let (at, state, detail) = certificate_now(&app, &admin, &id).await;
        assert!(at < valid_until, "{backend:?}: {at}");
        assert_eq!(
            (state.as_str(), detail.as_str()),
            ("SATISFIED", "VALID_UNTIL"),
            "{backend:?}"
        );

        // Three days on: "now" is past the validity end, with no event in between.
        std::fs::write(&clock, (3 * 24 * 3600).to_string()).unwrap();
        let (at, state, detail) = certificate_now(&app, &admin, &id).await;
        assert!(at >= valid_until, "{backend:?}: the clock did not move: {at}");
        assert_eq!(
            (state.as_str(), detail.as_str()),
            ("UNSATISFIED", "EXPIRED"),
            "{backend:?}"
        );

        // A command decided now is decided at the moved instant.
        let renewed = json!({
            "enterpriseId": id, "requirement": "R10.plan", "title": "综合应急预案"
        });
        upload(&app, &admin, renewed).await;
        let history = app
            .graphql(
                Some(&admin),
                "query($id: ID!) { enterprise(id: $id) { history(first: 100) { nodes { eventType occurredAt recordedAt } } } }",
                json!({ "id": id }),
            )
            .await;
        let last: &Value = data(&history)["enterprise"]["history"]["nodes"]
            .as_array()
            .unwrap()
            .last()
            .unwrap();
        assert_eq!(last["eventType"], "DocumentUploaded", "{history}");
        let occurred: DateTime<Utc> = last["occurredAt"].as_str().unwrap().parse().unwrap();
        assert!(occurred >= valid_until, "{backend:?}: {history}");
        // And the store records it at the moved instant too: one clock.
        let recorded: DateTime<Utc> = last["recordedAt"].as_str().unwrap().parse().unwrap();
        assert!(recorded >= valid_until, "{backend:?}: {history}");
        app.stop().await;
    }
}
