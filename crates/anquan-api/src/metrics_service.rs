//! The town statistics service: keeps the 78 metrics of every town and the city for "now" in
//! memory (an [`anquan_projections::metrics::MetricsCache`]), replaces an enterprise's
//! contribution when the projections apply its events, recomputes everything as time passes,
//! and tells subscribers which towns changed. Past instants (`asOf`) are computed from the
//! read models on demand, a chunk of files at a time, and kept for the requests that ask for the
//! same instants again before the read models move (the root fields of one request ask in turn).
//!
//! While the projections catch up with a long log, the watcher does not follow them batch by
//! batch: it waits until they are near the head and recomputes everything once.
//!
//! The cache is computed with the live rule set. When a promotion switches it, the watcher
//! recomputes everything with the new version and tells subscribers of every town and the city.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use tokio::sync::{broadcast, watch};

use anquan_domain::rules::RuleSet;
use anquan_domain::{EnterpriseId, Event, Town};
use anquan_event_store::Position;
use anquan_projections::QueryError;
use anquan_projections::metrics::{
    CHUNK, MetricsCache, Snapshot, agency_facts, compute_streaming, enterprise_facts, snapshots_streaming,
};

use crate::AppState;
use crate::observability::{METRICS_WATCHER_PASS_DURATION_SECONDS, PassTimer};

/// How often everything is recomputed as time passes (windows, validity, deadlines), at most.
pub const METRICS_REFRESH: Duration = Duration::from_secs(60);
/// The pause after a recomputation of everything is at least this many times as long as the
/// recomputation took: it keeps at most a sixth of a core busy. A city's recomputation takes a
/// few seconds and refreshes every minute; a province's takes minutes and refreshes less often,
/// instead of recomputing back to back.
const REFRESH_PAUSE_PER_BUSY: u32 = 5;
/// Events read per page while following the log.
const LOG_PAGE: usize = 500;
/// How many change notices a slow subscriber may fall behind.
const CHANGES_CAPACITY: usize = 256;
/// A follow that touches more enterprises than this recomputes everything instead: one pass
/// over every file a chunk at a time costs less than this many files read one by one.
const FOLLOW_ENTERPRISES_MAX: usize = 250;
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

impl PartialEq for PastKey {
    fn eq(&self, other: &Self) -> bool {
        self.instants == other.instants && Arc::ptr_eq(&self.rules, &other.rules) && self.applied == other.applied
    }
}

/// One past-instant computation: computed once by the first caller, awaited by the others.
type PastCell = Arc<tokio::sync::OnceCell<Vec<Arc<Snapshot>>>>;

struct PastEntry {
    key: PastKey,
    cell: PastCell,
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

    /// The cell of the computation for `key`, shared with any caller that asked for the same
    /// key; entries computed for another applied position can never be asked for again.
    fn past_cell(&self, key: PastKey) -> PastCell {
        let mut past = self.past.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = past.iter().find(|entry| entry.key == key) {
            return entry.cell.clone();
        }
        past.retain(|entry| entry.key.applied == key.applied);
        while past.len() >= PAST_KEPT {
            past.pop_front();
        }
        let cell = PastCell::default();
        past.push_back(PastEntry {
            key,
            cell: cell.clone(),
        });
        cell
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

/// One local month before `at` (the same wall-clock instant, clamped to the month's end).
pub fn month_before(app: &AppState, at: DateTime<Utc>) -> DateTime<Utc> {
    let local = at.with_timezone(&app.rules.time_zone);
    local.checked_sub_months(Months::new(1)).map_or(
        anquan_domain::bounds::minus(at, chrono::Duration::days(30)),
        |earlier| earlier.to_utc(),
    )
}

/// Computes the metrics at past (or any) instants from the read models, in one pass over the
/// files a chunk at a time. The result is shared with every caller asking for the same instants
/// with the same rules before the read models move: the root fields of one request (e.g.
/// `allTownMetrics` and `cityMetrics` with the same `asOf`) compute it once.
pub async fn snapshots_at(app: &AppState, instants: &[DateTime<Utc>]) -> Result<Vec<Arc<Snapshot>>, QueryError> {
    let key = PastKey {
        instants: instants.to_vec(),
        rules: app.rules.clone(),
        applied: *app.projected.borrow(),
    };
    let cell = app.metrics.past_cell(key);
    cell.get_or_try_init(|| async {
        snapshots_streaming(app.read_models.as_ref(), app.rules.clone(), instants, CHUNK)
            .await
            .map(|snapshots| snapshots.into_iter().map(Arc::new).collect())
    })
    .await
    .cloned()
}

/// The pause before the next recomputation of everything, after one that took `took`.
fn refresh_pause(took: Duration) -> Duration {
    METRICS_REFRESH.max(took.saturating_mul(REFRESH_PAUSE_PER_BUSY))
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

/// Follows the projections, the clock and rule-set promotions; see the module documentation.
pub struct MetricsWatcher {
    app: AppState,
    /// The rule set the cache is computed with: the live one, switched at a promotion.
    rules: Arc<RuleSet>,
    cache: MetricsCache,
    month_ago: Arc<Snapshot>,
    after: Option<Position>,
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
        }
    }

    /// Runs until the projections' position channel closes; read failures are logged and retried.
    pub async fn run(mut self) {
        let mut projected = self.app.projected.clone();
        let mut promotions = self.app.rule_sets.subscribe();
        self.rules = Arc::clone(&promotions.borrow_and_update().1);
        let mut refresh_every = loop {
            self.after = *projected.borrow_and_update();
            let started = std::time::Instant::now();
            match self.recompute_all(Announce::Nothing).await {
                Ok(()) => break refresh_pause(started.elapsed()),
                Err(error) => {
                    tracing::warn!(error = %error, "metrics cannot load, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut last_full = std::time::Instant::now();
        loop {
            let until_refresh = refresh_every.saturating_sub(last_full.elapsed());
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
                () = tokio::time::sleep(until_refresh) => {
                    last_full = std::time::Instant::now();
                    if self.catching_up(*projected.borrow()) {
                        continue;
                    }
                    match self.recompute_all(Announce::Changed).await {
                        Ok(()) => refresh_every = refresh_pause(last_full.elapsed()),
                        Err(error) => tracing::warn!(error = %error, "metrics refresh failed"),
                    }
                    last_full = std::time::Instant::now();
                }
                promoted = promotions.changed() => {
                    // The registry lives in `self.app`: its sender cannot be gone.
                    if promoted.is_err() {
                        return;
                    }
                    self.rules = Arc::clone(&promotions.borrow_and_update().1);
                    // Every contribution depends on the rules: recompute them all, even while
                    // the projections catch up, so the cache never mixes two versions.
                    while let Err(error) = self.recompute_all(Announce::Every).await {
                        tracing::warn!(error = %error, "metrics cannot recompute for the promoted rule set, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    tracing::info!(rule_set.version = %self.rules.version, "metrics recomputed with the promoted rule set");
                    last_full = std::time::Instant::now();
                }
            }
        }
    }

    /// Whether the projections are still far behind the head of the log.
    fn catching_up(&self, applied: Option<Position>) -> bool {
        crate::watcher::projections_catching_up(&self.app, applied)
    }

    async fn recompute_all(&mut self, announce: Announce) -> Result<(), String> {
        let _pass = PassTimer::start(metrics::histogram!(METRICS_WATCHER_PASS_DURATION_SECONDS, "pass" => "full"));
        let started = std::time::Instant::now();
        let now = self.app.now();
        let rules = self.rules.clone();
        let month_at = month_before(
            &AppState {
                rules: rules.clone(),
                ..self.app.clone()
            },
            now,
        );
        let (cache, month_ago) = compute_streaming(self.app.read_models.as_ref(), rules.clone(), now, month_at, CHUNK)
            .await
            .map_err(|error| error.to_string())?;
        let previous = self.app_current();
        self.cache = cache;
        self.month_ago = Arc::new(month_ago);
        let snapshot = Arc::new(self.cache.snapshot(&rules).ok_or("no snapshot")?);
        let towns = match announce {
            Announce::Nothing => BTreeSet::new(),
            Announce::Changed => changed_towns(previous.as_deref(), &snapshot),
            Announce::Every => std::iter::once(None)
                .chain(snapshot.towns.iter().map(|(town, _)| Some(town.clone())))
                .collect(),
        };
        tracing::info!(
            enterprises = self.cache.enterprises(),
            elapsed_ms = started.elapsed().as_millis(),
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
        Ok(())
    }

    fn app_current(&self) -> Option<Arc<Snapshot>> {
        self.app.metrics.current().map(|current| current.now)
    }

    /// Recomputes the enterprises (and agencies) whose events were applied up to `applied`
    /// (a contract's termination names the contract only: its enterprise is read from the agency
    /// read model), or everything when more than [`FOLLOW_ENTERPRISES_MAX`] enterprises changed.
    async fn follow(&mut self, applied: Option<Position>) -> Result<(), String> {
        let Some(applied) = applied else {
            return Ok(());
        };
        // A follow that turns into a full pass is timed as that full pass only.
        let pass = PassTimer::start(metrics::histogram!(METRICS_WATCHER_PASS_DURATION_SECONDS, "pass" => "follow"));
        let mut enterprises: BTreeSet<EnterpriseId> = BTreeSet::new();
        let mut agencies = false;
        let mut terminated = Vec::new();
        let mut force_all = false;
        while self.after.is_none_or(|after| after < applied) {
            let page = self
                .app
                .event_store
                .read_all(self.after, LOG_PAGE)
                .await
                .map_err(|error| error.to_string())?;
            let Some(last) = page.last().map(|event| event.position) else {
                break;
            };
            for recorded in page.iter().filter(|event| event.position <= applied) {
                if let Some(id) = recorded.stream_id.as_str().strip_prefix("enterprise-") {
                    if let Ok(enterprise_id) = id.parse() {
                        enterprises.insert(enterprise_id);
                    }
                } else if recorded.stream_id.as_str().starts_with("agency-") {
                    agencies = true;
                    match recorded.decode() {
                        Ok(Event::ContractSigned(e)) => {
                            enterprises.insert(e.enterprise_id);
                        }
                        // Only a filed contract is a metric's fact; proposing, confirming and
                        // rejecting change no metric.
                        Ok(Event::ContractFiled(e)) => {
                            enterprises.insert(e.enterprise_id);
                        }
                        Ok(Event::ServiceReported(e)) => {
                            enterprises.insert(e.enterprise_id);
                        }
                        Ok(Event::ServiceRated(e)) => {
                            enterprises.insert(e.enterprise_id);
                        }
                        Ok(Event::ContractTerminated(e)) => {
                            // Contract ids are unique only within their agency's stream.
                            match recorded.stream_id.as_str().strip_prefix("agency-").map(str::parse) {
                                Some(Ok(agency_id)) => terminated.push((agency_id, e.contract_id)),
                                _ => force_all = true,
                            }
                        }
                        _ => {}
                    }
                }
            }
            self.after = Some(last.min(applied));
            if enterprises.len() + terminated.len() > FOLLOW_ENTERPRISES_MAX {
                // Everything is recomputed from the read models, which hold at least `applied`:
                // the rest of the span need not be read.
                self.after = Some(applied);
                pass.discard();
                return self.recompute_all(Announce::Changed).await;
            }
            if last >= applied {
                break;
            }
        }
        if force_all {
            self.after = Some(applied);
            pass.discard();
            return self.recompute_all(Announce::Changed).await;
        }
        for (agency_id, contract_id) in terminated {
            let contract = anquan_projections::agency::contract(self.app.read_models.as_ref(), agency_id, contract_id)
                .await
                .map_err(|error| error.to_string())?;
            match contract {
                Some(contract) => {
                    enterprises.insert(contract.enterprise_id);
                }
                // The read models hold at least `applied`, so the contract is there; if it is
                // not, recompute everything rather than miss its enterprise.
                None => {
                    self.after = Some(applied);
                    pass.discard();
                    return self.recompute_all(Announce::Changed).await;
                }
            }
        }
        if enterprises.is_empty() && !agencies {
            return Ok(());
        }
        let now = self.app.now();
        let rules = self.rules.clone();
        let mut towns = BTreeSet::new();
        for enterprise_id in enterprises {
            let facts = enterprise_facts(self.app.read_models.as_ref(), enterprise_id)
                .await
                .map_err(|error| error.to_string())?;
            let (before, after) = self.cache.update_enterprise(
                &rules,
                enterprise_id,
                facts.as_ref().map(|(file, services)| (file, services)),
                now,
            );
            towns.extend([before, after].into_iter().flatten().map(Some));
        }
        if agencies {
            let facts = agency_facts(self.app.read_models.as_ref())
                .await
                .map_err(|error| error.to_string())?;
            self.cache.update_agencies(facts, now);
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
        Ok(())
    }
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

    #[test]
    fn a_quick_recomputation_refreshes_every_minute_and_a_slow_one_keeps_a_core_mostly_free() {
        assert_eq!(refresh_pause(Duration::from_millis(300)), METRICS_REFRESH);
        assert_eq!(refresh_pause(Duration::from_secs(12)), METRICS_REFRESH);
        assert_eq!(refresh_pause(Duration::from_secs(100)), Duration::from_secs(500));
    }
}
