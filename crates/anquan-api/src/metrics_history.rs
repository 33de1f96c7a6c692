//! The metrics at past instants as a lookup (issue 19, item 3): the read-model leader keeps
//! every enterprise's contribution over time in the read-model store
//! ([`anquan_projections::metrics::history`]), and a past `asOf` sums one row per enterprise
//! instead of evaluating every file.
//!
//! [`MetricsHistoryKeeper`] runs beside the metrics watcher on every node and writes only while
//! its node leads the read models. Once a second it walks again, whole, each enterprise the log
//! touched since the history's position (an event may change an enterprise's past: a fact
//! backdated before its recording), and walks on from their next change the enterprises whose
//! next change has come; both are written with the new position (more than
//! 250 at once in one streamed pass over the files, a chunk at a time). With no
//! history of the live rule set (first start, a rebuild of the read models, a promotion) it
//! empties it and walks every enterprise in the background, writing the state row last.
//!
//! Between walks it sums each town's contributions by day and hour ([`days`]), a bounded
//! stretch a step, so a past instant reads each town's sums at the day before it, what the
//! hours since added, and the enterprises that changed since the last hour, instead of one row
//! per enterprise.
//!
//! [`history_snapshots`] answers past instants from it when it is of the rule set asked with
//! and covers every instant asked. Where the history's position is behind what this node's read
//! models had applied when asked (the keeper writes once a second, and a streamed pass takes
//! longer), the enterprises the log touched in between are evaluated from their files at the
//! instants instead of read, and the rest read: at most `FRESH_MAX` (5,000) of them, else the query
//! waits up to [`HISTORY_WAIT`] for the leader's next write. Otherwise the caller
//! evaluates every file as before.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use anquan_domain::EnterpriseId;
use anquan_domain::rules::RuleSet;
use anquan_event_store::{LeaseTerm, Position};
use anquan_projections::QueryError;
use anquan_projections::metrics::days;
use anquan_projections::metrics::history::{self, EnterpriseHistory, HistoryState};
use anquan_projections::metrics::{CHUNK, Snapshot, agency_facts, enterprise_facts};

use crate::AppState;
use crate::metrics_service::Touched;

/// How often the keeper looks at the log and the clock.
pub const HISTORY_POLL: Duration = Duration::from_secs(1);
/// How long a past-instant query waits for the history to reach the position this node's read
/// models had applied when it was asked, before it evaluates the files instead.
pub const HISTORY_WAIT: Duration = Duration::from_secs(2);
/// At most this many enterprises the log touched after the history's position are evaluated
/// from their files by a past-instant query, the rest read from the history; with more it waits
/// for the keeper. Right after a walk of every enterprise the history is behind by what the
/// read models applied during it (1,502 enterprises at scale 10), and the keeper's streamed pass
/// over them takes a minute, in which every file was evaluated instead (30 s and more).
const FRESH_MAX: usize = 5_000;
/// Files a query reads at once for the enterprises it evaluates (the stores read on a few
/// connections).
const FRESH_READS: usize = 8;
/// A walk of every enterprise starts once the read models are this close to the log's head...
const BUILD_LAG_MAX: u64 = 100;
/// ...or once it has waited this long for them (a log that keeps growing).
const BUILD_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long a step sums days at most: the log and the clock are looked at between.
const DAYS_BUDGET: Duration = Duration::from_secs(2);
/// More enterprises than this to walk at once (touched by the log, or due) are walked in one
/// streamed pass over every file rather than file by file.
const ONE_BY_ONE_MAX: usize = 250;

/// Keeps the history; see the module documentation.
pub struct MetricsHistoryKeeper {
    app: AppState,
    /// The state as last read or written while leading (`None`: read it again).
    state: Option<HistoryState>,
    /// A walk of every enterprise running in the background.
    build: Option<tokio::task::JoinHandle<Result<HistoryState, String>>>,
    /// Since when a walk of every enterprise has waited for the read models to reach the head.
    build_waiting: Option<std::time::Instant>,
    /// Since when days have been summed, until every one the history answers is.
    days_started: Option<std::time::Instant>,
}

impl MetricsHistoryKeeper {
    pub fn new(app: AppState) -> Self {
        MetricsHistoryKeeper {
            app,
            state: None,
            build: None,
            build_waiting: None,
            days_started: None,
        }
    }

    /// Runs until the projections' position channel closes.
    pub async fn run(mut self) {
        let mut timer = tokio::time::interval(HISTORY_POLL);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            if self.app.projected.has_changed().is_err() {
                return;
            }
            if let Err(error) = self.step().await {
                tracing::warn!(error = %error, "the metrics history could not be kept up to date; trying again");
                self.state = None;
            }
        }
    }

    /// One look at the log and the clock; see the module documentation.
    async fn step(&mut self) -> Result<(), String> {
        let Some(term) = self.app.projections.leading() else {
            // Another node writes; read the state again when this one leads.
            self.state = None;
            if let Some(build) = self.build.take() {
                build.abort();
            }
            return Ok(());
        };
        let lease = Some(LeaseTerm {
            group: anquan_projections::leadership::READ_MODELS_GROUP.to_owned(),
            term,
        });
        let Some(applied) = *self.app.projected.borrow() else {
            return Ok(());
        };
        if crate::watcher::projections_catching_up(&self.app, Some(applied)) {
            return Ok(());
        }
        if self.build.as_ref().is_some_and(|build| !build.is_finished()) {
            return Ok(());
        }
        if let Some(build) = self.build.take() {
            match build.await {
                Ok(Ok(state)) => self.state = Some(state),
                Ok(Err(error)) => return Err(error),
                Err(error) => return Err(format!("the metrics history walk stopped: {error}")),
            }
            return Ok(());
        }
        let rules = self.app.rule_sets.active();
        let Some(digest) = self.app.rule_sets.get(&rules.version).map(|loaded| loaded.digest) else {
            return Ok(());
        };
        let store = self.app.read_models.clone();
        if self.state.is_none() {
            history::migrate(store.as_ref())
                .await
                .map_err(|error| error.to_string())?;
            self.state = history::load_state(store.as_ref())
                .await
                .map_err(|error| error.to_string())?;
        }
        let state = match self.state.clone() {
            Some(state)
                if state.rule_set == rules.version && state.rule_set_digest == digest && state.position <= applied =>
            {
                state
            }
            _ => {
                if self.build_waits(applied) {
                    return Ok(());
                }
                self.start_build(rules, digest, applied, lease);
                return Ok(());
            }
        };
        let mut touched = Touched::default();
        let (after, _) = touched
            .read_span(&self.app, Some(state.position), applied, usize::MAX)
            .await
            .map_err(|error| error.to_string())?;
        // A contract's termination whose enterprise the read models do not give, or an event
        // that names none: every enterprise is walked again whole.
        let every = touched
            .names_every(&self.app)
            .await
            .map_err(|error| error.to_string())?;
        let now = self.app.now();
        let due = history::due(store.as_ref(), now, ONE_BY_ONE_MAX + 1)
            .await
            .map_err(|error| error.to_string())?;
        let next = HistoryState {
            position: after.unwrap_or(state.position).max(state.position),
            walked_to: now.max(state.walked_to),
            ..state.clone()
        };
        let from = walks_from(due, &touched);
        if !every && from.is_empty() && next.position == state.position {
            // Nothing changed: the rows answer every instant before the earliest next change,
            // which is after now (none is due), so the sums go on to now without a write of
            // the state (a quiet night is summed hour by hour, not only at the next change).
            return self.sum_days(&rules, &next, lease).await;
        }
        let mut walks = Vec::new();
        if every {
            let walked = self.walk_streaming(&rules, &state, None, now, lease.clone()).await?;
            tracing::info!(
                enterprises = walked,
                "metrics history walked again for an event that names no enterprise"
            );
        } else if from.len() > ONE_BY_ONE_MAX {
            // Many at once (a calendar instant makes every enterprise due; a burst of events):
            // one streamed pass over every file walks on those due and the touched ones whole,
            // writing each chunk.
            let every_due = history::due(store.as_ref(), now, usize::MAX)
                .await
                .map_err(|error| error.to_string())?;
            let walked = self
                .walk_streaming(
                    &rules,
                    &state,
                    Some(walks_from(every_due, &touched)),
                    now,
                    lease.clone(),
                )
                .await?;
            tracing::info!(enterprises = walked, "metrics history walked on in one pass");
        } else {
            walks = self.walk_one_by_one(&rules, &state, from, now).await?;
        }
        history::save(store.as_ref(), &next, walks, lease.clone())
            .await
            .map_err(|error| error.to_string())?;
        self.state = Some(next.clone());
        self.sum_days(&rules, &next, lease).await
    }

    /// Sums the days the history answers and are not summed yet, for [`DAYS_BUDGET`] at most
    /// (the rest at the next step).
    async fn sum_days(
        &mut self,
        rules: &Arc<RuleSet>,
        state: &HistoryState,
        lease: Option<LeaseTerm>,
    ) -> Result<(), String> {
        let summed = days::sum_days(self.app.read_models.as_ref(), rules, state, lease, DAYS_BUDGET)
            .await
            .map_err(|error| error.to_string())?;
        match (summed.complete, self.days_started) {
            (false, None) => self.days_started = Some(std::time::Instant::now()),
            (true, Some(started)) => {
                self.days_started = None;
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis(),
                    "metrics history summed by day"
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads each enterprise's facts and walks it through `now`: whole (`None`) or from its
    /// next change.
    async fn walk_one_by_one(
        &self,
        rules: &Arc<RuleSet>,
        state: &HistoryState,
        from: HashMap<EnterpriseId, Option<DateTime<Utc>>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<EnterpriseHistory>, String> {
        let mut facts = Vec::with_capacity(from.len());
        for (enterprise_id, start) in from {
            let read = enterprise_facts(self.app.read_models.as_ref(), enterprise_id)
                .await
                .map_err(|error| error.to_string())?;
            facts.push((enterprise_id, start, read));
        }
        let (rules, horizon) = (rules.clone(), state.horizon);
        tokio::task::spawn_blocking(move || {
            facts
                .into_iter()
                .map(|(enterprise_id, start, read)| {
                    // A gone enterprise is walked whole to nothing: its rows are deleted.
                    let start = start.filter(|_| read.is_some());
                    let read = read.as_ref().map(|(file, services)| (file, services));
                    history::walk(&rules, enterprise_id, read, start, horizon, now)
                })
                .collect()
        })
        .await
        .map_err(|error| format!("the metrics history walk stopped: {error}"))
    }

    /// Walks the enterprises of `from` (whole, or on from their next change; absent, every
    /// enterprise whole) in one streamed pass over the files, writing each chunk; returns how
    /// many were walked.
    async fn walk_streaming(
        &self,
        rules: &Arc<RuleSet>,
        state: &HistoryState,
        from: Option<HashMap<EnterpriseId, Option<DateTime<Utc>>>>,
        now: DateTime<Utc>,
        lease: Option<LeaseTerm>,
    ) -> Result<usize, String> {
        let store = self.app.read_models.clone();
        let position = state.position;
        history::walk_streaming(
            store.as_ref(),
            rules.clone(),
            from.map(Arc::new),
            state.horizon,
            now,
            CHUNK,
            |walks| {
                let (store, lease) = (store.clone(), lease.clone());
                async move { history::save_part(store.as_ref(), position, false, walks, lease).await }
            },
        )
        .await
        .map_err(|error| error.to_string())
    }

    /// Whether a walk of every enterprise waits for the read models to apply the rest of the
    /// log: every enterprise those events touch would be walked again whole right after it, in
    /// a streamed pass over the files (the 10,000 events still to apply when the walk of the
    /// scale-10 demo began took 1,502 enterprises and a minute), so it starts within
    /// [`BUILD_LAG_MAX`] events of the head, or after [`BUILD_WAIT_MAX`] of a log that keeps
    /// growing.
    fn build_waits(&mut self, applied: Position) -> bool {
        let behind =
            crate::watcher::events_behind(&self.app, Some(applied)).is_some_and(|events| events > BUILD_LAG_MAX);
        if !behind {
            self.build_waiting = None;
            return false;
        }
        let since = *self.build_waiting.get_or_insert_with(std::time::Instant::now);
        since.elapsed() < BUILD_WAIT_MAX
    }

    /// Starts walking every enterprise whole in the background: the tables are emptied, each
    /// chunk written as it is walked, and the state row last.
    fn start_build(&mut self, rules: Arc<RuleSet>, digest: String, applied: Position, lease: Option<LeaseTerm>) {
        let store = self.app.read_models.clone();
        let now = self.app.now();
        self.state = None;
        tracing::info!(rule_set.version = %rules.version, "walking every enterprise's metrics history");
        self.build = Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let horizon = history::horizon(&rules, now);
            let state = HistoryState {
                rule_set: rules.version.clone(),
                rule_set_digest: digest,
                horizon,
                walked_to: now,
                position: applied,
            };
            history::save_part(store.as_ref(), applied, true, Vec::new(), lease.clone())
                .await
                .map_err(|error| error.to_string())?;
            let walked = history::walk_streaming(store.as_ref(), rules, None, horizon, now, CHUNK, |walks| {
                let (store, lease) = (store.clone(), lease.clone());
                async move { history::save_part(store.as_ref(), applied, false, walks, lease).await }
            })
            .await
            .map_err(|error| error.to_string())?;
            history::save(store.as_ref(), &state, Vec::new(), lease)
                .await
                .map_err(|error| error.to_string())?;
            tracing::info!(
                enterprises = walked,
                elapsed_ms = started.elapsed().as_millis(),
                "metrics history walked"
            );
            Ok(state)
        }));
    }
}

/// Where to walk each enterprise from: the due ones from their next change, the touched ones
/// whole (`None`), which wins for an enterprise that is both.
fn walks_from(
    due: Vec<(EnterpriseId, DateTime<Utc>)>,
    touched: &Touched,
) -> HashMap<EnterpriseId, Option<DateTime<Utc>>> {
    let mut from: HashMap<EnterpriseId, Option<DateTime<Utc>>> = due
        .into_iter()
        .map(|(enterprise_id, head)| (enterprise_id, Some(head)))
        .collect();
    from.extend(touched.enterprises.iter().map(|enterprise_id| (*enterprise_id, None)));
    from
}

/// The metrics at `instants` from the history, when it answers them all with the rules of
/// `app` (see the module documentation), with where they came from: `"history"`, or
/// `"history_and_files"` when some enterprises were evaluated from their files; `None`: the
/// caller evaluates every file.
pub async fn history_snapshots(
    app: &AppState,
    instants: &[DateTime<Utc>],
) -> Result<Option<(Vec<Snapshot>, &'static str)>, QueryError> {
    let store = app.read_models.as_ref();
    let applied = *app.projected.borrow();
    let Some(digest) = app.rule_sets.get(&app.rules.version).map(|loaded| loaded.digest) else {
        return Ok(None);
    };
    let waited = std::time::Instant::now();
    // The position whose span was read and found too wide: read again only once the keeper
    // has written a newer one.
    let mut read_from = None;
    let (state, touched) = loop {
        // No history table yet (a node that has not started its watcher) is no history.
        let Ok(Some(state)) = history::load_state(store).await else {
            return Ok(None);
        };
        if state.rule_set != app.rules.version || state.rule_set_digest != digest {
            return Ok(None);
        }
        let Some(applied) = applied.filter(|applied| state.position < *applied) else {
            break (state, BTreeSet::new());
        };
        if read_from != Some(state.position) {
            read_from = Some(state.position);
            if let Some(touched) = touched_since(app, state.position, applied).await? {
                break (state, touched);
            }
        }
        if waited.elapsed() >= HISTORY_WAIT {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let earliest_head = history::earliest_head(store).await?;
    if !instants.iter().all(|at| state.covers(*at, earliest_head)) {
        return Ok(None);
    }
    let source = if touched.is_empty() {
        "history"
    } else {
        "history_and_files"
    };
    let fresh: history::Fresh = futures::stream::iter(touched)
        .map(|enterprise_id| async move {
            Ok::<_, QueryError>((enterprise_id, enterprise_facts(store, enterprise_id).await?))
        })
        .buffer_unordered(FRESH_READS)
        .try_collect()
        .await?;
    let agencies = agency_facts(store).await?;
    let snapshots = history::snapshots_at(store, &app.rules, &agencies, instants, &Arc::new(fresh)).await?;
    Ok(Some((snapshots, source)))
}

/// The enterprises the log touched after the history's position `from` through `applied`,
/// whose rows the keeper has yet to walk again; `None` when more than [`FRESH_MAX`] (a query
/// evaluates each from its file), or when one cannot be named (an event that names no
/// enterprise, a contract the read models lack) or the log cannot be read: the history cannot
/// answer for them yet.
async fn touched_since(
    app: &AppState,
    from: Position,
    applied: Position,
) -> Result<Option<BTreeSet<EnterpriseId>>, QueryError> {
    let mut touched = Touched::default();
    let too_many = match touched.read_span(app, Some(from), applied, FRESH_MAX).await {
        Ok((_, too_many)) => too_many,
        Err(error) => {
            tracing::warn!(error = %error, "the log after the metrics history could not be read; answering from the files");
            return Ok(None);
        }
    };
    if too_many || touched.names_every(app).await? {
        return Ok(None);
    }
    Ok(Some(touched.enterprises))
}
