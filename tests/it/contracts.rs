//! Contracts with two parties and an official (issue #21): the agency proposes, the enterprise
//! confirms or rejects, the officer of the enterprise's town files. Only a filed contract counts
//! toward coverage and shows on the enterprise's public page; a rejected one never does; a fee
//! outside the band is filed only with an exception reason. On SQLite and PostgreSQL.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::agency_flow::register_agency;
use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app};

pub(crate) const PROPOSE: &str =
    "mutation($input: ProposeContractInput!) { proposeContract(input: $input) { contractId eventTypes } }";
const CONFIRM: &str = "mutation($agency: ID!, $contract: ID!) {
  confirmContract(agencyId: $agency, contractId: $contract) { eventTypes } }";
const REJECT: &str = "mutation($agency: ID!, $contract: ID!, $reason: String!) {
  rejectContract(agencyId: $agency, contractId: $contract, reason: $reason) { eventTypes } }";
const FILE: &str = "mutation($agency: ID!, $contract: ID!, $reason: String) {
  fileContract(agencyId: $agency, contractId: $contract, exceptionReason: $reason) { eventTypes } }";
const CONTRACT: &str =
    "query($agency: ID!, $contract: ID!) { serviceContract(agencyId: $agency, contractId: $contract) {
  status feeCheck confirmedAt filedAt rejectionReason feeExceptionReason } }";
const AWAITING: &str = "query { contractsAwaitingFiling { id status town } }";
const COVERAGE: &str = "query { serviceCoverage { enterprisesCovered enterpriseIds } }";
const ROTATE: &str = "mutation($id: ID!) { rotatePublicToken(enterpriseId: $id) { url } }";

const AGENCY_NAME: &str = "海宁市安信安全技术服务有限公司";

/// The enterprise confirms and the officer of `town` files a proposed contract (a helper for
/// the tests that need a contract that counts).
pub(crate) async fn confirm_and_file(
    app: &TestApp,
    agency_id: &str,
    contract_id: &str,
    enterprise_id: &str,
    town: &str,
    exception_reason: Option<&str>,
) {
    let owner = app.token(&["--role", "enterprise", "--enterprise", enterprise_id]);
    let officer = app.token(&["--role", "town_officer", "--town", town]);
    let ids = json!({ "agency": agency_id, "contract": contract_id });
    data(&app.graphql(Some(&owner), CONFIRM, ids.clone()).await);
    let mut variables = ids;
    variables["reason"] = json!(exception_reason);
    data(&app.graphql(Some(&officer), FILE, variables).await);
}

#[tokio::test]
async fn only_a_contract_confirmed_by_the_enterprise_and_filed_by_its_town_counts() {
    for backend in backends() {
        run(backend).await;
    }
}

async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    data(&app.graphql(Some(token), query, variables).await).clone()
}

async fn covered(app: &TestApp, admin: &str) -> Vec<String> {
    let coverage = ok(app, admin, COVERAGE, json!({})).await;
    coverage["serviceCoverage"]["enterpriseIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

async fn page(app: &TestApp, url: &str) -> String {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

async fn run(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise_id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let other_id = register(&app, &admin, "91330481MA28A0XX1A", "许村").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &enterprise_id]);
    let other_owner = app.token(&["--role", "enterprise", "--enterprise", &other_id]);
    let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
    let elsewhere = app.token(&["--role", "town_officer", "--town", "长安"]);
    let agency_id = register_agency(&app, &admin).await;
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);
    let url = ok(&app, &owner, ROTATE, json!({ "id": enterprise_id })).await["rotatePublicToken"]["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let now = Utc::now();
    let proposal = |enterprise: &str, fee: u64| {
        json!({ "input": { "agencyId": agency_id, "enterpriseId": enterprise,
            "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
            "services": ["安全管家"], "visitsPromised": 4, "feeYuan": fee } })
    };
    let state = |contract: &str| {
        let variables = json!({ "agency": agency_id, "contract": contract });
        let app = &app;
        let admin = admin.clone();
        async move { ok(app, &admin, CONTRACT, variables).await["serviceContract"].clone() }
    };

    // Proposed: not counted, not on the public page; it cannot be filed yet.
    let proposed = ok(&app, &agency, PROPOSE, proposal(&enterprise_id, 2000)).await;
    assert_eq!(proposed["proposeContract"]["eventTypes"], json!(["ContractProposed"]));
    let contract = proposed["proposeContract"]["contractId"].as_str().unwrap().to_owned();
    let ids = json!({ "agency": agency_id, "contract": contract });
    assert_eq!(state(&contract).await["status"], "PROPOSED");
    assert!(covered(&app, &admin).await.is_empty());
    assert!(!page(&app, &url).await.contains(AGENCY_NAME));
    let early = app.graphql(Some(&officer), FILE, ids.clone()).await;
    assert_eq!(error_code(&early), "CONTRACT_NOT_CONFIRMED");

    // Only the enterprise named confirms; the agency cannot confirm for it.
    let stranger = app.graphql(Some(&other_owner), CONFIRM, ids.clone()).await;
    assert_eq!(error_code(&stranger), "NOT_CONTRACT_ENTERPRISE");
    let itself = app.graphql(Some(&agency), CONFIRM, ids.clone()).await;
    assert_eq!(error_code(&itself), "FORBIDDEN");
    let confirmed = ok(&app, &owner, CONFIRM, ids.clone()).await;
    assert_eq!(confirmed["confirmContract"]["eventTypes"], json!(["ContractConfirmed"]));
    let twice = app.graphql(Some(&owner), CONFIRM, ids.clone()).await;
    assert_eq!(error_code(&twice), "CONTRACT_ALREADY_ANSWERED");

    // Confirmed: still not counted; it waits on the town's list, not on another town's.
    assert_eq!(state(&contract).await["status"], "CONFIRMED");
    assert!(covered(&app, &admin).await.is_empty());
    assert!(!page(&app, &url).await.contains(AGENCY_NAME));
    let awaiting = ok(&app, &officer, AWAITING, json!({})).await;
    assert_eq!(awaiting["contractsAwaitingFiling"][0]["id"], contract.as_str());
    let awaiting_elsewhere = ok(&app, &elsewhere, AWAITING, json!({})).await;
    assert_eq!(awaiting_elsewhere["contractsAwaitingFiling"], json!([]));

    // Filing: the officer of another town may not; a fee below the band needs a reason.
    let wrong_town = app.graphql(Some(&elsewhere), FILE, ids.clone()).await;
    assert_eq!(error_code(&wrong_town), "NOT_CONTRACT_TOWN");
    let no_reason = app.graphql(Some(&officer), FILE, ids.clone()).await;
    assert_eq!(error_code(&no_reason), "FEE_EXCEPTION_REASON_REQUIRED");
    assert_eq!(state(&contract).await["status"], "CONFIRMED");
    let mut with_reason = ids.clone();
    with_reason["reason"] = json!("小微企业首年优惠，经镇街审核同意");
    let filed = ok(&app, &officer, FILE, with_reason.clone()).await;
    assert_eq!(filed["fileContract"]["eventTypes"], json!(["ContractFiled"]));
    let again = app.graphql(Some(&officer), FILE, with_reason).await;
    assert_eq!(error_code(&again), "CONTRACT_ALREADY_FILED");

    // Filed: counted, and the agency shows on the public page.
    let filed = state(&contract).await;
    assert_eq!(filed["status"], "FILED");
    assert_eq!(filed["feeCheck"], "BELOW_BAND");
    assert_eq!(filed["feeExceptionReason"], "小微企业首年优惠，经镇街审核同意");
    assert_eq!(covered(&app, &admin).await, vec![enterprise_id.clone()]);
    assert!(page(&app, &url).await.contains(AGENCY_NAME));
    assert_eq!(
        ok(&app, &officer, AWAITING, json!({})).await["contractsAwaitingFiling"],
        json!([])
    );

    // Rejected: never counted, never filed.
    let proposed = ok(&app, &agency, PROPOSE, proposal(&other_id, 5000)).await;
    let rejected_contract = proposed["proposeContract"]["contractId"].as_str().unwrap().to_owned();
    let rejected_ids = json!({ "agency": agency_id, "contract": rejected_contract });
    let mut rejection = rejected_ids.clone();
    rejection["reason"] = json!("服务内容与洽谈不符");
    let rejected = ok(&app, &other_owner, REJECT, rejection).await;
    assert_eq!(rejected["rejectContract"]["eventTypes"], json!(["ContractRejected"]));
    let after = app.graphql(Some(&other_owner), CONFIRM, rejected_ids.clone()).await;
    assert_eq!(error_code(&after), "CONTRACT_REJECTED");
    let file_rejected = app.graphql(Some(&officer), FILE, rejected_ids).await;
    assert_eq!(error_code(&file_rejected), "CONTRACT_REJECTED");
    let rejected = state(&rejected_contract).await;
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(rejected["rejectionReason"], "服务内容与洽谈不符");
    assert_eq!(covered(&app, &admin).await, vec![enterprise_id.clone()]);

    // Nobody outside the parties, the town and the city reads a contract's state.
    let outsider = app
        .graphql(
            Some(&other_owner),
            CONTRACT,
            json!({ "agency": agency_id, "contract": contract }),
        )
        .await;
    assert_eq!(error_code(&outsider), "FORBIDDEN");
}
