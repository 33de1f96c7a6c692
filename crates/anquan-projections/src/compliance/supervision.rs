//! The supervision part of the compliance read model: statements for inspections, hazards,
//! deadline extensions, rectifications and accidents, the rows → `EnterpriseFile` rebuild, and
//! the queries of the supervision gate (hazards by state at an instant, a town's overdue queue,
//! the colour distribution, an inspector's plan).
//!
//! Rows hold facts only. Whether a hazard is open, submitted, overdue or closed at an instant is
//! decided by the domain's `HazardRecord` methods; SQL only narrows the candidates.

use std::collections::BTreeMap;

use anquan_domain::compliance::evaluate;
use anquan_domain::enterprise::event::{HazardSource, InspectionDocument};
use anquan_domain::enterprise::hazard::{
    AccidentRecord, BasisConfirmation, DeadlineExtension, FreeTextBasis, HazardRecord, HazardState, InspectionRecord,
    LiftRequest, Listing, ListingLifted, ListingProgress, ListingState, Rectification, SelfClosure, SpotCheck, Verdict,
};
use anquan_domain::enterprise::{EnterpriseFile, Registration};
use anquan_domain::risk::{self, ChecksDue, RiskAssessment};
use anquan_domain::rules::RuleSet;
use anquan_domain::rules::supervision::{EscalationStep, RiskColour};
use anquan_domain::{EnterpriseId, Event, HazardId, Instant, Town, UserId};
use anquan_event_store::{Footprint, ReadModelStore, RecordedEvent, Row, Shaped, SqlValue};

use super::query::{
    Page, check_page_size, files_after, limit, malformed, parse_column, parse_cursor, parse_id, parse_json, user_id,
};
use super::{actor, json, text, touch};
use crate::error::{ProjectionError, QueryError};
use crate::projection::BatchStatements;

/// Most rows (hazards or enterprises) one supervision query examines; past it, a list ends early
/// (with a cursor where the scan stopped) and a distribution or plan says it is incomplete.
pub const SCAN_MAX: usize = 5_000;
/// Hazards read per round while filtering by state.
const HAZARD_CHUNK: usize = 200;
/// Enterprises read per round while evaluating a town.
const ENTERPRISE_CHUNK: usize = 200;

// ----- statements ------------------------------------------------------------------------------

const INSERT_INSPECTION: Shaped = Shaped::new(
    "INSERT INTO inspections \
    (inspection_id, enterprise_id, town, kind, level, inspected_at, recorded_at, inspectors, documents, notes, \
    recorded_by, position) \
    VALUES ($1, $2, (SELECT town FROM enterprises WHERE enterprise_id = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    Footprint::writes("inspections", &[1, 0]).reading("enterprises", &[1]),
);
const INSERT_HAZARD: Shaped = Shaped::new(
    "INSERT INTO hazards \
    (hazard_id, enterprise_id, town, source_kind, source, inspection_id, category, level, severity, \
    criterion_catalogue, criterion_item, description, photos, found_at, recorded_at, recorded_by, \
    initial_deadline, deadline, closed_at, position) \
    VALUES ($1, $2, (SELECT town FROM enterprises WHERE enterprise_id = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, \
    $12, $13, $14, $15, $16, $16, NULL, $17)",
    Footprint::writes("hazards", &[1, 0]).reading("enterprises", &[1]),
);
const INSERT_EXTENSION: Shaped = Shaped::new(
    "INSERT INTO hazard_extensions \
    (hazard_id, enterprise_id, deadline, reason, extended_at, extended_by, position) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)",
    Footprint::writes("hazard_extensions", &[1, 0, 6]),
);
const UPDATE_HAZARD_DEADLINE: Shaped = Shaped::new(
    "UPDATE hazards SET deadline = $3 WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const INSERT_RECTIFICATION: Shaped = Shaped::new(
    "INSERT INTO rectifications \
    (rectification_id, hazard_id, enterprise_id, text, photos, submitted_at, submitted_by, position) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    Footprint::writes("rectifications", &[2, 1, 0]),
);
const SET_VERDICT: Shaped = Shaped::new(
    "UPDATE rectifications SET verdict = $4, first_time = $5, reason = $6, verified_at = $7, \
    verified_by = $8 WHERE enterprise_id = $1 AND hazard_id = $2 AND rectification_id = $3",
    Footprint::writes("rectifications", &[0, 1, 2]),
);
const SELF_CLOSE: Shaped = Shaped::new(
    "UPDATE rectifications SET self_closed_at = $4, spot_check_drawn = $5 \
    WHERE enterprise_id = $1 AND hazard_id = $2 AND rectification_id = $3",
    Footprint::writes("rectifications", &[0, 1, 2]),
);
const SET_SPOT_CHECK: Shaped = Shaped::new(
    "UPDATE rectifications SET spot_check_passed = $4, spot_check_reason = $5, \
    spot_checked_at = $6 WHERE enterprise_id = $1 AND hazard_id = $2 AND rectification_id = $3",
    Footprint::writes("rectifications", &[0, 1, 2]),
);
const REOPEN_HAZARD: Shaped = Shaped::new(
    "UPDATE hazards SET closed_at = NULL WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const SET_BASIS: Shaped = Shaped::new(
    "UPDATE hazards SET basis = $3, basis_stated_at = $4 WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const CONFIRM_BASIS: Shaped = Shaped::new(
    "UPDATE hazards SET basis_note = $3, basis_confirmed_at = $4 WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const CLOSE_HAZARD: Shaped = Shaped::new(
    "UPDATE hazards SET closed_at = $3 WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const SET_LISTING: Shaped = Shaped::new(
    "UPDATE hazards SET listing_document_number = $3, listing_deadline = $4, \
    listing_production_suspended = $5, listed_at = $6, listed_by = $7 WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const INSERT_LISTING_PROGRESS: Shaped = Shaped::new(
    "INSERT INTO listing_progress \
    (hazard_id, enterprise_id, text, files, reported_at, reported_by, position) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    Footprint::writes("listing_progress", &[1, 0, 6]),
);
const SET_LIFT_REQUEST: Shaped = Shaped::new(
    "UPDATE hazards SET lift_text = $3, lift_requested_at = $4, lift_requested_by = $5 \
    WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const SET_DELISTED: Shaped = Shaped::new(
    "UPDATE hazards SET delisted_note = $3, delisted_at = $4, delisted_by = $5 \
    WHERE enterprise_id = $1 AND hazard_id = $2",
    Footprint::writes("hazards", &[0, 1]),
);
const INSERT_ACCIDENT: Shaped = Shaped::new(
    "INSERT INTO accidents \
    (accident_id, enterprise_id, town, occurred_at, fatalities, description, reported_at, reported_by, position) \
    VALUES ($1, $2, (SELECT town FROM enterprises WHERE enterprise_id = $2), $3, $4, $5, $6, $7, $8)",
    Footprint::writes("accidents", &[1, 0]).reading("enterprises", &[1]),
);

/// Folds one supervision event of an enterprise stream.
pub(super) fn statements(
    enterprise_id: EnterpriseId,
    event: &RecordedEvent,
    decoded: &Event,
    position: SqlValue,
    out: &mut BatchStatements,
) -> Result<(), ProjectionError> {
    let id = text(enterprise_id);
    match decoded {
        Event::InspectionRecorded(recorded) => out.push(INSERT_INSPECTION.statement(vec![
            text(recorded.inspection_id),
            id,
            SqlValue::Text(name("inspection kind", &recorded.kind)?),
            SqlValue::Text(name("inspector level", &recorded.level)?),
            SqlValue::Timestamp(recorded.inspected_at),
            SqlValue::Timestamp(recorded.recorded_at),
            json("inspectors", &recorded.inspectors)?,
            json("inspection documents", &recorded.documents)?,
            SqlValue::Text(recorded.notes.clone()),
            actor(event),
            position.clone(),
        ])),
        Event::HazardFound(found) => {
            let (source_kind, inspection_id) = match &found.source {
                HazardSource::GovernmentInspection { inspection_id } => ("government_inspection", text(inspection_id)),
                HazardSource::SelfInspection => ("self_inspection", SqlValue::Null),
                HazardSource::AgencyService { .. } => ("agency_service", SqlValue::Null),
            };
            let (catalogue, item) = match &found.criterion {
                Some(criterion) => (
                    SqlValue::Text(criterion.catalogue.clone()),
                    SqlValue::Text(criterion.item.clone()),
                ),
                None => (SqlValue::Null, SqlValue::Null),
            };
            let severity = match &found.severity {
                Some(severity) => SqlValue::Text(name("severity", severity)?),
                None => SqlValue::Null,
            };
            out.push(INSERT_HAZARD.statement(vec![
                text(found.hazard_id),
                id,
                SqlValue::Text(source_kind.to_owned()),
                json("hazard source", &found.source)?,
                inspection_id,
                SqlValue::Text(name("hazard category", &found.category)?),
                SqlValue::Text(name("hazard level", &found.level)?),
                severity,
                catalogue,
                item,
                SqlValue::Text(found.description.clone()),
                json("hazard photos", &found.photos)?,
                SqlValue::Timestamp(found.found_at),
                SqlValue::Timestamp(found.recorded_at),
                actor(event),
                SqlValue::Timestamp(found.deadline),
                position.clone(),
            ]));
        }
        Event::MajorHazardBasisStated(stated) => out.push(SET_BASIS.statement(vec![
            id,
            text(stated.hazard_id),
            SqlValue::Text(stated.basis.clone()),
            SqlValue::Timestamp(stated.stated_at),
        ])),
        Event::MajorHazardConfirmed(confirmed) => out.push(CONFIRM_BASIS.statement(vec![
            id,
            text(confirmed.hazard_id),
            SqlValue::Text(confirmed.note.clone()),
            SqlValue::Timestamp(confirmed.confirmed_at),
        ])),
        Event::HazardDeadlineExtended(extended) => {
            out.push(INSERT_EXTENSION.statement(vec![
                text(extended.hazard_id),
                id.clone(),
                SqlValue::Timestamp(extended.deadline),
                SqlValue::Text(extended.reason.clone()),
                SqlValue::Timestamp(extended.extended_at),
                actor(event),
                position.clone(),
            ]));
            out.push(UPDATE_HAZARD_DEADLINE.statement(vec![
                id,
                text(extended.hazard_id),
                SqlValue::Timestamp(extended.deadline),
            ]));
        }
        Event::RectificationSubmitted(submitted) => out.push(INSERT_RECTIFICATION.statement(vec![
            text(submitted.rectification_id),
            text(submitted.hazard_id),
            id,
            SqlValue::Text(submitted.text.clone()),
            json("rectification photos", &submitted.photos)?,
            SqlValue::Timestamp(submitted.submitted_at),
            actor(event),
            position.clone(),
        ])),
        Event::RectificationAccepted(accepted) => {
            out.push(SET_VERDICT.statement(vec![
                id.clone(),
                text(accepted.hazard_id),
                text(accepted.rectification_id),
                SqlValue::Text("accepted".into()),
                SqlValue::Bool(accepted.first_time),
                SqlValue::Text(String::new()),
                SqlValue::Timestamp(accepted.verified_at),
                actor(event),
            ]));
            out.push(CLOSE_HAZARD.statement(vec![
                id,
                text(accepted.hazard_id),
                SqlValue::Timestamp(accepted.verified_at),
            ]));
        }
        Event::HazardSelfClosed(closed) => {
            out.push(SELF_CLOSE.statement(vec![
                id.clone(),
                text(closed.hazard_id),
                text(closed.rectification_id),
                SqlValue::Timestamp(closed.closed_at),
                SqlValue::Bool(closed.spot_check),
            ]));
            out.push(CLOSE_HAZARD.statement(vec![id, text(closed.hazard_id), SqlValue::Timestamp(closed.closed_at)]));
        }
        Event::HazardSpotChecked(checked) => {
            out.push(SET_SPOT_CHECK.statement(vec![
                id.clone(),
                text(checked.hazard_id),
                text(checked.rectification_id),
                SqlValue::Bool(checked.passed),
                SqlValue::Text(checked.reason.clone()),
                SqlValue::Timestamp(checked.checked_at),
            ]));
            if !checked.passed {
                out.push(REOPEN_HAZARD.statement(vec![id, text(checked.hazard_id)]));
            }
        }
        Event::RectificationReturned(returned) => out.push(SET_VERDICT.statement(vec![
            id,
            text(returned.hazard_id),
            text(returned.rectification_id),
            SqlValue::Text("returned".into()),
            SqlValue::Bool(false),
            SqlValue::Text(returned.reason.clone()),
            SqlValue::Timestamp(returned.verified_at),
            actor(event),
        ])),
        Event::HazardListed(listed) => out.push(SET_LISTING.statement(vec![
            id,
            text(listed.hazard_id),
            SqlValue::Text(listed.document_number.clone()),
            SqlValue::Timestamp(listed.deadline),
            SqlValue::Bool(listed.production_suspended),
            SqlValue::Timestamp(listed.listed_at),
            actor(event),
        ])),
        Event::ListingProgressReported(reported) => out.push(INSERT_LISTING_PROGRESS.statement(vec![
            text(reported.hazard_id),
            id,
            SqlValue::Text(reported.text.clone()),
            json("listing progress files", &reported.files)?,
            SqlValue::Timestamp(reported.reported_at),
            actor(event),
            position.clone(),
        ])),
        Event::ListingLiftRequested(requested) => out.push(SET_LIFT_REQUEST.statement(vec![
            id,
            text(requested.hazard_id),
            SqlValue::Text(requested.text.clone()),
            SqlValue::Timestamp(requested.requested_at),
            actor(event),
        ])),
        Event::HazardDelisted(delisted) => out.push(SET_DELISTED.statement(vec![
            id,
            text(delisted.hazard_id),
            SqlValue::Text(delisted.note.clone()),
            SqlValue::Timestamp(delisted.delisted_at),
            actor(event),
        ])),
        Event::AccidentReported(reported) => out.push(INSERT_ACCIDENT.statement(vec![
            text(reported.accident_id),
            id,
            SqlValue::Timestamp(reported.occurred_at),
            SqlValue::Int(i64::from(reported.fatalities)),
            SqlValue::Text(reported.description.clone()),
            SqlValue::Timestamp(reported.reported_at),
            actor(event),
            position.clone(),
        ])),
        _ => return Ok(()),
    }
    touch(out, enterprise_id, position);
    Ok(())
}

/// The serde name of a unit enum variant (`on_site`, `major`, …), the form the columns keep.
fn name(what: &'static str, value: &impl serde::Serialize) -> Result<String, ProjectionError> {
    match serde_json::to_value(value).map_err(|source| ProjectionError::Json { what, source })? {
        serde_json::Value::String(name) => Ok(name),
        other => Ok(other.to_string()),
    }
}

// ----- reading rows back -----------------------------------------------------------------------

macro_rules! hazard_columns {
    () => {
        "h.hazard_id, h.enterprise_id, e.name, h.town, h.source, h.category, h.level, h.severity, \
         h.criterion_catalogue, h.criterion_item, h.description, h.photos, h.found_at, h.recorded_at, \
         h.initial_deadline, h.recorded_by, h.basis, h.basis_stated_at, h.basis_note, h.basis_confirmed_at, \
         h.listing_document_number, h.listing_deadline, h.listing_production_suspended, h.listed_at, h.lift_text, \
         h.lift_requested_at, h.delisted_note, h.delisted_at \
         FROM hazards h JOIN enterprises e ON e.enterprise_id = h.enterprise_id"
    };
}
macro_rules! extension_columns {
    () => {
        "x.enterprise_id, x.hazard_id, x.deadline, x.reason, x.extended_at \
         FROM hazard_extensions x JOIN hazards h ON h.enterprise_id = x.enterprise_id AND h.hazard_id = x.hazard_id"
    };
}
macro_rules! rectification_columns {
    () => {
        "r.enterprise_id, r.hazard_id, r.rectification_id, r.text, r.photos, r.submitted_at, r.verdict, \
         r.first_time, r.reason, r.verified_at, r.self_closed_at, r.spot_check_drawn, r.spot_check_passed, \
         r.spot_check_reason, r.spot_checked_at \
         FROM rectifications r JOIN hazards h ON h.enterprise_id = r.enterprise_id AND h.hazard_id = r.hazard_id"
    };
}
macro_rules! progress_columns {
    () => {
        "p.enterprise_id, p.hazard_id, p.text, p.files, p.reported_at \
         FROM listing_progress p JOIN hazards h ON h.enterprise_id = p.enterprise_id AND h.hazard_id = p.hazard_id"
    };
}
/// Enterprises with ids in `$1..=$2`.
macro_rules! in_range {
    () => {
        " WHERE h.enterprise_id >= $1 AND h.enterprise_id <= $2"
    };
}
/// Hazards of town `$1` and enterprise `$2` (`''`: any) known at `$3`, narrowed by `$4`
/// (`''`: any; `closed`: closed by `$3`; `unclosed`: not closed by `$3`; `overdue`: not closed
/// and past their first deadline at `$3`; `listed`: listed by `$3`), with ids in `($5, $6]` (`''`: unbounded).
macro_rules! candidates {
    () => {
        " WHERE ($1 = '' OR h.town = $1) AND ($2 = '' OR h.enterprise_id = $2) AND h.recorded_at <= $3 \
         AND ($4 = '' \
              OR ($4 = 'closed' AND h.closed_at <= $3) \
              OR ($4 = 'unclosed' AND (h.closed_at IS NULL OR h.closed_at > $3)) \
              OR ($4 = 'overdue' AND h.initial_deadline < $3 AND (h.closed_at IS NULL OR h.closed_at > $3)) \
              OR ($4 = 'listed' AND h.listed_at <= $3)) \
         AND h.hazard_id > $5 AND ($6 = '' OR h.hazard_id <= $6)"
    };
}

const INSPECTIONS_IN_RANGE: &str = "SELECT enterprise_id, inspection_id, kind, level, inspected_at, recorded_at, \
    inspectors, documents, notes FROM inspections WHERE enterprise_id >= $1 AND enterprise_id <= $2 \
    ORDER BY enterprise_id, inspection_id";
const HAZARDS_IN_RANGE: &str = concat!(
    "SELECT ",
    hazard_columns!(),
    in_range!(),
    " ORDER BY h.enterprise_id, h.position"
);
const EXTENSIONS_IN_RANGE: &str = concat!(
    "SELECT ",
    extension_columns!(),
    in_range!(),
    " ORDER BY x.enterprise_id, x.hazard_id, x.position"
);
const RECTIFICATIONS_IN_RANGE: &str = concat!(
    "SELECT ",
    rectification_columns!(),
    in_range!(),
    " ORDER BY r.enterprise_id, r.hazard_id, r.position"
);
const PROGRESS_IN_RANGE: &str = concat!(
    "SELECT ",
    progress_columns!(),
    in_range!(),
    " ORDER BY p.enterprise_id, p.hazard_id, p.position"
);
const ACCIDENTS_IN_RANGE: &str = "SELECT enterprise_id, accident_id, occurred_at, fatalities, description, \
    reported_at FROM accidents WHERE enterprise_id >= $1 AND enterprise_id <= $2 ORDER BY enterprise_id, position";

const CANDIDATES_BY_ID: &str = concat!(
    "SELECT ",
    hazard_columns!(),
    candidates!(),
    " ORDER BY h.hazard_id, h.enterprise_id LIMIT $7"
);
const CANDIDATES_BY_DEADLINE: &str = concat!(
    "SELECT ",
    hazard_columns!(),
    candidates!(),
    " ORDER BY h.initial_deadline, h.hazard_id LIMIT $7"
);
const CANDIDATE_EXTENSIONS: &str = concat!(
    "SELECT ",
    extension_columns!(),
    candidates!(),
    " ORDER BY x.enterprise_id, x.hazard_id, x.position"
);
const CANDIDATE_RECTIFICATIONS: &str = concat!(
    "SELECT ",
    rectification_columns!(),
    candidates!(),
    " ORDER BY r.enterprise_id, r.hazard_id, r.position"
);
const CANDIDATE_PROGRESS: &str = concat!(
    "SELECT ",
    progress_columns!(),
    candidates!(),
    " ORDER BY p.enterprise_id, p.hazard_id, p.position"
);
const OPEN_DEADLINES: &str = "SELECT h.enterprise_id, h.hazard_id, h.town, h.deadline FROM hazards h \
    WHERE h.closed_at IS NULL AND h.deadline >= $1 ORDER BY h.deadline, h.hazard_id LIMIT $2";

/// Loads the inspections, hazards (with extensions and rectifications) and accidents of the
/// enterprises with ids in `low..=high` into `files` (rows of other enterprises are skipped).
pub(super) async fn load_supervision(
    store: &dyn ReadModelStore,
    files: &mut BTreeMap<EnterpriseId, EnterpriseFile>,
    low: &SqlValue,
    high: &SqlValue,
) -> Result<(), QueryError> {
    let range = [low.clone(), high.clone()];
    for row in store.query(INSPECTIONS_IN_RANGE, &range).await? {
        let enterprise_id = parse_id::<EnterpriseId>(&row, 0, "inspections")?;
        if let Some(file) = files.get_mut(&enterprise_id) {
            let inspection = inspection(&row)?;
            file.inspections.insert(inspection.inspection_id, inspection);
        }
    }
    let hazards = store.query(HAZARDS_IN_RANGE, &range).await?;
    let extensions = store.query(EXTENSIONS_IN_RANGE, &range).await?;
    let rectifications = store.query(RECTIFICATIONS_IN_RANGE, &range).await?;
    let progress = store.query(PROGRESS_IN_RANGE, &range).await?;
    for view in assemble(&hazards, &extensions, &rectifications, &progress)? {
        if let Some(file) = files.get_mut(&view.enterprise_id) {
            if let HazardSource::GovernmentInspection { inspection_id } = &view.record.source
                && let Some(inspection) = file.inspections.get_mut(inspection_id)
            {
                inspection.hazards.push(view.record.hazard_id);
            }
            file.hazards.insert(view.record.hazard_id, view.record);
        }
    }
    for row in store.query(ACCIDENTS_IN_RANGE, &range).await? {
        let enterprise_id = parse_id::<EnterpriseId>(&row, 0, "accidents")?;
        if let Some(file) = files.get_mut(&enterprise_id) {
            file.accidents.push(AccidentRecord {
                accident_id: parse_id(&row, 1, "accidents")?,
                occurred_at: row.timestamp(2)?,
                fatalities: u32::try_from(row.int(3)?).map_err(|_| malformed("accidents", "fatalities".into()))?,
                description: row.text(4)?,
                reported_at: row.timestamp(5)?,
            });
        }
    }
    Ok(())
}

fn inspection(row: &Row) -> Result<InspectionRecord, QueryError> {
    let table = "inspections";
    let documents: Vec<InspectionDocument> = parse_json(row, 7, table)?;
    Ok(InspectionRecord {
        inspection_id: parse_id(row, 1, table)?,
        kind: parse_name(row, 2, table)?,
        level: parse_name(row, 3, table)?,
        inspected_at: row.timestamp(4)?,
        recorded_at: row.timestamp(5)?,
        inspectors: parse_json(row, 6, table)?,
        documents,
        notes: row.text(8)?,
        hazards: Vec::new(),
    })
}

/// Reads a column holding a unit variant's serde name.
fn parse_name<T: serde::de::DeserializeOwned>(row: &Row, column: usize, table: &'static str) -> Result<T, QueryError> {
    serde_json::from_value(serde_json::Value::String(row.text(column)?))
        .map_err(|error| malformed(table, format!("column {column}: {error}")))
}

/// A hazard with the enterprise it belongs to, as lists across enterprises show it.
#[derive(Debug, Clone, PartialEq)]
pub struct HazardView {
    pub enterprise_id: EnterpriseId,
    pub enterprise_name: String,
    pub town: Town,
    /// Who recorded it (an inspector, the enterprise, an agency).
    pub recorded_by: UserId,
    pub record: HazardRecord,
}

/// Builds hazards from rows of `hazard_columns!()` (in order) and their extensions,
/// rectifications and listing progress reports (each in order within a hazard).
fn assemble(
    hazards: &[Row],
    extensions: &[Row],
    rectifications: &[Row],
    progress: &[Row],
) -> Result<Vec<HazardView>, QueryError> {
    let mut reported: BTreeMap<(EnterpriseId, HazardId), Vec<ListingProgress>> = BTreeMap::new();
    for row in progress {
        let table = "listing_progress";
        let key = (parse_id(row, 0, table)?, parse_id(row, 1, table)?);
        reported.entry(key).or_default().push(ListingProgress {
            text: row.text(2)?,
            files: parse_json(row, 3, table)?,
            reported_at: row.timestamp(4)?,
        });
    }
    let mut extended: BTreeMap<(EnterpriseId, HazardId), Vec<DeadlineExtension>> = BTreeMap::new();
    for row in extensions {
        let key = (
            parse_id(row, 0, "hazard_extensions")?,
            parse_id(row, 1, "hazard_extensions")?,
        );
        extended.entry(key).or_default().push(DeadlineExtension {
            deadline: row.timestamp(2)?,
            reason: row.text(3)?,
            extended_at: row.timestamp(4)?,
        });
    }
    let mut rectified: BTreeMap<(EnterpriseId, HazardId), Vec<Rectification>> = BTreeMap::new();
    for row in rectifications {
        let table = "rectifications";
        let key = (parse_id(row, 0, table)?, parse_id(row, 1, table)?);
        let verdict = match row.opt_text(6)?.as_deref() {
            None => None,
            Some(verdict @ ("accepted" | "returned")) => Some(Verdict {
                accepted: verdict == "accepted",
                first_time: row.bool(7)?,
                reason: row.opt_text(8)?.unwrap_or_default(),
                verified_at: row.timestamp(9)?,
            }),
            Some(other) => return Err(malformed(table, format!("unknown verdict {other:?}"))),
        };
        let self_closure = match row.opt_timestamp(10)? {
            None => None,
            Some(closed_at) => Some(SelfClosure {
                closed_at,
                spot_check_drawn: row.opt_bool(11)?.unwrap_or(false),
                spot_check: match (row.opt_bool(12)?, row.opt_timestamp(14)?) {
                    (Some(passed), Some(checked_at)) => Some(SpotCheck {
                        passed,
                        reason: row.opt_text(13)?.unwrap_or_default(),
                        checked_at,
                    }),
                    _ => None,
                },
            }),
        };
        rectified.entry(key).or_default().push(Rectification {
            rectification_id: parse_id(row, 2, table)?,
            text: row.text(3)?,
            photos: parse_json(row, 4, table)?,
            submitted_at: row.timestamp(5)?,
            verdict,
            self_closure,
        });
    }
    hazards
        .iter()
        .map(|row| {
            let table = "hazards";
            let enterprise_id: EnterpriseId = parse_id(row, 1, table)?;
            let hazard_id: HazardId = parse_id(row, 0, table)?;
            let criterion = match (row.opt_text(8)?, row.opt_text(9)?) {
                (Some(catalogue), Some(item)) => {
                    Some(anquan_domain::enterprise::event::CriterionRef { catalogue, item })
                }
                _ => None,
            };
            let severity = match row.opt_text(7)? {
                Some(severity) => Some(
                    serde_json::from_value(serde_json::Value::String(severity))
                        .map_err(|error| malformed(table, format!("severity: {error}")))?,
                ),
                None => None,
            };
            Ok(HazardView {
                enterprise_id,
                enterprise_name: row.text(2)?,
                town: parse_column(row, 3, table)?,
                recorded_by: user_id(&row.text(15)?)?,
                record: HazardRecord {
                    hazard_id,
                    source: parse_json(row, 4, table)?,
                    category: parse_name(row, 5, table)?,
                    level: parse_name(row, 6, table)?,
                    severity,
                    criterion,
                    description: row.text(10)?,
                    photos: parse_json(row, 11, table)?,
                    found_at: row.timestamp(12)?,
                    recorded_at: row.timestamp(13)?,
                    initial_deadline: row.timestamp(14)?,
                    extensions: extended.remove(&(enterprise_id, hazard_id)).unwrap_or_default(),
                    rectifications: rectified.remove(&(enterprise_id, hazard_id)).unwrap_or_default(),
                    free_text_basis: free_text_basis(row)?,
                    listing: listing(row, reported.remove(&(enterprise_id, hazard_id)).unwrap_or_default())?,
                },
            })
        })
        .collect()
}

/// The free-text basis of a hazard row (columns 16 to 19), if it has one.
fn free_text_basis(row: &Row) -> Result<Option<FreeTextBasis>, QueryError> {
    let Some(basis) = row.opt_text(16)? else {
        return Ok(None);
    };
    let confirmation = match (row.opt_text(18)?, row.opt_timestamp(19)?) {
        (Some(note), Some(confirmed_at)) => Some(BasisConfirmation { note, confirmed_at }),
        _ => None,
    };
    Ok(Some(FreeTextBasis {
        basis,
        stated_at: row.timestamp(17)?,
        confirmation,
    }))
}

/// The listing of a hazard row (columns 20 to 27), if it was listed.
fn listing(row: &Row, progress: Vec<ListingProgress>) -> Result<Option<Listing>, QueryError> {
    let Some(listed_at) = row.opt_timestamp(23)? else {
        return Ok(None);
    };
    let lift_request = match (row.opt_text(24)?, row.opt_timestamp(25)?) {
        (Some(text), Some(requested_at)) => Some(LiftRequest { text, requested_at }),
        _ => None,
    };
    let lifted = match (row.opt_text(26)?, row.opt_timestamp(27)?) {
        (Some(note), Some(delisted_at)) => Some(ListingLifted { note, delisted_at }),
        _ => None,
    };
    Ok(Some(Listing {
        document_number: row.opt_text(20)?.unwrap_or_default(),
        deadline: row.timestamp(21)?,
        production_suspended: row.opt_bool(22)?.unwrap_or(false),
        listed_at,
        progress,
        lift_request,
        lifted,
    }))
}

// ----- queries ---------------------------------------------------------------------------------

/// Which hazards a list shows, by their state at the list's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HazardStateFilter {
    /// Not closed (待整改 or 已提交, overdue or not).
    NotClosed,
    /// A rectification awaits verification.
    Submitted,
    /// Not closed and past the deadline in force.
    Overdue,
    /// Verified and closed.
    Closed,
}

impl HazardStateFilter {
    /// Tells whether a hazard is in this state at `at`.
    pub fn matches(self, hazard: &HazardRecord, at: Instant) -> bool {
        match self {
            HazardStateFilter::NotClosed => hazard.state_at(at) != HazardState::Closed,
            HazardStateFilter::Submitted => hazard.state_at(at) == HazardState::Submitted,
            HazardStateFilter::Overdue => hazard.overdue_at(at),
            HazardStateFilter::Closed => hazard.state_at(at) == HazardState::Closed,
        }
    }

    /// The SQL narrowing of `candidates!()`.
    fn narrowing(self) -> &'static str {
        match self {
            HazardStateFilter::NotClosed | HazardStateFilter::Submitted => "unclosed",
            HazardStateFilter::Overdue => "overdue",
            HazardStateFilter::Closed => "closed",
        }
    }
}

/// Which listed hazards (挂牌督办) a list shows, by their listing's state at the list's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingFilter {
    /// Listed by then, whatever came after.
    Any,
    /// Listed and not yet lifted (督办中 or 申请摘牌).
    InForce,
    /// The town applied to lift it; the city has not decided.
    LiftRequested,
    /// The city's review of a lift request is past its `review_days`.
    ReviewOverdue { review_days: u32 },
    /// Lifted by the city.
    Lifted,
}

impl ListingFilter {
    /// Tells whether a hazard's listing is in this state at `at`.
    pub fn matches(self, hazard: &HazardRecord, at: Instant) -> bool {
        let Some(listing) = &hazard.listing else {
            return false;
        };
        let state = listing.state_at(at);
        match self {
            ListingFilter::Any => state.is_some(),
            ListingFilter::InForce => listing.in_force_at(at),
            ListingFilter::LiftRequested => state == Some(ListingState::LiftRequested),
            ListingFilter::ReviewOverdue { review_days } => listing.review_overdue_at(at, review_days),
            ListingFilter::Lifted => state == Some(ListingState::Lifted),
        }
    }
}

/// Which hazards a list shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HazardFilter {
    pub town: Option<Town>,
    pub enterprise: Option<EnterpriseId>,
    pub state: Option<HazardStateFilter>,
    /// Only listed hazards, by their listing's state.
    pub listing: Option<ListingFilter>,
}

fn candidate_params(filter: &HazardFilter, narrowing: &str, at: Instant, after: &str, upto: &str) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(filter.town.as_ref().map_or("", Town::as_str).to_owned()),
        SqlValue::Text(filter.enterprise.map(|id| id.to_string()).unwrap_or_default()),
        SqlValue::Timestamp(at),
        SqlValue::Text(narrowing.to_owned()),
        SqlValue::Text(after.to_owned()),
        SqlValue::Text(upto.to_owned()),
    ]
}

/// Lists the hazards known at `at` that pass `filter` (state as of `at`), ordered by hazard id.
pub async fn hazards(
    store: &dyn ReadModelStore,
    filter: &HazardFilter,
    at: Instant,
    first: usize,
    after: Option<&str>,
) -> Result<Page<HazardView>, QueryError> {
    check_page_size(first)?;
    let mut cursor = match after {
        Some(cursor) => parse_cursor::<HazardId>(cursor)?.to_string(),
        None => String::new(),
    };
    let narrowing = match filter.listing {
        Some(_) => "listed",
        None => filter.state.map_or("", HazardStateFilter::narrowing),
    };
    let mut items = Vec::new();
    let mut scanned = 0;
    while scanned < SCAN_MAX {
        let mut params = candidate_params(filter, narrowing, at, &cursor, "");
        params.push(limit(HAZARD_CHUNK));
        let rows = store.query(CANDIDATES_BY_ID, &params).await?;
        let Some(last) = rows.last() else {
            return Ok(hazard_page(items, first, false));
        };
        let upto = last.text(0)?;
        let children = candidate_params(filter, narrowing, at, &cursor, &upto);
        let extensions = store.query(CANDIDATE_EXTENSIONS, &children).await?;
        let rectifications = store.query(CANDIDATE_RECTIFICATIONS, &children).await?;
        let progress = store.query(CANDIDATE_PROGRESS, &children).await?;
        for view in assemble(&rows, &extensions, &rectifications, &progress)? {
            scanned += 1;
            cursor = view.record.hazard_id.to_string();
            if filter.state.is_none_or(|state| state.matches(&view.record, at))
                && filter.listing.is_none_or(|listing| listing.matches(&view.record, at))
            {
                items.push(view);
                if items.len() > first {
                    return Ok(hazard_page(items, first, true));
                }
            }
        }
        if rows.len() < HAZARD_CHUNK {
            return Ok(hazard_page(items, first, false));
        }
    }
    Ok(Page {
        items,
        has_next: true,
        end_cursor: Some(cursor),
    })
}

fn hazard_page(mut items: Vec<HazardView>, first: usize, has_next: bool) -> Page<HazardView> {
    items.truncate(first);
    let end_cursor = items.last().map(|view| view.record.hazard_id.to_string());
    Page {
        items,
        has_next,
        end_cursor,
    }
}

/// A town's (or every town's) hazards overdue at `at`, oldest deadline in force first (then by
/// id); `after` is the hazard the previous page ended with. At most `SCAN_MAX` candidates are
/// examined, oldest first deadline first.
pub async fn overdue_queue(
    store: &dyn ReadModelStore,
    town: Option<&Town>,
    at: Instant,
    first: usize,
    after: Option<&str>,
) -> Result<Page<HazardView>, QueryError> {
    check_page_size(first)?;
    let after = after.map(parse_cursor::<HazardId>).transpose()?;
    let filter = HazardFilter {
        town: town.cloned(),
        ..HazardFilter::default()
    };
    let mut params = candidate_params(&filter, "overdue", at, "", "");
    let children = params.clone();
    params.push(limit(SCAN_MAX));
    let rows = store.query(CANDIDATES_BY_DEADLINE, &params).await?;
    let extensions = store.query(CANDIDATE_EXTENSIONS, &children).await?;
    let rectifications = store.query(CANDIDATE_RECTIFICATIONS, &children).await?;
    let progress = store.query(CANDIDATE_PROGRESS, &children).await?;
    let mut overdue: Vec<HazardView> = assemble(&rows, &extensions, &rectifications, &progress)?
        .into_iter()
        .filter(|view| view.record.overdue_at(at))
        .collect();
    overdue.sort_by_key(|view| (view.record.deadline_at(at), view.record.hazard_id));
    let start = match after {
        Some(after) => overdue
            .iter()
            .position(|view| view.record.hazard_id == after)
            .map_or(overdue.len(), |index| index + 1),
        None => 0,
    };
    let items: Vec<HazardView> = overdue.into_iter().skip(start).take(first + 1).collect();
    let has_next = items.len() > first;
    Ok(hazard_page(items, first, has_next))
}

/// How many enterprises have each colour at an instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColourDistribution {
    pub red: u32,
    pub orange: u32,
    pub yellow: u32,
    pub blue: u32,
    /// False when the scan stopped at `SCAN_MAX` enterprises.
    pub complete: bool,
}

impl ColourDistribution {
    fn add(&mut self, colour: RiskColour) {
        let count = match colour {
            RiskColour::Red => &mut self.red,
            RiskColour::Orange => &mut self.orange,
            RiskColour::Yellow => &mut self.yellow,
            RiskColour::Blue => &mut self.blue,
        };
        *count += 1;
    }
}

/// Calls `visit` with every enterprise file of a town (or all), in id order, a chunk at a time;
/// returns false if it stopped at `SCAN_MAX` enterprises.
async fn for_each_file(
    store: &dyn ReadModelStore,
    town: Option<&Town>,
    mut visit: impl FnMut(&EnterpriseFile),
) -> Result<bool, QueryError> {
    let town = town.map_or("", Town::as_str);
    let mut cursor = String::new();
    let mut scanned = 0;
    while scanned < SCAN_MAX {
        let files = files_after(store, town, &cursor, ENTERPRISE_CHUNK).await?;
        let count = files.len();
        for (enterprise_id, file) in files {
            scanned += 1;
            cursor = enterprise_id.to_string();
            visit(&file);
        }
        if count < ENTERPRISE_CHUNK {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Counts the enterprises of a town (or all) registered by `at` and not closed then by their
/// colour at `at` (a closed enterprise is not assessed).
pub async fn colour_distribution(
    store: &dyn ReadModelStore,
    rules: &RuleSet,
    town: Option<&Town>,
    at: Instant,
) -> Result<ColourDistribution, QueryError> {
    let mut distribution = ColourDistribution::default();
    distribution.complete = for_each_file(store, town, |file| {
        if file.closure_at(at).is_some() {
            return;
        }
        if let Some(assessment) = risk::assess(file, rules, at) {
            distribution.add(assessment.colour);
        }
    })
    .await?;
    Ok(distribution)
}

/// An enterprise on an inspector's plan: its colour, the checks it is due and its escalation step.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    pub registration: Registration,
    pub assessment: RiskAssessment,
    pub checks: ChecksDue,
    pub escalation: Option<EscalationStep>,
}

/// The enterprises of a town (or all), not closed at `at`, due an online check or an on-site
/// inspection by `period_end`, by the cadence of their colour at `at`, or on the enforcement plan; ordered
/// red first, then by name. The flag is false when the scan stopped at `SCAN_MAX` enterprises.
pub async fn supervision_plan(
    store: &dyn ReadModelStore,
    rules: &RuleSet,
    town: Option<&Town>,
    period_end: Instant,
    at: Instant,
) -> Result<(Vec<PlanEntry>, bool), QueryError> {
    let mut entries = Vec::new();
    let complete = for_each_file(store, town, |file| {
        // A closed enterprise is on no plan: nothing operates there to inspect.
        if file.closure_at(at).is_some() {
            return;
        }
        let Some(report) = evaluate(file, rules, at) else {
            return;
        };
        let assessment = risk::assess_with(file, rules, at, &report);
        let Some(checks) = risk::checks_due(file, rules, at, period_end) else {
            return;
        };
        if !(checks.online_check_due || checks.on_site_due || checks.enforcement_plan) {
            return;
        }
        let Some(registration) = file.registration.clone() else {
            return;
        };
        entries.push(PlanEntry {
            registration,
            assessment,
            checks,
            escalation: risk::escalation(file, rules, at).cloned(),
        });
    })
    .await?;
    entries.sort_by(|a, b| {
        (a.assessment.colour, &a.registration.name, a.registration.enterprise_id).cmp(&(
            b.assessment.colour,
            &b.registration.name,
            b.registration.enterprise_id,
        ))
    });
    Ok((entries, complete))
}

/// An open hazard's deadline in force, for a watcher waiting for it to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDeadline {
    pub enterprise_id: EnterpriseId,
    pub hazard_id: HazardId,
    pub town: Town,
    pub deadline: Instant,
}

/// The deadlines at or after `from` of hazards not closed, soonest first, at most `max`.
pub async fn open_deadlines(
    store: &dyn ReadModelStore,
    from: Instant,
    max: usize,
) -> Result<Vec<OpenDeadline>, QueryError> {
    let rows = store
        .query(OPEN_DEADLINES, &[SqlValue::Timestamp(from), limit(max)])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(OpenDeadline {
                enterprise_id: parse_id(row, 0, "hazards")?,
                hazard_id: parse_id(row, 1, "hazards")?,
                town: parse_column(row, 2, "hazards")?,
                deadline: row.timestamp(3)?,
            })
        })
        .collect()
}
