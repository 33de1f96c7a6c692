//! The generator at a small scale: deterministic for a seed, and the article's five headline
//! rates recomputed from the log alone (not from the generator's own bookkeeping) land near
//! the article's values.

#![allow(clippy::unwrap_used, reason = "a test stops at its first failure")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anquan_demo::rates::{self, RateCounts};
use anquan_demo::{DemoOptions, NoProgress, Tuning, generate, log_digest, year_end};
use anquan_domain::agency::AgencyState;
use anquan_domain::compliance::Detail;
use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::metrics::{ContractFact, Headline, ServiceFacts, enterprise_contribution};
use anquan_domain::period::Cadence;
use anquan_domain::{Aggregate, EnterpriseId};
use anquan_event_store::{EventStore, InMemoryEventStore, Position, READ_BATCH_MAX};

fn options(enterprises: u64, seed: u64) -> DemoOptions {
    DemoOptions {
        scale: 1.0,
        enterprises: Some(enterprises),
        seed,
        ..DemoOptions::default()
    }
}

/// The log folded into aggregates, by stream.
struct Folded {
    enterprises: BTreeMap<String, EnterpriseFile>,
    agencies: BTreeMap<String, AgencyState>,
}

async fn fold(store: &dyn EventStore) -> Folded {
    let mut enterprises: BTreeMap<String, EnterpriseFile> = BTreeMap::new();
    let mut agencies: BTreeMap<String, AgencyState> = BTreeMap::new();
    let mut after: Option<Position> = None;
    loop {
        let page = store.read_all(after, READ_BATCH_MAX).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for recorded in &page {
            let event = recorded.decode().unwrap();
            let stream = recorded.stream_id.to_string();
            if stream.starts_with("enterprise-") {
                Aggregate::apply(enterprises.entry(stream).or_default(), &event);
            } else if stream.starts_with("agency-") {
                Aggregate::apply(agencies.entry(stream).or_default(), &event);
            }
        }
    }
    Folded { enterprises, agencies }
}

/// Computes the five rates from the folded log as the generator does.
fn rates_from_log(log: &Folded, rules: &anquan_domain::rules::RuleSet) -> RateCounts {
    let at = year_end(rules, 2019).unwrap();
    let mut covered: BTreeSet<EnterpriseId> = BTreeSet::new();
    for agency in log.agencies.values() {
        rates::covered_enterprises(agency, at, &mut covered);
    }
    let mut counts = RateCounts::default();
    for file in log.enterprises.values() {
        let facts = rates::enterprise_facts(file, rules, at);
        let id = file.registration.as_ref().map(|r| r.enterprise_id);
        counts.add(&facts, id.is_some_and(|id| covered.contains(&id)));
    }
    counts
}

/// The five headline metrics as the town statistics compute them (`enterprise_contribution`
/// summed over the city) at the generator's instant: (numerator, denominator) per rate, in the
/// article's order.
fn headlines_from_engine(log: &Folded, rules: &anquan_domain::rules::RuleSet) -> Vec<(&'static str, i64, i64)> {
    let at = year_end(rules, 2019).unwrap();
    let mut services: BTreeMap<EnterpriseId, ServiceFacts> = BTreeMap::new();
    for agency in log.agencies.values() {
        for (contract_id, contract) in &agency.contracts {
            // Only a contract the town filed counts.
            let Some(filed_at) = contract.filed_at else {
                continue;
            };
            services
                .entry(contract.enterprise_id)
                .or_default()
                .contracts
                .push(ContractFact {
                    contract_id: *contract_id,
                    filed_at,
                    valid_from: contract.valid_from,
                    valid_until: contract.valid_until,
                    terminated_at: contract.terminated_at,
                });
        }
    }
    let empty = ServiceFacts::default();
    let headlines = [
        ("B02", Headline::EnterpriseResponsibilityRate),
        ("D03", Headline::PrincipalAndSafetyOfficerTrainingRate),
        ("G02", Headline::EmergencyDrillCompletionRate),
        ("H01", Headline::SocialServiceCoverage),
        ("H02", Headline::ServiceCoverageOver5mRevenue),
    ];
    let mut sums = vec![(0, 0); headlines.len()];
    for file in log.enterprises.values() {
        let id = file.registration.as_ref().unwrap().enterprise_id;
        let contribution =
            enterprise_contribution(&rules.metrics, rules, file, services.get(&id).unwrap_or(&empty), at).unwrap();
        for ((_, headline), sum) in headlines.iter().zip(&mut sums) {
            let (index, _) = rules.metrics.headline(*headline).unwrap();
            let (numerator, denominator) = contribution.tallies[index];
            sum.0 += numerator;
            sum.1 += denominator;
        }
    }
    headlines
        .iter()
        .zip(sums)
        .map(|((code, _), (numerator, denominator))| (*code, numerator, denominator))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_log_and_the_rates_land_near_the_article() {
    let rules = Arc::new(anquan_domain::rules::builtin_v1().unwrap());
    let first: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let summary = generate(
        first.clone(),
        rules.clone(),
        &options(800, 7),
        Tuning::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let second: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let again = generate(
        second.clone(),
        rules.clone(),
        &options(800, 7),
        Tuning::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let digest = log_digest(first.as_ref()).await.unwrap();
    assert_eq!(digest.events, summary.events);
    assert_eq!(digest, log_digest(second.as_ref()).await.unwrap());
    assert_eq!(summary.events, again.events);

    // The rates from the log alone equal the generator's, and land near the article's.
    let log = fold(first.as_ref()).await;
    let counts = rates_from_log(&log, &rules);
    assert_eq!(counts, summary.counts);
    // The town statistics engine (what `headlineRates` answers for 2020-01-01T00:00+08:00)
    // counts exactly the same enterprises for each of the five rates.
    let as_i64 = |n: u64| i64::try_from(n).unwrap();
    assert_eq!(
        headlines_from_engine(&log, &rules),
        vec![
            (
                "B02",
                as_i64(counts.responsibility_implemented),
                as_i64(counts.enterprises)
            ),
            ("D03", as_i64(counts.trained), as_i64(counts.enterprises)),
            ("G02", as_i64(counts.drills_done), as_i64(counts.drill_applicable)),
            ("H01", as_i64(counts.covered), as_i64(counts.enterprises)),
            ("H02", as_i64(counts.over_5m_covered), as_i64(counts.over_5m)),
        ]
    );
    // The rates are taken where annual duties can fail: every enterprise joined in 2018, so at
    // the end of 2019 nothing is 未到期 and a missing yearly record shows as missing.
    let at = year_end(&rules, 2019).unwrap();
    let mut yearly_missing = 0;
    for file in log.enterprises.values() {
        let report = anquan_domain::compliance::evaluate(file, &rules, at).unwrap();
        assert_eq!(report.not_yet_due, 0, "{report:#?}");
        yearly_missing += report
            .indicators
            .iter()
            .flat_map(|indicator| &indicator.requirements)
            .filter(|requirement| {
                matches!(requirement.detail, Detail::PeriodMissing { period, .. } if period.cadence() == Cadence::Yearly)
            })
            .count();
    }
    assert!(
        yearly_missing > 0,
        "no yearly record is ever missing at the end of 2019"
    );
    let rates = counts.rates();
    eprintln!("{summary:#?}");
    // 800 enterprises: a binomial share near 90 % has a standard error of about 1 point, so
    // allow 3 points plus 2 standard errors.
    for ((code, ours), (_, article)) in rates.pairs().iter().zip(anquan_demo::HeadlineRates::ARTICLE.pairs()) {
        assert!(
            (ours - article).abs() <= 5.0,
            "{code}: {ours:.1} % against the article's {article} %"
        );
    }
    assert!(summary.inspections > 0 && summary.hazards > summary.inspections);
    assert!(summary.contracts > 0 && summary.ratings > 0);

    // Another seed gives another history.
    let third: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    generate(
        third.clone(),
        rules,
        &options(50, 8),
        Tuning::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_ne!(log_digest(third.as_ref()).await.unwrap().sha256, digest.sha256);
}
