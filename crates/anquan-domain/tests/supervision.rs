//! The supervision gate: inspections, hazards, deadlines (one instant before and after),
//! rectification and verification, the veto, each colour rule, and who may do what.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests abort on broken fixtures")]

mod support;

use anquan_domain::compliance::{Veto, evaluate};
use anquan_domain::enterprise::event::{CriterionRef, HazardCategory, HazardLevel, HazardSource, InspectionKind};
use anquan_domain::enterprise::hazard::HazardState;
use anquan_domain::enterprise::supervision::{
    ExtendHazardDeadline, NewHazard, RecordHazard, RecordInspection, ReportAccident, SubmitRectification,
    VerifyRectification,
};
use anquan_domain::enterprise::{DecisionContext, EnterpriseCommand, EnterpriseFile, enterprise_id_for};
use anquan_domain::risk::{assess, colour_history};
use anquan_domain::rules::{ProfileFlag, RiskColour, Severity};
use anquan_domain::{Actor, EnterpriseId, HazardId, InspectionId, Instant};
use chrono::Duration;
use support::*;

const REGISTERED: &str = "2024-01-02T02:00:00Z";
const COMPLIANT_AT: &str = "2024-03-10T02:00:00Z";
/// April's monthly records were due 15 days after April (local), by 2024-05-15T16:00Z.
const APRIL_RECORDS_LATE: &str = "2024-05-16T00:00:00Z";

fn id(n: u32) -> EnterpriseId {
    enterprise_id_for(&credit_code(n))
}

fn hazard_id(n: u128) -> HazardId {
    HazardId::from_uuid(uuid::Uuid::from_u128(n))
}

fn general(n: u128, deadline: Option<Instant>) -> NewHazard {
    NewHazard {
        hazard_id: hazard_id(n),
        category: HazardCategory::Fire,
        level: HazardLevel::General,
        severity: Some(Severity::Minor),
        criterion: None,
        basis: None,
        description: "消防通道堵塞".into(),
        photos: vec![file_ref(9)],
        deadline,
    }
}

fn major(n: u128, catalogue: &str, item: &str) -> NewHazard {
    NewHazard {
        hazard_id: hazard_id(n),
        category: HazardCategory::Dust,
        level: HazardLevel::Major,
        severity: None,
        criterion: Some(CriterionRef {
            catalogue: catalogue.into(),
            item: item.into(),
        }),
        basis: None,
        description: "干式除尘系统未采取任何爆炸防控措施".into(),
        photos: vec![],
        deadline: None,
    }
}

fn inspection(enterprise: EnterpriseId, n: u128, when: &str, hazards: Vec<NewHazard>) -> EnterpriseCommand {
    EnterpriseCommand::RecordInspection(RecordInspection {
        enterprise_id: enterprise,
        inspection_id: InspectionId::from_uuid(uuid::Uuid::from_u128(n)),
        kind: InspectionKind::OnSite,
        inspected_at: at(when),
        inspectors: vec!["张三".into(), "李四".into()],
        documents: vec![],
        notes: String::new(),
        hazards,
    })
}

/// Decides and applies, panicking on a refusal.
fn apply(file: &mut EnterpriseFile, actor: &Actor, now: &str, command: EnterpriseCommand) {
    let rules = rules();
    let context = DecisionContext {
        actor,
        rules: &rules,
        now: at(now),
    };
    for event in file
        .decide(&command, &context)
        .unwrap_or_else(|rejection| panic!("{rejection}"))
    {
        file.apply(&event);
    }
}

fn refused(file: &EnterpriseFile, actor: &Actor, now: &str, command: EnterpriseCommand) -> &'static str {
    let rules = rules();
    let context = DecisionContext {
        actor,
        rules: &rules,
        now: at(now),
    };
    file.decide(&command, &context).unwrap_err().code()
}

fn colour(file: &EnterpriseFile, instant: Instant) -> (RiskColour, Option<String>) {
    let assessment = assess(file, &rules(), instant).unwrap();
    (assessment.colour, assessment.rule)
}

fn compliant(n: u32, profile: anquan_domain::rules::EnterpriseProfile) -> EnterpriseFile {
    fully_compliant(n, "许村", profile, REGISTERED, COMPLIANT_AT)
}

#[test]
fn a_fully_compliant_plain_enterprise_is_blue() {
    let file = compliant(1, plain_profile());
    assert_eq!(colour(&file, at(COMPLIANT_AT)), (RiskColour::Blue, None));
}

#[test]
fn a_hazard_is_overdue_from_the_first_instant_after_its_deadline_and_turns_orange() {
    let mut file = compliant(2, plain_profile());
    let deadline = at("2024-03-20T16:00:00Z");
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(id(2), 1, COMPLIANT_AT, vec![general(1, Some(deadline))]),
    );
    let hazard = &file.hazards[&hazard_id(1)];
    assert!(!hazard.overdue_at(deadline));
    assert!(hazard.overdue_at(deadline + Duration::microseconds(1)));
    assert_eq!(colour(&file, deadline).0, RiskColour::Yellow, "open, not yet overdue");
    assert_eq!(
        colour(&file, deadline + Duration::microseconds(1)),
        (RiskColour::Orange, Some("overdue_hazard".into()))
    );
    // The veto: an overdue government hazard makes the responsibility not implemented.
    let rules = rules();
    assert!(evaluate(&file, &rules, deadline).unwrap().responsibility_implemented);
    let late = evaluate(&file, &rules, deadline + Duration::microseconds(1)).unwrap();
    assert!(!late.responsibility_implemented);
    assert_eq!(
        late.vetoes,
        vec![Veto::OverdueGovernmentHazard {
            hazard_id: hazard_id(1),
            deadline
        }]
    );
    // Over 30 days overdue, it is red.
    assert_eq!(colour(&file, deadline + Duration::days(30)).0, RiskColour::Orange);
    assert_eq!(
        colour(&file, deadline + Duration::days(30) + Duration::microseconds(1)),
        (RiskColour::Red, Some("government_hazard_overdue_over_30_days".into()))
    );
}

#[test]
fn the_default_deadline_ends_the_local_day_so_many_days_after_finding() {
    let mut file = compliant(3, plain_profile());
    // Found 10 March 10:00 local; minor: 7 days → the end of 17 March local = 17 March 16:00Z.
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(id(3), 1, COMPLIANT_AT, vec![general(1, None)]),
    );
    assert_eq!(file.hazards[&hazard_id(1)].deadline(), at("2024-03-17T16:00:00Z"));
}

#[test]
fn an_extension_moves_the_deadline_from_the_instant_it_is_approved() {
    let mut file = compliant(4, plain_profile());
    let deadline = at("2024-03-20T16:00:00Z");
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(id(4), 1, COMPLIANT_AT, vec![general(1, Some(deadline))]),
    );
    let extend = EnterpriseCommand::ExtendHazardDeadline(ExtendHazardDeadline {
        enterprise_id: id(4),
        hazard_id: hazard_id(1),
        deadline: at("2024-04-20T16:00:00Z"),
        reason: "设备到货延迟".into(),
    });
    apply(&mut file, &inspector("许村"), "2024-03-25T00:00:00Z", extend);
    let hazard = &file.hazards[&hazard_id(1)];
    assert!(
        hazard.overdue_at(at("2024-03-24T23:59:59Z")),
        "overdue before the extension was approved"
    );
    assert!(!hazard.overdue_at(at("2024-03-25T00:00:00Z")));
    assert!(hazard.overdue_at(at("2024-04-20T16:00:00.000001Z")));
}

#[test]
fn rectification_closes_a_hazard_only_when_verified_and_records_first_time_pass() {
    let mut file = compliant(5, plain_profile());
    let owner = enterprise_user(id(5));
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(id(5), 1, COMPLIANT_AT, vec![general(1, None), general(2, None)]),
    );
    let submit = |hazard: u128, rectification: u128| {
        EnterpriseCommand::SubmitRectification(SubmitRectification {
            enterprise_id: id(5),
            hazard_id: hazard_id(hazard),
            rectification_id: uuid::Uuid::from_u128(rectification),
            text: "已清理通道".into(),
            photos: vec![file_ref(3)],
        })
    };
    let verify = |hazard: u128, rectification: u128, returned: Option<&str>| {
        EnterpriseCommand::VerifyRectification(VerifyRectification {
            enterprise_id: id(5),
            hazard_id: hazard_id(hazard),
            rectification_id: uuid::Uuid::from_u128(rectification),
            returned_because: returned.map(Into::into),
        })
    };
    apply(&mut file, &owner, "2024-03-11T00:00:00Z", submit(1, 11));
    assert_eq!(
        file.hazards[&hazard_id(1)].state_at(at("2024-03-11T00:00:00Z")),
        HazardState::Submitted
    );
    assert_eq!(
        refused(&file, &owner, "2024-03-11T01:00:00Z", submit(1, 12)),
        "RECTIFICATION_PENDING"
    );
    apply(
        &mut file,
        &inspector("许村"),
        "2024-03-12T00:00:00Z",
        verify(1, 11, None),
    );
    let closed = &file.hazards[&hazard_id(1)];
    assert_eq!(closed.state_at(at("2024-03-12T00:00:00Z")), HazardState::Closed);
    assert!(closed.rectifications[0].verdict.as_ref().unwrap().first_time);
    // Verifying twice and rectifying a closed hazard are refused.
    assert_eq!(
        refused(&file, &inspector("许村"), "2024-03-13T00:00:00Z", verify(1, 11, None)),
        "HAZARD_CLOSED"
    );
    assert_eq!(
        refused(&file, &owner, "2024-03-13T00:00:00Z", submit(1, 13)),
        "HAZARD_CLOSED"
    );
    // A returned rectification keeps the hazard open; the next pass is not first-time.
    apply(&mut file, &owner, "2024-03-11T00:00:00Z", submit(2, 21));
    apply(
        &mut file,
        &inspector("许村"),
        "2024-03-12T00:00:00Z",
        verify(2, 21, Some("照片不清晰")),
    );
    assert_eq!(
        file.hazards[&hazard_id(2)].state_at(at("2024-03-12T00:00:00Z")),
        HazardState::Open
    );
    apply(&mut file, &owner, "2024-03-13T00:00:00Z", submit(2, 22));
    apply(
        &mut file,
        &inspector("许村"),
        "2024-03-14T00:00:00Z",
        verify(2, 22, None),
    );
    assert!(
        !file.hazards[&hazard_id(2)].rectifications[1]
            .verdict
            .as_ref()
            .unwrap()
            .first_time
    );
}

#[test]
fn a_deadline_before_the_inspection_and_an_unknown_hazard_are_refused() {
    let file = compliant(6, plain_profile());
    let before = general(1, Some(at("2024-03-09T00:00:00Z")));
    assert_eq!(
        refused(
            &file,
            &inspector("许村"),
            COMPLIANT_AT,
            inspection(id(6), 1, COMPLIANT_AT, vec![before])
        ),
        "DEADLINE_BEFORE_FINDING"
    );
    let verify = EnterpriseCommand::VerifyRectification(VerifyRectification {
        enterprise_id: id(6),
        hazard_id: hazard_id(99),
        rectification_id: uuid::Uuid::from_u128(1),
        returned_because: None,
    });
    assert_eq!(
        refused(&file, &inspector("许村"), COMPLIANT_AT, verify),
        "UNKNOWN_HAZARD"
    );
}

#[test]
fn a_major_hazard_cites_the_catalogue_in_force_on_the_day_found() {
    let file = compliant(7, plain_profile());
    let command = |hazard| inspection(id(7), 1, COMPLIANT_AT, vec![hazard]);
    // 2024: the 2023 catalogue (应急管理部令第10号) is in force, the 2017 one no longer.
    assert_eq!(
        refused(
            &file,
            &inspector("许村"),
            COMPLIANT_AT,
            command(major(1, "gm2017", "dust-3"))
        ),
        "CRITERION_NOT_IN_FORCE"
    );
    assert_eq!(
        refused(
            &file,
            &inspector("许村"),
            COMPLIANT_AT,
            command(major(1, "mem10_2023", "dust-99"))
        ),
        "CRITERION_NOT_IN_FORCE"
    );
    let mut no_criterion = major(1, "mem10_2023", "dust-3");
    no_criterion.criterion = None;
    assert_eq!(
        refused(&file, &inspector("许村"), COMPLIANT_AT, command(no_criterion)),
        "CRITERION_REQUIRED"
    );
    let mut accepted = file.clone();
    apply(
        &mut accepted,
        &inspector("许村"),
        COMPLIANT_AT,
        command(major(1, "mem10_2023", "dust-3")),
    );
    // An open major hazard: a veto, and red.
    let report = evaluate(&accepted, &rules(), at(COMPLIANT_AT)).unwrap();
    assert_eq!(
        report.vetoes,
        vec![Veto::OpenMajorHazard {
            hazard_id: hazard_id(1)
        }]
    );
    assert_eq!(
        colour(&accepted, at(COMPLIANT_AT)),
        (RiskColour::Red, Some("open_major_hazard".into()))
    );
    // The 2017 catalogue applied to a hazard found on 14 May 2023, local time.
    let early = fully_compliant(
        8,
        "许村",
        plain_profile(),
        "2023-01-02T02:00:00Z",
        "2023-05-14T10:00:00Z",
    );
    let mut early_found = early.clone();
    apply(
        &mut early_found,
        &inspector("许村"),
        "2023-05-14T10:00:00Z",
        inspection(id(8), 1, "2023-05-14T10:00:00Z", vec![major(1, "gm2017", "dust-3")]),
    );
    assert_eq!(
        refused(
            &early,
            &inspector("许村"),
            "2023-05-14T10:00:00Z",
            inspection(id(8), 2, "2023-05-14T10:00:00Z", vec![major(2, "mem10_2023", "dust-3")])
        ),
        "CRITERION_NOT_IN_FORCE"
    );
}

#[test]
fn town_inspectors_act_only_in_their_town_and_enterprises_only_on_their_own_hazards() {
    let mut file = compliant(9, plain_profile());
    assert_eq!(
        refused(
            &file,
            &inspector("长安"),
            COMPLIANT_AT,
            inspection(id(9), 1, COMPLIANT_AT, vec![])
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        refused(
            &file,
            &officer("许村"),
            COMPLIANT_AT,
            inspection(id(9), 1, COMPLIANT_AT, vec![])
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        refused(
            &file,
            &enterprise_user(id(9)),
            COMPLIANT_AT,
            inspection(id(9), 1, COMPLIANT_AT, vec![])
        ),
        "FORBIDDEN"
    );
    apply(
        &mut file,
        &city_inspector(),
        COMPLIANT_AT,
        inspection(id(9), 1, COMPLIANT_AT, vec![general(1, None)]),
    );
    let submit = EnterpriseCommand::SubmitRectification(SubmitRectification {
        enterprise_id: id(9),
        hazard_id: hazard_id(1),
        rectification_id: uuid::Uuid::from_u128(5),
        text: "已整改".into(),
        photos: vec![],
    });
    assert_eq!(
        refused(&file, &enterprise_user(id(10)), COMPLIANT_AT, submit.clone()),
        "FORBIDDEN"
    );
    apply(&mut file, &enterprise_user(id(9)), COMPLIANT_AT, submit);
    let verify = EnterpriseCommand::VerifyRectification(VerifyRectification {
        enterprise_id: id(9),
        hazard_id: hazard_id(1),
        rectification_id: uuid::Uuid::from_u128(5),
        returned_because: None,
    });
    assert_eq!(
        refused(&file, &enterprise_user(id(9)), COMPLIANT_AT, verify.clone()),
        "FORBIDDEN"
    );
    assert_eq!(
        refused(&file, &inspector("长安"), COMPLIANT_AT, verify.clone()),
        "FORBIDDEN"
    );
    apply(&mut file, &inspector("许村"), COMPLIANT_AT, verify);
}

#[test]
fn a_self_found_overdue_hazard_is_orange_but_no_veto() {
    let mut file = compliant(11, plain_profile());
    let record = EnterpriseCommand::RecordHazard(RecordHazard {
        enterprise_id: id(11),
        source: HazardSource::SelfInspection,
        hazard: general(1, Some(at("2024-03-12T00:00:00Z"))),
    });
    apply(&mut file, &enterprise_user(id(11)), COMPLIANT_AT, record);
    let later = at("2024-03-13T00:00:00Z");
    assert!(evaluate(&file, &rules(), later).unwrap().vetoes.is_empty());
    assert_eq!(colour(&file, later).0, RiskColour::Orange);
}

#[test]
fn a_fatal_accident_is_a_veto_and_red_for_twelve_months() {
    let mut file = compliant(12, plain_profile());
    let report = EnterpriseCommand::ReportAccident(ReportAccident {
        enterprise_id: id(12),
        accident_id: uuid::Uuid::from_u128(1),
        occurred_at: at("2024-03-01T00:00:00Z"),
        fatalities: 1,
        description: "机械伤害".into(),
    });
    apply(&mut file, &city_inspector(), COMPLIANT_AT, report);
    assert_eq!(
        colour(&file, at(COMPLIANT_AT)),
        (RiskColour::Red, Some("fatal_accident_within_12_months".into()))
    );
    assert!(
        !evaluate(&file, &rules(), at(COMPLIANT_AT))
            .unwrap()
            .responsibility_implemented
    );
    // Before it was reported, nobody knew.
    assert_eq!(
        colour(&file, at("2024-03-09T00:00:00Z")).1.as_deref(),
        Some("compliance_below_70_percent")
    );
}

#[test]
fn ten_hazards_in_the_last_inspection_make_an_enterprise_orange() {
    let mut file = compliant(13, plain_profile());
    let hazards = (1..=10).map(|n| general(n, Some(at("2024-06-01T00:00:00Z")))).collect();
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(id(13), 1, COMPLIANT_AT, hazards),
    );
    assert_eq!(
        colour(&file, at(COMPLIANT_AT)),
        (
            RiskColour::Orange,
            Some("ten_or_more_hazards_in_last_inspection".into())
        )
    );
}

#[test]
fn compliance_below_seventy_percent_is_orange_below_one_hundred_yellow() {
    // Registered and nothing uploaded: far below 70 %.
    let events = history(&[(officer("许村"), REGISTERED, register(14, "许村", plain_profile()))]);
    let file = EnterpriseFile::from_events(&events);
    assert_eq!(
        colour(&file, at(COMPLIANT_AT)),
        (RiskColour::Orange, Some("compliance_below_70_percent".into()))
    );
    // Fully compliant, then the April monthly records fall due unrecorded: below 100 %, yellow.
    let compliant = compliant(15, plain_profile());
    let expired = at(APRIL_RECORDS_LATE);
    let assessment = assess(&compliant, &rules(), expired).unwrap();
    assert!(
        assessment.compliance_percent < 100 && assessment.compliance_percent >= 70,
        "{assessment:?}"
    );
    assert_eq!(assessment.colour, RiskColour::Yellow);
}

#[test]
fn a_key_unit_below_ninety_percent_is_orange_and_inherent_risk_is_yellow() {
    let key = compliant(16, profile_with(&[ProfileFlag::HazardousChemicals]));
    assert_eq!(
        colour(&key, at(COMPLIANT_AT)),
        (RiskColour::Yellow, Some("inherent_risk".into()))
    );
    let assessment = assess(&key, &rules(), at(APRIL_RECORDS_LATE)).unwrap();
    assert!(assessment.compliance_percent < 90, "{assessment:?}");
    assert_eq!(assessment.rule.as_deref(), Some("key_unit_compliance_below_90_percent"));
}

#[test]
fn a_key_unit_not_implemented_for_three_month_ends_is_red() {
    let events = history(&[(
        officer("许村"),
        REGISTERED,
        register(17, "许村", profile_with(&[ProfileFlag::DustExplosion])),
    )]);
    let file = EnterpriseFile::from_events(&events);
    // End of Jan, Feb, Mar all not implemented: red from April.
    assert_eq!(colour(&file, at("2024-03-15T00:00:00Z")).0, RiskColour::Orange);
    assert_eq!(
        colour(&file, at("2024-04-15T00:00:00Z")),
        (RiskColour::Red, Some("key_unit_not_implemented_3_months".into()))
    );
}

#[test]
fn the_colour_history_records_each_change() {
    let mut file = compliant(18, plain_profile());
    let deadline = at("2024-03-20T16:00:00Z");
    apply(
        &mut file,
        &inspector("许村"),
        "2024-03-11T00:00:00Z",
        inspection(id(18), 1, "2024-03-11T00:00:00Z", vec![general(1, Some(deadline))]),
    );
    let history = colour_history(&file, &rules(), at(COMPLIANT_AT), at("2024-03-25T00:00:00Z"));
    let colours: Vec<_> = history.iter().map(|change| (change.at, change.colour)).collect();
    assert_eq!(
        colours,
        vec![
            (at(COMPLIANT_AT), RiskColour::Blue),
            (at("2024-03-11T00:00:00Z"), RiskColour::Yellow),
            (deadline + Duration::microseconds(1), RiskColour::Orange),
        ]
    );
}

/// Every item of every catalogue can be cited on a day its catalogue is in force, and then makes
/// the hazard major (veto and red): the walk fails on the first item that cannot be cited.
#[test]
fn every_catalogue_item_can_be_cited_when_recording_a_major_hazard() {
    let rules = rules();
    let catalogues = &rules.supervision.major_hazard_catalogues;
    assert!(
        catalogues.len() >= 3,
        "the 2017 and 2023 industry-and-trade and the chemicals catalogues"
    );
    let mut cited = 0;
    for (index, catalogue) in catalogues.iter().enumerate() {
        // Noon (+08:00) of the catalogue's second day in force.
        let day = catalogue.in_force_from.succ_opt().unwrap();
        assert!(catalogue.in_force_on(day));
        let found = format!("{day}T04:00:00Z");
        let registered = format!("{}T02:00:00Z", catalogue.in_force_from);
        let n = 700 + u32::try_from(index).unwrap();
        let mut file = EnterpriseFile::default();
        apply(
            &mut file,
            &officer("许村"),
            &registered,
            register(n, "许村", plain_profile()),
        );
        for (k, item) in catalogue.items.iter().enumerate() {
            let mut hazard = major(1 + k as u128, &catalogue.code, &item.code);
            hazard.description = item.text.clone();
            let command = inspection(id(n), 1 + k as u128, &found, vec![hazard]);
            let rules_ref = &rules;
            let context = DecisionContext {
                actor: &inspector("许村"),
                rules: rules_ref,
                now: at(&found),
            };
            let events = file.decide(&command, &context).unwrap_or_else(|rejection| {
                panic!("{}/{} cannot be cited on {day}: {rejection}", catalogue.code, item.code)
            });
            for event in &events {
                file.apply(event);
            }
            assert!(
                evaluate(&file, &rules, at(&found))
                    .unwrap()
                    .vetoes
                    .contains(&Veto::OpenMajorHazard {
                        hazard_id: hazard_id(1 + k as u128)
                    }),
                "{}/{} does not veto",
                catalogue.code,
                item.code
            );
            cited += 1;
        }
    }
    let held: usize = catalogues.iter().map(|catalogue| catalogue.items.len()).sum();
    assert_eq!(cited, held);
}

/// A catalogue of another scope is in force beside the industry-and-trade one: on one day an
/// inspector may cite either, and each item only of its own catalogue.
#[test]
fn the_hazardous_chemicals_catalogue_is_in_force_beside_the_industry_and_trade_one() {
    let rules = rules();
    let day = at(COMPLIANT_AT).with_timezone(&rules.time_zone).date_naive();
    let mut in_force: Vec<&str> = rules
        .supervision
        .catalogues_in_force(day)
        .map(|catalogue| catalogue.code.as_str())
        .collect();
    in_force.sort_unstable();
    assert_eq!(in_force, vec!["hc2017", "mem10_2023"]);
    let file = compliant(71, plain_profile());
    let command = |hazard| inspection(id(71), 1, COMPLIANT_AT, vec![hazard]);
    let mut chemicals = file.clone();
    apply(
        &mut chemicals,
        &inspector("许村"),
        COMPLIANT_AT,
        command(major(1, "hc2017", "chem-6")),
    );
    assert_eq!(
        refused(
            &file,
            &inspector("许村"),
            COMPLIANT_AT,
            command(major(1, "hc2017", "dust-3"))
        ),
        "CRITERION_NOT_IN_FORCE"
    );
}

/// A major hazard with a free-text basis is "major, pending confirmation": general for the veto
/// and the colour until a town officer or the city admin confirms it; then it counts as major.
#[test]
fn a_free_text_major_hazard_counts_only_after_an_official_confirms_it() {
    use anquan_domain::enterprise::supervision::ConfirmMajorHazard;
    let mut file = compliant(72, plain_profile());
    let mut free_text = major(1, "", "");
    free_text.criterion = None;
    free_text.basis = Some("定型机导热油炉与车间未分隔（第九条原文未收录）".into());
    // Both a criterion and a basis, or a basis on a general hazard: refused.
    let mut both = major(1, "mem10_2023", "dust-3");
    both.basis = free_text.basis.clone();
    assert_eq!(
        refused(
            &file,
            &inspector("许村"),
            COMPLIANT_AT,
            inspection(id(72), 1, COMPLIANT_AT, vec![both])
        ),
        "BASIS_NOT_ALLOWED"
    );
    let mut general_with_basis = general(1, None);
    general_with_basis.basis = free_text.basis.clone();
    assert_eq!(
        refused(
            &file,
            &inspector("许村"),
            COMPLIANT_AT,
            inspection(id(72), 1, COMPLIANT_AT, vec![general_with_basis])
        ),
        "BASIS_NOT_ALLOWED"
    );
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(id(72), 1, COMPLIANT_AT, vec![free_text]),
    );
    let found = at(COMPLIANT_AT);
    let hazard = &file.hazards[&hazard_id(1)];
    assert_eq!(hazard.level, HazardLevel::Major);
    assert!(hazard.pending_confirmation_at(found));
    assert_eq!(hazard.level_at(found), HazardLevel::General);
    // Pending: no veto, not red (an open hazard makes it yellow).
    assert!(evaluate(&file, &rules(), found).unwrap().vetoes.is_empty());
    assert_eq!(colour(&file, found).0, RiskColour::Yellow);
    let confirm = |note: &str| {
        EnterpriseCommand::ConfirmMajorHazard(ConfirmMajorHazard {
            enterprise_id: id(72),
            hazard_id: hazard_id(1),
            note: note.into(),
        })
    };
    let later = "2024-03-11T02:00:00Z";
    // Inspectors record; officials confirm, each in their own town.
    assert_eq!(refused(&file, &inspector("许村"), later, confirm("确认")), "FORBIDDEN");
    assert_eq!(refused(&file, &officer("长安"), later, confirm("确认")), "FORBIDDEN");
    assert_eq!(refused(&file, &officer("许村"), later, confirm(" ")), "INVALID_FIELD");
    apply(
        &mut file,
        &officer("许村"),
        later,
        confirm("经核对第九条，确认为重大事故隐患"),
    );
    let confirmed = at(later);
    assert!(!file.hazards[&hazard_id(1)].pending_confirmation_at(confirmed));
    // Before the confirmation it still read as general; from it, major: veto and red.
    assert!(evaluate(&file, &rules(), found).unwrap().vetoes.is_empty());
    assert_eq!(
        evaluate(&file, &rules(), confirmed).unwrap().vetoes,
        vec![Veto::OpenMajorHazard {
            hazard_id: hazard_id(1)
        }]
    );
    assert_eq!(
        colour(&file, confirmed),
        (RiskColour::Red, Some("open_major_hazard".into()))
    );
    // Confirming twice, or confirming a hazard that cites an item: refused.
    assert_eq!(
        refused(&file, &admin(), later, confirm("再次确认")),
        "NOT_PENDING_CONFIRMATION"
    );
}

fn self_reported(file: &mut EnterpriseFile, n: u32, hazard: NewHazard) {
    let record = EnterpriseCommand::RecordHazard(RecordHazard {
        enterprise_id: id(n),
        source: HazardSource::SelfInspection,
        hazard,
    });
    apply(file, &enterprise_user(id(n)), COMPLIANT_AT, record);
}

fn rectify(
    n: u32,
    hazard: u128,
    rectification: u128,
    photos: Vec<anquan_domain::enterprise::FileRef>,
) -> EnterpriseCommand {
    EnterpriseCommand::SubmitRectification(SubmitRectification {
        enterprise_id: id(n),
        hazard_id: hazard_id(hazard),
        rectification_id: uuid::Uuid::from_u128(rectification),
        text: "已清理消防通道".into(),
        photos,
    })
}

#[test]
fn an_open_self_reported_hazard_counts_toward_neither_colour_nor_veto_until_overdue() {
    let mut file = compliant(40, plain_profile());
    self_reported(&mut file, 40, general(1, Some(at("2024-03-12T00:00:00Z"))));
    assert_eq!(colour(&file, at(COMPLIANT_AT)), (RiskColour::Blue, None));
    assert!(evaluate(&file, &rules(), at(COMPLIANT_AT)).unwrap().vetoes.is_empty());
}

#[test]
fn the_enterprise_closes_its_own_general_hazard_with_evidence_and_a_failed_spot_check_reopens_it() {
    use anquan_domain::enterprise::supervision::SpotCheckHazard;
    let mut file = compliant(41, plain_profile());
    self_reported(&mut file, 41, general(1, Some(at("2024-03-12T00:00:00Z"))));
    // No photo, no evidence: refused.
    assert_eq!(
        refused(&file, &enterprise_user(id(41)), COMPLIANT_AT, rectify(41, 1, 7, vec![])),
        "INVALID_FIELD"
    );
    let closed_at = "2024-03-10T03:00:00Z";
    apply(
        &mut file,
        &enterprise_user(id(41)),
        closed_at,
        rectify(41, 1, 7, vec![file_ref(3)]),
    );
    let hazard = &file.hazards[&hazard_id(1)];
    assert_eq!(hazard.state_at(at(closed_at)), HazardState::Closed);
    let check = |failed: Option<&str>| {
        EnterpriseCommand::SpotCheckHazard(SpotCheckHazard {
            enterprise_id: id(41),
            hazard_id: hazard_id(1),
            failed_because: failed.map(str::to_owned),
        })
    };
    assert_eq!(
        refused(&file, &enterprise_user(id(41)), closed_at, check(None)),
        "FORBIDDEN"
    );
    assert_eq!(refused(&file, &officer("许村"), closed_at, check(None)), "FORBIDDEN");
    let checked_at = "2024-03-14T03:00:00Z";
    apply(&mut file, &inspector("许村"), checked_at, check(Some("通道仍堵塞")));
    let hazard = &file.hazards[&hazard_id(1)];
    // Closed between the closure and the check; open (and overdue) after it.
    assert_eq!(hazard.state_at(at("2024-03-13T00:00:00Z")), HazardState::Closed);
    assert_eq!(hazard.state_at(at(checked_at)), HazardState::Open);
    assert!(hazard.overdue_at(at(checked_at)));
    assert_eq!(colour(&file, at(checked_at)).0, RiskColour::Orange);
    assert_eq!(
        refused(&file, &inspector("许村"), checked_at, check(None)),
        "NOT_SELF_CLOSED"
    );
    // From then on only an inspector closes it.
    apply(
        &mut file,
        &enterprise_user(id(41)),
        checked_at,
        rectify(41, 1, 8, vec![file_ref(4)]),
    );
    assert_eq!(
        file.hazards[&hazard_id(1)].state_at(at(checked_at)),
        HazardState::Submitted
    );
}

#[test]
fn a_government_hazard_still_needs_an_inspector_to_close_it() {
    let mut file = compliant(42, plain_profile());
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(id(42), 1, COMPLIANT_AT, vec![general(1, None)]),
    );
    apply(
        &mut file,
        &enterprise_user(id(42)),
        COMPLIANT_AT,
        rectify(42, 1, 7, vec![file_ref(3)]),
    );
    assert_eq!(
        file.hazards[&hazard_id(1)].state_at(at(COMPLIANT_AT)),
        HazardState::Submitted
    );
}

#[test]
fn the_spot_check_sample_is_deterministic_and_near_its_rate() {
    use anquan_domain::enterprise::supervision::drawn_for_spot_check;
    let instant = at(COMPLIANT_AT);
    let drawn = (0..10_000_u128)
        .filter(|n| drawn_for_spot_check(hazard_id(*n), instant, 20))
        .count();
    assert!((1_800..=2_200).contains(&drawn), "{drawn} of 10,000 drawn at 20 %");
    assert!((0..100_u128).all(|n| !drawn_for_spot_check(hazard_id(n), instant, 0)));
    assert!((0..100_u128).all(|n| drawn_for_spot_check(hazard_id(n), instant, 100)));
    assert_eq!(
        drawn_for_spot_check(hazard_id(5), instant, 20),
        drawn_for_spot_check(hazard_id(5), instant, 20)
    );
}

#[test]
fn a_listed_hazard_vetoes_and_stays_red_until_the_city_lifts_the_listing_even_once_verified() {
    use anquan_domain::enterprise::listing::{LiftHazardListing, ListHazard, RequestListingLift};
    let mut file = compliant(73, plain_profile());
    apply(
        &mut file,
        &inspector("许村"),
        COMPLIANT_AT,
        inspection(
            id(73),
            1,
            COMPLIANT_AT,
            vec![major(1, "mem10_2023", "dust-3"), general(2, None)],
        ),
    );
    let list = |n: u128, deadline: &str| {
        EnterpriseCommand::ListHazard(ListHazard {
            enterprise_id: id(73),
            hazard_id: hazard_id(n),
            document_number: "海应急督〔2024〕1号".into(),
            deadline: at(deadline),
            production_suspended: true,
        })
    };
    let listed_at = "2024-03-11T02:00:00Z";
    assert_eq!(
        refused(&file, &officer("许村"), listed_at, list(1, "2024-06-01T00:00:00Z")),
        "FORBIDDEN"
    );
    assert_eq!(
        refused(&file, &admin(), listed_at, list(2, "2024-06-01T00:00:00Z")),
        "NOT_MAJOR_HAZARD"
    );
    assert_eq!(
        refused(&file, &admin(), listed_at, list(1, COMPLIANT_AT)),
        "DEADLINE_NOT_IN_FUTURE"
    );
    apply(&mut file, &admin(), listed_at, list(1, "2024-06-01T00:00:00Z"));
    assert_eq!(
        refused(&file, &admin(), listed_at, list(1, "2024-06-01T00:00:00Z")),
        "ALREADY_LISTED"
    );

    let request = EnterpriseCommand::RequestListingLift(RequestListingLift {
        enterprise_id: id(73),
        hazard_id: hazard_id(1),
        text: "整改完成，申请摘牌".into(),
    });
    let lift = EnterpriseCommand::LiftHazardListing(LiftHazardListing {
        enterprise_id: id(73),
        hazard_id: hazard_id(1),
        note: "现场核查合格".into(),
    });
    assert_eq!(
        refused(&file, &officer("许村"), listed_at, request.clone()),
        "HAZARD_NOT_CLOSED"
    );
    assert_eq!(refused(&file, &admin(), listed_at, lift.clone()), "LIFT_NOT_REQUESTED");

    // Verified closed on 3-12: closed for the hazard, yet the listing still vetoes and is red.
    let owner = anquan_domain::Actor {
        user_id: anquan_domain::UserId::parse("owner").unwrap(),
        role: anquan_domain::Role::Enterprise { enterprise_id: id(73) },
    };
    let rectification = uuid::Uuid::from_u128(77);
    apply(
        &mut file,
        &owner,
        "2024-03-12T01:00:00Z",
        EnterpriseCommand::SubmitRectification(SubmitRectification {
            enterprise_id: id(73),
            hazard_id: hazard_id(1),
            rectification_id: rectification,
            text: "已加装泄爆装置".into(),
            photos: vec![file_ref(3)],
        }),
    );
    apply(
        &mut file,
        &inspector("许村"),
        "2024-03-12T02:00:00Z",
        EnterpriseCommand::VerifyRectification(VerifyRectification {
            enterprise_id: id(73),
            hazard_id: hazard_id(1),
            rectification_id: rectification,
            returned_because: None,
        }),
    );
    let verified = at("2024-03-12T03:00:00Z");
    assert_eq!(file.hazards[&hazard_id(1)].state_at(verified), HazardState::Closed);
    assert_eq!(
        evaluate(&file, &rules(), verified).unwrap().vetoes,
        vec![Veto::OpenMajorHazard {
            hazard_id: hazard_id(1)
        }]
    );
    assert_eq!(
        colour(&file, verified),
        (RiskColour::Red, Some("open_major_hazard".into()))
    );

    apply(&mut file, &officer("许村"), "2024-03-13T02:00:00Z", request.clone());
    assert_eq!(
        refused(&file, &officer("许村"), "2024-03-13T03:00:00Z", request),
        "LIFT_ALREADY_REQUESTED"
    );
    let listing = file.hazards[&hazard_id(1)].listing.clone().unwrap();
    // The review is due 10 days after the request and overdue from the first instant after.
    assert!(!listing.review_overdue_at(at("2024-03-23T02:00:00Z"), 10));
    assert!(listing.review_overdue_at(at("2024-03-23T02:00:01Z"), 10));
    assert_eq!(
        refused(&file, &officer("许村"), "2024-03-14T02:00:00Z", lift.clone()),
        "FORBIDDEN"
    );
    apply(&mut file, &admin(), "2024-03-14T02:00:00Z", lift.clone());
    let lifted = at("2024-03-14T02:00:00Z");
    assert!(evaluate(&file, &rules(), lifted).unwrap().vetoes.is_empty());
    assert_ne!(colour(&file, lifted).0, RiskColour::Red);
    // Asked about the past, the listing still held then.
    assert_eq!(colour(&file, verified).0, RiskColour::Red);
    assert_eq!(refused(&file, &admin(), "2024-03-15T02:00:00Z", lift), "NOT_LISTED");
}
