//! The supervision watcher announces an enterprise's first colour even when the read models
//! deliver its registration after a check of the clock: a follower sees an event only once the
//! leader's checkpoint reaches it, and the watcher checks the clock every half second meanwhile.
//! Here the projections are held back while the watcher checks the clock past the registration,
//! then let go.

#![allow(clippy::unwrap_used, clippy::panic, reason = "a test stops at its first failure")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use anquan_api::SupervisionWatcher;
use anquan_api::watcher::SupervisionEvent;
use anquan_domain::enterprise::{EnterpriseCommand, EnterpriseFile, RegisterEnterprise, enterprise_id_for};
use anquan_domain::rules::EnterpriseProfile;
use anquan_domain::{Actor, DecisionContext, Role, Town, UnifiedSocialCreditCode, UserId};
use anquan_event_store::execute::{CommandEnvelope, execute};
use anquan_event_store::{EventStore, InMemoryEventStore};
use anquan_event_store_sqlite::SqliteReadModelStore;
use anquan_projections::{ComplianceProjection, ProjectionRunner};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_delivered_after_a_check_of_the_clock_is_announced() {
    let rules = Arc::new(anquan_domain::rules::builtin_v1().unwrap());
    let events: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let dir = tempfile::tempdir().unwrap();
    let read_models = Arc::new(
        SqliteReadModelStore::open(dir.path().join("read_models.db"))
            .await
            .unwrap(),
    );
    let runner = Arc::new(
        ProjectionRunner::new(events.clone(), read_models.clone()).with_projection(Arc::new(ComplianceProjection)),
    );
    runner.prepare().await.unwrap();
    let registered_at = Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).single().unwrap();
    let clock = Arc::new(Mutex::new(registered_at));
    let app = support::in_process_app(
        events.clone(),
        read_models.clone(),
        rules.clone(),
        &runner,
        {
            let clock = clock.clone();
            Arc::new(move || *clock.lock().unwrap())
        },
        dir.path(),
    );
    let mut notifications = app.supervision.subscribe();
    let watcher = tokio::spawn(SupervisionWatcher::new(app.clone()).run());

    let credit_code = UnifiedSocialCreditCode::with_check_character("91330481MA28A0X01").unwrap();
    let enterprise_id = enterprise_id_for(&credit_code);
    let admin = Actor {
        user_id: UserId::parse("city-admin").unwrap(),
        role: Role::CityAdmin,
    };
    let command = EnterpriseCommand::Register(RegisterEnterprise {
        name: "海宁企业1".into(),
        credit_code,
        town: Town::parse("许村").unwrap(),
        industry: "纺织".into(),
        profile: EnterpriseProfile {
            staff_count: 40,
            annual_revenue_10k_yuan: 800,
            flags: Default::default(),
        },
    });
    let context = DecisionContext {
        actor: &admin,
        rules: &rules,
        now: registered_at,
    };
    let envelope = CommandEnvelope {
        command_id: None,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        expected_version: None,
    };
    execute::<EnterpriseFile>(events.as_ref(), &command, &context, &envelope)
        .await
        .unwrap();

    // The clock moves on and the watcher checks it (every half second at most) before the
    // projections deliver the registration.
    let later: DateTime<Utc> = registered_at + chrono::Duration::minutes(1);
    *clock.lock().unwrap() = later;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let projecting = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.run().await })
    };

    let announced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match notifications.recv().await.unwrap() {
                SupervisionEvent::ColourChanged(changed) => return changed,
                SupervisionEvent::HazardOverdue(_) => {}
            }
        }
    })
    .await
    .expect("no colour announced for the enterprise registered before the watcher's last check");
    assert_eq!(announced.enterprise_id, enterprise_id);
    assert_eq!(announced.previous, None, "it had no colour before its registration");
    assert_eq!(announced.at, later);
    projecting.abort();
    watcher.abort();
}
