//! The rule-dependent views of one rule-set version, materialised beside the live ones:
//! every enterprise's responsibility status, indicator states and colour at one instant, in
//! `rule_set_snapshots`, built in batches with progress, cancellable and resumable from the
//! last enterprise written; and the diff of two versions' snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as Clock};

use chrono::{DateTime, Utc};

use anquan_domain::compliance::evaluate;
use anquan_domain::risk::assess_with;
use anquan_domain::rules::RuleSet;
use anquan_event_store::{Dialect, Position, ProjectionBatch, ReadModelError, ReadModelStore, SqlValue, Statement};

use crate::compliance::files_after;
use crate::error::QueryError;

const SQLITE_SCHEMA: &str = include_str!("../../../../projections/schema/sqlite/rule_sets.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../../projections/schema/postgres/rule_sets.sql");

/// The tables of the snapshots, for dumps and digests.
pub const SNAPSHOT_TABLES: &[&str] = &["rule_set_snapshots", "rule_set_builds"];
/// Enterprises evaluated and written per batch (one transaction).
pub const SNAPSHOT_BATCH: usize = 200;

const UPSERT_SNAPSHOT: &str = "INSERT INTO rule_set_snapshots (version, enterprise_id, town, at, \
    responsibility_implemented, implemented, not_implemented, not_applicable, indicators, colour, rule) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (version, enterprise_id) DO UPDATE SET \
    town = excluded.town, at = excluded.at, responsibility_implemented = excluded.responsibility_implemented, \
    implemented = excluded.implemented, not_implemented = excluded.not_implemented, \
    not_applicable = excluded.not_applicable, indicators = excluded.indicators, colour = excluded.colour, \
    rule = excluded.rule";
const UPSERT_BUILD: &str = "INSERT INTO rule_set_builds (version, digest, at, last_enterprise, enterprises, complete) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version) DO UPDATE SET digest = excluded.digest, at = excluded.at, \
    last_enterprise = excluded.last_enterprise, enterprises = excluded.enterprises, complete = excluded.complete";
const BUILD_BY_VERSION: &str =
    "SELECT digest, at, last_enterprise, enterprises, complete FROM rule_set_builds WHERE version = $1";
const DELETE_SNAPSHOT: &str = "DELETE FROM rule_set_snapshots WHERE version = $1";
const COUNT_ENTERPRISES: &str = "SELECT COUNT(*) FROM enterprises";
const SNAPSHOT_ROWS: &str = "SELECT enterprise_id, town, responsibility_implemented, implemented, not_implemented, \
    not_applicable, indicators, colour, rule FROM rule_set_snapshots WHERE version = $1 ORDER BY enterprise_id";

/// Why a snapshot could not be built or compared.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] ReadModelError),
    #[error("rule set {0} has no complete snapshot: run `anquan projections rebuild --rules {0}`")]
    NotBuilt(String),
    #[error("the snapshots of {a} ({a_at}) and {b} ({b_at}) are at different instants; rebuild one at the other's")]
    DifferentInstants {
        a: String,
        a_at: DateTime<Utc>,
        b: String,
        b_at: DateTime<Utc>,
    },
    #[error("indicator states of {0} cannot be encoded")]
    Encode(String),
}

/// How a build is going; handed to the progress callback after every batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildProgress {
    pub version: String,
    pub done: u64,
    pub total: u64,
    pub per_second: f64,
    pub eta: Option<Duration>,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotOutcome {
    /// Every enterprise is in the snapshot.
    Complete { enterprises: u64, elapsed: Duration },
    /// Cancelled between batches; run the same build again to resume after `last_enterprise`.
    Cancelled { last_enterprise: String, enterprises: u64 },
}

struct Build {
    digest: String,
    at: DateTime<Utc>,
    last_enterprise: String,
    enterprises: u64,
    complete: bool,
}

/// Creates the snapshot tables.
pub async fn migrate(store: &dyn ReadModelStore) -> Result<(), ReadModelError> {
    store
        .migrate(match store.dialect() {
            Dialect::Sqlite => SQLITE_SCHEMA,
            Dialect::Postgres => POSTGRES_SCHEMA,
        })
        .await
}

async fn build_of(store: &dyn ReadModelStore, version: &str) -> Result<Option<Build>, SnapshotError> {
    let rows = store
        .query(BUILD_BY_VERSION, &[SqlValue::Text(version.to_owned())])
        .await?;
    let Some(row) = rows.first() else { return Ok(None) };
    Ok(Some(Build {
        digest: row.text(0)?,
        at: row.timestamp(1)?,
        last_enterprise: row.text(2)?,
        enterprises: u64::try_from(row.int(3)?).unwrap_or(0),
        complete: row.bool(4)?,
    }))
}

/// Returns the instant a version's complete snapshot is evaluated at, if it has one.
pub async fn snapshot_instant(
    store: &dyn ReadModelStore,
    version: &str,
) -> Result<Option<DateTime<Utc>>, SnapshotError> {
    migrate(store).await?;
    Ok(build_of(store, version)
        .await?
        .filter(|build| build.complete)
        .map(|build| build.at))
}

/// Evaluates every enterprise of the fact read models with `rules` at `at` and writes the
/// result as version `rules.version`'s snapshot, in batches of [`SNAPSHOT_BATCH`]. A build of
/// the same version, digest and instant that was cancelled resumes after its last enterprise;
/// a complete one is left as it is; any other is replaced. `cancel` is checked between
/// batches; `progress` is called after each.
pub async fn materialise(
    store: &dyn ReadModelStore,
    rules: &RuleSet,
    digest: &str,
    at: DateTime<Utc>,
    cancel: Arc<AtomicBool>,
    mut progress: impl FnMut(&BuildProgress),
) -> Result<SnapshotOutcome, SnapshotError> {
    let started = Clock::now();
    migrate(store).await?;
    let version = SqlValue::Text(rules.version.clone());
    let checkpoint = store
        .checkpoint("compliance")
        .await?
        // Before every event on every backend: no position is below (0, 0).
        .unwrap_or(Position { commit: 0, prepare: 0 });
    let projection = format!("rule_set_snapshot:{}", rules.version);
    let (mut cursor, mut written) = match build_of(store, &rules.version).await? {
        Some(build) if build.digest == digest && build.at == at && build.complete => {
            return Ok(SnapshotOutcome::Complete {
                enterprises: build.enterprises,
                elapsed: started.elapsed(),
            });
        }
        Some(build) if build.digest == digest && build.at == at => (build.last_enterprise, build.enterprises),
        _ => {
            let statements = vec![
                Statement::new(DELETE_SNAPSHOT, vec![version.clone()]),
                build_statement(&rules.version, digest, at, "", 0, false),
            ];
            store
                .apply(Arc::new(ProjectionBatch::new(
                    projection.clone(),
                    statements,
                    checkpoint,
                )))
                .await?;
            (String::new(), 0)
        }
    };
    let total = store
        .query(COUNT_ENTERPRISES, &[])
        .await?
        .first()
        .map(|row| row.int(0))
        .transpose()?
        .map_or(0, |count| u64::try_from(count).unwrap_or(0));
    let resumed_from = written;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Ok(SnapshotOutcome::Cancelled {
                last_enterprise: cursor,
                enterprises: written,
            });
        }
        let files = files_after(store, "", &cursor, SNAPSHOT_BATCH).await?;
        let Some(last) = files.keys().next_back() else { break };
        let last = last.to_string();
        let mut statements = Vec::with_capacity(files.len() + 1);
        for (enterprise_id, file) in &files {
            let Some(registration) = &file.registration else {
                continue;
            };
            // A closed enterprise has no colour and is in no town figure: not in the snapshot.
            if file.closure_at(at).is_some() {
                continue;
            }
            let Some(report) = evaluate(file, rules, at) else {
                continue;
            };
            let risk = assess_with(file, rules, at, &report);
            let indicators: BTreeMap<String, &'static str> = report
                .indicators
                .iter()
                .map(|status| (status.code.to_string(), state_name(status.state)))
                .collect();
            let indicators =
                serde_json::to_string(&indicators).map_err(|_| SnapshotError::Encode(enterprise_id.to_string()))?;
            statements.push(Statement::new(
                UPSERT_SNAPSHOT,
                vec![
                    version.clone(),
                    SqlValue::Text(enterprise_id.to_string()),
                    SqlValue::Text(registration.town.to_string()),
                    SqlValue::Timestamp(at),
                    SqlValue::Bool(report.responsibility_implemented),
                    SqlValue::Int(i64::from(report.implemented)),
                    SqlValue::Int(i64::from(report.not_implemented)),
                    SqlValue::Int(i64::from(report.not_applicable)),
                    SqlValue::Text(indicators),
                    SqlValue::Text(risk.colour.name().to_owned()),
                    risk.rule.map_or(SqlValue::Null, SqlValue::Text),
                ],
            ));
        }
        written += files.len() as u64;
        statements.push(build_statement(&rules.version, digest, at, &last, written, false));
        store
            .apply(Arc::new(ProjectionBatch::new(
                projection.clone(),
                statements,
                checkpoint,
            )))
            .await?;
        cursor = last;
        let seconds = started.elapsed().as_secs_f64().max(f64::EPSILON);
        let per_second = (written - resumed_from) as f64 / seconds;
        let remaining = total.saturating_sub(written);
        progress(&BuildProgress {
            version: rules.version.clone(),
            done: written,
            total,
            per_second,
            eta: (per_second > 0.0).then(|| Duration::from_secs_f64(remaining as f64 / per_second)),
        });
        if files.len() < SNAPSHOT_BATCH {
            break;
        }
    }
    store
        .apply(Arc::new(ProjectionBatch::new(
            projection,
            vec![build_statement(&rules.version, digest, at, &cursor, written, true)],
            checkpoint,
        )))
        .await?;
    Ok(SnapshotOutcome::Complete {
        enterprises: written,
        elapsed: started.elapsed(),
    })
}

fn build_statement(
    version: &str,
    digest: &str,
    at: DateTime<Utc>,
    last: &str,
    written: u64,
    complete: bool,
) -> Statement {
    Statement::new(
        UPSERT_BUILD,
        vec![
            SqlValue::Text(version.to_owned()),
            SqlValue::Text(digest.to_owned()),
            SqlValue::Timestamp(at),
            SqlValue::Text(last.to_owned()),
            SqlValue::Int(i64::try_from(written).unwrap_or(i64::MAX)),
            SqlValue::Bool(complete),
        ],
    )
}

fn state_name(state: anquan_domain::compliance::IndicatorState) -> &'static str {
    use anquan_domain::compliance::IndicatorState;
    match state {
        IndicatorState::Implemented => "implemented",
        IndicatorState::NotImplemented => "not_implemented",
        IndicatorState::NotYetDue => "not_yet_due",
        IndicatorState::NotApplicable => "not_applicable",
    }
}

/// One enterprise's row of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotRow {
    pub enterprise_id: String,
    pub town: String,
    pub responsibility_implemented: bool,
    pub implemented: i64,
    pub not_implemented: i64,
    pub not_applicable: i64,
    pub indicators: BTreeMap<String, String>,
    pub colour: String,
    pub rule: Option<String>,
}

/// Reads a version's snapshot, ordered by enterprise id.
pub async fn snapshot_rows(store: &dyn ReadModelStore, version: &str) -> Result<Vec<SnapshotRow>, SnapshotError> {
    let rows = store
        .query(SNAPSHOT_ROWS, &[SqlValue::Text(version.to_owned())])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SnapshotRow {
                enterprise_id: row.text(0)?,
                town: row.text(1)?,
                responsibility_implemented: row.bool(2)?,
                implemented: row.int(3)?,
                not_implemented: row.int(4)?,
                not_applicable: row.int(5)?,
                indicators: serde_json::from_str(&row.text(6)?)
                    .map_err(|_| SnapshotError::Encode(row.text(0).unwrap_or_default()))?,
                colour: row.text(7)?,
                rule: row.opt_text(8)?,
            })
        })
        .collect()
}

/// An enterprise whose status, indicators or colour differ between two versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EnterpriseChange {
    pub enterprise_id: String,
    pub town: String,
    /// Responsibility implemented under (a, b), when it changes.
    pub responsibility: Option<(bool, bool)>,
    /// Indicators whose state changes: code → (state under a, state under b).
    pub indicators: BTreeMap<String, (String, String)>,
    /// Colour under (a, b), when it changes.
    pub colour: Option<(String, String)>,
}

/// A town metric that moves between two versions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TownChange {
    pub town: String,
    pub metric: String,
    pub a: f64,
    pub b: f64,
}

/// What changes from version `a` to version `b`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotDiff {
    pub a: String,
    pub b: String,
    pub at: DateTime<Utc>,
    pub enterprises_compared: usize,
    pub enterprises: Vec<EnterpriseChange>,
    pub towns: Vec<TownChange>,
}

/// Town-level metrics of a snapshot, by town then metric name. This is the hook for the town
/// statistics (the 78 metrics): add a metric here and the diff reports it when it moves.
pub fn town_metrics(rows: &[SnapshotRow]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut counts: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for row in rows {
        let town = counts.entry(row.town.clone()).or_default();
        *town.entry("enterprises".into()).or_default() += 1.0;
        if row.responsibility_implemented {
            *town.entry("responsibility_implemented".into()).or_default() += 1.0;
        }
        *town.entry(format!("colour_{}", row.colour)).or_default() += 1.0;
    }
    for metrics in counts.values_mut() {
        let enterprises = metrics.get("enterprises").copied().unwrap_or(0.0);
        let implemented = metrics.get("responsibility_implemented").copied().unwrap_or(0.0);
        metrics.entry("responsibility_implemented".into()).or_insert(0.0);
        for colour in ["red", "orange", "yellow", "blue"] {
            metrics.entry(format!("colour_{colour}")).or_insert(0.0);
        }
        if enterprises > 0.0 {
            metrics.insert("responsibility_rate".into(), implemented / enterprises);
        }
    }
    counts
}

/// Compares the complete snapshots of two versions (built at the same instant).
pub async fn diff(store: &dyn ReadModelStore, a: &str, b: &str) -> Result<SnapshotDiff, SnapshotError> {
    migrate(store).await?;
    let build_a = build_of(store, a)
        .await?
        .filter(|build| build.complete)
        .ok_or_else(|| SnapshotError::NotBuilt(a.to_owned()))?;
    let build_b = build_of(store, b)
        .await?
        .filter(|build| build.complete)
        .ok_or_else(|| SnapshotError::NotBuilt(b.to_owned()))?;
    if build_a.at != build_b.at {
        return Err(SnapshotError::DifferentInstants {
            a: a.to_owned(),
            a_at: build_a.at,
            b: b.to_owned(),
            b_at: build_b.at,
        });
    }
    let rows_a = snapshot_rows(store, a).await?;
    let rows_b = snapshot_rows(store, b).await?;
    let by_id: BTreeMap<&str, &SnapshotRow> = rows_b.iter().map(|row| (row.enterprise_id.as_str(), row)).collect();
    let mut enterprises = Vec::new();
    for row_a in &rows_a {
        let Some(row_b) = by_id.get(row_a.enterprise_id.as_str()) else {
            continue;
        };
        let mut indicators = BTreeMap::new();
        for (code, state_a) in &row_a.indicators {
            let state_b = row_b.indicators.get(code).cloned().unwrap_or_else(|| "absent".into());
            if &state_b != state_a {
                indicators.insert(code.clone(), (state_a.clone(), state_b));
            }
        }
        for (code, state_b) in &row_b.indicators {
            if !row_a.indicators.contains_key(code) {
                indicators.insert(code.clone(), ("absent".into(), state_b.clone()));
            }
        }
        let responsibility = (row_a.responsibility_implemented != row_b.responsibility_implemented)
            .then_some((row_a.responsibility_implemented, row_b.responsibility_implemented));
        let colour = (row_a.colour != row_b.colour).then(|| (row_a.colour.clone(), row_b.colour.clone()));
        if responsibility.is_some() || colour.is_some() || !indicators.is_empty() {
            enterprises.push(EnterpriseChange {
                enterprise_id: row_a.enterprise_id.clone(),
                town: row_a.town.clone(),
                responsibility,
                indicators,
                colour,
            });
        }
    }
    let metrics_a = town_metrics(&rows_a);
    let metrics_b = town_metrics(&rows_b);
    let mut towns = Vec::new();
    for (town, metrics) in &metrics_a {
        for (metric, value_a) in metrics {
            let value_b = metrics_b.get(town).and_then(|m| m.get(metric)).copied().unwrap_or(0.0);
            if (value_b - value_a).abs() > f64::EPSILON {
                towns.push(TownChange {
                    town: town.clone(),
                    metric: metric.clone(),
                    a: *value_a,
                    b: value_b,
                });
            }
        }
    }
    Ok(SnapshotDiff {
        a: a.to_owned(),
        b: b.to_owned(),
        at: build_a.at,
        enterprises_compared: rows_a.len(),
        enterprises,
        towns,
    })
}

/// A deterministic text dump of a version's snapshot (rows ordered by enterprise id), for
/// determinism digests.
pub async fn dump_snapshot(store: &dyn ReadModelStore, version: &str) -> Result<String, SnapshotError> {
    let rows = snapshot_rows(store, version).await?;
    let mut dump = String::new();
    for row in rows {
        dump.push_str(&serde_json::to_string(&row).map_err(|_| SnapshotError::Encode(row.enterprise_id.clone()))?);
        dump.push('\n');
    }
    Ok(dump)
}
