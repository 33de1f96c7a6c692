//! Idempotency as clients expect it (issues #16 and #17): a retried mutation with the same
//! `commandId` returns exactly the first answer, including every id the first call created,
//! and those ids exist; the same `commandId` with other input or aimed at another stream is
//! refused with `IDEMPOTENCY_KEY_REUSED` and changes nothing; a caller replaying its own
//! earlier `commandId` against a file it may not touch gets `FORBIDDEN` and no data.

use chrono::{Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::supervision_flow::multipart;
use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app};

const UPLOAD: &str = "mutation($input: UploadDocumentInput!, $file: Upload!, $commandId: ID) {
  uploadDocument(input: $input, file: $file, commandId: $commandId) { documentId streamVersion position duplicate } }";
const CHANGE_PROFILE: &str = "mutation($input: ChangeEnterpriseProfileInput!, $commandId: ID) {
  changeEnterpriseProfile(input: $input, commandId: $commandId) {
    streamVersion duplicate enterprise { id name town } } }";
const DOCUMENTS: &str = "query($id: ID!) { enterprise(id: $id) { name documents { id title } } }";
const REGISTER_AGENCY: &str = "mutation($profile: AgencyProfileInput!, $commandId: ID) {
  registerAgency(profile: $profile, commandId: $commandId) { agencyId eventTypes duplicate streamVersion } }";
const CHANGE_AGENCY: &str = "mutation($agency: ID!, $profile: AgencyProfileInput!, $commandId: ID) {
  changeAgencyProfile(agencyId: $agency, profile: $profile, commandId: $commandId) {
    agencyId eventTypes duplicate streamVersion } }";
const AGENCY: &str = "query($id: ID!) { agency(id: $id) { contactPhone } }";
const SIGN: &str = "mutation($input: ProposeContractInput!, $commandId: ID) {
  proposeContract(input: $input, commandId: $commandId) { contractId eventTypes duplicate streamVersion } }";
const SERVICES: &str = "query($id: ID!) { enterpriseServices(enterpriseId: $id) { contracts { id } } }";
const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!, $commandId: ID) {
  recordInspection(input: $input, documents: $documents, photos: $photos, commandId: $commandId) {
    inspectionId hazardIds duplicate streamVersion } }";
const INSPECTIONS: &str = "query($id: ID!) { enterprise(id: $id) { inspections { id hazardIds } hazards { id } } }";

#[tokio::test]
async fn a_retried_command_returns_the_first_answer_and_a_reused_key_is_refused() {
    for backend in backends() {
        run(backend).await;
    }
}

fn command_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn upload(app: &TestApp, token: &str, input: Value, command_id: &str) -> Value {
    let (status, response) = app
        .graphql_upload(
            token,
            UPLOAD,
            json!({ "input": input, "file": null, "commandId": command_id }),
            b"%PDF-1.4 emergency plan".to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    response
}

fn profile_input(enterprise: &str, name: &str, town: &str) -> Value {
    json!({ "input": {
        "enterpriseId": enterprise, "name": name, "town": town, "industry": "家纺",
        "profile": { "staffCount": 80, "annualRevenue10kYuan": 600, "flags": [] } } })
}

/// Adds `commandId` to a mutation's variables.
fn keyed(mut variables: Value, command_id: &str) -> Value {
    variables["commandId"] = json!(command_id);
    variables
}

fn agency_profile(phone: &str) -> Value {
    json!({
        "name": "海宁市安信安全技术服务有限公司", "licence": "APJ-(浙)-001", "serviceScope": ["安全管家"],
        "serviceStandards": "每季度上门一次", "feeBand": { "minYuan": 3000, "maxYuan": 12000 },
        "contactPhone": phone
    })
}

async fn documents(app: &TestApp, token: &str, enterprise: &str) -> Vec<Value> {
    let response = app.graphql(Some(token), DOCUMENTS, json!({ "id": enterprise })).await;
    data(&response)["enterprise"]["documents"].as_array().unwrap().clone()
}

/// A refusal carries its code and no data at all.
fn assert_refused_without_data(response: &Value, code: &str, field: &str) {
    assert_eq!(error_code(response), code, "{response}");
    assert!(
        response["data"].is_null() || response["data"][field].is_null(),
        "a refused mutation returns no data: {response}"
    );
}

async fn run(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let first = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let second = register(&app, &admin, "91330100799655058B", "长安").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &first]);
    let other_owner = app.token(&["--role", "enterprise", "--enterprise", &second]);
    let other_officer = app.token(&["--role", "town_officer", "--town", "长安"]);
    let inspector = app.token(&["--role", "town_inspector", "--town", "许村"]);

    // uploadDocument without a documentId: the retry names the same document, which exists.
    let upload_key = command_id();
    let plan = json!({ "enterpriseId": first, "requirement": "R10.plan", "title": "应急预案" });
    let uploaded = upload(&app, &owner, plan.clone(), &upload_key).await;
    let uploaded = data(&uploaded)["uploadDocument"].clone();
    assert_eq!(uploaded["duplicate"], false);
    let retried = upload(&app, &owner, plan.clone(), &upload_key).await;
    let retried = data(&retried)["uploadDocument"].clone();
    assert_eq!(
        retried,
        json!({ "documentId": uploaded["documentId"], "streamVersion": uploaded["streamVersion"],
                "position": uploaded["position"], "duplicate": true }),
        "a retry returns the first answer"
    );
    let stored = documents(&app, &owner, &first).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["id"], uploaded["documentId"], "the returned document exists");

    // The same key with other input: refused, nothing appended.
    let mut other_title = plan.clone();
    other_title["title"] = json!("另一份预案");
    let refused = upload(&app, &owner, other_title, &upload_key).await;
    assert_refused_without_data(&refused, "IDEMPOTENCY_KEY_REUSED", "uploadDocument");
    assert_eq!(documents(&app, &owner, &first).await.len(), 1);

    // The same key aimed at another stream, by a caller who may write both: refused there.
    let profile_key = command_id();
    let changed = app
        .graphql(
            Some(&admin),
            CHANGE_PROFILE,
            keyed(profile_input(&first, "许村家纺一厂", "许村"), &profile_key),
        )
        .await;
    assert_eq!(data(&changed)["changeEnterpriseProfile"]["duplicate"], false);
    let elsewhere = app
        .graphql(
            Some(&admin),
            CHANGE_PROFILE,
            keyed(profile_input(&second, "许村家纺一厂", "长安"), &profile_key),
        )
        .await;
    assert_refused_without_data(&elsewhere, "IDEMPOTENCY_KEY_REUSED", "changeEnterpriseProfile");
    let untouched = app.graphql(Some(&admin), DOCUMENTS, json!({ "id": second })).await;
    assert_eq!(data(&untouched)["enterprise"]["name"], "海宁市许村某家纺有限公司");

    // Another enterprise replays its own earlier command id against the first enterprise's file:
    // FORBIDDEN and nothing of the file (issue #17).
    let own_key = command_id();
    let own_plan = json!({ "enterpriseId": second, "requirement": "R10.plan", "title": "应急预案" });
    let own = upload(&app, &other_owner, own_plan, &own_key).await;
    assert_eq!(data(&own)["uploadDocument"]["duplicate"], false);
    let forbidden = app.graphql(Some(&other_owner), DOCUMENTS, json!({ "id": first })).await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let replay = app
        .graphql(
            Some(&other_owner),
            CHANGE_PROFILE,
            keyed(profile_input(&first, "x", "许村"), &own_key),
        )
        .await;
    assert_refused_without_data(&replay, "FORBIDDEN", "changeEnterpriseProfile");
    assert!(!replay.to_string().contains("许村家纺一厂"), "{replay}");
    // The same for another town's officer with its own earlier command.
    let officer_key = command_id();
    let own_change = app
        .graphql(
            Some(&other_officer),
            CHANGE_PROFILE,
            keyed(profile_input(&second, "长安家纺", "长安"), &officer_key),
        )
        .await;
    assert_eq!(data(&own_change)["changeEnterpriseProfile"]["duplicate"], false);
    let replay = app
        .graphql(
            Some(&other_officer),
            CHANGE_PROFILE,
            keyed(profile_input(&first, "长安家纺", "长安"), &officer_key),
        )
        .await;
    assert_refused_without_data(&replay, "FORBIDDEN", "changeEnterpriseProfile");
    assert!(!replay.to_string().contains("许村家纺一厂"), "{replay}");

    // registerAgency without an agencyId: the retry names the same agency and its event types.
    let agency_key = command_id();
    let variables = json!({ "profile": agency_profile("0573-87001234"), "commandId": agency_key });
    let registered = app.graphql(Some(&admin), REGISTER_AGENCY, variables.clone()).await;
    let registered = data(&registered)["registerAgency"].clone();
    assert_eq!(registered["eventTypes"], json!(["AgencyRegistered"]));
    let retried = app.graphql(Some(&admin), REGISTER_AGENCY, variables).await;
    assert_eq!(
        data(&retried)["registerAgency"],
        json!({ "agencyId": registered["agencyId"], "eventTypes": ["AgencyRegistered"], "duplicate": true,
                "streamVersion": registered["streamVersion"] })
    );
    let agency_id = registered["agencyId"].as_str().unwrap().to_owned();
    let found = app.graphql(Some(&admin), AGENCY, json!({ "id": agency_id })).await;
    assert_eq!(
        data(&found)["agency"]["contactPhone"],
        "0573-87001234",
        "the agency exists"
    );
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);

    // proposeContract without a contractId: the same contract, once.
    let now = Utc::now().trunc_subsecs(6);
    let contract = json!({ "agencyId": agency_id, "enterpriseId": first,
        "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
        "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 5000 });
    let sign_key = command_id();
    let variables = json!({ "input": contract, "commandId": sign_key });
    let signed = app.graphql(Some(&agency), SIGN, variables.clone()).await;
    let signed = data(&signed)["proposeContract"].clone();
    assert_eq!(signed["eventTypes"], json!(["ContractProposed"]));
    let retried = app.graphql(Some(&agency), SIGN, variables).await;
    assert_eq!(
        data(&retried)["proposeContract"],
        json!({ "contractId": signed["contractId"], "eventTypes": ["ContractProposed"], "duplicate": true,
                "streamVersion": signed["streamVersion"] })
    );
    let services = app.graphql(Some(&owner), SERVICES, json!({ "id": first })).await;
    assert_eq!(
        data(&services)["enterpriseServices"]["contracts"],
        json!([{ "id": signed["contractId"] }]),
        "the contract exists, once"
    );

    // Another agency replays its own earlier command id against this agency: FORBIDDEN.
    let other_agency = data(
        &app.graphql(
            Some(&admin),
            REGISTER_AGENCY,
            json!({ "profile": agency_profile("0573-87009999"), "commandId": command_id() }),
        )
        .await,
    )["registerAgency"]["agencyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_agency_token = app.token(&["--role", "agency", "--agency", &other_agency]);
    let other_key = command_id();
    let own_change = app
        .graphql(
            Some(&other_agency_token),
            CHANGE_AGENCY,
            json!({ "agency": other_agency, "profile": agency_profile("0573-87008888"), "commandId": other_key }),
        )
        .await;
    assert_eq!(data(&own_change)["changeAgencyProfile"]["duplicate"], false);
    let replay = app
        .graphql(
            Some(&other_agency_token),
            CHANGE_AGENCY,
            json!({ "agency": agency_id, "profile": agency_profile("0573-87008888"), "commandId": other_key }),
        )
        .await;
    assert_refused_without_data(&replay, "FORBIDDEN", "changeAgencyProfile");

    // recordInspection: the retry names the same inspection and hazards, which exist once.
    let input = json!({
        "enterpriseId": first, "kind": "ON_SITE", "inspectedAt": now - Duration::minutes(5),
        "inspectors": ["王检查"], "notes": "现场检查", "documentKinds": ["RECTIFICATION_ORDER"],
        "hazards": [
            { "category": "DUST", "level": "GENERAL", "description": "积尘未清理", "photoIndexes": [0] },
            { "category": "ELECTRICAL", "level": "GENERAL", "description": "配电箱未接地" },
        ]
    });
    let inspection_key = command_id();
    let variables = json!({ "input": input, "documents": [null], "photos": [null], "commandId": inspection_key });
    let files = [("documents", 1), ("photos", 1)];
    let recorded = multipart(&app, &inspector, RECORD_INSPECTION, variables.clone(), &files).await;
    let recorded = data(&recorded)["recordInspection"].clone();
    assert_eq!(recorded["duplicate"], false);
    assert_eq!(recorded["hazardIds"].as_array().unwrap().len(), 2);
    let retried = multipart(&app, &inspector, RECORD_INSPECTION, variables, &files).await;
    assert_eq!(
        data(&retried)["recordInspection"],
        json!({ "inspectionId": recorded["inspectionId"], "hazardIds": recorded["hazardIds"], "duplicate": true,
                "streamVersion": recorded["streamVersion"] })
    );
    let file = app.graphql(Some(&inspector), INSPECTIONS, json!({ "id": first })).await;
    let file = &data(&file)["enterprise"];
    assert_eq!(
        file["inspections"],
        json!([{ "id": recorded["inspectionId"], "hazardIds": recorded["hazardIds"] }]),
        "the inspection exists, once"
    );
    let mut hazards: Vec<Value> = file["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hazard| hazard["id"].clone())
        .collect();
    let mut expected = recorded["hazardIds"].as_array().unwrap().clone();
    hazards.sort_by_key(ToString::to_string);
    expected.sort_by_key(ToString::to_string);
    assert_eq!(hazards, expected, "the hazards exist, once each");
    app.stop().await;
}
