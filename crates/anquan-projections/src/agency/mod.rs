//! The agency read model: agencies and their profiles, half-yearly staff registries, contracts
//! (with their periods, for coverage at any date), service reports with ratings and spot checks,
//! sanctions and grades. It stores facts; statistics (enterprises served, services, stars per
//! agency and per staff member per year) are counted at query time.

mod query;
mod serving;

pub use query::{
    AgencyView, ContractView, DirectoryEntry, DirectoryFilter, GradeKind, GradeView, LatestGrade, ReportView,
    SanctionView, ServiceStatistics, StaffReportView, StaffView, StatisticsScope, agencies, agency, contract,
    contracts_awaiting_filing, contracts_of_agency, contracts_of_enterprise, current_per_half_year, directory,
    grade_history, grades, reports_of_agency, reports_of_enterprise, sanctions, service_coverage, staff_member,
    staff_of_agency, staff_reports, yearly_statistics,
};
pub use serving::{ServingAgency, serving_agency};

use anquan_domain::agency::event::{
    AgencyBlacklisted, AgencyProfile, ContractProposed, DataSubjectErased, Qualification, ServiceRated,
    ServiceReported, StaffReported,
};
use anquan_domain::agency::{FeeCheck, HazardLevel, WarningKind, misconduct_name};
use anquan_domain::credit::{CreditInputs, CreditScore, Grade};
use anquan_domain::personal::{DataSubject, ERASED};
use anquan_domain::{AgencyId, Event};
use anquan_event_store::{Dialect, Footprint, RecordedEvent, Shaped, SqlValue, Statement};

use crate::error::ProjectionError;
use crate::projection::{BatchStatements, Projection};
use crate::values::{int, json, text};

const SQLITE_SCHEMA: &str = include_str!("../../../../projections/schema/sqlite/agency.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../../projections/schema/postgres/agency.sql");
const SQLITE_QUERY_INDEXES: &str = include_str!("../../../../projections/schema/sqlite/agency_query_indexes.sql");
const POSTGRES_QUERY_INDEXES: &str = include_str!("../../../../projections/schema/postgres/agency_query_indexes.sql");

const UPSERT_AGENCY: Shaped = Shaped::new(
    "INSERT INTO agency_agencies (agency_id, name, licence, service_scope, \
    service_standards, fee_min_yuan, fee_max_yuan, contact_phone, registered_at, last_position) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (agency_id) DO UPDATE SET name = excluded.name, licence = excluded.licence, \
    service_scope = excluded.service_scope, service_standards = excluded.service_standards, \
    fee_min_yuan = excluded.fee_min_yuan, fee_max_yuan = excluded.fee_max_yuan, \
    contact_phone = excluded.contact_phone, registered_at = excluded.registered_at, \
    last_position = excluded.last_position",
    Footprint::writes("agency_agencies", &[0]),
);
const UPDATE_PROFILE: Shaped = Shaped::new(
    "UPDATE agency_agencies SET name = $2, licence = $3, service_scope = $4, \
    service_standards = $5, fee_min_yuan = $6, fee_max_yuan = $7, contact_phone = $8, last_position = $9 \
    WHERE agency_id = $1",
    Footprint::writes("agency_agencies", &[0]),
);
const UPSERT_STAFF_REPORT: Shaped = Shaped::new(
    "INSERT INTO agency_staff_reports (agency_id, half_year, due_at, late, reported_at) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agency_id, half_year) DO UPDATE SET due_at = excluded.due_at, \
    late = excluded.late, reported_at = excluded.reported_at",
    Footprint::writes("agency_staff_reports", &[0, 1]),
);
/// A half-year's report replaces its list: the old rows go first.
const DELETE_STAFF: Shaped = Shaped::new(
    "DELETE FROM agency_staff WHERE agency_id = $1 AND half_year = $2",
    Footprint::writes("agency_staff", &[0, 1]),
);
const INSERT_STAFF: Shaped = Shaped::new(
    "INSERT INTO agency_staff (agency_id, half_year, staff_id, name, qualifications, phone) \
    VALUES ($1, $2, $3, $4, $5, $6)",
    Footprint::writes("agency_staff", &[0, 1, 2]),
);
/// An erased staff member's row keeps what is not personal; the values read as erased, as a
/// rebuild from the sealed events writes them.
const ERASE_STAFF: Shaped = Shaped::new(
    "UPDATE agency_staff SET name = $4, qualifications = $5, phone = $6 \
    WHERE agency_id = $1 AND half_year = $2 AND staff_id = $3",
    Footprint::writes("agency_staff", &[0, 1, 2]),
);
const ERASE_CONTACT: Shaped = Shaped::new(
    "UPDATE agency_agencies SET contact_phone = $2 WHERE agency_id = $1 AND contact_phone IS NOT NULL",
    Footprint::writes("agency_agencies", &[0]),
);
/// `signed_at` is when the agency proposed the contract; a contract of an old log
/// (`ContractSigned`) is inserted filed, confirmed and filed at its signing.
const INSERT_CONTRACT: Shaped = Shaped::new(
    "INSERT INTO agency_contracts (contract_id, agency_id, enterprise_id, town, \
    valid_from, valid_until, services, visits_promised, fee_yuan, fee_min_yuan, fee_max_yuan, fee_check, signed_at, \
    status, confirmed_at, filed_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    Footprint::writes("agency_contracts", &[1, 0]),
);
const CONFIRM_CONTRACT: Shaped = Shaped::new(
    "UPDATE agency_contracts SET status = 'confirmed', confirmed_at = $2 WHERE agency_id = $3 AND contract_id = $1",
    Footprint::writes("agency_contracts", &[2, 0]),
);
const REJECT_CONTRACT: Shaped = Shaped::new(
    "UPDATE agency_contracts SET status = 'rejected', rejected_at = $2, \
    rejection_reason = $4 WHERE agency_id = $3 AND contract_id = $1",
    Footprint::writes("agency_contracts", &[2, 0]),
);
const FILE_CONTRACT: Shaped = Shaped::new(
    "UPDATE agency_contracts SET status = 'filed', filed_at = $2, \
    fee_exception_reason = $4 WHERE agency_id = $3 AND contract_id = $1",
    Footprint::writes("agency_contracts", &[2, 0]),
);
const TERMINATE_CONTRACT: Shaped = Shaped::new(
    "UPDATE agency_contracts SET terminated_at = $2 WHERE agency_id = $3 AND contract_id = $1",
    Footprint::writes("agency_contracts", &[2, 0]),
);
const INSERT_REPORT: Shaped = Shaped::new(
    "INSERT INTO agency_reports (report_id, agency_id, contract_id, enterprise_id, \
    visited_at, findings, hazards, hazard_count, major_hazard_count, photos, report_file, on_time, reported_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    Footprint::writes("agency_reports", &[1, 0]),
);
const INSERT_REPORT_STAFF: Shaped = Shaped::new(
    "INSERT INTO agency_report_staff (report_id, staff_id, agency_id) VALUES ($1, $2, $3)",
    Footprint::writes("agency_report_staff", &[2, 0, 1]),
);
const RATE_REPORT: Shaped = Shaped::new(
    "UPDATE agency_reports SET stars = $2, comment = $3, rated_at = $4 WHERE agency_id = $5 AND report_id = $1",
    Footprint::writes("agency_reports", &[4, 0]),
);
const SPOT_CHECK_REPORT: Shaped = Shaped::new(
    "UPDATE agency_reports SET spot_check_qualified = $2, spot_checked_at = $3 \
    WHERE agency_id = $4 AND report_id = $1",
    Footprint::writes("agency_reports", &[3, 0]),
);
const INSERT_SANCTION: Shaped = Shaped::new(
    "INSERT INTO agency_sanctions (position, agency_id, kind, reason, report_id, at) VALUES ($1, $2, $3, $4, $5, $6)",
    Footprint::writes("agency_sanctions", &[0]),
);
const SET_BLACKLISTED: Shaped = Shaped::new(
    "UPDATE agency_agencies SET blacklisted_at = $2 WHERE agency_id = $1",
    Footprint::writes("agency_agencies", &[0]),
);
/// Every grading is a row (provisional, final, regraded), so a grade as known at any instant can
/// be read back; the current grade of a half-year is its last row.
const INSERT_GRADE: Shaped = Shaped::new(
    "INSERT INTO agency_credit_grades (agency_id, half_year, position, kind, computed_total, \
    computed_grade, grade, reason, inputs, computed, graded_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    Footprint::writes("agency_credit_grades", &[0, 1, 2]),
);

/// Folds agency events into the `agency_*` tables.
///
/// Handles every event of the agency stream; events of other streams are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgencyProjection;

impl AgencyProjection {
    /// The projection's name, keying its checkpoint.
    pub const NAME: &'static str = "agency";
    /// The tables it owns.
    pub const TABLES: &'static [&'static str] = &[
        "agency_agencies",
        "agency_staff_reports",
        "agency_staff",
        "agency_contracts",
        "agency_reports",
        "agency_report_staff",
        "agency_sanctions",
        "agency_credit_grades",
    ];
}

impl Projection for AgencyProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => SQLITE_SCHEMA,
            Dialect::Postgres => POSTGRES_SCHEMA,
        }
    }

    fn query_indexes(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => SQLITE_QUERY_INDEXES,
            Dialect::Postgres => POSTGRES_QUERY_INDEXES,
        }
    }

    fn tables(&self) -> &'static [&'static str] {
        Self::TABLES
    }

    /// Layout 2 stores positions whole (`values::position`, text) instead of the SQL
    /// backends' sequence number alone. Layout 3 adds `agency_credit_grades` and the erased staff rows.
    /// Layout 4 adds the contracts' status (proposed, confirmed, rejected, filed) and its instants.
    fn layout(&self) -> u32 {
        4
    }

    fn apply(&self, event: &RecordedEvent, decoded: &Event, out: &mut BatchStatements) -> Result<(), ProjectionError> {
        if event.stream_id.category() != "agency" {
            return Ok(());
        }
        let agency_id = agency_of(event)?;
        let id = text(agency_id);
        let position = crate::values::position(event.position);
        match decoded {
            Event::AgencyRegistered(e) => {
                let mut params = profile_params(&id, &e.profile)?;
                params.push(SqlValue::Timestamp(e.registered_at));
                params.push(position);
                out.push(UPSERT_AGENCY.statement(params));
            }
            Event::AgencyProfileChanged(e) => {
                let mut params = profile_params(&id, &e.profile)?;
                params.push(position);
                out.push(UPDATE_PROFILE.statement(params));
            }
            Event::StaffReported(e) => staff_statements(&id, e, out)?,
            Event::DataSubjectErased(e) => erasure_statements(&id, e, out)?,
            Event::ContractSigned(e) => out.push(contract_statement(
                &id,
                &ContractProposed {
                    contract_id: e.contract_id,
                    enterprise_id: e.enterprise_id,
                    enterprise_town: e.enterprise_town.clone(),
                    valid_from: e.valid_from,
                    valid_until: e.valid_until,
                    services: e.services.clone(),
                    visits_promised: e.visits_promised,
                    fee_yuan: e.fee_yuan,
                    fee_band: e.fee_band,
                    fee_check: e.fee_check,
                    proposed_at: e.signed_at,
                },
                Some(e.signed_at),
            )?),
            Event::ContractProposed(e) => out.push(contract_statement(&id, e, None)?),
            Event::ContractConfirmed(e) => out.push(CONFIRM_CONTRACT.statement(vec![
                text(e.contract_id),
                SqlValue::Timestamp(e.confirmed_at),
                id.clone(),
            ])),
            Event::ContractRejected(e) => out.push(REJECT_CONTRACT.statement(vec![
                text(e.contract_id),
                SqlValue::Timestamp(e.rejected_at),
                id.clone(),
                SqlValue::Text(e.reason.clone()),
            ])),
            Event::ContractFiled(e) => out.push(FILE_CONTRACT.statement(vec![
                text(e.contract_id),
                SqlValue::Timestamp(e.filed_at),
                id.clone(),
                optional(e.fee_exception_reason.clone()),
            ])),
            Event::ContractTerminated(e) => out.push(TERMINATE_CONTRACT.statement(vec![
                text(e.contract_id),
                SqlValue::Timestamp(e.terminated_at),
                id.clone(),
            ])),
            Event::ServiceReported(e) => report_statements(&id, e, out)?,
            Event::ServiceRated(e) => out.push(rating_statement(&id, e)),
            Event::ReportSpotChecked(e) => out.push(SPOT_CHECK_REPORT.statement(vec![
                text(e.report_id),
                SqlValue::Bool(e.qualified),
                SqlValue::Timestamp(e.checked_at),
                id.clone(),
            ])),
            Event::AgencyComplaintFounded(e) => out.push(sanction(
                position,
                &id,
                "founded_complaint",
                &e.complaint,
                None,
                e.decided_at,
            )),
            Event::AgencyWarned(e) => {
                let kind = match e.kind {
                    WarningKind::WarningNotice => "warning_notice",
                    WarningKind::Summons => "summons",
                };
                out.push(sanction(position, &id, kind, &e.reason, None, e.issued_at));
            }
            Event::AgencyMisconductFound(e) => out.push(sanction(
                position,
                &id,
                misconduct_name(e.kind),
                &e.reason,
                e.report_id.map(text),
                e.found_at,
            )),
            Event::CreditGraded(e) => out.push(grade_statement(
                &id,
                position,
                GradeRow {
                    half_year: e.half_year,
                    kind: if e.provisional { "provisional" } else { "final" },
                    computed: &e.computed,
                    inputs: &e.inputs,
                    grade: e.grade,
                    reason: e.reason.as_deref(),
                    at: e.graded_at,
                },
            )?),
            Event::CreditRegraded(e) => out.push(grade_statement(
                &id,
                position,
                GradeRow {
                    half_year: e.half_year,
                    kind: "regraded",
                    computed: &e.computed,
                    inputs: &e.inputs,
                    grade: e.grade,
                    reason: Some(&e.reason),
                    at: e.regraded_at,
                },
            )?),
            Event::AgencyBlacklisted(AgencyBlacklisted { reason, blacklisted_at }) => {
                out.push(sanction(position, &id, "blacklisted", reason, None, *blacklisted_at));
                out.push(SET_BLACKLISTED.statement(vec![id, SqlValue::Timestamp(*blacklisted_at)]));
            }
            Event::AgencyDelisted(e) => {
                out.push(sanction(position, &id, "delisted", &e.reason, None, e.delisted_at));
                out.push(SET_BLACKLISTED.statement(vec![id, SqlValue::Null]));
            }
            // Events of other aggregates never sit on an agency stream.
            _ => {}
        }
        Ok(())
    }
}

fn profile_params(id: &SqlValue, profile: &AgencyProfile) -> Result<Vec<SqlValue>, ProjectionError> {
    Ok(vec![
        id.clone(),
        SqlValue::Text(profile.name.clone()),
        optional(profile.licence.clone()),
        json("service scope", &profile.service_scope)?,
        SqlValue::Text(profile.service_standards.clone()),
        int("fee band minimum", profile.fee_band.min_yuan),
        int("fee band maximum", profile.fee_band.max_yuan),
        optional(profile.contact_phone.clone()),
    ])
}

fn staff_statements(id: &SqlValue, e: &StaffReported, out: &mut BatchStatements) -> Result<(), ProjectionError> {
    let half_year = SqlValue::Text(e.half_year.to_string());
    out.push(UPSERT_STAFF_REPORT.statement(vec![
        id.clone(),
        half_year.clone(),
        SqlValue::Timestamp(e.due_at),
        SqlValue::Bool(e.late),
        SqlValue::Timestamp(e.reported_at),
    ]));
    out.push(DELETE_STAFF.statement(vec![id.clone(), half_year.clone()]));
    for member in &e.staff {
        out.push(INSERT_STAFF.statement(vec![
            id.clone(),
            half_year.clone(),
            text(member.staff_id),
            SqlValue::Text(member.name.clone()),
            json("qualifications", &member.qualifications)?,
            optional(member.phone.clone()),
        ]));
    }
    Ok(())
}

fn erasure_statements(id: &SqlValue, e: &DataSubjectErased, out: &mut BatchStatements) -> Result<(), ProjectionError> {
    let erased = || SqlValue::Text(ERASED.to_owned());
    match &e.subject {
        DataSubject::Staff { staff_id, .. } => {
            for entry in &e.staff_entries {
                let qualifications: Vec<Qualification> = entry
                    .qualifications
                    .iter()
                    .map(|kind| Qualification {
                        kind: *kind,
                        certificate_number: ERASED.to_owned(),
                    })
                    .collect();
                out.push(ERASE_STAFF.statement(vec![
                    id.clone(),
                    SqlValue::Text(entry.half_year.to_string()),
                    text(staff_id),
                    erased(),
                    json("qualifications", &qualifications)?,
                    if entry.had_phone { erased() } else { SqlValue::Null },
                ]));
            }
        }
        DataSubject::AgencyContact { .. } => out.push(ERASE_CONTACT.statement(vec![id.clone(), erased()])),
    }
    Ok(())
}

/// The row of a proposed contract; `filed_at` is set for a contract of an old log, signed and
/// counted at once.
fn contract_statement(
    id: &SqlValue,
    e: &ContractProposed,
    filed_at: Option<anquan_domain::Instant>,
) -> Result<Statement, ProjectionError> {
    let at = |instant: Option<anquan_domain::Instant>| instant.map_or(SqlValue::Null, SqlValue::Timestamp);
    let fee_check = match e.fee_check {
        FeeCheck::WithinBand => "within_band",
        FeeCheck::BelowBand => "below_band",
        FeeCheck::AboveBand => "above_band",
    };
    Ok(INSERT_CONTRACT.statement(vec![
        text(e.contract_id),
        id.clone(),
        text(e.enterprise_id),
        SqlValue::Text(e.enterprise_town.as_str().to_owned()),
        SqlValue::Timestamp(e.valid_from),
        SqlValue::Timestamp(e.valid_until),
        json("services", &e.services)?,
        SqlValue::Int(i64::from(e.visits_promised)),
        int("fee", e.fee_yuan),
        int("fee band minimum", e.fee_band.min_yuan),
        int("fee band maximum", e.fee_band.max_yuan),
        SqlValue::Text(fee_check.to_owned()),
        SqlValue::Timestamp(e.proposed_at),
        SqlValue::Text(if filed_at.is_some() { "filed" } else { "proposed" }.to_owned()),
        at(filed_at),
        at(filed_at),
    ]))
}

fn report_statements(id: &SqlValue, e: &ServiceReported, out: &mut BatchStatements) -> Result<(), ProjectionError> {
    let majors = e
        .hazards
        .iter()
        .filter(|hazard| hazard.level == HazardLevel::Major)
        .count();
    out.push(INSERT_REPORT.statement(vec![
        text(e.report_id),
        id.clone(),
        text(e.contract_id),
        text(e.enterprise_id),
        SqlValue::Timestamp(e.visited_at),
        SqlValue::Text(e.findings.clone()),
        json("hazards", &e.hazards)?,
        int("hazard count", e.hazards.len() as u64),
        int("major hazard count", majors as u64),
        json("photos", &e.photos)?,
        json("report file", &e.report_file)?,
        SqlValue::Bool(e.on_time),
        SqlValue::Timestamp(e.reported_at),
    ]));
    for staff_id in &e.staff_ids {
        out.push(INSERT_REPORT_STAFF.statement(vec![text(e.report_id), text(staff_id), id.clone()]));
    }
    Ok(())
}

fn rating_statement(id: &SqlValue, e: &ServiceRated) -> Statement {
    RATE_REPORT.statement(vec![
        text(e.report_id),
        SqlValue::Int(i64::from(e.stars)),
        optional(e.comment.clone()),
        SqlValue::Timestamp(e.rated_at),
        id.clone(),
    ])
}

/// The columns of one grading.
struct GradeRow<'a> {
    half_year: anquan_domain::Period,
    kind: &'static str,
    computed: &'a CreditScore,
    inputs: &'a CreditInputs,
    grade: Option<Grade>,
    reason: Option<&'a str>,
    at: anquan_domain::Instant,
}

fn grade_statement(id: &SqlValue, position: SqlValue, row: GradeRow<'_>) -> Result<Statement, ProjectionError> {
    let letter = |grade: Option<Grade>| grade.map_or(SqlValue::Null, |grade| SqlValue::Text(grade.letter().to_owned()));
    Ok(INSERT_GRADE.statement(vec![
        id.clone(),
        SqlValue::Text(row.half_year.to_string()),
        position,
        SqlValue::Text(row.kind.to_owned()),
        SqlValue::Real(row.computed.total),
        letter(row.computed.grade),
        letter(row.grade),
        optional(row.reason.map(str::to_owned)),
        json("credit inputs", row.inputs)?,
        json("computed score", row.computed)?,
        SqlValue::Timestamp(row.at),
    ]))
}

fn sanction(
    position: SqlValue,
    id: &SqlValue,
    kind: &str,
    reason: &str,
    report_id: Option<SqlValue>,
    at: anquan_domain::Instant,
) -> Statement {
    INSERT_SANCTION.statement(vec![
        position,
        id.clone(),
        SqlValue::Text(kind.to_owned()),
        SqlValue::Text(reason.to_owned()),
        report_id.unwrap_or(SqlValue::Null),
        SqlValue::Timestamp(at),
    ])
}

/// Reads the agency id from the stream name `agency-<uuid>`.
fn agency_of(event: &RecordedEvent) -> Result<AgencyId, ProjectionError> {
    event
        .stream_id
        .as_str()
        .strip_prefix("agency-")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ProjectionError::NotAnAgencyStream {
            stream_id: event.stream_id.clone(),
        })
}

fn optional(value: Option<String>) -> SqlValue {
    value.map_or(SqlValue::Null, SqlValue::Text)
}
