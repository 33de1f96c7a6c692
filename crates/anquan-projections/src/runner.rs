//! The projection runner: create every projection's tables, read their checkpoints, follow
//! the global log from there in batches, and commit each batch with its checkpoint in one
//! transaction. One reader serves every projection (see `fold`: each page is read and decoded
//! once, and folded on one core while the previous page commits on the other). It publishes
//! how far every projection has got, so a writer can wait for its own events to become
//! readable.
//!
//! A projection that fails (an event it cannot decode or apply, statements its store refuses)
//! leaves the shared fold alone: the others' batches of the page commit and they go on, while it
//! is retried by itself with capped backoff, narrowed to the event it fails on (the events
//! before it commit), so its checkpoint stays just before that event and no event is ever
//! skipped. It is
//! reported stalled (see [`ProjectionsHealth`]) until it commits that event, then folds alone to
//! the end of the log and rejoins the shared fold. `run` never returns because of a projection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, watch};

use anquan_event_store::{
    Dialect, EventStore, LeaseTerm, LogDistance, Position, ReadModelError, ReadModelStore, Statement,
};

use crate::error::RunnerError;
use crate::fold::{self, Fold, SlotFailure, Until};
use crate::health::{FailingEvent, ProjectionsHealth};
use crate::leadership::Leadership;
use crate::projection::Projection;

/// How often a node reads the shared checkpoints when no move was notified: a safety net for
/// a missed notification, and the pace of the lag figures.
pub const SHARED_CHECKPOINTS_POLL: Duration = Duration::from_secs(1);

/// Most events folded into one batch (one transaction) by a runner whose read models are in
/// SQLite, and by a stalled projection's retries on any backend. Catching up, larger batches commit
/// (and fsync) less often and fold more reviews into their upload's insert: serve caught up with
/// the scale-1 demo at about 39k events/s with 2,000, 55k with 5,000 and 63-77k with 10,000, its
/// peak RSS growing from 150 to 185 and 215 MiB. A batch also holds the SQLite file's write lock,
/// which appends wait for, for about 90 ms at 5,000 events; the live tail's batches are only
/// what was appended since the last one.
pub const PROJECTION_BATCH_MAX: usize = 5_000;
/// Most events folded into one batch by a runner whose read models are in PostgreSQL, which
/// blocks no append while a batch commits (SQLite's batch holds the file's write lock): the
/// rebuild's pages ([`crate::rule_sets::rebuild::REBUILD_PAGE_EVENTS_MAX`]), so catching up
/// folds as many reviews into their upload's insert and runs as few statements per event as a
/// rebuild. Caught up, a batch is what was appended since the last one, as on SQLite.
pub const PROJECTION_BATCH_MAX_UNLOCKED: usize = crate::rule_sets::rebuild::REBUILD_PAGE_EVENTS_MAX;
/// Most attempts at one store call before the projection stops (a rebuild), or is reported
/// stalled and retried every [`STALLED_RETRY_INTERVAL`] at most (the runner).
pub const APPLY_ATTEMPTS_MAX: usize = fold::STORE_ATTEMPTS_MAX;
/// The longest pause between a stalled projection's attempts.
pub const STALLED_RETRY_INTERVAL: Duration = fold::STALLED_RETRY_MAX;
/// How often `anquan serve` logs how far the projections have caught up while one of them folds
/// a backlog (position, head, events/s, time left).
pub const CATCH_UP_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// A rebuild reports its progress every this many events.
pub const REBUILD_PROGRESS_EVERY: u64 = 10_000;

/// Runs projections over an event store into a read-model store.
pub struct ProjectionRunner {
    event_store: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModelStore>,
    projections: Vec<Arc<dyn Projection>>,
    /// Each projection's applied position and state, by index in `projections`.
    health: ProjectionsHealth,
    /// The leadership term the runner folds under, when its group is led: every batch is
    /// fenced by it.
    lease: std::sync::Mutex<Option<LeaseTerm>>,
}

/// A projection that failed and is being retried alone.
struct Failed {
    event: Option<FailingEvent>,
    error: String,
    /// The error without its causes (see [`crate::Stall::summary`]).
    summary: String,
    deterministic: bool,
    /// The last position of the page it failed on: the next attempt commits the events before
    /// the failing one (`event`, or one at a time through here when it is not known) and stops
    /// just before it.
    narrow_through: Option<Position>,
    /// Its tables were not created yet (it failed while preparing).
    migrate: bool,
}

impl Failed {
    fn from_slot(failure: SlotFailure) -> Self {
        Failed {
            event: failure.event,
            error: anquan_event_store::error_chain(&failure.error),
            summary: failure.error.to_string(),
            deterministic: failure.deterministic,
            narrow_through: Some(failure.page_last),
            migrate: false,
        }
    }

    fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        Failed {
            event: None,
            error: anquan_event_store::error_chain(error),
            summary: error.to_string(),
            deterministic: false,
            narrow_through: None,
            migrate: false,
        }
    }
}

/// When the catch-up being logged started and was last logged.
#[derive(Default)]
struct CatchUpLog {
    started: Option<Instant>,
    last_logged: Option<Instant>,
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
            health: ProjectionsHealth::default(),
            lease: std::sync::Mutex::new(None),
        }
    }

    fn lease(&self) -> Option<LeaseTerm> {
        self.lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_lease(&self, lease: Option<LeaseTerm>) {
        *self.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = lease;
    }

    /// Folds the log whenever this node leads the projections' group, and only then, until
    /// `shutdown` turns true: takes the lease (waiting while another node has it), runs the
    /// projections fenced by its term until the lease is lost or shutdown comes, and on
    /// shutdown lets the batch in flight commit, then releases the lease so another node leads
    /// at once. A follower's positions come from [`Self::follow_shared_checkpoints`].
    pub async fn lead(&self, leadership: &Leadership, mut shutdown: watch::Receiver<bool>) {
        let group = leadership.group().to_owned();
        let leader = metrics::gauge!("anquan_projection_leader", "group" => group.clone());
        let leader_term = metrics::gauge!("anquan_projection_leader_term", "group" => group);
        leader.set(0.0);
        loop {
            let term = tokio::select! {
                term = leadership.acquire() => term,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            self.health.lead(Some(term.term));
            leader.set(1.0);
            #[expect(clippy::cast_precision_loss, reason = "a term is far below 2^52")]
            leader_term.set(term.term as f64);
            // Everything committed before this term is in the store: start from there.
            self.set_lease(Some(term.clone()));
            let stopping = shutdown.clone();
            let outcome = tokio::select! {
                outcome = self.run_until(async move {
                    let mut stopping = stopping;
                    let _ = stopping.wait_for(|stop| *stop).await;
                }) => Some(outcome),
                () = leadership.hold(&term) => None,
            };
            self.set_lease(None);
            self.health.lead(None);
            leader.set(0.0);
            match outcome {
                Some(Err(RunnerError::Fenced { lease })) => {
                    tracing::warn!(%lease, "this node's projection term ended; following again");
                }
                Some(Err(error)) => {
                    tracing::error!(error = %anquan_event_store::error_chain(&error), "the projection runner stopped; releasing the lease");
                    leadership.release(&term).await;
                    tokio::time::sleep(leadership.renew_interval()).await;
                }
                Some(Ok(())) => {
                    leadership.release(&term).await;
                    if *shutdown.borrow() {
                        return;
                    }
                }
                None => {}
            }
        }
    }

    /// Keeps this node's view of every projection's position up to date from the shared
    /// checkpoints (whoever commits them), woken by the store's checkpoint moves (PostgreSQL's
    /// `NOTIFY`) and every [`SHARED_CHECKPOINTS_POLL`]; also measures how far behind the log's
    /// head each projection is, in events and in the age of the oldest event it has not
    /// applied, and how fast they close on it (logged every [`CATCH_UP_LOG_INTERVAL`] while one
    /// catches up, and shown by [`ProjectionsHealth::catch_up`]). Runs forever.
    pub async fn follow_shared_checkpoints(&self) {
        let mut moves = self.read_models.checkpoint_moves();
        let mut failures: u32 = 0;
        let mut catch_up_log = CatchUpLog::default();
        loop {
            moves.borrow_and_update();
            match self.read_models.checkpoints().await {
                Ok(checkpoints) => {
                    failures = 0;
                    for (index, projection) in self.projections.iter().enumerate() {
                        let position = checkpoints
                            .iter()
                            .find(|(name, _)| name == projection.name())
                            .map(|(_, position)| *position);
                        if let Some(position) = position {
                            self.health.advance(index, position);
                        }
                    }
                    self.measure_lag().await;
                    self.measure_catch_up(&mut catch_up_log);
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(%error, failures, "cannot read the shared checkpoints");
                    }
                }
            }
            tokio::select! {
                changed = moves.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(SHARED_CHECKPOINTS_POLL).await;
                    }
                }
                () = tokio::time::sleep(SHARED_CHECKPOINTS_POLL) => {}
            }
        }
    }

    /// Records each projection's lag: how far its position is behind the log's head (in
    /// events where the backend can count them, else in commit positions), and the time since
    /// the first event it has not applied was recorded.
    async fn measure_lag(&self) {
        let head = *self.event_store.head().borrow();
        let traits = self.event_store.traits();
        for (index, status) in self.health.statuses().into_iter().enumerate() {
            let behind = traits.distance(status.position, head);
            let oldest = if behind.positions() == 0 {
                None
            } else {
                match self.event_store.read_all(status.position, 1).await {
                    Ok(events) => events.first().map(|event| event.recorded_at),
                    Err(_) => status.lag.and_then(|lag| lag.oldest_unapplied),
                }
            };
            let lag = crate::health::Lag {
                behind,
                oldest_unapplied: oldest,
            };
            self.health.set_lag(index, lag);
            let projection = status.name;
            #[expect(clippy::cast_precision_loss, reason = "positions and lags are far below 2^52")]
            {
                // The commit part: the whole position on a backend with dense positions.
                metrics::gauge!("anquan_projection_position", "projection" => projection)
                    .set(status.position.map_or(0.0, |position| position.commit as f64));
                match behind {
                    LogDistance::Events(events) => {
                        metrics::gauge!("anquan_projection_lag_events", "projection" => projection).set(events as f64);
                    }
                    LogDistance::Positions(positions) => {
                        metrics::gauge!("anquan_projection_lag_positions", "projection" => projection)
                            .set(positions as f64);
                    }
                }
            }
            metrics::gauge!("anquan_projection_lag_seconds", "projection" => projection)
                .set(lag.seconds(chrono::Utc::now()));
        }
    }

    /// Samples where the projections as a whole stand against the log's head (no query: the
    /// head is the store's watch, the positions the health's), and logs it every
    /// [`CATCH_UP_LOG_INTERVAL`] while a projection catches up, then once when all have.
    fn measure_catch_up(&self, log: &mut CatchUpLog) {
        let now = Instant::now();
        let head = *self.event_store.head().borrow();
        let counts_events = self.event_store.traits().dense_positions;
        let Some(status) = self.health.record_catch_up(now, head, counts_events) else {
            return;
        };
        let catch_up = status.progress;
        if status.catching_up {
            let started = *log.started.get_or_insert(now);
            if log
                .last_logged
                .is_none_or(|last| now.duration_since(last) >= CATCH_UP_LOG_INTERVAL)
            {
                log.last_logged = Some(now);
                tracing::info!(
                    position = catch_up.position,
                    head = catch_up.head,
                    events.remaining = catch_up.remaining(),
                    events_per_second = catch_up.per_second.round(),
                    counts_events = status.counts_events,
                    eta_seconds = catch_up.eta.map(|eta| eta.as_secs()),
                    elapsed_seconds = now.duration_since(started).as_secs(),
                    "projections catching up with the log"
                );
            }
        } else if let Some(started) = log.started.take() {
            log.last_logged = None;
            tracing::info!(
                position = catch_up.position,
                head = catch_up.head,
                elapsed_ms = u64::try_from(now.duration_since(started).as_millis()).unwrap_or(u64::MAX),
                "projections caught up with the log"
            );
        }
    }

    /// Adds a projection.
    pub fn with_projection(mut self, projection: Arc<dyn Projection>) -> Self {
        self.health.add(projection.name());
        self.projections.push(projection);
        self
    }

    /// Returns a receiver of the lowest position every projection has applied.
    pub fn applied(&self) -> watch::Receiver<Option<Position>> {
        self.health.applied()
    }

    /// Returns the projections' positions and states, as the runner updates them.
    pub fn health(&self) -> ProjectionsHealth {
        self.health.clone()
    }

    /// Creates every projection's tables and reads its checkpoint, so `applied` is right
    /// before the first event is folded. `run` does this too.
    pub async fn prepare(&self) -> Result<(), RunnerError> {
        for index in 0..self.projections.len() {
            self.prepare_one(index).await?;
        }
        Ok(())
    }

    /// Follows the log for every projection, forever. A projection that fails is retried alone
    /// (see the module documentation) while the others go on; `run` returns only when the event
    /// store closes. Cancel it by dropping the future.
    pub async fn run(&self) -> Result<(), RunnerError> {
        self.run_until(std::future::pending()).await
    }

    /// [`Self::run`] until `shutdown` completes: the batch being committed then commits, the
    /// shared fold stops before the next, and it returns. A batch refused because the runner's
    /// term ended returns [`RunnerError::Fenced`].
    pub async fn run_until(&self, shutdown: impl Future<Output = ()>) -> Result<(), RunnerError> {
        if self.projections.is_empty() {
            return Ok(());
        }
        tokio::pin!(shutdown);
        let mut shutting_down = false;
        let mut following = Vec::with_capacity(self.projections.len());
        let mut recoveries = FuturesUnordered::new();
        for index in 0..self.projections.len() {
            match self.prepare_one(index).await {
                Ok(_) => following.push(index),
                Err(error) => recoveries.push(self.recover(
                    index,
                    Failed {
                        migrate: true,
                        ..Failed::from_error(&error)
                    },
                )),
            }
        }
        loop {
            // A fold starts from the checkpoints in the store, which every commit moved.
            let mut indexes = Vec::with_capacity(following.len());
            let mut checkpoints = Vec::with_capacity(following.len());
            for index in std::mem::take(&mut following) {
                let name = self.projections[index].name();
                let read_models = Arc::clone(&self.read_models);
                match self.retry_read_model(name, || read_models.checkpoint(name)).await {
                    Ok(checkpoint) => {
                        self.health.publish(index, checkpoint);
                        indexes.push(index);
                        checkpoints.push(checkpoint);
                    }
                    Err(error) => recoveries.push(self.recover(index, Failed::from_error(&error))),
                }
            }
            if shutting_down {
                return Ok(());
            }
            if indexes.is_empty() {
                // Every projection is stalled: wait for one to get going again.
                tokio::select! {
                    recovered = recoveries.next() => match recovered {
                        Some(index) => following.push(index),
                        None => return Ok(()),
                    },
                    () = &mut shutdown, if !shutting_down => return Ok(()),
                }
                continue;
            }
            let stop = Notify::new();
            let mut stopping = false;
            let outcome = {
                let fold = self.follow(&indexes, checkpoints, &stop);
                tokio::pin!(fold);
                loop {
                    tokio::select! {
                        outcome = &mut fold => break outcome,
                        Some(index) = recoveries.next() => {
                            // It caught up alone; stop the shared fold between pages so it
                            // starts again with it.
                            following.push(index);
                            stopping = true;
                            stop.notify_one();
                        }
                        () = &mut shutdown, if !shutting_down => {
                            shutting_down = true;
                            stopping = true;
                            stop.notify_one();
                        }
                    }
                }
            };
            if let Ok(failures) = &outcome
                && let Some(lease) = failures.iter().find_map(|failure| fenced(&failure.error))
            {
                return Err(RunnerError::Fenced { lease });
            }
            match outcome {
                Ok(failures) => {
                    if failures.is_empty() && !stopping {
                        tracing::info!("event store closed, projections stop");
                        return Ok(());
                    }
                    let mut failed = vec![false; indexes.len()];
                    for failure in failures {
                        if let Some(index) = indexes.get(failure.slot) {
                            failed[failure.slot] = true;
                            recoveries.push(self.recover(*index, Failed::from_slot(failure)));
                        }
                    }
                    following.extend(
                        indexes
                            .iter()
                            .zip(failed)
                            .filter(|(_, failed)| !failed)
                            .map(|(index, _)| *index),
                    );
                }
                Err(error) => {
                    // The fold itself failed (a folding task panicked): every projection in it
                    // is retried alone.
                    for index in indexes {
                        recoveries.push(self.recover(index, Failed::from_error(&error)));
                    }
                }
            }
        }
    }

    /// Folds the log into the projections at `indexes` until one of them fails (returned) or
    /// `stop` is notified or the event store closes (nothing returned).
    async fn follow(
        &self,
        indexes: &[usize],
        checkpoints: Vec<Option<Position>>,
        stop: &Notify,
    ) -> Result<Vec<SlotFailure>, RunnerError> {
        let projections = indexes
            .iter()
            .filter_map(|index| self.projections.get(*index).cloned())
            .collect();
        let (_, failures) = Fold {
            event_store: self.event_store.as_ref(),
            read_models: self.read_models.as_ref(),
            projections,
            checkpoints,
            page_max: self.follow_batch_max(),
            until: Until::Forever,
            cancel: None,
            stop: Some(stop),
            isolate: true,
            read_health: Some((&self.health, indexes)),
            lease: self.lease(),
        }
        .run_isolated(
            |slot, position| {
                if let Some(index) = indexes.get(slot) {
                    self.health.publish(*index, Some(position));
                }
            },
            |_| {},
        )
        .await?;
        Ok(failures)
    }

    /// Most events per batch while following the log: larger where a batch blocks no append.
    fn follow_batch_max(&self) -> usize {
        match self.read_models.dialect() {
            Dialect::Postgres => PROJECTION_BATCH_MAX_UNLOCKED,
            Dialect::Sqlite => PROJECTION_BATCH_MAX,
        }
    }

    /// Retries a failed projection alone, with backoff capped at [`STALLED_RETRY_INTERVAL`],
    /// until it has committed the event it failed on and folded alone to the end of the log;
    /// returns its index, to rejoin the shared fold. It is reported stalled at once when the
    /// failure is deterministic (an event it cannot decode or apply), else after
    /// [`APPLY_ATTEMPTS_MAX`] attempts: a store that heals within seconds is not a stall.
    async fn recover(&self, index: usize, mut failed: Failed) -> usize {
        let name = self.projections[index].name();
        let mut attempts: usize = 1;
        if failed.narrow_through.is_some() && !failed.deterministic {
            // Most store failures are a blip: the same pages again, after a short pause.
            tokio::time::sleep(fold::retry_backoff(attempts)).await;
            let narrow_through = failed.narrow_through.take();
            match self.retry_alone(index, &mut failed).await {
                Ok(()) => return self.recovered(index),
                Err(next) => {
                    failed = next;
                    failed.narrow_through = failed.narrow_through.or(narrow_through);
                }
            }
            attempts += 1;
        }
        if failed.narrow_through.is_some() {
            // At once, the events before the failing one (one at a time through the page when
            // it is not known), so it is reported stalled with its checkpoint just before it.
            match self.retry_alone(index, &mut failed).await {
                Ok(()) => return self.recovered(index),
                Err(next) => failed = next,
            }
            attempts += 1;
        }
        loop {
            if failed.deterministic || attempts >= APPLY_ATTEMPTS_MAX {
                let (event, error, summary) = (failed.event.clone(), failed.error.clone(), failed.summary.clone());
                self.health.stall(index, event, error, summary, attempts as u64);
            } else {
                fold::log_retry(name, attempts, &failed.error);
            }
            tokio::time::sleep(fold::retry_backoff(attempts)).await;
            attempts = attempts.saturating_add(1);
            match self.retry_alone(index, &mut failed).await {
                Ok(()) => break,
                Err(next) => failed = next,
            }
        }
        self.recovered(index)
    }

    /// Clears a recovered projection's stall; returns its index, to rejoin the shared fold.
    fn recovered(&self, index: usize) -> usize {
        self.health.unstall(index);
        self.health.catching_up_to(index, *self.event_store.head().borrow());
        index
    }

    /// One attempt at getting a failed projection going: read its checkpoint, narrow to the
    /// event it failed on (see [`Failed::narrow_through`]), then fold alone to the end of the log.
    async fn retry_alone(&self, index: usize, failed: &mut Failed) -> Result<(), Failed> {
        let projection = Arc::clone(&self.projections[index]);
        if failed.migrate {
            let dialect = self.read_models.dialect();
            for ddl in [projection.schema(dialect), projection.query_indexes(dialect)] {
                if !ddl.trim().is_empty() {
                    self.read_models.migrate(ddl).await.map_err(|error| Failed {
                        migrate: true,
                        ..Failed::from_error(&error)
                    })?;
                }
            }
            failed.migrate = false;
        }
        let mut checkpoint = self
            .read_models
            .checkpoint(projection.name())
            .await
            .map_err(|error| Failed {
                narrow_through: failed.narrow_through,
                ..Failed::from_error(&error)
            })?;
        self.health.publish(index, checkpoint);
        if let Some(through) = failed.narrow_through
            && checkpoint.is_none_or(|checkpoint| checkpoint < through)
        {
            // The failing event when it is known (it could not be decoded or applied, or was
            // alone in its page): the events before it in whole pages, then it alone.
            let known = failed
                .event
                .as_ref()
                .map(|event| event.position)
                .filter(|position| checkpoint.is_none_or(|checkpoint| checkpoint < *position));
            if let Some(failing) = known {
                checkpoint = self
                    .fold_alone(index, checkpoint, PROJECTION_BATCH_MAX, Until::Before(failing))
                    .await?;
                checkpoint = self.fold_alone(index, checkpoint, 1, Until::Through(failing)).await?;
            } else {
                checkpoint = self.fold_alone(index, checkpoint, 1, Until::Through(through)).await?;
            }
        }
        failed.narrow_through = None;
        self.fold_alone(index, checkpoint, PROJECTION_BATCH_MAX, Until::EndOfLog)
            .await?;
        Ok(())
    }

    /// Folds one projection alone from `checkpoint`; returns its new checkpoint.
    async fn fold_alone(
        &self,
        index: usize,
        checkpoint: Option<Position>,
        page_max: usize,
        until: Until,
    ) -> Result<Option<Position>, Failed> {
        let mut last = checkpoint;
        let projections = vec![Arc::clone(&self.projections[index])];
        let folded = Fold {
            event_store: self.event_store.as_ref(),
            read_models: self.read_models.as_ref(),
            projections,
            checkpoints: vec![checkpoint],
            page_max,
            until,
            cancel: None,
            stop: None,
            isolate: true,
            read_health: None,
            lease: self.lease(),
        }
        .run_isolated(
            |_, position| {
                last = Some(position);
                self.health.publish(index, Some(position));
            },
            |_| {},
        )
        .await;
        match folded {
            Ok((_, failures)) => match failures.into_iter().next() {
                Some(failure) => Err(Failed::from_slot(failure)),
                None => Ok(last),
            },
            Err(error) => Err(Failed {
                narrow_through: None,
                ..Failed::from_error(&error)
            }),
        }
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
        self.health.publish(index, None);
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
        self.health.publish(index, checkpoint);
        self.health.catching_up_to(index, *self.event_store.head().borrow());
        Ok(checkpoint)
    }

    /// Creates a projection's tables and its query indexes: the runner serves queries while it
    /// catches up, so the indexes are there from the start.
    async fn migrate(&self, projection: &dyn Projection) -> Result<(), RunnerError> {
        let dialect = self.read_models.dialect();
        self.retry_read_model(projection.name(), || {
            crate::layout::ensure_layout(self.read_models.as_ref(), projection)
        })
        .await?;
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
            stop: None,
            isolate: false,
            read_health: None,
            lease: self.lease(),
        }
        .run(
            |slot, position| {
                if let Some(index) = indexes.get(slot) {
                    self.health.publish(*index, Some(position));
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
                Err(source) if attempts >= APPLY_ATTEMPTS_MAX || source.is_refusal() => {
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
}

/// The term that ended, if a failure is a batch refused for it.
fn fenced(error: &RunnerError) -> Option<LeaseTerm> {
    match error {
        RunnerError::ReadModel {
            source: ReadModelError::Fenced { lease, .. },
            ..
        } => Some(lease.clone()),
        _ => None,
    }
}
