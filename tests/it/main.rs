//! Black-box tests: each starts the real `anquan` binary on a free port and talks GraphQL over
//! HTTP like a client, on the embedded SQLite default and, when a server is configured, on
//! PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests abort on failure"
)]

mod agency_flow;
mod anchors;
mod audit_history;
mod audit_streams;
mod bad_input;
mod bench_store;
mod browser;
mod catch_up;
mod closure;
mod compliance_flow;
mod contracts;
mod dashboard;
mod doc_examples;
mod erasure;
mod generated_client;
mod graphql_fuzz;
mod hazard_sources;
mod idempotency;
mod listed_supervision;
mod major_hazards;
mod metrics_endpoint;
mod metrics_follow;
mod metrics_month_ago;
mod metrics_now;
mod monthly_reports;
mod operation_log;
mod public_page;
mod read_side;
mod readme_walkthrough;
mod rule_sets;
mod security_roles;
mod security_transport;
mod shared_files;
mod stalled_projection;
mod supervision_flow;
mod support;
mod test_clock;
mod time_true;
