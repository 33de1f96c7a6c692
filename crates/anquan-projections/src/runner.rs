//! The projection runner: create every projection's tables, read their checkpoints, follow
//! the global log from there in batches, and commit each batch with its checkpoint in one
//! transaction. One reader serves every projection (see `fold`: each page is read and decoded
//! once, and folded on one core while the previous page commits on the other). It publishes
//! how far every projection has got, so a writer can wait for its own events to become
//! readable.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use anquan_event_store::{EventStore, Position, ReadModelError, ReadModelStore, Statement};

use crate::error::RunnerError;
use crate::fold::{self, Fold, Until};
use crate::projection::Projection;

/// Most events folded into one batch (one transaction). Catching up, larger batches commit
/// (and fsync) less often and fold more reviews into their upload's insert: serve caught up with
/// the scale-1 demo at about 39k events/s with 2,000, 55k with 5,000 and 63-77k with 10,000, its
/// peak RSS growing from 150 to 185 and 215 MiB. A batch also holds the SQLite file's write lock,
/// which appends wait for, for about 90 ms at 5,000 events; the live tail's batches are only
/// what was appended since the last one.
pub const PROJECTION_BATCH_MAX: usize = 5_000;
/// Most attempts at one store call before the projection stops.
pub const APPLY_ATTEMPTS_MAX: usize = fold::STORE_ATTEMPTS_MAX;
/// A rebuild reports its progress every this many events.
pub const REBUILD_PROGRESS_EVERY: u64 = 10_000;

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
    /// (an undecodable event, or a store that keeps failing) or the event store closes; cancel
    /// it by dropping the future.
    pub async fn run(&self) -> Result<(), RunnerError> {
        if self.projections.is_empty() {
            return Ok(());
        }
        let mut checkpoints = Vec::with_capacity(self.projections.len());
        for index in 0..self.projections.len() {
            checkpoints.push(self.prepare_one(index).await?);
        }
        let indexes: Vec<usize> = (0..self.projections.len()).collect();
        self.fold(&indexes, checkpoints, Until::Forever, |_| {}).await?;
        Ok(())
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
        let mut next_report = REBUILD_PROGRESS_EVERY;
        let folded = self
            .fold(&[index], vec![None], Until::EndOfLog, |folded| {
                if folded.events < next_report {
                    return;
                }
                next_report = folded.events + REBUILD_PROGRESS_EVERY;
                let seconds = started.elapsed().as_secs_f64().max(f64::EPSILON);
                tracing::info!(
                    projection.name = projection.name(),
                    events.count = folded.events,
                    position = ?folded.last_position,
                    events_per_second = (folded.events as f64 / seconds).round(),
                    "rebuild progress"
                );
            })
            .await?;
        let report = RebuildReport {
            projection: projection.name(),
            events: folded.events,
            last_position: folded.last_position,
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

    /// Creates a projection's tables and its query indexes: the runner serves queries while it
    /// catches up, so the indexes are there from the start.
    async fn migrate(&self, projection: &dyn Projection) -> Result<(), RunnerError> {
        let dialect = self.read_models.dialect();
        for ddl in [projection.schema(dialect), projection.query_indexes(dialect)] {
            if ddl.trim().is_empty() {
                continue;
            }
            self.retry_read_model(projection.name(), || self.read_models.migrate(ddl))
                .await?;
        }
        Ok(())
    }

    /// Folds the log into the projections at `indexes` from their checkpoints, publishing each
    /// committed batch's position.
    async fn fold(
        &self,
        indexes: &[usize],
        checkpoints: Vec<Option<Position>>,
        until: Until,
        progress: impl FnMut(fold::Folded),
    ) -> Result<fold::Folded, RunnerError> {
        let projections = indexes
            .iter()
            .filter_map(|index| self.projections.get(*index).cloned())
            .collect();
        Fold {
            event_store: self.event_store.as_ref(),
            read_models: self.read_models.as_ref(),
            projections,
            checkpoints,
            page_max: PROJECTION_BATCH_MAX,
            until,
            cancel: None,
        }
        .run(
            |slot, position| {
                if let Some(index) = indexes.get(slot) {
                    self.publish(*index, Some(position));
                }
            },
            progress,
        )
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
                    fold::log_retry(projection, attempts, &error);
                    tokio::time::sleep(fold::backoff(attempts)).await;
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
