//! The projection runner: for each projection, create its tables, read its checkpoint, follow
//! the global log from there in batches, and commit each batch with its checkpoint in one
//! transaction. It publishes how far every projection has got, so a writer can wait for its
//! own events to become readable.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;
use tracing::Instrument;

use anquan_event_store::{
    EventStore, Position, ProjectionBatch, ReadModelError, ReadModelStore, RecordedEvent, Statement, StoreError,
    subscribe_all,
};

use crate::error::RunnerError;
use crate::projection::Projection;

/// Most events folded into one batch (one transaction).
pub const PROJECTION_BATCH_MAX: usize = 500;
/// Most attempts at one store call before the projection stops.
pub const APPLY_ATTEMPTS_MAX: usize = 8;
/// A rebuild reports its progress every this many events.
pub const REBUILD_PROGRESS_EVERY: u64 = 10_000;
/// The first pause after a failed store call; it doubles on every further failure.
const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// The longest pause between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs projections over an event store into a read-model store.
pub struct ProjectionRunner {
    event_store: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModelStore>,
    projections: Vec<Arc<dyn Projection>>,
    /// The applied position of each projection, by index in `projections`.
    positions: Mutex<Vec<Option<Position>>>,
    /// The lowest applied position over all projections.
    applied: watch::Sender<Option<Position>>,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub projection: &'static str,
    pub events: u64,
    pub last_position: Option<Position>,
    pub duration: Duration,
}

/// Waits until `applied` reaches `position`; returns false if `timeout` passes first or the
/// runner is gone.
pub async fn wait_for_position(
    mut applied: watch::Receiver<Option<Position>>,
    position: Position,
    timeout: Duration,
) -> bool {
    let reached = applied.wait_for(|applied| applied.is_some_and(|applied| applied >= position));
    matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
}

impl ProjectionRunner {
    /// Creates a runner with no projections.
    pub fn new(event_store: Arc<dyn EventStore>, read_models: Arc<dyn ReadModelStore>) -> Self {
        Self {
            event_store,
            read_models,
            projections: Vec::new(),
            positions: Mutex::new(Vec::new()),
            applied: watch::Sender::new(None),
        }
    }

    /// Adds a projection.
    pub fn with_projection(mut self, projection: Arc<dyn Projection>) -> Self {
        self.projections.push(projection);
        self.lock_positions().push(None);
        self
    }

    /// Returns a receiver of the lowest position every projection has applied.
    pub fn applied(&self) -> watch::Receiver<Option<Position>> {
        self.applied.subscribe()
    }

    /// Creates every projection's tables and reads its checkpoint, so `applied` is right
    /// before the first event is folded. `run` does this too.
    pub async fn prepare(&self) -> Result<(), RunnerError> {
        for index in 0..self.projections.len() {
            self.prepare_one(index).await?;
        }
        Ok(())
    }

    /// Follows the log for every projection, forever. Returns only when a projection stops
    /// (an undecodable event, or a store that keeps failing); cancel it by dropping the future.
    pub async fn run(&self) -> Result<(), RunnerError> {
        let runs = (0..self.projections.len()).map(|index| self.run_one(index));
        futures::future::try_join_all(runs).await.map(|_| ())
    }

    /// Deletes a projection's rows and checkpoint, then folds the whole log again up to its
    /// current end, logging progress. The projection must not be running meanwhile.
    pub async fn rebuild(&self, name: &str) -> Result<RebuildReport, RunnerError> {
        let index = self
            .projections
            .iter()
            .position(|projection| projection.name() == name)
            .ok_or_else(|| RunnerError::UnknownProjection(name.to_owned()))?;
        let projection = Arc::clone(&self.projections[index]);
        let started = Instant::now();
        self.migrate(projection.as_ref()).await?;
        let deletes: Vec<Statement> = projection
            .tables()
            .iter()
            .rev()
            .map(|table| Statement::new(format!("DELETE FROM {table}"), Vec::new()))
            .collect();
        let read_models = Arc::clone(&self.read_models);
        self.retry_read_model(projection.name(), || {
            read_models.reset(projection.name(), deletes.clone())
        })
        .await?;
        self.publish(index, None);
        tracing::info!(projection.name = projection.name(), "projection reset, rebuilding");
        let (events, last_position) = self.catch_up(index, None, started).await?;
        let report = RebuildReport {
            projection: projection.name(),
            events,
            last_position,
            duration: started.elapsed(),
        };
        tracing::info!(
            projection.name = report.projection,
            events.count = report.events,
            duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            "projection rebuilt"
        );
        Ok(report)
    }

    async fn prepare_one(&self, index: usize) -> Result<Option<Position>, RunnerError> {
        let projection = Arc::clone(&self.projections[index]);
        self.migrate(projection.as_ref()).await?;
        let read_models = Arc::clone(&self.read_models);
        let checkpoint = self
            .retry_read_model(projection.name(), || read_models.checkpoint(projection.name()))
            .await?;
        self.publish(index, checkpoint);
        Ok(checkpoint)
    }

    async fn migrate(&self, projection: &dyn Projection) -> Result<(), RunnerError> {
        let ddl = projection.schema(self.read_models.dialect());
        self.retry_read_model(projection.name(), || self.read_models.migrate(ddl))
            .await
    }

    async fn run_one(&self, index: usize) -> Result<(), RunnerError> {
        let name = self.projections[index].name();
        let mut checkpoint = self.prepare_one(index).await?;
        let mut failures = 0;
        loop {
            let events = subscribe_all(Arc::clone(&self.event_store), checkpoint).ready_chunks(PROJECTION_BATCH_MAX);
            futures::pin_mut!(events);
            let error = loop {
                let Some(chunk) = events.next().await else {
                    tracing::info!(projection.name = name, "event store closed, projection stops");
                    return Ok(());
                };
                let mut ready = Vec::with_capacity(chunk.len());
                let mut failed = None;
                for item in chunk {
                    match item {
                        Ok(event) => ready.push(event),
                        Err(error) => failed = Some(error),
                    }
                }
                if let Some(position) = self.apply_batch(index, &ready).await? {
                    checkpoint = Some(position);
                    failures = 0;
                }
                if let Some(error) = failed {
                    break error;
                }
            };
            failures += 1;
            if failures >= APPLY_ATTEMPTS_MAX {
                return Err(RunnerError::EventStore {
                    projection: name,
                    attempts: failures,
                    source: error,
                });
            }
            log_retry(name, failures, &error);
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    /// Folds the log after `after` up to its current end, page by page.
    async fn catch_up(
        &self,
        index: usize,
        mut after: Option<Position>,
        started: Instant,
    ) -> Result<(u64, Option<Position>), RunnerError> {
        let name = self.projections[index].name();
        let mut events_total: u64 = 0;
        let mut next_report = REBUILD_PROGRESS_EVERY;
        loop {
            let event_store = Arc::clone(&self.event_store);
            let page = self
                .retry_event_store(name, || event_store.read_all(after, PROJECTION_BATCH_MAX))
                .await?;
            let Some(position) = self.apply_batch(index, &page).await? else {
                return Ok((events_total, after));
            };
            after = Some(position);
            events_total += page.len() as u64;
            if events_total >= next_report {
                next_report += REBUILD_PROGRESS_EVERY;
                let seconds = started.elapsed().as_secs_f64().max(f64::EPSILON);
                tracing::info!(
                    projection.name = name,
                    events.count = events_total,
                    position = %position,
                    events_per_second = (events_total as f64 / seconds).round(),
                    "rebuild progress"
                );
            }
        }
    }

    /// Folds events into one batch and commits it with its checkpoint. Returns the new
    /// checkpoint, or `None` for an empty batch.
    async fn apply_batch(&self, index: usize, events: &[RecordedEvent]) -> Result<Option<Position>, RunnerError> {
        let projection = Arc::clone(&self.projections[index]);
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            "projection.batch",
            projection.name = projection.name(),
            position.from = %first.position,
            events.count = events.len()
        );
        async {
            let batch = fold(projection.as_ref(), events, last.position).inspect_err(|error| {
                tracing::error!(error = %error, "projection stopped on an event it cannot fold");
            })?;
            let read_models = Arc::clone(&self.read_models);
            self.retry_read_model(projection.name(), || read_models.apply(batch.clone()))
                .await?;
            self.publish(index, Some(last.position));
            Ok(Some(last.position))
        }
        .instrument(span)
        .await
    }

    async fn retry_read_model<T, F, Fut>(&self, projection: &'static str, mut call: F) -> Result<T, RunnerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ReadModelError>>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match call().await {
                Ok(value) => return Ok(value),
                Err(source) if attempts >= APPLY_ATTEMPTS_MAX => {
                    tracing::error!(projection.name = projection, error = %source, attempts, "read-model store keeps failing, projection stops");
                    return Err(RunnerError::ReadModel {
                        projection,
                        attempts,
                        source,
                    });
                }
                Err(error) => {
                    log_retry(projection, attempts, &error);
                    tokio::time::sleep(backoff(attempts)).await;
                }
            }
        }
    }

    async fn retry_event_store<T, F, Fut>(&self, projection: &'static str, mut call: F) -> Result<T, RunnerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match call().await {
                Ok(value) => return Ok(value),
                Err(source) if attempts >= APPLY_ATTEMPTS_MAX => {
                    tracing::error!(projection.name = projection, error = %source, attempts, "event store keeps failing, projection stops");
                    return Err(RunnerError::EventStore {
                        projection,
                        attempts,
                        source,
                    });
                }
                Err(error) => {
                    log_retry(projection, attempts, &error);
                    tokio::time::sleep(backoff(attempts)).await;
                }
            }
        }
    }

    /// Records a projection's applied position and republishes the lowest over all of them.
    fn publish(&self, index: usize, position: Option<Position>) {
        let lowest = {
            let mut positions = self.lock_positions();
            if let Some(slot) = positions.get_mut(index) {
                *slot = position;
            }
            positions.iter().copied().min().flatten()
        };
        self.applied.send_if_modified(|applied| {
            let changed = *applied != lowest;
            *applied = lowest;
            changed
        });
    }

    fn lock_positions(&self) -> std::sync::MutexGuard<'_, Vec<Option<Position>>> {
        // Every write under this lock is a single assignment, so a poisoned lock holds no torn state.
        self.positions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decodes events and folds them into one batch ending at `checkpoint`.
fn fold(
    projection: &dyn Projection,
    events: &[RecordedEvent],
    checkpoint: Position,
) -> Result<ProjectionBatch, RunnerError> {
    let mut statements = Vec::new();
    for event in events {
        let decoded = event.decode().map_err(|source| RunnerError::Undecodable {
            projection: projection.name(),
            position: event.position,
            event_type: event.event_type.clone(),
            source,
        })?;
        projection
            .apply(event, &decoded, &mut statements)
            .map_err(|source| RunnerError::Apply {
                projection: projection.name(),
                position: event.position,
                source,
            })?;
    }
    Ok(ProjectionBatch {
        projection: projection.name().to_owned(),
        statements,
        checkpoint,
    })
}

fn backoff(attempt: usize) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    BACKOFF_INITIAL.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

fn log_retry(projection: &'static str, attempt: usize, error: &dyn std::fmt::Display) {
    tracing::warn!(projection.name = projection, attempt, error = %error, "store call failed, retrying");
}
