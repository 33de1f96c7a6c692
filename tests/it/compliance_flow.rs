//! The whole foundation loop over HTTP: register, upload, return with feedback, upload again,
//! approve, and watch "x of 21" and the reasons change, including a validity that ends at an
//! exact instant.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app, spawn_app_with_env};

const REGISTER: &str = "mutation($input: RegisterEnterpriseInput!) {
  registerEnterprise(input: $input) { streamVersion enterprise { id compliance { implemented notImplemented notYetDue notApplicable summary } } } }";
const UPLOAD: &str = "mutation($input: UploadDocumentInput!, $file: Upload!) {
  uploadDocument(input: $input, file: $file) { documentId streamVersion duplicate } }";
const REVIEW: &str = "mutation($input: ReviewDocumentInput!) {
  reviewDocument(input: $input) { streamVersion enterprise { compliance { implemented summary } } } }";
const ENTERPRISE: &str = "query($id: ID!, $asOf: DateTime) { enterprise(id: $id, asOf: $asOf) {
  name compliance { at implemented notImplemented notYetDue notApplicable summary
    indicators { code state reasons requirements { code state detail message validUntil dueAt feedback documentId } } } } }";
const QUEUE: &str = "query($town: String) { reviewQueue(town: $town) { nodes { id enterpriseId enterpriseName requirement title reviewState } } }";

pub(crate) async fn register(app: &TestApp, token: &str, credit_code: &str, town: &str) -> String {
    let input = json!({
        "name": "海宁市许村某家纺有限公司", "creditCode": credit_code, "town": town, "industry": "家纺",
        "profile": { "staffCount": 80, "annualRevenue10kYuan": 600, "flags": [] }
    });
    let response = app.graphql(Some(token), REGISTER, json!({ "input": input })).await;
    data(&response)["registerEnterprise"]["enterprise"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn upload(app: &TestApp, token: &str, input: Value) -> Value {
    let (status, response) = app
        .graphql_upload(
            token,
            UPLOAD,
            json!({ "input": input, "file": null }),
            b"%PDF-1.4 record".to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    response
}

pub(crate) async fn review(
    app: &TestApp,
    token: &str,
    enterprise: &str,
    document: &str,
    decision: &str,
    feedback: Option<&str>,
) -> Value {
    let input =
        json!({ "enterpriseId": enterprise, "documentId": document, "decision": decision, "feedback": feedback });
    app.graphql(Some(token), REVIEW, json!({ "input": input })).await
}

async fn enterprise_at(app: &TestApp, token: &str, id: &str, as_of: Option<DateTime<Utc>>) -> Value {
    let response = app
        .graphql(Some(token), ENTERPRISE, json!({ "id": id, "asOf": as_of }))
        .await;
    data(&response)["enterprise"]["compliance"].clone()
}

fn requirement<'a>(compliance: &'a Value, code: &str) -> &'a Value {
    compliance["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|indicator| indicator["requirements"].as_array().unwrap())
        .find(|requirement| requirement["code"] == code)
        .unwrap()
}

fn count(compliance: &Value, field: &str) -> i64 {
    compliance[field].as_i64().unwrap()
}

#[tokio::test]
async fn an_enterprise_file_moves_from_upload_to_implemented_and_its_validity_ends_exactly() {
    for backend in backends() {
        run_flow(backend).await;
    }
}

async fn run_flow(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
    let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);

    let start = enterprise_at(&app, &owner, &id, None).await;
    assert_eq!(
        count(&start, "implemented")
            + count(&start, "notImplemented")
            + count(&start, "notYetDue")
            + count(&start, "notApplicable"),
        21
    );
    assert_eq!(requirement(&start, "R10.plan")["detail"], "NO_RECORD");

    // The emergency plan: uploaded, waiting, then approved.
    let uploaded = upload(
        &app,
        &owner,
        json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "综合应急预案" }),
    )
    .await;
    let plan = data(&uploaded)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = enterprise_at(&app, &owner, &id, None).await;
    assert_eq!(requirement(&waiting, "R10.plan")["detail"], "AWAITING_REVIEW");
    let queue = app.graphql(Some(&officer), QUEUE, json!({})).await;
    let nodes = data(&queue)["reviewQueue"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 1, "{queue}");
    assert_eq!(nodes[0]["id"], plan);
    assert_eq!(nodes[0]["enterpriseId"], id);
    data(&review(&app, &officer, &id, &plan, "APPROVE", None).await);
    let approved = enterprise_at(&app, &owner, &id, None).await;
    assert_eq!(requirement(&approved, "R10.plan")["state"], "SATISFIED");

    // The principal's certificate: returned with feedback first, then a new upload approved.
    let valid_until = (Utc::now() + Duration::days(400)).trunc_subsecs(0);
    let certificate = json!({
        "enterpriseId": id, "requirement": "R04.leader_certificates", "title": "主要负责人安全培训合格证",
        "validFrom": Utc::now() - Duration::days(10), "validUntil": valid_until
    });
    let first = upload(&app, &owner, certificate.clone()).await;
    let first = data(&first)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();
    data(&review(&app, &officer, &id, &first, "RETURN", Some("证书盖章不清晰")).await);
    let returned = enterprise_at(&app, &owner, &id, None).await;
    let status = requirement(&returned, "R04.leader_certificates");
    assert_eq!(status["detail"], "RETURNED");
    assert_eq!(status["feedback"], "证书盖章不清晰");
    let r04 = returned["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|indicator| indicator["code"] == "R04")
        .unwrap();
    assert_eq!(r04["state"], "NOT_IMPLEMENTED");
    assert!(r04["reasons"][0].as_str().unwrap().contains("证书盖章不清晰"), "{r04}");

    let second = upload(&app, &owner, certificate).await;
    let second = data(&second)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let reviewed = review(&app, &officer, &id, &second, "APPROVE", None).await;
    let after = &data(&reviewed)["reviewDocument"]["enterprise"]["compliance"];
    assert_eq!(
        count(after, "implemented"),
        count(&returned, "implemented") + 1,
        "R04 is implemented now: {after}"
    );

    // The validity ends at an exact instant: valid one microsecond before, expired at it.
    let before_end = enterprise_at(&app, &owner, &id, Some(valid_until - Duration::microseconds(1))).await;
    let certificate_status = requirement(&before_end, "R04.leader_certificates");
    assert_eq!(certificate_status["state"], "SATISFIED");
    assert_eq!(certificate_status["detail"], "VALID_UNTIL");
    let at_end = enterprise_at(&app, &owner, &id, Some(valid_until)).await;
    let certificate_status = requirement(&at_end, "R04.leader_certificates");
    assert_eq!(certificate_status["state"], "UNSATISFIED");
    assert_eq!(certificate_status["detail"], "EXPIRED");

    // As of before the first upload, nothing of this had happened.
    // As of before its registration, the enterprise did not exist: a coded answer, not a null.
    let before = app
        .graphql(
            Some(&owner),
            ENTERPRISE,
            json!({ "id": id, "asOf": Utc::now() - Duration::days(1) }),
        )
        .await;
    assert_eq!(error_code(&before), "NOT_YET_REGISTERED", "{before}");
    app.stop().await;
}

fn indicators_in(compliance: &Value, state: &str) -> Vec<String> {
    compliance["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|indicator| indicator["state"] == state)
        .map(|indicator| indicator["code"].as_str().unwrap().to_owned())
        .collect()
}

/// A just-registered enterprise with no record: the indicators made only of periodic records
/// are 未到期 (NOT_YET_DUE), not 已落实, until their first due instant passes; then 未落实.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_just_registered_enterprise_is_not_yet_due_until_its_first_due_instant_passes() {
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

        let start = enterprise_at(&app, &admin, &id, None).await;
        assert_eq!(count(&start, "implemented"), 0, "{backend:?}: {start}");
        let not_yet_due = indicators_in(&start, "NOT_YET_DUE");
        assert!(!not_yet_due.is_empty(), "{backend:?}: {start}");
        assert_eq!(count(&start, "notYetDue"), not_yet_due.len() as i64);
        assert!(
            start["summary"]
                .as_str()
                .unwrap()
                .contains(&format!("未到期 {}", not_yet_due.len())),
            "{start}"
        );
        let annual = requirement(&start, "R09.annual_report");
        assert_eq!(
            (annual["state"].as_str(), annual["detail"].as_str()),
            (Some("NOT_YET_DUE"), Some("NOTHING_DUE_YET")),
            "{backend:?}: {annual}"
        );
        let due_at: DateTime<Utc> = annual["dueAt"].as_str().unwrap().parse().unwrap();
        let now: DateTime<Utc> = start["at"].as_str().unwrap().parse().unwrap();
        assert!(due_at > now, "{backend:?}: {annual}");

        // Past the first due instant of every periodic item (a year's record is due 31 days
        // after the year ends): the same indicators are 未落实, their records missing.
        let ahead = (due_at - now + Duration::days(1)).num_seconds();
        std::fs::write(&clock, ahead.to_string()).unwrap();
        let later = enterprise_at(&app, &admin, &id, None).await;
        assert_eq!(count(&later, "notYetDue"), 0, "{backend:?}: {later}");
        let not_implemented = indicators_in(&later, "NOT_IMPLEMENTED");
        for code in &not_yet_due {
            assert!(not_implemented.contains(code), "{backend:?}: {code} in {later}");
        }
        let annual = requirement(&later, "R09.annual_report");
        assert_eq!(
            (annual["state"].as_str(), annual["detail"].as_str()),
            (Some("UNSATISFIED"), Some("PERIOD_MISSING")),
            "{backend:?}: {annual}"
        );
        app.stop().await;
    }
}
