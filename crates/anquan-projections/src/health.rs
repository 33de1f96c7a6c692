//! How far every projection has got and whether it is stalled: the runner writes it, the API
//! reads it (`/readyz`, the `health` query, `PROJECTION_STALLED`, a mutation's read-back).
//!
//! A projection is `Stalled` when it failed on an event (or its store kept failing) and the
//! runner has taken it out of the shared fold: the other projections go on, and the stalled one
//! is retried alone with capped backoff until the failing event commits. It is `CatchingUp`
//! while it folds the backlog the log held when it started (or recovered), and `Running` after.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use anquan_event_store::{LogDistance, Position};

use crate::catch_up::{CatchUp, CatchUpMeter};

/// Where a projection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionState {
    /// Folding the live tail.
    Running,
    /// Folding the backlog the log held when it started or recovered.
    CatchingUp,
    /// Failed on an event (or its store keeps failing); retried alone, its read model is not read.
    Stalled,
}

impl ProjectionState {
    /// The name the API shows (`RUNNING`, `CATCHING_UP`, `STALLED`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectionState::Running => "RUNNING",
            ProjectionState::CatchingUp => "CATCHING_UP",
            ProjectionState::Stalled => "STALLED",
        }
    }
}

/// The event a projection failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingEvent {
    pub position: Position,
    pub stream_id: String,
    pub event_type: String,
}

/// Why and since when a projection is stalled.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    /// The event it failed on; `None` when the failure is not one event's (the event store
    /// cannot be read, or the read model's checkpoint cannot).
    pub event: Option<FailingEvent>,
    /// The error of the last attempt, with its causes (the store's own words: for operators).
    pub error: String,
    /// The error of the last attempt without its causes: what the runner could not do, with no
    /// data from the store or the event (for the public `health` query).
    pub summary: String,
    /// When the runner first reported it stalled.
    pub since: DateTime<Utc>,
    /// Attempts at the failing step so far.
    pub attempts: u64,
}

/// How far behind the log's head a projection is, as this node last measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// How far its checkpoint is behind the head of the log: in events where the backend can
    /// count them (dense positions), else in commit positions.
    pub behind: LogDistance,
    /// When the first event it has not applied was recorded (none when caught up).
    pub oldest_unapplied: Option<DateTime<Utc>>,
}

impl Lag {
    /// Seconds since the first event not applied was recorded, at `now`; zero when caught up.
    pub fn seconds(&self, now: DateTime<Utc>) -> f64 {
        self.oldest_unapplied.map_or(0.0, |oldest| {
            let millis = now.signed_duration_since(oldest).num_milliseconds().max(0);
            #[expect(clippy::cast_precision_loss, reason = "a lag in milliseconds is far below 2^52")]
            let seconds = millis as f64 / 1000.0;
            seconds
        })
    }
}

/// One projection's status.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// The position of the last event it committed (its checkpoint).
    pub position: Option<Position>,
    pub state: ProjectionState,
    pub stall: Option<Stall>,
    /// How far behind the head it is (measured by the shared-checkpoint follower).
    pub lag: Option<Lag>,
}

/// What a reader of one projection waits on: its applied position, and whether it is stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub applied: Option<Position>,
    pub stalled: bool,
}

/// How waiting for a projection to apply a position ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Waited {
    Reached,
    /// The projection is stalled below the position.
    Stalled(Box<ProjectionStatus>),
    TimedOut,
    /// No projection of that name runs here.
    Unknown,
}

struct Entry {
    name: &'static str,
    progress: watch::Sender<Progress>,
    /// The applied position alone, for followers that wake on it (the supervision watcher).
    applied: watch::Sender<Option<Position>>,
    /// Until the projection has applied this position it is catching up.
    catch_up_to: Option<Position>,
    stall: Option<Stall>,
    lag: Option<Lag>,
}

struct Inner {
    entries: Mutex<Vec<Entry>>,
    /// The leadership term this node folds under, if it leads.
    leading: watch::Sender<Option<i64>>,
    /// The lowest applied position over every projection.
    lowest: watch::Sender<Option<Position>>,
    /// How fast the lowest applied position closes on the log's head (the runner as a whole),
    /// whether a projection was catching up when it was last measured, and whether the
    /// positions count events.
    catch_up: Mutex<(CatchUpMeter, bool, bool)>,
}

/// Where the projections as a whole stood against the log's head when last measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatchUpStatus {
    /// Whether a projection was still folding the backlog the log held when it started or
    /// recovered.
    pub catching_up: bool,
    /// The lowest position every projection had applied, the head, the pace and the time left,
    /// in commit positions: events where the backend counts them (`counts_events`), else
    /// positions of its log.
    pub progress: CatchUp,
    /// Whether the positions count events (a backend with dense positions).
    pub counts_events: bool,
}

/// The projections' positions and states, shared by the runner and its readers.
#[derive(Clone)]
pub struct ProjectionsHealth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProjectionsHealth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_list().entries(self.statuses()).finish()
    }
}

impl Default for ProjectionsHealth {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl ProjectionsHealth {
    /// Health for the projections named, none applied yet.
    pub fn new(names: &[&'static str]) -> Self {
        let health = Self {
            inner: Arc::new(Inner {
                entries: Mutex::new(Vec::new()),
                leading: watch::Sender::new(None),
                lowest: watch::Sender::new(None),
                catch_up: Mutex::new((CatchUpMeter::new(), false, true)),
            }),
        };
        for name in names {
            health.add(name);
        }
        health
    }

    pub(crate) fn add(&self, name: &'static str) {
        self.lock().push(Entry {
            name,
            progress: watch::Sender::new(Progress::default()),
            applied: watch::Sender::new(None),
            catch_up_to: None,
            stall: None,
            lag: None,
        });
    }

    /// The leadership term this node's runner folds under; `None` on a follower (or a node
    /// whose runner is not led).
    pub fn leading(&self) -> Option<i64> {
        *self.inner.leading.borrow()
    }

    pub(crate) fn lead(&self, term: Option<i64>) {
        self.inner.leading.send_replace(term);
    }

    /// Raises a projection's applied position to `position` if it is further along (a
    /// follower's view of the shared checkpoint, which only moves forward).
    pub(crate) fn advance(&self, index: usize, position: Position) {
        self.set_position(index, Some(position), true);
    }

    pub(crate) fn set_lag(&self, index: usize, lag: Lag) {
        if let Some(entry) = self.lock().get_mut(index) {
            entry.lag = Some(lag);
        }
    }

    /// Records where the projections as a whole stand against the log's `head` at `at`: the
    /// lowest position every projection has applied (none applied counts as 0), and whether one
    /// is catching up. Returns the status; the caller measures, so this costs no query. The
    /// figures are commit positions, which count events where `counts_events` (dense positions).
    pub(crate) fn record_catch_up(
        &self,
        at: Instant,
        head: Option<Position>,
        counts_events: bool,
    ) -> Option<CatchUpStatus> {
        let (lowest, catching_up) = {
            let entries = self.lock();
            let lowest = entries
                .iter()
                .map(|entry| entry.progress.borrow().applied.map_or(0, |position| position.commit))
                .min()
                .unwrap_or(0);
            let catching_up = entries
                .iter()
                .any(|entry| entry.stall.is_none() && entry.catch_up_to.is_some());
            (lowest, catching_up)
        };
        let head = head.map_or(0, |head| head.commit);
        let mut measured = self.inner.catch_up.lock().unwrap_or_else(PoisonError::into_inner);
        measured.0.record(at, lowest, head);
        measured.1 = catching_up;
        measured.2 = counts_events;
        measured.0.estimate().map(|progress| CatchUpStatus {
            catching_up,
            progress,
            counts_events,
        })
    }

    /// Where the projections as a whole stood against the log's head when last measured (every
    /// [`crate::SHARED_CHECKPOINTS_POLL`] at most): whether one was catching up, the lowest
    /// position applied, the head, events per second and the time left. `None` before the first
    /// measurement.
    pub fn catch_up(&self) -> Option<CatchUpStatus> {
        let measured = self.inner.catch_up.lock().unwrap_or_else(PoisonError::into_inner);
        measured.0.estimate().map(|progress| CatchUpStatus {
            catching_up: measured.1,
            progress,
            counts_events: measured.2,
        })
    }

    /// Returns a receiver of the lowest position every projection has applied.
    pub fn applied(&self) -> watch::Receiver<Option<Position>> {
        self.inner.lowest.subscribe()
    }

    /// Returns a receiver of the position one projection has applied.
    pub fn applied_of(&self, name: &str) -> Option<watch::Receiver<Option<Position>>> {
        self.lock()
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.applied.subscribe())
    }

    /// Returns a receiver of one projection's progress.
    pub fn progress(&self, name: &str) -> Option<watch::Receiver<Progress>> {
        self.lock()
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.progress.subscribe())
    }

    /// Every projection's status, in the runner's order.
    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        self.lock().iter().map(status).collect()
    }

    /// One projection's status.
    pub fn status(&self, name: &str) -> Option<ProjectionStatus> {
        self.lock().iter().find(|entry| entry.name == name).map(status)
    }

    /// The status of the projection if it is stalled.
    pub fn stalled(&self, name: &str) -> Option<ProjectionStatus> {
        self.status(name)
            .filter(|status| status.state == ProjectionState::Stalled)
    }

    /// Waits until the projection has applied `position`, it stalls, or `timeout` passes.
    pub async fn wait_for(&self, name: &str, position: Position, timeout: Duration) -> Waited {
        let Some(mut progress) = self.progress(name) else {
            return Waited::Unknown;
        };
        let reached = progress
            .wait_for(|progress| progress.stalled || progress.applied.is_some_and(|applied| applied >= position));
        let progress = match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(progress)) => *progress,
            Ok(Err(_)) | Err(_) => return Waited::TimedOut,
        };
        if progress.applied.is_some_and(|applied| applied >= position) {
            return Waited::Reached;
        }
        match self.stalled(name) {
            Some(status) => Waited::Stalled(Box::new(status)),
            None => Waited::TimedOut,
        }
    }

    /// Records a projection's applied position and republishes the lowest over all of them.
    pub(crate) fn publish(&self, index: usize, position: Option<Position>) {
        self.set_position(index, position, false);
    }

    fn set_position(&self, index: usize, position: Option<Position>, forward_only: bool) {
        let lowest = {
            let mut entries = self.lock();
            if let Some(entry) = entries.get_mut(index)
                && !(forward_only && entry.progress.borrow().applied >= position)
            {
                if entry
                    .catch_up_to
                    .is_some_and(|target| position.is_some_and(|position| position >= target))
                {
                    entry.catch_up_to = None;
                }
                entry.progress.send_if_modified(|progress| {
                    let changed = progress.applied != position;
                    progress.applied = position;
                    changed
                });
                entry.applied.send_if_modified(|applied| {
                    let changed = *applied != position;
                    *applied = position;
                    changed
                });
            }
            entries
                .iter()
                .map(|entry| entry.progress.borrow().applied)
                .min()
                .flatten()
        };
        self.inner.lowest.send_if_modified(|applied| {
            let changed = *applied != lowest;
            *applied = lowest;
            changed
        });
    }

    /// The projection has the backlog up to `head` to fold (it started, or recovered).
    pub(crate) fn catching_up_to(&self, index: usize, head: Option<Position>) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(index) {
            let applied = entry.progress.borrow().applied;
            entry.catch_up_to = head.filter(|head| applied.is_none_or(|applied| applied < *head));
        }
    }

    /// Reports the projection stalled (or still stalled, with the latest attempt's error).
    pub(crate) fn stall(
        &self,
        index: usize,
        event: Option<FailingEvent>,
        error: String,
        summary: String,
        attempts: u64,
    ) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(index) else { return };
        let since = entry.stall.as_ref().map_or_else(Utc::now, |stall| stall.since);
        if entry.stall.is_none() {
            tracing::error!(
                projection.name = entry.name,
                position = ?entry.progress.borrow().applied,
                event.position = ?event.as_ref().map(|event| event.position),
                event.stream_id = event.as_ref().map(|event| event.stream_id.as_str()),
                event.event_type = event.as_ref().map(|event| event.event_type.as_str()),
                %error,
                attempts,
                "projection stalled; the others go on, it is retried alone"
            );
        }
        entry.stall = Some(Stall {
            event,
            error,
            summary,
            since,
            attempts,
        });
        entry
            .progress
            .send_if_modified(|progress| !std::mem::replace(&mut progress.stalled, true));
    }

    /// Clears a stall: the projection got past the failing step.
    pub(crate) fn unstall(&self, index: usize) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(index) else { return };
        if let Some(stall) = entry.stall.take() {
            tracing::info!(
                projection.name = entry.name,
                position = ?entry.progress.borrow().applied,
                attempts = stall.attempts,
                "projection resumed after a stall"
            );
        }
        entry
            .progress
            .send_if_modified(|progress| std::mem::replace(&mut progress.stalled, false));
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // Every write under this lock replaces whole fields, so a poisoned lock holds no torn state.
        self.inner.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn status(entry: &Entry) -> ProjectionStatus {
    let state = if entry.stall.is_some() {
        ProjectionState::Stalled
    } else if entry.catch_up_to.is_some() {
        ProjectionState::CatchingUp
    } else {
        ProjectionState::Running
    };
    ProjectionStatus {
        name: entry.name,
        position: entry.progress.borrow().applied,
        state,
        stall: entry.stall.clone(),
        lag: entry.lag,
    }
}
