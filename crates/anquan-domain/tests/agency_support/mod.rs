//! Shared support for the agency tests: actors, a registered agency, commands with sensible
//! defaults, and a given/when/then harness for the agency aggregate.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: a broken fixture aborts the test"
)]

use anquan_domain::agency::{
    AgencyCommand, AgencyProfile, AgencyRejection, AgencyState, ConfirmContract, DecisionContext, FeeBand,
    FileContract, ProposeContract, Qualification, QualificationKind, RateService, RegisterAgency, RejectContract,
    ReportService, ReportStaff, StaffMember,
};
use anquan_domain::enterprise::FileRef;
use anquan_domain::rules::RuleSet;
use anquan_domain::{
    Actor, AgencyId, ContractId, EnterpriseId, Event, Instant, Role, ServiceReportId, StaffId, Town, UserId,
};
use uuid::Uuid;

pub fn rules() -> RuleSet {
    anquan_domain::rules::builtin_v1().unwrap()
}

pub fn at(text: &str) -> Instant {
    text.parse().unwrap()
}

pub const AGENCY: AgencyId = AgencyId::from_uuid(Uuid::from_u128(0xa9e0));

pub fn admin() -> Actor {
    Actor {
        user_id: UserId::parse("admin").unwrap(),
        role: Role::CityAdmin,
    }
}

pub fn agency_user(agency_id: AgencyId) -> Actor {
    Actor {
        user_id: UserId::parse("agency-clerk").unwrap(),
        role: Role::Agency { agency_id },
    }
}

pub fn enterprise(n: u128) -> EnterpriseId {
    EnterpriseId::from_uuid(Uuid::from_u128(0xe000 + n))
}

pub fn enterprise_user(enterprise_id: EnterpriseId) -> Actor {
    Actor {
        user_id: UserId::parse("safety-officer").unwrap(),
        role: Role::Enterprise { enterprise_id },
    }
}

pub fn staff_id(n: u128) -> StaffId {
    StaffId::from_uuid(Uuid::from_u128(0x5000 + n))
}

pub fn contract_id(n: u128) -> ContractId {
    ContractId::from_uuid(Uuid::from_u128(0xc000 + n))
}

pub fn report_id(n: u128) -> ServiceReportId {
    ServiceReportId::from_uuid(Uuid::from_u128(0xd000 + n))
}

pub fn profile() -> AgencyProfile {
    AgencyProfile {
        name: "海宁市安信安全技术服务有限公司".into(),
        licence: Some("APJ-(浙)-001".into()),
        service_scope: vec!["安全管家".into()],
        service_standards: "每季度上门一次".into(),
        fee_band: FeeBand {
            min_yuan: 3000,
            max_yuan: 12000,
        },
        contact_phone: Some("0573-87000000".into()),
    }
}

pub fn register() -> AgencyCommand {
    AgencyCommand::Register(RegisterAgency {
        agency_id: AGENCY,
        profile: profile(),
    })
}

/// A staff member; odd numbers are registered safety engineers, even ones hold another
/// certificate.
pub fn member(n: u128) -> StaffMember {
    let kind = if n % 2 == 1 {
        QualificationKind::RegisteredSafetyEngineer
    } else {
        QualificationKind::Other
    };
    StaffMember {
        staff_id: staff_id(n),
        name: format!("员工{n}"),
        qualifications: vec![Qualification {
            kind,
            certificate_number: format!("CERT-{n:04}"),
        }],
        phone: Some(format!("1380000{n:04}")),
    }
}

pub fn report_staff(half_year: &str, members: &[u128]) -> AgencyCommand {
    AgencyCommand::ReportStaff(ReportStaff {
        agency_id: AGENCY,
        half_year: half_year.parse().unwrap(),
        staff: members.iter().map(|n| member(*n)).collect(),
    })
}

pub fn sign(contract: u128, enterprise_n: u128, fee_yuan: u64) -> AgencyCommand {
    AgencyCommand::ProposeContract(ProposeContract {
        agency_id: AGENCY,
        contract_id: contract_id(contract),
        enterprise_id: enterprise(enterprise_n),
        enterprise_town: Town::parse("许村").unwrap(),
        valid_from: at("2019-01-01T00:00:00Z"),
        valid_until: at("2020-01-01T00:00:00Z"),
        services: vec!["安全管家".into()],
        visits_promised: 4,
        fee_yuan,
    })
}

pub fn town_officer(town: &str) -> Actor {
    Actor {
        user_id: UserId::parse("town-officer").unwrap(),
        role: Role::TownOfficer {
            town: Town::parse(town).unwrap(),
        },
    }
}

pub fn confirm(contract: u128) -> AgencyCommand {
    AgencyCommand::ConfirmContract(ConfirmContract {
        agency_id: AGENCY,
        contract_id: contract_id(contract),
    })
}

pub fn reject(contract: u128, reason: &str) -> AgencyCommand {
    AgencyCommand::RejectContract(RejectContract {
        agency_id: AGENCY,
        contract_id: contract_id(contract),
        reason: reason.to_owned(),
    })
}

pub fn file(contract: u128, exception_reason: Option<&str>) -> AgencyCommand {
    AgencyCommand::FileContract(FileContract {
        agency_id: AGENCY,
        contract_id: contract_id(contract),
        exception_reason: exception_reason.map(str::to_owned),
    })
}

/// The enterprise confirms and the officer of 许村 files contract `contract` with enterprise
/// `enterprise_n`, at `now`.
pub fn confirmed_and_filed(
    contract: u128,
    enterprise_n: u128,
    now: &'static str,
    exception_reason: Option<&str>,
) -> Vec<(Actor, &'static str, AgencyCommand)> {
    vec![
        (enterprise_user(enterprise(enterprise_n)), now, confirm(contract)),
        (town_officer("许村"), now, file(contract, exception_reason)),
    ]
}

pub fn file_ref(seed: u8) -> FileRef {
    FileRef {
        sha256: format!("{seed:02x}").repeat(32),
        size_bytes: 2048,
        media_type: "application/pdf".into(),
        file_name: "report.pdf".into(),
    }
}

pub fn report(report: u128, contract: u128, visited_at: &str, staff: &[u128]) -> AgencyCommand {
    AgencyCommand::ReportService(ReportService {
        agency_id: AGENCY,
        report_id: report_id(report),
        contract_id: contract_id(contract),
        visited_at: at(visited_at),
        staff_ids: staff.iter().map(|n| staff_id(*n)).collect(),
        findings: "现场检查".into(),
        hazards: Vec::new(),
        photos: Vec::new(),
        report_file: file_ref(report as u8),
    })
}

pub fn rate(report: u128, stars: i64) -> AgencyCommand {
    AgencyCommand::RateService(RateService {
        agency_id: AGENCY,
        report_id: report_id(report),
        stars,
        comment: None,
    })
}

/// given(events).when(actor, now, command) → events or rejection.
pub struct Given {
    pub state: AgencyState,
    pub rules: RuleSet,
}

pub fn given(events: &[Event]) -> Given {
    Given {
        state: AgencyState::from_events(events),
        rules: rules(),
    }
}

impl Given {
    pub fn when(&self, actor: &Actor, now: &str, command: &AgencyCommand) -> Result<Vec<Event>, AgencyRejection> {
        let context = DecisionContext {
            actor,
            rules: &self.rules,
            now: at(now),
        };
        self.state.decide(command, &context)
    }

    pub fn rejects(&self, actor: &Actor, now: &str, command: &AgencyCommand) -> &'static str {
        match self.when(actor, now, command) {
            Ok(events) => panic!("{command:?} was accepted: {events:?}"),
            Err(rejection) => rejection.code(),
        }
    }
}

/// Decides and applies commands in order, panicking on a rejection; returns all events.
pub fn history(steps: &[(Actor, &str, AgencyCommand)]) -> Vec<Event> {
    let mut events = Vec::new();
    extend(&mut events, steps);
    events
}

/// Decides and applies more commands after `events`.
pub fn extend(events: &mut Vec<Event>, steps: &[(Actor, &str, AgencyCommand)]) {
    let rules = rules();
    let mut state = AgencyState::from_events(events.iter());
    for (actor, now, command) in steps {
        let context = DecisionContext {
            actor,
            rules: &rules,
            now: at(now),
        };
        let decided = state
            .decide(command, &context)
            .unwrap_or_else(|rejection| panic!("{command:?} rejected: {rejection}"));
        for event in decided {
            state.apply(&event);
            events.push(event);
        }
    }
}

/// A registered agency with staff 1 (engineer) and 2 for 2019-H1, reported on time, and
/// contract 1 with enterprise 1 at a fee within the band.
pub fn registered_with_contract() -> Vec<Event> {
    history(&[
        (admin(), "2019-01-02T00:00:00Z", register()),
        (
            agency_user(AGENCY),
            "2019-01-10T00:00:00Z",
            report_staff("2019-H1", &[1, 2]),
        ),
        (agency_user(AGENCY), "2019-01-11T00:00:00Z", sign(1, 1, 5000)),
        (enterprise_user(enterprise(1)), "2019-01-11T00:00:00Z", confirm(1)),
        (town_officer("许村"), "2019-01-11T00:00:00Z", file(1, None)),
    ])
}
