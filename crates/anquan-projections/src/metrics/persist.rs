//! The metrics for "now" kept with the read models, so a restarted service answers at once
//! instead of computing every enterprise's contribution (issue 19, item 2).
//!
//! `metrics_contributions` holds each enterprise's contribution at the instant it was last
//! computed and its next change; `metrics_state` holds one row of what they reflect: the rule
//! set, the instant of the computation, the log position the read models had applied when the
//! watcher read them, and the snapshot one local month earlier. The read-model leader writes
//! them as a [`ProjectionBatch`] of the projection [`PROJECTION`], fenced by its term, so they
//! commit in one transaction with their position and a deposed leader's late write fails; a
//! rebuild of the read models writes them too, once it has folded ([`compute_and_save`]). The
//! sums are not stored: they are summed again from the contributions as they load, which costs
//! less than reading them and can never disagree with them.

use std::sync::Arc;

use anquan_domain::metrics::Contribution;
use anquan_domain::rules::RuleSet;
use anquan_domain::{EnterpriseId, Instant};
use anquan_event_store::{LeaseTerm, Position, ProjectionBatch, ReadModelError, ReadModelStore, SqlValue, Statement};

use super::{MetricsCache, Snapshot, compact};
use crate::error::QueryError;

/// The checkpoint the persisted metrics commit with (not a projection the runner folds).
pub const PROJECTION: &str = "metrics_now";
/// The tables, in creation order.
pub const TABLES: &[&str] = &["metrics_contributions", "metrics_state"];

const SQLITE_SCHEMA: &str = include_str!("../../../../projections/schema/sqlite/metrics.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../../projections/schema/postgres/metrics.sql");
/// Rows per `INSERT` when every contribution is written.
const ROWS_PER_INSERT: usize = 200;

const STATE: &str = "SELECT rule_set, rule_set_digest, at, commit_position, prepare_position, month_ago \
    FROM metrics_state WHERE id = 1";
const CONTRIBUTIONS: &str = "SELECT enterprise_id, contribution, next_change FROM metrics_contributions \
    WHERE enterprise_id > $1 ORDER BY enterprise_id LIMIT 5000";
const CONTRIBUTIONS_PAGE: usize = 5000;
const UPSERT: &str = "INSERT INTO metrics_contributions (enterprise_id, contribution, next_change) \
    VALUES ($1, $2, $3) ON CONFLICT (enterprise_id) DO UPDATE SET contribution = excluded.contribution, \
    next_change = excluded.next_change";
const DELETE_ONE: &str = "DELETE FROM metrics_contributions WHERE enterprise_id = $1";
const WRITE_STATE: &str = "INSERT INTO metrics_state \
    (id, rule_set, rule_set_digest, at, commit_position, prepare_position, month_ago) \
    VALUES (1, $1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET rule_set = excluded.rule_set, \
    rule_set_digest = excluded.rule_set_digest, at = excluded.at, \
    commit_position = excluded.commit_position, prepare_position = excluded.prepare_position, \
    month_ago = excluded.month_ago";

/// Creates the tables (idempotent).
pub async fn migrate(store: &dyn ReadModelStore) -> Result<(), ReadModelError> {
    super::migrate_ddl(store, SQLITE_SCHEMA, POSTGRES_SCHEMA).await
}

/// Deletes the persisted metrics and their checkpoint: what a rebuild of the read models does,
/// so no service loads figures computed from the read models before it.
pub async fn clear(store: &dyn ReadModelStore) -> Result<(), ReadModelError> {
    migrate(store).await?;
    super::clear_tables(store, PROJECTION, TABLES).await
}

/// What the persisted contributions reflect.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedState {
    pub rule_set: String,
    pub rule_set_digest: String,
    /// The instant they were computed at (the latest of their computations).
    pub at: Instant,
    /// The log position the read models had applied when they were read: the log after it may
    /// hold events whose enterprises must be recomputed.
    pub position: Position,
    pub month_ago: Snapshot,
}

/// One enterprise's persisted contribution (none: it contributes nothing, but has a next
/// change) and next change.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedContribution {
    pub enterprise_id: EnterpriseId,
    pub contribution: Option<Contribution>,
    pub next_change: Option<Instant>,
}

/// Reads the state row (none: nothing persisted, or cleared by a rebuild).
pub async fn load_state(store: &dyn ReadModelStore) -> Result<Option<PersistedState>, QueryError> {
    let table = "metrics_state";
    let Some(row) = store.query(STATE, &[]).await?.into_iter().next() else {
        return Ok(None);
    };
    let position = |column: usize| -> Result<u64, QueryError> {
        u64::try_from(row.int(column)?).map_err(|_| malformed(table, "negative position"))
    };
    let month_ago: Snapshot =
        serde_json::from_str(&row.text(5)?).map_err(|error| malformed(table, &error.to_string()))?;
    Ok(Some(PersistedState {
        rule_set: row.text(0)?,
        rule_set_digest: row.text(1)?,
        at: row.timestamp(2)?,
        position: Position {
            commit: position(3)?,
            prepare: position(4)?,
        },
        month_ago,
    }))
}

/// Reads every persisted contribution, a page at a time, handing each to `each`; the next
/// page is read while `each` takes the rows of this one.
pub async fn load_contributions(
    store: &dyn ReadModelStore,
    mut each: impl FnMut(PersistedContribution),
) -> Result<(), QueryError> {
    let table = "metrics_contributions";
    let mut rows = store.query(CONTRIBUTIONS, &[SqlValue::Text(String::new())]).await?;
    loop {
        let full = rows.len() == CONTRIBUTIONS_PAGE;
        let next = match rows.last() {
            Some(last) if full => Some(last.text(0)?),
            _ => None,
        };
        let next_page = async {
            match next {
                Some(cursor) => store.query(CONTRIBUTIONS, &[SqlValue::Text(cursor)]).await.map(Some),
                None => Ok(None),
            }
        };
        // Biased: the read is polled first, so it is under way while the rows are taken.
        let (next_page, taken) = tokio::join!(biased; next_page, async {
            for row in rows {
                let enterprise_id: EnterpriseId = row
                    .text(0)?
                    .parse()
                    .map_err(|error| malformed(table, &format!("enterprise id: {error}")))?;
                let contribution = row
                    .opt_text(1)?
                    .map(|json| stored_contribution(&json).map_err(|reason| malformed(table, &reason)))
                    .transpose()?;
                each(PersistedContribution {
                    enterprise_id,
                    contribution,
                    next_change: row.opt_timestamp(2)?,
                });
            }
            Ok::<(), QueryError>(())
        });
        taken?;
        match next_page? {
            Some(page) => rows = page,
            None => return Ok(()),
        }
    }
}

/// What a write replaces: every contribution, or those of some enterprises.
pub enum Write<'a> {
    /// Every contribution (after a full computation): the table is emptied first.
    Every(Box<dyn Iterator<Item = PersistedContributionRef<'a>> + Send + 'a>),
    /// These enterprises' contributions (`None`: the enterprise contributes nothing and has no
    /// next change).
    These(Vec<(EnterpriseId, Option<PersistedContributionRef<'a>>)>),
}

impl<'a> Write<'a> {
    /// Every contribution the cache holds, with each enterprise's next change.
    pub fn every(cache: &'a MetricsCache) -> Write<'a> {
        Write::Every(Box::new(cache.entries().map(PersistedContributionRef::owned)))
    }
}

/// Computes every enterprise's contribution at `at` (and the snapshot one local month before)
/// from the read models and writes them with `position`, the log position the read models have
/// applied, under the rule set `rules` whose files have `digest`, fenced by `lease`. What a
/// rebuild of the read models ends with, so the first service to start on them loads "now"
/// instead of computing it (one pass over every file: minutes in a province). Returns how many
/// enterprises contribute.
pub async fn compute_and_save(
    store: &dyn ReadModelStore,
    rules: Arc<RuleSet>,
    digest: &str,
    at: Instant,
    position: Position,
    lease: Option<LeaseTerm>,
) -> Result<usize, QueryError> {
    let month_at = super::month_before(&rules, at);
    let (cache, month_ago) = super::compute_streaming(store, rules.clone(), at, month_at, super::CHUNK).await?;
    let state = PersistedState {
        rule_set: rules.version.clone(),
        rule_set_digest: digest.to_owned(),
        at,
        position,
        month_ago,
    };
    save(store, &state, Write::every(&cache), lease).await?;
    Ok(cache.enterprises())
}

/// A contribution and next change to write (borrowed, or unpacked from the cache).
#[derive(Debug, Clone)]
pub struct PersistedContributionRef<'a> {
    pub enterprise_id: EnterpriseId,
    pub contribution: Option<std::borrow::Cow<'a, Contribution>>,
    pub next_change: Option<Instant>,
}

impl PersistedContributionRef<'_> {
    /// An enterprise's contribution and next change as the cache gives them
    /// ([`MetricsCache::entries`]).
    pub fn owned(
        (enterprise_id, contribution, next_change): (EnterpriseId, Option<Contribution>, Option<Instant>),
    ) -> Self {
        PersistedContributionRef {
            enterprise_id,
            contribution: contribution.map(std::borrow::Cow::Owned),
            next_change,
        }
    }
}

/// Writes contributions and the state row in one transaction with the checkpoint
/// [`PROJECTION`] at the state's position, fenced by `lease` (the read-model leader's term).
pub async fn save(
    store: &dyn ReadModelStore,
    state: &PersistedState,
    write: Write<'_>,
    lease: Option<LeaseTerm>,
) -> Result<(), ReadModelError> {
    let mut statements = Vec::new();
    match write {
        Write::Every(contributions) => {
            statements.push(Statement::new("DELETE FROM metrics_contributions", Vec::new()));
            let mut rows: Vec<PersistedContributionRef<'_>> = Vec::with_capacity(ROWS_PER_INSERT);
            let flush = |rows: &mut Vec<PersistedContributionRef<'_>>, statements: &mut Vec<Statement>| {
                if rows.is_empty() {
                    return Ok::<(), ReadModelError>(());
                }
                let mut sql = String::from(
                    "INSERT INTO metrics_contributions (enterprise_id, contribution, next_change) VALUES ",
                );
                let mut params = Vec::with_capacity(rows.len() * 3);
                for (index, row) in rows.drain(..).enumerate() {
                    if index > 0 {
                        sql.push_str(", ");
                    }
                    let base = index * 3;
                    sql.push_str(&format!("(${}, ${}, ${})", base + 1, base + 2, base + 3));
                    params.push(SqlValue::Text(row.enterprise_id.to_string()));
                    params.push(
                        row.contribution
                            .as_deref()
                            .map(stored)
                            .transpose()?
                            .map_or(SqlValue::Null, SqlValue::Json),
                    );
                    params.push(row.next_change.map_or(SqlValue::Null, SqlValue::Timestamp));
                }
                statements.push(Statement::new(sql, params));
                Ok(())
            };
            for row in contributions {
                rows.push(row);
                if rows.len() == ROWS_PER_INSERT {
                    flush(&mut rows, &mut statements)?;
                }
            }
            flush(&mut rows, &mut statements)?;
        }
        Write::These(changes) => {
            for (enterprise_id, row) in changes {
                statements.push(match row {
                    Some(row) => Statement::new(
                        UPSERT,
                        vec![
                            SqlValue::Text(enterprise_id.to_string()),
                            row.contribution
                                .as_deref()
                                .map(stored)
                                .transpose()?
                                .map_or(SqlValue::Null, SqlValue::Json),
                            row.next_change.map_or(SqlValue::Null, SqlValue::Timestamp),
                        ],
                    ),
                    None => Statement::new(DELETE_ONE, vec![SqlValue::Text(enterprise_id.to_string())]),
                });
            }
        }
    }
    let to_int = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    statements.push(Statement::new(
        WRITE_STATE,
        vec![
            SqlValue::Text(state.rule_set.clone()),
            SqlValue::Text(state.rule_set_digest.clone()),
            SqlValue::Timestamp(state.at),
            SqlValue::Int(to_int(state.position.commit)),
            SqlValue::Int(to_int(state.position.prepare)),
            SqlValue::Json(json(&state.month_ago)?),
        ],
    ));
    let batch = ProjectionBatch::new(PROJECTION, statements, state.position).fenced(lease);
    store.apply(Arc::new(batch)).await
}

/// A contribution as it is stored: its compact text as a JSON string (a third of its JSON
/// object; a service loading the 321,200 of a province decodes text instead of parsing objects).
fn stored(contribution: &Contribution) -> Result<String, ReadModelError> {
    json(&compact::encode(contribution))
}

/// The contribution [`stored`] wrote, or the JSON object written before it (still read).
fn stored_contribution(json: &str) -> Result<Contribution, String> {
    if json.starts_with('"') {
        let text: String = serde_json::from_str(json).map_err(|error| error.to_string())?;
        compact::decode(&text).ok_or_else(|| "not a compact contribution".to_owned())
    } else {
        serde_json::from_str(json).map_err(|error| error.to_string())
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, ReadModelError> {
    serde_json::to_string(value).map_err(|error| ReadModelError::backend("metrics could not be serialised", error))
}

fn malformed(table: &'static str, reason: &str) -> QueryError {
    QueryError::Malformed {
        table,
        reason: reason.to_owned(),
    }
}
