//! Town and city statistics: the 78 metrics of the rule set's catalogue for every town and the
//! city, at any instant, with breakdowns by enterprise type.
//!
//! There is no read model of its own (the API's metrics watcher persists its contributions
//! for "now" beside the read models: [`persist`]): the figures are sums of per-enterprise contributions
//! (`anquan_domain::metrics::enterprise_contribution`) computed from the facts the compliance
//! and agency read models keep, plus the city-wide agency figures. [`snapshots_streaming`]
//! sums them at any instants (past instants: what `asOf` asks) reading the files a chunk at a
//! time; [`load_facts`] and [`Snapshot::compute`] do the same over facts held whole (tests).
//! [`MetricsCache`] keeps each enterprise's contribution and the sums in memory so "now" is
//! served without reading the store: the API replaces an enterprise's contribution when its
//! facts change, and its timer index names the enterprises whose contribution may have changed
//! as time passed ([`MetricsCache::due`]); [`compute_streaming`] fills it at start.
//! [`history`] keeps each enterprise's contribution over time, so a past instant is a lookup of
//! one row per enterprise instead of an evaluation of every file.

pub mod compact;
pub mod days;
pub mod history;
mod load;
pub mod persist;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::metrics::{
    AgencyFacts, Contribution, ServiceFacts, Tally, agency_tallies, enterprise_contribution, next_change,
};
use anquan_domain::rules::RuleSet;
use anquan_domain::{EnterpriseId, Instant, Town};

pub use load::{CHUNK, agency_facts, enterprise_facts, load_facts};

/// Creates tables the metrics derive beside the read models, from their DDL in the store's
/// dialect (idempotent).
async fn migrate_ddl(
    store: &dyn anquan_event_store::ReadModelStore,
    sqlite: &str,
    postgres: &str,
) -> Result<(), anquan_event_store::ReadModelError> {
    store
        .migrate(match store.dialect() {
            anquan_event_store::Dialect::Sqlite => sqlite,
            anquan_event_store::Dialect::Postgres => postgres,
        })
        .await
}

/// Deletes every row of derived `tables` (in creation order: deleted in reverse) with their
/// checkpoint `projection`.
async fn clear_tables(
    store: &dyn anquan_event_store::ReadModelStore,
    projection: &str,
    tables: &[&str],
) -> Result<(), anquan_event_store::ReadModelError> {
    let deletes = tables
        .iter()
        .rev()
        .map(|table| anquan_event_store::Statement::new(format!("DELETE FROM {table}"), Vec::new()))
        .collect();
    store.reset(projection, deletes).await
}

/// Everything the metrics are computed from, as the read models hold it.
#[derive(Debug, Clone, Default)]
pub struct MetricFacts {
    pub files: BTreeMap<EnterpriseId, EnterpriseFile>,
    pub services: HashMap<EnterpriseId, ServiceFacts>,
    pub agencies: Vec<AgencyFacts>,
}

/// The tallies of one scope (a town or the city): every metric over all its enterprises, and
/// over the enterprises of each breakdown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScopeTallies {
    pub all: Vec<Tally>,
    /// By breakdown index of the catalogue.
    pub by_breakdown: Vec<Vec<Tally>>,
}

impl ScopeTallies {
    fn new(metrics: usize, breakdowns: usize) -> Self {
        ScopeTallies {
            all: vec![Tally::default(); metrics],
            by_breakdown: vec![vec![Tally::default(); metrics]; breakdowns],
        }
    }

    fn apply(&mut self, contribution: &Contribution, add: bool) {
        let apply = |tallies: &mut Vec<Tally>| {
            for (tally, (numerator, denominator)) in tallies.iter_mut().zip(&contribution.tallies) {
                let part = Tally {
                    numerator: *numerator,
                    denominator: *denominator,
                    parts: [0; 4],
                };
                if add {
                    tally.add(&part);
                } else {
                    tally.subtract(&part);
                }
            }
            for (index, parts) in &contribution.parts {
                if let Some(tally) = tallies.get_mut(usize::from(*index)) {
                    let part = Tally {
                        numerator: 0,
                        denominator: 0,
                        parts: *parts,
                    };
                    if add {
                        tally.add(&part);
                    } else {
                        tally.subtract(&part);
                    }
                }
            }
        };
        apply(&mut self.all);
        for (index, tallies) in self.by_breakdown.iter_mut().enumerate() {
            if contribution.breakdowns & (1 << index) != 0 {
                apply(tallies);
            }
        }
    }

    /// Combines each tally with the same of another scope's.
    fn combine(&mut self, other: &ScopeTallies, combine: impl Fn(&mut Tally, &Tally)) {
        let lists =
            std::iter::once((&mut self.all, &other.all)).chain(self.by_breakdown.iter_mut().zip(&other.by_breakdown));
        for (list, others) in lists {
            for (tally, other) in list.iter_mut().zip(others) {
                combine(tally, other);
            }
        }
    }

    /// What was added from `before` to these tallies (each tally less the same of `before`).
    fn minus(&self, before: &ScopeTallies) -> ScopeTallies {
        let mut difference = self.clone();
        difference.combine(before, Tally::subtract);
        difference
    }

    /// The tallies of a breakdown (`None`: all enterprises).
    pub fn tallies(&self, breakdown: Option<usize>) -> Option<&[Tally]> {
        match breakdown {
            None => Some(&self.all),
            Some(index) => self.by_breakdown.get(index).map(Vec::as_slice),
        }
    }
}

/// The metrics of every town and the city at one instant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub at: Instant,
    /// Towns in the catalogue's order, then any other town with enterprises, by name.
    pub towns: Vec<(Town, ScopeTallies)>,
    pub city: ScopeTallies,
}

impl Snapshot {
    /// Computes every metric at `at` from the facts.
    pub fn compute(rules: &RuleSet, facts: &MetricFacts, at: Instant) -> Snapshot {
        let empty = ServiceFacts::default();
        let contributions = facts.files.iter().filter_map(|(enterprise_id, file)| {
            let services = facts.services.get(enterprise_id).unwrap_or(&empty);
            enterprise_contribution(&rules.metrics, rules, file, services, at)
        });
        Snapshot::from_contributions(rules, contributions, &facts.agencies, at)
    }

    /// Sums contributions (and the agency figures) into a snapshot at `at`.
    pub fn from_contributions(
        rules: &RuleSet,
        contributions: impl IntoIterator<Item = impl std::borrow::Borrow<Contribution>>,
        agencies: &[AgencyFacts],
        at: Instant,
    ) -> Snapshot {
        let mut sums = Sums::new(rules);
        for contribution in contributions {
            sums.apply(rules, contribution.borrow(), true);
        }
        sums.snapshot(rules, agencies, at)
    }

    /// The tallies of a town.
    pub fn town(&self, town: &Town) -> Option<&ScopeTallies> {
        self.towns
            .iter()
            .find(|(name, _)| name == town)
            .map(|(_, tallies)| tallies)
    }
}

/// Running sums of contributions per town and for the city.
#[derive(Debug, Clone, Default)]
struct Sums {
    towns: BTreeMap<Town, ScopeTallies>,
    city: Option<ScopeTallies>,
}

impl Sums {
    fn new(rules: &RuleSet) -> Sums {
        let catalogue = &rules.metrics;
        let (metrics, breakdowns) = (catalogue.metrics.len(), catalogue.breakdowns.len());
        Sums {
            towns: catalogue
                .towns
                .iter()
                .map(|town| (town.clone(), ScopeTallies::new(metrics, breakdowns)))
                .collect(),
            city: Some(ScopeTallies::new(metrics, breakdowns)),
        }
    }

    /// Adds tallies to a town's and the city's.
    fn add_to_town(&mut self, rules: &RuleSet, town: Town, tallies: &ScopeTallies) {
        let (metrics, breakdowns) = (rules.metrics.metrics.len(), rules.metrics.breakdowns.len());
        self.towns
            .entry(town)
            .or_insert_with(|| ScopeTallies::new(metrics, breakdowns))
            .combine(tallies, Tally::add);
        self.city
            .get_or_insert_with(|| ScopeTallies::new(metrics, breakdowns))
            .combine(tallies, Tally::add);
    }

    fn apply(&mut self, rules: &RuleSet, contribution: &Contribution, add: bool) {
        let (metrics, breakdowns) = (rules.metrics.metrics.len(), rules.metrics.breakdowns.len());
        self.towns
            .entry(contribution.town.clone())
            .or_insert_with(|| ScopeTallies::new(metrics, breakdowns))
            .apply(contribution, add);
        self.city
            .get_or_insert_with(|| ScopeTallies::new(metrics, breakdowns))
            .apply(contribution, add);
    }

    fn snapshot(&self, rules: &RuleSet, agencies: &[AgencyFacts], at: Instant) -> Snapshot {
        let catalogue = &rules.metrics;
        let (metrics, breakdowns) = (catalogue.metrics.len(), catalogue.breakdowns.len());
        let agency = agency_tallies(catalogue, rules, agencies, at);
        let mut city = self
            .city
            .clone()
            .unwrap_or_else(|| ScopeTallies::new(metrics, breakdowns));
        finish(rules, &mut city, &agency);
        let listed = catalogue.towns.iter().filter_map(|town| self.towns.get_key_value(town));
        let others = self.towns.iter().filter(|(town, _)| !catalogue.towns.contains(town));
        let towns = listed
            .chain(others)
            .map(|(town, tallies)| {
                let mut tallies = tallies.clone();
                finish(rules, &mut tallies, &[]);
                (town.clone(), tallies)
            })
            .collect();
        Snapshot { at, towns, city }
    }
}

/// Completes summed tallies: fills the parts that follow from the numerator and puts the
/// city-wide agency figures (empty for a town) in place.
fn finish(rules: &RuleSet, scope: &mut ScopeTallies, agency: &[Option<Tally>]) {
    let lists = std::iter::once(&mut scope.all).chain(scope.by_breakdown.iter_mut());
    for tallies in lists {
        for (index, (tally, metric)) in tallies.iter_mut().zip(&rules.metrics.metrics).enumerate() {
            if let Some(Some(city)) = agency.get(index) {
                *tally = *city;
            }
            *tally = metric.complete(*tally);
        }
    }
}

/// Each enterprise's contribution at the instant it was last computed, their running sums per
/// town and for the city, and the agency facts, so a snapshot of "now" costs a copy of the sums.
///
/// A timer index keeps each enterprise's next change (`anquan_domain::metrics::next_change`
/// after the instant its contribution was computed): the contribution is the same at every
/// instant from then until that change, so the cache is exact at any instant up to
/// [`MetricsCache::next_due`], and recomputing the [`MetricsCache::due`] enterprises there
/// keeps it exact, with no periodic pass over every enterprise.
#[derive(Debug, Clone, Default)]
pub struct MetricsCache {
    /// As [`compact`] text: a tenth of an unpacked contribution's memory, which at province
    /// scale was hundreds of MB.
    contributions: HashMap<EnterpriseId, Box<str>>,
    sums: Sums,
    agencies: Vec<AgencyFacts>,
    /// The instant of the last full computation, or of the last change.
    at: Option<Instant>,
    timers: Timers,
}

/// Each enterprise's next change, and the enterprises by that instant.
#[derive(Debug, Clone, Default)]
struct Timers {
    next: HashMap<EnterpriseId, Instant>,
    by_instant: BTreeMap<Instant, BTreeSet<EnterpriseId>>,
}

impl Timers {
    fn set(&mut self, enterprise_id: EnterpriseId, next: Option<Instant>) {
        if let Some(before) = self.next.remove(&enterprise_id)
            && let Some(waiting) = self.by_instant.get_mut(&before)
        {
            waiting.remove(&enterprise_id);
            if waiting.is_empty() {
                self.by_instant.remove(&before);
            }
        }
        if let Some(next) = next {
            self.next.insert(enterprise_id, next);
            self.by_instant.entry(next).or_default().insert(enterprise_id);
        }
    }
}

/// One local month before `at` (the same wall-clock instant in the rule set's time zone,
/// clamped to the month's end; 30 days earlier where that is out of range): the instant of the
/// month-over-month figures.
pub fn month_before(rules: &RuleSet, at: Instant) -> Instant {
    let local = at.with_timezone(&rules.time_zone);
    local.checked_sub_months(chrono::Months::new(1)).map_or(
        anquan_domain::bounds::minus(at, chrono::Duration::days(30)),
        |earlier| earlier.to_utc(),
    )
}

/// Computes the cache at `at` and the snapshot at `earlier_at` in one pass over the
/// enterprises' files, `chunk` at a time ([`CHUNK`] unless a
/// test wants several rounds): memory holds one chunk of files and every enterprise's
/// contribution at `at` (a few hundred numbers each), never every file.
pub async fn compute_streaming(
    store: &dyn anquan_event_store::ReadModelStore,
    rules: std::sync::Arc<RuleSet>,
    at: Instant,
    earlier_at: Instant,
    chunk: usize,
) -> Result<(MetricsCache, Snapshot), crate::error::QueryError> {
    let agencies = agency_facts(store).await?;
    let mut cache = MetricsCache {
        sums: Sums::new(&rules),
        ..MetricsCache::default()
    };
    let mut earlier = Sums::new(&rules);
    for_each_contribution(
        store,
        &rules,
        &[at, earlier_at],
        chunk,
        true,
        |enterprise_id, contributions, next| {
            let mut contributions = contributions.into_iter();
            if let Some(Some(now)) = contributions.next() {
                cache.sums.apply(&rules, &now, true);
                cache.contributions.insert(enterprise_id, pack(&now));
            }
            if let Some(Some(before)) = contributions.next() {
                earlier.apply(&rules, &before, true);
            }
            cache.timers.set(enterprise_id, next);
        },
    )
    .await?;
    let earlier = earlier.snapshot(&rules, &agencies, earlier_at);
    cache.agencies = agencies;
    cache.at = Some(at);
    Ok((cache, earlier))
}

/// Computes every metric at each of `instants` (in that order) in one pass over the
/// enterprises' files, `chunk` at a time ([`CHUNK`]): what [`Snapshot::compute`] gives over
/// [`load_facts`], without holding every file in memory (past `asOf` instants).
pub async fn snapshots_streaming(
    store: &dyn anquan_event_store::ReadModelStore,
    rules: std::sync::Arc<RuleSet>,
    instants: &[Instant],
    chunk: usize,
) -> Result<Vec<Snapshot>, crate::error::QueryError> {
    let agencies = agency_facts(store).await?;
    let mut sums: Vec<Sums> = instants.iter().map(|_| Sums::new(&rules)).collect();
    for_each_contribution(store, &rules, instants, chunk, false, |_, contributions, _| {
        for (sums, contribution) in sums.iter_mut().zip(contributions) {
            if let Some(contribution) = contribution {
                sums.apply(&rules, &contribution, true);
            }
        }
    })
    .await?;
    Ok(sums
        .iter()
        .zip(instants)
        .map(|(sums, at)| sums.snapshot(&rules, &agencies, *at))
        .collect())
}

/// Reads the enterprises' files `chunk` at a time, in enterprise order, and hands
/// `each` every enterprise's contribution at each of `instants` (in that order; `None` where
/// it contributes nothing) and, with `timer`, its next change after the first instant. The
/// evaluation runs on a blocking thread, a chunk at a time, so memory holds one chunk of files
/// (and the agency facts about the enterprises) at once.
async fn for_each_contribution(
    store: &dyn anquan_event_store::ReadModelStore,
    rules: &std::sync::Arc<RuleSet>,
    instants: &[Instant],
    chunk: usize,
    timer: bool,
    mut each: impl FnMut(EnterpriseId, Vec<Option<Contribution>>, Option<Instant>),
) -> Result<(), crate::error::QueryError> {
    let instants: std::sync::Arc<[Instant]> = instants.into();
    let mut files = FileChunks::new(chunk);
    let evaluate = std::sync::Arc::new(
        move |rules: &RuleSet, enterprise_id: EnterpriseId, file: &EnterpriseFile, services: &ServiceFacts| {
            let contributions = instants
                .iter()
                .map(|at| enterprise_contribution(&rules.metrics, rules, file, services, *at))
                .collect::<Vec<_>>();
            let next = instants
                .first()
                .filter(|_| timer)
                .and_then(|at| next_change(&rules.metrics, rules, file, services, *at));
            Some((enterprise_id, contributions, next))
        },
    );
    while let Some(computed) = files.next(store, rules, evaluate.clone()).await? {
        for (enterprise_id, contributions, next) in computed {
            each(enterprise_id, contributions, next);
        }
    }
    Ok(())
}

/// What [`FileChunks`] computes from each file, on a blocking thread (`None`: nothing for it).
type Evaluation<T> =
    std::sync::Arc<dyn Fn(&RuleSet, EnterpriseId, &EnterpriseFile, &ServiceFacts) -> Option<T> + Send + Sync>;

/// Every enterprise's file read `chunk` at a time, in enterprise order, with the agency facts
/// about it, each chunk evaluated on a blocking thread: memory holds one chunk of files and
/// their contracts and reports, never the province's (read whole, those of the scale-100 demo
/// held about 250 MiB for as long as a pass or the history's walk ran).
struct FileChunks {
    cursor: String,
    chunk: usize,
    done: bool,
}

impl FileChunks {
    fn new(chunk: usize) -> FileChunks {
        FileChunks {
            cursor: String::new(),
            chunk: chunk.max(1),
            done: false,
        }
    }

    /// The next chunk's evaluations (`None`: every file was read).
    async fn next<T: Send + 'static>(
        &mut self,
        store: &dyn anquan_event_store::ReadModelStore,
        rules: &std::sync::Arc<RuleSet>,
        evaluate: Evaluation<T>,
    ) -> Result<Option<Vec<T>>, crate::error::QueryError> {
        if self.done {
            return Ok(None);
        }
        let files = crate::compliance::files_after(store, "", &self.cursor, self.chunk).await?;
        self.done = files.len() < self.chunk;
        let (Some(low), Some(high)) = (files.keys().next(), files.keys().next_back()) else {
            return Ok(Some(Vec::new()));
        };
        let services = load::services(store, load::Serviced::Between(*low, *high)).await?;
        self.cursor = high.to_string();
        let rules = rules.clone();
        let computed = tokio::task::spawn_blocking(move || {
            let empty = ServiceFacts::default();
            let files: Vec<(EnterpriseId, EnterpriseFile)> = files.into_iter().collect();
            // The chunk's files are split over the machine's cores (in order): a full pass, a
            // past instant from the files or a walk of every history is a core's work per file.
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            let per_core = files.len().div_ceil(cores).max(1);
            let evaluate_part = |part: &[(EnterpriseId, EnterpriseFile)]| {
                part.iter()
                    .filter_map(|(enterprise_id, file)| {
                        let services = services.get(enterprise_id).unwrap_or(&empty);
                        evaluate(&rules, *enterprise_id, file, services)
                    })
                    .collect::<Vec<_>>()
            };
            std::thread::scope(|scope| {
                let parts: Vec<_> = files
                    .chunks(per_core)
                    .map(|part| scope.spawn(move || evaluate_part(part)))
                    .collect();
                parts
                    .into_iter()
                    // A panic in a part is the chunk's: it reaches the task's join as one.
                    .flat_map(|part| part.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                    .collect::<Vec<_>>()
            })
        })
        .await
        .map_err(|error| crate::error::QueryError::Malformed {
            table: "enterprises",
            reason: format!("metrics computation stopped: {error}"),
        })?;
        Ok(Some(computed))
    }
}

impl MetricsCache {
    /// Computes every enterprise's contribution at `at`.
    pub fn compute(rules: &RuleSet, facts: &MetricFacts, at: Instant) -> MetricsCache {
        let empty = ServiceFacts::default();
        let mut sums = Sums::new(rules);
        let mut contributions = HashMap::with_capacity(facts.files.len());
        let mut timers = Timers::default();
        for (enterprise_id, file) in &facts.files {
            let services = facts.services.get(enterprise_id).unwrap_or(&empty);
            if let Some(contribution) = enterprise_contribution(&rules.metrics, rules, file, services, at) {
                sums.apply(rules, &contribution, true);
                contributions.insert(*enterprise_id, pack(&contribution));
            }
            timers.set(*enterprise_id, next_change(&rules.metrics, rules, file, services, at));
        }
        MetricsCache {
            contributions,
            sums,
            agencies: facts.agencies.clone(),
            at: Some(at),
            timers,
        }
    }

    /// Recomputes one enterprise's contribution at `at` from its facts (none: it is gone) and
    /// its next change after `at`, and returns its town before and after.
    pub fn update_enterprise(
        &mut self,
        rules: &RuleSet,
        enterprise_id: EnterpriseId,
        facts: Option<(&EnterpriseFile, &ServiceFacts)>,
        at: Instant,
    ) -> (Option<Town>, Option<Town>) {
        let contribution =
            facts.and_then(|(file, services)| enterprise_contribution(&rules.metrics, rules, file, services, at));
        let next = facts.and_then(|(file, services)| next_change(&rules.metrics, rules, file, services, at));
        self.timers.set(enterprise_id, next);
        let before = self.contributions.remove(&enterprise_id).map(|before| unpack(&before));
        if let Some(before) = &before {
            self.sums.apply(rules, before, false);
        }
        let after = contribution.as_ref().map(|contribution| contribution.town.clone());
        if let Some(contribution) = contribution {
            self.sums.apply(rules, &contribution, true);
            self.contributions.insert(enterprise_id, pack(&contribution));
        }
        self.at = Some(self.at.map_or(at, |known| known.max(at)));
        (before.map(|before| before.town), after)
    }

    /// Replaces the agency facts.
    pub fn update_agencies(&mut self, agencies: Vec<AgencyFacts>, at: Instant) {
        self.agencies = agencies;
        self.at = Some(self.at.map_or(at, |known| known.max(at)));
    }

    /// The instant of the latest computation.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// The cached figures as a snapshot; agency figures are computed at the cache's instant.
    pub fn snapshot(&self, rules: &RuleSet) -> Option<Snapshot> {
        let at = self.at?;
        Some(self.sums.snapshot(rules, &self.agencies, at))
    }

    /// How many enterprises contribute.
    pub fn enterprises(&self) -> usize {
        self.contributions.len()
    }

    /// Enterprises whose next change is at or before `now`, in id order: recompute each with
    /// [`MetricsCache::update_enterprise`] at `now` to keep the cache exact.
    pub fn due(&self, now: Instant) -> Vec<EnterpriseId> {
        let due: BTreeSet<EnterpriseId> = self
            .timers
            .by_instant
            .range(..=now)
            .flat_map(|(_, enterprises)| enterprises.iter().copied())
            .collect();
        due.into_iter().collect()
    }

    /// The earliest next change of any enterprise: until then every contribution stands.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.by_instant.keys().next().copied()
    }

    /// The next change recorded for one enterprise.
    pub fn next_change_of(&self, enterprise_id: EnterpriseId) -> Option<Instant> {
        self.timers.next.get(&enterprise_id).copied()
    }

    /// A cache of what was computed earlier (persisted) at `at`, with the agency facts as they
    /// are now, filled one enterprise at a time with [`MetricsCache::load`] as the rows are read
    /// (so the sums run beside the reads).
    pub fn persisted(rules: &RuleSet, agencies: Vec<AgencyFacts>, at: Instant) -> MetricsCache {
        MetricsCache {
            contributions: HashMap::new(),
            sums: Sums::new(rules),
            agencies,
            at: Some(at),
            timers: Timers::default(),
        }
    }

    /// Adds one enterprise's persisted contribution (none: it contributes nothing) and next
    /// change to a cache being loaded ([`MetricsCache::persisted`]).
    pub fn load(
        &mut self,
        rules: &RuleSet,
        enterprise_id: EnterpriseId,
        contribution: Option<Contribution>,
        next: Option<Instant>,
    ) {
        if let Some(contribution) = contribution {
            self.sums.apply(rules, &contribution, true);
            self.contributions.insert(enterprise_id, pack(&contribution));
        }
        self.timers.set(enterprise_id, next);
    }

    /// An enterprise's contribution, if it contributes.
    pub fn contribution(&self, enterprise_id: EnterpriseId) -> Option<Contribution> {
        self.contributions.get(&enterprise_id).map(|packed| unpack(packed))
    }

    /// Every enterprise the cache knows, with its contribution (if it contributes) and its
    /// next change (if it has one), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (EnterpriseId, Option<Contribution>, Option<Instant>)> + '_ {
        let contributing = self.contributions.iter().map(|(enterprise_id, packed)| {
            (
                *enterprise_id,
                Some(unpack(packed)),
                self.timers.next.get(enterprise_id).copied(),
            )
        });
        let waiting = self
            .timers
            .next
            .iter()
            .filter(|(enterprise_id, _)| !self.contributions.contains_key(enterprise_id))
            .map(|(enterprise_id, next)| (*enterprise_id, None, Some(*next)));
        contributing.chain(waiting)
    }
}

/// A contribution as the cache holds it.
fn pack(contribution: &Contribution) -> Box<str> {
    compact::encode(contribution).into_boxed_str()
}

/// A contribution the cache holds, unpacked.
#[expect(
    clippy::expect_used,
    reason = "the cache holds only what `pack` wrote, and `compact::decode` gives back exactly what `compact::encode` wrote"
)]
fn unpack(packed: &str) -> Contribution {
    // Cannot fail: every packed contribution was written by `pack` (integers in full, the
    // tallies' count, a parsed town last), and decoding it is the round trip
    // `a_contribution_decodes_as_it_was_encoded` checks, empty tallies included.
    compact::decode(packed).expect("a packed contribution decodes")
}
