//! The compliance read model: enterprises, their profile history, their documents with
//! reviews, and their supervision facts (inspections, hazards with extensions and
//! rectifications, accidents). It stores facts only; status, overdue hazards and colour are
//! computed at query time by the domain, so "now" is right without an event and any past
//! instant can be asked for.

mod public_page;
mod query;
mod supervision;

pub use public_page::{enterprise_by_public_token_digest, public_token_rotated_at};
pub use query::{
    DocumentView, EnterpriseSummary, PAGE_SIZE_MAX, Page, SummaryFilter, document, enterprise_file,
    enterprise_summaries, files_after, review_queue,
};
pub use supervision::{
    ColourDistribution, HazardFilter, HazardStateFilter, HazardView, ListingFilter, OpenDeadline, PlanEntry, SCAN_MAX,
    colour_distribution, hazards, open_deadlines, overdue_queue, supervision_plan,
};

use anquan_domain::enterprise::event::{
    Coverage, DocumentApproved, DocumentReturned, DocumentUploaded, EnterpriseProfileChanged, EnterpriseRegistered,
};
use anquan_domain::{EnterpriseId, Event};
use anquan_event_store::{Dialect, Footprint, RecordedEvent, Shaped, SqlValue};

use crate::error::ProjectionError;
use crate::projection::{BatchStatements, Projection};
use crate::values::{int, json, text};

const SQLITE_SCHEMA: &str = include_str!("../../../../projections/schema/sqlite/compliance.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../../projections/schema/postgres/compliance.sql");
const SQLITE_QUERY_INDEXES: &str = include_str!("../../../../projections/schema/sqlite/compliance_query_indexes.sql");
const POSTGRES_QUERY_INDEXES: &str =
    include_str!("../../../../projections/schema/postgres/compliance_query_indexes.sql");

const INSERT_ENTERPRISE: Shaped = Shaped::new(
    "INSERT INTO enterprises \
    (enterprise_id, name, credit_code, town, industry, profile, registered_at, last_position) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
    ON CONFLICT (enterprise_id) DO UPDATE SET name = excluded.name, credit_code = excluded.credit_code, \
    town = excluded.town, industry = excluded.industry, profile = excluded.profile, \
    registered_at = excluded.registered_at, last_position = excluded.last_position",
    Footprint::writes("enterprises", &[0]),
);
const UPSERT_PROFILE: Shaped = Shaped::new(
    "INSERT INTO enterprise_profiles (enterprise_id, effective_at, profile, town) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (enterprise_id, effective_at) DO UPDATE SET profile = excluded.profile, \
    town = excluded.town",
    Footprint::writes("enterprise_profiles", &[0, 1]),
);
const UPDATE_ENTERPRISE: Shaped = Shaped::new(
    "UPDATE enterprises \
    SET name = $2, town = $3, industry = $4, profile = $5, last_position = $6 WHERE enterprise_id = $1",
    Footprint::writes("enterprises", &[0]),
);
const UPDATE_DOCUMENTS_TOWN: Shaped = Shaped::new(
    "UPDATE documents SET town = $2 WHERE enterprise_id = $1",
    Footprint::writes("documents", &[0]),
);
const UPDATE_SUPERVISION_TOWN: [Shaped; 3] = [
    Shaped::new(
        "UPDATE inspections SET town = $2 WHERE enterprise_id = $1",
        Footprint::writes("inspections", &[0]),
    ),
    Shaped::new(
        "UPDATE hazards SET town = $2 WHERE enterprise_id = $1",
        Footprint::writes("hazards", &[0]),
    ),
    Shaped::new(
        "UPDATE accidents SET town = $2 WHERE enterprise_id = $1",
        Footprint::writes("accidents", &[0]),
    ),
];
/// One row per enterprise: a rotation replaces the digest, so the old token stops matching in
/// the same batch that makes the new one match.
///
/// The footprint names the enterprise's row alone, although the unique index on the digest
/// relates rows of different enterprises. That is exact: nothing else the projections write
/// touches `public_tokens`, and the planner never reorders two statements of one SQL text (a
/// later one joins the latest run of its text or starts a later run), so the rotations still
/// run in log order and meet the unique index as they would one by one. Without a footprint
/// each rotation was a barrier that split every other table's runs: the demo rotates every
/// enterprise's token once, and the documents of a page of 30,000 events were inserted in
/// about 150 statements instead of a few.
const UPSERT_PUBLIC_TOKEN: Shaped = Shaped::new(
    "INSERT INTO public_tokens (enterprise_id, token_digest, rotated_at) \
    VALUES ($1, $2, $3) ON CONFLICT (enterprise_id) DO UPDATE SET token_digest = excluded.token_digest, \
    rotated_at = excluded.rotated_at",
    Footprint::writes("public_tokens", &[0]),
);
const INSERT_CLOSURE: Shaped = Shaped::new(
    "INSERT INTO enterprise_closures \
    (enterprise_id, position, kind, reason, effective_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
    Footprint::writes("enterprise_closures", &[0, 1]),
);
/// The open closure is the one without a reopening; the domain allows one at a time.
const REOPEN_CLOSURE: Shaped = Shaped::new(
    "UPDATE enterprise_closures SET reopen_reason = $2, reopened_at = $3, \
    reopen_recorded_at = $4 WHERE enterprise_id = $1 AND reopen_recorded_at IS NULL",
    Footprint::writes("enterprise_closures", &[0]),
);
const SET_CLOSED_SINCE: Shaped = Shaped::new(
    "UPDATE enterprises SET closed_since = $2 WHERE enterprise_id = $1",
    Footprint::writes("enterprises", &[0]),
);
const TOUCH_ENTERPRISE: Shaped = Shaped::new(
    "UPDATE enterprises SET last_position = $2 WHERE enterprise_id = $1",
    Footprint::writes("enterprises", &[0]),
);
/// The document takes its enterprise's current town, kept in step by `UPDATE_DOCUMENTS_TOWN`.
const INSERT_DOCUMENT: Shaped = Shaped::new(
    "INSERT INTO documents \
    (document_id, enterprise_id, town, requirement, indicator, title, file_sha256, file_size_bytes, \
    media_type, file_name, coverage, valid_from, valid_until, period, uploaded_at, uploaded_by, position) \
    VALUES ($1, $2, (SELECT town FROM enterprises WHERE enterprise_id = $2), $3, $4, $5, $6, $7, \
    $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    Footprint::writes("documents", &[1, 0]).reading("enterprises", &[1]),
);
/// A document whose review is folded in the same batch as its upload: `INSERT_DOCUMENT` with the
/// review's position and the review columns that `APPROVE_DOCUMENT` and `RETURN_DOCUMENT` set.
/// `review_statements` gives an `INSERT_DOCUMENT` this text and keeps its footprint, the same.
const INSERT_REVIEWED_DOCUMENT: Shaped = Shaped::new(
    "INSERT INTO documents \
    (document_id, enterprise_id, town, requirement, indicator, title, file_sha256, file_size_bytes, \
    media_type, file_name, coverage, valid_from, valid_until, period, uploaded_at, uploaded_by, position, \
    review_outcome, reviewed_at, reviewed_by, feedback, comment) \
    VALUES ($1, $2, (SELECT town FROM enterprises WHERE enterprise_id = $2), $3, $4, $5, $6, $7, \
    $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    Footprint::writes("documents", &[1, 0]).reading("enterprises", &[1]),
);
/// The parameters of `INSERT_DOCUMENT` before its last one, the position.
const DOCUMENT_PARAMS_BEFORE_POSITION: usize = 15;
/// A review's update names the enterprise too: `(enterprise_id, document_id)` is the table's key,
/// while the index on `document_id` alone is a query index a rebuild builds only at its end.
const APPROVE_DOCUMENT: Shaped = Shaped::new(
    "UPDATE documents SET review_outcome = 'approved', reviewed_at = $2, \
    reviewed_by = $3, comment = $4, feedback = NULL, position = $5 WHERE enterprise_id = $6 AND document_id = $1",
    Footprint::writes("documents", &[5, 0]),
);
const RETURN_DOCUMENT: Shaped = Shaped::new(
    "UPDATE documents SET review_outcome = 'returned', reviewed_at = $2, \
    reviewed_by = $3, feedback = $4, comment = NULL, position = $5 WHERE enterprise_id = $6 AND document_id = $1",
    Footprint::writes("documents", &[5, 0]),
);

/// Folds enterprise events into `enterprises`, `enterprise_profiles` and `documents`.
///
/// Handles every event of the enterprise stream; events of other streams are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComplianceProjection;

impl ComplianceProjection {
    /// The projection's name, keying its checkpoint.
    pub const NAME: &'static str = "compliance";
    /// The tables it owns.
    pub const TABLES: &'static [&'static str] = &[
        "enterprises",
        "enterprise_profiles",
        "documents",
        "inspections",
        "hazards",
        "hazard_extensions",
        "listing_progress",
        "rectifications",
        "accidents",
        "public_tokens",
        "enterprise_closures",
    ];
}

impl Projection for ComplianceProjection {
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
    /// backends' sequence number alone. Layout 3 adds the hazards' free-text basis columns.
    /// Layout 4 adds the town to each `enterprise_profiles` row (the town at that instant) and
    /// the rectifications' self-closure and spot-check columns. Layout 5 adds the hazards'
    /// listed-supervision columns (挂牌督办) and the `listing_progress` table, and
    /// `enterprises.closed_since` and `enterprise_closures` (closures and reopenings).
    fn layout(&self) -> u32 {
        5
    }

    fn apply(&self, event: &RecordedEvent, decoded: &Event, out: &mut BatchStatements) -> Result<(), ProjectionError> {
        if event.stream_id.category() != "enterprise" {
            return Ok(());
        }
        let enterprise_id = enterprise_of(event)?;
        let position = crate::values::position(event.position);
        match decoded {
            Event::EnterpriseRegistered(registered) => registered_statements(registered, position, out),
            Event::EnterpriseProfileChanged(changed) => changed_statements(enterprise_id, changed, position, out),
            Event::DocumentUploaded(uploaded) => uploaded_statements(enterprise_id, event, uploaded, position, out),
            Event::DocumentApproved(approved) => {
                approved_statements(enterprise_id, event, approved, position, out);
                Ok(())
            }
            Event::DocumentReturned(returned) => {
                returned_statements(enterprise_id, event, returned, position, out);
                Ok(())
            }
            Event::InspectionRecorded(_)
            | Event::HazardFound(_)
            | Event::HazardDeadlineExtended(_)
            | Event::MajorHazardBasisStated(_)
            | Event::MajorHazardConfirmed(_)
            | Event::RectificationSubmitted(_)
            | Event::RectificationAccepted(_)
            | Event::RectificationReturned(_)
            | Event::HazardSelfClosed(_)
            | Event::HazardSpotChecked(_)
            | Event::HazardListed(_)
            | Event::ListingProgressReported(_)
            | Event::ListingLiftRequested(_)
            | Event::HazardDelisted(_)
            | Event::AccidentReported(_) => supervision::statements(enterprise_id, event, decoded, position, out),
            Event::EnterpriseClosed(closed) => {
                out.push(INSERT_CLOSURE.statement(vec![
                    text(enterprise_id),
                    position.clone(),
                    SqlValue::Text(closed.kind.name().to_owned()),
                    SqlValue::Text(closed.reason.clone()),
                    SqlValue::Timestamp(closed.effective_at),
                    SqlValue::Timestamp(closed.recorded_at),
                ]));
                out.push(
                    SET_CLOSED_SINCE.statement(vec![text(enterprise_id), SqlValue::Timestamp(closed.effective_at)]),
                );
                touch(out, enterprise_id, position);
                Ok(())
            }
            Event::EnterpriseReopened(reopened) => {
                out.push(REOPEN_CLOSURE.statement(vec![
                    text(enterprise_id),
                    SqlValue::Text(reopened.reason.clone()),
                    SqlValue::Timestamp(reopened.effective_at),
                    SqlValue::Timestamp(reopened.recorded_at),
                ]));
                out.push(SET_CLOSED_SINCE.statement(vec![text(enterprise_id), SqlValue::Null]));
                touch(out, enterprise_id, position);
                Ok(())
            }
            Event::PublicTokenRotated(rotated) => {
                out.push(UPSERT_PUBLIC_TOKEN.statement(vec![
                    text(enterprise_id),
                    SqlValue::Text(rotated.token_digest.clone()),
                    SqlValue::Timestamp(rotated.rotated_at),
                ]));
                touch(out, enterprise_id, position);
                Ok(())
            }
            // Agency events live on agency streams; the stream check above already skips them.
            Event::AgencyRegistered(_)
            | Event::AgencyProfileChanged(_)
            | Event::StaffReported(_)
            | Event::ContractSigned(_)
            | Event::ContractProposed(_)
            | Event::ContractConfirmed(_)
            | Event::ContractRejected(_)
            | Event::ContractFiled(_)
            | Event::ContractTerminated(_)
            | Event::ServiceReported(_)
            | Event::ServiceRated(_)
            | Event::ReportSpotChecked(_)
            | Event::AgencyComplaintFounded(_)
            | Event::AgencyWarned(_)
            | Event::AgencyMisconductFound(_)
            | Event::CreditGraded(_)
            | Event::CreditRegraded(_)
            | Event::AgencyBlacklisted(_)
            | Event::AgencyDelisted(_)
            | Event::DataSubjectErased(_) => Ok(()),
            // Rule-set events live on the `rulesets` stream.
            Event::RuleSetPublished(_)
            | Event::RuleSetPromoted(_)
            | Event::AnchorTaken(_)
            | Event::MonthlyReportIssued(_)
            | Event::AnnualAssessmentIssued(_) => Ok(()),
        }
    }
}

fn registered_statements(
    registered: &EnterpriseRegistered,
    position: SqlValue,
    out: &mut BatchStatements,
) -> Result<(), ProjectionError> {
    let id = text(registered.enterprise_id);
    let profile = json("profile", &registered.profile)?;
    out.push(INSERT_ENTERPRISE.statement(vec![
        id.clone(),
        SqlValue::Text(registered.name.clone()),
        SqlValue::Text(registered.credit_code.as_str().to_owned()),
        SqlValue::Text(registered.town.as_str().to_owned()),
        SqlValue::Text(registered.industry.clone()),
        profile.clone(),
        SqlValue::Timestamp(registered.registered_at),
        position,
    ]));
    out.push(UPSERT_PROFILE.statement(vec![
        id,
        SqlValue::Timestamp(registered.registered_at),
        profile,
        SqlValue::Text(registered.town.to_string()),
    ]));
    Ok(())
}

fn changed_statements(
    enterprise_id: EnterpriseId,
    changed: &EnterpriseProfileChanged,
    position: SqlValue,
    out: &mut BatchStatements,
) -> Result<(), ProjectionError> {
    let id = text(enterprise_id);
    let town = SqlValue::Text(changed.town.as_str().to_owned());
    let profile = json("profile", &changed.profile)?;
    out.push(UPDATE_ENTERPRISE.statement(vec![
        id.clone(),
        SqlValue::Text(changed.name.clone()),
        town.clone(),
        SqlValue::Text(changed.industry.clone()),
        profile.clone(),
        position,
    ]));
    out.push(UPSERT_PROFILE.statement(vec![
        id.clone(),
        SqlValue::Timestamp(changed.changed_at),
        profile,
        town.clone(),
    ]));
    out.push(UPDATE_DOCUMENTS_TOWN.statement(vec![id.clone(), town.clone()]));
    for shaped in UPDATE_SUPERVISION_TOWN {
        out.push(shaped.statement(vec![id.clone(), town.clone()]));
    }
    Ok(())
}

fn uploaded_statements(
    enterprise_id: EnterpriseId,
    event: &RecordedEvent,
    uploaded: &DocumentUploaded,
    position: SqlValue,
    out: &mut BatchStatements,
) -> Result<(), ProjectionError> {
    let (valid_from, valid_until, period) = match &uploaded.coverage {
        Coverage::Once => (SqlValue::Null, SqlValue::Null, SqlValue::Null),
        Coverage::Validity {
            valid_from,
            valid_until,
        } => (
            SqlValue::Timestamp(*valid_from),
            SqlValue::Timestamp(*valid_until),
            SqlValue::Null,
        ),
        Coverage::Period { period } => (SqlValue::Null, SqlValue::Null, SqlValue::Text(period.to_string())),
    };
    let file = &uploaded.file;
    let document_id = uploaded.document_id.to_string();
    out.push_insert(
        "documents",
        document_row(enterprise_id, &document_id),
        INSERT_DOCUMENT.statement(vec![
            SqlValue::Text(document_id),
            text(enterprise_id),
            SqlValue::Text(uploaded.requirement.as_str().to_owned()),
            SqlValue::Text(uploaded.requirement.indicator().as_str().to_owned()),
            SqlValue::Text(uploaded.title.clone()),
            SqlValue::Text(file.sha256.clone()),
            int("file size", file.size_bytes),
            SqlValue::Text(file.media_type.clone()),
            SqlValue::Text(file.file_name.clone()),
            json("coverage", &uploaded.coverage)?,
            valid_from,
            valid_until,
            period,
            SqlValue::Timestamp(uploaded.uploaded_at),
            actor(event),
            position.clone(),
        ]),
    );
    touch(out, enterprise_id, position);
    Ok(())
}

fn approved_statements(
    enterprise_id: EnterpriseId,
    event: &RecordedEvent,
    approved: &DocumentApproved,
    position: SqlValue,
    out: &mut BatchStatements,
) {
    let review = Review {
        outcome: "approved",
        reviewed_at: SqlValue::Timestamp(approved.reviewed_at),
        reviewed_by: actor(event),
        feedback: SqlValue::Null,
        comment: approved.comment.clone().map_or(SqlValue::Null, SqlValue::Text),
        position: position.clone(),
    };
    review_statements(out, enterprise_id, approved.document_id.to_string(), review, |review| {
        vec![review.reviewed_at, review.reviewed_by, review.comment, review.position]
    });
    touch(out, enterprise_id, position);
}

fn returned_statements(
    enterprise_id: EnterpriseId,
    event: &RecordedEvent,
    returned: &DocumentReturned,
    position: SqlValue,
    out: &mut BatchStatements,
) {
    let review = Review {
        outcome: "returned",
        reviewed_at: SqlValue::Timestamp(returned.reviewed_at),
        reviewed_by: actor(event),
        feedback: SqlValue::Text(returned.feedback.clone()),
        comment: SqlValue::Null,
        position: position.clone(),
    };
    review_statements(out, enterprise_id, returned.document_id.to_string(), review, |review| {
        vec![review.reviewed_at, review.reviewed_by, review.feedback, review.position]
    });
    touch(out, enterprise_id, position);
}

/// What a review sets on its document's row.
struct Review {
    outcome: &'static str,
    reviewed_at: SqlValue,
    reviewed_by: SqlValue,
    feedback: SqlValue,
    comment: SqlValue,
    position: SqlValue,
}

/// Folds a review into its document's insert when the upload is in the same batch (most are:
/// a review follows its upload within about a thousand events), else updates the row with
/// `APPROVE_DOCUMENT` or `RETURN_DOCUMENT`, whose parameters between the document's id and its
/// enterprise's `update_params` gives.
/// Between the two, the batch only ever changes a document's town, which a review leaves alone.
fn review_statements(
    out: &mut BatchStatements,
    enterprise_id: EnterpriseId,
    document_id: String,
    review: Review,
    update_params: impl FnOnce(Review) -> Vec<SqlValue>,
) {
    if let Some(insert) = out.insert_mut("documents", &document_row(enterprise_id, &document_id)) {
        debug_assert!(
            matches!(insert.params.len(), 16 | 21),
            "an INSERT_DOCUMENT's parameters"
        );
        insert.sql = INSERT_REVIEWED_DOCUMENT.sql.into();
        // Also drops the review columns of an earlier review in the batch: the last one wins,
        // as it would updating the row twice.
        insert.params.truncate(DOCUMENT_PARAMS_BEFORE_POSITION);
        insert.params.extend([
            review.position,
            SqlValue::Text(review.outcome.to_owned()),
            review.reviewed_at,
            review.reviewed_by,
            review.feedback,
            review.comment,
        ]);
        return;
    }
    let shaped = if review.outcome == "approved" {
        APPROVE_DOCUMENT
    } else {
        RETURN_DOCUMENT
    };
    let mut params = vec![SqlValue::Text(document_id)];
    params.extend(update_params(review));
    params.push(text(enterprise_id));
    out.push(shaped.statement(params));
}

/// The batch's key of a document's row: its whole primary key. Document ids are chosen per
/// enterprise, so two enterprises may each have a document with one id, and a key of the id
/// alone would fold one's review into the other's insert.
fn document_row(enterprise_id: EnterpriseId, document_id: &str) -> String {
    format!("{enterprise_id}/{document_id}")
}

/// Moves the enterprise's `last_position`; within a batch only the last move of an enterprise
/// runs (an overwrite), since nothing the projection writes reads it.
fn touch(out: &mut BatchStatements, enterprise_id: EnterpriseId, position: SqlValue) {
    let id = enterprise_id.to_string();
    out.push_overwrite(
        "enterprises.last_position",
        id.clone(),
        TOUCH_ENTERPRISE.statement(vec![SqlValue::Text(id), position]),
    );
}

/// Reads the enterprise id from the stream name `enterprise-<uuid>`.
fn enterprise_of(event: &RecordedEvent) -> Result<EnterpriseId, ProjectionError> {
    event
        .stream_id
        .as_str()
        .strip_prefix("enterprise-")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ProjectionError::NotAnEnterpriseStream {
            stream_id: event.stream_id.clone(),
        })
}

fn actor(event: &RecordedEvent) -> SqlValue {
    SqlValue::Text(event.metadata.actor.user_id.as_str().to_owned())
}
