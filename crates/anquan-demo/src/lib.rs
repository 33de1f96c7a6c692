//! The demo dataset: a deterministic, realistic history of Haining's work-safety platform
//! (domain.md §6) generated through the command path: every event is decided by the domain's
//! `decide` and appended through the `EventStore` trait with the stream version it was decided
//! on. Nothing writes rows.
//!
//! The seed fixes everything: each enterprise and agency draws from its own random stream and
//! runs in simulated time (`DecisionContext::now` comes from the simulated clock), so the
//! streams' contents do not depend on how concurrent tasks interleave; only the global order
//! of the log does. Memory stays bounded: a bounded number of enterprise tasks is in flight,
//! each holding one aggregate, and nothing holds the log.

mod agency;
mod enterprise;
mod plan;
pub mod rates;
mod rng;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use chrono::{NaiveDate, TimeZone};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use anquan_domain::rules::RuleSet;
use anquan_event_store::{EventStore, Position, READ_BATCH_MAX};

use crate::agency::AgencyContract;
pub use crate::enterprise::public_token;
pub use crate::plan::enterprise_id;
pub use crate::rates::{HeadlineRates, RateCounts};

/// Platform enterprises at scale 1 (Haining, end of 2019).
pub const ENTERPRISES_AT_SCALE_1: f64 = 3212.0;
/// Registered agencies at scale 1.
pub const AGENCIES_AT_SCALE_1: f64 = 38.0;
/// Enterprise histories in flight at once: enough for group commit to batch, few enough that
/// memory stays small (each holds one enterprise's aggregate).
pub const ENTERPRISES_IN_FLIGHT: usize = 256;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// 1 is Haining (3,212 enterprises, 38 agencies); 100 is a province of 100 such counties.
    pub scale: f64,
    /// Simulated years, ending with `last_year` (default 2: enterprises join during the first,
    /// so the headline rates at the end of the last are taken where annual duties can fail).
    pub years: u32,
    /// The last simulated year (the article's year, 2019, by default).
    pub last_year: i32,
    pub seed: u64,
    /// Overrides the number of enterprises the scale gives.
    pub enterprises: Option<u64>,
    /// Enterprise histories in flight at once.
    pub in_flight: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            scale: 1.0,
            years: 2,
            last_year: 2019,
            seed: 2019,
            enterprises: None,
            in_flight: ENTERPRISES_IN_FLIGHT,
        }
    }
}

/// The generator's behavioural knobs. The headline rates are not set here: they come out of
/// the rule set's status engine applied to the behaviour these knobs describe.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Share of platform enterprises with revenue ≥ 5 M yuan (2,683 / 3,212, domain §6.3).
    pub revenue_over_5m_share: f64,
    /// The 500万 line in 10,000 yuan.
    pub revenue_over_5m_10k_yuan: u64,
    /// Days after the start during which enterprises join the platform.
    pub onboarding_days: u32,
    /// > 1 makes joining front-loaded.
    pub onboarding_skew: f64,
    /// Share of enterprises that keep their file diligently.
    pub diligent_share: f64,
    /// Lax enterprises skip this share of periodic records.
    pub lax_record_skip: f64,
    /// Leaders' training certificates lapse without renewal.
    pub diligent_certificate_lapse: f64,
    pub lax_certificate_lapse: f64,
    /// Drill misses: diligent ones miss the year's last drill period, lax ones every drill.
    pub diligent_drill_miss: f64,
    pub lax_drill_miss: f64,
    /// Agency contracts: enterprises ≥ 5 M yuan, and smaller key-supervised ones.
    pub contract_share_over_5m: f64,
    pub contract_share_small: f64,
    /// Agency popularity skew (Zipf exponent).
    pub agency_skew: f64,
    pub agency_staff_mean: f64,
    pub contract_termination_share: f64,
    pub rating_share: f64,
    pub spot_check_share: f64,
    /// Reviews happen within this many days of an upload.
    pub review_days_max: i64,
    /// Share of first uploads returned with feedback, and of re-uploads.
    pub return_share: f64,
    pub return_share_again: f64,
    /// Share of approvals with a comment (feedback ≈ 1 in 3 records, domain §6.3).
    pub comment_share: f64,
    pub inspections_per_enterprise_year: f64,
    pub hazards_per_inspection: f64,
    pub city_inspection_share: f64,
    pub major_hazard_share: f64,
    pub diligent_never_rectify: f64,
    pub lax_never_rectify: f64,
    pub late_rectification_share: f64,
    pub rectification_return_share: f64,
    /// Requirement codes the behaviour above refers to (rule set v1).
    pub training_requirement: String,
    pub drill_requirement: String,
    pub service_indicator: String,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            revenue_over_5m_share: 2683.0 / 3212.0,
            revenue_over_5m_10k_yuan: 500,
            onboarding_days: 300,
            onboarding_skew: 1.0,
            diligent_share: 0.925,
            lax_record_skip: 0.3,
            diligent_certificate_lapse: 0.012,
            lax_certificate_lapse: 0.75,
            diligent_drill_miss: 0.07,
            lax_drill_miss: 0.7,
            contract_share_over_5m: 0.94,
            contract_share_small: 0.14,
            agency_skew: 0.8,
            agency_staff_mean: 3.8,
            contract_termination_share: 0.01,
            rating_share: 0.9,
            spot_check_share: 0.08,
            review_days_max: 7,
            return_share: 0.22,
            return_share_again: 0.05,
            comment_share: 0.18,
            inspections_per_enterprise_year: 1.5,
            hazards_per_inspection: 2.71,
            city_inspection_share: 0.25,
            major_hazard_share: 0.015,
            diligent_never_rectify: 0.004,
            lax_never_rectify: 0.4,
            late_rectification_share: 0.03,
            rectification_return_share: 0.08,
            training_requirement: rates::TRAINING_REQUIREMENT.to_owned(),
            drill_requirement: rates::DRILL_REQUIREMENT.to_owned(),
            service_indicator: "R21.".to_owned(),
        }
    }
}

/// Why the demo could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot plan the demo: {0}")]
    Plan(String),
    #[error("the domain rejected {command} on {stream}: {reason} (a generator bug)")]
    Rejected {
        stream: String,
        command: &'static str,
        reason: String,
    },
    #[error("the event store refused an append: {0}")]
    Append(String),
    #[error("the event store failed: {0}")]
    Store(String),
    #[error("a generator task failed: {0}")]
    Task(String),
}

/// Where the generator reports progress (a progress bar, a log, nothing).
pub trait Progress: Send + Sync {
    /// A phase starts with `total` items (enterprises, agencies).
    fn phase(&self, name: &'static str, total: u64);
    /// One more item is done, with the events it appended.
    fn advance(&self, events: u64);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _name: &'static str, _total: u64) {}
    fn advance(&self, _events: u64) {}
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    pub enterprises: u64,
    pub agencies: u64,
    pub agency_staff: u64,
    pub events: u64,
    pub appends: u64,
    pub uploads: u64,
    pub reviews: u64,
    pub returned: u64,
    pub feedback: u64,
    pub inspections: u64,
    pub hazards: u64,
    pub major_hazards: u64,
    pub overdue_hazards_at_end: u64,
    pub contracts: u64,
    pub service_reports: u64,
    pub ratings: u64,
    /// Half-yearly grades A, B, C, D and not graded (未评级).
    pub grades: [u64; 5],
    pub blacklisted: u64,
    pub counts: RateCounts,
    pub rates: HeadlineRates,
    pub elapsed: StdDuration,
}

/// Generates the demo into `store`.
pub async fn generate(
    store: Arc<dyn EventStore>,
    rules: Arc<RuleSet>,
    options: &DemoOptions,
    tuning: Tuning,
    progress: Arc<dyn Progress>,
) -> Result<DemoSummary, DemoError> {
    let started = StdInstant::now();
    let world = Arc::new(world(&rules, options)?);
    let tuning = Arc::new(tuning);
    let mut summary = DemoSummary {
        enterprises: world.enterprises,
        agencies: world.agency_count() as u64,
        ..DemoSummary::default()
    };

    // Pass 1: enterprises, many in flight so the store can group their appends.
    progress.phase("enterprises", world.enterprises);
    let mut facts = vec![rates::EnterpriseFacts::default(); usize::try_from(world.enterprises).unwrap_or(0)];
    let mut contracts: Vec<Vec<AgencyContract>> = vec![Vec::new(); world.agency_count()];
    let mut results = futures::stream::iter(0..world.enterprises)
        .map(|index| {
            let (store, rules, world, tuning) = (store.clone(), rules.clone(), world.clone(), tuning.clone());
            tokio::spawn(async move {
                let plan = plan::enterprise(&world, &tuning, index)?;
                let outcome = enterprise::simulate(store.as_ref(), &rules, &world, &tuning, &plan).await?;
                Ok::<_, DemoError>((plan, outcome))
            })
        })
        .buffer_unordered(options.in_flight.max(1));
    while let Some(result) = results.next().await {
        let (plan, outcome) = result.map_err(|error| DemoError::Task(error.to_string()))??;
        progress.advance(outcome.events);
        summary.events += outcome.events;
        summary.appends += outcome.appends;
        summary.uploads += outcome.uploads;
        summary.reviews += outcome.reviews;
        summary.returned += outcome.returned;
        summary.feedback += outcome.feedback;
        summary.inspections += outcome.inspections;
        summary.hazards += outcome.hazards;
        summary.major_hazards += outcome.major_hazards;
        summary.overdue_hazards_at_end += outcome.overdue_at_end;
        if let Some(slot) = facts.get_mut(usize::try_from(plan.index).unwrap_or(usize::MAX)) {
            *slot = outcome.facts;
        }
        if let Some(contract) = plan.contract
            && let Some(list) = contracts.get_mut(contract.agency)
        {
            list.push(AgencyContract {
                enterprise_index: plan.index,
                enterprise_id: plan.enterprise_id,
                town: plan.town,
                plan: contract,
            });
        }
    }
    drop(results);

    // Pass 2: agencies, with the contracts the enterprise plans chose, in a fixed order.
    progress.phase("agencies", world.agency_count() as u64);
    let mut covered = vec![false; facts.len()];
    let mut results = futures::stream::iter(contracts.into_iter().enumerate())
        .map(|(index, mut list)| {
            let (store, rules, world, tuning) = (store.clone(), rules.clone(), world.clone(), tuning.clone());
            tokio::spawn(async move {
                list.sort_by_key(|contract| (contract.plan.signed_at, contract.enterprise_index));
                agency::simulate(store.as_ref(), &rules, &world, &tuning, index, &list).await
            })
        })
        .buffer_unordered(options.in_flight.clamp(1, 64));
    while let Some(result) = results.next().await {
        let outcome = result.map_err(|error| DemoError::Task(error.to_string()))??;
        progress.advance(outcome.events);
        summary.events += outcome.events;
        summary.appends += outcome.appends;
        summary.agency_staff += outcome.staff;
        summary.contracts += outcome.contracts;
        summary.service_reports += outcome.service_reports;
        summary.ratings += outcome.ratings;
        for (total, count) in summary.grades.iter_mut().zip(outcome.grades) {
            *total += count;
        }
        summary.blacklisted += u64::from(outcome.blacklisted);
        for index in outcome.covered {
            if let Some(slot) = covered.get_mut(usize::try_from(index).unwrap_or(usize::MAX)) {
                *slot = true;
            }
        }
    }
    for (facts, covered) in facts.iter().zip(&covered) {
        summary.counts.add(facts, *covered);
    }
    summary.rates = summary.counts.rates();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn world(rules: &RuleSet, options: &DemoOptions) -> Result<plan::World, DemoError> {
    if !(options.scale.is_finite() && options.scale > 0.0) {
        return Err(DemoError::Plan(format!("scale {} is not positive", options.scale)));
    }
    let years = i32::try_from(options.years.max(1)).unwrap_or(1);
    let local_new_year = |year: i32| {
        NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|day| {
                rules
                    .time_zone
                    .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
                    .single()
            })
            .map(|instant| instant.to_utc())
            .ok_or_else(|| DemoError::Plan(format!("year {year} is out of range")))
    };
    let counties = options.scale.round().max(1.0) as u64;
    let agencies_per_county = ((AGENCIES_AT_SCALE_1 * options.scale / counties as f64).round() as usize).max(1);
    Ok(plan::World {
        seed: options.seed,
        enterprises: options
            .enterprises
            .unwrap_or_else(|| (ENTERPRISES_AT_SCALE_1 * options.scale).round().max(1.0) as u64),
        counties,
        agencies_per_county,
        start: local_new_year(options.last_year - years + 1)?,
        end: local_new_year(options.last_year + 1)?,
    })
}

/// The instant the headline rates are taken at: the end of the last generated year.
pub fn year_end(rules: &RuleSet, last_year: i32) -> Option<anquan_domain::Instant> {
    NaiveDate::from_ymd_opt(last_year + 1, 1, 1)
        .and_then(|day| {
            rules
                .time_zone
                .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
                .single()
        })
        .map(|instant| instant.to_utc())
}

/// A digest of the log's content that does not depend on the global interleaving: every
/// stream's events in version order (stream, version, type, schema version, data, the
/// metadata's instant and actor), streams in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDigest {
    pub events: u64,
    pub streams: u64,
    pub sha256: String,
}

/// Reads the whole log once and digests it (holds one 32-byte hash per event: for tests and
/// small scales).
pub async fn log_digest(store: &dyn EventStore) -> Result<LogDigest, DemoError> {
    let mut per_event: BTreeMap<(String, u64), [u8; 32]> = BTreeMap::new();
    let mut after: Option<Position> = None;
    loop {
        let page = store
            .read_all(after, READ_BATCH_MAX)
            .await
            .map_err(|error| DemoError::Store(error.to_string()))?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for event in &page {
            let mut hasher = Sha256::new();
            hasher.update(event.event_type.as_bytes());
            hasher.update(event.schema_version.to_le_bytes());
            hasher.update(event.data.as_bytes());
            hasher.update(event.metadata.occurred_at.to_rfc3339().as_bytes());
            hasher.update(event.metadata.actor.user_id.as_str().as_bytes());
            per_event.insert((event.stream_id.to_string(), event.version.0), hasher.finalize().into());
        }
    }
    let mut hasher = Sha256::new();
    let mut streams = 0u64;
    let mut previous: Option<&str> = None;
    for ((stream, version), hash) in &per_event {
        if previous != Some(stream.as_str()) {
            streams += 1;
            previous = Some(stream.as_str());
        }
        hasher.update(stream.as_bytes());
        hasher.update(version.to_le_bytes());
        hasher.update(hash);
    }
    Ok(LogDigest {
        events: per_event.len() as u64,
        streams,
        sha256: hex::encode(hasher.finalize()),
    })
}
