//! Every GraphQL operation is logged under spans (request, execution, the root field), and a
//! field that fails is logged with its path: a root field's failure in its span, a nested
//! field's in the operation's; no span is opened per nested object (`graphql::operation_tracing`).

use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, spawn_app};

/// The first `error` line of async-graphql's target logged for `path`, waited for up to 5 s.
async fn logged_error(app: &TestApp, path: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let found = app.log_lines().into_iter().find_map(|line| {
            let line: Value = serde_json::from_str(&line).ok()?;
            (line["fields"]["message"] == "error"
                && line["target"] == "async_graphql::graphql"
                && line["fields"]["path"] == path)
                .then_some(line)
        });
        if let Some(line) = found {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error logged for {path}: {:?}",
            app.log_lines()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn span_names(logged: &Value) -> Vec<&str> {
    logged["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no spans: {logged}"))
        .iter()
        .filter_map(|span| span["name"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_field_is_logged_with_its_path_under_its_root_field() {
    let app = spawn_app(Backend::Sqlite, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let response = app
        .graphql(
            Some(&admin),
            "query { found: townMetrics(town: \"不存在的镇\") { town } }",
            json!({}),
        )
        .await;
    assert_eq!(response["errors"][0]["path"], json!(["found"]), "{response}");
    let logged = logged_error(&app, "found").await;
    assert_eq!(logged["span"]["name"], "field", "{logged}");
    assert_eq!(logged["span"]["parent_type"], "QueryRoot", "{logged}");
    assert_eq!(span_names(&logged), ["request", "execute", "field"], "{logged}");

    // A nested field's failure: logged once with its whole path, under the operation's spans.
    let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let response = app
        .graphql(
            Some(&admin),
            "query($id: ID!) { enterprise(id: $id) { name colourHistory(from: \"0001-01-01T00:00:00Z\") { at } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        response["errors"][0]["path"],
        json!(["enterprise", "colourHistory"]),
        "{response}"
    );
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "VALUE_OUT_OF_RANGE",
        "{response}"
    );
    let logged = logged_error(&app, "enterprise.colourHistory").await;
    assert_eq!(span_names(&logged), ["request", "execute"], "{logged}");
    let times = app
        .log_lines()
        .iter()
        .filter(|line| line.contains("\"error\"") && line.contains("enterprise.colourHistory"))
        .count();
    assert_eq!(times, 1, "logged once: {:?}", app.log_lines());
}
