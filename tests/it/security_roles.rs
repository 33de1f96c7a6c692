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
    assert_eq!(data(&stored)["storeAgencyFile"]["sizeBytes"], 60);
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
