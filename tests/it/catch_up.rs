//! Catch-up you can watch: a service started on a store with a backlog logs how far its
//! projections have got (position, head, events/s, time left) while they catch up and once when
//! they have, and `/readyz` shows the same as `catchUp`.

use std::time::Duration;

use serde_json::Value;

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, binary, spawn_app};

/// The demo's enterprises: a backlog of about 10,000 events, more than the runner's first pages.
const DEMO_ENTERPRISES: &str = "60";

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = reqwest::get(format!("{}/readyz", app.base_url)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Waits until `/readyz` answers 200 with a measurement of the catch-up that `done` accepts;
/// returns its body. Every body on the way must make sense: position at most the head.
async fn ready_body(app: &TestApp, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readyz(app).await;
        let catch_up = &body["catchUp"];
        if let (Some(position), Some(head)) = (catch_up["position"].as_u64(), catch_up["head"].as_u64()) {
            assert!(position <= head, "{catch_up}");
        }
        if status == 200 && !body["catchUp"].is_null() && done(&body["catchUp"]) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready and caught up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks `catchUp` of a caught-up service: position at the head, nothing left.
fn assert_caught_up(body: &Value) {
    let catch_up = &body["catchUp"];
    let position = catch_up["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("no catchUp: {body}"));
    let head = catch_up["head"].as_u64().unwrap();
    assert!(position <= head, "{catch_up}");
    assert_eq!(position, head, "caught up: {catch_up}");
    assert_eq!(catch_up["catchingUp"], false, "{catch_up}");
    assert_eq!(catch_up["etaSeconds"].as_f64(), Some(0.0), "{catch_up}");
    assert!(
        catch_up["eventsPerSecond"].as_f64().is_some_and(|rate| rate >= 0.0),
        "{catch_up}"
    );
    // SQLite and PostgreSQL have dense positions: the lag counts events (the same number in
    // both fields), and a position is one number.
    assert_eq!(catch_up["unit"], "events", "{catch_up}");
    let projections = body["projections"].as_array().unwrap();
    assert!(!projections.is_empty(), "{body}");
    for projection in projections {
        assert!(projection["lagEvents"].as_u64().is_some(), "{projection}");
        assert_eq!(projection["lagPositions"], projection["lagEvents"], "{projection}");
        assert!(projection["preparePosition"].is_null(), "{projection}");
    }
}

#[tokio::test]
async fn readyz_shows_the_catch_up_of_a_service_with_nothing_behind() {
    for backend in backends() {
        let app = spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        // The runner measures every second: wait for a measurement after the registration.
        let body = ready_body(&app, |catch_up| catch_up["head"].as_u64().is_some_and(|head| head >= 1)).await;
        assert_caught_up(&body);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_service_started_on_a_backlog_logs_its_catch_up_and_shows_it_in_readyz() {
    for backend in backends() {
        catch_up_on_start(backend).await;
    }
}

async fn catch_up_on_start(backend: Backend) {
    let mut app = spawn_app(backend, &[]).await;
    app.kill().await;
    let mut demo = std::process::Command::new(binary());
    demo.args(["demo", "--years", "1", "--enterprises", DEMO_ENTERPRISES, "--data-dir"])
        .arg(app.data_dir())
        .env_remove("ANQUAN_DATABASE_URL");
    if let Some(url) = app.database_url() {
        demo.arg("--database").arg(url);
    }
    let output = demo.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Not a terminal: the demo writes plain progress lines.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("enterprises: ") && stderr.contains("histories (100%)"),
        "{stderr}"
    );

    let app = app.restart().await;
    let body = ready_body(&app, |catch_up| catch_up["catchingUp"] == false).await;
    assert_caught_up(&body);
    // The log said how far the catch-up was while it ran, then (at the runner's next
    // measurement, within a second) that it was done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = app.log_lines();
        if lines
            .iter()
            .any(|line| line.contains("projections caught up with the log"))
            || tokio::time::Instant::now() > deadline
        {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let progress: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("projections ca"))
        })
        .collect();
    let catching_up = progress
        .iter()
        .find(|line| line["fields"]["message"] == "projections catching up with the log")
        .unwrap_or_else(|| panic!("no catch-up progress logged: {lines:#?}"));
    let fields = &catching_up["fields"];
    let (position, head) = (fields["position"].as_u64().unwrap(), fields["head"].as_u64().unwrap());
    assert!(position < head, "it was behind when it logged: {fields}");
    assert_eq!(fields["events.remaining"].as_u64(), Some(head - position), "{fields}");
    assert!(fields["events_per_second"].is_number(), "{fields}");
    let done = progress
        .iter()
        .find(|line| line["fields"]["message"] == "projections caught up with the log")
        .unwrap_or_else(|| panic!("no end of the catch-up logged: {lines:#?}"));
    assert_eq!(done["fields"]["position"], done["fields"]["head"], "{done}");
    assert!(done["fields"]["head"].as_u64().unwrap() >= head, "{done}");
    app.stop().await;
}
