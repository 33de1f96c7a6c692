//! What an auditor and a dashboard meet (#23), over HTTP on both backends: an agency's history
//! and chain verification paged like an enterprise's; an `asOf` before registration is a coded
//! answer, not a silent null; 64-bit values travel as `Int64` decimal strings and are accepted
//! as strings; a hazard list is filtered by what a filter selects while each hazard says what
//! state it is in.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::agency_flow::{SIGN, register_agency};
use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app};

const AGENCY_HISTORY: &str = "query($id: ID!, $first: Int!, $after: String) { agency(id: $id) {
  history(first: $first, after: $after) { nodes { version position eventType hash actor }
    pageInfo { hasNextPage endCursor } }
  verification { intact eventsChecked head } } }";
const RECORD_INSPECTION: &str = "mutation($input: RecordInspectionInput!) { recordInspection(input: $input) {
  streamVersion position hazardIds } }";
const HAZARDS: &str = "query($id: ID!, $filter: HazardFilter, $asOf: DateTime) {
  hazards(enterpriseId: $id, filter: $filter, asOf: $asOf) { nodes { id state } } }";
const ENTERPRISE_AT: &str = "query($id: ID!, $asOf: DateTime) { enterprise(id: $id, asOf: $asOf) { name } }";
const CHANGE_PROFILE: &str = "mutation($input: ChangeEnterpriseProfileInput!, $expected: Int64) {
  changeEnterpriseProfile(input: $input, expectedVersion: $expected) { streamVersion position duplicate } }";

#[tokio::test]
async fn every_stream_has_a_history_and_64_bit_values_are_strings() {
    for backend in backends() {
        agency_history(backend).await;
        enterprise_answers(backend).await;
    }
}

async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let response = app.graphql(Some(token), query, variables).await;
    data(&response).clone()
}

async fn agency_history(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise_id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let agency_id = register_agency(&app, &admin).await;
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);
    let now = Utc::now();
    for fee in ["5000", "6000"] {
        // Money in yuan is Int64: a decimal string is accepted as input.
        let contract = json!({ "agencyId": agency_id, "enterpriseId": enterprise_id,
            "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
            "services": ["安全管家"], "visitsPromised": 4, "feeYuan": fee });
        ok(&app, &agency, SIGN, json!({ "input": contract })).await;
    }

    // A city-wide auditor pages through the agency's stream, two events at a time.
    let auditor = app.token(&["--role", "auditor"]);
    let first = ok(&app, &auditor, AGENCY_HISTORY, json!({ "id": agency_id, "first": 2 })).await;
    let page = &first["agency"]["history"];
    assert_eq!(page["nodes"][0]["version"], "0", "versions are Int64 strings: {first}");
    assert_eq!(page["nodes"][0]["eventType"], "AgencyRegistered", "{first}");
    assert!(
        page["nodes"][0]["position"].as_str().unwrap().parse::<u64>().is_ok(),
        "{first}"
    );
    assert_eq!(page["pageInfo"]["hasNextPage"], true, "{first}");
    let cursor = page["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let second = ok(
        &app,
        &auditor,
        AGENCY_HISTORY,
        json!({ "id": agency_id, "first": 2, "after": cursor }),
    )
    .await;
    let rest = second["agency"]["history"]["nodes"].as_array().unwrap();
    assert_eq!(rest.len(), 1, "{second}");
    assert_eq!(rest[0]["version"], "2", "{second}");
    assert_eq!(rest[0]["eventType"], "ContractProposed", "{second}");
    let verification = &second["agency"]["verification"];
    assert_eq!(verification["intact"], true, "{second}");
    assert_eq!(verification["eventsChecked"], 3, "{second}");
    assert_eq!(verification["head"], rest[0]["hash"], "{second}");

    // The agency reads its own history; a town auditor and another agency do not.
    let own = ok(&app, &agency, AGENCY_HISTORY, json!({ "id": agency_id, "first": 10 })).await;
    assert_eq!(own["agency"]["history"]["nodes"].as_array().unwrap().len(), 3);
    let town_auditor = app.token(&["--role", "auditor", "--town", "许村"]);
    let refused = app
        .graphql(
            Some(&town_auditor),
            AGENCY_HISTORY,
            json!({ "id": agency_id, "first": 10 }),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let stranger = app.token(&["--role", "agency", "--agency", &uuid::Uuid::now_v7().to_string()]);
    let refused = app
        .graphql(Some(&stranger), AGENCY_HISTORY, json!({ "id": agency_id, "first": 10 }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    app.stop().await;
}

async fn enterprise_answers(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise_id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;

    // Before its registration an enterprise has no status: a coded answer, not a null.
    let before = app
        .graphql(
            Some(&admin),
            ENTERPRISE_AT,
            json!({ "id": enterprise_id, "asOf": Utc::now() - Duration::days(1) }),
        )
        .await;
    assert_eq!(error_code(&before), "NOT_YET_REGISTERED", "{before}");
    assert!(before["data"]["enterprise"].is_null(), "{before}");
    let now = ok(&app, &admin, ENTERPRISE_AT, json!({ "id": enterprise_id })).await;
    assert!(now["enterprise"]["name"].is_string(), "{now}");

    // `expectedVersion` is Int64: the version a payload returned, as the string it came as.
    let profile = json!({ "enterpriseId": enterprise_id, "name": "海宁市许村某家纺有限公司", "town": "许村",
        "industry": "家纺", "profile": { "staffCount": 81, "annualRevenue10kYuan": "600", "flags": [] } });
    let changed = ok(
        &app,
        &admin,
        CHANGE_PROFILE,
        json!({ "input": profile, "expected": "0" }),
    )
    .await;
    let payload = &changed["changeEnterpriseProfile"];
    assert_eq!(payload["streamVersion"], "1", "{changed}");
    assert!(payload["position"].is_string(), "{changed}");
    let stale = app
        .graphql(
            Some(&admin),
            CHANGE_PROFILE,
            json!({ "input": profile, "expected": "0" }),
        )
        .await;
    assert_eq!(error_code(&stale), "WRONG_EXPECTED_VERSION", "{stale}");
    // Not a non-negative 64-bit decimal: refused with a code (a value of the wrong JSON type is
    // caught with the document's other type errors).
    for (bad, code) in [
        (json!("-1"), "BAD_INPUT"),
        (json!("1e3"), "BAD_INPUT"),
        (json!("9223372036854775808"), "BAD_INPUT"),
        (json!(true), "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let refused = app
            .graphql(
                Some(&admin),
                CHANGE_PROFILE,
                json!({ "input": profile, "expected": bad }),
            )
            .await;
        assert_eq!(error_code(&refused), code, "{bad}: {refused}");
        assert!(refused["data"].is_null(), "{refused}");
    }

    // A hazard whose deadline passed is OVERDUE as a state; filters select by what they say.
    let inspector = app.token(&["--role", "town_inspector", "--town", "许村"]);
    let inspection = json!({ "enterpriseId": enterprise_id, "kind": "ON_SITE",
        "inspectedAt": Utc::now() - Duration::days(3), "inspectors": ["王检查"],
        "hazards": [{ "category": "ELECTRICAL", "level": "GENERAL", "description": "配电箱未接地",
            "deadline": Utc::now() - Duration::days(1) }] });
    let recorded = app
        .graphql(Some(&inspector), RECORD_INSPECTION, json!({ "input": inspection }))
        .await;
    let recorded = data(&recorded)["recordInspection"].clone();
    let hazard_id = recorded["hazardIds"][0].clone();
    let listed = |filter: &str| {
        let filter = filter.to_owned();
        let app = &app;
        let admin = &admin;
        let enterprise_id = &enterprise_id;
        async move {
            let response = app
                .graphql(Some(admin), HAZARDS, json!({ "id": enterprise_id, "filter": filter }))
                .await;
            data(&response)["hazards"]["nodes"].as_array().unwrap().clone()
        }
    };
    let not_closed = listed("NOT_CLOSED").await;
    assert_eq!(not_closed.len(), 1);
    assert_eq!(not_closed[0]["id"], hazard_id);
    assert_eq!(not_closed[0]["state"], "OVERDUE", "the state says what it is");
    assert_eq!(listed("OVERDUE").await.len(), 1);
    assert!(listed("CLOSED").await.is_empty());
    assert!(listed("SUBMITTED").await.is_empty());
    let open_as_filter = app
        .graphql(Some(&admin), HAZARDS, json!({ "id": enterprise_id, "filter": "OPEN" }))
        .await;
    assert_eq!(
        error_code(&open_as_filter),
        "GRAPHQL_VALIDATION_FAILED",
        "OPEN is a state, not a filter: {open_as_filter}"
    );
    app.stop().await;
}
