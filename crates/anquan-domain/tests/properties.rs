//! Property tests over arbitrary command sequences on one enterprise: every accepted event
//! folds, replay equals the step-by-step state, events round-trip through serde, and status
//! as of any instant equals the status of the history cut at that instant, and an enterprise's
//! metric contribution stays the same from any instant until its `next_change`.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod support;

use anquan_domain::compliance::evaluate;
use anquan_domain::enterprise::{
    ChangeEnterpriseProfile, CloseEnterprise, ClosureKind, Coverage, DecisionContext, EnterpriseCommand,
    EnterpriseFile, ReopenEnterprise, ReviewDecision, ReviewDocument,
};
use anquan_domain::metrics::{ServiceFacts, enterprise_contribution, next_calendar_change, next_change};
use anquan_domain::rules::{Evidence, ProfileFlag};
use anquan_domain::{Event, Instant, Town};
use chrono::Duration;
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
enum Step {
    Upload {
        requirement: usize,
        validity_days: i64,
        period_back: u32,
    },
    Review {
        document: usize,
        approve: bool,
    },
    ChangeProfile {
        flags: Vec<ProfileFlag>,
    },
    /// Close (or, when closed, reopen) the enterprise, effective `days_back` days ago.
    CloseOrReopen {
        days_back: i64,
    },
}

fn flag() -> impl Strategy<Value = ProfileFlag> {
    prop_oneof![
        Just(ProfileFlag::HazardousChemicals),
        Just(ProfileFlag::DustExplosion),
        Just(ProfileFlag::SpecialEquipment),
        Just(ProfileFlag::HighRiskIndustry),
        Just(ProfileFlag::ContractsOrLeases),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0usize..64, 1i64..800, 0u32..3).prop_map(|(requirement, validity_days, period_back)| Step::Upload { requirement, validity_days, period_back }),
        4 => (0usize..32, any::<bool>()).prop_map(|(document, approve)| Step::Review { document, approve }),
        1 => proptest::collection::vec(flag(), 0..3).prop_map(|flags| Step::ChangeProfile { flags }),
        1 => (0i64..3).prop_map(|days_back| Step::CloseOrReopen { days_back }),
    ]
}

fn event_time(event: &Event) -> Instant {
    match event {
        Event::EnterpriseRegistered(e) => e.registered_at,
        Event::EnterpriseProfileChanged(e) => e.changed_at,
        Event::DocumentUploaded(e) => e.uploaded_at,
        Event::DocumentApproved(e) => e.reviewed_at,
        Event::DocumentReturned(e) => e.reviewed_at,
        Event::InspectionRecorded(e) => e.recorded_at,
        Event::HazardFound(e) => e.recorded_at,
        Event::HazardDeadlineExtended(e) => e.extended_at,
        Event::MajorHazardBasisStated(e) => e.stated_at,
        Event::MajorHazardConfirmed(e) => e.confirmed_at,
        Event::HazardSelfClosed(e) => e.closed_at,
        Event::HazardSpotChecked(e) => e.checked_at,
        Event::HazardListed(e) => e.listed_at,
        Event::ListingProgressReported(e) => e.reported_at,
        Event::ListingLiftRequested(e) => e.requested_at,
        Event::HazardDelisted(e) => e.delisted_at,
        Event::RectificationSubmitted(e) => e.submitted_at,
        Event::RectificationAccepted(e) => e.verified_at,
        Event::RectificationReturned(e) => e.verified_at,
        Event::AccidentReported(e) => e.reported_at,
        Event::PublicTokenRotated(e) => e.rotated_at,
        Event::EnterpriseClosed(e) => e.recorded_at,
        Event::EnterpriseReopened(e) => e.recorded_at,
        Event::AgencyRegistered(_)
        | Event::AgencyProfileChanged(_)
        | Event::StaffReported(_)
        | Event::ContractSigned(_)
        | Event::ContractProposed(_)
        | Event::ContractConfirmed(_)
        | Event::ContractRejected(_)
        | Event::ContractFiled(_)
        | Event::ContractTerminated(_)
        | Event::ServiceReported(_)
        | Event::ServiceRated(_)
        | Event::ReportSpotChecked(_)
        | Event::AgencyComplaintFounded(_)
        | Event::AgencyWarned(_)
        | Event::AgencyMisconductFound(_)
        | Event::CreditGraded(_)
        | Event::CreditRegraded(_)
        | Event::AgencyBlacklisted(_)
        | Event::AgencyDelisted(_)
        | Event::DataSubjectErased(_)
        | Event::RuleSetPublished(_)
        | Event::RuleSetPromoted(_)
        | Event::AnchorTaken(_)
        | Event::MonthlyReportIssued(_)
        | Event::AnnualAssessmentIssued(_) => {
            panic!("not an enterprise event: {event:?}")
        }
    }
}

/// Runs the steps one day apart; returns the accepted events and the state built step by step.
fn run(steps: &[Step]) -> (Vec<Event>, EnterpriseFile) {
    let rules = rules();
    let id = anquan_domain::enterprise::enterprise_id_for(&credit_code(1));
    let owner = enterprise_user(id);
    let reviewer = officer("许村");
    let start = at("2019-01-05T01:00:00Z");
    let mut file = EnterpriseFile::default();
    let mut events = Vec::new();
    let mut uploaded = Vec::new();
    let apply = |file: &mut EnterpriseFile, events: &mut Vec<Event>, actor, now, command: EnterpriseCommand| {
        let context = DecisionContext {
            actor,
            rules: &rules,
            now,
        };
        match file.decide(&command, &context) {
            Ok(decided) => {
                for event in decided {
                    file.apply(&event);
                    events.push(event);
                }
                true
            }
            Err(_) => false,
        }
    };
    apply(
        &mut file,
        &mut events,
        &reviewer,
        start,
        register(1, "许村", plain_profile()),
    );
    let requirements: Vec<_> = rules
        .indicators
        .iter()
        .flat_map(|indicator| indicator.requirements.clone())
        .collect();
    for (day, step) in steps.iter().enumerate() {
        let now = start + Duration::days(day as i64 + 1);
        match step {
            Step::Upload {
                requirement,
                validity_days,
                period_back,
            } => {
                let rule = &requirements[requirement % requirements.len()];
                let coverage = match &rule.evidence {
                    Evidence::Review => Coverage::Once,
                    Evidence::Validity { .. } => Coverage::Validity {
                        valid_from: now - Duration::days(1),
                        valid_until: now + Duration::days(*validity_days),
                    },
                    evidence @ Evidence::Periodic { .. } => match rules.cadence_for(evidence, file.current_profile()) {
                        Some(cadence) => {
                            let mut period = cadence.period_containing(now, rules.time_zone);
                            for _ in 0..*period_back {
                                period = period.previous();
                            }
                            Coverage::Period { period }
                        }
                        None => Coverage::Once,
                    },
                };
                let document = 1000 + day as u128;
                if apply(
                    &mut file,
                    &mut events,
                    &owner,
                    now,
                    upload(id, document, rule.code.as_str(), coverage),
                ) {
                    uploaded.push(document);
                }
            }
            Step::Review { document, approve } => {
                if uploaded.is_empty() {
                    continue;
                }
                let decision = if *approve {
                    ReviewDecision::Approve { comment: None }
                } else {
                    ReviewDecision::Return {
                        feedback: "请补充".into(),
                    }
                };
                let command = EnterpriseCommand::ReviewDocument(ReviewDocument {
                    enterprise_id: id,
                    document_id: document_id(uploaded[document % uploaded.len()]),
                    decision,
                });
                apply(&mut file, &mut events, &reviewer, now, command);
            }
            Step::ChangeProfile { flags } => {
                let command = EnterpriseCommand::ChangeProfile(ChangeEnterpriseProfile {
                    enterprise_id: id,
                    name: "企业1".into(),
                    town: Town::parse("许村").unwrap(),
                    industry: "经编".into(),
                    profile: profile_with(flags),
                });
                apply(&mut file, &mut events, &reviewer, now, command);
            }
            Step::CloseOrReopen { days_back } => {
                let effective_at = Some(now - Duration::days(*days_back));
                let command = if file.current_closure().is_some() {
                    EnterpriseCommand::Reopen(ReopenEnterprise {
                        enterprise_id: id,
                        reason: "恢复经营".into(),
                        effective_at,
                    })
                } else {
                    EnterpriseCommand::Close(CloseEnterprise {
                        enterprise_id: id,
                        kind: ClosureKind::Suspended,
                        reason: "停业".into(),
                        effective_at,
                    })
                };
                apply(&mut file, &mut events, &reviewer, now, command);
            }
        }
    }
    (events, file)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replaying_accepted_events_rebuilds_the_same_state(steps in proptest::collection::vec(step(), 0..60)) {
        let (events, stepwise) = run(&steps);
        prop_assert_eq!(EnterpriseFile::from_events(&events), stepwise);
    }

    #[test]
    fn every_event_round_trips_through_its_stored_form(steps in proptest::collection::vec(step(), 0..60)) {
        let (events, _) = run(&steps);
        for event in &events {
            let decoded = Event::decode(event.event_type(), event.schema_version(), &event.encode_data()).unwrap();
            prop_assert_eq!(&decoded, event);
            let tagged = serde_json::to_string(event).unwrap();
            prop_assert_eq!(&serde_json::from_str::<Event>(&tagged).unwrap(), event);
        }
    }

    #[test]
    fn status_as_of_an_instant_equals_the_status_of_the_history_up_to_it(
        steps in proptest::collection::vec(step(), 1..60),
        offset_hours in 0i64..(24 * 70),
    ) {
        let (events, file) = run(&steps);
        let instant = at("2019-01-05T01:00:00Z") + Duration::hours(offset_hours);
        let cut: Vec<Event> = events.iter().filter(|event| event_time(event) <= instant).cloned().collect();
        let rules = rules();
        let full = evaluate(&file, &rules, instant);
        let replayed = evaluate(&EnterpriseFile::from_events(&cut), &rules, instant);
        prop_assert_eq!(&full, &replayed);
        if let Some(report) = full {
            prop_assert_eq!(report.implemented + report.not_implemented + report.not_yet_due + report.not_applicable, 21);
        }
    }

    #[test]
    fn the_contribution_stands_from_an_instant_until_its_next_change(
        steps in proptest::collection::vec(step(), 1..60),
        offset_minutes in 0i64..(60 * 24 * 400),
        near in any::<proptest::sample::Index>(),
        before_minutes in 0i64..(60 * 24 * 3),
    ) {
        let (_, file) = run(&steps);
        let rules = rules();
        let services = ServiceFacts::default();
        let catalogue = &rules.metrics;
        // The contribution, and what it is computed from: every requirement's state and the
        // colour (a change there that no metric happens to show in these files still counts).
        let contribution = |instant| {
            let states: Option<Vec<_>> = evaluate(&file, &rules, instant).map(|report| {
                report
                    .indicators
                    .iter()
                    .flat_map(|indicator| indicator.requirements.iter().map(|requirement| requirement.state))
                    .collect()
            });
            let colour = anquan_domain::risk::assess(&file, &rules, instant).map(|assessment| assessment.colour);
            (enterprise_contribution(catalogue, &rules, &file, &services, instant), states, colour)
        };
        // Mostly shortly before an instant the facts make a change at (a validity's start or
        // end, a review, the review backlog's days after an upload), else anywhere.
        let mut moments = Vec::new();
        for document in file.documents.values() {
            moments.push(document.uploaded_at + Duration::days(i64::from(rules.metrics.pending_review_days)));
            moments.extend(document.review.as_ref().map(|review| review.reviewed_at));
            if let Coverage::Validity { valid_from, valid_until } = document.coverage {
                moments.extend([valid_from, valid_until]);
            }
        }
        let mut instant = if moments.is_empty() || offset_minutes % 4 == 0 {
            at("2019-01-04T01:00:00Z") + Duration::minutes(offset_minutes)
        } else {
            *near.get(&moments) - Duration::minutes(before_minutes)
        };
        // A few changes in a row from the sampled instant.
        for _ in 0..4 {
            let next = next_change(catalogue, &rules, &file, &services, instant).unwrap();
            prop_assert!(next > instant);
            let calendar = next_calendar_change(catalogue, &rules, instant).unwrap();
            prop_assert!(next <= calendar, "next change {} after the calendar's {}", next, calendar);
            let here = contribution(instant);
            let last = next - Duration::nanoseconds(1);
            let span = last - instant;
            for probe in [last, instant + span / 2, instant + span / 5, instant + Duration::nanoseconds(1).min(span)] {
                prop_assert_eq!(&contribution(probe), &here, "at {} (from {} to {})", probe, instant, next);
            }
            instant = next;
        }
    }
}
