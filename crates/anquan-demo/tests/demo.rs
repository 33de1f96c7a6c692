//! The generator at a small scale: deterministic for a seed, and the article's five headline
//! rates recomputed from the log alone (not from the generator's own bookkeeping) land near
//! the article's values.

#![allow(clippy::unwrap_used, reason = "a test stops at its first failure")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anquan_demo::rates::{self, RateCounts};
use anquan_demo::{DemoOptions, NoProgress, Tuning, generate, log_digest, year_end};
use anquan_domain::agency::AgencyState;
use anquan_domain::enterprise::EnterpriseFile;
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

/// Folds the log into aggregates and computes the five rates from them.
async fn rates_from_log(store: &dyn EventStore, rules: &anquan_domain::rules::RuleSet) -> RateCounts {
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
    let at = year_end(rules, 2019).unwrap();
    let mut covered: BTreeSet<EnterpriseId> = BTreeSet::new();
    for agency in agencies.values() {
        rates::covered_enterprises(agency, at, &mut covered);
    }
    let mut counts = RateCounts::default();
    for file in enterprises.values() {
        let facts = rates::enterprise_facts(file, rules, at);
        let id = file.registration.as_ref().map(|r| r.enterprise_id);
        counts.add(&facts, id.is_some_and(|id| covered.contains(&id)));
    }
    counts
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
    let counts = rates_from_log(first.as_ref(), &rules).await;
    assert_eq!(counts, summary.counts);
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
