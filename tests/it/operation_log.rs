//! Every GraphQL operation is logged under spans (request, execution, the root field), and a
//! field that fails is logged with its path; no span is opened per nested object
//! (`graphql::operation_tracing`).

use serde_json::{Value, json};

use crate::support::{Backend, spawn_app};

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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let logged = loop {
        let found = app.log_lines().into_iter().find_map(|line| {
            let line: Value = serde_json::from_str(&line).ok()?;
            (line["fields"]["message"] == "error" && line["target"] == "async_graphql::graphql").then_some(line)
        });
        if let Some(line) = found {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error logged: {:?}",
            app.log_lines()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(logged["fields"]["path"], "found", "{logged}");
    assert_eq!(logged["span"]["name"], "field", "{logged}");
    assert_eq!(logged["span"]["parent_type"], "QueryRoot", "{logged}");
    let spans: Vec<&str> = logged["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no spans: {logged}"))
        .iter()
        .filter_map(|span| span["name"].as_str())
        .collect();
    assert_eq!(spans, ["request", "execute", "field"], "{logged}");
}
