//! The town statistics dashboard in a real browser: five enterprises in two towns with records,
//! an inspection with hazards and an accepted rectification; `/dashboard` opened and signed in through its form in
//! headless Chromium must show the five headline rates and the town ranking GraphQL returns
//! (`headlineRates`, `townRanking`, `allTownMetrics`), and a screenshot is kept under
//! `target/test-output/dashboard/`.
//!
//! Needs `chromium` and `chromedriver` (Debian packages `chromium`, `chromium-driver`); without
//! them the test prints why and passes, unless `ANQUAN_TEST_REQUIRE_BROWSER=1` (set by
//! `.ci/run`), which makes it fail.

use std::time::Duration as StdDuration;

use chrono::{Datelike, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::browser::{Browser, Viewport};
use crate::compliance_flow::{register, review, upload};
use crate::supervision_flow::multipart;
use crate::support::{Backend, TestApp, data, spawn_app};

/// How long the page may take to show its figures.
const RENDER_TIMEOUT: StdDuration = StdDuration::from_secs(30);
/// How long the metrics watcher may take to fold the seeded events into "now".
const CATCH_UP_TIMEOUT: StdDuration = StdDuration::from_secs(30);

const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!) {
  recordInspection(input: $input, documents: $documents, photos: $photos) { hazardIds } }";
const SUBMIT: &str = "mutation($input: SubmitRectificationInput!, $photos: [Upload!]!) {
  submitRectification(input: $input, photos: $photos) { rectificationId } }";
const VERIFY: &str = "mutation($input: VerifyRectificationInput!) {
  verifyRectification(input: $input) { streamVersion } }";
const FIGURES: &str = "{
  headlineRates { enterpriseResponsibilityRate principalAndSafetyOfficerTrainingRate
    emergencyDrillCompletionRate socialServiceCoverage serviceCoverageOver5mRevenue
    periods { rate code period { label completed } } }
  townRanking(metric: \"B02\") { rank town value period { label } }
  allTownMetrics { town metrics { code value numerator denominator period { start end label period completed } } } }";

/// The five headline fields, in the page's order.
const HEADLINES: [&str; 5] = [
    "enterpriseResponsibilityRate",
    "principalAndSafetyOfficerTrainingRate",
    "emergencyDrillCompletionRate",
    "socialServiceCoverage",
    "serviceCoverageOver5mRevenue",
];

#[tokio::test]
async fn the_dashboard_shows_the_rates_and_ranking_graphql_returns() {
    let Some(mut browser) = Browser::start(Viewport::Desktop, "dashboard").await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    seed(&app, &admin).await;
    let figures = caught_up(&app, &admin).await;

    // Sign in through the form: the token stays in the page's memory, never in the URL.
    browser.open(&format!("{}/dashboard", app.base_url)).await;
    browser
        .script(&format!(
            "document.getElementById('token').value = {}; document.getElementById('login').requestSubmit(); return 1",
            serde_json::to_string(&admin).unwrap()
        ))
        .await;
    let url = browser.script("return location.href").await;
    assert!(!url.as_str().unwrap_or_default().contains(&admin), "{url}");
    // Text reaches HTML only through `esc`, which escapes quotes for attributes too.
    let escaped = browser.script("return esc(`\"'<>&`)").await;
    assert_eq!(escaped, "&quot;&#39;&lt;&gt;&amp;");
    let deadline = tokio::time::Instant::now() + RENDER_TIMEOUT;
    loop {
        let state = browser
            .script("return document.body.dataset.state || ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == "ready" {
            break;
        }
        assert_ne!(
            state,
            "error",
            "the dashboard failed: {}",
            browser.text("#message").await
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard did not render in {RENDER_TIMEOUT:?} (state {state})"
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    // Charts lay out after the data arrives; let the last frame paint before the screenshot.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    browser.screenshot("dashboard.png").await;
    browser.full_page_screenshot("dashboard_full.png").await;

    // The five headline rates, city-wide, as GraphQL has them.
    let rates = &figures["headlineRates"];
    for field in HEADLINES {
        let shown = browser
            .text(&format!("[data-testid=rate-{field}] [data-testid=rate-value]"))
            .await;
        assert_eq!(shown, percent(&rates[field]), "{field}: page {shown}, GraphQL {rates}");
    }

    // The ranking table: one row per town, in GraphQL's order, ranks and B02 values as served,
    // and each value the B02 of that town in allTownMetrics.
    let ranking = figures["townRanking"].as_array().unwrap();
    let towns = browser.texts("[data-testid=ranking-row] [data-testid=town]").await;
    let ranks = browser.texts("[data-testid=ranking-row] [data-testid=rank]").await;
    let values = browser.texts("[data-testid=ranking-row] [data-testid=value]").await;
    assert_eq!(towns.len(), ranking.len(), "page {towns:?}, GraphQL {ranking:?}");
    for (row, entry) in ranking.iter().enumerate() {
        assert_eq!(towns[row], entry["town"].as_str().unwrap(), "row {row}");
        let rank = entry["rank"].as_i64().map_or("—".to_owned(), |rank| rank.to_string());
        assert_eq!(ranks[row], rank, "rank of {}", towns[row]);
        assert_eq!(values[row], percent(&entry["value"]), "value of {}", towns[row]);
        let town_b02 = metric(&figures, &towns[row], "B02");
        assert_eq!(
            values[row],
            percent(&town_b02["value"]),
            "allTownMetrics of {}",
            towns[row]
        );
    }
    // The seeded figures are what they must be: 许村 has 3 enterprises, 长安 2.
    assert_eq!(metric(&figures, "许村", "A01")["numerator"], 3.0);
    assert_eq!(metric(&figures, "长安", "A01")["numerator"], 2.0);
    assert_eq!(metric(&figures, "许村", "E04")["numerator"], 2.0);
    assert_eq!(metric(&figures, "许村", "E07")["numerator"], 1.0);
    assert_eq!(metric(&figures, "许村", "E08")["value"], 50.0);
    assert_eq!(metric(&figures, "长安", "E04")["numerator"], 1.0);
    // 2 of the 5 hold valid certificates; the city's rates are the towns' sums.
    assert_eq!(percent(&rates["principalAndSafetyOfficerTrainingRate"]), "40.0%");
    for (field, code) in HEADLINES.iter().zip(["B02", "D03", "G02", "H01", "H02"]) {
        let (numerator, denominator) = ["许村", "长安"].iter().fold((0.0, 0.0), |(n, d), town| {
            let figure = metric(&figures, town, code);
            (
                n + figure["numerator"].as_f64().unwrap(),
                d + figure["denominator"].as_f64().unwrap(),
            )
        });
        let summed = (denominator > 0.0).then(|| json!(100.0 * numerator / denominator));
        assert_eq!(
            percent(&rates[*field]),
            percent(&summed.unwrap_or(Value::Null)),
            "{field} ({code}) is not the towns' sum"
        );
    }

    // Every figure says which stretch of time it covers. Cadence metrics count completed
    // periods: G03 the latest half-year ended by now, G02 the completed part of its year (its
    // first half-year, or the whole year once the second ended); A08 the year to now; A01 now.
    let local = Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let (year, month) = (local.year(), local.month());
    let (g03, g02) = if month >= 7 {
        (
            (format!("{year}-H1"), format!("{year}年上半年")),
            (format!("{year}-H1"), format!("{year}年上半年")),
        )
    } else {
        let last = year - 1;
        (
            (format!("{last}-H2"), format!("{last}年下半年")),
            (format!("{last}"), format!("{last}年")),
        )
    };
    for (code, (period, label)) in [("G03", g03), ("G02", g02)] {
        let covered = &metric(&figures, "许村", code)["period"];
        assert_eq!(covered["period"], period.as_str(), "{code}: {covered}");
        assert_eq!(covered["label"], label.as_str(), "{code}: {covered}");
        assert_eq!(covered["completed"], true, "{code}: {covered}");
    }
    let a08 = &metric(&figures, "许村", "A08")["period"];
    assert_eq!(a08["period"], year.to_string(), "{a08}");
    assert_eq!(a08["completed"], false, "{a08}");
    assert!(
        a08["label"].as_str().unwrap().starts_with(&format!("{year}年（截至")),
        "{a08}"
    );
    let a01 = &metric(&figures, "许村", "A01")["period"];
    assert_eq!(a01["period"], Value::Null, "{a01}");
    assert_eq!(a01["start"], a01["end"], "{a01}");
    assert!(a01["label"].as_str().unwrap().starts_with("截至"), "{a01}");
    // The page says it too: beside the drill rate and above the ranking.
    let drill_period = browser
        .text("[data-testid=rate-emergencyDrillCompletionRate] [data-testid=rate-period]")
        .await;
    assert_eq!(drill_period, label_of(&figures, "G02"));
    // headlineRates states them as well.
    let headline_periods = rates["periods"].as_array().unwrap();
    assert_eq!(headline_periods.len(), 5, "{rates}");
    for entry in headline_periods {
        let code = entry["code"].as_str().unwrap();
        assert_eq!(
            entry["period"]["label"].as_str().unwrap(),
            label_of(&figures, code),
            "{entry}"
        );
        assert_eq!(entry["period"]["completed"], code == "G02", "{entry}");
    }
    let ranking_period = browser.text("[data-testid=metric-period]").await;
    assert_eq!(
        ranking_period,
        format!("统计期：{}", ranking[0]["period"]["label"].as_str().unwrap())
    );
    assert_eq!(
        ranking[0]["period"]["label"],
        metric(&figures, "许村", "B02")["period"]["label"]
    );

    // The rectification chart shows each town's E08.
    let bars = browser.texts("#rectification text.bar-value").await;
    assert!(bars.iter().any(|text| text == "50.0%"), "{bars:?}");
    browser.stop().await;
    app.stop().await;
}

/// Five enterprises: 许村 A (certificates and drill), B (certificates), C (inspected: two
/// hazards, one rectified and accepted); 长安 D (drill), E (inspected: one open hazard).
async fn seed(app: &TestApp, admin: &str) {
    let codes = [
        "91330481MA2D000017",
        "91330481MA2D00002A",
        "91330481MA2D00003D",
        "91330481MA2D00004G",
        "91330481MA2D00005K",
    ];
    let towns = ["许村", "许村", "许村", "长安", "长安"];
    let mut ids = Vec::new();
    for (code, town) in codes.iter().zip(towns) {
        ids.push(register(app, admin, code, town).await);
    }
    let year = Utc::now().format("%Y").to_string();
    let certificate = |id: &str| {
        json!({ "enterpriseId": id, "requirement": "R04.leader_certificates", "title": "主要负责人安全培训合格证",
                "validFrom": Utc::now() - Duration::days(10), "validUntil": Utc::now() + Duration::days(400) })
    };
    let drill =
        |id: &str| json!({ "enterpriseId": id, "requirement": "R10.drill", "title": "演练记录", "period": year });
    let records = [
        (0, certificate(&ids[0])),
        (0, drill(&ids[0])),
        (1, certificate(&ids[1])),
        (3, drill(&ids[3])),
    ];
    for (index, input) in records {
        let owner = app.token(&["--role", "enterprise", "--enterprise", &ids[index]]);
        let officer = app.token(&["--role", "town_officer", "--town", towns[index]]);
        let uploaded = upload(app, &owner, input).await;
        let document = data(&uploaded)["uploadDocument"]["documentId"]
            .as_str()
            .unwrap()
            .to_owned();
        data(&review(app, &officer, &ids[index], &document, "APPROVE", None).await);
    }

    let inspect = |index: usize, hazards: Value| {
        let inspector = app.token(&["--role", "town_inspector", "--town", towns[index]]);
        let input = json!({
            "enterpriseId": ids[index], "kind": "ON_SITE",
            "inspectedAt": Utc::now().trunc_subsecs(6) - Duration::minutes(5),
            "inspectors": ["王检查", "陈检查"], "notes": "现场检查", "documentKinds": ["RECTIFICATION_ORDER"],
            "hazards": hazards,
        });
        let photos = input["hazards"].as_array().unwrap().len();
        async move {
            let response = multipart(
                app,
                &inspector,
                RECORD_INSPECTION,
                json!({ "input": input, "documents": [null], "photos": vec![Value::Null; photos] }),
                &[("documents", 1), ("photos", photos)],
            )
            .await;
            let ids: Vec<String> = data(&response)["recordInspection"]["hazardIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect();
            (inspector, ids)
        }
    };
    let hazard = |description: &str, photo: usize| {
        json!({ "category": "ELECTRICAL", "level": "GENERAL", "severity": "MINOR",
                "description": description, "photoIndexes": [photo] })
    };
    inspect(4, json!([hazard("消防通道堵塞", 0)])).await;
    let (inspector, hazards) = inspect(2, json!([hazard("积尘未清理", 0), hazard("配电箱未接地", 1)])).await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &ids[2]]);
    let input = json!({ "enterpriseId": ids[2], "hazardId": hazards[1], "text": "已接地并附测试报告" });
    let submitted = multipart(
        app,
        &owner,
        SUBMIT,
        json!({ "input": input, "photos": [null] }),
        &[("photos", 1)],
    )
    .await;
    let rectification = data(&submitted)["submitRectification"]["rectificationId"].clone();
    let input = json!({ "enterpriseId": ids[2], "hazardId": hazards[1],
                        "rectificationId": rectification, "decision": "ACCEPT" });
    data(&app.graphql(Some(&inspector), VERIFY, json!({ "input": input })).await);
}

/// The figures for now once the metrics watcher has folded in the last seeded event (the
/// accepted rectification: 许村's E07 reads 1).
async fn caught_up(app: &TestApp, admin: &str) -> Value {
    let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let response = app.graphql(Some(admin), FIGURES, json!({})).await;
        let figures = data(&response).clone();
        let towns = figures["allTownMetrics"].as_array().unwrap();
        let done = towns.iter().any(|town| {
            town["town"] == "许村"
                && town["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|metric| metric["code"] == "E07" && metric["numerator"] == 1.0)
        });
        if done {
            return figures;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics did not catch up: {figures}"
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}

/// One metric of one town in `allTownMetrics`.
fn metric<'a>(figures: &'a Value, town: &str, code: &str) -> &'a Value {
    figures["allTownMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|scope| scope["town"] == town)
        .and_then(|scope| {
            scope["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|metric| metric["code"] == code)
        })
        .unwrap_or_else(|| panic!("no {code} for {town}"))
}

/// The label of the span a metric of 许村 covers.
fn label_of(figures: &Value, code: &str) -> String {
    metric(figures, "许村", code)["period"]["label"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A percentage as the page writes it: one decimal and `%`, or `—` for none.
fn percent(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "—".to_owned(), |value| format!("{value:.1}%"))
}
