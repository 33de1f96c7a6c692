//! Security of uploads and roles over HTTP (issue #17). A refused upload leaves no bytes in the
//! blob store: not for a caller outside the command's scope, not for a request over the file
//! count, not for a command a rule refuses, not over a quota; `storeAgencyFile` is for agencies
//! and the city admin. Auditors and analysts read in their scope and are refused every mutation.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::agency_flow::register_agency;
use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app};

const UPLOAD: &str = "mutation($input: UploadDocumentInput!, $file: Upload!) {
  uploadDocument(input: $input, file: $file) { documentId streamVersion } }";
const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!) {
  recordInspection(input: $input, documents: $documents, photos: $photos) { streamVersion } }";
const RECORD_HAZARD: &str = "mutation($input: RecordHazardInput!, $photos: [Upload!]!) {
  recordHazard(input: $input, photos: $photos) { streamVersion } }";
const SUBMIT: &str = "mutation($input: SubmitRectificationInput!, $photos: [Upload!]!) {
  submitRectification(input: $input, photos: $photos) { streamVersion } }";
const STORE_AGENCY_FILE: &str = "mutation($file: Upload!) { storeAgencyFile(file: $file) { sha256 sizeBytes } }";
const REPORT_SERVICE: &str = "mutation($input: ReportServiceInput!, $file: Upload!) {
  reportService(input: $input, reportFile: $file) { reportId } }";

/// The quota each enterprise and agency gets in these tests, in bytes.
const QUOTA: usize = 100;

/// Sends a GraphQL multipart request binding each file to a variable path (`file`,
/// `photos.3`); the variables must hold a `null` at each.
pub(crate) async fn send_files(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
    files: &[(String, Vec<u8>)],
) -> Value {
    let operations = json!({ "query": query, "variables": variables });
    let mut map = serde_json::Map::new();
    for (index, (path, _)) in files.iter().enumerate() {
        map.insert(index.to_string(), json!([format!("variables.{path}")]));
    }
    let mut form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", Value::Object(map).to_string());
    for (index, (_, bytes)) in files.iter().enumerate() {
        form = form.part(
            index.to_string(),
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(format!("file-{index}.jpg"))
                .mime_str("image/jpeg")
                .unwrap(),
        );
    }
    let response = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// `count` files of `size` bytes each, distinct, bound to `name.0`, `name.1`, …
fn files(name: &str, tag: &str, count: usize, size: usize) -> (Value, Vec<(String, Vec<u8>)>) {
    let files = (0..count)
        .map(|index| {
            let mut bytes = format!("{tag}-{index}-").into_bytes();
            bytes.resize(size.max(bytes.len()), b'x');
            (format!("{name}.{index}"), bytes)
        })
        .collect();
    (Value::Array(vec![Value::Null; count]), files)
}

/// One file bound to `file`.
fn one_file(tag: &str, size: usize) -> Vec<(String, Vec<u8>)> {
    let mut bytes = format!("{tag}-").into_bytes();
    bytes.resize(size.max(bytes.len()), b'x');
    vec![("file".to_owned(), bytes)]
}

/// Every file's content under the data directory's `blobs/`.
fn stored_blobs(app: &TestApp) -> Vec<Vec<u8>> {
    fn walk(dir: &std::path::Path, found: &mut Vec<Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(std::fs::read(&path).unwrap());
            }
        }
    }
    let mut found = Vec::new();
    walk(&app.data_dir().join("blobs"), &mut found);
    found
}

/// Asserts that none of the files' bytes is stored.
fn assert_none_stored(app: &TestApp, files: &[(String, Vec<u8>)], what: &str) {
    let stored = stored_blobs(app);
    for (path, bytes) in files {
        assert!(!stored.contains(bytes), "{what}: the refused upload {path} was stored");
    }
}

fn assert_stored(app: &TestApp, files: &[(String, Vec<u8>)], what: &str) {
    let stored = stored_blobs(app);
    for (path, bytes) in files {
        assert!(
            stored.contains(bytes),
            "{what}: the accepted upload {path} is not stored"
        );
    }
}

#[tokio::test]
async fn uploads_are_stored_only_once_authorised_decided_and_within_limits_and_quotas() {
    for backend in backends() {
        uploads_flow(backend).await;
    }
}

async fn uploads_flow(backend: Backend) {
    let quota = QUOTA.to_string();
    let app = spawn_app(
        backend,
        &[
            "--upload-quota-enterprise-bytes",
            &quota,
            "--upload-quota-agency-bytes",
            &quota,
        ],
    )
    .await;
    let admin = app.token(&["--role", "city_admin"]);
    let mine = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let theirs = register(&app, &admin, "91330100799655058B", "长安").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &mine]);
    let other_inspector = app.token(&["--role", "town_inspector", "--town", "长安"]);
    let agency_id = register_agency(&app, &admin).await;
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);
    let document =
        |enterprise: &str| json!({ "enterpriseId": enterprise, "requirement": "R10.plan", "title": "应急预案" });

    // Into another enterprise's file: FORBIDDEN, and the bytes are not kept.
    let file = one_file("foreign-document", 20);
    let refused = send_files(
        &app,
        &owner,
        UPLOAD,
        json!({ "input": document(&theirs), "file": null }),
        &file,
    )
    .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_none_stored(&app, &file, "uploadDocument into another enterprise");

    // An inspector of another town records an inspection with documents: refused, nothing kept.
    let (documents, document_files) = files("documents", "foreign-inspection", 2, 20);
    let inspection = json!({ "enterpriseId": mine, "kind": "ON_SITE", "inspectedAt": Utc::now() - Duration::minutes(5),
        "inspectors": ["王检查"], "hazards": [] });
    let refused = send_files(
        &app,
        &other_inspector,
        RECORD_INSPECTION,
        json!({ "input": inspection, "documents": documents, "photos": [] }),
        &document_files,
    )
    .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_none_stored(&app, &document_files, "recordInspection outside the inspector's town");

    // A rectification of another enterprise's hazard.
    let (photos, photo_files) = files("photos", "foreign-rectification", 1, 20);
    let rectification =
        json!({ "enterpriseId": theirs, "hazardId": uuid::Uuid::now_v7().to_string(), "text": "已整改" });
    let refused = send_files(
        &app,
        &owner,
        SUBMIT,
        json!({ "input": rectification, "photos": photos }),
        &photo_files,
    )
    .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_none_stored(&app, &photo_files, "submitRectification for another enterprise");

    // Too many files: refused before any is stored, even for a caller who may record.
    let (photos, photo_files) = files("photos", "too-many-photos", 101, 8);
    let hazard = json!({ "enterpriseId": mine, "hazard": { "category": "FIRE", "level": "GENERAL", "description": "消防通道堵塞" } });
    let refused = send_files(
        &app,
        &owner,
        RECORD_HAZARD,
        json!({ "input": hazard, "photos": photos }),
        &photo_files,
    )
    .await;
    assert_eq!(error_code(&refused), "TOO_MANY_FILES", "{refused}");
    assert_none_stored(&app, &photo_files, "recordHazard with 101 photos");
    let (documents, document_files) = files("documents", "too-many-documents", 51, 8);
    let refused = send_files(
        &app,
        &admin,
        RECORD_INSPECTION,
        json!({ "input": inspection, "documents": documents, "photos": [] }),
        &document_files,
    )
    .await;
    assert_eq!(error_code(&refused), "TOO_MANY_FILES", "{refused}");
    assert_none_stored(&app, &document_files, "recordInspection with 51 documents");

    // A command a rule refuses after authorisation (an unknown requirement) stores nothing.
    let file = one_file("unknown-requirement", 20);
    let unknown = json!({ "enterpriseId": mine, "requirement": "R10.nothing", "title": "x" });
    let refused = send_files(&app, &owner, UPLOAD, json!({ "input": unknown, "file": null }), &file).await;
    assert!(refused["errors"][0]["extensions"]["code"].is_string(), "{refused}");
    assert_none_stored(&app, &file, "uploadDocument refused by a rule");

    // storeAgencyFile is for agencies and the city admin only.
    let file = one_file("enterprise-agency-file", 20);
    let refused = send_files(&app, &owner, STORE_AGENCY_FILE, json!({ "file": null }), &file).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_none_stored(&app, &file, "storeAgencyFile by an enterprise");

    // A service report for an agency the caller does not act for.
    let file = one_file("foreign-service-report", 20);
    let report = json!({ "agencyId": agency_id, "contractId": uuid::Uuid::now_v7().to_string(),
        "visitedAt": Utc::now() - Duration::hours(1), "staffIds": [], "findings": "无" });
    let refused = send_files(
        &app,
        &owner,
        REPORT_SERVICE,
        json!({ "input": report, "file": null }),
        &file,
    )
    .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_none_stored(&app, &file, "reportService by an enterprise");

    // The enterprise's quota: 60 bytes fit, 60 more do not, the same content again costs nothing.
    let first = one_file("quota-first", 60);
    let accepted = send_files(
        &app,
        &owner,
        UPLOAD,
        json!({ "input": document(&mine), "file": null }),
        &first,
    )
    .await;
    data(&accepted);
    assert_stored(&app, &first, "an upload within the quota");
    let second = one_file("quota-second", 60);
    let refused = send_files(
        &app,
        &owner,
        UPLOAD,
        json!({ "input": document(&mine), "file": null }),
        &second,
    )
    .await;
    assert_eq!(error_code(&refused), "QUOTA_EXCEEDED", "{refused}");
    assert_none_stored(&app, &second, "an upload over the enterprise's quota");
    let again = send_files(
        &app,
        &owner,
        UPLOAD,
        json!({ "input": document(&mine), "file": null }),
        &first,
    )
    .await;
    data(&again);
    // The city's own uploads into the file do not count against the enterprise.
    let by_city = one_file("quota-city", 60);
    data(
        &send_files(
            &app,
            &admin,
            UPLOAD,
            json!({ "input": document(&mine), "file": null }),
            &by_city,
        )
        .await,
    );
    assert_stored(&app, &by_city, "the city's upload");

    // The agency's quota, through storeAgencyFile.
    let first = one_file("agency-first", 60);
    let stored = send_files(&app, &agency, STORE_AGENCY_FILE, json!({ "file": null }), &first).await;
    assert_eq!(
        data(&stored)["storeAgencyFile"]["sizeBytes"],
        "60",
        "Int64 is a decimal string"
    );
    assert_stored(&app, &first, "an agency file within the quota");
    let second = one_file("agency-second", 60);
    let refused = send_files(&app, &agency, STORE_AGENCY_FILE, json!({ "file": null }), &second).await;
    assert_eq!(error_code(&refused), "QUOTA_EXCEEDED", "{refused}");
    assert_none_stored(&app, &second, "an agency file over the quota");

    assert_eq!(app.panics(), 0);
    app.stop().await;
}

const ENTERPRISE_HISTORY: &str = "query($id: ID!, $asOf: DateTime) { enterprise(id: $id, asOf: $asOf) {
  name compliance { summary } history { nodes { version eventType } } verification { intact } } }";
const ENTERPRISES: &str = "query($town: String) { enterprises(town: $town) { nodes { id } } }";
const CITY_METRICS: &str = "query { cityMetrics { town } }";
const REGISTER: &str =
    "mutation($input: RegisterEnterpriseInput!) { registerEnterprise(input: $input) { streamVersion } }";
const REVIEW: &str = "mutation($input: ReviewDocumentInput!) { reviewDocument(input: $input) { streamVersion } }";
const ROTATE: &str = "mutation($id: ID!) { rotatePublicToken(enterpriseId: $id) { token } }";
const REGISTER_AGENCY: &str =
    "mutation($profile: AgencyProfileInput!) { registerAgency(profile: $profile) { agencyId } }";
const GRADE: &str = "mutation($input: GradeAgencyInput!) { gradeAgency(input: $input) { agencyId } }";

#[tokio::test]
async fn auditors_and_analysts_read_in_their_scope_and_are_refused_every_write() {
    for backend in backends() {
        readers_flow(backend).await;
    }
}

async fn readers_flow(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let mine = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let theirs = register(&app, &admin, "91330100799655058B", "长安").await;
    let agency_id = register_agency(&app, &admin).await;
    let auditor = app.token(&["--role", "auditor"]);
    let town_auditor = app.token(&["--role", "auditor", "--town", "许村"]);
    let analyst = app.token(&["--role", "analyst"]);

    // Auditors replay and verify any enterprise in their scope, as of any instant.
    let as_of = Utc::now();
    for (token, id) in [(&auditor, &mine), (&auditor, &theirs), (&town_auditor, &mine)] {
        let read = app
            .graphql(Some(token), ENTERPRISE_HISTORY, json!({ "id": id, "asOf": as_of }))
            .await;
        let enterprise = &data(&read)["enterprise"];
        assert_eq!(enterprise["verification"]["intact"], true, "{read}");
        assert!(!enterprise["history"]["nodes"].as_array().unwrap().is_empty(), "{read}");
    }
    let refused = app
        .graphql(Some(&town_auditor), ENTERPRISE_HISTORY, json!({ "id": theirs }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let listed = app.graphql(Some(&town_auditor), ENTERPRISES, json!({})).await;
    assert_eq!(
        data(&listed)["enterprises"]["nodes"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let refused = app
        .graphql(Some(&town_auditor), ENTERPRISES, json!({ "town": "长安" }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");

    // Analysts read statistics city-wide, and no enterprise's file.
    data(&app.graphql(Some(&analyst), CITY_METRICS, json!({})).await);
    let refused = app
        .graphql(Some(&analyst), ENTERPRISE_HISTORY, json!({ "id": mine }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let refused = app.graphql(Some(&analyst), ENTERPRISES, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");

    // Every write is refused with FORBIDDEN, for a known or an unknown target alike.
    let unknown = uuid::Uuid::now_v7().to_string();
    let profile = json!({ "name": "某机构", "licence": "APJ-1", "serviceScope": [], "serviceStandards": "",
        "feeBand": { "minYuan": 1, "maxYuan": 2 }, "contactPhone": "0573-1" });
    let register_input = json!({ "name": "某公司", "creditCode": "91330481MA2D000017", "town": "许村", "industry": "家纺",
        "profile": { "staffCount": 1, "annualRevenue10kYuan": 1, "flags": [] } });
    for reader in [&auditor, &town_auditor, &analyst] {
        let writes = [
            (REGISTER, json!({ "input": register_input })),
            (
                REVIEW,
                json!({ "input": { "enterpriseId": mine, "documentId": unknown, "decision": "APPROVE" } }),
            ),
            (ROTATE, json!({ "id": mine })),
            (ROTATE, json!({ "id": unknown })),
            (REGISTER_AGENCY, json!({ "profile": profile })),
            (
                GRADE,
                json!({ "input": { "agencyId": agency_id, "halfYear": "2026-H1", "grade": "A" } }),
            ),
        ];
        for (query, variables) in writes {
            let refused = app.graphql(Some(reader), query, variables).await;
            assert_eq!(error_code(&refused), "FORBIDDEN", "{query}: {refused}");
        }
        let file = one_file("reader-upload", 20);
        let refused = send_files(
            &app,
            reader,
            UPLOAD,
            json!({ "input": { "enterpriseId": mine,
            "requirement": "R10.plan", "title": "x" }, "file": null }),
            &file,
        )
        .await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
        let refused = send_files(&app, reader, STORE_AGENCY_FILE, json!({ "file": null }), &file).await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
        assert_none_stored(&app, &file, "an upload by a read-only role");
    }
    app.stop().await;
}

// ----- the role matrix -------------------------------------------------------------------------

/// The columns of `docs/roles.md`, in order.
const MATRIX_ROLES: [&str; 10] = [
    "anonymous",
    "city_admin",
    "town_officer",
    "city_inspector",
    "town_inspector",
    "enterprise",
    "agency",
    "auditor",
    "auditor_town",
    "analyst",
];

fn repository_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// The fields of one root type of `schema.graphql`.
fn root_fields(schema: &str, root: &str) -> Vec<String> {
    let start = schema
        .find(&format!("type {root} {{"))
        .unwrap_or_else(|| panic!("no type {root} in schema.graphql"));
    let body = &schema[start..];
    let body = &body[..body.find("\n}").unwrap()];
    body.lines()
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_prefix('\t')?;
            let name: String = line.chars().take_while(char::is_ascii_alphanumeric).collect();
            let rest = &line[name.len()..];
            (!name.is_empty() && (rest.starts_with('(') || rest.starts_with(':'))).then_some(name)
        })
        .collect()
}

/// The rows of `docs/roles.md`: field → role → `allowed` or `refused`.
fn matrix(markdown: &str) -> std::collections::BTreeMap<String, Vec<(String, bool)>> {
    let mut rows = std::collections::BTreeMap::new();
    let mut columns: Option<Vec<String>> = None;
    for line in markdown.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if !line.trim_start().starts_with('|') {
            continue;
        }
        if cells.first() == Some(&"field") {
            columns = Some(cells.iter().map(|cell| (*cell).to_owned()).collect());
            continue;
        }
        let Some(field) = cells.first().and_then(|cell| cell.strip_prefix('`')?.strip_suffix('`')) else {
            continue;
        };
        let columns = columns.as_ref().expect("a field row before the table's header");
        let mut row = Vec::new();
        for role in MATRIX_ROLES {
            let index = columns
                .iter()
                .position(|column| column == role)
                .unwrap_or_else(|| panic!("docs/roles.md has no column {role}"));
            let allowed = match cells.get(index).copied() {
                Some("allowed") => true,
                Some("refused") => false,
                other => panic!("docs/roles.md: {field} as {role} is {other:?}, not allowed or refused"),
            };
            row.push((role.to_owned(), allowed));
        }
        assert!(
            rows.insert(field.to_owned(), row).is_none(),
            "docs/roles.md lists {field} twice"
        );
    }
    rows
}

/// What the matrix walk acts on, made by the city admin, the agency and the enterprise.
struct Fixtures {
    enterprise_id: String,
    agency_id: String,
    staff_id: String,
    contract_id: String,
    report_id: String,
    hazard_id: String,
    document_id: String,
}

/// One call of a root field: the operation, its variables and its files.
struct Call {
    query: &'static str,
    variables: Value,
    files: Vec<(String, Vec<u8>)>,
}

fn call(query: &'static str, variables: Value) -> Call {
    Call {
        query,
        variables,
        files: Vec::new(),
    }
}

fn call_with_file(query: &'static str, variables: Value) -> Call {
    Call {
        query,
        variables,
        files: one_file(&format!("matrix-{}", uuid::Uuid::now_v7()), 32),
    }
}

fn profile_input() -> Value {
    json!({ "staffCount": 80, "annualRevenue10kYuan": 600, "flags": [] })
}

fn agency_profile() -> Value {
    json!({ "name": "海宁市某安全技术服务有限公司", "licence": "APJ-(浙)-002", "serviceScope": ["安全管家"],
        "serviceStandards": "每季度上门一次", "feeBand": { "minYuan": 3000, "maxYuan": 12000 }, "contactPhone": "0573-87000000" })
}

fn half_year() -> String {
    use chrono::Datelike as _;
    let now = Utc::now();
    format!("{}-H{}", now.year(), if now.month() <= 6 { 1 } else { 2 })
}

/// A plausible call of every root field, inside the fixtures' scope. A field without one fails
/// the walk, so a new field needs a call here as well as a row in `docs/roles.md`.
fn plausible_call(field: &str, fx: &Fixtures) -> Call {
    let enterprise = fx.enterprise_id.as_str();
    let agency = fx.agency_id.as_str();
    let now = Utc::now();
    match field {
        "enterprise" => call(
            "query($id: ID!) { enterprise(id: $id) { name } }",
            json!({ "id": enterprise }),
        ),
        "enterprises" => call("{ enterprises { nodes { id } } }", json!({})),
        "reviewQueue" => call("{ reviewQueue { nodes { id } } }", json!({})),
        "ruleSet" => call("{ ruleSet { __typename } }", json!({})),
        "agencyDirectory" => call("{ agencyDirectory { __typename } }", json!({})),
        "publicAgency" => call(
            "query($id: ID!) { publicAgency(id: $id) { __typename } }",
            json!({ "id": agency }),
        ),
        "publicStaffMember" => call(
            "query($id: ID!) { publicStaffMember(id: $id) { __typename } }",
            json!({ "id": fx.staff_id }),
        ),
        "agency" => call(
            "query($id: ID!) { agency(id: $id) { __typename } }",
            json!({ "id": agency }),
        ),
        "staffMember" => call(
            "query($id: ID!) { staffMember(id: $id) { __typename } }",
            json!({ "id": fx.staff_id }),
        ),
        "enterpriseServices" => call(
            "query($id: ID!) { enterpriseServices(enterpriseId: $id) { __typename } }",
            json!({ "id": enterprise }),
        ),
        "serviceCoverage" => call("{ serviceCoverage { enterprisesCovered } }", json!({})),
        "serviceContract" => call(
            "query($id: ID!, $contract: ID!) { serviceContract(agencyId: $id, contractId: $contract) { status } }",
            json!({ "id": agency, "contract": fx.contract_id }),
        ),
        "contractsAwaitingFiling" => call("{ contractsAwaitingFiling { id } }", json!({})),
        "agencyStatistics" => call(
            "query($id: ID!) { agencyStatistics(id: $id) { __typename } }",
            json!({ "id": agency }),
        ),
        "hazards" => call("{ hazards { nodes { id } } }", json!({})),
        "overdueQueue" => call("{ overdueQueue { nodes { id } } }", json!({})),
        "listedHazards" => call("{ listedHazards { nodes { id } } }", json!({})),
        "colourDistribution" => call("{ colourDistribution { red } }", json!({})),
        "supervisionPlan" => call(
            "query($end: DateTime!) { supervisionPlan(periodEnd: $end) { __typename } }",
            json!({ "end": now + Duration::days(30) }),
        ),
        "ruleSets" => call("{ ruleSets { version } }", json!({})),
        "ruleSetLog" => call("{ ruleSetLog { verification { intact } } }", json!({})),
        "metricCatalogue" => call("{ metricCatalogue { __typename } }", json!({})),
        "metricBreakdowns" => call("{ metricBreakdowns { __typename } }", json!({})),
        "townMetrics" => call("{ townMetrics(town: \"许村\") { town } }", json!({})),
        "allTownMetrics" => call("{ allTownMetrics { town } }", json!({})),
        "monthlyReports" => call("{ monthlyReports(year: 2026, town: \"许村\") { month } }", json!({})),
        "monthlyReport" => call("{ monthlyReport(month: \"2026-01\") { month } }", json!({})),
        "annualAssessment" => call("{ annualAssessment(year: 2025) { year } }", json!({})),
        "cityMetrics" => call("{ cityMetrics { town } }", json!({})),
        "townRanking" => call("{ townRanking(metric: \"A01\") { __typename } }", json!({})),
        "headlineRates" => call("{ headlineRates { __typename } }", json!({})),
        "health" => call("{ health { __typename } }", json!({})),
        "registerEnterprise" => call(
            "mutation($input: RegisterEnterpriseInput!) { registerEnterprise(input: $input) { streamVersion } }",
            json!({ "input": { "name": "某公司", "creditCode": "91330481MA2D000017", "town": "许村",
                "industry": "家纺", "profile": profile_input() } }),
        ),
        "changeEnterpriseProfile" => call(
            "mutation($input: ChangeEnterpriseProfileInput!) { changeEnterpriseProfile(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "name": "海宁市许村某家纺有限公司", "town": "许村",
                "industry": "家纺", "profile": profile_input() } }),
        ),
        // Effective tomorrow: refused (IN_FUTURE) once authorised, so the shared enterprise stays open.
        "closeEnterprise" => call(
            "mutation($input: CloseEnterpriseInput!) { closeEnterprise(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "kind": "SUSPENDED", "reason": "停业整顿",
                "effectiveAt": now + Duration::days(1) } }),
        ),
        "reopenEnterprise" => call(
            "mutation($input: ReopenEnterpriseInput!) { reopenEnterprise(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "reason": "恢复经营" } }),
        ),
        "uploadDocument" => call_with_file(
            UPLOAD,
            json!({ "input": { "enterpriseId": enterprise, "requirement": "R10.plan", "title": "应急预案" }, "file": null }),
        ),
        "reviewDocument" => call(
            "mutation($input: ReviewDocumentInput!) { reviewDocument(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "documentId": fx.document_id, "decision": "RETURN",
                "feedback": "盖章缺失" } }),
        ),
        "registerAgency" => call(
            "mutation($profile: AgencyProfileInput!) { registerAgency(profile: $profile) { agencyId } }",
            json!({ "profile": agency_profile() }),
        ),
        "changeAgencyProfile" => call(
            "mutation($id: ID!, $profile: AgencyProfileInput!) { changeAgencyProfile(agencyId: $id, profile: $profile) { agencyId } }",
            json!({ "id": agency, "profile": agency_profile() }),
        ),
        "reportAgencyStaff" => call(
            "mutation($id: ID!, $half: String!, $staff: [StaffMemberInput!]!) {
  reportAgencyStaff(agencyId: $id, halfYear: $half, staff: $staff) { agencyId } }",
            json!({ "id": agency, "half": half_year(), "staff": [{ "staffId": fx.staff_id, "name": "张伟", "qualifications": [] }] }),
        ),
        "proposeContract" => call(
            "mutation($input: ProposeContractInput!) { proposeContract(input: $input) { contractId } }",
            json!({ "input": { "agencyId": agency, "enterpriseId": enterprise, "validFrom": now - Duration::days(1),
                "validUntil": now + Duration::days(365), "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 5000 } }),
        ),
        "confirmContract" => call(
            "mutation($id: ID!, $contract: ID!) { confirmContract(agencyId: $id, contractId: $contract) { agencyId } }",
            json!({ "id": agency, "contract": fx.contract_id }),
        ),
        "rejectContract" => call(
            "mutation($id: ID!, $contract: ID!) { rejectContract(agencyId: $id, contractId: $contract, reason: \"不同意\") { agencyId } }",
            json!({ "id": agency, "contract": fx.contract_id }),
        ),
        "fileContract" => call(
            "mutation($id: ID!, $contract: ID!) { fileContract(agencyId: $id, contractId: $contract) { agencyId } }",
            json!({ "id": agency, "contract": fx.contract_id }),
        ),
        "terminateServiceContract" => call(
            "mutation($id: ID!, $contract: ID!) { terminateServiceContract(agencyId: $id, contractId: $contract, reason: \"到期\") { agencyId } }",
            json!({ "id": agency, "contract": fx.contract_id }),
        ),
        "storeAgencyFile" => call_with_file(STORE_AGENCY_FILE, json!({ "file": null })),
        "reportService" => call_with_file(
            REPORT_SERVICE,
            json!({ "input": { "agencyId": agency, "contractId": fx.contract_id, "visitedAt": now - Duration::hours(1),
                "staffIds": [fx.staff_id], "findings": "无" }, "file": null }),
        ),
        "rateService" => call(
            "mutation($id: ID!, $report: ID!) { rateService(agencyId: $id, reportId: $report, stars: 4) { agencyId } }",
            json!({ "id": agency, "report": fx.report_id }),
        ),
        "spotCheckServiceReport" => call(
            "mutation($id: ID!, $report: ID!) { spotCheckServiceReport(agencyId: $id, reportId: $report, qualified: true) { agencyId } }",
            json!({ "id": agency, "report": fx.report_id }),
        ),
        "recordAgencyComplaint" => call(
            "mutation($id: ID!) { recordAgencyComplaint(agencyId: $id, complaint: \"收费不透明\") { agencyId } }",
            json!({ "id": agency }),
        ),
        "warnAgency" => call(
            "mutation($id: ID!) { warnAgency(agencyId: $id, kind: WARNING_NOTICE, reason: \"报告迟交\") { agencyId } }",
            json!({ "id": agency }),
        ),
        "recordAgencyMisconduct" => call(
            "mutation($id: ID!) { recordAgencyMisconduct(agencyId: $id, kind: PERFUNCTORY_FINDING, reason: \"走过场\") { agencyId } }",
            json!({ "id": agency }),
        ),
        "gradeAgency" => call(
            "mutation($input: GradeAgencyInput!) { gradeAgency(input: $input) { agencyId } }",
            json!({ "input": { "agencyId": agency, "halfYear": half_year(), "grade": "B", "reason": "抽查" } }),
        ),
        "eraseDataSubject" => call(
            "mutation($subject: String!) { eraseDataSubject(subjectId: $subject, reason: \"本人申请删除\") { agencyId } }",
            json!({ "subject": format!("agency-{agency}/staff/{}", fx.staff_id) }),
        ),
        "takeAnchor" => call("mutation { takeAnchor { sequence } }", json!({})),
        "issueAnnualAssessment" => call(
            "mutation { issueAnnualAssessment(year: 2025, reason: \"重新评分\") { year } }",
            json!({}),
        ),
        "issueMonthlyReport" => call(
            "mutation { issueMonthlyReport(month: \"2026-01\", reason: \"补发\") { month } }",
            json!({}),
        ),
        "regradeAgency" => call(
            "mutation($input: RegradeAgencyInput!) { regradeAgency(input: $input) { agencyId } }",
            json!({ "input": { "agencyId": agency, "halfYear": half_year(), "grade": "C", "reason": "复核" } }),
        ),
        "setAgencyBlacklisted" => call(
            "mutation($id: ID!) { setAgencyBlacklisted(agencyId: $id, blacklisted: false, reason: \"复核\") { agencyId } }",
            json!({ "id": agency }),
        ),
        "recordInspection" => call(
            "mutation($input: RecordInspectionInput!) { recordInspection(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "kind": "ONLINE", "inspectedAt": now - Duration::minutes(5),
                "inspectors": ["王检查"], "hazards": [] } }),
        ),
        "recordHazard" => call(
            "mutation($input: RecordHazardInput!) { recordHazard(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazard": { "category": "FIRE", "level": "GENERAL",
                "description": "消防通道堵塞" } } }),
        ),
        "extendHazardDeadline" => call(
            "mutation($input: ExtendHazardDeadlineInput!) { extendHazardDeadline(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id,
                "deadline": now + Duration::days(400), "reason": "设备采购" } }),
        ),
        "confirmMajorHazard" => call(
            "mutation($input: ConfirmMajorHazardInput!) { confirmMajorHazard(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id, "note": "确认" } }),
        ),
        "listHazard" => call(
            "mutation($input: ListHazardInput!) { listHazard(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id, "documentNumber": "督〔2026〕1号",
                               "deadline": now + Duration::days(60), "productionSuspended": false } }),
        ),
        "reportListingProgress" => call(
            "mutation($input: ReportListingProgressInput!) { reportListingProgress(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id, "text": "整改中" } }),
        ),
        "requestListingLift" => call(
            "mutation($input: RequestListingLiftInput!) { requestListingLift(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id, "text": "申请摘牌" } }),
        ),
        "liftHazardListing" => call(
            "mutation($input: LiftHazardListingInput!) { liftHazardListing(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id, "note": "核查合格" } }),
        ),
        "spotCheckHazard" => call(
            "mutation($input: SpotCheckHazardInput!) { spotCheckHazard(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id, "failedBecause": "通道仍堵塞" } }),
        ),
        "submitRectification" => call(
            "mutation($input: SubmitRectificationInput!) { submitRectification(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id, "text": "已整改" } }),
        ),
        "verifyRectification" => call(
            "mutation($input: VerifyRectificationInput!) { verifyRectification(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "hazardId": fx.hazard_id,
                "rectificationId": uuid::Uuid::now_v7().to_string(), "decision": "RETURN", "reason": "照片不清" } }),
        ),
        "reportAccident" => call(
            "mutation($input: ReportAccidentInput!) { reportAccident(input: $input) { streamVersion } }",
            json!({ "input": { "enterpriseId": enterprise, "occurredAt": now - Duration::hours(2), "fatalities": 0,
                "description": "轻微烫伤" } }),
        ),
        "rotatePublicToken" => call(
            "mutation($id: ID!) { rotatePublicToken(enterpriseId: $id) { token } }",
            json!({ "id": enterprise }),
        ),
        other => panic!("no plausible call of the root field {other}: add one to security_roles.rs"),
    }
}

/// Sends a call as a role (no token for anonymous) and returns every error code.
async fn send(app: &TestApp, token: Option<&str>, call: &Call) -> (Value, Vec<String>) {
    let response = if call.files.is_empty() {
        app.graphql(token, call.query, call.variables.clone()).await
    } else {
        let operations = json!({ "query": call.query, "variables": call.variables });
        let mut form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string());
        form = form.part(
            "0",
            reqwest::multipart::Part::bytes(call.files[0].1.clone())
                .file_name("file.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
        let mut request = app.client.post(format!("{}/graphql", app.base_url)).multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    };
    let codes = response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["extensions"]["code"].as_str().unwrap_or("(none)").to_owned())
                .collect()
        })
        .unwrap_or_default();
    (response, codes)
}

#[test]
fn every_root_field_has_a_row_in_the_role_matrix() {
    let schema = repository_file("schema.graphql");
    let rows = matrix(&repository_file("docs/roles.md"));
    let mut fields = root_fields(&schema, "QueryRoot");
    fields.extend(root_fields(&schema, "MutationRoot"));
    assert!(
        fields.len() > 40,
        "schema.graphql's root types were not parsed: {fields:?}"
    );
    for field in &fields {
        assert!(
            rows.contains_key(field),
            "docs/roles.md has no row for the root field {field}"
        );
    }
    for field in rows.keys() {
        assert!(
            fields.contains(field),
            "docs/roles.md lists {field}, which is no root field"
        );
    }
}

#[tokio::test]
async fn every_cell_of_the_role_matrix_holds_over_http() {
    for backend in backends() {
        walk_matrix(backend).await;
    }
}

async fn walk_matrix(backend: Backend) {
    let schema = repository_file("schema.graphql");
    let rows = matrix(&repository_file("docs/roles.md"));
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise_id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let agency_id = register_agency(&app, &admin).await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &enterprise_id]);
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);

    // The fixtures: staff, a contract, a service report, a hazard and a record to act on.
    let staff_id = uuid::Uuid::now_v7().to_string();
    let mut fx = Fixtures {
        enterprise_id,
        agency_id,
        staff_id,
        contract_id: String::new(),
        report_id: String::new(),
        hazard_id: String::new(),
        document_id: String::new(),
    };
    let (_, codes) = send(&app, Some(&agency), &plausible_call("reportAgencyStaff", &fx)).await;
    assert!(codes.is_empty(), "{codes:?}");
    let (signed, _) = send(&app, Some(&agency), &plausible_call("proposeContract", &fx)).await;
    fx.contract_id = data(&signed)["proposeContract"]["contractId"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::contracts::confirm_and_file(&app, &fx.agency_id, &fx.contract_id, &fx.enterprise_id, "许村", None).await;
    let (reported, _) = send(&app, Some(&agency), &plausible_call("reportService", &fx)).await;
    fx.report_id = data(&reported)["reportService"]["reportId"]
        .as_str()
        .unwrap()
        .to_owned();
    let inspection = json!({ "input": { "enterpriseId": fx.enterprise_id, "kind": "ON_SITE",
        "inspectedAt": Utc::now() - Duration::minutes(10), "inspectors": ["王检查"],
        "hazards": [{ "category": "FIRE", "level": "GENERAL", "description": "消防通道堵塞" }] } });
    let inspected = app
        .graphql(
            Some(&admin),
            "mutation($input: RecordInspectionInput!) { recordInspection(input: $input) { hazardIds } }",
            inspection,
        )
        .await;
    fx.hazard_id = data(&inspected)["recordInspection"]["hazardIds"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (uploaded, _) = send(&app, Some(&owner), &plausible_call("uploadDocument", &fx)).await;
    fx.document_id = data(&uploaded)["uploadDocument"]["documentId"]
        .as_str()
        .unwrap()
        .to_owned();

    let tokens: Vec<(&str, Option<String>)> = vec![
        ("anonymous", None),
        ("city_admin", Some(admin.clone())),
        (
            "town_officer",
            Some(app.token(&["--role", "town_officer", "--town", "许村"])),
        ),
        ("city_inspector", Some(app.token(&["--role", "city_inspector"]))),
        (
            "town_inspector",
            Some(app.token(&["--role", "town_inspector", "--town", "许村"])),
        ),
        ("enterprise", Some(owner.clone())),
        ("agency", Some(agency.clone())),
        ("auditor", Some(app.token(&["--role", "auditor"]))),
        (
            "auditor_town",
            Some(app.token(&["--role", "auditor", "--town", "许村"])),
        ),
        ("analyst", Some(app.token(&["--role", "analyst"]))),
    ];
    let mut fields = root_fields(&schema, "QueryRoot");
    fields.extend(root_fields(&schema, "MutationRoot"));
    let mut wrong = Vec::new();
    for field in &fields {
        let row = &rows[field];
        for (role, allowed) in row {
            let token = tokens
                .iter()
                .find(|(name, _)| name == role)
                .and_then(|(_, token)| token.as_deref());
            let call = plausible_call(field, &fx);
            let (response, codes) = send(&app, token, &call).await;
            let refused = codes
                .first()
                .is_some_and(|code| code == "FORBIDDEN" || code == "UNAUTHENTICATED");
            let denied_anywhere = codes
                .iter()
                .any(|code| code == "FORBIDDEN" || code == "UNAUTHENTICATED");
            if *allowed && denied_anywhere {
                wrong.push(format!("{field} as {role} should be allowed: {response}"));
            }
            if !*allowed && !refused {
                wrong.push(format!("{field} as {role} should be refused: {response}"));
            }
            // A call the schema refuses says nothing about the role: every cell needs a valid one.
            if codes.iter().any(|code| {
                matches!(
                    code.as_str(),
                    "INTERNAL" | "GRAPHQL_PARSE_FAILED" | "GRAPHQL_VALIDATION_FAILED" | "BAD_INPUT"
                )
            }) {
                wrong.push(format!("{field} as {role} failed: {response}"));
            }
            if std::env::var("ANQUAN_TEST_SHOW_MATRIX").is_ok() {
                eprintln!("{field} as {role}: {codes:?}");
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells of docs/roles.md that do not hold:\n{}",
        wrong.join("\n")
    );
    assert_eq!(app.panics(), 0);
    app.stop().await;
}
