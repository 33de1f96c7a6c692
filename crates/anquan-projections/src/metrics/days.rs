//! Past instants at province scale (issue 19, item 3): per-town sums by day and hour beside the
//! history of contributions ([`super::history`]), so the metrics at a past instant read each
//! town's sums at the midnight before it, what each hour since added, and the enterprises that
//! changed since the last hour, not one row per enterprise.
//!
//! The instants sums are kept at (boundaries) are every hour from the history's horizon (a
//! local midnight; the time zone is a fixed offset, so every hour is an hour) and the
//! nanosecond after each: a calendar change falls on midnight or the nanosecond after it (a
//! figure that reads `at > deadline`), so no query's span holds every enterprise's change.
//! `metrics_history_days` holds each town's tallies at the horizon and at the nanosecond after
//! each midnight, a row on the days they differ from the day before; `metrics_history_hours`
//! what the enterprises that changed between two boundaries added to each town (a row where it
//! is not zero); `metrics_history_towns` the towns that have any; `metrics_history_summed` the
//! last boundary every one is summed through.
//!
//! The sums at an instant `t`: the towns' day sums at the day boundary `d` before it, plus each
//! hour's additions in `(d, b]` with `b` the last boundary at or before `t`, then minus each
//! contribution at `b` and plus each at `t` of the enterprises with a change in `(b, t]` (those
//! of half an hour on average, against every one for a lookup per enterprise). The next
//! boundary is summed the same way from the one before.
//!
//! They are derived from the history's rows, so every write of rows keeps them true: a write
//! whose rows change an enterprise's contribution at an instant at or before the last summed
//! boundary deletes the sums from that instant on and counts a generation (a query that read
//! across it tries again); the keeper sums them again after, a bounded stretch at a time.
//! Changes after the last summed boundary, which is all that time passing and the log bring
//! (a contribution is knowledge-time true), delete nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anquan_domain::Town;
use anquan_domain::rules::RuleSet;
use anquan_event_store::{LeaseTerm, ReadModelStore, Row, SqlValue, Statement};

use super::history::{self, EnterpriseHistory, Fresh, HistoryState, malformed, off_the_runtime};
use super::{ScopeTallies, Sums};
use crate::error::QueryError;

/// An hour in nanoseconds.
const HOUR: i64 = 3_600 * 1_000_000_000;
/// A day in nanoseconds.
const DAY: i64 = 24 * HOUR;
/// A query whose instant is more than this long after the last summed boundary reads one row
/// per enterprise instead (while the sums are summed again: more enterprises change in a
/// longer span, and each costs two lookups).
const SPAN_MAX: i64 = 3 * HOUR;
/// Rows per `INSERT`.
const ROWS_PER_INSERT: usize = 200;

const SUMMED: &str = "SELECT horizon, summed_to, generation FROM metrics_history_summed WHERE id = 1";
const WRITE_SUMMED: &str = "INSERT INTO metrics_history_summed (id, horizon, summed_to, generation) \
    VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET horizon = excluded.horizon, \
    summed_to = excluded.summed_to, generation = excluded.generation";
const TRUNCATE_SUMMED: &str = "UPDATE metrics_history_summed SET summed_to = $1, generation = generation + 1 \
    WHERE id = 1 AND summed_to >= $2";
const DELETE_DAYS_FROM: &str = "DELETE FROM metrics_history_days WHERE day >= $1";
const DELETE_HOURS_FROM: &str = "DELETE FROM metrics_history_hours WHERE boundary >= $1";
/// Each town's sums at the day boundary `$1`: its last row at or before it.
const SUMS_AT: &str = "SELECT t.town, (SELECT d.sums FROM metrics_history_days d \
    WHERE d.town = t.town AND d.day <= $1 ORDER BY d.day DESC LIMIT 1) FROM metrics_history_towns t";
/// What the boundaries in `($1, $2]` added to each town.
const ADDED: &str = "SELECT town, delta FROM metrics_history_hours WHERE boundary > $1 AND boundary <= $2";
/// The enterprises with a change in `($1, $2]`, each with its contribution at `$1` and at `$2`.
const CHANGED: &str = "SELECT c.enterprise_id, \
    (SELECT h.contribution FROM metrics_history h WHERE h.enterprise_id = c.enterprise_id \
        AND h.changed_at <= $1 ORDER BY h.changed_at DESC LIMIT 1), \
    (SELECT h.contribution FROM metrics_history h WHERE h.enterprise_id = c.enterprise_id \
        AND h.changed_at <= $2 ORDER BY h.changed_at DESC LIMIT 1) \
    FROM (SELECT DISTINCT enterprise_id FROM metrics_history WHERE changed_at > $1 AND changed_at <= $2) c";
/// One enterprise's contribution at `$2`.
const ONE_AT: &str = "SELECT contribution FROM metrics_history WHERE enterprise_id = $1 AND changed_at <= $2 \
    ORDER BY changed_at DESC LIMIT 1";
/// One enterprise's rows through `$2`.
const ROWS_THROUGH: &str = "SELECT changed_at, contribution FROM metrics_history \
    WHERE enterprise_id = $1 AND changed_at <= $2 ORDER BY changed_at";

/// Which boundaries are summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summed {
    /// The first boundary (the history's horizon, a local midnight).
    horizon: i64,
    /// Every boundary from the horizon through this one is summed (none when before it).
    summed_to: i64,
    /// Counts the deletions of sums.
    generation: i64,
}

impl Summed {
    /// The last boundary at or before `at`: the hour, or the nanosecond after it (`None`
    /// before the horizon).
    fn at_or_before(&self, at: i64) -> Option<i64> {
        let since = at.checked_sub(self.horizon).filter(|since| *since >= 0)?;
        let hour = self.horizon.checked_add(since.div_euclid(HOUR).checked_mul(HOUR)?)?;
        Some(if at > hour { hour + 1 } else { hour })
    }

    /// The boundary after `boundary`.
    fn next(&self, boundary: i64) -> Option<i64> {
        let since = boundary.checked_sub(self.horizon)?;
        if since.rem_euclid(HOUR) == 0 {
            boundary.checked_add(1)
        } else {
            self.horizon
                .checked_add(since.div_euclid(HOUR).checked_add(1)?.checked_mul(HOUR)?)
        }
    }

    /// Whether the towns' whole sums are kept at `boundary`: the horizon and the nanosecond
    /// after each midnight.
    fn is_day(&self, boundary: i64) -> bool {
        boundary == self.horizon || boundary.saturating_sub(self.horizon).rem_euclid(DAY) == 1
    }

    /// The last boundary at or before `boundary` where whole sums are kept.
    fn day_of(&self, boundary: i64) -> i64 {
        match boundary
            .checked_sub(self.horizon)
            .and_then(|since| since.checked_sub(1))
        {
            Some(since) if since >= 0 => self.horizon + since.div_euclid(DAY) * DAY + 1,
            _ => self.horizon,
        }
    }

    /// Where a query at `at` starts: the last summed boundary at or before it, when at most
    /// [`SPAN_MAX`] before it (`None`: none is).
    fn start_for(&self, at: i64) -> Option<i64> {
        if self.summed_to < self.horizon {
            return None;
        }
        let start = self.at_or_before(at)?.min(self.summed_to);
        (at.checked_sub(start)? <= SPAN_MAX).then_some(start)
    }
}

async fn load_summed(store: &dyn ReadModelStore) -> Result<Option<Summed>, QueryError> {
    let Some(row) = store.query(SUMMED, &[]).await?.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(Summed {
        horizon: row.int(0)?,
        summed_to: row.int(1)?,
        generation: row.int(2)?,
    }))
}

/// The rows behind the towns' sums at a summed boundary: each town's sums at its day boundary
/// ([`SUMS_AT`]) and what each boundary since added ([`ADDED`]), read together and decoded
/// where the caller sums (off the runtime for a query).
struct SummedRows {
    days: Vec<anquan_event_store::Row>,
    added: Vec<anquan_event_store::Row>,
}

impl SummedRows {
    async fn read(store: &dyn ReadModelStore, summed: &Summed, boundary: i64) -> Result<SummedRows, QueryError> {
        let day = summed.day_of(boundary);
        let (at_day, span) = ([SqlValue::Int(day)], [SqlValue::Int(day), SqlValue::Int(boundary)]);
        let (days, added) = futures::try_join!(store.query(SUMS_AT, &at_day), store.query(ADDED, &span))?;
        Ok(SummedRows { days, added })
    }

    /// The towns' sums at the day boundary.
    fn day_sums(&self, rules: &RuleSet) -> Result<Sums, QueryError> {
        let mut sums = Sums::new(rules);
        for row in &self.days {
            let Some(text) = row.opt_text(1)? else { continue };
            let tallies = decode_tallies(rules, &text, "metrics_history_days")?;
            sums.add_to_town(rules, parse_town(&row.text(0)?)?, &tallies);
        }
        Ok(sums)
    }

    /// Adds what each boundary after the day's added.
    fn add_hours(&self, rules: &RuleSet, sums: &mut Sums) -> Result<(), QueryError> {
        for row in &self.added {
            let delta = decode_tallies(rules, &row.text(1)?, "metrics_history_hours")?;
            sums.add_to_town(rules, parse_town(&row.text(0)?)?, &delta);
        }
        Ok(())
    }
}

fn decode_tallies(rules: &RuleSet, text: &str, table: &'static str) -> Result<ScopeTallies, QueryError> {
    let (metrics, breakdowns) = (rules.metrics.metrics.len(), rules.metrics.breakdowns.len());
    super::compact::decode_tallies(text, metrics, breakdowns)
        .ok_or_else(|| malformed(table, "tallies that do not decode"))
}

fn parse_town(name: &str) -> Result<Town, QueryError> {
    Town::parse(name).map_err(|_| malformed("metrics_history_towns", "a town"))
}

/// The sums at `at` (nanoseconds) from the summed boundaries, with the enterprises of `fresh`
/// evaluated from their facts instead of read (`None`: no summed boundary is close enough
/// before it; the caller reads one row per enterprise). The caller checks the history covers
/// `at`.
pub(super) async fn sums_at(
    store: &dyn ReadModelStore,
    rules: &Arc<RuleSet>,
    fresh: &Arc<Fresh>,
    at: i64,
) -> Result<Option<Sums>, QueryError> {
    // Sums deleted while they were read are read again (a handful of times at most: the
    // keeper deletes them only for an enterprise whose past changed).
    for _ in 0..3 {
        // No table yet (a node that has not migrated since an upgrade) is no sums: the lookup
        // per enterprise answers, and reports a store that cannot answer at all.
        let Ok(Some(summed)) = load_summed(store).await else {
            return Ok(None);
        };
        let Some(start) = summed.start_for(at) else {
            return Ok(None);
        };
        let span = [SqlValue::Int(start), SqlValue::Int(at)];
        let (summed_rows, changed) = futures::try_join!(SummedRows::read(store, &summed, start), async {
            Ok(store.query(CHANGED, &span).await?)
        },)?;
        let mut changed = changed
            .iter()
            .map(|row| Ok((row.text(0)?, (row.opt_text(1)?, row.opt_text(2)?))))
            .collect::<Result<HashMap<_, _>, QueryError>>()?;
        // A fresh enterprise's contribution at the start comes out of the sums and its
        // evaluation at `at` goes in.
        let mut fresh_at_start = Vec::with_capacity(fresh.len());
        for enterprise_id in fresh.keys() {
            let id = enterprise_id.to_string();
            let at_start = match changed.remove(&id) {
                Some((at_start, _)) => at_start,
                None => one_at(store, &id, start).await?,
            };
            fresh_at_start.push(at_start);
        }
        if load_summed(store)
            .await?
            .is_none_or(|now| now.generation != summed.generation)
        {
            continue;
        }
        let (rules, fresh) = (rules.clone(), fresh.clone());
        let sums = off_the_runtime("metrics_history_days", move || {
            let mut sums = summed_rows.day_sums(&rules)?;
            summed_rows.add_hours(&rules, &mut sums)?;
            for (before, after) in changed.values() {
                correct(&rules, &mut sums, before.as_deref(), after.as_deref())?;
            }
            for before in &fresh_at_start {
                correct(&rules, &mut sums, before.as_deref(), None)?;
            }
            let at = chrono::DateTime::from_timestamp_nanos(at);
            for (file, services) in fresh.values().flatten() {
                if let Some(contribution) =
                    anquan_domain::metrics::enterprise_contribution(&rules.metrics, &rules, file, services, at)
                {
                    sums.apply(&rules, &contribution, true);
                }
            }
            Ok(sums)
        })
        .await?;
        return Ok(Some(sums));
    }
    Ok(None)
}

async fn one_at(store: &dyn ReadModelStore, enterprise_id: &str, at: i64) -> Result<Option<String>, QueryError> {
    let rows = store
        .query(ONE_AT, &[SqlValue::Text(enterprise_id.to_owned()), SqlValue::Int(at)])
        .await?;
    match rows.first() {
        Some(row) => Ok(row.opt_text(0)?),
        None => Ok(None),
    }
}

/// Takes the contribution `before` out of the sums and puts `after` in (each as compact text;
/// `None`: nothing).
fn correct(rules: &RuleSet, sums: &mut Sums, before: Option<&str>, after: Option<&str>) -> Result<(), QueryError> {
    if before == after {
        return Ok(());
    }
    for (text, add) in [(before, false), (after, true)] {
        if let Some(text) = text {
            let contribution = super::compact::decode(text)
                .ok_or_else(|| malformed("metrics_history", "a contribution that does not decode"))?;
            sums.apply(rules, &contribution, add);
        }
    }
    Ok(())
}

/// How far [`sum_days`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaysSummed {
    /// Boundaries summed by this call.
    pub boundaries: usize,
    /// Whether every boundary through the history's `walked_to` is summed.
    pub complete: bool,
}

/// Sums the boundaries after the last summed one through the history's `walked_to` (from its
/// horizon when none is), for about `budget` at most, and writes them with the checkpoint
/// [`history::PROJECTION`] at the state's position, fenced by `lease`. The caller writes the
/// history (it is its only writer), so the rows do not change meanwhile.
pub async fn sum_days(
    store: &dyn ReadModelStore,
    rules: &Arc<RuleSet>,
    state: &HistoryState,
    lease: Option<LeaseTerm>,
    budget: Duration,
) -> Result<DaysSummed, QueryError> {
    let started = std::time::Instant::now();
    let done = DaysSummed {
        boundaries: 0,
        complete: true,
    };
    let (Some(horizon), Some(walked_to)) = (history::nanos(state.horizon), history::nanos(state.walked_to)) else {
        return Ok(done);
    };
    let found = load_summed(store).await?;
    // Sums of another horizon (none: a history walked again is emptied whole) are deleted
    // below; the generation counts it.
    let generation = found.map_or(0, |found| {
        found.generation.saturating_add(i64::from(found.horizon != horizon))
    });
    let boundaries = Summed {
        horizon,
        summed_to: horizon.saturating_sub(1),
        generation,
    };
    let Some(last) = boundaries.at_or_before(walked_to) else {
        return Ok(done);
    };
    let summed = found.filter(|summed| summed.horizon == horizon && summed.summed_to >= horizon);
    if summed.is_some_and(|summed| summed.summed_to >= last) {
        return Ok(done);
    }
    let mut statements = Vec::new();
    let mut count = 0;
    let (mut boundary, sums, day_sums_kept) = match summed {
        Some(summed) => {
            let rows = SummedRows::read(store, &summed, summed.summed_to).await?;
            let rules = Arc::clone(rules);
            let (sums, day) = off_the_runtime("metrics_history_days", move || {
                let mut sums = rows.day_sums(&rules)?;
                let day = sums.towns.clone();
                rows.add_hours(&rules, &mut sums)?;
                Ok((sums, day))
            })
            .await?;
            (summed.summed_to, sums, day)
        }
        None => {
            // The horizon: every enterprise's contribution there.
            for table in ["metrics_history_days", "metrics_history_hours", "metrics_history_towns"] {
                statements.push(Statement::new(format!("DELETE FROM {table}"), Vec::new()));
            }
            let rows = store.query(history::AT, &[SqlValue::Int(horizon)]).await?;
            let rules = Arc::clone(rules);
            let sums = off_the_runtime("metrics_history", move || {
                let mut sums = Sums::new(&rules);
                for row in &rows {
                    correct(&rules, &mut sums, None, row.opt_text(1)?.as_deref())?;
                }
                Ok(sums)
            })
            .await?;
            write_rows(&mut statements, Table::Days, horizon, sums.towns.iter());
            count += 1;
            let kept = sums.towns.clone();
            (horizon, sums, kept)
        }
    };
    let mut summing = Summing {
        rules: Arc::clone(rules),
        empty: ScopeTallies::new(rules.metrics.metrics.len(), rules.metrics.breakdowns.len()),
        sums,
        day_sums_kept,
        statements,
    };
    while boundary < last && started.elapsed() < budget {
        let Some(next) = boundaries.next(boundary) else { break };
        let rows = store
            .query(CHANGED, &[SqlValue::Int(boundary), SqlValue::Int(next)])
            .await?;
        let day = boundaries.is_day(next);
        summing = if rows.is_empty() {
            summing.add_boundary(&rows, next, day)?
        } else {
            off_the_runtime("metrics_history_hours", move || summing.add_boundary(&rows, next, day)).await?
        };
        boundary = next;
        count += 1;
    }
    let mut statements = summing.statements;
    statements.push(Statement::new(
        WRITE_SUMMED,
        vec![
            SqlValue::Int(horizon),
            SqlValue::Int(boundary),
            SqlValue::Int(generation),
        ],
    ));
    let batch = anquan_event_store::ProjectionBatch::new(history::PROJECTION, statements, state.position).fenced(lease);
    store.apply(Arc::new(batch)).await?;
    Ok(DaysSummed {
        boundaries: count,
        complete: boundary >= last,
    })
}

/// The keeper's running sums while it sums boundaries, and the statements that write them.
struct Summing {
    rules: Arc<RuleSet>,
    /// A town's tallies before its first contribution.
    empty: ScopeTallies,
    sums: Sums,
    /// The towns' sums at the last day boundary written: a day row is written where they differ.
    day_sums_kept: BTreeMap<Town, ScopeTallies>,
    statements: Vec<Statement>,
}

impl Summing {
    /// Adds the boundary `next` from the enterprises whose contribution changed since the one
    /// before ([`CHANGED`]'s rows): what it added to each town, and at a day boundary the whole
    /// sums of the towns that differ from the last day's.
    fn add_boundary(mut self, rows: &[Row], next: i64, day: bool) -> Result<Self, QueryError> {
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            let (before, after) = (row.opt_text(1)?, row.opt_text(2)?);
            if before != after {
                changes.push((before, after));
            }
        }
        let mut before: BTreeMap<Town, ScopeTallies> = BTreeMap::new();
        for (was, is) in &changes {
            for text in [was, is].into_iter().flatten() {
                let town = super::compact::decode(text)
                    .ok_or_else(|| malformed("metrics_history", "a contribution that does not decode"))?
                    .town;
                if let std::collections::btree_map::Entry::Vacant(entry) = before.entry(town) {
                    let tallies = self.sums.towns.get(entry.key()).unwrap_or(&self.empty).clone();
                    entry.insert(tallies);
                }
            }
        }
        for (was, is) in &changes {
            correct(&self.rules, &mut self.sums, was.as_deref(), is.as_deref())?;
        }
        let added: Vec<(Town, ScopeTallies)> = before
            .into_iter()
            .filter_map(|(town, was)| {
                let is = self.sums.towns.get(&town).unwrap_or(&self.empty);
                (*is != was).then(|| (town, is.minus(&was)))
            })
            .collect();
        write_rows(
            &mut self.statements,
            Table::Hours,
            next,
            added.iter().map(|(town, delta)| (town, delta)),
        );
        if day {
            let differing = self
                .sums
                .towns
                .iter()
                .filter(|(town, tallies)| self.day_sums_kept.get(*town).unwrap_or(&self.empty) != *tallies);
            write_rows(&mut self.statements, Table::Days, next, differing);
            self.day_sums_kept.clone_from(&self.sums.towns);
        }
        Ok(self)
    }
}

/// Where [`write_rows`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// Towns' whole sums at a day boundary.
    Days,
    /// What a boundary added to towns.
    Hours,
}

/// The statements that write towns' tallies at `boundary`.
fn write_rows<'a>(
    statements: &mut Vec<Statement>,
    table: Table,
    boundary: i64,
    towns: impl Iterator<Item = (&'a Town, &'a ScopeTallies)>,
) {
    let towns: Vec<_> = towns.collect();
    for chunk in towns.chunks(ROWS_PER_INSERT) {
        let (insert, conflict) = match table {
            Table::Days => (
                "INSERT INTO metrics_history_days (town, day, sums) VALUES ",
                " ON CONFLICT (town, day) DO UPDATE SET sums = excluded.sums",
            ),
            Table::Hours => (
                "INSERT INTO metrics_history_hours (town, boundary, delta) VALUES ",
                " ON CONFLICT (boundary, town) DO UPDATE SET delta = excluded.delta",
            ),
        };
        let mut rows = String::from(insert);
        let mut values = Vec::with_capacity(chunk.len() * 3);
        for (index, (town, tallies)) in chunk.iter().enumerate() {
            if index > 0 {
                rows.push_str(", ");
            }
            let base = index * 3;
            rows.push_str(&format!("(${}, ${}, ${})", base + 1, base + 2, base + 3));
            values.extend([
                SqlValue::Text(town.as_str().to_owned()),
                SqlValue::Int(boundary),
                SqlValue::Text(super::compact::encode_tallies(tallies)),
            ]);
        }
        rows.push_str(conflict);
        statements.push(Statement::new(rows, values));
        // A town's day rows are found through its name.
        if table == Table::Days {
            let names: Vec<String> = (1..=chunk.len()).map(|index| format!("(${index})")).collect();
            let town_values = chunk
                .iter()
                .map(|(town, _)| SqlValue::Text(town.as_str().to_owned()))
                .collect();
            statements.push(Statement::new(
                format!(
                    "INSERT INTO metrics_history_towns (town) VALUES {} ON CONFLICT (town) DO NOTHING",
                    names.join(", ")
                ),
                town_values,
            ));
        }
    }
}

/// The statements that delete the sums a write of `enterprises`' rows makes untrue: from the
/// first instant at or before the last summed boundary where one of them contributes other
/// than its rows say now (none when every change is later). Reads each enterprise's rows
/// through that boundary; nothing when none is summed.
pub(super) async fn truncation(
    store: &dyn ReadModelStore,
    enterprises: &[EnterpriseHistory],
) -> Result<Vec<Statement>, QueryError> {
    let Some(summed) = load_summed(store)
        .await?
        .filter(|summed| summed.summed_to >= summed.horizon)
    else {
        return Ok(Vec::new());
    };
    let last = summed.summed_to;
    let mut first: Option<i64> = None;
    for enterprise in enterprises {
        let changes: Vec<(i64, Option<&str>)> = enterprise
            .changes
            .iter()
            .filter_map(|(at, contribution)| Some((history::nanos(*at)?, contribution.as_deref())))
            .take_while(|(at, _)| *at <= last)
            .collect();
        let from = match (enterprise.whole, changes.first()) {
            (true, _) => None,
            (false, Some((from, _))) => Some(*from),
            // Nothing at or before the last midnight is replaced.
            (false, None) => continue,
        };
        let id = SqlValue::Text(enterprise.enterprise_id.to_string());
        let rows = store.query(ROWS_THROUGH, &[id, SqlValue::Int(last)]).await?;
        let old = rows
            .iter()
            .map(|row| Ok((row.int(0)?, row.opt_text(1)?)))
            .collect::<Result<Vec<_>, QueryError>>()?;
        let old: Vec<(i64, Option<&str>)> = old.iter().map(|(at, text)| (*at, text.as_deref())).collect();
        let new: Vec<(i64, Option<&str>)> = match from {
            None => changes,
            Some(from) => old
                .iter()
                .copied()
                .take_while(|(at, _)| *at < from)
                .chain(changes)
                .collect(),
        };
        if let Some(at) = first_difference(&old, &new) {
            first = Some(first.map_or(at, |first| first.min(at)));
        }
    }
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    // The last boundary before the first change (none: before the horizon).
    let summed_to = summed
        .at_or_before(first.saturating_sub(1))
        .unwrap_or(summed.horizon.saturating_sub(1));
    Ok(vec![
        Statement::new(DELETE_DAYS_FROM, vec![SqlValue::Int(first)]),
        Statement::new(DELETE_HOURS_FROM, vec![SqlValue::Int(first)]),
        Statement::new(TRUNCATE_SUMMED, vec![SqlValue::Int(summed_to), SqlValue::Int(first)]),
    ])
}

/// The first instant at which two step functions given as their changes differ (each is
/// nothing before its first change; equal consecutive values are allowed).
fn first_difference(old: &[(i64, Option<&str>)], new: &[(i64, Option<&str>)]) -> Option<i64> {
    let (mut old, mut new) = (old.iter().peekable(), new.iter().peekable());
    let (mut was, mut is): (Option<&str>, Option<&str>) = (None, None);
    loop {
        let at = match (old.peek(), new.peek()) {
            (None, None) => return None,
            (Some((at, _)), None) | (None, Some((at, _))) => *at,
            (Some((a, _)), Some((b, _))) => *a.min(b),
        };
        while let Some((_, value)) = old.next_if(|(change, _)| *change == at) {
            was = *value;
        }
        while let Some((_, value)) = new.next_if(|(change, _)| *change == at) {
            is = *value;
        }
        if was != is {
            return Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_functions_differ_where_their_values_do() {
        let a = [(1, Some("x")), (5, Some("y")), (9, None)];
        assert_eq!(first_difference(&a, &a), None);
        // Repeated values change nothing.
        let repeated = [(1, Some("x")), (3, Some("x")), (5, Some("y")), (9, None), (12, None)];
        assert_eq!(first_difference(&a, &repeated), None);
        assert_eq!(first_difference(&a, &[(1, Some("x")), (5, Some("z"))]), Some(5));
        assert_eq!(first_difference(&a, &[(1, Some("x")), (4, Some("y"))]), Some(4));
        assert_eq!(first_difference(&a, &[]), Some(1));
        assert_eq!(first_difference(&[], &[(2, None)]), None);
        assert_eq!(first_difference(&a, &[(1, Some("x")), (5, Some("y"))]), Some(9));
    }

    #[test]
    fn boundaries_are_every_hour_and_the_nanosecond_after() {
        let summed = Summed {
            horizon: 0,
            summed_to: 10 * DAY + 1,
            generation: 0,
        };
        assert_eq!(summed.at_or_before(-1), None);
        assert_eq!(summed.at_or_before(0), Some(0));
        assert_eq!(summed.at_or_before(1), Some(1));
        assert_eq!(summed.at_or_before(HOUR - 1), Some(1));
        assert_eq!(summed.at_or_before(HOUR), Some(HOUR));
        assert_eq!(summed.at_or_before(i64::MAX), Some(i64::MAX / HOUR * HOUR + 1));
        assert_eq!(summed.next(0), Some(1));
        assert_eq!(summed.next(1), Some(HOUR));
        assert_eq!(summed.next(HOUR), Some(HOUR + 1));
        assert_eq!(summed.next(i64::MAX), None);
        assert!(summed.is_day(0) && summed.is_day(1) && summed.is_day(DAY + 1));
        assert!(!summed.is_day(DAY) && !summed.is_day(HOUR + 1));
        assert_eq!(summed.day_of(0), 0);
        assert_eq!(summed.day_of(1), 1);
        assert_eq!(summed.day_of(DAY), 1);
        assert_eq!(summed.day_of(DAY + 1), DAY + 1);
        assert_eq!(summed.day_of(DAY + HOUR), DAY + 1);
        // A query starts at its boundary, or the last summed one within three hours.
        assert_eq!(summed.start_for(HOUR + 5), Some(HOUR + 1));
        assert_eq!(summed.start_for(10 * DAY + 3 * HOUR + 1), Some(10 * DAY + 1));
        assert_eq!(summed.start_for(10 * DAY + 3 * HOUR + 2), None);
        assert_eq!(summed.start_for(-1), None);
        assert_eq!(summed.start_for(i64::MAX), None);
        let none = Summed {
            summed_to: -1,
            ..summed
        };
        assert_eq!(none.start_for(0), None);
    }
}
