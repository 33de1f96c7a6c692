//! Reading the metrics' facts from the compliance and agency read models, in bulk or for one
//! enterprise.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use anquan_domain::agency::{QualificationKind, WarningKind};
use anquan_domain::credit::Grade;
use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::metrics::{AgencyFacts, ContractFact, GradeFact, ReportFact, ServiceFacts, StaffFact, StaffList};
use anquan_domain::{AgencyId, EnterpriseId, Period};
use anquan_event_store::{ReadModelStore, Row, SqlValue};

use super::MetricFacts;
use crate::compliance::{enterprise_file, files_after};
use crate::error::QueryError;

/// Enterprises whose files are read per round when the metrics stream over the city: one
/// round materialises their rows (about 80 documents each in the demo) and files at once, so
/// this bounds the transient memory of a computation (the rows of 500 demo enterprises peaked
/// at 43 MB in a heap profile), while a round's few queries cost little beside the evaluation.
pub const CHUNK: usize = 100;

macro_rules! contracts {
    ($filter:literal) => {
        concat!(
            "SELECT enterprise_id, contract_id, filed_at, valid_from, valid_until, terminated_at \
             FROM agency_contracts WHERE filed_at IS NOT NULL AND ",
            $filter,
            " ORDER BY enterprise_id, contract_id"
        )
    };
}
macro_rules! reports {
    ($filter:literal) => {
        concat!(
            "SELECT enterprise_id, report_id, visited_at, reported_at, on_time, hazard_count, stars, rated_at \
             FROM agency_reports WHERE ",
            $filter,
            " ORDER BY enterprise_id, report_id"
        )
    };
}
/// Every enterprise's contracts and service reports, those of one enterprise (`$1`), and those
/// of the enterprises whose ids lie between `$1` and `$2` (a chunk of files, read beside it so
/// that a pass over the city never holds the province's contracts and reports at once): each
/// filter its own statement, as `$1 = '' OR enterprise_id = $1` cannot search the enterprise
/// index and scanned every contract and report of the province for each enterprise.
const CONTRACTS: &str = contracts!("TRUE");
const CONTRACTS_OF_ENTERPRISE: &str = contracts!("enterprise_id = $1");
const CONTRACTS_BETWEEN: &str = contracts!("enterprise_id BETWEEN $1 AND $2");
const REPORTS: &str = reports!("TRUE");
const REPORTS_OF_ENTERPRISE: &str = reports!("enterprise_id = $1");
const REPORTS_BETWEEN: &str = reports!("enterprise_id BETWEEN $1 AND $2");
const AGENCIES: &str = "SELECT agency_id, registered_at FROM agency_agencies ORDER BY agency_id";
const STAFF_REPORTS: &str = "SELECT agency_id, half_year, reported_at FROM agency_staff_reports \
    ORDER BY agency_id, half_year";
const STAFF: &str = "SELECT agency_id, half_year, staff_id, qualifications FROM agency_staff \
    ORDER BY agency_id, half_year, staff_id";
/// Final gradings and regradings, in log order; provisional grades are no metric's fact.
const GRADES: &str = "SELECT agency_id, half_year, grade, graded_at FROM agency_credit_grades \
    WHERE kind <> 'provisional' ORDER BY agency_id, half_year, position";
const SANCTIONS: &str = "SELECT agency_id, kind, at FROM agency_sanctions \
    WHERE kind IN ('warning_notice', 'summons', 'blacklisted', 'delisted') ORDER BY position";

/// Reads every enterprise's file, the agency facts about each, and every agency's facts.
pub async fn load_facts(store: &dyn ReadModelStore) -> Result<MetricFacts, QueryError> {
    let mut files: BTreeMap<EnterpriseId, EnterpriseFile> = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let chunk = files_after(store, "", &cursor, CHUNK).await?;
        let count = chunk.len();
        if let Some(last) = chunk.keys().next_back() {
            cursor = last.to_string();
        }
        files.extend(chunk);
        if count < CHUNK {
            break;
        }
    }
    let services = services(store, Serviced::Every).await?;
    let agencies = agency_facts(store).await?;
    Ok(MetricFacts {
        files,
        services,
        agencies,
    })
}

/// Reads one enterprise's file and the agency facts about it.
pub async fn enterprise_facts(
    store: &dyn ReadModelStore,
    enterprise_id: EnterpriseId,
) -> Result<Option<(EnterpriseFile, ServiceFacts)>, QueryError> {
    let Some(file) = enterprise_file(store, enterprise_id).await? else {
        return Ok(None);
    };
    let mut services = services(store, Serviced::One(enterprise_id)).await?;
    Ok(Some((file, services.remove(&enterprise_id).unwrap_or_default())))
}

/// The enterprises whose agency facts [`services`] reads.
pub(super) enum Serviced {
    /// Every enterprise of the city: [`load_facts`], which holds every file too.
    Every,
    /// One enterprise.
    One(EnterpriseId),
    /// The enterprises whose ids lie between the two, both included: a chunk of files.
    Between(EnterpriseId, EnterpriseId),
}

/// The contracts and service reports of the enterprises `which` names, by enterprise.
pub(super) async fn services(
    store: &dyn ReadModelStore,
    which: Serviced,
) -> Result<HashMap<EnterpriseId, ServiceFacts>, QueryError> {
    let text = |id: EnterpriseId| SqlValue::Text(id.to_string());
    let (contracts, reports, filter) = match which {
        Serviced::Every => (CONTRACTS, REPORTS, Vec::new()),
        Serviced::One(enterprise_id) => (
            CONTRACTS_OF_ENTERPRISE,
            REPORTS_OF_ENTERPRISE,
            vec![text(enterprise_id)],
        ),
        Serviced::Between(low, high) => (CONTRACTS_BETWEEN, REPORTS_BETWEEN, vec![text(low), text(high)]),
    };
    let mut services: HashMap<EnterpriseId, ServiceFacts> = HashMap::new();
    for row in store.query(contracts, &filter).await? {
        let table = "agency_contracts";
        services
            .entry(id(&row, 0, table)?)
            .or_default()
            .contracts
            .push(ContractFact {
                contract_id: id(&row, 1, table)?,
                filed_at: row.timestamp(2)?,
                valid_from: row.timestamp(3)?,
                valid_until: row.timestamp(4)?,
                terminated_at: row.opt_timestamp(5)?,
            });
    }
    for row in store.query(reports, &filter).await? {
        let table = "agency_reports";
        let rating = match (row.opt_int(6)?, row.opt_timestamp(7)?) {
            (Some(stars), Some(rated_at)) => Some((
                u8::try_from(stars).map_err(|_| malformed(table, "stars out of range"))?,
                rated_at,
            )),
            _ => None,
        };
        services
            .entry(id(&row, 0, table)?)
            .or_default()
            .reports
            .push(ReportFact {
                report_id: id(&row, 1, table)?,
                visited_at: row.timestamp(2)?,
                reported_at: row.timestamp(3)?,
                on_time: row.bool(4)?,
                hazards: u32::try_from(row.int(5)?).map_err(|_| malformed(table, "hazard count out of range"))?,
                rating,
            });
    }
    Ok(services)
}

#[derive(Deserialize)]
struct QualificationRow {
    kind: QualificationKind,
}

/// Reads every agency's facts for the city-wide metrics.
pub async fn agency_facts(store: &dyn ReadModelStore) -> Result<Vec<AgencyFacts>, QueryError> {
    let mut agencies: BTreeMap<AgencyId, AgencyFacts> = BTreeMap::new();
    for row in store.query(AGENCIES, &[]).await? {
        let agency_id = id(&row, 0, "agency_agencies")?;
        agencies.insert(
            agency_id,
            AgencyFacts {
                agency_id,
                registered_at: row.timestamp(1)?,
                staff_lists: Vec::new(),
                grades: Vec::new(),
                warnings: Vec::new(),
                blacklist: Vec::new(),
            },
        );
    }
    let mut lists: BTreeMap<(AgencyId, Period), StaffList> = BTreeMap::new();
    for row in store.query(STAFF_REPORTS, &[]).await? {
        let table = "agency_staff_reports";
        let half_year: Period = period(&row, 1, table)?;
        lists.insert(
            (id(&row, 0, table)?, half_year),
            StaffList {
                half_year,
                reported_at: row.timestamp(2)?,
                staff: Vec::new(),
            },
        );
    }
    for row in store.query(STAFF, &[]).await? {
        let table = "agency_staff";
        let key = (id(&row, 0, table)?, period(&row, 1, table)?);
        let qualifications: Vec<QualificationRow> =
            serde_json::from_str(&row.text(3)?).map_err(|error| malformed(table, &error.to_string()))?;
        if let Some(list) = lists.get_mut(&key) {
            list.staff.push(StaffFact {
                staff_id: id(&row, 2, table)?,
                qualifications: qualifications.into_iter().map(|q| q.kind).collect(),
            });
        }
    }
    for ((agency_id, _), list) in lists {
        if let Some(agency) = agencies.get_mut(&agency_id) {
            agency.staff_lists.push(list);
        }
    }
    for row in store.query(GRADES, &[]).await? {
        let table = "agency_credit_grades";
        let grade = match row.opt_text(2)?.as_deref() {
            None => None,
            Some("A") => Some(Grade::A),
            Some("B") => Some(Grade::B),
            Some("C") => Some(Grade::C),
            Some("D") => Some(Grade::D),
            Some(other) => return Err(malformed(table, &format!("unknown grade {other:?}"))),
        };
        if let Some(agency) = agencies.get_mut(&id(&row, 0, table)?) {
            agency.grades.push(GradeFact {
                half_year: period(&row, 1, table)?,
                grade,
                graded_at: row.timestamp(3)?,
            });
        }
    }
    for row in store.query(SANCTIONS, &[]).await? {
        let table = "agency_sanctions";
        let Some(agency) = agencies.get_mut(&id(&row, 0, table)?) else {
            continue;
        };
        let at = row.timestamp(2)?;
        match row.text(1)?.as_str() {
            "warning_notice" => agency.warnings.push((WarningKind::WarningNotice, at)),
            "summons" => agency.warnings.push((WarningKind::Summons, at)),
            "blacklisted" => agency.blacklist.push((true, at)),
            _ => agency.blacklist.push((false, at)),
        }
    }
    Ok(agencies.into_values().collect())
}

fn id<T>(row: &Row, column: usize, table: &'static str) -> Result<T, QueryError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    row.text(column)?
        .parse()
        .map_err(|error: T::Err| malformed(table, &format!("column {column}: {error}")))
}

fn period(row: &Row, column: usize, table: &'static str) -> Result<Period, QueryError> {
    id(row, column, table)
}

fn malformed(table: &'static str, reason: &str) -> QueryError {
    QueryError::Malformed {
        table,
        reason: reason.to_owned(),
    }
}
