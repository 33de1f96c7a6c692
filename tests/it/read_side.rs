//! Nothing a client sends can stop or corrupt the read side: values the read models cannot hold
//! are refused where the command is decided, instants a query would compute with are checked,
//! ids that are unique only per stream never collide in a read model, every error carries a
//! code, and an id outside the caller's scope answers the same whether or not it exists. After
//! all of it, a new registration is readable and `/readyz` is ready.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::agency_flow::{SIGN, register_agency};
use crate::compliance_flow::{register, upload};
use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app};

const REGISTER: &str = "mutation($input: RegisterEnterpriseInput!) {
  registerEnterprise(input: $input) { enterprise { id } } }";
const RECORD_HAZARD: &str = "mutation($input: RecordHazardInput!) {
  recordHazard(input: $input) { duplicate } }";
const ENTERPRISE: &str = "query($id: ID!, $asOf: DateTime) { enterprise(id: $id, asOf: $asOf) {
  name compliance { summary } hazards { id } } }";
const COLOUR_HISTORY: &str = "query($id: ID!, $from: DateTime) { enterprise(id: $id) {
  risk { colour } colourHistory(from: $from) { at colour } } }";
const SERVICES: &str = "query($id: ID!) { enterpriseServices(enterpriseId: $id) { contracts { id } } }";

/// The instants a client may try: the ends of what chrono, PostgreSQL and SQLite hold, and just
/// outside the platform's window.
const OUTSIDE_THE_WINDOW: [&str; 5] = [
    "0001-01-01T00:00:00Z",
    "1949-09-30T15:59:59Z",
    "2199-12-31T16:00:00Z",
    "9999-12-31T23:59:59Z",
    "+10000-01-01T00:00:00Z",
];

#[tokio::test]
async fn nothing_a_client_sends_stops_or_corrupts_the_read_side() {
    for backend in backends() {
        run(backend).await;
    }
}

async fn register_with_flags(app: &TestApp, token: &str, credit_code: &str, town: &str, flags: Value) -> String {
    let input = json!({
        "name": "海宁市某经编有限公司", "creditCode": credit_code, "town": town, "industry": "经编",
        "profile": { "staffCount": 80, "annualRevenue10kYuan": 600, "flags": flags }
    });
    let response = app.graphql(Some(token), REGISTER, json!({ "input": input })).await;
    data(&response)["registerEnterprise"]["enterprise"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn assert_out_of_range(response: &Value, what: &str) {
    assert_eq!(error_code(response), "VALUE_OUT_OF_RANGE", "{what}: {response}");
}

async fn ready(app: &TestApp) -> u16 {
    reqwest::get(format!("{}/readyz", app.base_url))
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn run(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let id = register_with_flags(
        &app,
        &admin,
        "91330481MA28A0XX07",
        "许村",
        json!(["CONTRACTS_OR_LEASES"]),
    )
    .await;
    let other = register(&app, &admin, "91330100799655058B", "长安").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);

    // Instants outside the window are refused where the command is decided, whatever the rule
    // (R16.safety_agreement's validity has no cap; a hazard's deadline only needs to be later).
    for instant in OUTSIDE_THE_WINDOW {
        let hazard = json!({ "enterpriseId": id, "hazard": { "category": "FIRE", "level": "GENERAL",
            "description": "消防通道堵塞", "deadline": instant } });
        let response = app
            .graphql(Some(&owner), RECORD_HAZARD, json!({ "input": hazard }))
            .await;
        if instant.starts_with('+') {
            // A year past 9999 is not RFC 3339: the scalar refuses it, with a code.
            let code = error_code(&response);
            assert!(
                ["VALUE_OUT_OF_RANGE", "BAD_INPUT"].contains(&code.as_str()),
                "{response}"
            );
        } else if instant < "2026" {
            // Before the finding: refused either as out of range or as before the finding.
            let code = error_code(&response);
            assert!(
                ["VALUE_OUT_OF_RANGE", "DEADLINE_BEFORE_FINDING"].contains(&code.as_str()),
                "{response}"
            );
        } else {
            assert_out_of_range(&response, "hazard deadline");
        }
        let agreement = json!({ "enterpriseId": id, "requirement": "R16.safety_agreement", "title": "安全生产管理协议",
            "validFrom": "2026-01-01T00:00:00Z", "validUntil": instant });
        let response = upload(&app, &owner, agreement).await;
        if !instant.starts_with('+') {
            assert_out_of_range(&response, "validUntil");
        }
        let agreement = json!({ "enterpriseId": id, "requirement": "R16.safety_agreement", "title": "安全生产管理协议",
            "validFrom": instant, "validUntil": "2199-01-01T00:00:00Z" });
        let response = upload(&app, &owner, agreement).await;
        if !instant.starts_with('+') {
            let code = error_code(&response);
            assert!(
                ["VALUE_OUT_OF_RANGE", "INVALID_VALIDITY"].contains(&code.as_str()),
                "{response}"
            );
        }
    }
    // The edge of the window itself is accepted and read back.
    let hazard = json!({ "enterpriseId": id, "hazard": { "category": "FIRE", "level": "GENERAL",
        "description": "消防通道堵塞", "deadline": "2199-12-31T15:59:59.999999Z" } });
    data(
        &app.graphql(Some(&owner), RECORD_HAZARD, json!({ "input": hazard }))
            .await,
    );

    // Every instant a query computes with is checked the same way.
    for instant in OUTSIDE_THE_WINDOW.iter().filter(|instant| !instant.starts_with('+')) {
        let response = app
            .graphql(Some(&admin), ENTERPRISE, json!({ "id": id, "asOf": instant }))
            .await;
        assert_out_of_range(&response, "enterprise asOf");
        let response = app
            .graphql(Some(&admin), COLOUR_HISTORY, json!({ "id": id, "from": instant }))
            .await;
        assert_out_of_range(&response, "colourHistory from");
        for query in [
            "query($at: DateTime) { cityMetrics(asOf: $at) { ruleSet } }",
            "query($at: DateTime) { headlineRates(asOf: $at) { ruleSet } }",
            "query($at: DateTime) { enterprises(asOf: $at) { nodes { id } } }",
            "query($at: DateTime) { hazards(asOf: $at) { nodes { id } } }",
            "query($at: DateTime) { overdueQueue(asOf: $at) { nodes { id } } }",
            "query($at: DateTime) { colourDistribution(asOf: $at) { red } }",
            "query($at: DateTime) { serviceCoverage(at: $at) { enterprisesCovered } }",
        ] {
            let response = app.graphql(Some(&admin), query, json!({ "at": instant })).await;
            assert_out_of_range(&response, query);
        }
    }
    // The enterprise's file, the town's lists and the metrics still answer.
    let file = data(&app.graphql(Some(&admin), ENTERPRISE, json!({ "id": id })).await).clone();
    assert_eq!(file["enterprise"]["hazards"].as_array().unwrap().len(), 1, "{file}");
    data(&app.graphql(Some(&admin), COLOUR_HISTORY, json!({ "id": id })).await);
    data(
        &app.graphql(
            Some(&admin),
            "{ hazards(town: \"许村\") { nodes { id deadline } } }",
            json!({}),
        )
        .await,
    );

    // Two agencies may choose one contract id: each contract is its own row.
    let first_agency = register_agency(&app, &admin).await;
    let second_agency = register_agency(&app, &admin).await;
    let contract_id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    for (agency_id, enterprise) in [(&first_agency, &id), (&second_agency, &other)] {
        let agency = app.token(&["--role", "agency", "--agency", agency_id]);
        let contract = json!({ "agencyId": agency_id, "contractId": contract_id, "enterpriseId": enterprise,
            "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
            "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 5000 });
        let signed = app.graphql(Some(&agency), SIGN, json!({ "input": contract })).await;
        assert_eq!(data(&signed)["proposeContract"]["contractId"], contract_id.as_str());
        // A contract outside the window is refused.
        let mut endless = contract.clone();
        endless["contractId"] = json!(uuid::Uuid::now_v7().to_string());
        endless["validUntil"] = json!("9999-12-31T00:00:00Z");
        assert_out_of_range(
            &app.graphql(Some(&agency), SIGN, json!({ "input": endless })).await,
            "contract validUntil",
        );
    }
    for enterprise in [&id, &other] {
        let services = app.graphql(Some(&admin), SERVICES, json!({ "id": enterprise })).await;
        let contracts = data(&services)["enterpriseServices"]["contracts"].clone();
        assert_eq!(contracts, json!([{ "id": contract_id }]), "{services}");
    }

    // Every error has a code: a document that does not parse, one that breaks the schema, a
    // variable that does not fit its type.
    let response = app.graphql(Some(&admin), "query { enterprise(id: ", json!({})).await;
    assert_eq!(error_code(&response), "GRAPHQL_PARSE_FAILED", "{response}");
    let response = app.graphql(Some(&admin), "query { noSuchField }", json!({})).await;
    assert_eq!(error_code(&response), "GRAPHQL_VALIDATION_FAILED", "{response}");
    let response = app
        .graphql(
            Some(&admin),
            "query($first: Int) { enterprises(first: $first) { nodes { id } } }",
            json!({ "first": 1_u64 << 40 }),
        )
        .await;
    assert!(response["errors"][0]["extensions"]["code"].is_string(), "{response}");
    let response = app
        .graphql(None, "query { enterprise(id: 1) { name } }", json!({}))
        .await;
    assert!(
        response["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|error| error["extensions"]["code"].is_string()),
        "{response}"
    );

    // An id outside the caller's scope answers the same whether or not it exists.
    let unknown = uuid::Uuid::new_v4().to_string();
    let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
    for token in [&owner, &officer] {
        for query in [ENTERPRISE, SERVICES] {
            let existing = app.graphql(Some(token), query, json!({ "id": other })).await;
            let missing = app.graphql(Some(token), query, json!({ "id": unknown })).await;
            assert_eq!(error_code(&existing), "FORBIDDEN", "{existing}");
            assert_eq!(error_code(&missing), "FORBIDDEN", "{missing}");
        }
        let hazard = json!({ "enterpriseId": unknown, "hazard": { "category": "FIRE", "level": "GENERAL",
            "description": "x" } });
        let missing = app
            .graphql(Some(token), RECORD_HAZARD, json!({ "input": hazard }))
            .await;
        assert_eq!(error_code(&missing), "FORBIDDEN", "{missing}");
    }
    // The city may know: an unknown id is simply absent.
    let missing = app.graphql(Some(&admin), ENTERPRISE, json!({ "id": unknown })).await;
    assert!(data(&missing)["enterprise"].is_null());

    // After all of it the read side follows the log: a new registration is readable at once,
    // and the service is ready.
    let late = register(&app, &admin, "91330400MA2B8C0X1A", "许村").await;
    let file = app.graphql(Some(&admin), ENTERPRISE, json!({ "id": late })).await;
    assert!(data(&file)["enterprise"]["name"].is_string(), "{file}");
    assert_eq!(ready(&app).await, 200);
    app.stop().await;
}

/// Document ids are chosen per enterprise: two enterprises may each have a document with one id.
/// A rebuild folds the whole log in pages of 30,000 events, so both uploads and the review of
/// one of them share a batch; the review must reach its own enterprise's row.
#[tokio::test]
async fn a_rebuild_folds_each_enterprises_document_into_its_own_row() {
    for backend in backends() {
        let app = spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
        let first = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let second = register(&app, &admin, "91330100799655058B", "许村").await;
        let document = uuid::Uuid::now_v7().to_string();
        for enterprise in [&first, &second] {
            let owner = app.token(&["--role", "enterprise", "--enterprise", enterprise]);
            let plan = json!({ "enterpriseId": enterprise, "requirement": "R10.plan", "title": "应急预案",
                "documentId": document });
            data(&upload(&app, &owner, plan).await);
        }
        let approved = crate::compliance_flow::review(&app, &officer, &first, &document, "APPROVE", None).await;
        data(&approved);

        let into = app.data_dir().join("rebuilt.db");
        let mut rebuild = std::process::Command::new(crate::support::binary());
        rebuild
            .args(["projections", "rebuild", "--read-models", "--into"])
            .arg(&into)
            .arg("--data-dir")
            .arg(app.data_dir());
        if let Some(url) = app.database_url() {
            rebuild.arg("--database").arg(url);
        }
        let output = rebuild.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

        let rebuilt = rusqlite::Connection::open(&into).unwrap();
        let outcome = |enterprise: &str| -> Option<String> {
            rebuilt
                .query_row(
                    "SELECT review_outcome FROM documents WHERE enterprise_id = ?1 AND document_id = ?2",
                    [enterprise, document.as_str()],
                    |row| row.get(0),
                )
                .unwrap()
        };
        assert_eq!(outcome(&first).as_deref(), Some("approved"));
        assert_eq!(outcome(&second), None);
        app.stop().await;
    }
}
