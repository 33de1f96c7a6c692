//! Queries over the compliance read model. Rows are turned back into the domain's
//! `EnterpriseFile`, so status comes from the very status engine commands are decided with.

use std::collections::BTreeMap;

use anquan_domain::compliance::{ComplianceReport, IndicatorState, evaluate};
use anquan_domain::enterprise::state::Review;
use anquan_domain::enterprise::{
    ClosureKind, ClosureRecord, DocumentRecord, EnterpriseFile, FileRef, Registration, Reopening, ReviewOutcome,
};
use anquan_domain::risk::assess_with;
use anquan_domain::rules::{EnterpriseProfile, RiskColour, RuleSet};
use anquan_domain::{DocumentId, EnterpriseId, IndicatorCode, Instant, Town, UserId};
use anquan_event_store::{ReadModelStore, Row, SqlValue};

use crate::error::QueryError;

/// Largest page a query returns.
pub const PAGE_SIZE_MAX: usize = 100;
/// Enterprises read per round while filtering summaries by computed status.
const SUMMARY_CHUNK: usize = 200;
/// Most enterprises one summaries request examines; past it, the page ends early with a cursor
/// to continue from, so a rare filter cannot make one request scan a whole province.
const SUMMARY_SCAN_MAX: usize = 5_000;

/// One page of a keyset-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    /// Pass as `after` to get the next page.
    pub end_cursor: Option<String>,
}

/// Which enterprises a summary list shows. Town and industry are filtered in SQL, and so is
/// `state: Closed` as far as it can be (an enterprise with a closure known by the instant);
/// status, colour and the exact state need the status engine and the file at the instant and
/// are applied after evaluation, within the scan budget (`SUMMARY_SCAN_MAX`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryFilter {
    pub town: Option<Town>,
    pub responsibility_implemented: Option<bool>,
    /// Only enterprises where this indicator is in this state.
    pub indicator: Option<(IndicatorCode, IndicatorState)>,
    /// Only enterprises of this industry (exactly as registered).
    pub industry: Option<String>,
    /// Only enterprises of this colour at the instant (a closed enterprise has none).
    pub colour: Option<RiskColour>,
    /// Only enterprises active (`false`) or closed (`true`) at the instant.
    pub closed: Option<bool>,
}

/// An enterprise in a summary list, at the list's instant.
#[derive(Debug, Clone, PartialEq)]
pub struct EnterpriseSummary {
    pub registration: Registration,
    pub report: ComplianceReport,
    /// The closure it was under at the instant; `None` while active.
    pub closure: Option<ClosureRecord>,
    /// Its colour at the instant; `None` when closed (a closed enterprise is not assessed).
    pub colour: Option<RiskColour>,
}

/// A document with the enterprise it belongs to, as the review queue and document pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentView {
    pub enterprise_id: EnterpriseId,
    pub enterprise_name: String,
    pub town: Town,
    pub indicator: IndicatorCode,
    pub record: DocumentRecord,
    pub uploaded_by: UserId,
    pub reviewed_by: Option<UserId>,
}

macro_rules! document_columns {
    () => {
        "d.document_id, d.enterprise_id, e.name, d.town, d.requirement, d.title, d.file_sha256, \
         d.file_size_bytes, d.media_type, d.file_name, d.coverage, d.uploaded_at, d.uploaded_by, \
         d.review_outcome, d.reviewed_at, d.reviewed_by, d.feedback, d.comment \
         FROM documents d JOIN enterprises e ON e.enterprise_id = d.enterprise_id"
    };
}

const ENTERPRISE_BY_ID: &str = "SELECT enterprise_id, name, credit_code, town, industry, registered_at \
    FROM enterprises WHERE enterprise_id = $1";
/// `$1 = ''` means any town; `$2` is the cursor (`''` for the first page).
const ENTERPRISES_PAGE: &str = "SELECT enterprise_id, name, credit_code, town, industry, registered_at \
    FROM enterprises WHERE ($1 = '' OR town = $1) AND enterprise_id > $2 ORDER BY enterprise_id LIMIT $3";
/// `ENTERPRISES_PAGE` for a list with an industry (`$4 = ''` for any) or only enterprises with
/// a closure known by `$5` (`$6 = 1`), which the exact state at `$5` is then checked on.
const ENTERPRISES_PAGE_FILTERED: &str = "SELECT enterprise_id, name, credit_code, town, industry, registered_at \
    FROM enterprises e WHERE ($1 = '' OR town = $1) AND enterprise_id > $2 AND ($4 = '' OR industry = $4) \
    AND ($6 = 0 OR EXISTS (SELECT 1 FROM enterprise_closures c WHERE c.enterprise_id = e.enterprise_id \
    AND c.effective_at <= $5 AND c.recorded_at <= $5)) ORDER BY enterprise_id LIMIT $3";
const PROFILES_IN_RANGE: &str = "SELECT enterprise_id, effective_at, profile, town FROM enterprise_profiles \
    WHERE enterprise_id >= $1 AND enterprise_id <= $2 ORDER BY enterprise_id, effective_at";
const CLOSURES_IN_RANGE: &str = "SELECT enterprise_id, kind, reason, effective_at, recorded_at, reopen_reason, \
    reopened_at, reopen_recorded_at FROM enterprise_closures \
    WHERE enterprise_id >= $1 AND enterprise_id <= $2 ORDER BY enterprise_id, position";
/// The documents of the enterprises of a range as their files hold them (`FILE_DOCUMENT`'s
/// columns): without the enterprise's name, a join per row, and without who uploaded and
/// reviewed, which a file does not hold (on the scale-1 demo the documents were most of what a
/// pass over every file read).
const FILE_DOCUMENTS_IN_RANGE: &str = "SELECT d.enterprise_id, d.document_id, d.requirement, d.title, \
    d.file_sha256, d.file_size_bytes, d.media_type, d.file_name, d.coverage, d.uploaded_at, d.review_outcome, \
    d.reviewed_at, d.feedback, d.comment FROM documents d \
    WHERE d.enterprise_id >= $1 AND d.enterprise_id <= $2 AND ($3 = '' OR d.town = $3) \
    ORDER BY d.enterprise_id, d.document_id";
const DOCUMENT_BY_ID: &str = concat!("SELECT ", document_columns!(), " WHERE d.document_id = $1");
/// Pending documents, oldest upload first, after the document `$2` the previous page ended
/// with (`''` for the first page), `$3` of them; the town condition comes first.
macro_rules! review_queue {
    ($town:literal) => {
        concat!(
            "SELECT ",
            document_columns!(),
            " WHERE d.review_outcome IS NULL AND ",
            $town,
            " AND ($2 = '' OR (d.uploaded_at, d.document_id) > \
             (SELECT c.uploaded_at, c.document_id FROM documents c WHERE c.document_id = $2)) \
             ORDER BY d.uploaded_at, d.document_id LIMIT $3"
        )
    };
}
/// The queue of every town (`$1` is `''`): the `documents_pending` index in upload order.
const REVIEW_QUEUE: &str = review_queue!("$1 = ''");
/// The queue of town `$1`: the `documents_review_queue` index, which starts with the town. One
/// statement for both (`$1 = '' OR d.town = $1`) walked the city's queue and looked up each
/// document's town, reading rows of every other town (12 times as many for a town of Haining,
/// hundreds of times at province scale).
const REVIEW_QUEUE_OF_TOWN: &str = review_queue!("d.town = $1");

/// Rebuilds an enterprise's file from the read model; `None` if it is not (yet) projected.
/// Evaluate it with `anquan_domain::compliance::evaluate` for its status at any instant.
pub async fn enterprise_file(
    store: &dyn ReadModelStore,
    enterprise_id: EnterpriseId,
) -> Result<Option<EnterpriseFile>, QueryError> {
    let id = SqlValue::Text(enterprise_id.to_string());
    let rows = store.query(ENTERPRISE_BY_ID, std::slice::from_ref(&id)).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let mut files = BTreeMap::from([(enterprise_id, new_file(row)?)]);
    load_histories(store, &mut files, &id, &id, "").await?;
    Ok(files.remove(&enterprise_id))
}

/// Reads up to `chunk` enterprises of `town` (`""` for every town) with ids after `after`
/// (`""` for the first), with their whole files, ordered by id.
pub async fn files_after(
    store: &dyn ReadModelStore,
    town: &str,
    after: &str,
    chunk: usize,
) -> Result<BTreeMap<EnterpriseId, EnterpriseFile>, QueryError> {
    let params = [
        SqlValue::Text(town.to_owned()),
        SqlValue::Text(after.to_owned()),
        limit(chunk),
    ];
    let rows = store.query(ENTERPRISES_PAGE, &params).await?;
    let mut files = BTreeMap::new();
    let (Some(low), Some(high)) = (rows.first(), rows.last()) else {
        return Ok(files);
    };
    let (low, high) = (SqlValue::Text(low.text(0)?), SqlValue::Text(high.text(0)?));
    for row in &rows {
        files.insert(parse_id::<EnterpriseId>(row, 0, "enterprises")?, new_file(row)?);
    }
    load_histories(store, &mut files, &low, &high, town).await?;
    Ok(files)
}

/// Lists enterprises with their compliance at `at`, ordered by enterprise id.
pub async fn enterprise_summaries(
    store: &dyn ReadModelStore,
    filter: &SummaryFilter,
    rules: &RuleSet,
    at: Instant,
    first: usize,
    after: Option<&str>,
) -> Result<Page<EnterpriseSummary>, QueryError> {
    check_page_size(first)?;
    let mut cursor = match after {
        Some(cursor) => parse_cursor::<EnterpriseId>(cursor)?.to_string(),
        None => String::new(),
    };
    let town = filter.town.as_ref().map_or("", Town::as_str).to_owned();
    let prefiltered = filter.industry.is_some() || filter.closed == Some(true);
    let mut items = Vec::new();
    let mut scanned = 0;
    while items.len() <= first && scanned < SUMMARY_SCAN_MAX {
        let mut params = vec![
            SqlValue::Text(town.clone()),
            SqlValue::Text(cursor.clone()),
            limit(SUMMARY_CHUNK),
        ];
        let sql = if prefiltered {
            params.extend([
                SqlValue::Text(filter.industry.clone().unwrap_or_default()),
                SqlValue::Timestamp(at),
                SqlValue::Int(i64::from(filter.closed == Some(true))),
            ]);
            ENTERPRISES_PAGE_FILTERED
        } else {
            ENTERPRISES_PAGE
        };
        let rows = store.query(sql, &params).await?;
        let (Some(low), Some(high)) = (rows.first(), rows.last()) else {
            return Ok(page(items, first, false));
        };
        let (low, high) = (SqlValue::Text(low.text(0)?), SqlValue::Text(high.text(0)?));
        let mut files = BTreeMap::new();
        for row in &rows {
            files.insert(parse_id::<EnterpriseId>(row, 0, "enterprises")?, new_file(row)?);
        }
        load_histories(store, &mut files, &low, &high, &town).await?;
        for (enterprise_id, file) in files {
            scanned += 1;
            cursor = enterprise_id.to_string();
            if let Some(item) = summary(&file, filter, rules, at) {
                items.push(item);
                if items.len() > first {
                    return Ok(page(items, first, true));
                }
            }
        }
        if rows.len() < SUMMARY_CHUNK {
            return Ok(page(items, first, false));
        }
    }
    // The scan budget ran out: end the page early where the scan stopped.
    Ok(Page {
        items,
        has_next: true,
        end_cursor: Some(cursor),
    })
}

/// Lists documents awaiting review (in one town, or all), oldest upload first.
pub async fn review_queue(
    store: &dyn ReadModelStore,
    town: Option<&Town>,
    first: usize,
    after: Option<&str>,
) -> Result<Page<DocumentView>, QueryError> {
    check_page_size(first)?;
    let cursor = match after {
        Some(cursor) => parse_cursor::<DocumentId>(cursor)?.to_string(),
        None => String::new(),
    };
    let params = [
        SqlValue::Text(town.map_or("", Town::as_str).to_owned()),
        SqlValue::Text(cursor),
        limit(first + 1),
    ];
    let sql = if town.is_some() {
        REVIEW_QUEUE_OF_TOWN
    } else {
        REVIEW_QUEUE
    };
    let rows = store.query(sql, &params).await?;
    let mut items = rows.iter().map(document_view).collect::<Result<Vec<_>, _>>()?;
    let has_next = items.len() > first;
    items.truncate(first);
    let end_cursor = items.last().map(|view| view.record.document_id.to_string());
    Ok(Page {
        items,
        has_next,
        end_cursor,
    })
}

/// Reads one document with its enterprise's name and town.
pub async fn document(store: &dyn ReadModelStore, document_id: DocumentId) -> Result<Option<DocumentView>, QueryError> {
    let rows = store
        .query(DOCUMENT_BY_ID, &[SqlValue::Text(document_id.to_string())])
        .await?;
    rows.first().map(document_view).transpose()
}

/// Evaluates one file and keeps it if it was registered by `at` and passes the status filters.
fn summary(file: &EnterpriseFile, filter: &SummaryFilter, rules: &RuleSet, at: Instant) -> Option<EnterpriseSummary> {
    let closure = file.closure_at(at).cloned();
    if filter.closed.is_some_and(|closed| closed != closure.is_some()) {
        return None;
    }
    let report = evaluate(file, rules, at)?;
    if filter
        .responsibility_implemented
        .is_some_and(|wanted| report.responsibility_implemented != wanted)
    {
        return None;
    }
    if let Some((code, state)) = &filter.indicator
        && !report
            .indicators
            .iter()
            .any(|status| &status.code == code && status.state == *state)
    {
        return None;
    }
    let colour = match closure {
        Some(_) => None,
        None => Some(assess_with(file, rules, at, &report).colour),
    };
    if filter.colour.is_some() && filter.colour != colour {
        return None;
    }
    Some(EnterpriseSummary {
        registration: file.registration.clone()?,
        report,
        closure,
        colour,
    })
}

fn page(mut items: Vec<EnterpriseSummary>, first: usize, has_next: bool) -> Page<EnterpriseSummary> {
    items.truncate(first);
    let end_cursor = items
        .last()
        .map(|summary| summary.registration.enterprise_id.to_string());
    Page {
        items,
        has_next,
        end_cursor,
    }
}

/// Loads the profile histories and documents of the enterprises with ids in `low..=high`
/// into `files` (rows of enterprises not in `files` are skipped).
pub(super) async fn load_histories(
    store: &dyn ReadModelStore,
    files: &mut BTreeMap<EnterpriseId, EnterpriseFile>,
    low: &SqlValue,
    high: &SqlValue,
    town: &str,
) -> Result<(), QueryError> {
    let range = [low.clone(), high.clone()];
    for row in store.query(PROFILES_IN_RANGE, &range).await? {
        let enterprise_id = parse_id::<EnterpriseId>(&row, 0, "enterprise_profiles")?;
        if let Some(file) = files.get_mut(&enterprise_id) {
            let profile: EnterpriseProfile = parse_json(&row, 2, "enterprise_profiles")?;
            let since = row.timestamp(1)?;
            file.profile_history.push((since, profile));
            file.town_history
                .push((since, parse_column(&row, 3, "enterprise_profiles")?));
        }
    }
    for row in store.query(CLOSURES_IN_RANGE, &range).await? {
        let enterprise_id = parse_id::<EnterpriseId>(&row, 0, "enterprise_closures")?;
        if let Some(file) = files.get_mut(&enterprise_id) {
            file.closures.push(closure_record(&row)?);
        }
    }
    let params = [low.clone(), high.clone(), SqlValue::Text(town.to_owned())];
    for row in store.query(FILE_DOCUMENTS_IN_RANGE, &params).await? {
        let enterprise_id = parse_id::<EnterpriseId>(&row, 0, "documents")?;
        if let Some(file) = files.get_mut(&enterprise_id) {
            let record = document_record(&row, &FILE_COLUMNS)?;
            file.documents.insert(record.document_id, record);
        }
    }
    super::supervision::load_supervision(store, files, low, high).await?;
    Ok(())
}

/// Starts a file from an `enterprises` row (id, name, credit code, town, industry, registered).
pub(super) fn new_file(row: &Row) -> Result<EnterpriseFile, QueryError> {
    let table = "enterprises";
    Ok(EnterpriseFile {
        registration: Some(Registration {
            enterprise_id: parse_id(row, 0, table)?,
            name: row.text(1)?,
            credit_code: parse_column(row, 2, table)?,
            town: parse_column(row, 3, table)?,
            industry: row.text(4)?,
            registered_at: row.timestamp(5)?,
        }),
        profile_history: Vec::new(),
        town_history: Vec::new(),
        documents: BTreeMap::new(),
        inspections: BTreeMap::new(),
        hazards: BTreeMap::new(),
        accidents: Vec::new(),
        closures: Vec::new(),
    })
}

/// Reads a row of `CLOSURES_IN_RANGE`.
fn closure_record(row: &Row) -> Result<ClosureRecord, QueryError> {
    let table = "enterprise_closures";
    let kind_name = row.text(1)?;
    let kind = ClosureKind::parse(&kind_name)
        .ok_or_else(|| malformed(table, format!("unknown closure kind {kind_name:?}")))?;
    let reopening = match (row.opt_text(5)?, row.opt_timestamp(6)?, row.opt_timestamp(7)?) {
        (Some(reason), Some(effective_at), Some(recorded_at)) => Some(Reopening {
            reason,
            effective_at,
            recorded_at,
        }),
        _ => None,
    };
    Ok(ClosureRecord {
        kind,
        reason: row.text(2)?,
        effective_at: row.timestamp(3)?,
        recorded_at: row.timestamp(4)?,
        reopening,
    })
}

/// Where a query puts the columns of a document's record.
struct RecordColumns {
    document_id: usize,
    /// The requirement, then title, sha256, size, media type, file name, coverage and upload
    /// instant, in that order.
    requirement: usize,
    /// The review's outcome, then its instant.
    review_outcome: usize,
    feedback: usize,
    comment: usize,
}

/// `document_columns!()`.
const VIEW_COLUMNS: RecordColumns = RecordColumns {
    document_id: 0,
    requirement: 4,
    review_outcome: 13,
    feedback: 16,
    comment: 17,
};

/// `FILE_DOCUMENTS_IN_RANGE`, after the enterprise's id.
const FILE_COLUMNS: RecordColumns = RecordColumns {
    document_id: 1,
    requirement: 2,
    review_outcome: 10,
    feedback: 12,
    comment: 13,
};

/// Reads a document's record from a row whose columns are at `at`.
fn document_record(row: &Row, at: &RecordColumns) -> Result<DocumentRecord, QueryError> {
    let table = "documents";
    let review = match row.opt_text(at.review_outcome)?.as_deref() {
        None => None,
        Some(outcome) => {
            let outcome = match outcome {
                "approved" => ReviewOutcome::Approved {
                    comment: row.opt_text(at.comment)?,
                },
                "returned" => ReviewOutcome::Returned {
                    feedback: row.opt_text(at.feedback)?.unwrap_or_default(),
                },
                other => return Err(malformed(table, format!("unknown review outcome {other:?}"))),
            };
            Some(Review {
                outcome,
                reviewed_at: row.timestamp(at.review_outcome + 1)?,
            })
        }
    };
    let file = at.requirement + 2;
    Ok(DocumentRecord {
        document_id: parse_id(row, at.document_id, table)?,
        requirement: parse_column(row, at.requirement, table)?,
        title: row.text(at.requirement + 1)?,
        file: FileRef {
            sha256: row.text(file)?,
            size_bytes: u64::try_from(row.int(file + 1)?).map_err(|_| malformed(table, "negative file size".into()))?,
            media_type: row.text(file + 2)?,
            file_name: row.text(file + 3)?,
        },
        coverage: parse_json(row, file + 4, table)?,
        uploaded_at: row.timestamp(file + 5)?,
        review,
    })
}

/// Reads a row of `document_columns!()`.
fn document_view(row: &Row) -> Result<DocumentView, QueryError> {
    let table = "documents";
    let record = document_record(row, &VIEW_COLUMNS)?;
    Ok(DocumentView {
        enterprise_id: parse_id(row, 1, table)?,
        enterprise_name: row.text(2)?,
        town: parse_column(row, 3, table)?,
        indicator: record.requirement.indicator(),
        record,
        uploaded_by: user_id(&row.text(12)?)?,
        reviewed_by: row.opt_text(15)?.as_deref().map(user_id).transpose()?,
    })
}

pub(super) fn check_page_size(first: usize) -> Result<(), QueryError> {
    if first > PAGE_SIZE_MAX {
        return Err(QueryError::PageTooLarge {
            first,
            max: PAGE_SIZE_MAX,
        });
    }
    Ok(())
}

pub(super) fn limit(rows: usize) -> SqlValue {
    SqlValue::Int(i64::try_from(rows).unwrap_or(i64::MAX))
}

pub(super) fn parse_cursor<T: std::str::FromStr>(cursor: &str) -> Result<T, QueryError> {
    cursor.parse().map_err(|_| QueryError::InvalidCursor {
        cursor: cursor.to_owned(),
    })
}

pub(super) fn parse_column<T>(row: &Row, column: usize, table: &'static str) -> Result<T, QueryError>
where
    T: TryFrom<String>,
    T::Error: std::fmt::Display,
{
    T::try_from(row.text(column)?).map_err(|error| malformed(table, format!("column {column}: {error}")))
}

pub(super) fn parse_id<T>(row: &Row, column: usize, table: &'static str) -> Result<T, QueryError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    row.text(column)?
        .parse()
        .map_err(|error| malformed(table, format!("column {column}: {error}")))
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    row: &Row,
    column: usize,
    table: &'static str,
) -> Result<T, QueryError> {
    serde_json::from_str(&row.text(column)?).map_err(|error| malformed(table, format!("column {column}: {error}")))
}

pub(super) fn user_id(text: &str) -> Result<UserId, QueryError> {
    UserId::parse(text).map_err(|error| malformed("documents", error.to_string()))
}

pub(super) fn malformed(table: &'static str, reason: String) -> QueryError {
    QueryError::Malformed { table, reason }
}
