//! What `next_change` costs beside the recomputation it follows: the timer index calls it after
//! every `enterprise_contribution` of an enterprise, so it should cost a fraction of that.
//!
//! `cargo bench -p anquan-domain --bench next_change`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark aborts on a broken fixture"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use anquan_domain::metrics::{ServiceFacts, enterprise_contribution, next_calendar_change, next_change};
use anquan_domain::rules::ProfileFlag;
use criterion::{Criterion, criterion_group, criterion_main};

fn next_change_beside_the_contribution(c: &mut Criterion) {
    let rules = support::rules();
    // An enterprise with a record for every applicable requirement (about 40 records).
    let file = support::fully_compliant(
        1,
        "许村",
        support::profile_with(&[ProfileFlag::HazardousChemicals, ProfileFlag::SpecialEquipment]),
        "2018-01-10T02:00:00Z",
        "2019-03-10T02:00:00Z",
    );
    let services = ServiceFacts::default();
    let at = support::at("2019-03-10T03:00:00Z");
    let catalogue = &rules.metrics;
    let mut group = c.benchmark_group("metrics_next_change");
    group.bench_function("enterprise_contribution", |b| {
        b.iter(|| enterprise_contribution(catalogue, &rules, black_box(&file), &services, black_box(at)));
    });
    group.bench_function("next_change", |b| {
        b.iter(|| next_change(catalogue, &rules, black_box(&file), &services, black_box(at)));
    });
    group.bench_function("next_calendar_change", |b| {
        b.iter(|| next_calendar_change(catalogue, &rules, black_box(at)));
    });
    group.finish();
}

criterion_group!(benches, next_change_beside_the_contribution);
criterion_main!(benches);
