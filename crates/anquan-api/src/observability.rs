//! Prometheus metrics: the process's one recorder behind the `metrics` facade, the description
//! (help text) of every metric anquan records, and a timer for the watchers' passes.
//! The router installs the recorder and serves its text at `GET /metrics`; any crate records
//! through the facade without holding a handle (the event store's `MeteredEventStore`, the
//! projections, the API's GraphQL extension and watchers).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use anquan_event_store::metered::{APPEND_DURATION_SECONDS, APPENDED_EVENTS_TOTAL, APPENDS_TOTAL};
use anquan_projections::metrics::history::PAST_LOOKUPS_TOTAL;
use anquan_projections::rule_sets::rebuild::{REBUILD_EVENTS, REBUILD_POSITION};

/// Histogram of one GraphQL operation over HTTP, labelled `operation` and `outcome`
/// (see `graphql::request_metrics`).
pub const GRAPHQL_REQUEST_DURATION_SECONDS: &str = "anquan_graphql_request_duration_seconds";
/// Counter of GraphQL operations over HTTP, labelled `operation` and `outcome`.
pub const GRAPHQL_REQUESTS_TOTAL: &str = "anquan_graphql_requests_total";
/// Histogram of one pass of the supervision watcher (the events applied since the last pass and
/// the deadlines passed since then).
pub const SUPERVISION_WATCHER_PASS_DURATION_SECONDS: &str = "anquan_supervision_watcher_pass_duration_seconds";
/// Histogram of one pass of the metrics watcher, labelled `pass`: `follow` (the enterprises the
/// newly applied events touched) or `full` (every enterprise).
pub const METRICS_WATCHER_PASS_DURATION_SECONDS: &str = "anquan_metrics_watcher_pass_duration_seconds";
/// Counter of past-instant metric computations (`asOf`), labelled `source`: `history` (summed
/// from the history of contributions) or `files` (every enterprise's file evaluated).
pub const METRICS_PAST_ANSWERS_TOTAL: &str = "anquan_metrics_past_answers_total";

/// Gauge of the position a projection has applied, labelled `projection` (the runner sets it).
pub const PROJECTION_POSITION: &str = "anquan_projection_position";
/// Gauge of how many events a projection is behind the head of the log, labelled `projection`;
/// set where the backend can count them (dense positions: SQLite, PostgreSQL).
pub const PROJECTION_LAG_EVENTS: &str = "anquan_projection_lag_events";
/// Gauge of how far a projection's commit position is behind the head's where the backend
/// cannot count events (on KurrentDB, bytes of its log), labelled `projection`.
pub const PROJECTION_LAG_POSITIONS: &str = "anquan_projection_lag_positions";
/// Gauge of how far behind the head of the log a projection is in time, labelled `projection`.
pub const PROJECTION_LAG_SECONDS: &str = "anquan_projection_lag_seconds";
/// Gauge, 1 when this node leads the projection group, else 0, labelled `group`.
pub const PROJECTION_LEADER: &str = "anquan_projection_leader";
/// Gauge of the leadership term this node last saw, labelled `group`.
pub const PROJECTION_LEADER_TERM: &str = "anquan_projection_leader_term";

/// Bucket bounds, in seconds, of requests and appends: 1 ms to the 30 s request time limit.
const REQUEST_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds, in seconds, of the watchers' passes: a full pass over a province's files takes
/// seconds to minutes.
const PASS_BUCKETS_SECONDS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// How often histograms' samples are folded into their buckets when nobody scrapes, so they
/// do not pile up in memory.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics` recorder, once, describes
/// every metric, and returns the handle that renders them. Later calls return the same handle.
///
/// If another recorder was installed first (only a test harness would), the handle renders the
/// descriptions and nothing recorded; that is logged, not an error, because metrics must never
/// stop the service.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %error, "another metrics recorder is installed; /metrics will show nothing recorded");
            }
            describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// Renders every metric in Prometheus's text format (version 0.0.4).
pub fn render() -> String {
    install().render()
}

/// Records the time from its creation to its drop into a histogram: one watcher pass, whether
/// it succeeds or fails, unless it is discarded.
pub(crate) struct PassTimer {
    histogram: Option<metrics::Histogram>,
    started: Instant,
}

impl PassTimer {
    pub(crate) fn start(histogram: metrics::Histogram) -> Self {
        Self {
            histogram: Some(histogram),
            started: Instant::now(),
        }
    }

    /// Records nothing: the pass turned into another that records itself.
    pub(crate) fn discard(mut self) {
        self.histogram = None;
    }
}

impl Drop for PassTimer {
    fn drop(&mut self) {
        if let Some(histogram) = &self.histogram {
            histogram.record(self.started.elapsed());
        }
    }
}

fn builder() -> PrometheusBuilder {
    let buckets = PrometheusBuilder::new()
        .set_buckets(REQUEST_BUCKETS_SECONDS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Suffix("_pass_duration_seconds".to_owned()),
                PASS_BUCKETS_SECONDS,
            )
        });
    match buckets {
        Ok(builder) => builder,
        // Only an empty list of buckets is refused, and both are non-empty constants.
        Err(error) => {
            tracing::warn!(error = %error, "histogram buckets refused; histograms are rendered as summaries");
            PrometheusBuilder::new()
        }
    }
}

fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "cannot start the metrics upkeep thread; histograms are folded at each scrape only");
    }
}

/// Describes every metric anquan records, so `/metrics` has a `HELP` line for each (the units
/// are kept by the exporter, which does not render them unless it renames metrics by them).
fn describe() {
    describe_counter!(
        APPENDS_TOTAL,
        Unit::Count,
        "Appends to the event store, by backend and outcome (ok, idempotent, conflict, command_id_reused, invalid, error)"
    );
    describe_counter!(
        APPENDED_EVENTS_TOTAL,
        Unit::Count,
        "Events written to the event store, by backend (an idempotent retry writes none)"
    );
    describe_histogram!(
        APPEND_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one append to the event store, whatever its outcome, by backend"
    );
    describe_histogram!(
        GRAPHQL_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one GraphQL operation over HTTP, by operation (type and root fields) and outcome (OK or the first error's code)"
    );
    describe_counter!(
        GRAPHQL_REQUESTS_TOTAL,
        Unit::Count,
        "GraphQL operations over HTTP, by operation (type and root fields) and outcome (OK or the first error's code)"
    );
    describe_histogram!(
        SUPERVISION_WATCHER_PASS_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one pass of the supervision watcher (applied events and passed deadlines)"
    );
    describe_histogram!(
        METRICS_WATCHER_PASS_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one pass of the town-statistics watcher, by pass (follow: touched enterprises; full: every enterprise)"
    );
    describe_counter!(
        METRICS_PAST_ANSWERS_TOTAL,
        Unit::Count,
        "Town statistics computed at past instants, by source (history: summed from the history of contributions; history_and_files: from the history, with the enterprises the log touched since its position evaluated from their files; files: every enterprise's file evaluated)"
    );
    describe_counter!(
        PAST_LOOKUPS_TOTAL,
        Unit::Count,
        "Instants looked up in the history of contributions, by path (sums_by_day: each town's sums by day and hour, corrected by the enterprises changed since; row_per_enterprise: one row per enterprise, while no summed boundary is within three hours before the instant)"
    );
    describe_gauge!(
        REBUILD_EVENTS,
        Unit::Count,
        "Events folded so far by the running rebuild, by projection group"
    );
    describe_gauge!(
        REBUILD_POSITION,
        Unit::Count,
        "Log position the running rebuild has folded up to, by projection group"
    );
    describe_gauge!(
        PROJECTION_POSITION,
        Unit::Count,
        "Log position (commit part) a projection has applied, by projection"
    );
    describe_gauge!(
        PROJECTION_LAG_EVENTS,
        Unit::Count,
        "Events a projection is behind the head of the log, by projection (backends that count events)"
    );
    describe_gauge!(
        PROJECTION_LAG_POSITIONS,
        Unit::Count,
        "Commit positions a projection is behind the head of the log, by projection (backends that cannot count events)"
    );
    describe_gauge!(
        PROJECTION_LAG_SECONDS,
        Unit::Seconds,
        "How far behind the head of the log a projection is in time, by projection"
    );
    describe_gauge!(
        PROJECTION_LEADER,
        Unit::Count,
        "1 when this node leads the projection group, else 0, by group"
    );
    describe_gauge!(
        PROJECTION_LEADER_TERM,
        Unit::Count,
        "Leadership term of the projection group this node last saw, by group"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_twice_keeps_one_recorder_with_help_lines_and_seconds_buckets() {
        let first = install();
        metrics::counter!(APPENDS_TOTAL, "backend" => "observability-test", "outcome" => "ok").increment(2);
        metrics::histogram!(GRAPHQL_REQUEST_DURATION_SECONDS, "operation" => "query health", "outcome" => "OK")
            .record(0.002);
        metrics::histogram!(SUPERVISION_WATCHER_PASS_DURATION_SECONDS).record(0.2);
        let text = install().render();
        assert_eq!(first.render().lines().count(), text.lines().count());
        assert!(
            text.contains(&format!("# HELP {APPENDS_TOTAL} Appends to the event store")),
            "{text}"
        );
        assert!(text.contains(&format!("# TYPE {APPENDS_TOTAL} counter")), "{text}");
        assert!(
            text.contains(&format!(
                "{APPENDS_TOTAL}{{backend=\"observability-test\",outcome=\"ok\"}} 2"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{GRAPHQL_REQUEST_DURATION_SECONDS}_bucket{{operation=\"query health\",outcome=\"OK\",le=\"0.0025\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{SUPERVISION_WATCHER_PASS_DURATION_SECONDS}_bucket{{le=\"300\"}}"
            )),
            "{text}"
        );
    }
}
