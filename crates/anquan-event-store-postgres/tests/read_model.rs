//! The PostgreSQL read-model store: every `SqlValue` kind round-trips, and the checkpoint moves
//! with the batch.

mod support;

use std::sync::Arc;

use chrono::{TimeZone, Utc};

use anquan_event_store::{
    Dialect, Footprint, Position, ProjectionBatch, ReadModelStore, Row, Shaped, SqlValue, Statement, plan_runs,
};
use anquan_event_store_postgres::PostgresReadModelStore;

const DDL: &str = "
CREATE TABLE IF NOT EXISTS sample (
    id      BIGINT PRIMARY KEY,
    small   INTEGER,
    flag    BOOLEAN,
    score   DOUBLE PRECISION,
    name    TEXT,
    at      TIMESTAMPTZ,
    doc     JSONB,
    raw     JSON,
    note    TEXT
);
CREATE INDEX IF NOT EXISTS sample_name ON sample (name)";

const UPSERT: &str = "INSERT INTO sample (id, small, flag, score, name, at, doc, raw, note) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
    ON CONFLICT (id) DO UPDATE SET small = EXCLUDED.small, note = EXCLUDED.note";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_value_kind_round_trips_and_the_checkpoint_commits_with_the_batch() {
    let Some(database) = support::fresh_database("read-model test").await else {
        return;
    };
    let store = PostgresReadModelStore::connect(&database.url, 4).await.unwrap();
    assert_eq!(store.dialect(), Dialect::Postgres);
    store.migrate(DDL).await.unwrap();
    store.migrate(DDL).await.unwrap();
    assert_eq!(store.checkpoint("sample").await.unwrap(), None);

    let at = Utc.with_ymd_and_hms(2026, 3, 1, 8, 30, 15).unwrap() + chrono::Duration::microseconds(123_456);
    let values = vec![
        SqlValue::Int(1),
        SqlValue::Int(42),
        SqlValue::Bool(true),
        SqlValue::Real(2.5),
        SqlValue::Text("镇 one".to_owned()),
        SqlValue::Timestamp(at),
        SqlValue::Json(r#"{"a":[1,2]}"#.to_owned()),
        SqlValue::Json(r#"{"b":  true}"#.to_owned()),
        SqlValue::Null,
    ];
    let nulls = vec![
        SqlValue::Int(2),
        SqlValue::Null,
        SqlValue::Null,
        SqlValue::Null,
        SqlValue::Null,
        SqlValue::Null,
        SqlValue::Null,
        SqlValue::Null,
        SqlValue::Null,
    ];
    store
        .apply(Arc::new(ProjectionBatch::new(
            "sample".to_owned(),
            vec![
                Statement::new(UPSERT, values.clone()),
                Statement::new(UPSERT, nulls.clone()),
            ],
            Position::from_sequence(7),
        )))
        .await
        .unwrap();
    assert_eq!(
        store.checkpoint("sample").await.unwrap(),
        Some(Position::from_sequence(7))
    );

    let rows = store
        .query(
            "SELECT id, small, flag, score, name, at, doc, raw, note FROM sample WHERE id >= $1 ORDER BY id",
            &[SqlValue::Int(1)],
        )
        .await
        .unwrap();
    // jsonb normalises its text; json keeps it byte for byte.
    let mut expected = values;
    expected[6] = SqlValue::Json(r#"{"a": [1, 2]}"#.to_owned());
    assert_eq!(rows, vec![Row(expected), Row(nulls)]);
    assert_eq!(rows[0].timestamp(5).unwrap(), at);
    assert!(rows[0].bool(2).unwrap());

    // A failing statement rolls back the whole batch, checkpoint included.
    let failed = store
        .apply(Arc::new(ProjectionBatch::new(
            "sample".to_owned(),
            vec![
                Statement::new("DELETE FROM sample WHERE id = $1", vec![SqlValue::Int(1)]),
                Statement::new("INSERT INTO sample (id) VALUES ($1)", vec![SqlValue::Null]),
            ],
            Position::from_sequence(9),
        )))
        .await;
    assert!(failed.is_err());
    assert_eq!(
        store.checkpoint("sample").await.unwrap(),
        Some(Position::from_sequence(7))
    );
    let count = store.query("SELECT count(*) FROM sample", &[]).await.unwrap();
    assert_eq!(count, vec![Row(vec![SqlValue::Int(2)])]);

    store
        .reset("sample", vec![Statement::new("DELETE FROM sample", vec![])])
        .await
        .unwrap();
    assert_eq!(store.checkpoint("sample").await.unwrap(), None);
    let count = store.query("SELECT count(*) FROM sample", &[]).await.unwrap();
    assert_eq!(count, vec![Row(vec![SqlValue::Int(0)])]);
}

/// Long batches are pipelined: their statements still take effect in order, and a failure
/// anywhere rolls back everything, later statements included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_batch_runs_in_order_and_fails_as_a_whole() {
    let Some(database) = support::fresh_database("read-model pipelining test").await else {
        return;
    };
    // One connection: the one that saw a failure serves the next batch.
    let store = PostgresReadModelStore::connect(&database.url, 1).await.unwrap();
    store
        .migrate(
            "CREATE TABLE IF NOT EXISTS counter (id BIGINT PRIMARY KEY, value BIGINT NOT NULL, trail TEXT NOT NULL)",
        )
        .await
        .unwrap();
    let insert = "INSERT INTO counter (id, value, trail) VALUES ($1, 0, '')";
    // Each step depends on the one before: a reordering changes the value and the trail.
    let step = "UPDATE counter SET value = value * 2 + $2, trail = trail || $3 WHERE id = $1";
    let mut statements = Vec::new();
    let mut expected = (0_i64, String::new());
    for id in 0..10 {
        statements.push(Statement::new(insert, vec![SqlValue::Int(id)]));
    }
    for round in 0..300_i64 {
        let id = round % 10;
        statements.push(Statement::new(
            step,
            vec![
                SqlValue::Int(id),
                SqlValue::Int(round % 2),
                SqlValue::Text(format!("{round},")),
            ],
        ));
        if id == 3 {
            expected.0 = expected.0 * 2 + round % 2;
            expected.1.push_str(&format!("{round},"));
        }
    }
    store
        .apply(Arc::new(ProjectionBatch::new(
            "counter".to_owned(),
            statements,
            Position::from_sequence(310),
        )))
        .await
        .unwrap();
    let rows = store
        .query("SELECT value, trail FROM counter WHERE id = $1", &[SqlValue::Int(3)])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![Row(vec![SqlValue::Int(expected.0), SqlValue::Text(expected.1.clone())])]
    );

    // The 101st of 400 statements fails; the others would succeed on their own.
    let mut statements: Vec<Statement> = (0..400)
        .map(|n| {
            Statement::new(
                step,
                vec![SqlValue::Int(n % 10), SqlValue::Int(1), SqlValue::Text("x".to_owned())],
            )
        })
        .collect();
    statements[100] = Statement::new(
        "INSERT INTO counter (id, value, trail) VALUES ($1, 0, '')",
        vec![SqlValue::Int(0)],
    );
    let error = store
        .apply(Arc::new(ProjectionBatch::new(
            "counter".to_owned(),
            statements,
            Position::from_sequence(710),
        )))
        .await
        .unwrap_err();
    // The first failure is reported, not the aborted statements after it.
    assert!(error.to_string().contains("INSERT INTO counter"), "{error}");
    assert_eq!(
        store.checkpoint("counter").await.unwrap(),
        Some(Position::from_sequence(310))
    );
    let rows = store
        .query("SELECT value, trail FROM counter WHERE id = $1", &[SqlValue::Int(3)])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![Row(vec![SqlValue::Int(expected.0), SqlValue::Text(expected.1)])]
    );

    // The connection that saw the failure commits the next batch.
    store
        .apply(Arc::new(ProjectionBatch::new(
            "counter".to_owned(),
            vec![Statement::new(
                "DELETE FROM counter WHERE id = $1",
                vec![SqlValue::Int(9)],
            )],
            Position::from_sequence(711),
        )))
        .await
        .unwrap();
    assert_eq!(
        store.checkpoint("counter").await.unwrap(),
        Some(Position::from_sequence(711))
    );
    let count = store.query("SELECT count(*) FROM counter", &[]).await.unwrap();
    assert_eq!(count, vec![Row(vec![SqlValue::Int(9)])]);

    // Two projections' batches commit together or not at all, each moving its own checkpoint.
    let batch = |projection: &str, statements, checkpoint| {
        Arc::new(ProjectionBatch::new(
            projection.to_owned(),
            statements,
            Position::from_sequence(checkpoint),
        ))
    };
    let delete = |id| Statement::new("DELETE FROM counter WHERE id = $1", vec![SqlValue::Int(id)]);
    let failing = Statement::new("INSERT INTO missing_table VALUES ($1)", vec![SqlValue::Int(1)]);
    assert!(
        store
            .apply_together(&[
                batch("counter", vec![delete(8)], 712),
                batch("other", vec![failing], 712)
            ])
            .await
            .is_err()
    );
    assert_eq!(store.query("SELECT count(*) FROM counter", &[]).await.unwrap(), count);
    assert_eq!(store.checkpoint("other").await.unwrap(), None);
    store
        .apply_together(&[batch("counter", vec![delete(8)], 713), batch("other", vec![], 713)])
        .await
        .unwrap();
    assert_eq!(
        store.query("SELECT count(*) FROM counter", &[]).await.unwrap(),
        vec![Row(vec![SqlValue::Int(8)])]
    );
    for projection in ["counter", "other"] {
        assert_eq!(
            store.checkpoint(projection).await.unwrap(),
            Some(Position::from_sequence(713))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_guarded_batches_behave_as_every_store_must() {
    let Some(database) = support::fresh_database("read-model guards test").await else {
        return;
    };
    let store = PostgresReadModelStore::connect(&database.url, 4).await.unwrap();
    anquan_event_store::conformance::read_model_guards::leases_and_guarded_batches(Arc::new(store)).await;
}

/// A batch in flight holds its term's fence until it commits: its leader's renewal does not
/// wait for it (a renewal held up by a long batch let the lease lapse), while a claim that
/// takes the lease from that leader waits for it, so the batch still lands in its term and a
/// batch after the claim is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_does_not_wait_for_its_terms_batch_and_a_takeover_does() {
    use std::time::{Duration, Instant};

    use anquan_event_store::LeaseClaim;

    let Some(database) = support::fresh_database("lease renewal test").await else {
        return;
    };
    let store = Arc::new(PostgresReadModelStore::connect(&database.url, 4).await.unwrap());
    store
        .migrate("CREATE TABLE IF NOT EXISTS counter (n BIGINT)")
        .await
        .unwrap();
    let claim = |holder: &str, renewing: Option<i64>, force: bool| LeaseClaim {
        group: "read_models".to_owned(),
        holder: holder.to_owned(),
        renewing,
        duration_ms: 60_000,
        force,
    };
    let leader = store.claim_lease(&claim("a", None, false)).await.unwrap().unwrap();
    // A batch of its term that takes two seconds to commit.
    let slow = ProjectionBatch::new(
        "counter",
        vec![
            Statement::new("SELECT pg_sleep(2)", vec![]),
            Statement::new("INSERT INTO counter (n) VALUES (1)", vec![]),
        ],
        Position::from_sequence(1),
    )
    .fenced(Some(leader.clone()));
    let batch = {
        let store = store.clone();
        tokio::spawn(async move { store.apply(Arc::new(slow)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let asked = Instant::now();
    let renewed = store.claim_lease(&claim("a", Some(leader.term), false)).await.unwrap();
    assert_eq!(renewed.map(|term| term.term), Some(leader.term));
    assert!(
        asked.elapsed() < Duration::from_millis(1_000),
        "the renewal waited {:?} for the batch in flight",
        asked.elapsed()
    );

    let asked = Instant::now();
    let taken = store.claim_lease(&claim("b", None, true)).await.unwrap().unwrap();
    assert!(taken.term > leader.term);
    assert!(batch.is_finished(), "the takeover did not wait for the batch in flight");
    assert!(asked.elapsed() >= Duration::from_millis(500));
    batch.await.unwrap().unwrap();
    let rows = store.query("SELECT count(*) FROM counter", &[]).await.unwrap();
    assert_eq!(
        rows[0].int(0).unwrap(),
        1,
        "the batch of the ended term landed in its term"
    );

    let late = ProjectionBatch::new(
        "counter",
        vec![Statement::new("INSERT INTO counter (n) VALUES (2)", vec![])],
        Position::from_sequence(2),
    )
    .after(Some(Position::from_sequence(1)))
    .fenced(Some(leader.clone()));
    assert!(
        store.apply(Arc::new(late)).await.is_err(),
        "a batch of the ended term landed"
    );
    assert!(
        store
            .claim_lease(&claim("a", Some(leader.term), false))
            .await
            .unwrap()
            .is_none(),
        "the deposed leader renewed its ended term"
    );
}

const RUNS_DDL: &str = "
CREATE TABLE IF NOT EXISTS labels (k1 TEXT PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    k1    TEXT NOT NULL,
    k2    BIGINT NOT NULL,
    label TEXT,
    note  TEXT,
    n     BIGINT NOT NULL,
    at    TIMESTAMPTZ,
    doc   JSONB,
    PRIMARY KEY (k1, k2)
)";

const LABELS: Footprint = Footprint::writes("labels", &[0]);
const ITEM: Footprint = Footprint::writes("items", &[0, 1]);

/// A log of footprinted statements over few keys, so runs meet repeated keys, updates of rows
/// inserted earlier in the batch, deletes, a prefix update and a read of another table's row
/// that changes in between.
#[expect(clippy::unwrap_used, reason = "a test helper fails the test at once")]
fn mixed_statements() -> Vec<Statement> {
    let set_label = Shaped::new(
        "INSERT INTO labels (k1, label) VALUES ($1, $2) ON CONFLICT (k1) DO UPDATE SET label = excluded.label",
        LABELS,
    );
    let insert = Shaped::new(
        "INSERT INTO items (k1, k2, label, note, n, at, doc) \
         VALUES ($1, $2, (SELECT label FROM labels WHERE k1 = $1), 'new', $3, $4, $5) \
         ON CONFLICT (k1, k2) DO UPDATE SET n = items.n + excluded.n, at = excluded.at, label = excluded.label",
        ITEM.reading("labels", &[0]),
    );
    let note = Shaped::new("UPDATE items SET note = $3 || note WHERE k1 = $1 AND k2 = $2", ITEM);
    let relabel = Shaped::new(
        "UPDATE items SET label = $2 WHERE k1 = $1",
        Footprint::writes("items", &[0]),
    );
    let delete = Shaped::new("DELETE FROM items WHERE k1 = $1 AND k2 = $2", ITEM);
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut statements: Vec<Statement> = (0..4)
        .map(|k1| set_label.statement(vec![SqlValue::Text(format!("e{k1}")), SqlValue::Text("first".into())]))
        .collect();
    for step in 0..600_i64 {
        let k1 = SqlValue::Text(format!("e{}", next(4)));
        let k2 = SqlValue::Int(i64::try_from(next(12)).unwrap());
        let statement = match next(20) {
            0..=8 => insert.statement(vec![
                k1,
                k2,
                SqlValue::Int(step),
                SqlValue::Timestamp(base + chrono::Duration::microseconds(step * 1_001)),
                SqlValue::Json(format!(r#"{{"step": {step}, "b": [1, 2]}}"#)),
            ]),
            9..=12 => note.statement(vec![k1, k2, SqlValue::Text(format!("{step};"))]),
            13..=14 => delete.statement(vec![k1, k2]),
            15 => relabel.statement(vec![k1, SqlValue::Text(format!("re{step}"))]),
            16..=17 => set_label.statement(vec![k1, SqlValue::Text(format!("l{step}"))]),
            // A statement without a footprint: everything keeps its side of it.
            18 => Statement::new(
                "UPDATE items SET n = n + 1000 WHERE n % 7 = $1",
                vec![SqlValue::Int(step % 7)],
            ),
            _ => Statement::new(
                "UPDATE items SET note = note || '!' WHERE k1 = $1 AND k2 = $2",
                vec![k1, k2],
            ),
        };
        statements.push(statement);
    }
    statements
}

#[expect(clippy::unwrap_used, reason = "a test helper fails the test at once")]
async fn items(store: &PostgresReadModelStore) -> Vec<Row> {
    let mut rows = store
        .query(
            "SELECT k1, k2, label, note, n, at, doc::text FROM items ORDER BY k1, k2",
            &[],
        )
        .await
        .unwrap();
    rows.extend(
        store
            .query(
                "SELECT k1, label, NULL, NULL, NULL, NULL, NULL FROM labels ORDER BY k1",
                &[],
            )
            .await
            .unwrap(),
    );
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_run_together_leave_the_rows_of_running_them_one_by_one() {
    let Some(together) = support::fresh_database("read-model runs together").await else {
        return;
    };
    let Some(one_by_one) = support::fresh_database("read-model runs one by one").await else {
        return;
    };
    let statements = mixed_statements();
    let refs: Vec<&Statement> = statements.iter().collect();
    let runs = plan_runs(&refs);
    assert!(
        runs.iter().filter(|run| run.statements.len() > 1).count() > 20 && runs.len() < statements.len() / 2,
        "the log should run in far fewer runs than statements: {} runs",
        runs.len()
    );

    let together = PostgresReadModelStore::connect(&together.url, 1).await.unwrap();
    together.migrate(RUNS_DDL).await.unwrap();
    together
        .apply(Arc::new(ProjectionBatch::new(
            "items".to_owned(),
            statements.clone(),
            Position::from_sequence(1),
        )))
        .await
        .unwrap();

    let one_by_one = PostgresReadModelStore::connect(&one_by_one.url, 1).await.unwrap();
    one_by_one.migrate(RUNS_DDL).await.unwrap();
    for (n, statement) in statements.into_iter().enumerate() {
        one_by_one
            .apply(Arc::new(ProjectionBatch::new(
                "items".to_owned(),
                vec![statement],
                Position::from_sequence(n as u64 + 1),
            )))
            .await
            .unwrap();
    }
    let rows = items(&together).await;
    assert!(rows.len() > 10, "the log leaves rows: {rows:?}");
    assert_eq!(rows, items(&one_by_one).await);
}

/// A run of inserts that look a row up by a parameter (`(SELECT c FROM t WHERE k = $n)`) joins
/// the table instead when `k` alone is unique in it, with the subquery's answers: the row's
/// value, or `NULL` where there is none. On a key that is not unique it stays a subquery, so
/// a key that names two rows fails the batch, as it does one statement at a time, rather than
/// inserting a row twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_joins_its_table_only_on_a_unique_key() {
    let Some(database) = support::fresh_database("read-model lookups").await else {
        return;
    };
    let store = PostgresReadModelStore::connect(&database.url, 1).await.unwrap();
    store
        .migrate(
            "CREATE TABLE IF NOT EXISTS unique_tags (k TEXT PRIMARY KEY, label TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS tags (k TEXT NOT NULL, label TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS tagged (id BIGINT NOT NULL, label TEXT);
             INSERT INTO unique_tags VALUES ('a', 'x');
             INSERT INTO tags VALUES ('a', 'x'), ('a', 'y');",
        )
        .await
        .unwrap();
    let tag = |table: &'static str| {
        let sql: &'static str = match table {
            "unique_tags" => "INSERT INTO tagged (id, label) VALUES ($1, (SELECT label FROM unique_tags WHERE k = $2))",
            _ => "INSERT INTO tagged (id, label) VALUES ($1, (SELECT label FROM tags WHERE k = $2))",
        };
        Shaped::new(sql, Footprint::writes("tagged", &[0]).reading(table, &[1]))
    };
    let statements = |table: &'static str, keys: &[&str]| -> Vec<Statement> {
        keys.iter()
            .enumerate()
            .map(|(id, key)| {
                tag(table).statement(vec![
                    SqlValue::Int(i64::try_from(id).unwrap()),
                    SqlValue::Text((*key).to_owned()),
                ])
            })
            .collect()
    };
    store
        .apply(Arc::new(ProjectionBatch::new(
            "tagged".to_owned(),
            statements("unique_tags", &["a", "missing", "a"]),
            Position::from_sequence(1),
        )))
        .await
        .unwrap();
    let rows = store
        .query("SELECT id, label FROM tagged ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            Row(vec![SqlValue::Int(0), SqlValue::Text("x".into())]),
            Row(vec![SqlValue::Int(1), SqlValue::Null]),
            Row(vec![SqlValue::Int(2), SqlValue::Text("x".into())]),
        ]
    );

    let refused = store
        .apply(Arc::new(ProjectionBatch::new(
            "tagged".to_owned(),
            statements("tags", &["a", "a"]),
            Position::from_sequence(2),
        )))
        .await;
    assert!(
        refused.is_err(),
        "a key naming two rows fails as a subquery: {refused:?}"
    );
    let count = store.query("SELECT count(*) FROM tagged", &[]).await.unwrap();
    assert_eq!(
        count,
        vec![Row(vec![SqlValue::Int(3)])],
        "nothing of the refused batch stays"
    );
}
