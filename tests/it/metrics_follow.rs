//! The town statistics for "now" follow the agency events: a contract signed with an enterprise
//! counts it as served (H01, 社会化服务覆盖率), and the contract's termination, which names the
//! contract only, takes it out again without waiting for a recomputation of everything.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::agency_flow::{SIGN, register_agency};
use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, spawn_app};

/// How long the metrics watcher may take to follow an event.
const FOLLOW_TIMEOUT: StdDuration = StdDuration::from_secs(20);

const TERMINATE: &str = "mutation($agency: ID!, $contract: ID!) {
  terminateServiceContract(agencyId: $agency, contractId: $contract, reason: \"企业停产\") { eventTypes } }";
const COVERAGE: &str = "{ headlineRates(town: \"许村\") { socialServiceCoverage } }";

#[tokio::test]
async fn a_terminated_contract_leaves_the_town_coverage_without_waiting_for_the_refresh() {
    for backend in backends() {
        follow_a_contract(backend).await;
    }
}

async fn follow_a_contract(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise_id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let agency_id = register_agency(&app, &admin).await;
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);
    coverage_becomes(&app, &admin, 0.0).await;

    let now = Utc::now();
    let contract = json!({ "agencyId": agency_id, "enterpriseId": enterprise_id,
        "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
        "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 6000 });
    let signed = app.graphql(Some(&agency), SIGN, json!({ "input": contract })).await;
    let contract_id = data(&signed)["proposeContract"]["contractId"]
        .as_str()
        .unwrap()
        .to_owned();
    // A proposed contract counts only once the enterprise confirmed it and its town filed it.
    crate::contracts::confirm_and_file(&app, &agency_id, &contract_id, &enterprise_id, "许村", None).await;
    coverage_becomes(&app, &admin, 100.0).await;

    let variables = json!({ "agency": agency_id, "contract": contract_id });
    data(&app.graphql(Some(&agency), TERMINATE, variables).await);
    coverage_becomes(&app, &admin, 0.0).await;
}

/// Waits until 许村's service coverage for now reads `expected`.
async fn coverage_becomes(app: &TestApp, admin: &str, expected: f64) {
    let deadline = tokio::time::Instant::now() + FOLLOW_TIMEOUT;
    loop {
        let response = app.graphql(Some(admin), COVERAGE, json!({})).await;
        let coverage: &Value = &data(&response)["headlineRates"]["socialServiceCoverage"];
        if coverage.as_f64() == Some(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "coverage is {coverage}, not {expected}"
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}
