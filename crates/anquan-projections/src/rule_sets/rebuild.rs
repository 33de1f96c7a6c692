//! Refolding the fact read models from the log up to its current end, for a rebuild into
//! fresh tables (or a fresh database) and for the rebuild benchmark: each page of the log is
//! read and decoded once and applied to every projection, each in one transaction with its
//! checkpoint. Cancellable between pages; running it again resumes from the checkpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anquan_event_store::{EventStore, Position, ProjectionBatch, READ_BATCH_MAX, ReadModelStore};

use crate::error::RunnerError;
use crate::projection::Projection;

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
/// the log as it is now.
pub async fn fold_to_end(
    event_store: &dyn EventStore,
    read_models: &dyn ReadModelStore,
    projections: &[Arc<dyn Projection>],
    cancel: &AtomicBool,
    mut progress: impl FnMut(&FoldProgress),
) -> Result<FoldReport, RunnerError> {
    let started = Instant::now();
    let mut checkpoints = Vec::with_capacity(projections.len());
    for projection in projections {
        let read_error = |source| RunnerError::ReadModel {
            projection: projection.name(),
            attempts: 1,
            source,
        };
        read_models
            .migrate(projection.schema(read_models.dialect()))
            .await
            .map_err(read_error)?;
        checkpoints.push(read_models.checkpoint(projection.name()).await.map_err(read_error)?);
    }
    let mut after = checkpoints.iter().copied().min().flatten();
    let mut events: u64 = 0;
    let mut cancelled = false;
    loop {
        if cancel.load(Ordering::Relaxed) {
            cancelled = true;
            break;
        }
        let page = event_store
            .read_all(after, READ_BATCH_MAX)
            .await
            .map_err(|source| RunnerError::EventStore {
                projection: "rebuild",
                attempts: 1,
                source,
            })?;
        let Some(last) = page.last() else { break };
        let last_position = last.position;
        let mut decoded = Vec::with_capacity(page.len());
        for event in &page {
            decoded.push(event.decode().map_err(|source| RunnerError::Undecodable {
                projection: "rebuild",
                position: event.position,
                event_type: event.event_type.clone(),
                source,
            })?);
        }
        for (projection, checkpoint) in projections.iter().zip(checkpoints.iter_mut()) {
            let mut statements = Vec::new();
            for (event, data) in page.iter().zip(&decoded) {
                if checkpoint.is_some_and(|checkpoint| event.position <= checkpoint) {
                    continue;
                }
                projection
                    .apply(event, data, &mut statements)
                    .map_err(|source| RunnerError::Apply {
                        projection: projection.name(),
                        position: event.position,
                        source,
                    })?;
            }
            read_models
                .apply(ProjectionBatch {
                    projection: projection.name().to_owned(),
                    statements,
                    checkpoint: last_position,
                })
                .await
                .map_err(|source| RunnerError::ReadModel {
                    projection: projection.name(),
                    attempts: 1,
                    source,
                })?;
            *checkpoint = Some(last_position);
        }
        events += page.len() as u64;
        after = Some(last_position);
        let elapsed = started.elapsed();
        progress(&FoldProgress {
            events,
            position: last_position,
            per_second: events as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            elapsed,
        });
    }
    Ok(FoldReport {
        events,
        last_position: after,
        elapsed: started.elapsed(),
        cancelled,
    })
}
