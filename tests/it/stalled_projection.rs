//! A projection that fails on an event stalls alone: one of the agency read model's tables is
//! dropped from outside the service and an agency is registered. The service keeps running,
//! `/readyz` is 503 and names the projection and the event, `health` says STALLED, agency
//! queries answer PROJECTION_STALLED, and enterprises are still registered and read within
//! seconds. A restart recreates the table (its migration) and the agency projection resumes
//! from the failing event: both agencies registered meanwhile are there, none skipped.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, binary, data, error_code, spawn_app};

const REGISTER_AGENCY: &str = "mutation($profile: AgencyProfileInput!) {
  registerAgency(profile: $profile) { agencyId position eventTypes } }";
const DIRECTORY: &str = "query { agencyDirectory(includeBlacklisted: true) { id name } }";
const HEALTH: &str =
    "query { health { name position state failingEvent { position streamId eventType } error since attempts } }";
const ENTERPRISE: &str = "query($id: ID!) { enterprise(id: $id) { id name } }";
const CITY_METRICS: &str = "query { cityMetrics { metrics { code } } }";

/// How long the agency projection may take to be reported stalled: its retries before that
/// take about six seconds.
const STALL_TIMEOUT: Duration = Duration::from_secs(45);

#[tokio::test]
async fn a_projection_that_fails_on_an_event_stalls_alone_and_resumes_from_that_event() {
    for backend in backends() {
        run(backend).await;
    }
}

fn profile(name: &str) -> Value {
    json!({
        "name": name, "licence": "APJ-(浙)-009", "serviceScope": ["安全管家"],
        "serviceStandards": "每季度上门一次", "feeBand": { "minYuan": 3000, "maxYuan": 12000 },
        "contactPhone": "0573-87009999"
    })
}

async fn register_agency(app: &TestApp, admin: &str, name: &str) -> (String, u64, String) {
    let response = app
        .graphql(Some(admin), REGISTER_AGENCY, json!({ "profile": profile(name) }))
        .await;
    let registered = &data(&response)["registerAgency"];
    (
        registered["agencyId"].as_str().unwrap().to_owned(),
        registered["position"].as_str().unwrap().parse().unwrap(),
        registered["eventTypes"][0].as_str().unwrap().to_owned(),
    )
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(format!("{}/readyz", app.base_url)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn projection<'a>(projections: &'a Value, name: &str) -> &'a Value {
    projections
        .as_array()
        .unwrap()
        .iter()
        .find(|projection| projection["name"] == name)
        .unwrap_or_else(|| panic!("no projection {name} in {projections}"))
}

async fn run(backend: Backend) {
    let mut app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let first = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");

    // No agency yet: the table is empty, so the restart's migration recreates it as it was.
    app.store_sql("DROP TABLE agency_agencies").await;
    let (agency, failing, event_type) = register_agency(&app, &admin, "海宁市甲安全技术服务有限公司").await;

    // The agency projection is reported stalled on that event, its checkpoint just before it.
    let started = Instant::now();
    let ready = loop {
        let (status, ready) = readyz(&app).await;
        if status == 503 {
            break ready;
        }
        assert!(started.elapsed() < STALL_TIMEOUT, "never reported stalled: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ready["ready"], false, "{ready}");
    assert_eq!(ready["eventStore"], "ok", "{ready}");
    let stalled = projection(&ready["projections"], "agency");
    assert_eq!(stalled["state"], "STALLED", "{ready}");
    assert_eq!(stalled["position"], failing - 1, "{ready}");
    assert_eq!(stalled["failingEvent"]["position"], failing, "{ready}");
    assert_eq!(
        stalled["failingEvent"]["streamId"],
        format!("agency-{agency}"),
        "{ready}"
    );
    assert_eq!(stalled["failingEvent"]["eventType"], event_type.as_str(), "{ready}");
    assert!(
        stalled["error"].as_str().unwrap().contains("agency_agencies"),
        "{ready}"
    );
    assert!(stalled["since"].is_string(), "{ready}");
    assert_eq!(
        projection(&ready["projections"], "compliance")["state"],
        "RUNNING",
        "{ready}"
    );

    // `health`, without a token, says the same without the store's own words.
    let health = app.graphql(None, HEALTH, json!({})).await;
    let projections = &data(&health)["health"];
    let stalled = projection(projections, "agency");
    assert_eq!(stalled["state"], "STALLED", "{health}");
    assert_eq!(stalled["position"], (failing - 1).to_string(), "{health}");
    assert_eq!(stalled["failingEvent"]["position"], failing.to_string(), "{health}");
    assert_eq!(stalled["failingEvent"]["eventType"], event_type.as_str(), "{health}");
    assert!(stalled["error"].as_str().unwrap().contains("agency"), "{health}");
    assert!(
        !stalled["error"].as_str().unwrap().contains("agency_agencies"),
        "{health}"
    );
    assert_eq!(projection(projections, "compliance")["state"], "RUNNING", "{health}");

    // Queries of the agency read model (and the metrics, which read both) say so.
    let directory = app.graphql(None, DIRECTORY, json!({})).await;
    assert_eq!(error_code(&directory), "PROJECTION_STALLED", "{directory}");
    assert_eq!(
        directory["errors"][0]["extensions"]["projection"], "agency",
        "{directory}"
    );
    let metrics = app.graphql(Some(&admin), CITY_METRICS, json!({})).await;
    assert_eq!(error_code(&metrics), "PROJECTION_STALLED", "{metrics}");

    // Enterprises go on: registered and read back within seconds.
    let started = Instant::now();
    let second = register(&app, &admin, "91330481MA28A0YY0X", "许村").await;
    let enterprise = app.graphql(Some(&admin), ENTERPRISE, json!({ "id": second })).await;
    assert_eq!(data(&enterprise)["enterprise"]["id"], second.as_str(), "{enterprise}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let enterprise = app.graphql(Some(&admin), ENTERPRISE, json!({ "id": first })).await;
    assert_eq!(data(&enterprise)["enterprise"]["id"], first.as_str(), "{enterprise}");

    // A second agency mutation is recorded after the failing event; the process keeps running.
    let (other, last, _) = register_agency(&app, &admin, "海宁市乙安全技术服务有限公司").await;
    assert!(app.running(), "the service exited");

    // The operators' command shows the checkpoint and the failing event from the store.
    let mut status = std::process::Command::new(binary());
    status.args(["projections", "status", "--data-dir"]).arg(app.data_dir());
    if let Some(url) = app.database_url() {
        status.arg("--database").arg(url);
    }
    let output = status.output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line = printed
        .lines()
        .find(|line| line.starts_with("agency "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        line.contains(&format!("checkpoint {}", failing - 1))
            && line.contains(&format!("next event {failing} agency-{agency} {event_type}")),
        "{printed}"
    );

    // A restart recreates the table; the projection resumes from the failing event.
    let app = app.restart().await;
    let started = Instant::now();
    loop {
        let (status, ready) = readyz(&app).await;
        let agency = projection(&ready["projections"], "agency");
        if status == 200 && agency["state"] == "RUNNING" {
            assert!(agency["position"].as_u64().unwrap() >= last, "{ready}");
            break;
        }
        assert!(started.elapsed() < STALL_TIMEOUT, "never resumed: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let directory = app.graphql(None, DIRECTORY, json!({})).await;
    let mut ids: Vec<&str> = data(&directory)["agencyDirectory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agency| agency["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![agency.as_str(), other.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "{directory}");
    app.stop().await;
}
