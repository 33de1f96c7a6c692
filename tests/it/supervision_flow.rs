//! The whole supervision loop over HTTP: a town inspector records an inspection with two
//! hazards; the enterprise rectifies one, the inspector returns it, the enterprise resubmits,
//! the inspector accepts; the other hazard's deadline passes with no new event, and queries show
//! it overdue, the veto and the colour turning (red after 30 days, via `asOf`), while a
//! websocket subscriber hears of it. Bad input gets its code and appends nothing; an inspector
//! of another town is refused.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, error_code, next_of, spawn_app, subscribe};

/// How long after the deadline the subscriber may wait for its notification.
const NOTIFICATION_GRACE: StdDuration = StdDuration::from_secs(15);
/// Seconds from the inspection to the short deadline.
const SHORT_DEADLINE_SECONDS: i64 = 6;

const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!) {
  recordInspection(input: $input, documents: $documents, photos: $photos) {
    streamVersion inspectionId hazardIds enterprise { risk { colour rule } } } }";
const SUBMIT: &str = "mutation($input: SubmitRectificationInput!, $photos: [Upload!]!) {
  submitRectification(input: $input, photos: $photos) { streamVersion rectificationId } }";
const VERIFY: &str = "mutation($input: VerifyRectificationInput!) {
  verifyRectification(input: $input) { streamVersion } }";
const EXTEND: &str = "mutation($input: ExtendHazardDeadlineInput!) {
  extendHazardDeadline(input: $input) { streamVersion } }";
const ACCIDENT: &str =
    "mutation($input: ReportAccidentInput!) { reportAccident(input: $input) { streamVersion accidentId } }";
const ENTERPRISE: &str = "query($id: ID!, $asOf: DateTime) { enterprise(id: $id, asOf: $asOf) {
  compliance { responsibilityImplemented }
  risk { colour rule compliancePercent }
  vetoes { kind hazardId deadline }
  inspections { id kind level inspectors documents { kind file { sha256 } } hazardIds }
  hazards { id state overdue deadline closedAt firstTimePass photos { sha256 }
    rectifications { id accepted reason firstTime } }
  colourHistory { colour rule } } }";
const HAZARDS: &str = "query($town: String, $enterpriseId: ID, $filter: HazardFilter, $asOf: DateTime) {
  hazards(town: $town, enterpriseId: $enterpriseId, filter: $filter, asOf: $asOf) { nodes { id state enterpriseName town } } }";
const OVERDUE_QUEUE: &str =
    "query($town: String) { overdueQueue(town: $town) { nodes { id deadline enterpriseName } } }";
const DISTRIBUTION: &str = "query($town: String, $asOf: DateTime) {
  colourDistribution(town: $town, asOf: $asOf) { red orange yellow blue complete } }";
const PLAN: &str = "query($town: String, $periodEnd: DateTime!) {
  supervisionPlan(town: $town, periodEnd: $periodEnd) { entries { enterpriseId risk { colour } onlineCheckDue onSiteDue escalation { code } } complete } }";

#[tokio::test]
async fn an_inspection_runs_to_rectification_and_an_unrectified_hazard_turns_overdue_without_an_event() {
    for backend in backends() {
        run_flow(backend).await;
    }
}

/// Sends a GraphQL multipart request binding files to `variables.<name>.<index>`.
pub(crate) async fn multipart(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
    files: &[(&str, usize)],
) -> Value {
    let operations = json!({ "query": query, "variables": variables });
    let mut map = serde_json::Map::new();
    let mut form = reqwest::multipart::Form::new().text("operations", operations.to_string());
    let mut parts = Vec::new();
    for (name, count) in files {
        for index in 0..*count {
            let key = (parts.len()).to_string();
            map.insert(key.clone(), json!([format!("variables.{name}.{index}")]));
            parts.push((
                key,
                format!("{name}-{index}.jpg"),
                format!("{name} {index}").into_bytes(),
            ));
        }
    }
    form = form.text("map", Value::Object(map).to_string());
    for (key, file_name, bytes) in parts {
        form = form.part(
            key,
            reqwest::multipart::Part::bytes(bytes)
                .file_name(file_name)
                .mime_str("image/jpeg")
                .unwrap(),
        );
    }
    let response = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

async fn enterprise(app: &TestApp, token: &str, id: &str, as_of: Option<DateTime<Utc>>) -> Value {
    let response = app
        .graphql(Some(token), ENTERPRISE, json!({ "id": id, "asOf": as_of }))
        .await;
    data(&response)["enterprise"].clone()
}

fn hazard<'a>(enterprise: &'a Value, id: &str) -> &'a Value {
    enterprise["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hazard| hazard["id"] == id)
        .unwrap_or_else(|| panic!("hazard {id} not in {enterprise}"))
}

/// The stream version a mutation answered (an `Int64`: a decimal string).
fn version(response: &Value, mutation: &str) -> i64 {
    data(response)[mutation]["streamVersion"]
        .as_str()
        .and_then(|version| version.parse().ok())
        .unwrap_or_else(|| panic!("no Int64 streamVersion in {response}"))
}

async fn run_flow(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let inspector = app.token(&["--role", "town_inspector", "--town", "许村"]);
    let stranger = app.token(&["--role", "town_inspector", "--town", "长安"]);
    let mut socket = subscribe(
        &app,
        &inspector,
        &[
            (
                "overdue",
                "subscription { hazardBecameOverdue { hazardId enterpriseId town deadline government } }",
            ),
            (
                "colour",
                "subscription { colourChanged { enterpriseId previous colour rule } }",
            ),
        ],
    )
    .await;

    let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);
    // The dashboard hears of the new enterprise's colour (lazily initialised from "before").
    let colour = next_of(&mut socket, "colour", StdDuration::from_secs(10)).await;
    assert_eq!(colour["colourChanged"]["enterpriseId"], id.as_str());
    assert_eq!(colour["colourChanged"]["previous"], Value::Null);
    assert!(colour["colourChanged"]["colour"].is_string(), "{colour}");

    // The inspection: two hazards, one due in a few seconds, with a document and photos.
    let inspected_at = Utc::now().trunc_subsecs(6) - Duration::minutes(1);
    let short_deadline = Utc::now().trunc_subsecs(6) + Duration::seconds(SHORT_DEADLINE_SECONDS);
    let input = json!({
        "enterpriseId": id, "kind": "ON_SITE", "inspectedAt": inspected_at, "inspectors": ["王检查", "陈检查"],
        "notes": "现场检查", "documentKinds": ["RECTIFICATION_ORDER"],
        "hazards": [
            { "category": "DUST", "level": "GENERAL", "description": "积尘未清理", "deadline": short_deadline,
              "photoIndexes": [0] },
            { "category": "ELECTRICAL", "level": "GENERAL", "severity": "MINOR", "description": "配电箱未接地",
              "photoIndexes": [1] },
        ]
    });
    let recorded = multipart(
        &app,
        &inspector,
        RECORD_INSPECTION,
        json!({ "input": input, "documents": [null], "photos": [null, null] }),
        &[("documents", 1), ("photos", 2)],
    )
    .await;
    let payload = &data(&recorded)["recordInspection"];
    let hazard_ids: Vec<String> = payload["hazardIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    let (late, fixed) = (hazard_ids[0].clone(), hazard_ids[1].clone());
    let before_deadline = short_deadline - Duration::seconds(1);

    let file = enterprise(&app, &owner, &id, None).await;
    assert_eq!(file["inspections"][0]["level"], "TOWN");
    assert_eq!(file["inspections"][0]["documents"][0]["kind"], "RECTIFICATION_ORDER");
    assert_eq!(file["inspections"][0]["hazardIds"], json!([late, fixed]));
    assert_eq!(hazard(&file, &late)["photos"].as_array().unwrap().len(), 1);
    assert_eq!(hazard(&file, &late)["state"], "OPEN");

    // The enterprise rectifies one hazard; the inspector returns it, then accepts the second try.
    let submit = |text: &'static str| {
        let input = json!({ "enterpriseId": id, "hazardId": fixed, "text": text });
        multipart(
            &app,
            &owner,
            SUBMIT,
            json!({ "input": input, "photos": [null] }),
            &[("photos", 1)],
        )
    };
    let first = submit("已接地").await;
    let first_id = data(&first)["submitRectification"]["rectificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = |rectification: String, decision: &'static str, reason: Option<&'static str>| {
        let input = json!({ "enterpriseId": id, "hazardId": fixed, "rectificationId": rectification,
                            "decision": decision, "reason": reason });
        app.graphql(Some(&inspector), VERIFY, json!({ "input": input }))
    };
    data(&verify(first_id.clone(), "RETURN", Some("缺少接地电阻测试报告")).await);
    let returned = enterprise(&app, &owner, &id, None).await;
    assert_eq!(hazard(&returned, &fixed)["state"], "OPEN");
    assert_eq!(hazard(&returned, &fixed)["rectifications"][0]["accepted"], false);
    assert_eq!(
        hazard(&returned, &fixed)["rectifications"][0]["reason"],
        "缺少接地电阻测试报告"
    );
    let second = submit("已接地并附测试报告").await;
    let second_id = data(&second)["submitRectification"]["rectificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = app
        .graphql(
            Some(&inspector),
            HAZARDS,
            json!({ "town": "许村", "filter": "SUBMITTED" }),
        )
        .await;
    assert_eq!(data(&pending)["hazards"]["nodes"][0]["id"], fixed.as_str());
    let accepted = verify(second_id.clone(), "ACCEPT", None).await;
    let accepted_version = version(&accepted, "verifyRectification");
    let closed = enterprise(&app, &owner, &id, None).await;
    assert_eq!(hazard(&closed, &fixed)["state"], "CLOSED");
    assert_eq!(hazard(&closed, &fixed)["firstTimePass"], false);

    // Bad input: each refused with its code, nothing appended.
    assert_eq!(
        error_code(&verify(second_id.clone(), "ACCEPT", None).await),
        "HAZARD_CLOSED"
    );
    let again = submit("再次提交").await;
    assert_eq!(error_code(&again), "HAZARD_CLOSED");
    let bad_hazard = |hazard: Value| {
        let input = json!({ "enterpriseId": id, "kind": "ON_SITE", "inspectedAt": inspected_at,
                            "inspectors": ["王检查"], "hazards": [hazard] });
        multipart(
            &app,
            &inspector,
            RECORD_INSPECTION,
            json!({ "input": input, "documents": [], "photos": [] }),
            &[],
        )
    };
    let early = bad_hazard(
        json!({ "category": "FIRE", "level": "GENERAL", "description": "消防通道堵塞",
                                   "deadline": inspected_at - Duration::days(1) }),
    )
    .await;
    assert_eq!(error_code(&early), "DEADLINE_BEFORE_FINDING");
    let repealed = bad_hazard(
        json!({ "category": "DUST", "level": "MAJOR", "description": "除尘系统未泄爆",
                                      "criterionCatalogue": "gm2017", "criterionItem": "dust-3" }),
    )
    .await;
    assert_eq!(error_code(&repealed), "CRITERION_NOT_IN_FORCE");
    let bare = bad_hazard(json!({ "category": "DUST", "level": "MAJOR", "description": "除尘系统未泄爆" })).await;
    assert_eq!(error_code(&bare), "CRITERION_REQUIRED");
    let extend = json!({ "enterpriseId": id, "hazardId": late, "deadline": Utc::now() + Duration::days(30),
                         "reason": "外省设备" });
    let foreign = app.graphql(Some(&stranger), EXTEND, json!({ "input": extend })).await;
    assert_eq!(error_code(&foreign), "FORBIDDEN");
    let foreign = app.graphql(Some(&stranger), HAZARDS, json!({ "town": "许村" })).await;
    assert_eq!(error_code(&foreign), "FORBIDDEN");
    let foreign = app.graphql(Some(&stranger), ENTERPRISE, json!({ "id": id })).await;
    assert_eq!(error_code(&foreign), "FORBIDDEN");
    let nosy = app
        .graphql(
            Some(&owner),
            HAZARDS,
            json!({ "enterpriseId": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(error_code(&nosy), "FORBIDDEN");
    // The next good command lands right after the acceptance: nothing was appended between.
    let accident =
        json!({ "enterpriseId": id, "occurredAt": inspected_at, "fatalities": 0, "description": "轻微擦伤" });
    let reported = app
        .graphql(Some(&inspector), ACCIDENT, json!({ "input": accident }))
        .await;
    assert_eq!(version(&reported, "reportAccident"), accepted_version + 1);

    // The enterprise sees its own hazards, and only them.
    let own = app.graphql(Some(&owner), HAZARDS, json!({})).await;
    assert_eq!(data(&own)["hazards"]["nodes"].as_array().unwrap().len(), 2);

    // The short deadline passes with no new event: the subscriber hears of it.
    let overdue = next_of(
        &mut socket,
        "overdue",
        (short_deadline - Utc::now()).to_std().unwrap_or_default() + NOTIFICATION_GRACE,
    )
    .await;
    assert_eq!(overdue["hazardBecameOverdue"]["hazardId"], late.as_str());
    assert_eq!(overdue["hazardBecameOverdue"]["town"], "许村");
    assert_eq!(overdue["hazardBecameOverdue"]["government"], true);
    assert!(Utc::now() > short_deadline);

    // Queries for now show it overdue, the veto and the colour's rule turning.
    let now = enterprise(&app, &inspector, &id, None).await;
    assert_eq!(hazard(&now, &late)["state"], "OVERDUE");
    assert_eq!(hazard(&now, &late)["overdue"], true);
    assert_eq!(now["vetoes"][0]["kind"], "OVERDUE_GOVERNMENT_HAZARD");
    assert_eq!(now["vetoes"][0]["hazardId"], late.as_str());
    assert_eq!(now["compliance"]["responsibilityImplemented"], false);
    assert_eq!(now["risk"]["colour"], "ORANGE");
    assert_eq!(now["risk"]["rule"], "overdue_hazard");
    let listed = app
        .graphql(
            Some(&inspector),
            HAZARDS,
            json!({ "town": "许村", "filter": "OVERDUE" }),
        )
        .await;
    let nodes = data(&listed)["hazards"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 1, "{listed}");
    assert_eq!(nodes[0]["id"], late.as_str());
    let queue = app.graphql(Some(&inspector), OVERDUE_QUEUE, json!({})).await;
    assert_eq!(data(&queue)["overdueQueue"]["nodes"][0]["id"], late.as_str());

    // asOf before the deadline shows the old state.
    let before = enterprise(&app, &inspector, &id, Some(before_deadline)).await;
    assert_eq!(hazard(&before, &late)["state"], "OPEN");
    assert_eq!(before["vetoes"], json!([]));
    assert_ne!(before["risk"]["rule"], "overdue_hazard");
    assert_ne!(before["risk"]["colour"], "RED");
    let listed = app
        .graphql(
            Some(&inspector),
            HAZARDS,
            json!({ "town": "许村", "filter": "OVERDUE", "asOf": before_deadline }),
        )
        .await;
    assert_eq!(data(&listed)["hazards"]["nodes"], json!([]));

    // More than 30 days overdue, a government hazard turns the enterprise red.
    let month_later = short_deadline + Duration::days(31);
    let later = enterprise(&app, &inspector, &id, Some(month_later)).await;
    assert_eq!(later["risk"]["colour"], "RED");
    assert_eq!(later["risk"]["rule"], "government_hazard_overdue_over_30_days");
    let colours: Vec<&str> = later["colourHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["colour"].as_str().unwrap())
        .collect();
    assert_eq!(colours.last(), Some(&"RED"), "{later}");
    let distribution = app
        .graphql(
            Some(&inspector),
            DISTRIBUTION,
            json!({ "town": "许村", "asOf": month_later }),
        )
        .await;
    assert_eq!(data(&distribution)["colourDistribution"]["red"], 1);
    let distribution = app
        .graphql(Some(&stranger), DISTRIBUTION, json!({ "town": "许村" }))
        .await;
    assert_eq!(error_code(&distribution), "FORBIDDEN");

    // The inspector's plan: an orange enterprise is due an online check, and is coached.
    let plan = app
        .graphql(
            Some(&inspector),
            PLAN,
            json!({ "town": "许村", "periodEnd": Utc::now() + Duration::days(30) }),
        )
        .await;
    let entry = &data(&plan)["supervisionPlan"]["entries"][0];
    assert_eq!(entry["enterpriseId"], id.as_str());
    assert_eq!(entry["risk"]["colour"], "ORANGE");
    assert_eq!(entry["onlineCheckDue"], true);
    assert_eq!(entry["onSiteDue"], false);
    assert_eq!(entry["escalation"]["code"], "visit_and_coaching");

    let _ = socket.close(None).await;
    app.stop().await;
}
