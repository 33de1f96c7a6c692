//! `GET /metrics` as a Prometheus server scrapes it: no token, the text format with `HELP`
//! lines, the event store's appends by backend and outcome, and GraphQL operations labelled by
//! operation type and root fields, never by names the client chose.

use serde_json::json;

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app};

#[tokio::test]
async fn metrics_count_appends_and_operations_with_bounded_labels() {
    for backend in backends() {
        run(backend).await;
    }
}

async fn run(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let health = app
        .graphql(None, "query ChosenByTheClient { health { name state } }", json!({}))
        .await;
    data(&health);
    let several = app
        .graphql(
            Some(&admin),
            "{ health { name } ruleSets { version } enterprises { nodes { id } } }",
            json!({}),
        )
        .await;
    data(&several);
    let unknown = app
        .graphql(None, "query Evil { fieldChosenByAnAttacker }", json!({}))
        .await;
    assert_eq!(error_code(&unknown), "GRAPHQL_VALIDATION_FAILED");
    let unparsable = app.graphql(None, "query Evil2 { health { name ", json!({})).await;
    assert_eq!(error_code(&unparsable), "GRAPHQL_PARSE_FAILED");

    let text = scrape(&app).await;
    let backend_name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let appends = format!("anquan_event_store_appends_total{{backend=\"{backend_name}\",outcome=\"ok\"}}");
    assert!(value(&text, &appends) >= 1.0, "{text}");
    let events = format!("anquan_event_store_appended_events_total{{backend=\"{backend_name}\"}}");
    assert!(value(&text, &events) >= 1.0, "{text}");
    let append_count = format!("anquan_event_store_append_duration_seconds_count{{backend=\"{backend_name}\"}}");
    assert_eq!(value(&text, &append_count), value(&text, &appends), "{text}");

    let operations = [
        ("mutation registerEnterprise", "OK"),
        ("query health", "OK"),
        ("query (several)", "OK"),
        ("invalid", "GRAPHQL_VALIDATION_FAILED"),
        ("invalid", "GRAPHQL_PARSE_FAILED"),
    ];
    for (operation, outcome) in operations {
        let labels = format!("operation=\"{operation}\",outcome=\"{outcome}\"");
        assert_eq!(
            value(&text, &format!("anquan_graphql_requests_total{{{labels}}}")),
            1.0,
            "{labels} in:\n{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!("anquan_graphql_request_duration_seconds_count{{{labels}}}")
            ),
            1.0,
            "{labels} in:\n{text}"
        );
        assert!(
            text.contains(&format!(
                "anquan_graphql_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 1"
            )),
            "{labels} in:\n{text}"
        );
    }
    assert!(!text.contains("ChosenByTheClient") && !text.contains("Evil"), "{text}");
    assert!(!text.contains("fieldChosenByAnAttacker"), "{text}");
    for line in text.lines().filter(|line| line.starts_with("anquan_graphql_")) {
        let operation = line
            .split("operation=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no operation label in {line}"));
        assert!(bounded_operation(operation), "{operation} in {line}");
    }

    for name in [
        "anquan_event_store_appends_total",
        "anquan_event_store_appended_events_total",
        "anquan_event_store_append_duration_seconds",
        "anquan_graphql_requests_total",
        "anquan_graphql_request_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name} in:\n{text}"
        );
    }
    assert!(text.contains("# TYPE anquan_graphql_request_duration_seconds histogram"));
    assert!(text.contains("# TYPE anquan_event_store_appends_total counter"));

    // Scrapers come often and without a token: no limit refuses them.
    for _ in 0..50 {
        scrape(&app).await;
    }
    app.stop().await;
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the series `series` (name and labels exactly as rendered), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// `invalid`, or an operation type and one or two root field names, or `(several)`.
fn bounded_operation(operation: &str) -> bool {
    if operation == "invalid" {
        return true;
    }
    let Some((kind, fields)) = operation.split_once(' ') else {
        return false;
    };
    let names_ok = fields == "(several)"
        || (fields.split(',').count() <= 2
            && fields
                .split(',')
                .all(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
    matches!(kind, "query" | "mutation" | "subscription") && names_ok
}

#[tokio::test]
async fn with_a_metrics_token_only_a_scraper_that_sends_it_reads_the_metrics() {
    const TOKEN: &str = "prometheus-scrape-secret-0123456789";
    let app = spawn_app(Backend::Sqlite, &["--metrics-token", TOKEN]).await;
    let get = |authorization: Option<&'static str>| {
        let mut request = app.client.get(format!("{}/metrics", app.base_url));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        async move { request.send().await.unwrap() }
    };
    for refused in [
        None,
        Some("Bearer wrong-secret-of-enough-length-000"),
        Some("Basic cHJvbWV0aGV1czpzZWNyZXQ="),
    ] {
        let response = get(refused).await;
        assert_eq!(response.status(), 401, "{refused:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let response = get(Some("Bearer prometheus-scrape-secret-0123456789")).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("# HELP"));
    app.stop().await;

    // A token too short to be a secret stops the service from starting.
    let output = std::process::Command::new(crate::support::binary())
        .args(["serve", "--metrics-token", "short", "--listen", "127.0.0.1:0"])
        .env("ANQUAN_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 24 characters"));
}
