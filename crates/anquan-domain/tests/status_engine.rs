//! The status engine, one test per rule of domain.md §1.3, on rule set v1.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod support;

use anquan_domain::compliance::{ComplianceReport, Detail, IndicatorState, RequirementState, evaluate};
use anquan_domain::enterprise::{
    Coverage, DecisionContext, EnterpriseCommand, EnterpriseFile, ReviewDecision, ReviewDocument,
};
use anquan_domain::rules::ProfileFlag;
use anquan_domain::{Actor, EnterpriseId, Event};
use support::*;

const REGISTERED: &str = "2019-01-10T02:00:00Z";

fn enterprise_id(n: u32) -> EnterpriseId {
    anquan_domain::enterprise::enterprise_id_for(&credit_code(n))
}

fn review(id: EnterpriseId, document: u128, decision: ReviewDecision) -> EnterpriseCommand {
    EnterpriseCommand::ReviewDocument(ReviewDocument {
        enterprise_id: id,
        document_id: document_id(document),
        decision,
    })
}

fn approve(id: EnterpriseId, document: u128) -> EnterpriseCommand {
    review(id, document, ReviewDecision::Approve { comment: None })
}

fn requirement<'a>(report: &'a ComplianceReport, code: &str) -> &'a anquan_domain::compliance::RequirementStatus {
    report
        .indicators
        .iter()
        .flat_map(|indicator| &indicator.requirements)
        .find(|requirement| requirement.code.as_str() == code)
        .unwrap()
}

fn indicator(report: &ComplianceReport, code: &str) -> IndicatorState {
    report
        .indicators
        .iter()
        .find(|indicator| indicator.code.as_str() == code)
        .unwrap()
        .state
}

fn report(events: &[Event], instant: &str) -> ComplianceReport {
    evaluate(&EnterpriseFile::from_events(events), &rules(), at(instant)).unwrap()
}

fn validity(from: &str, until: &str) -> Coverage {
    Coverage::Validity {
        valid_from: at(from),
        valid_until: at(until),
    }
}

#[test]
fn the_counts_always_add_up_to_the_indicator_count() {
    let events = history(&[(officer("许村"), REGISTERED, register(1, "许村", plain_profile()))]);
    let report = report(&events, "2019-02-01T00:00:00Z");
    assert_eq!(
        report.implemented + report.not_implemented + report.not_yet_due + report.not_applicable,
        21
    );
    assert!(!report.responsibility_implemented);
}

#[test]
fn an_uploaded_record_counts_only_once_approved() {
    let id = enterprise_id(2);
    let owner = enterprise_user(id);
    let mut steps = vec![
        (officer("许村"), REGISTERED, register(2, "许村", plain_profile())),
        (
            owner.clone(),
            "2019-02-01T00:00:00Z",
            upload(id, 1, "R10.plan", Coverage::Once),
        ),
    ];
    let pending = history(&steps);
    let status = requirement(&report(&pending, "2019-02-02T00:00:00Z"), "R10.plan").clone();
    assert_eq!(status.state, RequirementState::Unsatisfied);
    assert_eq!(
        status.detail,
        Detail::AwaitingReview {
            document_id: document_id(1)
        }
    );

    steps.push((officer("许村"), "2019-02-03T00:00:00Z", approve(id, 1)));
    let approved = history(&steps);
    assert_eq!(
        requirement(&report(&approved, "2019-02-03T00:00:00Z"), "R10.plan").state,
        RequirementState::Satisfied
    );
    // As of the instant before the approval, it did not count yet.
    assert_eq!(
        requirement(&report(&approved, "2019-02-02T23:59:59Z"), "R10.plan").state,
        RequirementState::Unsatisfied
    );
}

#[test]
fn a_returned_record_gives_its_feedback_as_the_reason() {
    let id = enterprise_id(3);
    let events = history(&[
        (officer("许村"), REGISTERED, register(3, "许村", plain_profile())),
        (
            enterprise_user(id),
            "2019-02-01T00:00:00Z",
            upload(id, 1, "R10.plan", Coverage::Once),
        ),
        (
            officer("许村"),
            "2019-02-03T00:00:00Z",
            review(
                id,
                1,
                ReviewDecision::Return {
                    feedback: "盖章缺失".into(),
                },
            ),
        ),
    ]);
    let status = requirement(&report(&events, "2019-02-04T00:00:00Z"), "R10.plan").clone();
    assert_eq!(
        status.detail,
        Detail::Returned {
            document_id: document_id(1),
            feedback: "盖章缺失".into()
        }
    );
}

#[test]
fn validity_ends_exactly_at_valid_until() {
    let id = enterprise_id(4);
    let until = "2020-03-01T08:30:00Z";
    let events = history(&[
        (officer("许村"), REGISTERED, register(4, "许村", plain_profile())),
        (
            enterprise_user(id),
            "2019-02-01T00:00:00Z",
            upload(
                id,
                1,
                "R04.leader_certificates",
                validity("2019-01-01T00:00:00Z", until),
            ),
        ),
        (officer("许村"), "2019-02-02T00:00:00Z", approve(id, 1)),
    ]);
    let just_before = requirement(
        &report(&events, "2020-03-01T08:29:59.999999Z"),
        "R04.leader_certificates",
    )
    .clone();
    assert_eq!(just_before.state, RequirementState::Satisfied);
    assert_eq!(
        just_before.detail,
        Detail::ValidUntil {
            document_id: document_id(1),
            valid_until: at(until),
            expiring_soon: true
        }
    );
    let at_the_end = requirement(&report(&events, until), "R04.leader_certificates").clone();
    assert_eq!(at_the_end.state, RequirementState::Unsatisfied);
    assert_eq!(
        at_the_end.detail,
        Detail::Expired {
            document_id: document_id(1),
            valid_until: at(until)
        }
    );
}

#[test]
fn expiring_soon_starts_thirty_days_before_the_end() {
    let id = enterprise_id(5);
    let events = history(&[
        (officer("许村"), REGISTERED, register(5, "许村", plain_profile())),
        (
            enterprise_user(id),
            "2019-02-01T00:00:00Z",
            upload(
                id,
                1,
                "R04.leader_certificates",
                validity("2019-01-01T00:00:00Z", "2019-12-31T00:00:00Z"),
            ),
        ),
        (officer("许村"), "2019-02-02T00:00:00Z", approve(id, 1)),
    ]);
    let soon = |instant| match requirement(&report(&events, instant), "R04.leader_certificates").detail {
        Detail::ValidUntil { expiring_soon, .. } => expiring_soon,
        ref other => panic!("{other:?}"),
    };
    assert!(!soon("2019-11-30T23:59:59Z"));
    assert!(soon("2019-12-01T00:00:00Z"));
}

#[test]
fn a_quarterly_report_is_due_by_the_fifteenth_day_after_the_quarter() {
    let events = history(&[(officer("许村"), REGISTERED, register(6, "许村", plain_profile()))]);
    // Q1 2019 ends at local midnight 1 April (2019-03-31T16:00Z); its report is due 15 days later.
    let in_grace = requirement(&report(&events, "2019-04-15T15:59:59Z"), "R09.quarterly_report").clone();
    assert_eq!(in_grace.state, RequirementState::NotYetDue, "{in_grace:?}");
    assert!(matches!(in_grace.detail, Detail::NothingDueYet { .. }));
    let late = requirement(&report(&events, "2019-04-15T16:00:00Z"), "R09.quarterly_report").clone();
    assert_eq!(late.state, RequirementState::Unsatisfied);
    assert_eq!(
        late.detail,
        Detail::PeriodMissing {
            period: "2019-Q1".parse().unwrap(),
            due_at: at("2019-04-15T16:00:00Z")
        }
    );
}

#[test]
fn a_periodic_record_covers_its_period_until_the_next_one_falls_due() {
    let id = enterprise_id(7);
    let events = history(&[
        (officer("许村"), REGISTERED, register(7, "许村", plain_profile())),
        (
            enterprise_user(id),
            "2019-04-10T00:00:00Z",
            upload(
                id,
                1,
                "R09.quarterly_report",
                Coverage::Period {
                    period: "2019-Q1".parse().unwrap(),
                },
            ),
        ),
        (officer("许村"), "2019-04-12T00:00:00Z", approve(id, 1)),
    ]);
    assert_eq!(
        requirement(&report(&events, "2019-07-15T15:59:59Z"), "R09.quarterly_report").state,
        RequirementState::Satisfied
    );
    assert_eq!(
        requirement(&report(&events, "2019-07-15T16:00:00Z"), "R09.quarterly_report").state,
        RequirementState::Unsatisfied
    );
}

#[test]
fn key_supervised_units_drill_every_half_year_others_every_year() {
    let dusty = enterprise_id(8);
    let key_events = history(&[(
        officer("许村"),
        REGISTERED,
        register(8, "许村", profile_with(&[ProfileFlag::DustExplosion])),
    )]);
    let plain_events = history(&[(officer("许村"), REGISTERED, register(9, "许村", plain_profile()))]);
    // H1 2019 is due on 2019-07-15 local; the year 2019 only on 2020-01-15.
    let instant = "2019-08-01T00:00:00Z";
    assert_eq!(
        requirement(&report(&key_events, instant), "R10.drill").state,
        RequirementState::Unsatisfied
    );
    assert_eq!(
        requirement(&report(&plain_events, instant), "R10.drill").state,
        RequirementState::NotYetDue
    );
    // A yearly record is refused for a half-yearly cadence.
    let rejection = given(&key_events)
        .when(
            &enterprise_user(dusty),
            "2019-08-01T00:00:00Z",
            &upload(
                dusty,
                1,
                "R10.drill",
                Coverage::Period {
                    period: "2019".parse().unwrap(),
                },
            ),
        )
        .unwrap_err();
    assert_eq!(rejection.code(), "WRONG_CADENCE");
}

#[test]
fn an_indicator_outside_the_profile_is_not_applicable() {
    let plain = history(&[(officer("许村"), REGISTERED, register(10, "许村", plain_profile()))]);
    let chemical = history(&[(
        officer("许村"),
        REGISTERED,
        register(11, "许村", profile_with(&[ProfileFlag::HazardousChemicals])),
    )]);
    assert_eq!(
        indicator(&report(&plain, "2019-03-01T00:00:00Z"), "R12"),
        IndicatorState::NotApplicable
    );
    assert_eq!(
        indicator(&report(&chemical, "2019-03-01T00:00:00Z"), "R12"),
        IndicatorState::NotImplemented
    );
    let plain_report = report(&plain, "2019-03-01T00:00:00Z");
    let chemical_report = report(&chemical, "2019-03-01T00:00:00Z");
    // Hazardous chemicals also make the enterprise key-supervised, so R12 is not the only change.
    assert!(chemical_report.not_applicable < plain_report.not_applicable);
}

#[test]
fn a_past_instant_ignores_facts_recorded_after_it() {
    let id = enterprise_id(12);
    let events = history(&[
        (officer("许村"), REGISTERED, register(12, "许村", plain_profile())),
        (
            enterprise_user(id),
            "2019-05-01T00:00:00Z",
            upload(id, 1, "R10.plan", Coverage::Once),
        ),
    ]);
    let before_upload = requirement(&report(&events, "2019-04-30T00:00:00Z"), "R10.plan").clone();
    assert_eq!(before_upload.detail, Detail::NoRecord);
    assert!(
        evaluate(
            &EnterpriseFile::from_events(&events),
            &rules(),
            at("2019-01-01T00:00:00Z")
        )
        .is_none()
    );
}

#[test]
fn a_profile_change_applies_from_its_instant() {
    let id = enterprise_id(13);
    let events = history(&[
        (officer("许村"), REGISTERED, register(13, "许村", plain_profile())),
        (
            officer("许村"),
            "2019-06-01T00:00:00Z",
            EnterpriseCommand::ChangeProfile(anquan_domain::enterprise::ChangeEnterpriseProfile {
                enterprise_id: id,
                name: "企业13".into(),
                town: anquan_domain::Town::parse("许村").unwrap(),
                industry: "化工".into(),
                profile: profile_with(&[ProfileFlag::HazardousChemicals]),
            }),
        ),
    ]);
    assert_eq!(
        indicator(&report(&events, "2019-05-31T23:59:59Z"), "R12"),
        IndicatorState::NotApplicable
    );
    assert_eq!(
        indicator(&report(&events, "2019-06-01T00:00:00Z"), "R12"),
        IndicatorState::NotImplemented
    );
}

#[test]
fn an_enterprise_with_every_record_approved_is_fully_implemented() {
    let id = enterprise_id(14);
    let rules = rules();
    let owner = enterprise_user(id);
    let reviewer = officer("许村");
    let mut file = EnterpriseFile::from_events(&history(&[(
        officer("许村"),
        REGISTERED,
        register(14, "许村", plain_profile()),
    )]));
    let mut document = 100u128;
    let now = at("2019-12-20T00:00:00Z");
    let decide = |file: &mut EnterpriseFile, actor: &Actor, command: EnterpriseCommand| {
        let context = DecisionContext {
            actor,
            rules: &rules,
            now,
        };
        for event in file.decide(&command, &context).unwrap() {
            file.apply(&event);
        }
    };
    let applicable: Vec<_> = evaluate(&file, &rules, now)
        .unwrap()
        .indicators
        .iter()
        .flat_map(|indicator| indicator.requirements.clone())
        .filter(|requirement| requirement.state != RequirementState::NotApplicable)
        .collect();
    for requirement in applicable {
        let (_, rule) = rules.requirement(&requirement.code).unwrap();
        let coverage = match &rule.evidence {
            anquan_domain::rules::Evidence::Review => Coverage::Once,
            anquan_domain::rules::Evidence::Validity { .. } => validity("2019-01-01T00:00:00Z", "2019-12-31T00:00:00Z"),
            evidence @ anquan_domain::rules::Evidence::Periodic { .. } => {
                let cadence = rules.cadence_for(evidence, file.current_profile()).unwrap();
                Coverage::Period {
                    period: cadence.period_containing(now, rules.time_zone),
                }
            }
        };
        document += 1;
        decide(
            &mut file,
            &owner,
            upload(id, document, requirement.code.as_str(), coverage),
        );
        decide(&mut file, &reviewer, approve(id, document));
    }
    let report = evaluate(&file, &rules, now).unwrap();
    assert_eq!(report.not_implemented, 0, "{report:#?}");
    assert!(report.responsibility_implemented);
}

#[test]
fn a_just_registered_enterprise_is_not_yet_due_where_only_periodic_items_apply() {
    let events = history(&[(officer("许村"), REGISTERED, register(10, "许村", plain_profile()))]);
    let start = report(&events, "2019-01-11T00:00:00Z");
    // Nothing is on file, so nothing is 已落实; the all-periodic indicators are 未到期.
    assert_eq!(start.implemented, 0, "{start:#?}");
    assert!(start.not_yet_due > 0, "{start:#?}");
    let not_yet_due: Vec<&str> = start
        .indicators
        .iter()
        .filter(|status| status.state == IndicatorState::NotYetDue)
        .map(|status| status.code.as_str())
        .collect();
    for code in &not_yet_due {
        let status = start
            .indicators
            .iter()
            .find(|status| status.code.as_str() == *code)
            .unwrap();
        for requirement in status.requirements.iter().filter(|r| r.mandatory) {
            assert!(
                matches!(
                    requirement.state,
                    RequirementState::NotYetDue | RequirementState::NotApplicable
                ),
                "{requirement:?}"
            );
            if requirement.state == RequirementState::NotYetDue {
                assert!(matches!(requirement.detail, Detail::NothingDueYet { .. }));
            }
        }
    }
    // Nothing due is missing, so 未到期 does not stop the responsibility flag by itself
    // (`[status] not_yet_due = "met"`); the missing one-off records do.
    assert!(!start.responsibility_implemented);
    // Once every first due instant has passed (the year 2019's annual records are due by
    // 2020-02-01 local), the same indicators are 未落实.
    let later = report(&events, "2020-02-02T00:00:00Z");
    assert_eq!(later.not_yet_due, 0, "{later:#?}");
    for code in not_yet_due {
        assert_eq!(indicator(&later, code), IndicatorState::NotImplemented, "{code}");
    }
}

#[test]
fn an_indicator_with_its_due_items_done_and_the_rest_not_yet_due_is_implemented() {
    let id = enterprise_id(11);
    let events = history(&[
        (officer("许村"), REGISTERED, register(11, "许村", plain_profile())),
        (
            enterprise_user(id),
            "2019-03-01T00:00:00Z",
            upload(id, 1, "R01.responsibility_system", Coverage::Once),
        ),
        (officer("许村"), "2019-03-02T00:00:00Z", approve(id, 1)),
    ]);
    assert_eq!(
        indicator(&report(&events, "2019-02-01T00:00:00Z"), "R01"),
        IndicatorState::NotImplemented
    );
    // The one-off document is on file and the annual items are not due until 2020.
    let done = report(&events, "2019-06-01T00:00:00Z");
    assert_eq!(
        requirement(&done, "R01.annual_goals").state,
        RequirementState::NotYetDue
    );
    assert_eq!(indicator(&done, "R01"), IndicatorState::Implemented);
    // After the annual items fall due without records, it is 未落实.
    assert_eq!(
        indicator(&report(&events, "2020-02-02T00:00:00Z"), "R01"),
        IndicatorState::NotImplemented
    );
}

#[test]
fn the_rule_set_says_how_a_tally_counts_not_yet_due() {
    use anquan_domain::rules::NotYetDue;
    // 3 implemented, 1 not implemented, 2 not yet due: (met, judged).
    assert_eq!(NotYetDue::Met.tally(3, 1, 2), (5, 6));
    assert_eq!(NotYetDue::Unmet.tally(3, 1, 2), (3, 6));
    assert_eq!(NotYetDue::Excluded.tally(3, 1, 2), (3, 4));
    let rules = rules();
    assert_eq!(rules.status.not_yet_due, NotYetDue::Met);
    assert_eq!(rules.metrics.not_yet_due, NotYetDue::Excluded);
}
