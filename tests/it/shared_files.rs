//! Two API nodes share uploaded files through an S3-compatible bucket: both run on one fresh
//! PostgreSQL database and one bucket, each with its own empty data directory. Files stored
//! through node one are found by node two (a service report names a photo stored on node one,
//! and node two checks it in the bucket), node two counts node one's uploads against the
//! agency's quota, and neither node writes a file into its data directory.
//!
//! Needs PostgreSQL (`ANQUAN_TEST_POSTGRES_URL`) and an S3 server (`ANQUAN_TEST_S3_ENDPOINT`);
//! skips with a reason without them, and fails when `.ci/run` requires them.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::agency_flow::{SIGN, register_agency};
use crate::compliance_flow::{register, upload};
use crate::security_roles::send_files;
use crate::support::{
    Backend, TestApp, backends, data, error_code, fresh_bucket, s3_endpoint, spawn_app, spawn_beside,
};

const REPORT_STAFF: &str = "mutation($agency: ID!, $halfYear: String!, $staff: [StaffMemberInput!]!) {
  reportAgencyStaff(agencyId: $agency, halfYear: $halfYear, staff: $staff) { eventTypes } }";
const STORE_AGENCY_FILE: &str =
    "mutation($file: Upload!) { storeAgencyFile(file: $file) { sha256 sizeBytes mediaType fileName } }";
const REPORT_SERVICE: &str = "mutation($input: ReportServiceInput!, $file: Upload!) {
  reportService(input: $input, reportFile: $file) { reportId eventTypes } }";
const SERVICES: &str = "query($id: ID!) { enterpriseServices(enterpriseId: $id) { reports { id } } }";

/// The agency's quota on both nodes: one 600-byte photo and a 100-byte report fit, another
/// 400 bytes do not.
const AGENCY_QUOTA: &str = "1000";

fn half_year() -> String {
    use chrono::Datelike as _;
    let local = Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    format!("{}-H{}", local.year(), if local.month() <= 6 { 1 } else { 2 })
}

fn file(tag: &str, size: usize) -> Vec<(String, Vec<u8>)> {
    let mut bytes = format!("{tag}-").into_bytes();
    bytes.resize(size, b'x');
    vec![("file".to_owned(), bytes)]
}

/// The size of the file stored under a hash, from a listing of the bucket over plain HTTP
/// (the test server answers unsigned listings), or `None` when no object is there.
async fn object_size(endpoint: &str, bucket: &str, sha256: &str) -> Option<u64> {
    let key = format!("sha256/{}/{sha256}", &sha256[..2]);
    let response = reqwest::get(format!("{endpoint}/{bucket}?list-type=2&prefix={key}"))
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let listing = response.text().await.unwrap();
    if !listing.contains(&format!("<Key>{key}</Key>")) {
        return None;
    }
    let size = listing.split_once("<Size>")?.1.split_once("</Size>")?.0;
    Some(size.parse().unwrap())
}

async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    data(&app.graphql(Some(token), query, variables).await).clone()
}

#[tokio::test]
async fn two_nodes_on_one_database_and_one_bucket_share_uploaded_files() {
    if !backends().contains(&Backend::Postgres) {
        eprintln!("skipping the shared-files test: it needs PostgreSQL");
        return;
    }
    let Some(endpoint) = s3_endpoint() else { return };
    let bucket = fresh_bucket(&endpoint).await;
    let settings = [
        "--s3-bucket",
        bucket.as_str(),
        "--s3-endpoint",
        endpoint.as_str(),
        "--s3-access-key-id",
        "anquan-test",
        "--s3-secret-access-key",
        "anquan-test-secret-never-logged",
        "--upload-quota-agency-bytes",
        AGENCY_QUOTA,
    ];
    let one = spawn_app(Backend::Postgres, &settings).await;
    let two = spawn_beside(&one, &settings).await;

    // An enterprise's document uploaded through node one lands in the bucket.
    let admin = one.token(&["--role", "city_admin"]);
    let enterprise_id = register(&one, &admin, "91330481MA28A0XX07", "许村").await;
    let owner = one.token(&["--role", "enterprise", "--enterprise", &enterprise_id]);
    let document = json!({ "enterpriseId": enterprise_id, "requirement": "R10.plan", "title": "应急预案" });
    data(&upload(&one, &owner, document).await);
    let record = b"%PDF-1.4 record";
    let record_sha = sha256_hex(record);
    assert_eq!(
        object_size(&endpoint, &bucket, &record_sha).await,
        Some(record.len() as u64)
    );

    // The agency, its staff and a contract, through node one.
    let agency_id = register_agency(&one, &admin).await;
    let agency = one.token(&["--role", "agency", "--agency", &agency_id]);
    let staff_id = uuid::Uuid::now_v7().to_string();
    let staff = json!([{ "staffId": staff_id, "name": "张伟", "phone": "13900001234",
        "qualifications": [{ "kind": "REGISTERED_SAFETY_ENGINEER", "certificateNumber": "CERT-0001" }] }]);
    ok(
        &one,
        &agency,
        REPORT_STAFF,
        json!({ "agency": agency_id, "halfYear": half_year(), "staff": staff }),
    )
    .await;
    let now = Utc::now();
    let contract = json!({ "agencyId": agency_id, "enterpriseId": enterprise_id,
        "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
        "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 6000 });
    let signed = ok(&one, &agency, SIGN, json!({ "input": contract })).await;
    let contract_id = signed["proposeContract"]["contractId"].as_str().unwrap().to_owned();
    crate::contracts::confirm_and_file(&one, &agency_id, &contract_id, &enterprise_id, "许村", None).await;

    // A photo stored through node one ...
    let photo = file("photo", 600);
    let stored = send_files(&one, &agency, STORE_AGENCY_FILE, json!({ "file": null }), &photo).await;
    let photo_ref = data(&stored)["storeAgencyFile"].clone();
    assert_eq!(photo_ref["sizeBytes"], "600", "Int64 is a decimal string");
    let photo_sha = photo_ref["sha256"].as_str().unwrap().to_owned();
    assert_eq!(object_size(&endpoint, &bucket, &photo_sha).await, Some(600));

    // ... is found by node two, which checks the files a service report names in the bucket.
    let report = |photos: Value| {
        json!({ "agencyId": agency_id, "contractId": contract_id, "visitedAt": now - Duration::hours(1),
            "staffIds": [staff_id], "findings": "配电箱未接地", "photos": photos })
    };
    let unknown =
        json!([{ "sha256": "0".repeat(64), "sizeBytes": 600, "mediaType": "image/jpeg", "fileName": "x.jpg" }]);
    let refused = send_files(
        &two,
        &agency,
        REPORT_SERVICE,
        json!({ "input": report(unknown), "file": null }),
        &file("report", 100),
    )
    .await;
    assert_eq!(error_code(&refused), "UNKNOWN_FILE", "{refused}");
    let reported = send_files(
        &two,
        &agency,
        REPORT_SERVICE,
        json!({ "input": report(json!([photo_ref])), "file": null }),
        &file("report", 100),
    )
    .await;
    let report_id = data(&reported)["reportService"]["reportId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Node one reads the report node two recorded, from the shared database.
    let mut seen = false;
    for _ in 0..100 {
        let services = ok(&one, &admin, SERVICES, json!({ "id": enterprise_id })).await;
        if services["enterpriseServices"]["reports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["id"] == report_id.as_str())
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "node one never showed the report node two recorded");

    // Node two counts node one's photo against the agency's quota: 600 + 100 stored, so 400
    // more are refused (node two alone stored only 100), while the photo's content again costs
    // nothing.
    let over = send_files(
        &two,
        &agency,
        STORE_AGENCY_FILE,
        json!({ "file": null }),
        &file("more", 400),
    )
    .await;
    assert_eq!(error_code(&over), "QUOTA_EXCEEDED", "{over}");
    let again = send_files(&two, &agency, STORE_AGENCY_FILE, json!({ "file": null }), &photo).await;
    assert_eq!(data(&again)["storeAgencyFile"]["sha256"], photo_sha.as_str());

    // With a bucket, no node keeps files in its data directory.
    for node in [&one, &two] {
        assert!(
            !node.data_dir().join("blobs").exists(),
            "files were written under {}",
            node.data_dir().display()
        );
        assert_eq!(node.panics(), 0);
    }
    two.stop().await;
    one.stop().await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
