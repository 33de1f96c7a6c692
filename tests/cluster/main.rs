//! The multi-node tests (`cluster.rs`): three `anquan serve` processes on one PostgreSQL
//! database under a load of more than 10,000 mutations. A test binary of their own, because
//! cargo runs test binaries one after another: their load (three services and two dozen
//! clients on every core) would otherwise run beside the black-box tests in `it/` and make
//! those that hold a service to a time budget fail for want of CPU.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests abort on failure"
)]

mod cluster;
#[allow(
    dead_code,
    reason = "the helpers are shared with the tests in it/, which use the rest"
)]
#[path = "../it/support.rs"]
mod support;
