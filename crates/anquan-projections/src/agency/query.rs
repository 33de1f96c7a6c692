//! Queries over the agency read model: agencies, staff, contracts, reports, sanctions, grades,
//! the public directory, service coverage at an instant, and yearly service statistics per
//! agency and per staff member (counted here from the stored reports, in the rule set's local
//! calendar).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, FixedOffset};

use anquan_domain::agency::{
    AgencyProfile, ContractStatus, FeeBand, FeeCheck, Qualification, ReportedHazard, StaffMember,
};
use anquan_domain::credit::{CreditInputs, CreditScore, Grade};
use anquan_domain::enterprise::FileRef;
use anquan_domain::{AgencyId, ContractId, EnterpriseId, Instant, Period, ServiceReportId, StaffId, Town};
use anquan_event_store::{ReadModelStore, Row, SqlValue};

use crate::error::QueryError;

/// Most rows one list query returns; the service gate counts dozens of agencies and thousands of
/// reports a year per agency, far below it.
const ROWS_MAX: i64 = 100_000;

/// An agency and its published profile.
#[derive(Debug, Clone, PartialEq)]
pub struct AgencyView {
    pub agency_id: AgencyId,
    pub profile: AgencyProfile,
    pub registered_at: Instant,
    pub blacklisted_at: Option<Instant>,
}

/// When a half-year's staff list was reported and whether it was late.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffReportView {
    pub half_year: Period,
    pub due_at: Instant,
    pub late: bool,
    pub reported_at: Instant,
}

/// A staff member as listed for a half-year.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffView {
    pub agency_id: AgencyId,
    pub half_year: Period,
    pub member: StaffMember,
}

/// A service contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractView {
    pub contract_id: ContractId,
    pub agency_id: AgencyId,
    pub enterprise_id: EnterpriseId,
    pub town: Town,
    pub valid_from: Instant,
    pub valid_until: Instant,
    pub terminated_at: Option<Instant>,
    pub services: Vec<String>,
    pub visits_promised: u32,
    pub fee_yuan: u64,
    pub fee_band: FeeBand,
    pub fee_check: FeeCheck,
    /// When the agency proposed it (signed it, for a contract of an old log).
    pub signed_at: Instant,
    pub status: ContractStatus,
    pub confirmed_at: Option<Instant>,
    pub rejected_at: Option<Instant>,
    pub rejection_reason: Option<String>,
    /// When the town officer filed it: it counts from then on.
    pub filed_at: Option<Instant>,
    pub fee_exception_reason: Option<String>,
}

impl ContractView {
    /// Tells whether the contract was filed by `at` and is in force at `at`: only such a
    /// contract counts toward coverage and shows on public pages.
    pub fn counts_at(&self, at: Instant) -> bool {
        self.filed_at.is_some_and(|filed| filed <= at)
            && self.valid_from <= at
            && at < self.valid_until
            && self.terminated_at.is_none_or(|terminated| at < terminated)
    }
}

/// A service report with its rating and spot check.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportView {
    pub report_id: ServiceReportId,
    pub agency_id: AgencyId,
    pub contract_id: ContractId,
    pub enterprise_id: EnterpriseId,
    pub visited_at: Instant,
    pub findings: String,
    pub hazards: Vec<ReportedHazard>,
    pub photos: Vec<FileRef>,
    pub report_file: FileRef,
    pub on_time: bool,
    pub reported_at: Instant,
    pub staff_ids: Vec<StaffId>,
    pub stars: Option<u8>,
    pub comment: Option<String>,
    pub rated_at: Option<Instant>,
    pub spot_check_qualified: Option<bool>,
}

/// A sanction or supervision fact: founded complaint, warning notice, summons, misconduct,
/// blacklisting or delisting.
#[derive(Debug, Clone, PartialEq)]
pub struct SanctionView {
    pub kind: String,
    pub reason: String,
    pub report_id: Option<ServiceReportId>,
    pub at: Instant,
}

/// How a grade was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradeKind {
    /// Before the half-year ended; replaced by the final grade.
    Provisional,
    Final,
    /// A final grade changed later, with a reason.
    Regraded,
}

/// A half-year's grade with the computed score and its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeView {
    pub half_year: Period,
    /// `None`: not graded (未评级); the reason is `computed.insufficient`.
    pub grade: Option<Grade>,
    pub kind: GradeKind,
    pub reason: Option<String>,
    pub inputs: CreditInputs,
    pub computed: CreditScore,
    pub graded_at: Instant,
}

/// Services of one agency or staff member in one calendar year (of the visit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStatistics {
    pub year: i32,
    /// Distinct enterprises served.
    pub enterprises_served: u32,
    /// Service reports (visits).
    pub services: u32,
    /// Rated services and their stars.
    pub ratings: u32,
    pub stars_total: u32,
}

impl ServiceStatistics {
    /// Returns the mean stars, if any service was rated.
    pub fn average_stars(&self) -> Option<f64> {
        (self.ratings > 0).then(|| f64::from(self.stars_total) / f64::from(self.ratings))
    }
}

/// Whose services to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatisticsScope {
    Agency(AgencyId),
    Staff(StaffId),
}

/// Which agencies the public directory lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectoryFilter {
    /// Only agencies whose service scope has an item containing this text.
    pub service: Option<String>,
    /// Only agencies whose latest grade is this one.
    pub grade: Option<Grade>,
    /// Blacklisted agencies are left out unless asked for.
    pub include_blacklisted: bool,
}

/// One agency in the directory, ranked by latest final grade (A to D, then not graded, then
/// never graded), then mean stars of the year.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryEntry {
    pub agency: AgencyView,
    /// The latest half-year with a final grade, and that grade (`None`: not graded, with the
    /// reason).
    pub latest_grade: Option<LatestGrade>,
    pub statistics: ServiceStatistics,
}

/// A half-year's final grade as the directory shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestGrade {
    pub half_year: Period,
    pub grade: Option<Grade>,
    /// Why the half-year was not graded (未评级：…), when it was not.
    pub not_graded_reason: Option<String>,
}

const AGENCY_COLUMNS: &str = "SELECT agency_id, name, licence, service_scope, service_standards, fee_min_yuan, \
    fee_max_yuan, contact_phone, registered_at, blacklisted_at FROM agency_agencies";
const STAFF_REPORTS: &str = "SELECT half_year, due_at, late, reported_at FROM agency_staff_reports \
    WHERE agency_id = $1 ORDER BY half_year";
const STAFF_OF_HALF_YEAR: &str = "SELECT agency_id, half_year, staff_id, name, qualifications, phone \
    FROM agency_staff WHERE agency_id = $1 AND half_year = $2 ORDER BY name, staff_id";
const STAFF_BY_ID: &str = "SELECT agency_id, half_year, staff_id, name, qualifications, phone \
    FROM agency_staff WHERE staff_id = $1 ORDER BY half_year DESC LIMIT 1";
const CONTRACT_COLUMNS: &str = "SELECT contract_id, agency_id, enterprise_id, town, valid_from, valid_until, \
    terminated_at, services, visits_promised, fee_yuan, fee_min_yuan, fee_max_yuan, fee_check, signed_at, \
    status, confirmed_at, rejected_at, rejection_reason, filed_at, fee_exception_reason \
    FROM agency_contracts";
const REPORT_COLUMNS: &str = "SELECT report_id, agency_id, contract_id, enterprise_id, visited_at, findings, \
    hazards, photos, report_file, on_time, reported_at, stars, comment, rated_at, spot_check_qualified \
    FROM agency_reports";
const REPORT_STAFF_OF_AGENCY: &str =
    "SELECT report_id, staff_id, agency_id FROM agency_report_staff WHERE agency_id = $1";
const REPORT_STAFF_OF_ENTERPRISE: &str = "SELECT s.report_id, s.staff_id, s.agency_id FROM agency_report_staff s \
    JOIN agency_reports r ON r.agency_id = s.agency_id AND r.report_id = s.report_id WHERE r.enterprise_id = $1";
const SANCTIONS: &str =
    "SELECT kind, reason, report_id, at FROM agency_sanctions WHERE agency_id = $1 ORDER BY position";
const GRADE_COLUMNS: &str =
    "SELECT agency_id, half_year, grade, reason, inputs, computed, graded_at, kind FROM agency_credit_grades";
/// Services of an agency: (enterprise, visited, stars).
const SERVICES_OF_AGENCY: &str =
    "SELECT enterprise_id, visited_at, stars FROM agency_reports WHERE agency_id = $1 LIMIT $2";
const SERVICES_OF_STAFF: &str = "SELECT r.enterprise_id, r.visited_at, r.stars FROM agency_report_staff s \
    JOIN agency_reports r ON r.agency_id = s.agency_id AND r.report_id = s.report_id WHERE s.staff_id = $1 LIMIT $2";
const SERVICES_IN_RANGE: &str = "SELECT agency_id, enterprise_id, stars FROM agency_reports \
    WHERE visited_at >= $1 AND visited_at < $2 LIMIT $3";
/// Contracts filed by `$1` and in force at `$1`; `$2 = ''` means every town.
const COVERAGE: &str = "SELECT DISTINCT enterprise_id, town FROM agency_contracts \
    WHERE filed_at IS NOT NULL AND filed_at <= $1 AND valid_from <= $1 AND valid_until > $1 AND (terminated_at IS NULL OR terminated_at > $1) \
    AND ($2 = '' OR town = $2) ORDER BY enterprise_id LIMIT $3";

/// Reads one agency.
pub async fn agency(store: &dyn ReadModelStore, agency_id: AgencyId) -> Result<Option<AgencyView>, QueryError> {
    let sql = format!("{AGENCY_COLUMNS} WHERE agency_id = $1");
    let rows = store.query(&sql, &[text(agency_id)]).await?;
    rows.first().map(agency_view).transpose()
}

/// Reads every agency, by name.
pub async fn agencies(store: &dyn ReadModelStore) -> Result<Vec<AgencyView>, QueryError> {
    let sql = format!("{AGENCY_COLUMNS} ORDER BY name, agency_id LIMIT $1");
    let rows = store.query(&sql, &[SqlValue::Int(ROWS_MAX)]).await?;
    rows.iter().map(agency_view).collect()
}

/// Lists an agency's half-yearly staff reports, oldest first (late ones flagged).
pub async fn staff_reports(
    store: &dyn ReadModelStore,
    agency_id: AgencyId,
) -> Result<Vec<StaffReportView>, QueryError> {
    let rows = store.query(STAFF_REPORTS, &[text(agency_id)]).await?;
    rows.iter()
        .map(|row| {
            Ok(StaffReportView {
                half_year: parse_column(row, 0, "agency_staff_reports")?,
                due_at: row.timestamp(1)?,
                late: row.bool(2)?,
                reported_at: row.timestamp(3)?,
            })
        })
        .collect()
}

/// Lists the staff of a half-year (default: the latest reported one).
pub async fn staff_of_agency(
    store: &dyn ReadModelStore,
    agency_id: AgencyId,
    half_year: Option<Period>,
) -> Result<Vec<StaffView>, QueryError> {
    let half_year = match half_year {
        Some(half_year) => half_year,
        None => match staff_reports(store, agency_id).await?.last() {
            Some(report) => report.half_year,
            None => return Ok(Vec::new()),
        },
    };
    let rows = store
        .query(
            STAFF_OF_HALF_YEAR,
            &[text(agency_id), SqlValue::Text(half_year.to_string())],
        )
        .await?;
    rows.iter().map(staff_view).collect()
}

/// Reads a staff member as last reported.
pub async fn staff_member(store: &dyn ReadModelStore, staff_id: StaffId) -> Result<Option<StaffView>, QueryError> {
    let rows = store.query(STAFF_BY_ID, &[text(staff_id)]).await?;
    rows.first().map(staff_view).transpose()
}

/// Reads one contract.
pub async fn contract(
    store: &dyn ReadModelStore,
    agency_id: AgencyId,
    contract_id: ContractId,
) -> Result<Option<ContractView>, QueryError> {
    let sql = format!("{CONTRACT_COLUMNS} WHERE agency_id = $1 AND contract_id = $2");
    let rows = store.query(&sql, &[text(agency_id), text(contract_id)]).await?;
    rows.first().map(contract_view).transpose()
}

/// Lists an enterprise's contracts, oldest first.
pub async fn contracts_of_enterprise(
    store: &dyn ReadModelStore,
    enterprise_id: EnterpriseId,
) -> Result<Vec<ContractView>, QueryError> {
    let sql = format!("{CONTRACT_COLUMNS} WHERE enterprise_id = $1 ORDER BY signed_at, contract_id LIMIT $2");
    let rows = store
        .query(&sql, &[text(enterprise_id), SqlValue::Int(ROWS_MAX)])
        .await?;
    rows.iter().map(contract_view).collect()
}

/// Lists an agency's contracts, oldest first.
pub async fn contracts_of_agency(
    store: &dyn ReadModelStore,
    agency_id: AgencyId,
) -> Result<Vec<ContractView>, QueryError> {
    let sql = format!("{CONTRACT_COLUMNS} WHERE agency_id = $1 ORDER BY signed_at, contract_id LIMIT $2");
    let rows = store.query(&sql, &[text(agency_id), SqlValue::Int(ROWS_MAX)]).await?;
    rows.iter().map(contract_view).collect()
}

/// Lists the contracts the enterprises have confirmed and no town officer has filed yet, oldest
/// first; `town` `None` means every town.
pub async fn contracts_awaiting_filing(
    store: &dyn ReadModelStore,
    town: Option<&Town>,
) -> Result<Vec<ContractView>, QueryError> {
    let sql = format!(
        "{CONTRACT_COLUMNS} WHERE status = 'confirmed' AND terminated_at IS NULL AND ($1 = '' OR town = $1) \
         ORDER BY confirmed_at, agency_id, contract_id LIMIT $2"
    );
    let town = SqlValue::Text(town.map(|town| town.as_str().to_owned()).unwrap_or_default());
    let rows = store.query(&sql, &[town, SqlValue::Int(ROWS_MAX)]).await?;
    rows.iter().map(contract_view).collect()
}

/// Lists the service reports at an enterprise, by visit.
pub async fn reports_of_enterprise(
    store: &dyn ReadModelStore,
    enterprise_id: EnterpriseId,
) -> Result<Vec<ReportView>, QueryError> {
    let sql = format!("{REPORT_COLUMNS} WHERE enterprise_id = $1 ORDER BY visited_at, report_id LIMIT $2");
    let id = text(enterprise_id);
    let rows = store.query(&sql, &[id.clone(), SqlValue::Int(ROWS_MAX)]).await?;
    let staff = store.query(REPORT_STAFF_OF_ENTERPRISE, &[id]).await?;
    reports_with_staff(&rows, &staff)
}

/// Lists an agency's service reports, by visit.
pub async fn reports_of_agency(store: &dyn ReadModelStore, agency_id: AgencyId) -> Result<Vec<ReportView>, QueryError> {
    let sql = format!("{REPORT_COLUMNS} WHERE agency_id = $1 ORDER BY visited_at, report_id LIMIT $2");
    let id = text(agency_id);
    let rows = store.query(&sql, &[id.clone(), SqlValue::Int(ROWS_MAX)]).await?;
    let staff = store.query(REPORT_STAFF_OF_AGENCY, &[id]).await?;
    reports_with_staff(&rows, &staff)
}

/// Lists an agency's sanctions and supervision facts, oldest first.
pub async fn sanctions(store: &dyn ReadModelStore, agency_id: AgencyId) -> Result<Vec<SanctionView>, QueryError> {
    let rows = store.query(SANCTIONS, &[text(agency_id)]).await?;
    rows.iter()
        .map(|row| {
            Ok(SanctionView {
                kind: row.text(0)?,
                reason: row.text(1)?,
                report_id: row
                    .opt_text(2)?
                    .map(|id| parse_text(&id, "agency_sanctions"))
                    .transpose()?,
                at: row.timestamp(3)?,
            })
        })
        .collect()
}

/// Lists an agency's current grade of each half-year (the last grading of it: provisional,
/// final or regraded), oldest half-year first.
pub async fn grades(store: &dyn ReadModelStore, agency_id: AgencyId) -> Result<Vec<GradeView>, QueryError> {
    Ok(current_per_half_year(grade_history(store, agency_id).await?))
}

/// Lists every grading of an agency, oldest half-year first and in log order within one.
pub async fn grade_history(store: &dyn ReadModelStore, agency_id: AgencyId) -> Result<Vec<GradeView>, QueryError> {
    let sql = format!("{GRADE_COLUMNS} WHERE agency_id = $1 ORDER BY half_year, position");
    let rows = store.query(&sql, &[text(agency_id)]).await?;
    rows.iter().map(|row| grade_view(row).map(|(_, view)| view)).collect()
}

/// Keeps the last grading of each half-year of a history in `grade_history`'s order.
pub fn current_per_half_year(history: Vec<GradeView>) -> Vec<GradeView> {
    let mut current: BTreeMap<Period, GradeView> = BTreeMap::new();
    for view in history {
        current.insert(view.half_year, view);
    }
    current.into_values().collect()
}

/// Counts the services of an agency or a staff member per calendar year of the visit (local
/// calendar of `time_zone`), oldest year first.
pub async fn yearly_statistics(
    store: &dyn ReadModelStore,
    scope: StatisticsScope,
    time_zone: FixedOffset,
) -> Result<Vec<ServiceStatistics>, QueryError> {
    let (sql, id) = match scope {
        StatisticsScope::Agency(agency_id) => (SERVICES_OF_AGENCY, text(agency_id)),
        StatisticsScope::Staff(staff_id) => (SERVICES_OF_STAFF, text(staff_id)),
    };
    let rows = store.query(sql, &[id, SqlValue::Int(ROWS_MAX)]).await?;
    let mut years: BTreeMap<i32, Tally> = BTreeMap::new();
    for row in &rows {
        let year = row.timestamp(1)?.with_timezone(&time_zone).year();
        years
            .entry(year)
            .or_default()
            .add(row.text(0)?, stars(row, 2, "agency_reports")?);
    }
    Ok(years.into_iter().map(|(year, tally)| tally.statistics(year)).collect())
}

/// Lists the directory: agencies with their latest grade and their services in `year`, ranked
/// by grade (A first, ungraded last), then mean stars, then name.
pub async fn directory(
    store: &dyn ReadModelStore,
    filter: &DirectoryFilter,
    year: i32,
    time_zone: FixedOffset,
) -> Result<Vec<DirectoryEntry>, QueryError> {
    let mut latest: BTreeMap<AgencyId, LatestGrade> = BTreeMap::new();
    let sql = format!("{GRADE_COLUMNS} ORDER BY agency_id, half_year, position");
    for row in &store.query(&sql, &[]).await? {
        let (agency_id, grade) = grade_view(row)?;
        if grade.kind == GradeKind::Provisional {
            continue;
        }
        // Rows come in half-year and log order, so the last one seen is the latest.
        latest.insert(
            agency_id,
            LatestGrade {
                half_year: grade.half_year,
                grade: grade.grade,
                not_graded_reason: grade
                    .grade
                    .is_none()
                    .then(|| grade.computed.insufficient.as_ref().map(ToString::to_string))
                    .flatten(),
            },
        );
    }
    let year_period = Period::new(anquan_domain::Cadence::Yearly, year, 1).map_err(|error| QueryError::Malformed {
        table: "agency_reports",
        reason: error.to_string(),
    })?;
    let range = [
        SqlValue::Timestamp(year_period.start(time_zone)),
        SqlValue::Timestamp(year_period.end(time_zone)),
        SqlValue::Int(ROWS_MAX),
    ];
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for row in &store.query(SERVICES_IN_RANGE, &range).await? {
        tallies
            .entry(row.text(0)?)
            .or_default()
            .add(row.text(1)?, stars(row, 2, "agency_reports")?);
    }
    let mut entries: Vec<DirectoryEntry> = agencies(store)
        .await?
        .into_iter()
        .filter(|agency| filter.include_blacklisted || agency.blacklisted_at.is_none())
        .filter(|agency| {
            filter.service.as_deref().is_none_or(|wanted| {
                agency
                    .profile
                    .service_scope
                    .iter()
                    .any(|item| item.contains(wanted.trim()))
            })
        })
        .map(|agency| DirectoryEntry {
            latest_grade: latest.get(&agency.agency_id).cloned(),
            statistics: tallies.get(&agency.agency_id.to_string()).map_or(
                ServiceStatistics {
                    year,
                    ..Default::default()
                },
                |tally| tally.statistics(year),
            ),
            agency,
        })
        .filter(|entry| {
            filter.grade.is_none_or(|grade| {
                entry
                    .latest_grade
                    .as_ref()
                    .is_some_and(|latest| latest.grade == Some(grade))
            })
        })
        .collect();
    entries.sort_by(|a, b| {
        // Graded agencies first (A to D), then those not graded (未评级), then those never graded.
        let grade_rank = |entry: &DirectoryEntry| {
            entry
                .latest_grade
                .as_ref()
                .map_or(5, |latest| latest.grade.map_or(4, |grade| grade as u8))
        };
        grade_rank(a)
            .cmp(&grade_rank(b))
            .then_with(|| {
                let stars = |entry: &DirectoryEntry| entry.statistics.average_stars().unwrap_or(0.0);
                stars(b).total_cmp(&stars(a))
            })
            .then_with(|| a.agency.profile.name.cmp(&b.agency.profile.name))
    });
    Ok(entries)
}

/// Lists the enterprises with a contract in force at `at` (in one town, or all), with their
/// town at signing.
pub async fn service_coverage(
    store: &dyn ReadModelStore,
    at: Instant,
    town: Option<&Town>,
) -> Result<Vec<(EnterpriseId, Town)>, QueryError> {
    let params = [
        SqlValue::Timestamp(at),
        SqlValue::Text(town.map_or("", Town::as_str).to_owned()),
        SqlValue::Int(ROWS_MAX),
    ];
    let rows = store.query(COVERAGE, &params).await?;
    let mut covered = BTreeSet::new();
    for row in &rows {
        covered.insert((
            parse_text::<EnterpriseId>(&row.text(0)?, "agency_contracts")?,
            parse_column::<Town>(row, 1, "agency_contracts")?,
        ));
    }
    Ok(covered.into_iter().collect())
}

/// Distinct enterprises, services and stars being counted.
#[derive(Default)]
struct Tally {
    enterprises: BTreeSet<String>,
    services: u32,
    ratings: u32,
    stars_total: u32,
}

impl Tally {
    fn add(&mut self, enterprise_id: String, stars: Option<u8>) {
        self.enterprises.insert(enterprise_id);
        self.services += 1;
        if let Some(stars) = stars {
            self.ratings += 1;
            self.stars_total += u32::from(stars);
        }
    }

    fn statistics(&self, year: i32) -> ServiceStatistics {
        ServiceStatistics {
            year,
            enterprises_served: u32::try_from(self.enterprises.len()).unwrap_or(u32::MAX),
            services: self.services,
            ratings: self.ratings,
            stars_total: self.stars_total,
        }
    }
}

fn agency_view(row: &Row) -> Result<AgencyView, QueryError> {
    let table = "agency_agencies";
    Ok(AgencyView {
        agency_id: parse_text(&row.text(0)?, table)?,
        profile: AgencyProfile {
            name: row.text(1)?,
            licence: row.opt_text(2)?,
            service_scope: parse_json(row, 3, table)?,
            service_standards: row.text(4)?,
            fee_band: FeeBand {
                min_yuan: unsigned(row, 5, table)?,
                max_yuan: unsigned(row, 6, table)?,
            },
            contact_phone: row.opt_text(7)?,
        },
        registered_at: row.timestamp(8)?,
        blacklisted_at: row.opt_timestamp(9)?,
    })
}

fn staff_view(row: &Row) -> Result<StaffView, QueryError> {
    let table = "agency_staff";
    let qualifications: Vec<Qualification> = parse_json(row, 4, table)?;
    Ok(StaffView {
        agency_id: parse_text(&row.text(0)?, table)?,
        half_year: parse_column(row, 1, table)?,
        member: StaffMember {
            staff_id: parse_text(&row.text(2)?, table)?,
            name: row.text(3)?,
            qualifications,
            phone: row.opt_text(5)?,
        },
    })
}

fn contract_view(row: &Row) -> Result<ContractView, QueryError> {
    let table = "agency_contracts";
    let fee_check = match row.text(12)?.as_str() {
        "within_band" => FeeCheck::WithinBand,
        "below_band" => FeeCheck::BelowBand,
        "above_band" => FeeCheck::AboveBand,
        other => return Err(malformed(table, format!("unknown fee check {other:?}"))),
    };
    Ok(ContractView {
        contract_id: parse_text(&row.text(0)?, table)?,
        agency_id: parse_text(&row.text(1)?, table)?,
        enterprise_id: parse_text(&row.text(2)?, table)?,
        town: parse_column(row, 3, table)?,
        valid_from: row.timestamp(4)?,
        valid_until: row.timestamp(5)?,
        terminated_at: row.opt_timestamp(6)?,
        services: parse_json(row, 7, table)?,
        visits_promised: u32::try_from(row.int(8)?).map_err(|_| malformed(table, "visits out of range".into()))?,
        fee_yuan: unsigned(row, 9, table)?,
        fee_band: FeeBand {
            min_yuan: unsigned(row, 10, table)?,
            max_yuan: unsigned(row, 11, table)?,
        },
        fee_check,
        signed_at: row.timestamp(13)?,
        status: match row.text(14)?.as_str() {
            "proposed" => ContractStatus::Proposed,
            "confirmed" => ContractStatus::Confirmed,
            "rejected" => ContractStatus::Rejected,
            "filed" => ContractStatus::Filed,
            other => return Err(malformed(table, format!("unknown contract status {other:?}"))),
        },
        confirmed_at: row.opt_timestamp(15)?,
        rejected_at: row.opt_timestamp(16)?,
        rejection_reason: row.opt_text(17)?,
        filed_at: row.opt_timestamp(18)?,
        fee_exception_reason: row.opt_text(19)?,
    })
}

fn reports_with_staff(rows: &[Row], staff_rows: &[Row]) -> Result<Vec<ReportView>, QueryError> {
    // Report ids are unique only within an agency's stream.
    let mut staff: BTreeMap<(String, String), Vec<StaffId>> = BTreeMap::new();
    for row in staff_rows {
        staff
            .entry((row.text(2)?, row.text(0)?))
            .or_default()
            .push(parse_text(&row.text(1)?, "agency_report_staff")?);
    }
    rows.iter()
        .map(|row| {
            let mut view = report_view(row)?;
            view.staff_ids = staff
                .remove(&(view.agency_id.to_string(), view.report_id.to_string()))
                .unwrap_or_default();
            view.staff_ids.sort();
            Ok(view)
        })
        .collect()
}

fn report_view(row: &Row) -> Result<ReportView, QueryError> {
    let table = "agency_reports";
    Ok(ReportView {
        report_id: parse_text(&row.text(0)?, table)?,
        agency_id: parse_text(&row.text(1)?, table)?,
        contract_id: parse_text(&row.text(2)?, table)?,
        enterprise_id: parse_text(&row.text(3)?, table)?,
        visited_at: row.timestamp(4)?,
        findings: row.text(5)?,
        hazards: parse_json(row, 6, table)?,
        photos: parse_json(row, 7, table)?,
        report_file: parse_json(row, 8, table)?,
        on_time: row.bool(9)?,
        reported_at: row.timestamp(10)?,
        staff_ids: Vec::new(),
        stars: stars(row, 11, table)?,
        comment: row.opt_text(12)?,
        rated_at: row.opt_timestamp(13)?,
        spot_check_qualified: match row.0.get(14) {
            None | Some(SqlValue::Null) => None,
            Some(_) => Some(row.bool(14)?),
        },
    })
}

fn grade_view(row: &Row) -> Result<(AgencyId, GradeView), QueryError> {
    let table = "agency_credit_grades";
    let grade = match row.opt_text(2)?.as_deref() {
        None => None,
        Some("A") => Some(Grade::A),
        Some("B") => Some(Grade::B),
        Some("C") => Some(Grade::C),
        Some("D") => Some(Grade::D),
        Some(other) => return Err(malformed(table, format!("unknown grade {other:?}"))),
    };
    let kind = match row.text(7)?.as_str() {
        "provisional" => GradeKind::Provisional,
        "final" => GradeKind::Final,
        "regraded" => GradeKind::Regraded,
        other => return Err(malformed(table, format!("unknown grading kind {other:?}"))),
    };
    Ok((
        parse_text(&row.text(0)?, table)?,
        GradeView {
            half_year: parse_column(row, 1, table)?,
            grade,
            kind,
            reason: row.opt_text(3)?,
            inputs: parse_json(row, 4, table)?,
            computed: parse_json(row, 5, table)?,
            graded_at: row.timestamp(6)?,
        },
    ))
}

fn stars(row: &Row, column: usize, table: &'static str) -> Result<Option<u8>, QueryError> {
    row.opt_int(column)?
        .map(|stars| u8::try_from(stars).map_err(|_| malformed(table, format!("stars {stars} out of range"))))
        .transpose()
}

fn unsigned(row: &Row, column: usize, table: &'static str) -> Result<u64, QueryError> {
    u64::try_from(row.int(column)?).map_err(|_| malformed(table, format!("column {column} is negative")))
}

fn text(value: impl std::fmt::Display) -> SqlValue {
    SqlValue::Text(value.to_string())
}

fn parse_text<T>(value: &str, table: &'static str) -> Result<T, QueryError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|error: T::Err| malformed(table, error.to_string()))
}

fn parse_column<T>(row: &Row, column: usize, table: &'static str) -> Result<T, QueryError>
where
    T: TryFrom<String>,
    T::Error: std::fmt::Display,
{
    T::try_from(row.text(column)?).map_err(|error| malformed(table, format!("column {column}: {error}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(row: &Row, column: usize, table: &'static str) -> Result<T, QueryError> {
    serde_json::from_str(&row.text(column)?).map_err(|error| malformed(table, format!("column {column}: {error}")))
}

fn malformed(table: &'static str, reason: String) -> QueryError {
    QueryError::Malformed { table, reason }
}
