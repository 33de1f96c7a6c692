//! Latency of an auditor's reads of one enterprise with about 500 events in a SQLite store:
//! the full replay (read the stream, build the history lines with decoded data and file
//! hashes), the status as of an instant (read, fold the events recorded by then, evaluate
//! compliance and colour), and the chain verification. Prints p50, p99 and max over many runs.
//!
//! `cargo bench -p anquan-projections --bench audit_replay`

#![allow(
    clippy::unwrap_used,
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
use anquan_domain::{Actor, DecisionContext, DocumentId, RequirementCode, Role, Town, UnifiedSocialCreditCode, UserId};
use anquan_event_store::StreamId;
use anquan_event_store::execute::{CommandEnvelope, execute};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions};
use anquan_projections::audit;

const RUNS: usize = 1_000;

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
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(&directory.path().join("bench.sqlite"), SqliteOptions::default()).unwrap();
        let rules = anquan_domain::rules::builtin_v1().unwrap();
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
        let stream = StreamId::parse(&anquan_domain::enterprise::stream_name(enterprise_id)).unwrap();
        let events = audit::read_stream_all(&store, &stream).await.unwrap();
        println!("one enterprise, {} events, SQLite store", events.len());
        let (first, last) = (events[0].recorded_at, events[events.len() - 1].recorded_at);
        let span = (last - first).num_microseconds().unwrap().max(1);

        let mut replay = Vec::with_capacity(RUNS);
        let mut as_of = Vec::with_capacity(RUNS);
        let mut verify = Vec::with_capacity(RUNS);
        for run in 0..RUNS {
            let started = Instant::now();
            let events = audit::read_stream_all(&store, &stream).await.unwrap();
            let lines = audit::history_lines(&events);
            assert_eq!(lines.len(), 501);
            replay.push(started.elapsed());

            let at = first + chrono::Duration::microseconds((run as i64 * 7919) % span);
            let started = Instant::now();
            let events = audit::read_stream_all(&store, &stream).await.unwrap();
            let status = audit::status_as_of(&events, &rules, at);
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
