//! Town statistics for "now" follow the clock without periodic passes and survive restarts
//! (issue 19, items 1 and 2): a certificate that lapses and a hazard deadline that passes show in
//! `townMetrics` within seconds of the (test) clock crossing their instant with no event in
//! between; a restarted service answers at once from the persisted contributions with the same
//! figures; and after a rebuild of the read models it computes them again instead of loading
//! figures computed from the read models before the rebuild.

use std::time::Duration as StdDuration;

use chrono::{Datelike, Duration, FixedOffset, SubsecRound, TimeZone, Utc};
use serde_json::{Value, json};

use crate::compliance_flow::{register, review, upload};
use crate::supervision_flow::multipart;
use crate::support::{Backend, TestApp, backends, binary, data, spawn_app_with_env};

const TOWN_METRICS: &str = "query($town: String!) {
  townMetrics(town: $town) { metrics { code value numerator denominator } } }";
const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!) {
  recordInspection(input: $input, documents: $documents, photos: $photos) { hazardIds } }";
/// How long after the clock crosses an instant "now" may take to show it: a few timer polls,
/// far below the minute the periodic recomputation took.
const CROSSING_SHOWN_WITHIN: StdDuration = StdDuration::from_secs(8);
/// How long the leader may take to write figures it published (milliseconds in practice).
const PERSIST_SETTLE: StdDuration = StdDuration::from_secs(2);
/// How long a service may take to follow an event.
const FOLLOW_TIMEOUT: StdDuration = StdDuration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapses_and_deadlines_show_within_seconds_and_a_restart_answers_at_once() {
    for backend in backends() {
        lapse_restart_and_rebuild(backend).await;
    }
}

async fn lapse_restart_and_rebuild(backend: Backend) {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    let clock_env = clock.to_str().unwrap().to_owned();
    let envs = [("ANQUAN_TEST_CLOCK", clock_env.as_str()), ("ANQUAN_TEST_MODE", "1")];
    let app = spawn_app_with_env(backend, &[], &envs).await;
    let admin = app.token(&["--role", "city_admin"]);
    let inspector = app.token(&["--role", "city_inspector"]);
    let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;

    // The principal's certificate, valid for two more days (D01 counts the enterprise).
    let valid_until = (Utc::now() + Duration::days(2)).trunc_subsecs(0);
    let certificate = json!({
        "enterpriseId": id, "requirement": "R04.leader_certificates", "title": "主要负责人安全培训合格证",
        "validFrom": Utc::now() - Duration::days(10), "validUntil": valid_until
    });
    let uploaded = upload(&app, &admin, certificate).await;
    let document = data(&uploaded)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();
    data(&review(&app, &admin, &id, &document, "APPROVE", None).await);
    // A government hazard due in a day (E09 counts it once overdue).
    let inspected_at = (Utc::now() - Duration::hours(1)).trunc_subsecs(0);
    let input = json!({
        "enterpriseId": id, "kind": "ON_SITE", "inspectedAt": inspected_at, "inspectors": ["王检查"],
        "hazards": [{ "category": "FIRE", "level": "GENERAL", "description": "消防通道堵塞",
                      "deadline": inspected_at + Duration::days(1) }],
    });
    data(
        &multipart(
            &app,
            &inspector,
            RECORD_INSPECTION,
            json!({ "input": input, "documents": [], "photos": [] }),
            &[],
        )
        .await,
    );
    let before = figures_become(&app, &admin, FOLLOW_TIMEOUT, |figures| {
        numerator(figures, "D01") == 1 && numerator(figures, "E04") == 1
    })
    .await;
    assert_eq!(numerator(&before, "E09"), 0, "{backend:?}: {before}");

    // Three days on, with no event: the certificate lapsed and the hazard is overdue.
    std::fs::write(&clock, (3 * 24 * 3600).to_string()).unwrap();
    let after = figures_become(&app, &admin, CROSSING_SHOWN_WITHIN, |figures| {
        numerator(figures, "D01") == 0 && numerator(figures, "E09") == 1
    })
    .await;

    // Past instants from the history of contributions (issue 19, item 3): half a day on, before
    // the lapse and the deadline; two and a half days on, after both. The leader walks the
    // history within a second or two; until it has, a past instant is computed from the files.
    let half_day = (Utc::now() + Duration::hours(12)).trunc_subsecs(0);
    let later = (Utc::now() + Duration::hours(60)).trunc_subsecs(0);
    let (then, answered) = past_from_history(&app, &admin, half_day).await;
    assert_eq!(
        (numerator(&then, "D01"), numerator(&then, "E09")),
        (1, 0),
        "{backend:?}: {then}"
    );
    let (then, _) = past_from_history(&app, &admin, later).await;
    assert_eq!(
        (numerator(&then, "D01"), numerator(&then, "E09")),
        (0, 1),
        "{backend:?}: {then}"
    );
    assert!(answered >= 1.0);

    // A restart answers at once from the persisted contributions, with the same figures. The
    // leader writes them right after it publishes them; the restart leaves it time to.
    tokio::time::sleep(PERSIST_SETTLE).await;
    let app = app.restart_with_env(&envs).await;
    let started = std::time::Instant::now();
    let restarted = town_metrics(&app, &admin).await;
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "{backend:?}: the first answer took {:?}",
        started.elapsed()
    );
    assert_eq!(restarted, after, "{backend:?}: the restarted service's figures differ");
    let logged = app.log_lines().join("\n");
    assert!(logged.contains("metrics loaded"), "{backend:?}: {logged}");

    // A rebuild of the read models replaces them with figures computed from the rebuilt read
    // models at its end (on the service's clock): the next start loads those and answers at
    // once with the same figures.
    let mut app = app;
    app.kill().await;
    let mut command = std::process::Command::new(binary());
    command
        .args(["projections", "rebuild", "--read-models", "--take-over", "--data-dir"])
        .arg(app.data_dir())
        .envs(envs)
        .env_remove("ANQUAN_DATABASE_URL");
    if let Some(url) = app.database_url() {
        command.arg("--database").arg(url);
    }
    let output = command.output().unwrap();
    let rebuild_log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{rebuild_log}");
    assert!(
        rebuild_log.contains("metrics for now computed under v1"),
        "{rebuild_log}"
    );
    let app = app.restart_with_env(&envs).await;
    let started = std::time::Instant::now();
    let rebuilt = town_metrics(&app, &admin).await;
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "{backend:?}: the first answer after the rebuild took {:?}",
        started.elapsed()
    );
    assert_eq!(rebuilt, after, "{backend:?}: the figures after the rebuild differ");
    let logged = app.log_lines().join("\n");
    assert!(logged.contains("metrics loaded"), "{backend:?}: {logged}");
    assert!(!logged.contains("metrics recomputed"), "{backend:?}: {logged}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_year_shows_within_seconds_of_its_start() {
    for backend in backends() {
        new_year(backend).await;
    }
}

/// Every enterprise may change at a year's start (windows restart): the service computes the
/// figures at it ahead and swaps them in at the instant, instead of a minute or a pass later.
async fn new_year(backend: Backend) {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    let clock_env = clock.to_str().unwrap().to_owned();
    let envs = [("ANQUAN_TEST_CLOCK", clock_env.as_str()), ("ANQUAN_TEST_MODE", "1")];
    let app = spawn_app_with_env(backend, &[], &envs).await;
    let admin = app.token(&["--role", "city_admin"]);
    register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    // A08 counts the enterprises registered in the year so far.
    figures_become(&app, &admin, FOLLOW_TIMEOUT, |figures| numerator(figures, "A08") == 1).await;

    // Five seconds before the next local new year (Asia/Shanghai), then across it.
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let year = Utc::now().with_timezone(&shanghai).year() + 1;
    let new_year = shanghai.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap().to_utc();
    let lead = Duration::seconds(5);
    std::fs::write(&clock, ((new_year - lead) - Utc::now()).num_seconds().to_string()).unwrap();
    let before = town_metrics(&app, &admin).await;
    assert_eq!(numerator(&before, "A08"), 1, "{backend:?}: {before}");
    figures_become(
        &app,
        &admin,
        lead.to_std().unwrap() + CROSSING_SHOWN_WITHIN,
        |figures| numerator(figures, "A08") == 0,
    )
    .await;
    let logged = app.log_lines().join("\n");
    assert!(
        logged.contains("metrics computed ahead swapped in"),
        "{backend:?}: {logged}"
    );
    app.stop().await;
}

/// The metrics of 许村 for now, by code: (numerator, denominator, value).
async fn town_metrics(app: &TestApp, token: &str) -> Value {
    let response = app.graphql(Some(token), TOWN_METRICS, json!({ "town": "许村" })).await;
    let metrics = data(&response)["townMetrics"]["metrics"].as_array().unwrap();
    metrics
        .iter()
        .map(|metric| {
            (
                metric["code"].as_str().unwrap().to_owned(),
                json!([metric["numerator"], metric["denominator"], metric["value"]]),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The metrics of 许村 at a past instant, once the history of contributions answers them (the
/// `/metrics` counter of answers from it moves), and that counter.
async fn past_from_history(app: &TestApp, token: &str, at: chrono::DateTime<Utc>) -> (Value, f64) {
    const QUERY: &str = "query($town: String!, $asOf: DateTime) {
      townMetrics(town: $town, asOf: $asOf) { metrics { code value numerator denominator } } }";
    let deadline = tokio::time::Instant::now() + FOLLOW_TIMEOUT;
    let mut step = 0;
    loop {
        let before = history_answers(app).await;
        // Another instant each time: the same one would be answered from the cache of past
        // computations, whatever the source.
        step += 1;
        let asked = at + Duration::milliseconds(step);
        let response = app
            .graphql(Some(token), QUERY, json!({ "town": "许村", "asOf": asked }))
            .await;
        let metrics = data(&response)["townMetrics"]["metrics"].as_array().unwrap().clone();
        let figures: Value = metrics
            .iter()
            .map(|metric| {
                (
                    metric["code"].as_str().unwrap().to_owned(),
                    json!([metric["numerator"], metric["denominator"], metric["value"]]),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let after = history_answers(app).await;
        if after > before {
            return (figures, after);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "past instants were not answered from the history within {FOLLOW_TIMEOUT:?}"
        );
        tokio::time::sleep(StdDuration::from_millis(300)).await;
    }
}

/// How many past-instant computations the history answered (`/metrics`; with or without
/// enterprises the log touched since its position evaluated from their files).
async fn history_answers(app: &TestApp) -> f64 {
    app.metric_sum("anquan_metrics_past_answers_total{source=\"history")
        .await
}

fn numerator(figures: &Value, code: &str) -> i64 {
    let numerator = figures[code][0]
        .as_f64()
        .unwrap_or_else(|| panic!("no {code} in {figures}"));
    assert!(numerator.fract() == 0.0, "{code}: {numerator}");
    #[expect(clippy::cast_possible_truncation, reason = "a whole count, checked above")]
    let numerator = numerator as i64;
    numerator
}

/// Waits until 许村's figures for now satisfy `done`, at most `within`; returns them.
async fn figures_become(app: &TestApp, token: &str, within: StdDuration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let figures = town_metrics(app, token).await;
        if done(&figures) {
            return figures;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not shown within {within:?}: {figures}"
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}
