//! Refolding the fact read models from the log up to its current end, for a rebuild into
//! fresh tables (or a fresh database) and for the rebuild benchmark: each page of the log is
//! read and decoded once and folded into every projection on one core while the previous page
//! commits on the other (the runner's `fold`), each projection's batch in one transaction with
//! its checkpoint. The indexes only queries use are created at the end, over full tables.
//! Cancellable between pages; running it again resumes from the checkpoints.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anquan_event_store::{EventStore, LeaseTerm, Position, ReadModelStore};

use crate::error::RunnerError;
use crate::fold::{Fold, Until};
use crate::projection::Projection;

/// Events per page of a rebuild, each page one transaction. Larger pages rewrite the randomly
/// keyed index pages (document ids) fewer times and fold more reviews into their upload's
/// insert: on the scale-1 demo 30,000 gave about 100-110k events/s against 75-105k with 10,000,
/// for about 100 MiB more memory in flight.
pub const REBUILD_PAGE_EVENTS_MAX: usize = 30_000;

/// Gauge of the events the running rebuild has folded so far, labelled `projection_group`.
pub const REBUILD_EVENTS: &str = "anquan_rebuild_events";
/// Gauge of the log position the running rebuild has folded up to, labelled `projection_group`.
pub const REBUILD_POSITION: &str = "anquan_rebuild_position";
/// The `projection_group` label of a rebuild of the fact read models.
const REBUILD_GROUP: &str = "read_models";

/// How a fold is going.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldProgress {
    pub events: u64,
    pub position: Position,
    pub per_second: f64,
    pub elapsed: Duration,
}

/// How a fold ended.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldReport {
    pub events: u64,
    pub last_position: Option<Position>,
    pub elapsed: Duration,
    /// True when `cancel` stopped it before the end of the log.
    pub cancelled: bool,
}

/// Folds the log into `projections` from their checkpoints (the lowest of them) to the end of
/// the log as it is now, then creates their query indexes (unless cancelled). Into live read
/// models, pass the leadership term the caller holds (see `crate::leadership`): every batch is
/// fenced by it, so a node that takes the lease meanwhile stops the rebuild instead of racing it.
pub async fn fold_to_end(
    event_store: &dyn EventStore,
    read_models: &dyn ReadModelStore,
    projections: &[Arc<dyn Projection>],
    lease: Option<&LeaseTerm>,
    cancel: &AtomicBool,
    progress: impl FnMut(&FoldProgress),
) -> Result<FoldReport, RunnerError> {
    fold_pages(
        event_store,
        read_models,
        projections,
        REBUILD_PAGE_EVENTS_MAX,
        lease,
        cancel,
        progress,
    )
    .await
}

/// [`fold_to_end`] with pages of `page_events` events. The rows it builds do not depend on the
/// page size (a batch names every row by its whole key); tests fold one log in pages of 1, 7
/// and 30,000 events and compare the dumps.
pub async fn fold_to_end_in_pages(
    event_store: &dyn EventStore,
    read_models: &dyn ReadModelStore,
    projections: &[Arc<dyn Projection>],
    page_events: usize,
    cancel: &AtomicBool,
    progress: impl FnMut(&FoldProgress),
) -> Result<FoldReport, RunnerError> {
    fold_pages(
        event_store,
        read_models,
        projections,
        page_events,
        None,
        cancel,
        progress,
    )
    .await
}

async fn fold_pages(
    event_store: &dyn EventStore,
    read_models: &dyn ReadModelStore,
    projections: &[Arc<dyn Projection>],
    page_events: usize,
    lease: Option<&LeaseTerm>,
    cancel: &AtomicBool,
    mut progress: impl FnMut(&FoldProgress),
) -> Result<FoldReport, RunnerError> {
    let started = Instant::now();
    let dialect = read_models.dialect();
    let read_error = |projection: &Arc<dyn Projection>| {
        let projection = projection.name();
        move |source| RunnerError::ReadModel {
            projection,
            attempts: 1,
            source,
        }
    };
    let mut checkpoints = Vec::with_capacity(projections.len());
    for projection in projections {
        crate::layout::ensure_layout(read_models, projection.as_ref())
            .await
            .map_err(read_error(projection))?;
        read_models
            .migrate(projection.schema(dialect))
            .await
            .map_err(read_error(projection))?;
        checkpoints.push(
            read_models
                .checkpoint(projection.name())
                .await
                .map_err(read_error(projection))?,
        );
    }
    let after = checkpoints.iter().copied().min().flatten();
    let folded = Fold {
        event_store,
        read_models,
        projections: projections.to_vec(),
        checkpoints,
        page_max: page_events.max(1),
        until: Until::EndOfLog,
        cancel: Some(cancel),
        stop: None,
        isolate: false,
        read_health: None,
        lease: lease.cloned(),
    }
    .run(
        |_, _| {},
        |folded| {
            let elapsed = started.elapsed();
            metrics::gauge!(REBUILD_EVENTS, "projection_group" => REBUILD_GROUP).set(folded.events as f64);
            if let Some(position) = folded.last_position {
                metrics::gauge!(REBUILD_POSITION, "projection_group" => REBUILD_GROUP).set(position.commit as f64);
                progress(&FoldProgress {
                    events: folded.events,
                    position,
                    per_second: folded.events as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
                    elapsed,
                });
            }
        },
    )
    .await?;
    let cancelled = cancel.load(std::sync::atomic::Ordering::Relaxed);
    if !cancelled {
        for projection in projections {
            let ddl = projection.query_indexes(dialect);
            if ddl.trim().is_empty() {
                continue;
            }
            read_models.migrate(ddl).await.map_err(read_error(projection))?;
        }
    }
    Ok(FoldReport {
        events: folded.events,
        last_position: folded.last_position.or(after),
        elapsed: started.elapsed(),
        cancelled,
    })
}
