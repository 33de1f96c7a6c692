//! The agency's state folded from its stream: enough to decide every command and to gather a
//! half-year's credit inputs.

use std::collections::{BTreeMap, BTreeSet};

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

use super::event::{AgencyProfile, FeeCheck, StaffMember, WarningKind};
use crate::Instant;
use crate::credit::{CreditInputs, CreditRules, CreditScore, Grade, MisconductKind};
use crate::event::Event;
use crate::ids::{AgencyId, ContractId, EnterpriseId, ServiceReportId, StaffId, Town};
use crate::period::{Cadence, Period};
use crate::personal::{DataSubject, ERASED};

/// One agency, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgencyState {
    pub registration: Option<AgencyRecord>,
    /// The staff list of each half-year (the latest report of that half-year).
    pub staff_reports: BTreeMap<Period, StaffReport>,
    pub contracts: BTreeMap<ContractId, ContractRecord>,
    pub reports: BTreeMap<ServiceReportId, ReportRecord>,
    pub complaints: Vec<Instant>,
    pub warnings: Vec<(WarningKind, Instant)>,
    pub misconduct: Vec<(MisconductKind, Instant)>,
    pub grades: BTreeMap<Period, GradeRecord>,
    /// Since when the agency is on the blacklist, if it is.
    pub blacklisted_since: Option<Instant>,
}

/// Who the agency is (current values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRecord {
    pub agency_id: AgencyId,
    pub profile: AgencyProfile,
    pub registered_at: Instant,
}

/// A half-year's staff list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffReport {
    pub staff: Vec<StaffMember>,
    pub late: bool,
    pub reported_at: Instant,
}

/// Where a contract stands between its two parties and the town officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractStatus {
    /// The agency proposed it; the enterprise has not answered.
    Proposed,
    /// The enterprise confirmed it; the town officer has not filed it.
    Confirmed,
    /// The enterprise rejected it; it never counts.
    Rejected,
    /// The town officer filed it: it counts from now on.
    Filed,
}

/// A contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRecord {
    pub enterprise_id: EnterpriseId,
    /// The enterprise's town at the proposal, whose officer files it.
    pub enterprise_town: Town,
    pub status: ContractStatus,
    pub valid_from: Instant,
    pub valid_until: Instant,
    /// Visits promised over the contract's period.
    #[serde(default)]
    pub visits_promised: u32,
    pub fee_check: FeeCheck,
    /// When the agency proposed it (signed it, for a contract of an old log).
    pub proposed_at: Instant,
    /// When the town officer filed it.
    pub filed_at: Option<Instant>,
    pub terminated_at: Option<Instant>,
}

/// A service report and what happened to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    pub visited_at: Instant,
    pub staff_ids: Vec<StaffId>,
    pub on_time: bool,
    pub reported_at: Instant,
    /// Stars and when they were given.
    pub rating: Option<(u8, Instant)>,
    /// The spot check's verdict and when it was made.
    pub spot_check: Option<(bool, Instant)>,
}

/// A half-year's grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeRecord {
    /// `None`: not graded (未评级).
    pub grade: Option<Grade>,
    pub computed: CreditScore,
    /// Given before the half-year ended; replaced by the final grade.
    #[serde(default)]
    pub provisional: bool,
}

impl ContractRecord {
    /// Tells whether the contract is filed and in force at `instant`.
    pub fn in_force_at(&self, instant: Instant) -> bool {
        self.status == ContractStatus::Filed
            && self.valid_from <= instant
            && instant < self.valid_until
            && self.terminated_at.is_none_or(|terminated| instant < terminated)
    }
}

impl AgencyState {
    /// Folds one event into the state; events of other streams are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::AgencyRegistered(e) => {
                self.registration = Some(AgencyRecord {
                    agency_id: e.agency_id,
                    profile: e.profile.clone(),
                    registered_at: e.registered_at,
                });
            }
            Event::AgencyProfileChanged(e) => {
                if let Some(registration) = &mut self.registration {
                    registration.profile = e.profile.clone();
                }
            }
            Event::StaffReported(e) => {
                self.staff_reports.insert(
                    e.half_year,
                    StaffReport {
                        staff: e.staff.clone(),
                        late: e.late,
                        reported_at: e.reported_at,
                    },
                );
            }
            // A contract of an old log: proposed, confirmed and filed at once.
            Event::ContractSigned(e) => {
                self.contracts.insert(
                    e.contract_id,
                    ContractRecord {
                        enterprise_id: e.enterprise_id,
                        enterprise_town: e.enterprise_town.clone(),
                        status: ContractStatus::Filed,
                        valid_from: e.valid_from,
                        valid_until: e.valid_until,
                        visits_promised: e.visits_promised,
                        fee_check: e.fee_check,
                        proposed_at: e.signed_at,
                        filed_at: Some(e.signed_at),
                        terminated_at: None,
                    },
                );
            }
            Event::ContractProposed(e) => {
                self.contracts.insert(
                    e.contract_id,
                    ContractRecord {
                        enterprise_id: e.enterprise_id,
                        enterprise_town: e.enterprise_town.clone(),
                        status: ContractStatus::Proposed,
                        valid_from: e.valid_from,
                        valid_until: e.valid_until,
                        visits_promised: e.visits_promised,
                        fee_check: e.fee_check,
                        proposed_at: e.proposed_at,
                        filed_at: None,
                        terminated_at: None,
                    },
                );
            }
            Event::ContractConfirmed(e) => {
                if let Some(contract) = self.contracts.get_mut(&e.contract_id) {
                    contract.status = ContractStatus::Confirmed;
                }
            }
            Event::ContractRejected(e) => {
                if let Some(contract) = self.contracts.get_mut(&e.contract_id) {
                    contract.status = ContractStatus::Rejected;
                }
            }
            Event::ContractFiled(e) => {
                if let Some(contract) = self.contracts.get_mut(&e.contract_id) {
                    contract.status = ContractStatus::Filed;
                    contract.filed_at = Some(e.filed_at);
                }
            }
            Event::ContractTerminated(e) => {
                if let Some(contract) = self.contracts.get_mut(&e.contract_id) {
                    contract.terminated_at = Some(e.terminated_at);
                }
            }
            Event::ServiceReported(e) => {
                self.reports.insert(
                    e.report_id,
                    ReportRecord {
                        contract_id: e.contract_id,
                        enterprise_id: e.enterprise_id,
                        visited_at: e.visited_at,
                        staff_ids: e.staff_ids.clone(),
                        on_time: e.on_time,
                        reported_at: e.reported_at,
                        rating: None,
                        spot_check: None,
                    },
                );
            }
            Event::ServiceRated(e) => {
                if let Some(report) = self.reports.get_mut(&e.report_id) {
                    report.rating = Some((e.stars, e.rated_at));
                }
            }
            Event::ReportSpotChecked(e) => {
                if let Some(report) = self.reports.get_mut(&e.report_id) {
                    report.spot_check = Some((e.qualified, e.checked_at));
                }
            }
            Event::AgencyComplaintFounded(e) => self.complaints.push(e.decided_at),
            Event::AgencyWarned(e) => self.warnings.push((e.kind, e.issued_at)),
            Event::AgencyMisconductFound(e) => self.misconduct.push((e.kind, e.found_at)),
            Event::CreditGraded(e) => {
                self.grades.insert(
                    e.half_year,
                    GradeRecord {
                        grade: e.grade,
                        computed: e.computed.clone(),
                        provisional: e.provisional,
                    },
                );
            }
            Event::CreditRegraded(e) => {
                self.grades.insert(
                    e.half_year,
                    GradeRecord {
                        grade: e.grade,
                        computed: e.computed.clone(),
                        provisional: false,
                    },
                );
            }
            Event::AgencyBlacklisted(e) => self.blacklisted_since = Some(e.blacklisted_at),
            Event::AgencyDelisted(_) => self.blacklisted_since = None,
            // The store reads the subject's fields as erased from now on; the state agrees at once.
            Event::DataSubjectErased(e) => match &e.subject {
                DataSubject::Staff { staff_id, .. } => {
                    let members = self
                        .staff_reports
                        .values_mut()
                        .flat_map(|report| report.staff.iter_mut());
                    for member in members.filter(|member| member.staff_id == *staff_id) {
                        member.name = ERASED.to_owned();
                        member.phone = member.phone.as_ref().map(|_| ERASED.to_owned());
                        for qualification in &mut member.qualifications {
                            qualification.certificate_number = ERASED.to_owned();
                        }
                    }
                }
                DataSubject::AgencyContact { .. } => {
                    if let Some(registration) = &mut self.registration {
                        let phone = &mut registration.profile.contact_phone;
                        *phone = phone.as_ref().map(|_| ERASED.to_owned());
                    }
                }
            },
            #[allow(unreachable_patterns, reason = "events of other aggregates")]
            _ => {}
        }
    }

    /// Builds the state from its events, oldest first.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = AgencyState::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// Tells whether the agency is on the blacklist.
    pub fn is_blacklisted(&self) -> bool {
        self.blacklisted_since.is_some()
    }

    /// Every staff id the agency ever reported.
    pub fn known_staff(&self) -> BTreeSet<StaffId> {
        self.staff_reports
            .values()
            .flat_map(|report| report.staff.iter().map(|member| member.staff_id))
            .collect()
    }

    /// Tells whether the half-year has a final (not provisional) grade.
    pub fn finally_graded(&self, half_year: Period) -> bool {
        self.grades.get(&half_year).is_some_and(|grade| !grade.provisional)
    }

    /// Gathers the credit inputs of a half-year from the agency's own facts as of `until` (the
    /// grading instant; the half-year's end at the latest); the missed findings come from the
    /// official (supervision data the agency stream does not hold).
    pub fn credit_inputs(
        &self,
        half_year: Period,
        missed_findings: u32,
        until: Instant,
        rules: &CreditRules,
        time_zone: FixedOffset,
    ) -> CreditInputs {
        let within = |instant: Instant| Cadence::HalfYearly.period_containing(instant, time_zone) == half_year;
        let start = half_year.start(time_zone);
        let end = half_year.next().start(time_zone).min(until);
        let mut on_time_per_contract: BTreeMap<ContractId, u32> = BTreeMap::new();
        let previous_final = self
            .grades
            .range(..half_year)
            .rev()
            .find(|(_, grade)| !grade.provisional);
        let mut inputs = CreditInputs {
            missed_findings,
            previous_ratings_points: previous_final.and_then(|(_, grade)| {
                grade
                    .computed
                    .components
                    .iter()
                    .find(|component| component.component == crate::credit::CreditComponent::Ratings)
                    .map(|component| component.points)
            }),
            ..CreditInputs::default()
        };
        for report in self.reports.values() {
            if let Some((stars, rated_at)) = report.rating
                && within(rated_at)
            {
                inputs.ratings_count += 1;
                inputs.stars_total += u32::from(stars);
            }
            if let Some((qualified, checked_at)) = report.spot_check
                && within(checked_at)
            {
                inputs.spot_checks_sampled += 1;
                inputs.spot_checks_qualified += u32::from(qualified);
            }
            if within(report.visited_at) && report.visited_at < end {
                inputs.reports_due += 1;
                inputs.reports_on_time += u32::from(report.on_time);
                if report.on_time {
                    *on_time_per_contract.entry(report.contract_id).or_default() += 1;
                }
            }
        }
        // Only filed contracts count, in the half-year they were filed.
        for contract in self
            .contracts
            .values()
            .filter(|contract| contract.filed_at.is_some_and(|filed| within(filed) && filed < end))
        {
            inputs.contracts_filed += 1;
            inputs.contracts_within_band += u32::from(contract.fee_check == FeeCheck::WithinBand);
        }
        for (contract_id, contract) in &self.contracts {
            if contract.filed_at.is_none_or(|filed| filed >= end) {
                continue;
            }
            let contract_end = contract
                .terminated_at
                .map_or(contract.valid_until, |terminated| terminated.min(contract.valid_until));
            let from = contract.valid_from.max(start);
            let to = contract_end.min(end);
            if from >= to {
                continue;
            }
            inputs.contracts_in_force += 1;
            let promised = promised_within(contract, from, to);
            let met = on_time_per_contract
                .get(contract_id)
                .copied()
                .unwrap_or(0)
                .min(promised);
            inputs.visits_promised = inputs.visits_promised.saturating_add(promised);
            inputs.visits_on_time = inputs.visits_on_time.saturating_add(met);
        }
        let registry = self.staff_reports.get(&half_year).or_else(|| {
            self.staff_reports
                .range(..half_year)
                .next_back()
                .map(|(_, report)| report)
        });
        if let Some(report) = registry {
            inputs.staff_count = u32::try_from(report.staff.len()).unwrap_or(u32::MAX);
            inputs.staff_qualified = u32::try_from(
                report
                    .staff
                    .iter()
                    .filter(|member| {
                        member
                            .qualifications
                            .iter()
                            .any(|qualification| rules.staff.qualified_kinds.contains(&qualification.kind))
                    })
                    .count(),
            )
            .unwrap_or(u32::MAX);
        }
        inputs.staff_registry_on_time = self.staff_reports.get(&half_year).is_some_and(|report| !report.late);
        inputs.founded_complaints = count(self.complaints.iter().filter(|at| within(**at)));
        inputs.warning_notices = count(
            self.warnings
                .iter()
                .filter(|(kind, at)| *kind == WarningKind::WarningNotice && within(*at)),
        );
        inputs.misconduct = self
            .misconduct
            .iter()
            .filter(|(_, at)| within(*at))
            .map(|(kind, _)| *kind)
            .collect();
        inputs
    }
}

/// The visits a contract promised between `from` and `to` (within its period): its promise pro
/// rata of the time, rounded down, so a visit is due only once its share of time has passed.
fn promised_within(contract: &ContractRecord, from: Instant, to: Instant) -> u32 {
    let period = (contract.valid_until - contract.valid_from).num_seconds();
    let part = (to - from).num_seconds();
    if period <= 0 || part <= 0 {
        return 0;
    }
    let promised = i128::from(contract.visits_promised) * i128::from(part) / i128::from(period);
    u32::try_from(promised).unwrap_or(u32::MAX)
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}
