//! Past instants as a lookup (issue 19, item 3): each enterprise's contribution over time, kept
//! with the read models, so the metrics at a past instant are one row per enterprise and a sum
//! instead of an evaluation of every file; and, summed from these rows, each town's sums by day
//! and hour ([`super::days`]), which answer an instant with the towns' rows and the few
//! enterprises that changed since the last hour (one row per enterprise is the fallback).
//!
//! `metrics_history` holds, per enterprise, each instant its contribution changed (in
//! nanoseconds since the epoch: the walk steps by one nanosecond where a figure reads `at > x`,
//! finer than a stored timestamp's microsecond) with its value from then on (as
//! [`super::compact`] text; null: it contributes nothing), walked with `anquan_domain::metrics::contribution_history` from the history's
//! horizon; `metrics_history_heads` each enterprise's next change after its last walked instant
//! (null: none), so the rows answer every instant before it; `metrics_history_state` one row of
//! what they reflect: the rule set, the horizon, the instant every enterprise is walked through
//! and the log position of the read models they were read from. The read-model leader writes
//! them as a [`ProjectionBatch`] of the checkpoint [`PROJECTION`] fenced by its term.
//!
//! A contribution is knowledge-time true, so rows before now do not change as time passes; an
//! event may still change an enterprise's past (a fact backdated before its recording), so an
//! enterprise the log touches is walked again whole and its rows replaced.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, TimeZone};

use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::metrics::{AgencyFacts, ServiceFacts, contribution_history, enterprise_contribution};
use anquan_domain::rules::RuleSet;
use anquan_domain::{EnterpriseId, Instant};
use anquan_event_store::{LeaseTerm, Position, ProjectionBatch, ReadModelError, ReadModelStore, SqlValue, Statement};

use super::{Evaluation, FileChunks, Snapshot, Sums};
use crate::error::QueryError;

/// Counter of instants looked up in the history, labelled `path`: `sums_by_day` (each town's
/// sums by day and hour, [`super::days`]) or `row_per_enterprise` (no summed boundary close
/// enough before the instant).
pub const PAST_LOOKUPS_TOTAL: &str = "anquan_metrics_past_lookups_total";

/// The checkpoint the history commits with (not a projection the runner folds).
pub const PROJECTION: &str = "metrics_history";
/// The tables, in creation order.
pub const TABLES: &[&str] = &[
    "metrics_history",
    "metrics_history_heads",
    "metrics_history_state",
    "metrics_history_days",
    "metrics_history_hours",
    "metrics_history_towns",
    "metrics_history_summed",
];
/// How far back a history built now reaches: the start of the local year this many years
/// before, or each enterprise's registration when later (the dashboards' and reports' "last
/// three years" and audits of older years; a walk costs one evaluation per change instant, so
/// the horizon bounds the work of an enterprise registered long ago).
pub const YEARS: i32 = 10;

const SQLITE_SCHEMA: &str = include_str!("../../../../projections/schema/sqlite/metrics_history.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../../projections/schema/postgres/metrics_history.sql");
/// Rows per `INSERT`.
const ROWS_PER_INSERT: usize = 200;

const STATE: &str = "SELECT rule_set, rule_set_digest, horizon, walked_to, commit_position, prepare_position \
    FROM metrics_history_state WHERE id = 1";
const WRITE_STATE: &str = "INSERT INTO metrics_history_state \
    (id, rule_set, rule_set_digest, horizon, walked_to, commit_position, prepare_position) \
    VALUES (1, $1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET rule_set = excluded.rule_set, \
    rule_set_digest = excluded.rule_set_digest, horizon = excluded.horizon, walked_to = excluded.walked_to, \
    commit_position = excluded.commit_position, prepare_position = excluded.prepare_position";
const DELETE_ROWS: &str = "DELETE FROM metrics_history WHERE enterprise_id = $1";
const DELETE_ROWS_FROM: &str = "DELETE FROM metrics_history WHERE enterprise_id = $1 AND changed_at >= $2";
const UPSERT_HEAD: &str = "INSERT INTO metrics_history_heads (enterprise_id, next_change) VALUES ($1, $2) \
    ON CONFLICT (enterprise_id) DO UPDATE SET next_change = excluded.next_change";
const DUE: &str = "SELECT enterprise_id, next_change FROM metrics_history_heads \
    WHERE next_change <= $1 ORDER BY next_change, enterprise_id LIMIT $2";
const EARLIEST_HEAD: &str = "SELECT MIN(next_change) FROM metrics_history_heads";
/// Each enterprise's contribution at `$1`: the row of its last change at or before it, one
/// seek of the primary key per enterprise, driven by the heads (a join let SQLite scan every row
/// of the history and take the subquery for each: 1.4 s on the scale-1 demo against 30 ms).
pub(super) const AT: &str = "SELECT e.enterprise_id, (SELECT h.contribution FROM metrics_history h \
    WHERE h.enterprise_id = e.enterprise_id AND h.changed_at <= $1 ORDER BY h.changed_at DESC LIMIT 1) \
    FROM metrics_history_heads e";

/// Creates the tables (idempotent).
pub async fn migrate(store: &dyn ReadModelStore) -> Result<(), ReadModelError> {
    super::migrate_ddl(store, SQLITE_SCHEMA, POSTGRES_SCHEMA).await
}

/// Deletes the history and its checkpoint (a rebuild of the read models, a new rule set).
pub async fn clear(store: &dyn ReadModelStore) -> Result<(), ReadModelError> {
    migrate(store).await?;
    super::clear_tables(store, PROJECTION, TABLES).await
}

/// An instant as the history stores it: nanoseconds since the epoch (`None` outside
/// 1677–2262, which no history reaches: such an instant is answered without it).
pub fn nanos(at: Instant) -> Option<i64> {
    at.timestamp_nanos_opt()
}

fn instant(nanos: i64) -> Instant {
    chrono::DateTime::from_timestamp_nanos(nanos)
}

/// The horizon of a history built at `now`: local 1 January [`YEARS`] years before.
pub fn horizon(rules: &RuleSet, now: Instant) -> Instant {
    let zone = rules.time_zone;
    let local = now.with_timezone(&zone);
    zone.with_ymd_and_hms(local.year() - YEARS, 1, 1, 0, 0, 0)
        .single()
        .map_or(now, |start| start.to_utc())
}

/// What the history reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryState {
    pub rule_set: String,
    pub rule_set_digest: String,
    /// Its first instant: instants before it are not in the history.
    pub horizon: Instant,
    /// Every enterprise is walked through this instant: the rows answer any instant from the
    /// horizon to it.
    pub walked_to: Instant,
    /// The log position of the read models the files were read from.
    pub position: Position,
}

impl HistoryState {
    /// Whether the rows answer the instant `at`: it is after the horizon and every enterprise
    /// is walked through it (the state says so, or it is before the earliest next change,
    /// [`earliest_head`]).
    pub fn covers(&self, at: Instant, earliest_head: Option<Instant>) -> bool {
        nanos(at).is_some()
            && self.horizon <= at
            && (at <= self.walked_to || earliest_head.is_none_or(|head| at < head))
    }
}

/// Reads the state row (none: no history, or cleared).
pub async fn load_state(store: &dyn ReadModelStore) -> Result<Option<HistoryState>, QueryError> {
    let table = "metrics_history_state";
    let Some(row) = store.query(STATE, &[]).await?.into_iter().next() else {
        return Ok(None);
    };
    let position = |column: usize| -> Result<u64, QueryError> {
        u64::try_from(row.int(column)?).map_err(|_| malformed(table, "negative position"))
    };
    Ok(Some(HistoryState {
        rule_set: row.text(0)?,
        rule_set_digest: row.text(1)?,
        horizon: instant(row.int(2)?),
        walked_to: instant(row.int(3)?),
        position: Position {
            commit: position(4)?,
            prepare: position(5)?,
        },
    }))
}

/// One enterprise's walked contributions to write.
#[derive(Debug, Clone, PartialEq)]
pub struct EnterpriseHistory {
    pub enterprise_id: EnterpriseId,
    /// Whether its rows from `changes`' first instant on replace those it has (a walk from its
    /// head) or all of them (a walk of its whole history, or none left: it is gone).
    pub whole: bool,
    /// Each change with the contribution from then on as [`super::compact`] text (`None`: it
    /// contributes nothing), encoded as it is walked: a chunk of walks unpacked held hundreds of
    /// contributions per enterprise at about 1.3 KB each.
    pub changes: Vec<(Instant, Option<String>)>,
    pub next: Option<Instant>,
}

/// Walks one enterprise from `from` (its whole history from `horizon` when `None`) through
/// `until`.
pub fn walk(
    rules: &RuleSet,
    enterprise_id: EnterpriseId,
    facts: Option<(&EnterpriseFile, &ServiceFacts)>,
    from: Option<Instant>,
    horizon: Instant,
    until: Instant,
) -> EnterpriseHistory {
    let history = facts.map(|(file, services)| {
        contribution_history(&rules.metrics, rules, file, services, from.unwrap_or(horizon), until)
    });
    let (changes, next) = history.map_or((Vec::new(), None), |history| {
        let changes = history
            .changes
            .into_iter()
            .map(|(at, contribution)| (at, contribution.as_ref().map(super::compact::encode)))
            .collect();
        (changes, history.next)
    });
    EnterpriseHistory {
        enterprise_id,
        whole: from.is_none(),
        changes,
        next,
    }
}

/// Writes walked enterprises and the state in one transaction with the checkpoint
/// [`PROJECTION`] at the state's position, fenced by `lease`.
pub async fn save(
    store: &dyn ReadModelStore,
    state: &HistoryState,
    enterprises: Vec<EnterpriseHistory>,
    lease: Option<LeaseTerm>,
) -> Result<(), QueryError> {
    let mut statements = super::days::truncation(store, &enterprises).await?;
    statements.extend(rows(enterprises));
    let to_int = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let stored = |at: Instant| nanos(at).map_or(SqlValue::Null, SqlValue::Int);
    statements.push(Statement::new(
        WRITE_STATE,
        vec![
            SqlValue::Text(state.rule_set.clone()),
            SqlValue::Text(state.rule_set_digest.clone()),
            stored(state.horizon),
            stored(state.walked_to),
            SqlValue::Int(to_int(state.position.commit)),
            SqlValue::Int(to_int(state.position.prepare)),
        ],
    ));
    Ok(apply(store, statements, state.position, lease).await?)
}

/// Writes walked enterprises without the state row (a chunk of a streamed walk: the state is
/// written once every enterprise is); `every` empties the history first (a build's start).
pub async fn save_part(
    store: &dyn ReadModelStore,
    position: Position,
    every: bool,
    enterprises: Vec<EnterpriseHistory>,
    lease: Option<LeaseTerm>,
) -> Result<(), QueryError> {
    let mut statements: Vec<Statement> = if every {
        TABLES
            .iter()
            .map(|table| Statement::new(format!("DELETE FROM {table}"), Vec::new()))
            .collect()
    } else {
        super::days::truncation(store, &enterprises).await?
    };
    statements.extend(rows(enterprises));
    Ok(apply(store, statements, position, lease).await?)
}

/// Commits statements with the checkpoint [`PROJECTION`] at `position`, fenced by `lease`.
async fn apply(
    store: &dyn ReadModelStore,
    statements: Vec<Statement>,
    position: Position,
    lease: Option<LeaseTerm>,
) -> Result<(), ReadModelError> {
    let batch = ProjectionBatch::new(PROJECTION, statements, position).fenced(lease);
    store.apply(Arc::new(batch)).await
}

/// The statements that write walked enterprises, each after deleting the rows it replaces.
fn rows(enterprises: Vec<EnterpriseHistory>) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    let flush = |values: &mut Vec<SqlValue>, statements: &mut Vec<Statement>| {
        if values.is_empty() {
            return;
        }
        let mut sql = String::from("INSERT INTO metrics_history (enterprise_id, changed_at, contribution) VALUES ");
        for row in 0..values.len() / 3 {
            if row > 0 {
                sql.push_str(", ");
            }
            let base = row * 3;
            sql.push_str(&format!("(${}, ${}, ${})", base + 1, base + 2, base + 3));
        }
        sql.push_str(" ON CONFLICT (enterprise_id, changed_at) DO UPDATE SET contribution = excluded.contribution");
        statements.push(Statement::new(sql, std::mem::take(values)));
    };
    for enterprise in enterprises {
        let id = SqlValue::Text(enterprise.enterprise_id.to_string());
        match (
            enterprise.whole,
            enterprise.changes.first().and_then(|(at, _)| nanos(*at)),
        ) {
            (true, _) => statements.push(Statement::new(DELETE_ROWS, vec![id.clone()])),
            (false, Some(first)) => {
                statements.push(Statement::new(DELETE_ROWS_FROM, vec![id.clone(), SqlValue::Int(first)]));
            }
            (false, None) => {}
        }
        for (at, contribution) in enterprise.changes {
            let Some(at) = nanos(at) else { continue };
            values.push(id.clone());
            values.push(SqlValue::Int(at));
            values.push(contribution.map_or(SqlValue::Null, SqlValue::Text));
            if values.len() == ROWS_PER_INSERT * 3 {
                flush(&mut values, &mut statements);
            }
        }
        // Flushed before the head so a later enterprise's delete never follows its own insert.
        flush(&mut values, &mut statements);
        statements.push(Statement::new(
            UPSERT_HEAD,
            vec![
                id,
                enterprise.next.and_then(nanos).map_or(SqlValue::Null, SqlValue::Int),
            ],
        ));
    }
    statements
}

/// The earliest next change of any enterprise: the rows answer every instant before it.
pub async fn earliest_head(store: &dyn ReadModelStore) -> Result<Option<Instant>, QueryError> {
    let rows = store.query(EARLIEST_HEAD, &[]).await?;
    Ok(match rows.first() {
        Some(row) => row.opt_int(0)?.map(instant),
        None => None,
    })
}

/// Enterprises whose next change is at or before `now`, earliest first, at most `limit`.
pub async fn due(
    store: &dyn ReadModelStore,
    now: Instant,
    limit: usize,
) -> Result<Vec<(EnterpriseId, Instant)>, QueryError> {
    let table = "metrics_history_heads";
    let Some(now) = nanos(now) else {
        return Ok(Vec::new());
    };
    let limit = SqlValue::Int(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = store.query(DUE, &[SqlValue::Int(now), limit]).await?;
    rows.iter()
        .map(|row| {
            let enterprise_id = row
                .text(0)?
                .parse()
                .map_err(|error| malformed(table, &format!("enterprise id: {error}")))?;
            Ok((enterprise_id, instant(row.int(1)?)))
        })
        .collect()
}

/// Enterprises a lookup does not read from the history, with their facts as the read models
/// hold them now (`None`: gone): the log touched them after the history's position, so their
/// rows may be stale, and each is evaluated at the instants instead.
pub type Fresh = HashMap<EnterpriseId, Option<(EnterpriseFile, ServiceFacts)>>;

/// The metrics at each of `instants` (in that order) from the history: each enterprise's
/// contribution there summed (those of `fresh` evaluated from their facts instead of read),
/// with the agency figures of `agencies`. The instants are looked up concurrently, each summed
/// on a blocking thread. The caller checks [`HistoryState::covers`].
pub async fn snapshots_at(
    store: &dyn ReadModelStore,
    rules: &Arc<RuleSet>,
    agencies: &[AgencyFacts],
    instants: &[Instant],
    fresh: &Arc<Fresh>,
) -> Result<Vec<Snapshot>, QueryError> {
    // Their ids as the rows give them, once for every instant.
    let skipped: Arc<HashSet<String>> = Arc::new(fresh.keys().map(ToString::to_string).collect());
    let lookups = instants.iter().map(|at| sums_at(store, rules, fresh, &skipped, *at));
    let sums = futures::future::try_join_all(lookups).await?;
    Ok(sums
        .iter()
        .zip(instants)
        .map(|(sums, at)| sums.snapshot(rules, agencies, *at))
        .collect())
}

/// Every enterprise's contribution at `at` summed; see [`snapshots_at`].
async fn sums_at(
    store: &dyn ReadModelStore,
    rules: &Arc<RuleSet>,
    fresh: &Arc<Fresh>,
    skipped: &Arc<HashSet<String>>,
    at: Instant,
) -> Result<Sums, QueryError> {
    let table = "metrics_history";
    let Some(stored) = nanos(at) else {
        return Err(malformed(table, "an instant outside the history"));
    };
    if let Some(sums) = super::days::sums_at(store, rules, fresh, stored).await? {
        metrics::counter!(PAST_LOOKUPS_TOTAL, "path" => "sums_by_day").increment(1);
        return Ok(sums);
    }
    metrics::counter!(PAST_LOOKUPS_TOTAL, "path" => "row_per_enterprise").increment(1);
    let rows = store.query(AT, &[SqlValue::Int(stored)]).await?;
    let (rules, fresh, skipped) = (rules.clone(), fresh.clone(), skipped.clone());
    off_the_runtime(table, move || {
        let mut sums = Sums::new(&rules);
        for row in rows {
            if !skipped.is_empty() && skipped.contains(&row.text(0)?) {
                continue;
            }
            if let Some(text) = row.opt_text(1)? {
                let contribution = super::compact::decode(&text)
                    .ok_or_else(|| malformed(table, "a contribution that does not decode"))?;
                sums.apply(&rules, &contribution, true);
            }
        }
        for (file, services) in fresh.values().flatten() {
            if let Some(contribution) = enterprise_contribution(&rules.metrics, &rules, file, services, at) {
                sums.apply(&rules, &contribution, true);
            }
        }
        Ok(sums)
    })
    .await
}

/// Walks every enterprise whose file the read models hold (`from`: where to start each one,
/// `None` for its whole history from `horizon`, skipping the others; absent, every one whole) through `until`, a
/// chunk of files at a time, and hands each chunk's walks to `each` (which writes them).
/// Returns how many enterprises were walked.
pub async fn walk_streaming<F, Fut>(
    store: &dyn ReadModelStore,
    rules: Arc<RuleSet>,
    from: Option<Arc<HashMap<EnterpriseId, Option<Instant>>>>,
    horizon: Instant,
    until: Instant,
    chunk: usize,
    mut each: F,
) -> Result<usize, QueryError>
where
    F: FnMut(Vec<EnterpriseHistory>) -> Fut,
    Fut: std::future::Future<Output = Result<(), QueryError>>,
{
    let mut files = FileChunks::new(chunk);
    let evaluate: Evaluation<EnterpriseHistory> = Arc::new(move |rules, enterprise_id, file, services| {
        let start = match &from {
            None => None,
            Some(from) => *from.get(&enterprise_id)?,
        };
        Some(walk(
            rules,
            enterprise_id,
            Some((file, services)),
            start,
            horizon,
            until,
        ))
    });
    let mut walked = 0;
    while let Some(walks) = files.next(store, &rules, evaluate.clone()).await? {
        walked += walks.len();
        each(walks).await?;
    }
    Ok(walked)
}

/// Runs `decode` on a blocking thread: decoding and summing the tallies of every town, or the
/// contributions of every enterprise, takes milliseconds at city scale and far more in a
/// province, which must not stall the runtime's workers (`table` names what it reads).
pub(super) async fn off_the_runtime<T: Send + 'static>(
    table: &'static str,
    decode: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, QueryError> {
    tokio::task::spawn_blocking(decode)
        .await
        .map_err(|error| malformed(table, &format!("the decoding stopped: {error}")))?
}

pub(super) fn malformed(table: &'static str, reason: &str) -> QueryError {
    QueryError::Malformed {
        table,
        reason: reason.to_owned(),
    }
}
