//! Issue #17, the query-cost and transport parts: what one request may cost is bounded and
//! refused before it runs, on every transport (POST, GET, the websocket); bodies are held to a
//! limit before they are read whole; a mutation never runs over GET; a history cursor never
//! wraps; a subscription ends when its token does.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, binary, data, error_code, spawn_app};

/// Answers to refused requests must come at once, not after the work they would have caused.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);

/// 25 fragments, each spreading the one before twice: 2²⁴ `__typename` fields when run, about
/// 1.6 kB of text.
fn fragment_fan_out() -> String {
    let mut query = String::from("query{...F24} fragment F0 on QueryRoot{__typename}");
    for i in 1..=24 {
        query.push_str(&format!(" fragment F{i} on QueryRoot{{...F{p} ...F{p}}}", p = i - 1));
    }
    query
}

/// `count` aliases of `field` inside one enterprise.
fn aliases(count: usize, field: &str) -> String {
    let fields: Vec<String> = (0..count).map(|i| format!("a{i}: {field}")).collect();
    format!(
        "{{ enterprise(id: \"00000000-0000-0000-0000-000000000000\") {{ {} }} }}",
        fields.join(" ")
    )
}

async fn get(app: &TestApp, token: Option<&str>, params: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app.client.get(format!("{}/graphql", app.base_url)).query(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The `extensions.code` of the first error of a websocket message (graphql-transport-ws sends
/// an `error` message with a list, or a `next` message whose payload has `errors`).
fn ws_error_code(message: &Value) -> Option<String> {
    let errors = if message["type"] == "error" {
        &message["payload"]
    } else {
        &message["payload"]["errors"]
    };
    errors[0]["extensions"]["code"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn costly_documents_are_refused_before_they_run_on_every_transport() {
    for backend in backends() {
        query_limits(backend).await;
    }
}

async fn query_limits(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let fan_out = fragment_fan_out();
    assert!(fan_out.len() < 2_000, "{}", fan_out.len());

    // POST, anonymous.
    let started = Instant::now();
    let response = app.graphql(None, &fan_out, json!({})).await;
    assert_eq!(error_code(&response), "QUERY_TOO_LARGE", "{response}");
    assert!(response["data"].is_null(), "{response}");
    assert!(started.elapsed() < REFUSED_WITHIN, "took {:?}", started.elapsed());

    // GET, anonymous.
    let started = Instant::now();
    let (status, response) = get(&app, None, &[("query", &fan_out)]).await;
    assert_eq!(error_code(&response), "QUERY_TOO_LARGE", "{status} {response}");
    assert!(started.elapsed() < REFUSED_WITHIN, "took {:?}", started.elapsed());

    // The websocket.
    let mut socket = crate::support::open_socket(&app, &admin).await;
    let started = Instant::now();
    let subscribe = json!({ "id": "fan", "type": "subscribe", "payload": { "query": fan_out } });
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    let message = crate::support::next_message(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(ws_error_code(&message).as_deref(), Some("QUERY_TOO_LARGE"), "{message}");
    assert!(started.elapsed() < REFUSED_WITHIN, "took {:?}", started.elapsed());

    // Aliases: a thousand colour histories, or a few dozen `__typename`s.
    let started = Instant::now();
    let response = app
        .graphql(Some(&admin), &aliases(1_000, "colourHistory { at }"), json!({}))
        .await;
    assert_eq!(error_code(&response), "QUERY_TOO_LARGE", "{response}");
    assert!(started.elapsed() < REFUSED_WITHIN, "took {:?}", started.elapsed());
    let response = app.graphql(None, &aliases(60, "__typename"), json!({})).await;
    assert_eq!(error_code(&response), "QUERY_TOO_LARGE", "{response}");

    // Root fields.
    let roots: Vec<String> = (0..40).map(|i| format!("h{i}: __typename")).collect();
    let response = app
        .graphql(None, &format!("{{ {} }}", roots.join(" ")), json!({}))
        .await;
    assert_eq!(error_code(&response), "QUERY_TOO_LARGE", "{response}");

    // Fields that cost by their arguments: colour histories over their span, metrics at past
    // instants by the pass over every file each makes.
    let response = app
        .graphql(Some(&admin), &aliases(40, "colourHistory { at }"), json!({}))
        .await;
    assert_eq!(error_code(&response), "QUERY_TOO_COMPLEX", "{response}");
    let span = "colourHistory(from: \"1950-01-01T00:00:00Z\", to: \"2199-01-01T00:00:00Z\") { at }";
    let response = app.graphql(Some(&admin), &aliases(3, span), json!({})).await;
    assert_eq!(error_code(&response), "QUERY_TOO_COMPLEX", "{response}");
    let past: Vec<String> = (0..11)
        .map(|i| {
            format!(
                "m{i}: headlineRates(asOf: \"2025-0{}-01T00:00:00Z\") {{ at }}",
                i % 9 + 1
            )
        })
        .collect();
    let response = app
        .graphql(Some(&admin), &format!("{{ {} }}", past.join(" ")), json!({}))
        .await;
    assert_eq!(error_code(&response), "QUERY_TOO_COMPLEX", "{response}");

    // What clients ask for still runs: the dashboard's trend (six past instants and now), a
    // year's colour history, a few aliases.
    let trend: Vec<String> = (1..=6)
        .map(|i| format!("m{i}: headlineRates(asOf: \"2025-0{i}-01T00:00:00Z\") {{ at enterpriseResponsibilityRate }}"))
        .chain(std::iter::once("now: headlineRates { at }".to_owned()))
        .collect();
    let response = app
        .graphql(Some(&admin), &format!("{{ {} }}", trend.join(" ")), json!({}))
        .await;
    data(&response);
    let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let from = chrono::Utc::now();
    let to = from + chrono::Duration::days(365);
    let query = format!(
        "{{ enterprise(id: \"{id}\") {{ a: colourHistory {{ at colour }} b: colourHistory(from: \"{}\", to: \"{}\") \
         {{ at }} history(first: 50) {{ nodes {{ version }} }} }} }}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let response = app.graphql(Some(&admin), &query, json!({})).await;
    assert!(
        data(&response)["enterprise"]["history"]["nodes"].as_array().is_some(),
        "{response}"
    );

    assert_eq!(app.panics(), 0);
    app.stop().await;
}

#[tokio::test]
async fn an_operation_over_its_time_limit_is_cancelled_with_a_code() {
    let app = spawn_app(Backend::Sqlite, &["--request-timeout-ms", "1"]).await;
    let admin = app.token(&["--role", "city_admin"]);
    // Mutations are not cut short (cancelled after their append, they would be recorded with
    // their answer lost).
    let mut ids = Vec::new();
    for code in ["91330481MA28A0XX07", "91330100799655058B", "91330481MA2D00005K"] {
        ids.push(register(&app, &admin, code, "许村").await);
    }
    // A query reading every file, and metrics at past instants (a pass over every file each):
    // within a millisecond, some cannot finish.
    let mut codes = Vec::new();
    for i in 1..=5 {
        let files: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                format!("e{n}: enterprise(id: \"{id}\") {{ colourHistory {{ at }} verification {{ intact }} }}")
            })
            .collect();
        let query = format!(
            "{{ cityMetrics(asOf: \"2025-0{i}-01T00:00:00Z\") {{ at }} enterprises {{ nodes {{ id }} }} {} }}",
            files.join(" ")
        );
        let response = app.graphql(Some(&admin), &query, json!({})).await;
        codes.push(
            response["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("none")
                .to_owned(),
        );
    }
    assert!(codes.iter().any(|code| code == "TIMEOUT"), "{codes:?}");
    assert!(
        codes.iter().all(|code| code == "TIMEOUT" || code == "none"),
        "{codes:?}"
    );
    assert_eq!(app.panics(), 0);
    // The service is fine afterwards.
    let health = app
        .client
        .get(format!("{}/healthz", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    app.stop().await;
}

/// Sends raw bytes and returns the status line and the body of the answer.
async fn raw(app: &TestApp, head: &str, body_chunks: usize, chunk: &[u8]) -> (u16, Value, Duration) {
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let chunk = chunk.to_vec();
    // The server may answer and close before the body is sent: write errors are expected.
    let writing = tokio::spawn(async move {
        for _ in 0..body_chunks {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buffer = [0u8; 8192];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
            if let Some(end) = find(&answer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().unwrap());
                if answer.len() >= end + 4 + length {
                    break;
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    writing.abort();
    assert!(read.is_ok(), "no answer within 20 s");
    let end = find(&answer, b"\r\n\r\n").unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&answer)));
    let status_line = String::from_utf8_lossy(&answer[..end])
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_slice(&answer[end + 4..]).unwrap_or(Value::Null);
    (status, body, elapsed)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[tokio::test]
async fn request_bodies_are_held_to_their_limit_before_they_are_read() {
    let app = spawn_app(Backend::Sqlite, &[]).await;
    let host = app.base_url.trim_start_matches("http://").to_owned();

    // 64 MiB declared: refused from the headers, without waiting for the body.
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 * 1024
    );
    let (status, body, elapsed) = raw(&app, &head, 0, b"").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_code(&body), "BODY_TOO_LARGE");
    assert!(elapsed < REFUSED_WITHIN, "took {elapsed:?}");

    // 64 MiB sent without a declared length (chunked): refused once 1 MiB is read.
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
    chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
    chunk.extend_from_slice(b"\r\n");
    let (status, body, _) = raw(&app, &head, 1024, &chunk).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_code(&body), "BODY_TOO_LARGE");

    // A declared length over the upload limit is refused on any route.
    let head = format!(
        "POST /healthz HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024 * 1024
    );
    let (status, body, _) = raw(&app, &head, 0, b"").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_code(&body), "BODY_TOO_LARGE");

    // A request under the limit is answered.
    let padding = "x".repeat(900 * 1024);
    let response = app
        .graphql(None, &format!("#{padding}\n{{ __typename }}"), json!({}))
        .await;
    assert_eq!(data(&response)["__typename"], "QueryRoot");

    // The limit is configurable.
    let small = spawn_app(Backend::Sqlite, &["--graphql-body-bytes-max", "512"]).await;
    let padding = "x".repeat(600);
    let response = small
        .client
        .post(format!("{}/graphql", small.base_url))
        .json(&json!({ "query": format!("#{padding}\n{{ __typename }}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BODY_TOO_LARGE");
    let response = small.graphql(None, "{ __typename }", json!({})).await;
    assert_eq!(data(&response)["__typename"], "QueryRoot");
    assert_eq!(app.panics() + small.panics(), 0);
    small.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_mutation_is_never_run_over_get_whatever_precedes_it() {
    for backend in backends() {
        mutations_over_get(backend).await;
    }
}

async fn mutations_over_get(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let register = "mutation { registerEnterprise(input: { name: \"海宁市某厂\", creditCode: \"91330481MA28A0XX07\", \
                    town: \"许村\", industry: \"家纺\", profile: { staffCount: 1, annualRevenue10kYuan: 1, flags: [] } }) \
                    { enterprise { id } } }";
    let disguised = [
        format!("#x\n{register}"),
        format!("\u{feff}{register}"),
        format!("  # a comment\n\n{register}"),
    ];
    for query in &disguised {
        let (status, response) = get(&app, Some(&admin), &[("query", query)]).await;
        assert_eq!(status, 405, "{response}");
        assert_eq!(error_code(&response), "MUTATION_OVER_GET");
    }
    // The operation the request selects decides, not the first in the document.
    let two = format!(
        "query A {{ __typename }} {}",
        register.replacen("mutation", "mutation B", 1)
    );
    let (status, response) = get(&app, Some(&admin), &[("query", &two), ("operationName", "B")]).await;
    assert_eq!(status, 405, "{response}");
    assert_eq!(error_code(&response), "MUTATION_OVER_GET");
    let (status, response) = get(&app, Some(&admin), &[("query", &two), ("operationName", "A")]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(data(&response)["__typename"], "QueryRoot");

    // Nothing ran.
    let response = app
        .graphql(Some(&admin), "{ enterprises { nodes { id } } }", json!({}))
        .await;
    assert_eq!(data(&response)["enterprises"]["nodes"], json!([]), "{response}");
    // And POST still runs it.
    let response = app.graphql(Some(&admin), register, json!({})).await;
    assert!(data(&response)["registerEnterprise"]["enterprise"]["id"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn a_history_cursor_past_the_last_version_is_refused_not_wrapped() {
    for backend in backends() {
        let app = spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let query =
            "query($id: ID!, $after: String) { enterprise(id: $id) { history(after: $after) { nodes { version } } } }";
        for after in ["18446744073709551615", "-1", "x"] {
            let response = app
                .graphql(Some(&admin), query, json!({ "id": id, "after": after }))
                .await;
            assert_eq!(error_code(&response), "BAD_INPUT", "{after}: {response}");
        }
        let response = app
            .graphql(
                Some(&admin),
                query,
                json!({ "id": id, "after": "18446744073709551614" }),
            )
            .await;
        assert_eq!(data(&response)["enterprise"]["history"]["nodes"], json!([]));
        let response = app.graphql(Some(&admin), query, json!({ "id": id })).await;
        assert_eq!(data(&response)["enterprise"]["history"]["nodes"][0]["version"], "0");
        assert_eq!(app.panics(), 0);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let app = spawn_app(Backend::Sqlite, &[]).await;
    let short = app.token(&["--role", "city_admin", "--seconds", "3"]);
    let started = Instant::now();
    let mut socket = crate::support::subscribe(
        &app,
        &short,
        &[("colours", "subscription { colourChanged { enterpriseId colour } }")],
    )
    .await;
    let close = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Ping(payload))) => socket.send(Message::Pong(payload)).await.unwrap(),
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("the socket failed instead of closing: {error}"),
                None => panic!("the socket ended without a close frame"),
            }
        }
    })
    .await
    .expect("the subscription outlived its token by more than 12 s");
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 4401);
    assert_eq!(frame.reason.as_str(), "TOKEN_EXPIRED");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed too early: {:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_runs_no_inline_script_and_never_reads_a_token_from_its_url() {
    let app = spawn_app(Backend::Sqlite, &[]).await;
    let page = app
        .client
        .get(format!("{}/dashboard", app.base_url))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script src=\"/dashboard.js\"></script>"), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains("<style>") && !html.contains("style="),
        "{html}"
    );
    assert!(!html.contains("onsubmit=") && !html.contains("onchange="), "{html}");
    for (path, media_type) in [("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")] {
        let response = app.client.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(media_type)
        );
        assert!(response.headers().contains_key("content-security-policy"));
    }
    let script = app
        .client
        .get(format!("{}/dashboard.js", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !script.contains("get(\"token\")"),
        "the dashboard reads a token from its URL"
    );
    app.stop().await;
}

const REGISTER_AS: &str = "mutation($code: String!) { registerEnterprise(input: { name: \"海宁市某厂\", creditCode: $code, \
                           town: \"许村\", industry: \"家纺\", profile: { staffCount: 1, annualRevenue10kYuan: 1, flags: [] } }) \
                           { enterprise { id } } }";
const CODES: [&str; 5] = [
    "91330481MA2D000017",
    "91330481MA2D00002A",
    "91330481MA2D00003D",
    "91330481MA2D00004G",
    "91330481MA2D00005K",
];

async fn post_status(app: &TestApp, token: &str, query: &str, variables: Value) -> (u16, Option<String>, Value) {
    post_status_forwarded(app, token, None, query, variables).await
}

/// `post_status`, with an `X-Forwarded-For` header when one is given.
async fn post_status_forwarded(
    app: &TestApp,
    token: &str,
    forwarded_for: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Option<String>, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

#[tokio::test]
async fn mutations_and_uploads_are_rate_limited_per_token_and_per_address() {
    // Per token: the fourth change of one caller is refused; another caller and queries are not.
    let app = spawn_app(
        Backend::Sqlite,
        &[
            "--mutations-per-minute-per-token",
            "3",
            "--mutations-per-minute-per-address",
            "0",
        ],
    )
    .await;
    let admin = app.token(&["--role", "city_admin"]);
    let other = app.token(&["--role", "city_admin", "--user", "admin-2"]);
    let id = register(&app, &admin, CODES[0], "许村").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);
    for code in &CODES[1..3] {
        let (status, _, response) = post_status(&app, &admin, REGISTER_AS, json!({ "code": code })).await;
        assert_eq!(status, 200, "{response}");
        data(&response);
    }
    let (status, retry_after, response) = post_status(&app, &admin, REGISTER_AS, json!({ "code": CODES[3] })).await;
    assert_eq!(status, 429, "{response}");
    assert_eq!(error_code(&response), "RATE_LIMITED");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    let (status, _, response) = post_status(&app, &other, REGISTER_AS, json!({ "code": CODES[3] })).await;
    assert_eq!(status, 200, "{response}");
    for _ in 0..10 {
        let response = app
            .graphql(Some(&admin), "{ enterprises { nodes { id } } }", json!({}))
            .await;
        data(&response);
    }
    // An upload counts before its body is read.
    for attempt in 0..4 {
        let (status, response) = app
            .graphql_upload(
                &owner,
                "mutation($input: UploadDocumentInput!, $file: Upload!) { uploadDocument(input: $input, file: $file) { documentId } }",
                json!({ "input": { "enterpriseId": id, "requirement": "R10.plan", "title": "应急预案" }, "file": null }),
                b"%PDF-1.4 record".to_vec(),
            )
            .await;
        if attempt < 3 {
            assert_eq!(status, 200, "{response}");
        } else {
            assert_eq!(status, 429, "{response}");
            assert_eq!(error_code(&response), "RATE_LIMITED");
        }
    }
    app.stop().await;

    // Per address: every caller from one address shares its allowance.
    let app = spawn_app(
        Backend::Sqlite,
        &[
            "--mutations-per-minute-per-token",
            "0",
            "--mutations-per-minute-per-address",
            "2",
        ],
    )
    .await;
    let tokens: Vec<String> = (0..3)
        .map(|n| app.token(&["--role", "city_admin", "--user", &format!("admin-{n}")]))
        .collect();
    let mut statuses = Vec::new();
    for (token, code) in tokens.iter().zip(CODES) {
        statuses.push(post_status(&app, token, REGISTER_AS, json!({ "code": code })).await.0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    // No proxy is trusted by default: a client cannot name another address to escape its limit.
    let (status, _, response) = post_forwarded(&app, &tokens[2], "198.51.100.77", json!({ "code": CODES[2] })).await;
    assert_eq!(status, 429, "{response}");
    assert_eq!(app.panics(), 0);
    app.stop().await;
}

/// A registration sent with an `X-Forwarded-For` header.
async fn post_forwarded(
    app: &TestApp,
    token: &str,
    forwarded_for: &str,
    variables: Value,
) -> (u16, Option<String>, Value) {
    post_status_forwarded(app, token, Some(forwarded_for), REGISTER_AS, variables).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_allowance_and_cannot_forge_another() {
    // The test's requests come from 127.0.0.1, which plays the reverse proxy here.
    let app = spawn_app(
        Backend::Sqlite,
        &[
            "--mutations-per-minute-per-token",
            "0",
            "--mutations-per-minute-per-address",
            "2",
            "--trusted-proxy",
            "127.0.0.1,10.0.0.0/8",
        ],
    )
    .await;
    let admin = app.token(&["--role", "city_admin"]);
    let status = |(status, _, _): (u16, Option<String>, Value)| status;
    // Client A spends its allowance; the proxy's own address is not what is counted.
    assert_eq!(
        status(post_forwarded(&app, &admin, "198.51.100.1", json!({ "code": CODES[0] })).await),
        200
    );
    assert_eq!(
        status(post_forwarded(&app, &admin, "198.51.100.1", json!({ "code": CODES[1] })).await),
        200
    );
    let (code, _, response) = post_forwarded(&app, &admin, "198.51.100.1", json!({ "code": CODES[2] })).await;
    assert_eq!(code, 429, "{response}");
    assert_eq!(error_code(&response), "RATE_LIMITED");
    // Client B, behind the same proxy, is not locked out by A.
    assert_eq!(
        status(post_forwarded(&app, &admin, "198.51.100.2, 10.1.2.3", json!({ "code": CODES[2] })).await),
        200
    );
    // A forging an address in front of the one the proxy appended is still A.
    let (code, _, response) =
        post_forwarded(&app, &admin, "203.0.113.50, 198.51.100.1", json!({ "code": CODES[3] })).await;
    assert_eq!(code, 429, "{response}");
    assert_eq!(app.panics(), 0);
    app.stop().await;

    // An entry that is neither an address nor a network stops the service from starting.
    let output = std::process::Command::new(binary())
        .args(["serve", "--trusted-proxy", "proxy.local", "--listen", "127.0.0.1:0"])
        .env("ANQUAN_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("trusted proxy \"proxy.local\""),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
