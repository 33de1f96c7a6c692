//! Bad input gets a clear error with a stable code and appends nothing; a duplicate command id
//! returns the first result.

use serde_json::{Value, json};

use crate::compliance_flow::{register, review, upload};
use crate::support::{Backend, backends, data, error_code, spawn_app};

const ENTERPRISE: &str =
    "query($id: ID!) { enterprise(id: $id) { name compliance { summary } documents { id reviewState } } }";
const LIST: &str = "query($town: String) { enterprises(town: $town) { nodes { id } } }";
const UPLOAD: &str = "mutation($input: UploadDocumentInput!, $file: Upload!) { uploadDocument(input: $input, file: $file) { documentId } }";

#[tokio::test]
async fn bad_input_is_refused_with_a_stable_code_and_appends_nothing() {
    for backend in backends() {
        run(backend).await;
    }
}

async fn run(backend: Backend) {
    let app = spawn_app(backend, &["--upload-bytes-max", "4096"]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
    let other_officer = app.token(&["--role", "town_officer", "--town", "长安"]);
    let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let other = register(&app, &admin, "91330100799655058B", "长安").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);
    let plan = json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "应急预案", "documentId": uuid::Uuid::now_v7().to_string() });
    let document = data(&upload(&app, &owner, plan.clone()).await)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Malformed ids, unknown enterprises, unknown requirements.
    let response = app
        .graphql(Some(&admin), ENTERPRISE, json!({ "id": "not-a-uuid" }))
        .await;
    assert_eq!(error_code(&response), "INVALID_ID");
    let unknown = uuid::Uuid::new_v4().to_string();
    let response = upload(
        &app,
        &admin,
        json!({ "enterpriseId": unknown, "requirement": "R10.plan", "title": "x" }),
    )
    .await;
    assert_eq!(error_code(&response), "UNKNOWN_ENTERPRISE");
    assert_eq!(extension(&response, "enterpriseId"), &json!(unknown), "{response}");
    let response = upload(
        &app,
        &owner,
        json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "标".repeat(1_000) }),
    )
    .await;
    assert_eq!(error_code(&response), "INVALID_FIELD");
    assert_eq!(extension(&response, "field"), "title", "{response}");
    assert_eq!(extension(&response, "problem"), "TOO_LONG", "{response}");
    assert!(extension(&response, "charsMax").is_u64(), "{response}");
    let response = upload(
        &app,
        &owner,
        json!({ "enterpriseId": id, "requirement": "R10.nothing", "title": "x" }),
    )
    .await;
    assert_eq!(error_code(&response), "UNKNOWN_REQUIREMENT");
    let response = app
        .graphql(Some(&admin), "mutation { registerEnterprise(input: { name: \"x\", creditCode: \"91330100799655058C\", town: \"许村\", industry: \"x\", profile: { staffCount: 1, annualRevenue10kYuan: 1, flags: [] } }) { duplicate } }", json!({}))
        .await;
    assert_eq!(error_code(&response), "INVALID_CREDIT_CODE");

    // Files: empty and oversized.
    let (_, response) = app
        .graphql_upload(
            &owner,
            UPLOAD,
            json!({ "input": { "enterpriseId": id, "requirement": "R10.plan", "title": "x" }, "file": null }),
            Vec::new(),
        )
        .await;
    assert_eq!(error_code(&response), "EMPTY_FILE");
    assert_eq!(extension(&response, "field"), "file", "{response}");
    let (status, response) = app
        .graphql_upload(
            &owner,
            UPLOAD,
            json!({ "input": { "enterpriseId": id, "requirement": "R10.plan", "title": "x" }, "file": null }),
            vec![b'x'; 10_000],
        )
        .await;
    assert_eq!(error_code(&response), "FILE_TOO_LARGE", "status {status}");
    assert_eq!(extension(&response, "maxBytes"), "4096", "{response}");

    // Roles outside their scope.
    let response = review(&app, &other_officer, &id, &document, "APPROVE", None).await;
    assert_eq!(error_code(&response), "FORBIDDEN");
    let response = app.graphql(Some(&owner), ENTERPRISE, json!({ "id": other })).await;
    assert_eq!(error_code(&response), "FORBIDDEN");
    let response = app.graphql(Some(&officer), LIST, json!({ "town": "长安" })).await;
    assert_eq!(error_code(&response), "FORBIDDEN");
    let response = upload(
        &app,
        &officer,
        json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "x" }),
    )
    .await;
    assert_eq!(error_code(&response), "FORBIDDEN");
    let response = app.graphql(None, ENTERPRISE, json!({ "id": id })).await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
    let response = app.graphql(Some("not-a-token"), ENTERPRISE, json!({ "id": id })).await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
    assert!(extension(&response, "reason").is_string(), "{response}");

    // A wrong expected version (the stream is at version 1: registered, uploaded).
    let stale = json!({ "input": { "enterpriseId": id, "documentId": document, "decision": "APPROVE" } });
    let response = app.graphql(Some(&officer), "mutation($input: ReviewDocumentInput!) { reviewDocument(input: $input, expectedVersion: 0) { streamVersion } }", stale.clone()).await;
    assert_eq!(error_code(&response), "WRONG_EXPECTED_VERSION");
    assert_eq!(extension(&response, "expectedVersion"), "0", "{response}");
    assert_eq!(extension(&response, "actualVersion"), "1", "{response}");
    let response = app.graphql(Some(&officer), "mutation($input: ReviewDocumentInput!) { reviewDocument(input: $input, expectedVersion: 7) { streamVersion } }", stale.clone()).await;
    assert_eq!(error_code(&response), "WRONG_EXPECTED_VERSION");

    // None of the above appended anything: the stream is still at version 1.
    let command_id = uuid::Uuid::now_v7().to_string();
    let mutation = "mutation($input: ReviewDocumentInput!, $commandId: ID) { reviewDocument(input: $input, expectedVersion: 1, commandId: $commandId) { streamVersion duplicate } }";
    let variables = json!({ "input": { "enterpriseId": id, "documentId": document, "decision": "APPROVE" }, "commandId": command_id });
    let first = app.graphql(Some(&officer), mutation, variables.clone()).await;
    assert_eq!(
        data(&first)["reviewDocument"],
        json!({ "streamVersion": "2", "duplicate": false })
    );

    // A retry with the same command id returns the first result and writes nothing.
    let retry = app.graphql(Some(&officer), mutation, variables).await;
    assert_eq!(
        data(&retry)["reviewDocument"],
        json!({ "streamVersion": "2", "duplicate": true })
    );
    let again = app.graphql(Some(&officer), "mutation($input: ReviewDocumentInput!) { reviewDocument(input: $input, expectedVersion: 2) { streamVersion } }", stale).await;
    assert_eq!(error_code(&again), "ALREADY_REVIEWED");
    let file = app.graphql(Some(&owner), ENTERPRISE, json!({ "id": id })).await;
    assert_eq!(
        data(&file)["enterprise"]["documents"].as_array().unwrap().len(),
        1,
        "{file}"
    );
    app.stop().await;
}

/// A field of the first error's `extensions`, after checking that its message is for people:
/// Chinese (`extensions.code` and the other fields are for programs).
fn extension<'a>(response: &'a Value, name: &str) -> &'a Value {
    let error = &response["errors"][0];
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message
            .chars()
            .any(|character| ('\u{4E00}'..='\u{9FFF}').contains(&character)),
        "a message for people is Chinese: {response}"
    );
    &error["extensions"][name]
}
