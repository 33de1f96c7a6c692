//! The personal data keys in a database of their own (the read-model database beside a
//! KurrentDB log): the table is created once, by whichever node starts first, and the keys
//! behave as in the event database.

mod support;

use anquan_domain::AgencyId;
use anquan_domain::personal::DataSubject;
use anquan_event_store::personal::SubjectKeys;
use anquan_event_store_postgres::PostgresSubjectKeys;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_beside_the_read_models_are_created_once_and_erased_for_good() {
    let Some(database) = support::fresh_database("subject_keys").await else {
        return;
    };
    // Two nodes starting together: both succeed, one table.
    let (one, two) = tokio::join!(
        PostgresSubjectKeys::connect(&database.url, 2),
        PostgresSubjectKeys::connect(&database.url, 2)
    );
    let (one, two) = (one.expect("first node"), two.expect("second node"));

    let subject = DataSubject::AgencyContact {
        agency_id: AgencyId(uuid::Uuid::now_v7()),
    };
    let sealed_by_one = one.key_for_sealing(&subject).await.expect("key");
    let sealed_by_two = two.key_for_sealing(&subject).await.expect("key");
    assert_eq!(sealed_by_one.key_id, sealed_by_two.key_id, "two nodes agree on one key");
    let found = two.keys(&[sealed_by_one.key_id]).await.expect("keys");
    assert_eq!(found.len(), 1);

    assert_eq!(one.erase(&subject).await.expect("erase"), 1);
    assert!(two.keys(&[sealed_by_one.key_id]).await.expect("keys").is_empty());

    // A restart finds the table and keeps going.
    let again = PostgresSubjectKeys::connect(&database.url, 2).await.expect("restart");
    assert!(again.keys(&[sealed_by_one.key_id]).await.expect("keys").is_empty());
}
