//! `spawn_app`: the binary on a fresh data directory (and a fresh PostgreSQL database when
//! asked), a GraphQL client, and token minting through `anquan token`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use futures::{SinkExt, StreamExt};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The signing secret every spawned service and minted token share.
const JWT_SECRET: &str = "black-box-tests-secret-of-at-least-32-bytes";
/// How long the service may take to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a spawned service keeps its events and read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A running service.
pub(crate) struct TestApp {
    pub(crate) base_url: String,
    pub(crate) client: reqwest::Client,
    data_dir: tempfile::TempDir,
    child: Child,
    /// The PostgreSQL database made for this service, dropped by `stop`.
    database: Option<String>,
    /// The service's last log lines, printed when a test fails with the service running.
    log: ServiceLog,
}

/// The last [`SERVICE_LOG_KEPT`] lines a service logged, and how many of all its lines reported
/// a panic.
type ServiceLog = Arc<Mutex<KeptLog>>;

#[derive(Default)]
struct KeptLog {
    lines: VecDeque<String>,
    panics: usize,
}
const SERVICE_LOG_KEPT: usize = 400;

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            eprintln!("--- the service's last {} log lines ---", log.lines.len());
            for line in &log.lines {
                eprintln!("{line}");
            }
        }
    }
}

/// The backends to run a black-box test on: SQLite always, PostgreSQL when
/// `ANQUAN_TEST_POSTGRES_URL` is set (and required when `ANQUAN_TEST_REQUIRE_POSTGRES=1`).
pub(crate) fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if std::env::var("ANQUAN_TEST_POSTGRES_URL").is_ok() {
        backends.push(Backend::Postgres);
    } else if std::env::var("ANQUAN_TEST_REQUIRE_POSTGRES").is_ok_and(|value| value == "1") {
        panic!("ANQUAN_TEST_REQUIRE_POSTGRES=1 but ANQUAN_TEST_POSTGRES_URL is not set");
    } else {
        eprintln!("skipping the PostgreSQL run: ANQUAN_TEST_POSTGRES_URL is not set");
    }
    backends
}

/// The `anquan` binary beside this test (`target/<profile>/anquan`), built from the sources
/// once per test process: `cargo test` builds the tests but not the other packages' binaries,
/// so a binary left from an earlier build would otherwise be tested instead of the code.
pub(crate) fn binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap();
            let mut build = std::process::Command::new(env!("CARGO"));
            // With the controllable clock compiled in: still refused unless a test asks for
            // it (`ANQUAN_TEST_CLOCK` with `ANQUAN_TEST_MODE=1`, see `test_clock.rs`).
            build.args([
                "build",
                "-p",
                "anquan-cli",
                "--bin",
                "anquan",
                "--features",
                "test-clock",
            ]);
            if profile_dir.file_name().is_some_and(|name| name == "release") {
                build.arg("--release");
            }
            let status = build.status().unwrap();
            assert!(status.success(), "building the anquan binary failed");
            profile_dir.join(format!("anquan{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

pub(crate) async fn admin_sql(sql: &str) {
    let admin_url = std::env::var("ANQUAN_TEST_POSTGRES_URL").unwrap();
    let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// Creates a fresh PostgreSQL database; returns its name and URL.
async fn fresh_database() -> (String, String) {
    let admin_url = std::env::var("ANQUAN_TEST_POSTGRES_URL").unwrap();
    let name = format!("anquan_it_{}", uuid::Uuid::new_v4().simple());
    admin_sql(&format!("CREATE DATABASE {name}")).await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    (name, url)
}

/// Starts the service with extra arguments and waits until it listens.
pub(crate) async fn spawn_app(backend: Backend, extra_args: &[&str]) -> TestApp {
    spawn_app_with_env(backend, extra_args, &[]).await
}

/// [`spawn_app`] with extra environment variables.
pub(crate) async fn spawn_app_with_env(backend: Backend, extra_args: &[&str], envs: &[(&str, &str)]) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let database = if backend == Backend::Postgres {
        Some(fresh_database().await)
    } else {
        None
    };
    start(data_dir, database, extra_args, envs).await
}

/// Starts a second node on the PostgreSQL database of `app` (the same URL), with its own empty
/// data directory and extra arguments; stopping it leaves the database to `app`.
pub(crate) async fn spawn_beside(app: &TestApp, extra_args: &[&str]) -> TestApp {
    spawn_beside_with_env(app, extra_args, &[]).await
}

/// [`spawn_beside`] with extra environment variables.
pub(crate) async fn spawn_beside_with_env(app: &TestApp, extra_args: &[&str], envs: &[(&str, &str)]) -> TestApp {
    let url = app
        .database_url()
        .expect("a node beside another needs the other's PostgreSQL database");
    let mut args = vec!["--database", url.as_str()];
    args.extend_from_slice(extra_args);
    start(tempfile::tempdir().unwrap(), None, &args, envs).await
}

/// Starts the service on a data directory (and PostgreSQL database: name and URL) that may
/// hold a previous run's store.
async fn start(
    data_dir: tempfile::TempDir,
    database: Option<(String, String)>,
    extra_args: &[&str],
    envs: &[(&str, &str)],
) -> TestApp {
    let mut command = Command::new(binary());
    command
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--graphiql",
            "false",
        ])
        .arg("--data-dir")
        .arg(data_dir.path())
        .args(extra_args)
        .env("ANQUAN_JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "info")
        .env_remove("ANQUAN_DATABASE_URL")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some((_, url)) = &database {
        command.arg("--database").arg(url);
    }
    let child = command.spawn().unwrap();
    let mut app = TestApp::listening(child, data_dir).await;
    app.database = database.map(|(name, _)| name);
    app
}

fn keep(log: &ServiceLog, line: &str) {
    let mut log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if line.contains("panicked") {
        log.panics += 1;
    }
    if log.lines.len() == SERVICE_LOG_KEPT {
        log.lines.pop_front();
    }
    log.lines.push_back(line.to_owned());
}

impl TestApp {
    /// Waits until a service started with its JSON log on a piped stderr (by `spawn_app`, or by a
    /// test that needs other environment) listens; keeps draining its log and its last lines.
    pub(crate) async fn listening(mut child: Child, data_dir: tempfile::TempDir) -> TestApp {
        let stderr = child.stderr.take().unwrap();
        let log = ServiceLog::default();
        let kept = log.clone();
        let address = tokio::time::timeout(STARTUP_TIMEOUT, async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Some(line) = lines.next_line().await.unwrap() {
                keep(&kept, &line);
                let Ok(log) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(address) = log["fields"]["address"].as_str() {
                    let address = address.to_owned();
                    // Keep draining the log so the service never blocks on a full pipe.
                    tokio::spawn(async move {
                        while let Ok(Some(line)) = lines.next_line().await {
                            keep(&kept, &line);
                        }
                    });
                    return address;
                }
            }
            panic!("the service exited before listening");
        })
        .await
        .expect("the service did not start in time");
        TestApp {
            base_url: format!("http://{address}"),
            client: reqwest::Client::new(),
            data_dir,
            child,
            database: None,
            log,
        }
    }

    /// The PostgreSQL URL of the service's database, when it runs on one.
    pub(crate) fn database_url(&self) -> Option<String> {
        let name = self.database.as_ref()?;
        let admin_url = std::env::var("ANQUAN_TEST_POSTGRES_URL").unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Some(format!("{base}/{name}"))
    }

    /// Runs SQL on the service's store from outside the service, as an operator (or an
    /// accident) would: the SQLite file in the data directory, or its PostgreSQL database.
    pub(crate) async fn store_sql(&self, sql: &str) {
        match self.database_url() {
            Some(url) => {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client.batch_execute(sql).await.unwrap();
            }
            None => {
                let path = self.data_dir.path().join("anquan.sqlite");
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let connection = rusqlite::Connection::open(path).unwrap();
                    connection.busy_timeout(Duration::from_secs(10)).unwrap();
                    connection.execute_batch(&sql).unwrap();
                })
                .await
                .unwrap();
            }
        }
    }

    /// Whether the service process is still running.
    pub(crate) fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Stops the service and starts it again on the same store.
    pub(crate) async fn restart(self) -> TestApp {
        self.restart_with_env(&[]).await
    }

    /// [`TestApp::restart`] with extra environment variables.
    pub(crate) async fn restart_with_env(mut self, envs: &[(&str, &str)]) -> TestApp {
        let _ = self.child.kill().await;
        let database_url = self.database_url();
        let database = self.database.take().zip(database_url);
        let data_dir = tempfile::TempDir::new().unwrap();
        let data_dir = std::mem::replace(&mut self.data_dir, data_dir);
        start(data_dir, database, &[], envs).await
    }

    /// Kills the service at once (SIGKILL): no drain, no lease released.
    #[allow(dead_code, reason = "the cluster tests use it")]
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Asks the service to stop (SIGTERM) and waits for it; returns its exit status.
    #[allow(dead_code, reason = "the cluster tests use it")]
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        self.child.wait().await.unwrap()
    }

    /// The last lines the service logged (at most the last 400).
    pub(crate) fn log_lines(&self) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        log.lines.iter().cloned().collect()
    }

    /// The sum of the service's `/metrics` series whose line starts with `prefix` (a name and,
    /// to pick some of its series, the start of their labels); 0 when none is rendered yet.
    pub(crate) async fn metric_sum(&self, prefix: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// How many lines the service has logged that report a panic.
    pub(crate) fn panics(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .panics
    }

    /// The service's data directory, for the operator commands.
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Mints a token with `anquan token`.
    pub(crate) fn token(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(binary())
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env("ANQUAN_JWT_SECRET", JWT_SECRET)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Sends a GraphQL request; returns the whole JSON response.
    pub(crate) async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Sends a GraphQL multipart request with one file bound to `$file`.
    pub(crate) async fn graphql_upload(
        &self,
        token: &str,
        query: &str,
        variables: Value,
        file: Vec<u8>,
    ) -> (u16, Value) {
        let operations = json!({ "query": query, "variables": variables });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(file)
                    .file_name("record.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            );
        let response = self
            .client
            .post(format!("{}/graphql", self.base_url))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Stops the service.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some(name) = &self.database {
            admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

/// The `extensions.code` of the first error, panicking with the response if there is none.
pub(crate) fn error_code(response: &Value) -> String {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {response}"))
        .to_owned()
}

/// The response's data, panicking with the errors if there are any.
pub(crate) fn data(response: &Value) -> &Value {
    assert!(
        response.get("errors").is_none_or(Value::is_null),
        "unexpected errors: {response}"
    );
    &response["data"]
}

/// The S3-compatible server's URL from `ANQUAN_TEST_S3_ENDPOINT`, or `None` (with the reason
/// printed) when the S3 tests may be skipped; with `ANQUAN_TEST_REQUIRE_S3=1` a missing
/// endpoint fails the test.
pub(crate) fn s3_endpoint() -> Option<String> {
    match std::env::var("ANQUAN_TEST_S3_ENDPOINT") {
        Ok(endpoint) => Some(endpoint),
        Err(_) if std::env::var("ANQUAN_TEST_REQUIRE_S3").is_ok_and(|value| value == "1") => {
            panic!("ANQUAN_TEST_REQUIRE_S3=1 but ANQUAN_TEST_S3_ENDPOINT is not set")
        }
        Err(_) => {
            eprintln!("skipping the S3 run: ANQUAN_TEST_S3_ENDPOINT is not set");
            None
        }
    }
}

/// Creates a fresh bucket on the S3 server with a plain PUT (the test server takes unsigned
/// requests; object_store cannot create buckets); returns its name.
pub(crate) async fn fresh_bucket(endpoint: &str) -> String {
    let bucket = format!("anquan-it-{}", uuid::Uuid::new_v4().simple());
    let response = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|error| panic!("the S3 server at {endpoint} does not answer: {error}"));
    assert!(
        response.status().is_success(),
        "creating bucket {bucket}: {}",
        response.status()
    );
    bucket
}

const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [usize; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// A valid unified social credit code: 17 characters and the GB 32100 check character.
pub(crate) fn credit_code(serial: usize) -> String {
    let first = format!("91330481MA2R{serial:05}");
    let sum: usize = first
        .bytes()
        .zip(WEIGHTS)
        .map(|(byte, weight)| ALPHABET.iter().position(|c| *c == byte).unwrap() * weight)
        .sum();
    format!("{first}{}", ALPHABET[(31 - sum % 31) % 31] as char)
}

pub(crate) fn copy_rule_set(from: &Path, to: &Path, edit: impl Fn(&str, String) -> String) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(to.join(&name), edit(&name, text)).unwrap();
    }
}

/// Rule sets v1 (the repository's) and v2 (drills need a record, whatever the period, and G02
/// reads that requirement's state, since there is no drill cadence to keep) in a temporary
/// rules root.
pub(crate) fn rules_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../projections/v1");
    copy_rule_set(&v1, &root.path().join("v1"), |_, text| text);
    copy_rule_set(&v1, &root.path().join("v2"), |name, text| {
        match name {
        "ruleset.toml" => text.replacen("version = \"v1\"", "version = \"v2\"", 1).replacen(
            "title = \"",
            "title = \"v2: drills need a record; ",
            1,
        ),
        "indicators.toml" => {
            let periodic = "[indicators.requirements.evidence]\nkind = \"periodic\"\ncadence = [\n    { when = { any_of = [{ flag = \"high_risk_industry\" }, { flag = \"crowded_place\" }, { class = \"key_supervised\" }] }, every = \"half_yearly\" },\n    { every = \"yearly\" },\n]";
            let start = text.find("code = \"R10.drill\"").unwrap();
            let at = start + text[start..].find(periodic).unwrap();
            format!(
                "{}[indicators.requirements.evidence]\nkind = \"review\"{}",
                &text[..at],
                &text[at + periodic.len()..]
            )
        }
        // G02 keeps R10.drill's cadence, which v2 no longer has: it reads the state instead (a
        // snapshot measure, so it counts no completed periods either).
        "metrics.toml" => text.replacen(
            "covers = \"completed_periods\"\nunit = \"percent\"\nmeasure = \"cadence_met\"\nrequirement = \"R10.drill\"",
            "unit = \"percent\"\nmeasure = \"requirement_satisfied\"\nrequirement = \"R10.drill\"\ndenominator_of = \"applicable\"",
            1,
        ),
        _ => text,
    }
    });
    root
}

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a graphql-transport-ws connection and sends the token in `connection_init`; returns
/// it once acknowledged.
pub(crate) async fn open_socket(app: &TestApp, token: &str) -> Socket {
    let url = format!("{}/graphql/ws", app.base_url.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let ack = next_message(&mut socket, StdDuration::from_secs(10)).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

/// [`open_socket`], then starts the subscriptions (id, document).
pub(crate) async fn subscribe(app: &TestApp, token: &str, subscriptions: &[(&str, &str)]) -> Socket {
    let mut socket = open_socket(app, token).await;
    for (id, query) in subscriptions {
        let subscribe = json!({ "id": id, "type": "subscribe", "payload": { "query": query } });
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
    }
    // The server handles a connection's messages in order: once a query sent after the
    // subscriptions completes, they have started, and no push is missed for starting late.
    let probe = json!({ "id": "subscribed", "type": "subscribe", "payload": { "query": "{ __typename }" } });
    socket.send(Message::text(probe.to_string())).await.unwrap();
    loop {
        let message = next_message(&mut socket, StdDuration::from_secs(10)).await;
        assert_ne!(message["type"], "error", "{message}");
        if message["id"] == "subscribed" && message["type"] == "complete" {
            return socket;
        }
    }
}

/// The next JSON message (pings answered and skipped), or a panic after `timeout`.
pub(crate) async fn next_message(socket: &mut Socket, timeout: StdDuration) -> Value {
    next_message_within(socket, timeout)
        .await
        .unwrap_or_else(|| panic!("no subscription message within {timeout:?}"))
}

/// The next JSON message (pings answered and skipped), or `None` after `timeout`.
pub(crate) async fn next_message_within(socket: &mut Socket, timeout: StdDuration) -> Option<Value> {
    tokio::time::timeout(timeout, async {
        loop {
            match socket.next().await.unwrap().unwrap() {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap();
                    if message["type"] == "ping" {
                        socket
                            .send(Message::text(json!({"type": "pong"}).to_string()))
                            .await
                            .unwrap();
                        continue;
                    }
                    return message;
                }
                Message::Ping(payload) => socket.send(Message::Pong(payload)).await.unwrap(),
                _ => {}
            }
        }
    })
    .await
    .ok()
}

/// The next `next` message of subscription `id`, skipping others.
pub(crate) async fn next_of(socket: &mut Socket, id: &str, timeout: StdDuration) -> Value {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let message = next_message_within(socket, left)
            .await
            .unwrap_or_else(|| panic!("no \"{id}\" message within {timeout:?}"));
        assert_ne!(message["type"], "error", "{message}");
        if message["id"] == id && message["type"] == "next" {
            return message["payload"]["data"].clone();
        }
    }
}
