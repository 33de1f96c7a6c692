//! A past instant's figures look up the instant a month earlier only when the answer shows it
//! (`previousValue`, `change`): a dashboard or report that asks for the figures alone costs one
//! lookup, not two (a ranking's `change` is the month before's too). The selection is read through fragments and aliases, so no way of asking for
//! the month-ago figures leaves them out.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, spawn_app};

const PLAIN: &str = "query($at: DateTime) {
  townMetrics(town: \"许村\", asOf: $at) { metrics { code value previousValue change } } }";
const THROUGH_FRAGMENTS: &str = "query($at: DateTime) {
  townMetrics(town: \"许村\", asOf: $at) { metrics { code value ...Earlier ... on MetricValue { moved: change } } } }
fragment Earlier on MetricValue { previousValue }";
const MONTH_AGO_FIRST: &str = "query($at: DateTime) {
  allTownMetrics(asOf: $at) { town metrics { code change } }
  cityMetrics(asOf: $at) { metrics { code value } } }";
const FIGURES_FIRST: &str = "query($at: DateTime) {
  cityMetrics(asOf: $at) { metrics { code value } }
  allTownMetrics(asOf: $at) { town metrics { code value previousValue change } } }";
const FIGURES_ALONE: &str = "query($at: DateTime) {
  townMetrics(town: \"许村\", asOf: $at) { metrics { code value numerator denominator } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_month_ago_figures_are_looked_up_only_when_shown() {
    for backend in backends() {
        month_ago_when_shown(backend).await;
    }
}

async fn month_ago_when_shown(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    register(&app, &admin, "91330481MA28A0XX3G", "许村").await;
    let instant = |hours: i64| (Utc::now() - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true);

    // Asked plainly and through a fragment spread, an inline fragment and an alias: the same
    // month-ago figures (the second answer is the first's computation, shared).
    let at = instant(1);
    let plain = metrics(&app, &admin, PLAIN, &at).await;
    assert!(
        plain.iter().any(|metric| !metric["previousValue"].is_null()),
        "no month-ago figure at all: {plain:?}"
    );
    let through = metrics(&app, &admin, THROUGH_FRAGMENTS, &at).await;
    assert_eq!(plain.len(), through.len());
    for (plain, through) in plain.iter().zip(&through) {
        assert_eq!(plain["code"], through["code"]);
        assert_eq!(plain["previousValue"], through["previousValue"], "{}", plain["code"]);
        assert_eq!(plain["change"], through["moved"], "{}", plain["code"]);
    }

    // A ranking's change is the month before's too.
    let response = app
        .graphql(
            Some(&admin),
            "query($at: DateTime) { townRanking(metric: \"A01\", asOf: $at) { town value change } }",
            json!({ "at": at }),
        )
        .await;
    let ranking = data(&response)["townRanking"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .clone();
    let ours = ranking
        .iter()
        .find(|entry| entry["town"] == "许村")
        .unwrap_or_else(|| panic!("{response}"));
    assert!(!ours["change"].is_null(), "no change without the month before: {ours}");

    // The figures alone are one computation of the instant alone: asking for the month-ago
    // figures at the same instant afterwards is a computation of its own (two instants), and
    // the figures alone again are the first one's, shared.
    let at = instant(2);
    let before = past_answers(&app).await;
    metrics(&app, &admin, FIGURES_ALONE, &at).await;
    assert_eq!(past_answers(&app).await, before + 1.0);
    metrics(&app, &admin, THROUGH_FRAGMENTS, &at).await;
    assert_eq!(past_answers(&app).await, before + 2.0);
    metrics(&app, &admin, FIGURES_ALONE, &at).await;
    assert_eq!(past_answers(&app).await, before + 2.0);

    // The root fields of one request share each instant, whichever shows the month before:
    // with it first, the figures alone are its computation's.
    let at = instant(3);
    let before = past_answers(&app).await;
    let response = app.graphql(Some(&admin), MONTH_AGO_FIRST, json!({ "at": at })).await;
    data(&response);
    assert_eq!(past_answers(&app).await, before + 1.0, "{response}");
    // With the figures alone first, the month before is a computation of its own beside it, and
    // the figures are the same as a request of the town alone.
    let at = instant(4);
    let before = past_answers(&app).await;
    let response = app.graphql(Some(&admin), FIGURES_FIRST, json!({ "at": at })).await;
    assert_eq!(past_answers(&app).await, before + 2.0, "{response}");
    let shared = data(&response)["allTownMetrics"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .find(|town| town["town"] == "许村")
        .unwrap_or_else(|| panic!("{response}"))["metrics"]
        .clone();
    let alone = metrics(&app, &admin, PLAIN, &at).await;
    assert_eq!(past_answers(&app).await, before + 2.0, "the town alone reuses both");
    assert_eq!(shared, Value::Array(alone), "{response}");
}

async fn metrics(app: &TestApp, token: &str, query: &str, at: &str) -> Vec<Value> {
    let response = app.graphql(Some(token), query, json!({ "at": at })).await;
    data(&response)["townMetrics"]["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no metrics: {response}"))
        .clone()
}

/// How many past-instant computations the service made (`/metrics`, every source).
async fn past_answers(app: &TestApp) -> f64 {
    app.metric_sum("anquan_metrics_past_answers_total{").await
}
