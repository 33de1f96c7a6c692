//! G02 应急演练完成率 (domain.md §5): an enterprise meets its drill cadence when every drill
//! period (half-yearly for key units, yearly otherwise, as `R10.drill`'s cadence in rule set v1
//! says) of the completed part of the year has an approved drill record. Cadence metrics (G02,
//! G03, D04) count completed periods only (`covers = "completed_periods"`): at 2027-01-15 they
//! cover 2026 (G03 its second half-year), and the new year's or half-year's start does not reset
//! them to about 0. An instant on local new year's midnight has just completed the past year.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod support;

use anquan_domain::compliance::{RequirementState, evaluate};
use anquan_domain::enterprise::{Coverage, EnterpriseCommand, EnterpriseFile, ReviewDecision, ReviewDocument};
use anquan_domain::metrics::{
    Covers, Measure, ServiceFacts, Window, cadence_met, completed_period, enterprise_contribution, metric_span,
    window_period,
};
use anquan_domain::rules::{ProfileFlag, RuleSet};
use anquan_domain::{Actor, EnterpriseId, Event, RequirementCode};
use support::*;

const REGISTERED: &str = "2019-01-10T02:00:00Z";
/// 2020-01-01T00:00+08:00: the instant the 2019 figures are taken at.
const YEAR_END: &str = "2019-12-31T16:00:00Z";

fn enterprise_id(n: u32) -> EnterpriseId {
    anquan_domain::enterprise::enterprise_id_for(&credit_code(n))
}

fn approve(id: EnterpriseId, document: u128) -> EnterpriseCommand {
    EnterpriseCommand::ReviewDocument(ReviewDocument {
        enterprise_id: id,
        document_id: document_id(document),
        decision: ReviewDecision::Approve { comment: None },
    })
}

fn drill(id: EnterpriseId, document: u128, period: &str) -> EnterpriseCommand {
    upload(
        id,
        document,
        "R10.drill",
        Coverage::Period {
            period: period.parse().unwrap(),
        },
    )
}

/// The enterprise's G02 contribution (numerator, denominator) at `instant`, through the same
/// path the town figures take.
fn g02(events: &[Event], instant: &str) -> (i64, i64) {
    tally("G02", events, instant)
}

/// One metric's contribution of the enterprise at `instant`.
fn tally(code: &str, events: &[Event], instant: &str) -> (i64, i64) {
    let rules = rules();
    let index = rules.metrics.index_of(code).unwrap();
    let file = EnterpriseFile::from_events(events);
    let contribution =
        enterprise_contribution(&rules.metrics, &rules, &file, &ServiceFacts::default(), at(instant)).unwrap();
    contribution.tallies[index]
}

fn drill_state(events: &[Event], instant: &str) -> RequirementState {
    evaluate(&EnterpriseFile::from_events(events), &rules(), at(instant))
        .unwrap()
        .indicators
        .iter()
        .flat_map(|indicator| &indicator.requirements)
        .find(|requirement| requirement.code.as_str() == "R10.drill")
        .unwrap()
        .state
}

/// A key unit (dust explosion) registered in January 2019 with the drills of `periods`,
/// each uploaded and approved at the instants given.
fn key_unit(n: u32, registered: &str, drills: &[(&str, &str, &str)]) -> Vec<Event> {
    let id = enterprise_id(n);
    let owner: Actor = enterprise_user(id);
    let mut steps = vec![(
        officer("许村"),
        registered,
        register(n, "许村", profile_with(&[ProfileFlag::DustExplosion])),
    )];
    for (index, (period, uploaded, approved)) in drills.iter().enumerate() {
        let document = index as u128 + 1;
        steps.push((owner.clone(), uploaded, drill(id, document, period)));
        steps.push((officer("许村"), approved, approve(id, document)));
    }
    history(&steps)
}

#[test]
fn rule_set_v1_computes_g02_as_the_drill_cadence_over_the_year_to_date() {
    let rules = rules();
    let metric = rules.metrics.metric("G02").unwrap();
    assert_eq!(metric.window, Window::Ytd);
    assert_eq!(metric.covers, Covers::CompletedPeriods);
    assert_eq!(
        metric.measure,
        Measure::CadenceMet {
            requirement: RequirementCode::parse("R10.drill").unwrap()
        }
    );
}

#[test]
fn a_key_unit_meets_its_drill_cadence_only_with_both_half_years_drilled() {
    let first_half_only = key_unit(
        1,
        REGISTERED,
        &[("2019-H1", "2019-03-01T02:00:00Z", "2019-03-05T02:00:00Z")],
    );
    // The status engine asks only for the latest half-year past its grace days (2019-H1 at new
    // year), so it calls the drill satisfied; the year's drill completion does not.
    assert_eq!(drill_state(&first_half_only, YEAR_END), RequirementState::Satisfied);
    assert_eq!(g02(&first_half_only, YEAR_END), (0, 1));

    let both = key_unit(
        2,
        REGISTERED,
        &[
            ("2019-H1", "2019-03-01T02:00:00Z", "2019-03-05T02:00:00Z"),
            ("2019-H2", "2019-10-01T02:00:00Z", "2019-10-08T02:00:00Z"),
        ],
    );
    assert_eq!(g02(&both, YEAR_END), (1, 1));
}

#[test]
fn a_plain_enterprise_needs_one_drill_in_the_year() {
    let id = enterprise_id(3);
    let registered = vec![(officer("许村"), REGISTERED, register(3, "许村", plain_profile()))];
    let none = history(&registered);
    // Nothing is due to the status engine until 2020-01-15 (未到期), but no drill was held in 2019.
    assert_eq!(drill_state(&none, YEAR_END), RequirementState::NotYetDue);
    assert_eq!(g02(&none, YEAR_END), (0, 1));

    let mut steps = registered;
    steps.push((enterprise_user(id), "2019-05-01T02:00:00Z", drill(id, 1, "2019")));
    steps.push((officer("许村"), "2019-05-03T02:00:00Z", approve(id, 1)));
    let drilled = history(&steps);
    assert_eq!(g02(&drilled, YEAR_END), (1, 1));
    // Before 2019 ended, the completed span was 2018 (the year before its first half-year
    // ended, then that half-year, in which no yearly period lies: the year before again), all
    // before the registration: nothing was due, so it is not in the rate yet.
    assert_eq!(g02(&drilled, "2019-04-30T00:00:00Z"), (0, 0));
    assert_eq!(g02(&drilled, "2019-08-01T00:00:00Z"), (0, 0));
    // 2019 is asked for from 2020-01-01 00:00 local until 2021.
    assert_eq!(g02(&none, "2020-08-01T00:00:00Z"), (0, 1));
    assert_eq!(g02(&drilled, "2020-08-01T00:00:00Z"), (1, 1));
}

#[test]
fn a_drill_counts_from_the_instant_it_was_approved() {
    let approved_in_december = key_unit(
        4,
        REGISTERED,
        &[
            ("2019-H1", "2019-03-01T02:00:00Z", "2019-03-05T02:00:00Z"),
            ("2019-H2", "2019-12-20T02:00:00Z", "2019-12-28T02:00:00Z"),
        ],
    );
    // 2019 closes at new year's midnight; the December approval is known by then.
    assert_eq!(g02(&approved_in_december, "2019-12-28T01:59:59Z"), (1, 1));
    assert_eq!(g02(&approved_in_december, YEAR_END), (1, 1));
    // Approved in January's grace days: 2019's figure did not know it at new year and knows it
    // from its approval on (a January month-end report counts it).
    let approved_in_january = key_unit(
        5,
        REGISTERED,
        &[
            ("2019-H1", "2019-03-01T02:00:00Z", "2019-03-05T02:00:00Z"),
            ("2019-H2", "2019-12-20T02:00:00Z", "2020-01-06T02:00:00Z"),
        ],
    );
    assert_eq!(g02(&approved_in_january, YEAR_END), (0, 1));
    assert_eq!(g02(&approved_in_january, "2020-01-06T01:59:59Z"), (0, 1));
    assert_eq!(g02(&approved_in_january, "2020-01-06T02:00:00Z"), (1, 1));
    assert_eq!(g02(&approved_in_january, "2020-01-31T15:59:59Z"), (1, 1));
}

#[test]
fn periods_that_ended_before_registration_are_not_asked_for() {
    let joined_in_august = key_unit(
        8,
        "2019-08-01T02:00:00Z",
        &[("2019-H2", "2019-09-01T02:00:00Z", "2019-09-03T02:00:00Z")],
    );
    assert_eq!(g02(&joined_in_august, YEAR_END), (1, 1));
}

#[test]
fn a_new_half_year_or_year_does_not_reset_the_cadence_figures() {
    let first_half_only = key_unit(
        6,
        REGISTERED,
        &[("2019-H1", "2019-03-01T02:00:00Z", "2019-03-05T02:00:00Z")],
    );
    // 2019-07-01T00:00+08:00 closes the first half-year: met, and it stays met all through the
    // second half-year, which is not judged until it ends.
    assert_eq!(g02(&first_half_only, "2019-06-30T16:00:00Z"), (1, 1));
    assert_eq!(g02(&first_half_only, "2019-06-30T16:00:01Z"), (1, 1));
    assert_eq!(g02(&first_half_only, "2019-12-31T15:59:59Z"), (1, 1));
    assert_eq!(tally("G03", &first_half_only, "2019-07-02T00:00:00Z"), (1, 1));
    // At new year 2019 is judged whole: the second half-year had no drill.
    assert_eq!(g02(&first_half_only, YEAR_END), (0, 1));
    assert_eq!(tally("G03", &first_half_only, YEAR_END), (0, 1));

    let both = key_unit(
        7,
        REGISTERED,
        &[
            ("2019-H1", "2019-03-01T02:00:00Z", "2019-03-05T02:00:00Z"),
            ("2019-H2", "2019-10-01T02:00:00Z", "2019-10-08T02:00:00Z"),
        ],
    );
    // Early January and early July: the figures are the completed periods', not ~0.
    for instant in [YEAR_END, "2020-01-05T00:00:00Z", "2020-06-30T15:59:59Z"] {
        assert_eq!(g02(&both, instant), (1, 1), "{instant}");
        assert_eq!(tally("G03", &both, instant), (1, 1), "{instant}");
    }
    // From 2020-07-01 the covered span is 2020-H1, in which it did not drill.
    assert_eq!(g02(&both, "2020-06-30T16:00:00Z"), (0, 1));
    assert_eq!(tally("G03", &both, "2020-07-05T00:00:00Z"), (0, 1));
}

#[test]
fn d04_counts_the_latest_completed_year_of_training_records() {
    let id = enterprise_id(10);
    let training = upload(
        id,
        1,
        "R04.training_records",
        Coverage::Period {
            period: "2019".parse().unwrap(),
        },
    );
    let events = history(&[
        (officer("许村"), REGISTERED, register(10, "许村", plain_profile())),
        (enterprise_user(id), "2019-03-01T02:00:00Z", training),
        (officer("许村"), "2019-03-02T02:00:00Z", approve(id, 1)),
    ]);
    // During 2019 the latest completed year is 2018: no record for it.
    assert_eq!(tally("D04", &events, "2019-11-30T16:00:00Z"), (0, 1));
    // From new year, and all through 2020 (its first half-year, then still 2019 for a yearly
    // record), 2019 is the year judged.
    for instant in [
        YEAR_END,
        "2020-01-10T00:00:00Z",
        "2020-06-30T16:00:00Z",
        "2020-12-31T15:59:59Z",
    ] {
        assert_eq!(tally("D04", &events, instant), (1, 1), "{instant}");
    }
    assert_eq!(tally("D04", &events, "2020-12-31T16:00:00Z"), (0, 1));
}

#[test]
fn the_completed_span_is_the_latest_half_year_or_the_completed_part_of_its_year() {
    let rules = rules();
    let year = |instant: &str| completed_period(Window::Ytd, at(instant), &rules).unwrap().to_string();
    let half = |instant: &str| {
        completed_period(Window::HalfYear, at(instant), &rules)
            .unwrap()
            .to_string()
    };
    assert_eq!(year("2019-12-31T15:59:59Z"), "2019-H1");
    assert_eq!(year(YEAR_END), "2019");
    assert_eq!(year("2020-01-15T00:00:00Z"), "2019");
    assert_eq!(year("2020-06-30T15:59:59Z"), "2019");
    assert_eq!(year("2020-06-30T16:00:00Z"), "2020-H1");
    assert_eq!(half("2019-12-31T15:59:59Z"), "2019-H1");
    assert_eq!(half(YEAR_END), "2019-H2");
    assert_eq!(half("2020-06-30T15:59:59Z"), "2019-H2");
    assert_eq!(half("2020-06-30T16:00:00Z"), "2020-H1");
    assert_eq!(completed_period(Window::Snapshot, at(YEAR_END), &rules), None);
    // The span a figure states: G03's is the whole half-year, A08's the year up to the instant.
    let g03 = metric_span(rules.metrics.metric("G03").unwrap(), at("2020-01-15T00:00:00Z"), &rules);
    assert_eq!((g03.start, g03.end), (at("2019-06-30T16:00:00Z"), at(YEAR_END)));
    assert!(g03.completed);
    let a08 = metric_span(rules.metrics.metric("A08").unwrap(), at("2020-01-15T00:00:00Z"), &rules);
    assert_eq!((a08.start, a08.end), (at(YEAR_END), at("2020-01-15T00:00:00Z")));
    assert!(!a08.completed);
    let a01 = metric_span(rules.metrics.metric("A01").unwrap(), at(YEAR_END), &rules);
    assert_eq!((a01.start, a01.end, a01.period), (at(YEAR_END), at(YEAR_END), None));
}

#[test]
fn a_requirement_outside_the_profile_leaves_the_enterprise_out_of_the_rate() {
    let rules = rules();
    let code = RequirementCode::parse("R11.dust_cleaning_log").unwrap();
    let plain = EnterpriseFile::from_events(&history(&[(
        officer("许村"),
        REGISTERED,
        register(9, "许村", plain_profile()),
    )]));
    assert_eq!(
        cadence_met(&plain, &rules, &code, at("2018-12-31T16:00:00Z"), at(YEAR_END)),
        None
    );
    let before_registration = at("2019-01-01T00:00:00Z");
    assert_eq!(
        cadence_met(
            &plain,
            &rules,
            &RequirementCode::parse("R10.drill").unwrap(),
            at("2018-12-31T16:00:00Z"),
            before_registration
        ),
        None
    );
}

#[test]
fn a_window_asked_on_a_boundary_is_the_period_that_ends_there() {
    let rules = rules();
    let year = |instant: &str| window_period(Window::Ytd, at(instant), &rules).unwrap().to_string();
    let half = |instant: &str| {
        window_period(Window::HalfYear, at(instant), &rules)
            .unwrap()
            .to_string()
    };
    assert_eq!(year("2019-12-31T15:59:59Z"), "2019");
    assert_eq!(year(YEAR_END), "2019");
    assert_eq!(year("2019-12-31T16:00:00.000001Z"), "2020");
    assert_eq!(half("2019-06-30T16:00:00Z"), "2019-H1");
    assert_eq!(half("2019-06-30T16:00:01Z"), "2019-H2");
    assert_eq!(window_period(Window::Snapshot, at(YEAR_END), &rules), None);
}

fn with_metrics(edit: impl Fn(String) -> String) -> Result<RuleSet, anquan_domain::rules::RuleSetError> {
    let mut files = anquan_domain::rules::builtin_v1_files();
    let metrics = files.get_mut("metrics.toml").unwrap();
    *metrics = edit(std::mem::take(metrics));
    RuleSet::from_files(&files)
}

#[test]
fn the_drill_cadence_measure_needs_a_window_and_a_periodic_requirement() {
    let g02 = "measure = \"cadence_met\"\nrequirement = \"R10.drill\"";
    assert!(with_metrics(|text| text).is_ok());
    let snapshot = with_metrics(|text| {
        let at = text.find(g02).unwrap();
        let window = text[..at].rfind("window = \"ytd\"").unwrap();
        format!("{}window = \"snapshot\"{}", &text[..window], &text[window + 14..])
    })
    .unwrap_err();
    assert!(snapshot.to_string().contains("needs a window"), "{snapshot}");
    let review =
        with_metrics(|text| text.replace(g02, "measure = \"cadence_met\"\nrequirement = \"R10.plan\"")).unwrap_err();
    assert!(review.to_string().contains("not periodic"), "{review}");
    // Completed periods only mean something for the cadence measures.
    let counted = with_metrics(|text| {
        text.replacen(
            "unit = \"count\"\nmeasure = \"registered_in_window\"",
            "covers = \"completed_periods\"\nunit = \"count\"\nmeasure = \"registered_in_window\"",
            1,
        )
    })
    .unwrap_err();
    assert!(counted.to_string().contains("completed_periods"), "{counted}");
}
