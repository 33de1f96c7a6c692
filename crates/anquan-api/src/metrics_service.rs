//! The town statistics service: keeps the 78 metrics of every town and the city for "now" in
//! memory (an [`anquan_projections::metrics::MetricsCache`]), replaces an enterprise's
//! contribution when the projections apply its events, recomputes the enterprises whose next
//! change has come as time passes (no periodic recomputation of everything; every contribution
//! at a calendar instant is computed ahead and swapped in at it), and tells subscribers which
//! towns changed. The read-model leader persists the contributions beside the read models
//! ([`anquan_projections::metrics::persist`]), so a restart answers at once. Past instants (`asOf`) are computed from the
//! read models on demand, a chunk of files at a time, and kept for the requests that ask for the
//! same instants again before the read models move (the root fields of one request ask in turn);
//! when the history of contributions answers them ([`crate::metrics_history`]), a past instant
//! is a lookup of one row per enterprise instead.
//!
//! While the projections catch up with a long log, the watcher does not follow them batch by
//! batch: it waits until they are near the head and recomputes everything once.
//!
//! The cache is computed with the live rule set. When a promotion switches it, the watcher
//! recomputes everything with the new version and tells subscribers of every town and the city.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};

use anquan_domain::metrics::next_calendar_change;
use anquan_domain::rules::RuleSet;
use anquan_domain::{AgencyId, ContractId, EnterpriseId, Event, Town};
use anquan_event_store::Position;
use anquan_projections::QueryError;
use anquan_projections::metrics::{
    CHUNK, MetricsCache, Snapshot, agency_facts, compute_streaming, enterprise_facts, persist, snapshots_streaming,
};

use crate::AppState;
use crate::observability::{METRICS_PAST_ANSWERS_TOTAL, METRICS_WATCHER_PASS_DURATION_SECONDS, PassTimer};

/// How often the watcher looks whether an enterprise's next change has come, by the service
/// clock (which a test may move): a comparison with the cache's earliest next change, no read.
pub const TIMER_POLL: Duration = Duration::from_secs(1);
/// The city-wide agency figures depend on the instant and on no enterprise's timer: their facts
/// are read again, and the figures computed at now, at least this often.
const AGENCIES_REFRESH: chrono::Duration = chrono::Duration::minutes(1);
/// How much earlier than twice the latest full computation the contributions at a calendar
/// instant start being computed ahead.
const PREPARE_MARGIN: Duration = Duration::from_secs(10);
/// The snapshot one month before now (month-over-month) is computed again, in the background,
/// once its instant is this far from one month before now.
const MONTH_AGO_STALE: chrono::Duration = chrono::Duration::hours(1);
/// Events read per page while following the log.
const LOG_PAGE: usize = 500;
/// How many change notices a slow subscriber may fall behind.
const CHANGES_CAPACITY: usize = 256;
/// Enterprises recomputed one by one at least (a follow, the due ones, those touched while
/// the figures at a calendar instant were computed ahead); beyond [`one_by_one_max`], everything
/// is recomputed in one pass over every file a chunk at a time, which costs about as much as
/// reading a thirteenth of the files one by one (250 of Haining's 3,212).
const FOLLOW_ENTERPRISES_MAX: usize = 250;
/// The share of the city (one in this many enterprises) recomputed one by one before a pass
/// over every file costs less (see [`FOLLOW_ENTERPRISES_MAX`]).
const ONE_BY_ONE_SHARE: usize = 13;
/// How long before a calendar instant its figures start being computed ahead while this
/// process has not yet timed a computation of everything (it loaded the persisted figures): a
/// pass takes seconds in a city and minutes in a province.
const PREPARE_LEAD_UNKNOWN: Duration = Duration::from_secs(30 * 60);
/// Past-instant computations kept (each is a few snapshots, a few hundred KB per 13 scopes).
const PAST_KEPT: usize = 4;

/// The figures served for "now": the snapshot and the one a local month earlier.
#[derive(Debug, Clone)]
pub struct CurrentMetrics {
    pub now: Arc<Snapshot>,
    pub month_ago: Arc<Snapshot>,
    /// The rule set they were computed with: the live one when they were. A request reading
    /// with another version computes its own.
    pub rules: Arc<RuleSet>,
}

/// Which towns' figures changed (`None` in the list: the city-wide ones).
#[derive(Debug, Clone)]
pub struct MetricsChanged {
    pub towns: BTreeSet<Option<Town>>,
    pub at: DateTime<Utc>,
}

/// Shared between the watcher (writer), the resolvers and subscriptions (readers).
#[derive(Clone)]
pub struct MetricsService {
    current: watch::Sender<Option<CurrentMetrics>>,
    changes: broadcast::Sender<MetricsChanged>,
    /// The latest past-instant computations, newest last.
    past: Arc<Mutex<VecDeque<PastEntry>>>,
}

/// What a past-instant computation depends on: the instants, the rule set and how far the
/// read models had applied the log.
#[derive(Clone)]
struct PastKey {
    instants: Vec<DateTime<Utc>>,
    rules: Arc<RuleSet>,
    applied: Option<Position>,
}

impl PastKey {
    /// Whether a computation for `other` used the same rules and read models: its instants
    /// are then this key's at those instants.
    fn same_inputs(&self, other: &PastKey) -> bool {
        Arc::ptr_eq(&self.rules, &other.rules) && self.applied == other.applied
    }
}

/// One past-instant computation: computed once by the first caller, awaited by the others.
type PastCell = Arc<tokio::sync::OnceCell<Vec<Arc<Snapshot>>>>;

struct PastEntry {
    key: PastKey,
    cell: PastCell,
}

/// One instant of a request: the computation that holds it, that computation's instants, and
/// the instant's place among them.
struct PastPart {
    cell: PastCell,
    instants: Vec<DateTime<Utc>>,
    index: usize,
}

impl Default for MetricsService {
    fn default() -> Self {
        MetricsService {
            current: watch::Sender::new(None),
            changes: broadcast::Sender::new(CHANGES_CAPACITY),
            past: Arc::new(Mutex::new(VecDeque::with_capacity(PAST_KEPT))),
        }
    }
}

impl MetricsService {
    /// The figures for "now", once the first computation is done.
    pub fn current(&self) -> Option<CurrentMetrics> {
        self.current.borrow().clone()
    }

    /// The figures for "now" computed with rule set `version`, waiting up to `wait` for the
    /// watcher to compute them (after the service starts, or after a promotion to `version`).
    pub async fn current_with(&self, version: &str, wait: Duration) -> Option<CurrentMetrics> {
        let mut receiver = self.current.subscribe();
        let computed =
            receiver.wait_for(|current| current.as_ref().is_some_and(|current| current.rules.version == version));
        match tokio::time::timeout(wait, computed).await {
            Ok(Ok(current)) => current.clone(),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// A receiver of change notices.
    pub fn subscribe(&self) -> broadcast::Receiver<MetricsChanged> {
        self.changes.subscribe()
    }

    /// Where each of `key`'s instants comes from: a computation kept or under way for the same
    /// rules and read models that holds it (so `cityMetrics` without the month before and
    /// `allTownMetrics` with it share their instant), else one new computation of every
    /// instant none holds. Adding one drops the entries computed for another applied
    /// position, which can never be asked for again.
    fn past_parts(&self, key: &PastKey) -> Vec<PastPart> {
        let mut past = self.past.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let kept = |at: &DateTime<Utc>| {
            past.iter()
                .filter(|entry| entry.key.same_inputs(key))
                .find_map(|entry| {
                    let index = entry.key.instants.iter().position(|instant| instant == at)?;
                    Some(PastPart {
                        cell: entry.cell.clone(),
                        instants: entry.key.instants.clone(),
                        index,
                    })
                })
        };
        let found: Vec<Option<PastPart>> = key.instants.iter().map(kept).collect();
        let missing: Vec<DateTime<Utc>> = key
            .instants
            .iter()
            .zip(&found)
            .filter(|(_, part)| part.is_none())
            .map(|(at, _)| *at)
            .collect();
        let cell = PastCell::default();
        if !missing.is_empty() {
            past.retain(|entry| entry.key.applied == key.applied);
            while past.len() >= PAST_KEPT {
                past.pop_front();
            }
            past.push_back(PastEntry {
                key: PastKey {
                    instants: missing.clone(),
                    ..key.clone()
                },
                cell: cell.clone(),
            });
        }
        let mut new_index = 0;
        found
            .into_iter()
            .map(|part| {
                part.unwrap_or_else(|| {
                    new_index += 1;
                    PastPart {
                        cell: cell.clone(),
                        instants: missing.clone(),
                        index: new_index - 1,
                    }
                })
            })
            .collect()
    }

    fn publish(&self, current: CurrentMetrics, towns: BTreeSet<Option<Town>>) {
        let at = current.now.at;
        self.current.send_replace(Some(current));
        if !towns.is_empty() {
            // No subscriber is not an error.
            let _ = self.changes.send(MetricsChanged { towns, at });
        }
    }
}

/// Computes the metrics at past (or any) instants from the history, else in one pass over the
/// files a chunk at a time. Each instant is shared with every caller asking for it with the same
/// rules before the read models move, whatever else they ask: the root fields of one request
/// (`allTownMetrics` and `cityMetrics` with the same `asOf`, one of them with the month before)
/// compute it once. The instants no kept computation holds are computed together.
pub async fn snapshots_at(app: &AppState, instants: &[DateTime<Utc>]) -> Result<Vec<Arc<Snapshot>>, QueryError> {
    let key = PastKey {
        instants: instants.to_vec(),
        rules: app.rules.clone(),
        applied: *app.projected.borrow(),
    };
    let parts = app.metrics.past_parts(&key);
    // Each computation once, however many of the instants it holds.
    let mut computations: Vec<&PastPart> = Vec::with_capacity(parts.len());
    for part in &parts {
        if !computations.iter().any(|other| Arc::ptr_eq(&other.cell, &part.cell)) {
            computations.push(part);
        }
    }
    let computed = futures::future::try_join_all(computations.iter().map(|part| async move {
        part.cell
            .get_or_try_init(|| compute_past(app, &part.instants))
            .await
            .cloned()
    }))
    .await?;
    parts
        .iter()
        .map(|part| {
            computations
                .iter()
                .zip(&computed)
                .find(|(computation, _)| Arc::ptr_eq(&computation.cell, &part.cell))
                .and_then(|(_, snapshots)| snapshots.get(part.index).cloned())
                .ok_or_else(|| QueryError::Malformed {
                    table: "metrics_history",
                    reason: "a computation without one of its instants".to_owned(),
                })
        })
        .collect()
}

/// The metrics at `instants` from the history, else from every file.
async fn compute_past(app: &AppState, instants: &[DateTime<Utc>]) -> Result<Vec<Arc<Snapshot>>, QueryError> {
    let (snapshots, source) = match crate::metrics_history::history_snapshots(app, instants).await? {
        Some(answer) => answer,
        None => (
            snapshots_streaming(app.read_models.as_ref(), app.rules.clone(), instants, CHUNK).await?,
            "files",
        ),
    };
    metrics::counter!(METRICS_PAST_ANSWERS_TOTAL, "source" => source).increment(1);
    Ok(snapshots.into_iter().map(Arc::new).collect())
}

/// Which towns a recomputation tells subscribers about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announce {
    /// None (the first computation).
    Nothing,
    /// Those whose figures changed.
    Changed,
    /// Every town and the city (the rule set changed: every figure is now another version's).
    Every,
}

/// Which contributions a write to the read-model store replaces.
enum Persist {
    /// Every one (after a full computation, or a swap of computed-ahead ones).
    Every,
    /// These enterprises' (every one this node changed since it loaded or last wrote them, as
    /// a follower too: each row is one enterprise's contribution with its own next change, so
    /// the rows another leader wrote meanwhile are not wrong, at worst older).
    These(BTreeSet<EnterpriseId>),
}

/// Follows the projections, the clock and rule-set promotions; see the module documentation.
pub struct MetricsWatcher {
    app: AppState,
    /// The rule set the cache is computed with: the live one, switched at a promotion.
    rules: Arc<RuleSet>,
    cache: MetricsCache,
    month_ago: Arc<Snapshot>,
    after: Option<Position>,
    /// When the agency facts were last read (service clock): the city-wide agency figures
    /// depend on the instant, not on any enterprise's timer.
    agencies_read: Option<DateTime<Utc>>,
    /// What the persisted contributions lack of this cache's, written once a timer poll while
    /// this node leads the read models (so a follow writes at most once a second).
    unsaved: Persist,
    /// The snapshot one month earlier being computed in the background, with the rule-set
    /// version it is computed with.
    month_ago_task: Option<(String, tokio::task::JoinHandle<Result<Snapshot, String>>)>,
    /// Every contribution being computed ahead for the next calendar instant.
    prepared: Option<Prepared>,
    /// How long the latest computation of every contribution took (none yet: the persisted
    /// figures were loaded): a calendar instant's is started twice as long (plus
    /// [`PREPARE_MARGIN`]) before it, or [`PREPARE_LEAD_UNKNOWN`] before it.
    last_full: Option<Duration>,
}

/// Every contribution computed ahead at a calendar instant `at` (a year's or half-year's start,
/// a due instant: when every enterprise may change at once), swapped in at `at`; the
/// enterprises events touched since it started are recomputed at now then.
struct Prepared {
    at: DateTime<Utc>,
    version: String,
    /// The computation: every contribution at `at`, the snapshot a month earlier and how long
    /// it took.
    task: tokio::task::JoinHandle<Result<(MetricsCache, Snapshot, Duration), String>>,
    /// The enterprises the log touched since the computation started (`None`: too many to
    /// tell, or an event that names none: everything is recomputed at the swap instead).
    touched: Option<BTreeSet<EnterpriseId>>,
}

impl MetricsWatcher {
    /// Creates a watcher over the application's stores, clock and service.
    pub fn new(app: AppState) -> Self {
        let month_ago = Arc::new(Snapshot {
            at: app.now(),
            towns: Vec::new(),
            city: anquan_projections::metrics::ScopeTallies {
                all: Vec::new(),
                by_breakdown: Vec::new(),
            },
        });
        MetricsWatcher {
            rules: app.rule_sets.active(),
            app,
            cache: MetricsCache::default(),
            month_ago,
            after: None,
            agencies_read: None,
            unsaved: Persist::Every,
            month_ago_task: None,
            prepared: None,
            last_full: None,
        }
    }

    /// Runs until the projections' position channel closes; read failures are logged and retried.
    pub async fn run(mut self) {
        let mut projected = self.app.projected.clone();
        let mut promotions = self.app.rule_sets.subscribe();
        self.rules = Arc::clone(&promotions.borrow_and_update().1);
        loop {
            let applied = *projected.borrow_and_update();
            match self.start(applied).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "metrics cannot load, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // The history of contributions for past instants is kept beside "now", for as long as
        // the watcher runs. It starts once "now" is published: its walk of every enterprise
        // takes both cores for about an hour in a province, and the first figures need not
        // share them.
        let history = tokio::spawn(crate::metrics_history::MetricsHistoryKeeper::new(self.app.clone()).run());
        let _history = AbortOnDrop(history);
        let mut timer = tokio::time::interval(TIMER_POLL);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = projected.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let applied = *projected.borrow_and_update();
                    // The projections catch up with a long log: following every batch would
                    // read every enterprise's file over and over. The first change near the
                    // head follows the whole span at once (one recomputation of everything).
                    if self.catching_up(applied) {
                        continue;
                    }
                    if let Err(error) = self.follow(applied).await {
                        tracing::warn!(error = %error, "metrics update failed");
                    }
                }
                _ = timer.tick() => {
                    if self.catching_up(*projected.borrow()) {
                        continue;
                    }
                    if let Err(error) = self.on_time().await {
                        tracing::warn!(error = %error, "metrics update failed");
                    }
                }
                promoted = promotions.changed() => {
                    // The registry lives in `self.app`: its sender cannot be gone.
                    if promoted.is_err() {
                        return;
                    }
                    self.rules = Arc::clone(&promotions.borrow_and_update().1);
                    if let Some(prepared) = self.prepared.take() {
                        prepared.task.abort();
                    }
                    // Every contribution depends on the rules: recompute them all, even while
                    // the projections catch up, so the cache never mixes two versions.
                    while let Err(error) = self.recompute_all(Announce::Every).await {
                        tracing::warn!(error = %error, "metrics cannot recompute for the promoted rule set, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    tracing::info!(rule_set.version = %self.rules.version, "metrics recomputed with the promoted rule set");
                }
            }
        }
    }

    /// The first figures: the persisted ones when they are usable (then the log after their
    /// position is followed), else one computation of everything.
    async fn start(&mut self, applied: Option<Position>) -> Result<(), String> {
        persist::migrate(self.app.read_models.as_ref())
            .await
            .map_err(|error| error.to_string())?;
        anquan_projections::metrics::history::migrate(self.app.read_models.as_ref())
            .await
            .map_err(|error| error.to_string())?;
        if self.load(applied).await? {
            return self.follow(applied).await;
        }
        self.after = applied;
        self.recompute_all(Announce::Nothing).await
    }

    /// Loads and publishes the persisted contributions when they were computed with the live
    /// rule set from read models this node's have applied (not a rebuilt or restored store
    /// behind them); `false` when there are none or they are not usable.
    async fn load(&mut self, applied: Option<Position>) -> Result<bool, String> {
        let started = std::time::Instant::now();
        let store = self.app.read_models.as_ref();
        let Some(state) = persist::load_state(store).await.map_err(|error| error.to_string())? else {
            return Ok(false);
        };
        let digest = self.app.rule_sets.get(&self.rules.version).map(|loaded| loaded.digest);
        if state.rule_set != self.rules.version || digest.as_deref() != Some(state.rule_set_digest.as_str()) {
            tracing::info!(
                persisted = %state.rule_set,
                live = %self.rules.version,
                "persisted metrics are of another rule set: computing them"
            );
            return Ok(false);
        }
        if applied.is_none_or(|applied| state.position > applied) {
            tracing::info!(
                persisted = ?state.position,
                applied = ?applied,
                "persisted metrics are ahead of the read models: computing them"
            );
            return Ok(false);
        }
        let agencies = agency_facts(store).await.map_err(|error| error.to_string())?;
        self.agencies_read = Some(self.app.now());
        let rules = self.rules.clone();
        let mut cache = MetricsCache::persisted(&rules, agencies, state.at);
        persist::load_contributions(store, |persisted| {
            cache.load(
                &rules,
                persisted.enterprise_id,
                persisted.contribution,
                persisted.next_change,
            );
        })
        .await
        .map_err(|error| error.to_string())?;
        self.cache = cache;
        self.month_ago = Arc::new(state.month_ago);
        self.after = Some(state.position);
        self.unsaved = Persist::These(BTreeSet::new());
        let snapshot = Arc::new(self.cache.snapshot(&rules).ok_or("no snapshot")?);
        tracing::info!(
            enterprises = self.cache.enterprises(),
            at = %state.at,
            position = ?state.position,
            elapsed_ms = started.elapsed().as_millis(),
            "metrics loaded"
        );
        self.app.metrics.publish(
            CurrentMetrics {
                now: snapshot,
                month_ago: self.month_ago.clone(),
                rules,
            },
            BTreeSet::new(),
        );
        Ok(true)
    }

    /// Whether the projections are still far behind the head of the log.
    fn catching_up(&self, applied: Option<Position>) -> bool {
        crate::watcher::projections_catching_up(&self.app, applied)
    }

    /// What time passing asks for: the enterprises whose next change has come are recomputed
    /// at now (all of them at once, when more than [`Self::one_by_one_max`]), the agency
    /// figures at least every [`AGENCIES_REFRESH`], the month-ago snapshot in the background
    /// when its instant is [`MONTH_AGO_STALE`] behind; and a new leader writes every
    /// contribution.
    async fn on_time(&mut self) -> Result<(), String> {
        let now = self.app.now();
        self.collect_month_ago().await;
        self.prepare_calendar(now);
        if self
            .prepared
            .as_ref()
            .is_some_and(|prepared| prepared.at <= now && prepared.task.is_finished())
        {
            return self.swap_prepared(now).await;
        }
        let agencies_stale = self
            .agencies_read
            .is_none_or(|read| read + AGENCIES_REFRESH <= now || read > now);
        if self.cache.next_due().is_some_and(|due| due <= now) || agencies_stale {
            self.recompute_due(now).await?;
        }
        self.persist().await;
        self.start_month_ago(now);
        Ok(())
    }

    /// Recomputes the enterprises due at `now` (and the agency facts) and publishes the towns
    /// that changed.
    async fn recompute_due(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        let due = self.cache.due(now);
        self.recompute(now, due).await
    }

    /// Recomputes `enterprises` at `now` one by one (everything in one pass, when more than
    /// [`Self::one_by_one_max`]), reads the agency facts again and publishes the towns that
    /// changed.
    async fn recompute(&mut self, now: DateTime<Utc>, enterprises: Vec<EnterpriseId>) -> Result<(), String> {
        if enterprises.len() > self.one_by_one_max() {
            return self.recompute_all(Announce::Changed).await;
        }
        let _pass = PassTimer::start(metrics::histogram!(METRICS_WATCHER_PASS_DURATION_SECONDS, "pass" => "due"));
        let rules = self.rules.clone();
        let previous = self.app_current();
        for &enterprise_id in &enterprises {
            let facts = enterprise_facts(self.app.read_models.as_ref(), enterprise_id)
                .await
                .map_err(|error| error.to_string())?;
            self.cache.update_enterprise(
                &rules,
                enterprise_id,
                facts.as_ref().map(|(file, services)| (file, services)),
                now,
            );
        }
        let agencies = agency_facts(self.app.read_models.as_ref())
            .await
            .map_err(|error| error.to_string())?;
        self.cache.update_agencies(agencies, now);
        self.agencies_read = Some(now);
        let snapshot = Arc::new(self.cache.snapshot(&rules).ok_or("no snapshot")?);
        let towns = changed_towns(previous.as_deref(), &snapshot);
        if !enterprises.is_empty() {
            tracing::debug!(
                enterprises = enterprises.len(),
                "metrics of due or touched enterprises recomputed"
            );
        }
        self.app.metrics.publish(
            CurrentMetrics {
                now: snapshot,
                month_ago: self.month_ago.clone(),
                rules,
            },
            towns,
        );
        self.unsaved_too(enterprises);
        Ok(())
    }

    /// Starts computing every contribution at the next calendar instant in the background,
    /// early enough that it is done by then: twice as long before it as the latest full
    /// computation took, plus [`PREPARE_MARGIN`].
    fn prepare_calendar(&mut self, now: DateTime<Utc>) {
        if self.prepared.is_some() {
            return;
        }
        let rules = self.rules.clone();
        let Some(at) = next_calendar_change(&rules.metrics, &rules, now) else {
            return;
        };
        let ahead = chrono::Duration::from_std(prepare_lead(self.last_full)).unwrap_or(chrono::Duration::MAX);
        if now < anquan_domain::bounds::minus(at, ahead) {
            return;
        }
        let month_at = anquan_projections::metrics::month_before(&rules, at);
        let store = self.app.read_models.clone();
        let version = rules.version.clone();
        tracing::info!(%at, "computing the metrics ahead for a calendar instant");
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (cache, month_ago) = compute_streaming(store.as_ref(), rules, at, month_at, CHUNK)
                .await
                .map_err(|error| error.to_string())?;
            Ok((cache, month_ago, started.elapsed()))
        });
        self.prepared = Some(Prepared {
            at,
            version,
            task,
            touched: Some(BTreeSet::new()),
        });
    }

    /// At (or after) a prepared calendar instant: swaps in the contributions computed at it
    /// once they are done and publishes them at once, then recomputes at now the enterprises
    /// events touched meanwhile (their files were read before those events) and those due.
    async fn swap_prepared(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        let Some(prepared) = self.prepared.take() else {
            return Ok(());
        };
        let computed = match prepared.task.await {
            Ok(Ok(computed)) => computed,
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(format!("the metrics computation ahead stopped: {error}")),
        };
        // Computed with a rule set promoted away since (a promotion aborts it; this is the
        // guard): the cache must never mix two versions.
        if prepared.version != self.rules.version {
            return self.recompute_all(Announce::Changed).await;
        }
        let (cache, month_ago, elapsed) = computed;
        self.last_full = Some(elapsed);
        let previous = self.app_current();
        self.cache = cache;
        self.month_ago = Arc::new(month_ago);
        if let Some((_, task)) = self.month_ago_task.take() {
            task.abort();
        }
        let rules = self.rules.clone();
        let snapshot = Arc::new(self.cache.snapshot(&rules).ok_or("no snapshot")?);
        let towns = changed_towns(previous.as_deref(), &snapshot);
        tracing::info!(
            at = %prepared.at,
            late_ms = (now - prepared.at).num_milliseconds(),
            touched = prepared.touched.as_ref().map(BTreeSet::len),
            computed_ms = elapsed.as_millis(),
            "metrics computed ahead swapped in"
        );
        self.app.metrics.publish(
            CurrentMetrics {
                now: snapshot,
                month_ago: self.month_ago.clone(),
                rules,
            },
            towns,
        );
        self.unsaved = Persist::Every;
        match prepared.touched {
            Some(mut touched) => {
                touched.extend(self.cache.due(now));
                self.recompute(now, touched.into_iter().collect()).await?;
                self.persist().await;
                Ok(())
            }
            None => self.recompute_all(Announce::Changed).await,
        }
    }

    /// Notes enterprises the log touched while contributions are computed ahead.
    fn touched(&mut self, enterprises: Option<&BTreeSet<EnterpriseId>>) {
        let max = self.one_by_one_max();
        let Some(prepared) = &mut self.prepared else {
            return;
        };
        match (&mut prepared.touched, enterprises) {
            (Some(touched), Some(enterprises)) => {
                touched.extend(enterprises);
                if touched.len() > max {
                    prepared.touched = None;
                }
            }
            (touched, _) => *touched = None,
        }
    }

    /// Starts computing the snapshot one month before now in the background when the one held
    /// is [`MONTH_AGO_STALE`] behind (its instant is a past one: it never holds "now" back).
    fn start_month_ago(&mut self, now: DateTime<Utc>) {
        if self.month_ago_task.is_some() {
            return;
        }
        let rules = self.rules.clone();
        let month_at = anquan_projections::metrics::month_before(&rules, now);
        let held = self.month_ago.at;
        if held <= month_at && month_at - held < MONTH_AGO_STALE || held > month_at && held - month_at < MONTH_AGO_STALE
        {
            return;
        }
        let store = self.app.read_models.clone();
        let version = rules.version.clone();
        let task = tokio::spawn(async move {
            let mut snapshots = snapshots_streaming(store.as_ref(), rules, &[month_at], CHUNK)
                .await
                .map_err(|error| error.to_string())?;
            snapshots.pop().ok_or_else(|| "no snapshot".to_owned())
        });
        self.month_ago_task = Some((version, task));
    }

    /// Takes the month-ago snapshot computed in the background, once it is done, and publishes
    /// it with "now".
    async fn collect_month_ago(&mut self) {
        if !self.month_ago_task.as_ref().is_some_and(|(_, task)| task.is_finished()) {
            return;
        }
        let Some((version, task)) = self.month_ago_task.take() else {
            return;
        };
        let month_ago = match task.await {
            Ok(Ok(month_ago)) => month_ago,
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "the month-ago metrics could not be computed");
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, "the month-ago metrics computation stopped");
                return;
            }
        };
        // Computed with a rule set promoted away since: the full computation of the promotion
        // has its own.
        if version != self.rules.version {
            return;
        }
        let mut towns = changed_towns(Some(&self.month_ago), &month_ago);
        self.month_ago = Arc::new(month_ago);
        let Some(current) = self.app.metrics.current() else {
            return;
        };
        if !Arc::ptr_eq(&current.rules, &self.rules) {
            towns.clear();
        }
        self.app.metrics.publish(
            CurrentMetrics {
                month_ago: self.month_ago.clone(),
                ..current
            },
            towns,
        );
    }

    /// Notes contributions the persisted ones lack.
    fn unsaved_too(&mut self, changed: impl IntoIterator<Item = EnterpriseId>) {
        if let Persist::These(unsaved) = &mut self.unsaved {
            unsaved.extend(changed);
        }
    }

    /// Writes the contributions the persisted ones lack to the read-model store, with the log
    /// position they reflect, on the read models' leader only (fenced by its term). A failed
    /// write changes nothing and is tried again at the next timer poll.
    async fn persist(&mut self) {
        if matches!(&self.unsaved, Persist::These(unsaved) if unsaved.is_empty()) {
            return;
        }
        let Some(term) = self.app.projections.leading() else {
            return;
        };
        let Some(position) = self.after else {
            return;
        };
        let Some(at) = self.cache.at() else {
            return;
        };
        let Some(digest) = self.app.rule_sets.get(&self.rules.version).map(|loaded| loaded.digest) else {
            return;
        };
        let started = std::time::Instant::now();
        let state = persist::PersistedState {
            rule_set: self.rules.version.clone(),
            rule_set_digest: digest,
            at,
            position,
            month_ago: (*self.month_ago).clone(),
        };
        let lease = Some(anquan_event_store::LeaseTerm {
            group: anquan_projections::leadership::READ_MODELS_GROUP.to_owned(),
            term,
        });
        let cache = &self.cache;
        let (write, every) = match &self.unsaved {
            Persist::Every => (persist::Write::every(cache), true),
            Persist::These(changed) => (
                persist::Write::These(
                    changed
                        .iter()
                        .map(|&enterprise_id| {
                            let row = persist::PersistedContributionRef::owned((
                                enterprise_id,
                                cache.contribution(enterprise_id),
                                cache.next_change_of(enterprise_id),
                            ));
                            let known = row.contribution.is_some() || row.next_change.is_some();
                            (enterprise_id, known.then_some(row))
                        })
                        .collect(),
                ),
                false,
            ),
        };
        match persist::save(self.app.read_models.as_ref(), &state, write, lease).await {
            Ok(()) => {
                self.unsaved = Persist::These(BTreeSet::new());
                if every {
                    tracing::info!(
                        enterprises = self.cache.enterprises(),
                        elapsed_ms = started.elapsed().as_millis(),
                        "metrics persisted"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "metrics could not be persisted; trying again");
            }
        }
    }

    async fn recompute_all(&mut self, announce: Announce) -> Result<(), String> {
        let _pass = PassTimer::start(metrics::histogram!(METRICS_WATCHER_PASS_DURATION_SECONDS, "pass" => "full"));
        let started = std::time::Instant::now();
        let now = self.app.now();
        let rules = self.rules.clone();
        let month_at = anquan_projections::metrics::month_before(&rules, now);
        let (cache, month_ago) = compute_streaming(self.app.read_models.as_ref(), rules.clone(), now, month_at, CHUNK)
            .await
            .map_err(|error| error.to_string())?;
        let previous = self.app_current();
        self.cache = cache;
        self.agencies_read = Some(now);
        self.month_ago = Arc::new(month_ago);
        // A month-ago snapshot being computed for the previous cache is superseded.
        if let Some((_, task)) = self.month_ago_task.take() {
            task.abort();
        }
        let snapshot = Arc::new(self.cache.snapshot(&rules).ok_or("no snapshot")?);
        let towns = match announce {
            Announce::Nothing => BTreeSet::new(),
            Announce::Changed => changed_towns(previous.as_deref(), &snapshot),
            Announce::Every => std::iter::once(None)
                .chain(snapshot.towns.iter().map(|(town, _)| Some(town.clone())))
                .collect(),
        };
        let elapsed = started.elapsed();
        self.last_full = Some(elapsed);
        tracing::info!(
            enterprises = self.cache.enterprises(),
            elapsed_ms = elapsed.as_millis(),
            "metrics recomputed"
        );
        self.app.metrics.publish(
            CurrentMetrics {
                now: snapshot,
                month_ago: self.month_ago.clone(),
                rules,
            },
            towns,
        );
        self.unsaved = Persist::Every;
        self.persist().await;
        Ok(())
    }

    fn app_current(&self) -> Option<Arc<Snapshot>> {
        self.app.metrics.current().map(|current| current.now)
    }

    /// How many enterprises are recomputed one by one before one pass over every file costs
    /// less: a share of the city, and at least [`FOLLOW_ENTERPRISES_MAX`].
    fn one_by_one_max(&self) -> usize {
        one_by_one_max(self.cache.enterprises())
    }

    /// Recomputes the enterprises (and agencies) whose events were applied up to `applied`
    /// (a contract's termination names the contract only: its enterprise is read from the agency
    /// read model), or everything when more than [`Self::one_by_one_max`] enterprises changed.
    async fn follow(&mut self, applied: Option<Position>) -> Result<(), String> {
        let Some(applied) = applied else {
            return Ok(());
        };
        // A follow that turns into a full pass is timed as that full pass only.
        let pass = PassTimer::start(metrics::histogram!(METRICS_WATCHER_PASS_DURATION_SECONDS, "pass" => "follow"));
        let mut touched = Touched::default();
        // The position moves only once the span's enterprises are recomputed: a failed read or
        // recomputation leaves it where the next follow reads the span again.
        let (after, too_many) = touched
            .read_span(&self.app, self.after, applied, self.one_by_one_max())
            .await
            .map_err(|error| error.to_string())?;
        // Too many, or one that cannot be named (a contract the read models lack: they hold at
        // least `applied`, so it should be there): everything is recomputed from the read
        // models, which hold at least `applied`, so the rest of the span need not be read.
        let every = too_many
            || touched
                .names_every(&self.app)
                .await
                .map_err(|error| error.to_string())?;
        if every {
            self.touched(None);
            self.after = Some(applied);
            pass.discard();
            return self.recompute_all(Announce::Changed).await;
        }
        let Touched {
            enterprises, agencies, ..
        } = touched;
        if enterprises.is_empty() && !agencies {
            self.after = after;
            return Ok(());
        }
        let now = self.app.now();
        let rules = self.rules.clone();
        let mut towns = BTreeSet::new();
        self.touched(Some(&enterprises));
        let changed: Vec<EnterpriseId> = enterprises.iter().copied().collect();
        for enterprise_id in enterprises {
            let facts = enterprise_facts(self.app.read_models.as_ref(), enterprise_id)
                .await
                .map_err(|error| error.to_string())?;
            let (town_before, town_after) = self.cache.update_enterprise(
                &rules,
                enterprise_id,
                facts.as_ref().map(|(file, services)| (file, services)),
                now,
            );
            towns.extend([town_before, town_after].into_iter().flatten().map(Some));
        }
        if agencies {
            let facts = agency_facts(self.app.read_models.as_ref())
                .await
                .map_err(|error| error.to_string())?;
            self.cache.update_agencies(facts, now);
            self.agencies_read = Some(now);
        }
        towns.insert(None);
        let snapshot = Arc::new(self.cache.snapshot(&rules).ok_or("no snapshot")?);
        self.app.metrics.publish(
            CurrentMetrics {
                now: snapshot,
                month_ago: self.month_ago.clone(),
                rules,
            },
            towns,
        );
        self.unsaved_too(changed);
        self.after = after;
        Ok(())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a span of the log touched, as far as the metrics go: the enterprises whose facts
/// changed, whether any agency's did, and contracts terminated (named by contract only until
/// [`Touched::names_every`] finds their enterprise).
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub(crate) enterprises: BTreeSet<EnterpriseId>,
    pub(crate) agencies: bool,
    terminated: Vec<(AgencyId, ContractId)>,
    /// An event that names no enterprise it may change: everything must be recomputed.
    force_all: bool,
}

impl Touched {
    /// How many enterprises (and contracts) it names.
    pub(crate) fn len(&self) -> usize {
        self.enterprises.len() + self.terminated.len()
    }

    /// Reads one page of the log after `after` and notes what its events up to `applied`
    /// touch; returns the position of the page's last event (`None`: the log ends at `after`).
    pub(crate) async fn read_page(
        &mut self,
        app: &AppState,
        after: Option<Position>,
        applied: Position,
        page: usize,
    ) -> Result<Option<Position>, anquan_event_store::StoreError> {
        let page = app.event_store.read_all(after, page).await?;
        let Some(last) = page.last().map(|event| event.position) else {
            return Ok(None);
        };
        for recorded in page.iter().filter(|event| event.position <= applied) {
            if let Some(id) = recorded.stream_id.as_str().strip_prefix("enterprise-") {
                if let Ok(enterprise_id) = id.parse() {
                    self.enterprises.insert(enterprise_id);
                }
            } else if recorded.stream_id.as_str().starts_with("agency-") {
                self.agencies = true;
                match recorded.decode() {
                    Ok(Event::ContractSigned(e)) => {
                        self.enterprises.insert(e.enterprise_id);
                    }
                    // Only a filed contract is a metric's fact; proposing, confirming and
                    // rejecting change no metric.
                    Ok(Event::ContractFiled(e)) => {
                        self.enterprises.insert(e.enterprise_id);
                    }
                    Ok(Event::ServiceReported(e)) => {
                        self.enterprises.insert(e.enterprise_id);
                    }
                    Ok(Event::ServiceRated(e)) => {
                        self.enterprises.insert(e.enterprise_id);
                    }
                    Ok(Event::ContractTerminated(e)) => {
                        // Contract ids are unique only within their agency's stream.
                        match recorded.stream_id.as_str().strip_prefix("agency-").map(str::parse) {
                            Some(Ok(agency_id)) => self.terminated.push((agency_id, e.contract_id)),
                            _ => self.force_all = true,
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(last))
    }

    /// Reads the log after `after` through `applied` a page at a time, noting what it touches,
    /// and stops early once it names more than `enterprises_max` enterprises; returns the
    /// position read through (`after` when the log holds nothing more) and whether it stopped
    /// early.
    pub(crate) async fn read_span(
        &mut self,
        app: &AppState,
        mut after: Option<Position>,
        applied: Position,
        enterprises_max: usize,
    ) -> Result<(Option<Position>, bool), anquan_event_store::StoreError> {
        while after.is_none_or(|after| after < applied) {
            let Some(last) = self.read_page(app, after, applied, LOG_PAGE).await? else {
                break;
            };
            after = Some(last.min(applied));
            if self.len() > enterprises_max {
                return Ok((after, true));
            }
        }
        Ok((after, false))
    }

    /// Whether the span must be taken as touching every enterprise: an event in it names none
    /// it may change, or a terminated contract's enterprise is missing from the agency read
    /// model. Otherwise each terminated contract's enterprise is added to those it touched.
    pub(crate) async fn names_every(&mut self, app: &AppState) -> Result<bool, QueryError> {
        if self.force_all {
            return Ok(true);
        }
        for (agency_id, contract_id) in std::mem::take(&mut self.terminated) {
            match anquan_projections::agency::contract(app.read_models.as_ref(), agency_id, contract_id).await? {
                Some(contract) => {
                    self.enterprises.insert(contract.enterprise_id);
                }
                None => return Ok(true),
            }
        }
        Ok(false)
    }
}

/// How long before a calendar instant its figures start being computed ahead: twice as long as
/// the latest computation of everything took, plus [`PREPARE_MARGIN`]; before this process has
/// timed one, [`PREPARE_LEAD_UNKNOWN`] (a restart that loaded the persisted figures would
/// otherwise start 10 s before an instant whose pass takes minutes, and show it that late).
fn prepare_lead(last_full: Option<Duration>) -> Duration {
    last_full.map_or(PREPARE_LEAD_UNKNOWN, |took| {
        took.saturating_mul(2).saturating_add(PREPARE_MARGIN)
    })
}

/// How many of a city's `enterprises` are recomputed one by one before one pass over every
/// file costs less (a follow, the due ones, those touched while the figures at a calendar instant
/// were computed ahead): a fixed share, and at least [`FOLLOW_ENTERPRISES_MAX`]. A fixed count
/// tuned in one city made a province (321,200 enterprises) run a pass of minutes for a few
/// hundred uploads.
fn one_by_one_max(enterprises: usize) -> usize {
    (enterprises / ONE_BY_ONE_SHARE).max(FOLLOW_ENTERPRISES_MAX)
}

/// The towns whose tallies differ between two snapshots (`None`: the city).
fn changed_towns(previous: Option<&Snapshot>, next: &Snapshot) -> BTreeSet<Option<Town>> {
    let mut towns = BTreeSet::new();
    let Some(previous) = previous else {
        return towns;
    };
    if previous.city != next.city {
        towns.insert(None);
    }
    for (town, tallies) in &next.towns {
        if previous.town(town) != Some(tallies) {
            towns.insert(Some(town.clone()));
        }
    }
    towns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn computed_with(rules: Arc<RuleSet>) -> CurrentMetrics {
        let empty = Arc::new(Snapshot {
            at: Utc::now(),
            towns: Vec::new(),
            city: anquan_projections::metrics::ScopeTallies {
                all: Vec::new(),
                by_breakdown: Vec::new(),
            },
        });
        CurrentMetrics {
            now: empty.clone(),
            month_ago: empty,
            rules,
        }
    }

    #[test]
    fn a_calendar_instant_is_prepared_ahead_by_the_timed_pass_or_generously_before_one() {
        assert_eq!(prepare_lead(None), PREPARE_LEAD_UNKNOWN);
        assert_eq!(
            prepare_lead(Some(Duration::from_secs(300))),
            Duration::from_secs(600) + PREPARE_MARGIN
        );
        assert_eq!(prepare_lead(Some(Duration::MAX)), Duration::MAX);
        // Longer than twice any pass this machine has run (361 s at scale 100, beside the
        // history's walk: BENCHMARKS.md).
        assert!(PREPARE_LEAD_UNKNOWN >= Duration::from_secs(2 * 361) + PREPARE_MARGIN);
    }

    #[test]
    fn enterprises_recomputed_one_by_one_grow_with_the_city() {
        assert_eq!(one_by_one_max(0), FOLLOW_ENTERPRISES_MAX);
        assert_eq!(one_by_one_max(3_212), FOLLOW_ENTERPRISES_MAX);
        assert_eq!(one_by_one_max(321_200), 24_707);
    }

    #[tokio::test]
    async fn a_request_waits_for_the_first_computation_with_its_rule_set_and_no_longer() {
        let service = MetricsService::default();
        let rules = Arc::new(anquan_domain::rules::builtin_v1().unwrap());
        let short = Duration::from_millis(50);
        assert!(service.current_with("v1", short).await.is_none());

        let publisher = service.clone();
        let published = rules.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            publisher.publish(computed_with(published), BTreeSet::new());
        });
        let current = service.current_with("v1", Duration::from_secs(10)).await;
        assert_eq!(
            current.map(|current| current.rules.version.clone()),
            Some("v1".to_owned())
        );
        // Figures of another version are not what a request under v2 waits for.
        assert!(service.current_with("v2", short).await.is_none());
    }
}
