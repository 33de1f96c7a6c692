//! The blob store on both backends: a local directory, and an S3-compatible server when
//! `ANQUAN_TEST_S3_ENDPOINT` names one (`.ci/run` starts moto's server and sets
//! `ANQUAN_TEST_REQUIRE_S3=1`, which makes a missing endpoint a failure instead of a skip).
//! Put, get, size, the owners' markers and their listing, and what a second client of the same
//! bucket sees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests abort on failure"
)]

use anquan_api::S3Settings;
use anquan_api::blobs::{BlobOwner, BlobStore, StagedFile};

/// The S3 server's URL, or `None` (with the reason printed) when the S3 tests may be skipped.
fn s3_endpoint() -> Option<String> {
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

/// Creates a fresh bucket with a plain PUT (object_store cannot create buckets; the test
/// server takes unsigned requests) and returns settings for it.
async fn fresh_bucket(endpoint: &str) -> S3Settings {
    let bucket = format!("anquan-test-{}", uuid::Uuid::new_v4().simple());
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
    S3Settings {
        bucket,
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".to_owned(),
        access_key_id: "anquan-test".to_owned(),
        secret_access_key: "anquan-test-secret".to_owned(),
    }
}

async fn exercise(store: &BlobStore, second: &BlobStore) {
    store.check().await.unwrap();
    let enterprise = BlobOwner::Enterprise(anquan_domain::EnterpriseId::from_uuid(uuid::Uuid::now_v7()));
    let agency = BlobOwner::Agency(anquan_domain::AgencyId::from_uuid(uuid::Uuid::now_v7()));
    let (used, known) = store.usage(enterprise).await.unwrap();
    assert_eq!((used, known.len()), (0, 0));

    let report = StagedFile::new(
        bytes::Bytes::from_static(b"%PDF-1.4 report"),
        "application/pdf",
        "r.pdf",
    );
    let photo = StagedFile::new(bytes::Bytes::from(vec![7u8; 3000]), "image/jpeg", "p.jpg");
    assert_eq!(store.size(&report.file.sha256).await.unwrap(), None);

    store
        .store(&[report.clone(), photo.clone()], Some(enterprise))
        .await
        .unwrap();
    // The same content again, and by another owner: stored once, counted once per owner.
    store
        .store(std::slice::from_ref(&report), Some(enterprise))
        .await
        .unwrap();
    store.store(std::slice::from_ref(&photo), Some(agency)).await.unwrap();
    // A government upload has no marker.
    let by_city = StagedFile::new(bytes::Bytes::from_static(b"city"), "text/plain", "c.txt");
    store.store(std::slice::from_ref(&by_city), None).await.unwrap();

    // The second client (another API node) sees everything the first stored.
    for reader in [store, second] {
        assert_eq!(
            reader.get(&report.file.sha256).await.unwrap().as_ref(),
            b"%PDF-1.4 report"
        );
        assert_eq!(reader.get(&photo.file.sha256).await.unwrap().len(), 3000);
        assert_eq!(reader.size(&photo.file.sha256).await.unwrap(), Some(3000));
        assert_eq!(reader.size(&by_city.file.sha256).await.unwrap(), Some(4));
        let (used, known) = reader.usage(enterprise).await.unwrap();
        assert_eq!(used, 15 + 3000);
        assert!(known.contains(&report.file.sha256) && known.contains(&photo.file.sha256));
        assert_eq!(known.len(), 2);
        let (used, known) = reader.usage(agency).await.unwrap();
        assert_eq!((used, known.len()), (3000, 1));
        // A hash that is not stored, and one that is no hash at all, name no file.
        assert_eq!(reader.size(&"0".repeat(64)).await.unwrap(), None);
        assert_eq!(reader.size("../../etc/passwd").await.unwrap(), None);
        assert!(reader.get(&"0".repeat(64)).await.is_err());
    }
}

#[tokio::test]
async fn a_local_directory_stores_reads_and_counts_files() {
    let directory = tempfile::tempdir().unwrap();
    let store = BlobStore::local(&directory.path().join("blobs")).unwrap();
    let second = BlobStore::local(&directory.path().join("blobs")).unwrap();
    exercise(&store, &second).await;
}

#[tokio::test]
async fn an_s3_bucket_stores_reads_and_counts_files_for_every_node() {
    let Some(endpoint) = s3_endpoint() else { return };
    let settings = fresh_bucket(&endpoint).await;
    let store = BlobStore::s3(&settings).unwrap();
    let second = BlobStore::s3(&settings).unwrap();
    exercise(&store, &second).await;

    // Nothing is written outside the two prefixes: list the bucket over plain HTTP.
    let listing = reqwest::Client::new()
        .get(format!("{endpoint}/{}?list-type=2", settings.bucket))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys: Vec<&str> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key))
        .collect();
    assert_eq!(keys.len(), 3 + 3, "three files and three markers: {keys:?}");
    assert!(
        keys.iter()
            .all(|key| key.starts_with("sha256/") || key.starts_with("owners/")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_missing_bucket_or_bad_settings_are_errors_not_panics() {
    let bad = |change: fn(&mut S3Settings)| {
        let mut settings = S3Settings {
            bucket: "b".to_owned(),
            endpoint: Some("http://127.0.0.1:9".to_owned()),
            region: "us-east-1".to_owned(),
            access_key_id: "k".to_owned(),
            secret_access_key: "s".to_owned(),
        };
        change(&mut settings);
        BlobStore::s3(&settings).err()
    };
    assert!(bad(|settings| settings.bucket.clear()).is_some());
    assert!(bad(|settings| settings.secret_access_key.clear()).is_some());
    assert!(bad(|settings| settings.endpoint = Some("ftp://x".to_owned())).is_some());
    assert!(bad(|_| ()).is_none());
    let debug = format!(
        "{:?}",
        S3Settings {
            bucket: "b".to_owned(),
            endpoint: None,
            region: "r".to_owned(),
            access_key_id: "k".to_owned(),
            secret_access_key: "do-not-print".to_owned(),
        }
    );
    assert!(!debug.contains("do-not-print"), "{debug}");

    let Some(endpoint) = s3_endpoint() else { return };
    let mut settings = fresh_bucket(&endpoint).await;
    settings.bucket = format!("anquan-missing-{}", uuid::Uuid::new_v4().simple());
    let store = BlobStore::s3(&settings).unwrap();
    assert!(
        store.check().await.is_err(),
        "a bucket that does not exist must fail the check"
    );
}

/// A personal file on one client of a store, read through another sharing the key table:
/// sealed at rest under the hash of the sealed bytes, opened while the key lives, erased after.
async fn exercise_personal(store: &BlobStore, second: &BlobStore) {
    use anquan_api::blobs::Download;
    use anquan_domain::personal::DataSubject;
    use anquan_event_store::personal::SubjectKeys as _;
    use sha2::Digest as _;

    let agency_id = anquan_domain::AgencyId::from_uuid(uuid::Uuid::now_v7());
    let owner = BlobOwner::Agency(agency_id);
    let subject = DataSubject::AgencyContact { agency_id };
    let plain = StagedFile::new(
        bytes::Bytes::from_static("联系人：某某某".as_bytes()),
        "text/plain",
        "a.txt",
    );
    let sealed = store.seal(&plain, &subject).await.unwrap();
    assert_ne!(sealed.file.sha256, plain.file.sha256);
    assert_eq!(sealed.file.file_name, "a.txt");
    store.store(std::slice::from_ref(&sealed), Some(owner)).await.unwrap();
    let at_rest = store.get(&sealed.file.sha256).await.unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&at_rest)), sealed.file.sha256);
    assert!(!at_rest.windows(6).any(|window| window == "某某".as_bytes()));
    let expected = Download::Content {
        bytes: bytes::Bytes::from_static("联系人：某某某".as_bytes()),
        personal: true,
    };
    assert_eq!(second.download(&sealed.file.sha256).await.unwrap(), Some(expected));
    assert!(
        second
            .stored_by(owner, &sealed.file.sha256, sealed.file.size_bytes)
            .await
            .unwrap()
    );
    let stranger = BlobOwner::Agency(anquan_domain::AgencyId::from_uuid(uuid::Uuid::now_v7()));
    assert!(
        !second
            .stored_by(stranger, &sealed.file.sha256, sealed.file.size_bytes)
            .await
            .unwrap()
    );
    assert_eq!(second.download(&"0".repeat(64)).await.unwrap(), None);

    KEYS.erase(&subject).await.unwrap();
    assert_eq!(
        second.download(&sealed.file.sha256).await.unwrap(),
        Some(Download::Erased)
    );
    assert_eq!(store.get(&sealed.file.sha256).await.unwrap(), at_rest);
}

static KEYS: std::sync::LazyLock<std::sync::Arc<anquan_event_store::personal::InMemorySubjectKeys>> =
    std::sync::LazyLock::new(Default::default);

fn with_keys(store: BlobStore) -> BlobStore {
    store.with_subject_keys(KEYS.clone())
}

#[tokio::test]
async fn a_personal_file_is_sealed_at_rest_and_erased_with_its_key_in_a_directory() {
    let directory = tempfile::tempdir().unwrap();
    let store = with_keys(BlobStore::local(&directory.path().join("blobs")).unwrap());
    let second = with_keys(BlobStore::local(&directory.path().join("blobs")).unwrap());
    exercise_personal(&store, &second).await;
    // Without the key table nothing is sealed, and a sealed file cannot be opened.
    let keyless = BlobStore::local(&directory.path().join("blobs")).unwrap();
    assert!(!keyless.seals_personal_files());
}

#[tokio::test]
async fn a_personal_file_is_sealed_at_rest_and_erased_with_its_key_in_a_bucket() {
    let Some(endpoint) = s3_endpoint() else { return };
    let settings = fresh_bucket(&endpoint).await;
    let store = with_keys(BlobStore::s3(&settings).unwrap());
    let second = with_keys(BlobStore::s3(&settings).unwrap());
    exercise_personal(&store, &second).await;
}
