//! Latency of an auditor's reads of one enterprise with about 500 events in a SQLite store:
//! the full replay (read the stream, build the history lines with decoded data and file
//! hashes), the status as of an instant (read, fold the events recorded by then, evaluate
//! compliance and colour), and the chain verification. Prints p50, p99 and max over many runs.
//!
//! `cargo bench -p anquan-projections --bench audit_replay`
//!
//! With `ANQUAN_BENCH_DATA_DIR=<data dir>` and `ANQUAN_BENCH_ENTERPRISE=<enterprise id>` it
//! measures that enterprise in an existing store instead (the demo datasets at scales 1, 10
//! and 100), so the figures show how the reads grow with the size of the log; the store is
//! only read.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark aborts on failure and prints its figures"
)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use anquan_domain::enterprise::{
    Coverage, EnterpriseCommand, EnterpriseFile, FileRef, RegisterEnterprise, ReviewDecision, ReviewDocument,
    UploadDocument, enterprise_id_for,
};
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag};
use anquan_domain::{
    Actor, DecisionContext, DocumentId, EnterpriseId, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId,
};
use anquan_event_store::StreamId;
use anquan_event_store::execute::{CommandEnvelope, execute};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions};
use anquan_projections::audit;

/// Runs per measurement; `ANQUAN_BENCH_RUNS` overrides (a profiler wants fewer).
const RUNS_DEFAULT: usize = 1_000;

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<28} p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms   ({} runs)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        samples.len()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rules = anquan_domain::rules::builtin_v1().unwrap();
        let directory = tempfile::tempdir().unwrap();
        // A demo store holds a loaded history: its events were recorded in one sitting, so the
        // instants are cut by when things happened, as `anquan replay --by-occurred` does.
        let by_occurred = std::env::var_os("ANQUAN_BENCH_DATA_DIR").is_some();
        let (store, enterprise_id) = match std::env::var_os("ANQUAN_BENCH_DATA_DIR") {
            Some(data_dir) => {
                let enterprise_id: EnterpriseId = std::env::var("ANQUAN_BENCH_ENTERPRISE")
                    .expect("ANQUAN_BENCH_ENTERPRISE names the enterprise to read")
                    .parse()
                    .unwrap();
                let path = std::path::Path::new(&data_dir).join("anquan.sqlite");
                let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
                println!("store {}", path.display());
                (store, enterprise_id)
            }
            None => synthetic_store(directory.path(), &rules).await,
        };
        let stream = StreamId::parse(&anquan_domain::enterprise::stream_name(enterprise_id)).unwrap();
        let events = audit::read_stream_all(&store, &stream).await.unwrap();
        println!("one enterprise, {} events, SQLite store", events.len());
        let instant = |event: &anquan_event_store::RecordedEvent| {
            if by_occurred {
                event.metadata.occurred_at
            } else {
                event.recorded_at
            }
        };
        let first = events.iter().map(instant).min().unwrap();
        let last = events.iter().map(instant).max().unwrap();
        let span = (last - first).num_microseconds().unwrap().max(1);

        let runs = std::env::var("ANQUAN_BENCH_RUNS").map_or(RUNS_DEFAULT, |runs| runs.parse().unwrap());
        let mut replay = Vec::with_capacity(runs);
        let mut as_of = Vec::with_capacity(runs);
        let mut verify = Vec::with_capacity(runs);
        for run in 0..runs {
            let started = Instant::now();
            let events = audit::read_stream_all(&store, &stream).await.unwrap();
            let lines = audit::history_lines(&events);
            assert_eq!(lines.len(), events.len());
            replay.push(started.elapsed());

            let at = first + chrono::Duration::microseconds((run as i64 * 7919) % span);
            let started = Instant::now();
            let events = audit::read_stream_all(&store, &stream).await.unwrap();
            let status = if by_occurred {
                audit::status_as_of_occurred(&events, &rules, at)
            } else {
                audit::status_as_of(&events, &rules, at)
            };
            assert!(status.report.is_some());
            as_of.push(started.elapsed());

            let started = Instant::now();
            let verification = audit::verify_stream_in(&store, &stream).await.unwrap();
            assert!(verification.intact());
            verify.push(started.elapsed());
        }
        percentiles("full replay (history lines)", replay);
        percentiles("status as of an instant", as_of);
        percentiles("chain verification", verify);
    });
}

/// Writes one enterprise with 250 records, each uploaded and reviewed (501 events over about
/// five years), into a fresh SQLite store in `directory`.
async fn synthetic_store(
    directory: &std::path::Path,
    rules: &anquan_domain::rules::RuleSet,
) -> (SqliteEventStore, EnterpriseId) {
    let store = SqliteEventStore::open(&directory.join("bench.sqlite"), SqliteOptions::default()).unwrap();
    let rules = rules.clone();
    let admin = Actor {
        user_id: UserId::parse("bench-admin").unwrap(),
        role: Role::CityAdmin,
    };
    let credit_code = UnifiedSocialCreditCode::with_check_character("91330481MA28B0X01").unwrap();
    let enterprise_id = enterprise_id_for(&credit_code);
    let start = Utc.with_ymd_and_hms(2020, 1, 6, 9, 0, 0).unwrap();
    let run = async |now, command: EnterpriseCommand| {
        let context = DecisionContext {
            actor: &admin,
            rules: &rules,
            now,
        };
        let envelope = CommandEnvelope {
            command_id: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            expected_version: None,
        };
        execute::<EnterpriseFile>(&store, &command, &context, &envelope)
            .await
            .unwrap();
    };
    run(
        start,
        EnterpriseCommand::Register(RegisterEnterprise {
            name: "海宁基准企业".into(),
            credit_code,
            town: Town::parse("许村").unwrap(),
            industry: "经编".into(),
            profile: EnterpriseProfile {
                staff_count: 120,
                annual_revenue_10k_yuan: 900,
                flags: [ProfileFlag::SpecialEquipment].into(),
            },
        }),
    )
    .await;
    // 250 records, each uploaded and reviewed: 501 events over about five years.
    for n in 0..250i64 {
        let now = start + chrono::Duration::days(1 + n * 7);
        let document_id = DocumentId(Uuid::now_v7());
        run(
            now,
            EnterpriseCommand::UploadDocument(UploadDocument {
                enterprise_id,
                document_id,
                requirement: RequirementCode::parse("R01.responsibility_system").unwrap(),
                title: format!("record {n}"),
                file: FileRef {
                    sha256: format!("{:064x}", document_id.0.as_u128()),
                    size_bytes: 4096,
                    media_type: "application/pdf".into(),
                    file_name: format!("record-{n}.pdf"),
                },
                coverage: Coverage::Once,
            }),
        )
        .await;
        let decision = if n % 5 == 0 {
            ReviewDecision::Return {
                feedback: "盖章缺失".into(),
            }
        } else {
            ReviewDecision::Approve { comment: None }
        };
        run(
            now + chrono::Duration::hours(3),
            EnterpriseCommand::ReviewDocument(ReviewDocument {
                enterprise_id,
                document_id,
                decision,
            }),
        )
        .await;
    }
    (store, enterprise_id)
}
