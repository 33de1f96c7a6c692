//! Enterprise closure, reopening and moves (issue #22, item 5), over the real binary on SQLite
//! and PostgreSQL: a closed enterprise refuses uploads, leaves A01 from its closure and counts
//! in A08's closed part, has no colour, is listed by `state` and says on its public page since
//! when it is closed and takes no new service contract; a move between towns counts it in the old town before and in the new one
//! after, and moves the town officers' scope with it.

use serde_json::{Value, json};

use crate::agency_flow::register_agency;
use crate::browser::{Browser, Viewport};
use crate::compliance_flow::upload;
use crate::contracts::PROPOSE;
use crate::support::{Backend, TestApp, backends, credit_code, data, error_code, spawn_app};

const REGISTER: &str =
    "mutation($input: RegisterEnterpriseInput!) { registerEnterprise(input: $input) { enterprise { id } } }";
const CLOSE: &str = "mutation($input: CloseEnterpriseInput!) {
  closeEnterprise(input: $input) { enterprise { state compliance { at } closure { kind label effectiveAt } } } }";
const REOPEN: &str = "mutation($input: ReopenEnterpriseInput!) {
  reopenEnterprise(input: $input) { enterprise { state closure { kind } compliance { at } } } }";
const MOVE: &str = "mutation($input: ChangeEnterpriseProfileInput!) {
  changeEnterpriseProfile(input: $input) { enterprise { town compliance { at } } } }";
const ROTATE: &str = "mutation($id: ID!) { rotatePublicToken(enterpriseId: $id) { url } }";
const ENTERPRISE: &str = "query($id: ID!, $asOf: DateTime) {
  enterprise(id: $id, asOf: $asOf) { state closure { kind reason } risk { colour } } }";
const LIST: &str =
    "query($town: String, $industry: String, $colour: RiskColour, $state: EnterpriseState, $asOf: DateTime) {
  enterprises(town: $town, industry: $industry, colour: $colour, state: $state, asOf: $asOf, first: 10) {
    nodes { id state colour closure { kind } } pageInfo { hasNextPage } } }";
const METRICS: &str = "query($town: String!, $asOf: DateTime) {
  townMetrics(town: $town, asOf: $asOf) { metrics { code value parts { name value } } } }";
const PROFILE: &str = r#"{ "staffCount": 30, "annualRevenue10kYuan": 200, "flags": [] }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_enterprise_leaves_a01_refuses_uploads_shows_closed_and_moves_count_where_they_were() {
    for backend in backends() {
        run(backend).await;
    }
}

async fn register(app: &TestApp, token: &str, serial: usize, industry: &str) -> String {
    let input = json!({
        "name": format!("海宁关停企业{serial}"), "creditCode": credit_code(serial), "town": "许村",
        "industry": industry, "profile": serde_json::from_str::<Value>(PROFILE).unwrap()
    });
    let response = app.graphql(Some(token), REGISTER, json!({ "input": input })).await;
    data(&response)["registerEnterprise"]["enterprise"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A01's value and A08's parts (created, closed) of a town at an instant.
async fn figures(app: &TestApp, token: &str, town: &str, at: &str) -> (f64, (f64, f64)) {
    let response = app
        .graphql(Some(token), METRICS, json!({ "town": town, "asOf": at }))
        .await;
    let metrics = data(&response)["townMetrics"]["metrics"].as_array().unwrap().clone();
    let metric = |code: &str| metrics.iter().find(|metric| metric["code"] == code).unwrap().clone();
    let a08 = metric("A08");
    let part = |name: &str| {
        a08["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|part| part["name"] == name)
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    (
        metric("A01")["value"].as_f64().unwrap(),
        (part("created"), part("closed")),
    )
}

async fn listed(app: &TestApp, token: &str, variables: Value) -> Vec<(String, Value)> {
    let response = app.graphql(Some(token), LIST, variables).await;
    data(&response)["enterprises"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| (node["id"].as_str().unwrap().to_owned(), node.clone()))
        .collect()
}

fn ids(nodes: &[(String, Value)]) -> Vec<&str> {
    nodes.iter().map(|(id, _)| id.as_str()).collect()
}

async fn run(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let xucun = app.token(&["--role", "town_officer", "--town", "许村"]);
    let changan = app.token(&["--role", "town_officer", "--town", "长安"]);
    let closing = register(&app, &xucun, 5100, "家纺").await;
    let staying = register(&app, &xucun, 5101, "化工").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &closing]);
    let page_url = data(&app.graphql(Some(&owner), ROTATE, json!({ "id": closing })).await)["rotatePublicToken"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = data(&app.graphql(Some(&admin), ENTERPRISE, json!({ "id": staying })).await)["enterprise"].clone();
    assert_eq!(before["state"], "ACTIVE");
    let staying_colour = before["risk"]["colour"].clone();
    let t0 = chrono::Utc::now().to_rfc3339();
    assert_eq!(
        figures(&app, &admin, "许村", &t0).await,
        (2.0, (2.0, 0.0)),
        "{backend:?}"
    );

    // Another town's officer may not close it; its own town's officer does, once.
    let close = json!({ "input": { "enterpriseId": closing, "kind": "DEREGISTERED", "reason": "营业执照已注销" } });
    assert_eq!(
        error_code(&app.graphql(Some(&changan), CLOSE, close.clone()).await),
        "FORBIDDEN"
    );
    let closed = data(&app.graphql(Some(&xucun), CLOSE, close.clone()).await)["closeEnterprise"]["enterprise"].clone();
    assert_eq!(closed["state"], "CLOSED", "{backend:?}");
    assert_eq!(closed["closure"]["kind"], "DEREGISTERED");
    assert_eq!(closed["closure"]["label"], "已注销");
    let t1 = closed["compliance"]["at"].as_str().unwrap().to_owned();
    assert_eq!(
        error_code(&app.graphql(Some(&xucun), CLOSE, close).await),
        "ENTERPRISE_CLOSED"
    );
    let refused = upload(
        &app,
        &owner,
        json!({ "enterpriseId": closing, "requirement": "R10.plan", "title": "应急预案" }),
    )
    .await;
    assert_eq!(error_code(&refused), "ENTERPRISE_CLOSED", "{backend:?}");
    // No new service contract either.
    let agency_id = register_agency(&app, &admin).await;
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);
    let now = chrono::Utc::now();
    let proposal = json!({ "input": { "agencyId": agency_id, "enterpriseId": closing,
        "validFrom": now - chrono::Duration::days(1), "validUntil": now + chrono::Duration::days(365),
        "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 5000 } });
    assert_eq!(
        error_code(&app.graphql(Some(&agency), PROPOSE, proposal).await),
        "ENTERPRISE_CLOSED",
        "{backend:?}"
    );

    // Out of A01 from the closure, in A08's closed part; the past is unchanged.
    assert_eq!(
        figures(&app, &admin, "许村", &t1).await,
        (1.0, (2.0, 1.0)),
        "{backend:?}"
    );
    assert_eq!(
        figures(&app, &admin, "许村", &t0).await,
        (2.0, (2.0, 0.0)),
        "{backend:?}"
    );
    let file = data(&app.graphql(Some(&xucun), ENTERPRISE, json!({ "id": closing })).await)["enterprise"].clone();
    assert_eq!(file["state"], "CLOSED");
    assert_eq!(file["closure"]["reason"], "营业执照已注销");
    assert!(file["risk"].is_null(), "a closed enterprise has no colour: {file}");
    let then = json!({ "id": closing, "asOf": t0 });
    assert_eq!(
        data(&app.graphql(Some(&xucun), ENTERPRISE, then).await)["enterprise"]["state"],
        "ACTIVE"
    );

    // The filters: state now and at t0, industry, colour (a closed enterprise has none).
    let closed_now = listed(&app, &admin, json!({ "state": "CLOSED" })).await;
    assert_eq!(ids(&closed_now), [closing.as_str()], "{backend:?}");
    assert!(closed_now[0].1["colour"].is_null());
    assert_eq!(
        ids(&listed(&app, &admin, json!({ "state": "ACTIVE" })).await),
        [staying.as_str()]
    );
    assert!(
        listed(&app, &admin, json!({ "state": "CLOSED", "asOf": t0 }))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&listed(&app, &admin, json!({ "industry": "化工" })).await),
        [staying.as_str()]
    );
    assert_eq!(
        ids(&listed(&app, &admin, json!({ "industry": "家纺", "state": "CLOSED" })).await),
        [closing.as_str()]
    );
    assert!(
        listed(&app, &admin, json!({ "industry": "化工", "state": "CLOSED" }))
            .await
            .is_empty()
    );
    let by_colour = listed(&app, &admin, json!({ "colour": staying_colour })).await;
    assert_eq!(ids(&by_colour), [staying.as_str()], "{backend:?}");
    assert_eq!(by_colour[0].1["colour"], staying_colour);

    // The public page says since when it is closed, with no colour.
    let page = app.client.get(&page_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-testid=\"closed\""), "{html}");
    assert!(html.contains("已注销"), "{html}");
    assert!(!html.contains("data-testid=\"risk\""), "{html}");
    let since = chrono::DateTime::parse_from_rfc3339(closed["closure"]["effectiveAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    if matches!(backend, Backend::Sqlite)
        && let Some(mut browser) = Browser::start(Viewport::Phone, "closure").await
    {
        browser.open(&page_url).await;
        assert_eq!(browser.text("[data-testid=closed-label]").await, "已注销");
        assert_eq!(browser.text("[data-testid=closed-since]").await, since);
        assert!(browser.elements("[data-testid=risk]").await.is_empty());
        browser.screenshot("closed.png").await;
        browser.stop().await;
    }

    // Reopened: active again, in A01; the closure still counts in A08 this year.
    let reopen = json!({ "input": { "enterpriseId": closing, "reason": "重新取得营业执照" } });
    let reopened =
        data(&app.graphql(Some(&admin), REOPEN, reopen.clone()).await)["reopenEnterprise"]["enterprise"].clone();
    assert_eq!(reopened["state"], "ACTIVE");
    assert!(reopened["closure"].is_null());
    let t2 = reopened["compliance"]["at"].as_str().unwrap().to_owned();
    assert_eq!(
        error_code(&app.graphql(Some(&admin), REOPEN, reopen).await),
        "ENTERPRISE_NOT_CLOSED"
    );
    assert_eq!(
        figures(&app, &admin, "许村", &t2).await,
        (2.0, (2.0, 1.0)),
        "{backend:?}"
    );
    let page = app.client.get(&page_url).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("data-testid=\"closed\"") && page.contains("data-testid=\"risk\""));

    // A move is a profile change: counted in 许村 before it, in 长安 after it.
    let moved = json!({ "input": { "enterpriseId": staying, "name": "海宁关停企业5101", "town": "长安",
        "industry": "化工", "profile": serde_json::from_str::<Value>(PROFILE).unwrap() } });
    let moved = data(&app.graphql(Some(&admin), MOVE, moved).await)["changeEnterpriseProfile"]["enterprise"].clone();
    assert_eq!(moved["town"], "长安");
    let t3 = moved["compliance"]["at"].as_str().unwrap().to_owned();
    assert_eq!(figures(&app, &admin, "许村", &t2).await.0, 2.0, "{backend:?}");
    assert_eq!(figures(&app, &admin, "许村", &t3).await.0, 1.0, "{backend:?}");
    assert_eq!(figures(&app, &admin, "长安", &t2).await.0, 0.0, "{backend:?}");
    assert_eq!(figures(&app, &admin, "长安", &t3).await.0, 1.0, "{backend:?}");

    // Scope follows the current town: the new town's officer reads it, the old one's no longer.
    let read = json!({ "id": staying });
    assert_eq!(
        error_code(&app.graphql(Some(&xucun), ENTERPRISE, read.clone()).await),
        "FORBIDDEN"
    );
    assert_eq!(
        data(&app.graphql(Some(&changan), ENTERPRISE, read).await)["enterprise"]["state"],
        "ACTIVE"
    );
    assert_eq!(
        ids(&listed(&app, &xucun, json!({ "town": "许村" })).await),
        [closing.as_str()]
    );
    app.stop().await;
}
