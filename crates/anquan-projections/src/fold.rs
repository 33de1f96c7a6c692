//! Folding the log into projections and committing the batches: the one loop behind the
//! runner (catch-up, then the live tail), its rebuild of one projection and the rebuild of
//! every fact read model (`rule_sets::rebuild::fold_to_end`).
//!
//! It is a two-stage pipeline. The reader reads each page of the log once, then decodes it once
//! and folds it into every projection's batch on a blocking thread; meanwhile the committer
//! commits the previous page's batches, each with its checkpoint, in page order and in one
//! transaction (one fsync per page, not one per projection). Reading and
//! folding keep one core busy and the read-model store's writer the other; a bounded channel
//! keeps the reader at most [`PREFETCH_PAGES_MAX`] pages ahead, which bounds the memory held.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tracing::Instrument;

use anquan_event_store::{
    EventStore, LeaseTerm, Position, ProjectionBatch, READ_BATCH_MAX, ReadModelError, ReadModelStore, RecordedEvent,
    StoreError, error_chain,
};

use crate::error::RunnerError;
use crate::health::{FailingEvent, ProjectionsHealth};
use crate::projection::{BatchStatements, Projection};

/// Folded pages the reader keeps ready ahead of the page being committed.
pub(crate) const PREFETCH_PAGES_MAX: usize = 2;
/// Most attempts at one store call before the fold stops.
pub(crate) const STORE_ATTEMPTS_MAX: usize = 8;
/// While following the live tail, the log is re-read this often even without a head change.
const RECHECK_INTERVAL: Duration = Duration::from_secs(2);
/// The first pause after a failed store call; it doubles on every further failure.
const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// The longest pause between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The longest pause between attempts at something that keeps failing for long: reading the
/// log while following it, or a stalled projection's failing event.
pub(crate) const STALLED_RETRY_MAX: Duration = Duration::from_secs(30);

/// Where a fold stops reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// At the end of the log as the reader finds it (a rebuild).
    EndOfLog,
    /// Never: after the end of the log, it waits for new events (the runner).
    Forever,
    /// At the end of the log or once the page through this position is committed (a stalled
    /// projection's retry, one event per page, to find the event it fails on).
    Through(Position),
    /// At the end of the log or before this position: pages stop short of it (a stalled
    /// projection's retry, committing the events before the one it fails on).
    Before(Position),
}

/// What to fold and how.
pub(crate) struct Fold<'a> {
    pub(crate) event_store: &'a dyn EventStore,
    pub(crate) read_models: &'a dyn ReadModelStore,
    pub(crate) projections: Vec<Arc<dyn Projection>>,
    /// Each projection's checkpoint: it folds only the events after it.
    pub(crate) checkpoints: Vec<Option<Position>>,
    /// Events per page (read in as many reads as the store's limit takes), and so at most per
    /// batch committed.
    pub(crate) page_max: usize,
    pub(crate) until: Until,
    /// Set to stop between pages.
    pub(crate) cancel: Option<&'a AtomicBool>,
    /// Notified to stop before the next page is committed (a page being committed commits).
    pub(crate) stop: Option<&'a Notify>,
    /// When set, a projection that fails does not fail the fold: the other projections' batches
    /// of the page commit, and the fold ends, returning the failures ([`Fold::run_isolated`]).
    pub(crate) isolate: bool,
    /// Where to report the log's reads failing for long, for the projections (by the runner's
    /// index) of a fold that follows the log forever; such a fold retries reads forever.
    pub(crate) read_health: Option<(&'a ProjectionsHealth, &'a [usize])>,
    /// The leadership term the fold runs under, if its projections are led: every batch is
    /// fenced by it.
    pub(crate) lease: Option<LeaseTerm>,
}

/// A projection that failed on a page, by its slot in the fold.
#[derive(Debug)]
pub(crate) struct SlotFailure {
    pub(crate) slot: usize,
    /// The event it failed on, when known: always for an event it cannot decode or apply, and
    /// for a commit that failed on a page of one event.
    pub(crate) event: Option<FailingEvent>,
    pub(crate) error: RunnerError,
    /// The same code fails the same way on the same event: no point in hiding it behind retries.
    pub(crate) deterministic: bool,
    /// The last position of the page it failed on: a retry commits one event at a time up to
    /// here, to find the event and keep the checkpoint just before it.
    pub(crate) page_last: Position,
}

/// How far a fold got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Folded {
    pub(crate) events: u64,
    pub(crate) last_position: Option<Position>,
}

/// What a page holds for one projection.
enum SlotBatch {
    /// It is already past the page.
    Skip,
    Batch(Arc<ProjectionBatch>),
    /// It cannot decode or apply one of the page's events.
    Failed(SlotFailure),
}

/// One page of the log folded for every projection.
struct FoldedPage {
    /// By projection, in the fold's order.
    batches: Vec<SlotBatch>,
    first_position: Position,
    last_position: Position,
    /// The page's first event: the failing one when a page of one event fails to commit.
    first_event: FailingEvent,
    events: usize,
}

type PageResult = Result<FoldedPage, RunnerError>;

impl Fold<'_> {
    /// Folds and commits page after page until the reader stops (see [`Until`] and `cancel`),
    /// calling `committed(projection, position)` after each projection's batch commits and
    /// `progress(folded)` after each page. Any projection's failure fails the fold.
    pub(crate) async fn run(
        self,
        committed: impl FnMut(usize, Position),
        progress: impl FnMut(Folded),
    ) -> Result<Folded, RunnerError> {
        let (folded, failures) = self.run_isolated(committed, progress).await?;
        match failures.into_iter().next() {
            Some(failure) => Err(failure.error),
            None => Ok(folded),
        }
    }

    /// Like [`Fold::run`]; with `isolate`, a projection that fails to decode, apply or commit
    /// does not stop the others' batches of the page from committing (each in its own
    /// transaction when the page's joint one fails), and the fold ends after that page,
    /// returning who failed. Without `isolate` the first failure is the error, as in `run`.
    pub(crate) async fn run_isolated(
        self,
        mut committed: impl FnMut(usize, Position),
        mut progress: impl FnMut(Folded),
    ) -> Result<(Folded, Vec<SlotFailure>), RunnerError> {
        let (sender, mut pages) = mpsc::channel::<PageResult>(PREFETCH_PAGES_MAX);
        let Fold {
            event_store,
            read_models,
            projections,
            checkpoints,
            page_max,
            until,
            cancel,
            stop,
            isolate,
            read_health,
            lease,
        } = self;
        let reader = Reader {
            event_store,
            projections: projections.clone(),
            lease,
            checkpoints,
            page_max,
            until,
            cancel,
            read_health,
        };
        let committer = async move {
            let mut folded = Folded::default();
            loop {
                let page = match stop {
                    Some(stop) => tokio::select! {
                        page = pages.recv() => page,
                        () = stop.notified() => None,
                    },
                    None => pages.recv().await,
                };
                let Some(page) = page else { break };
                if cancel.is_some_and(|cancel| cancel.load(Ordering::Relaxed)) {
                    break;
                }
                let page = page?;
                let names = page_names(&projections, &page);
                let mut slots = Vec::new();
                let mut batches: Vec<Arc<ProjectionBatch>> = Vec::new();
                let mut failures = Vec::new();
                for (slot, batch) in page.batches.into_iter().enumerate() {
                    match batch {
                        SlotBatch::Skip => {}
                        SlotBatch::Batch(batch) => {
                            slots.push(slot);
                            batches.push(batch);
                        }
                        SlotBatch::Failed(failure) if !isolate => return Err(failure.error),
                        SlotBatch::Failed(failure) => failures.push(failure),
                    }
                }
                let span = tracing::info_span!(
                    "projection.batch",
                    projection.name = names,
                    position.from = %page.first_position,
                    events.count = page.events
                );
                if isolate {
                    let results = commit_isolated(read_models, &batches).instrument(span).await;
                    for ((slot, batch), result) in slots.into_iter().zip(&batches).zip(results) {
                        match result {
                            Ok(()) => committed(slot, batch.checkpoint),
                            Err(source) => {
                                let projection = projections
                                    .get(slot)
                                    .map_or("projections", |projection| projection.name());
                                failures.push(SlotFailure {
                                    slot,
                                    event: (page.events == 1).then(|| page.first_event.clone()),
                                    error: RunnerError::ReadModel {
                                        projection,
                                        attempts: 1,
                                        source,
                                    },
                                    deterministic: false,
                                    page_last: page.last_position,
                                });
                            }
                        }
                    }
                } else {
                    commit(read_models, names, &batches).instrument(span).await?;
                    for (slot, batch) in slots.into_iter().zip(&batches) {
                        committed(slot, batch.checkpoint);
                    }
                }
                folded.events += page.events as u64;
                folded.last_position = Some(page.last_position);
                progress(folded);
                if !failures.is_empty() {
                    failures.sort_by_key(|failure| failure.slot);
                    return Ok((folded, failures));
                }
            }
            Ok((folded, Vec::new()))
        };
        let ((), folded) = futures::join!(reader.run(sender), committer);
        folded
    }
}

/// Reads the log page by page and folds each page for every projection.
struct Reader<'a> {
    event_store: &'a dyn EventStore,
    projections: Vec<Arc<dyn Projection>>,
    lease: Option<LeaseTerm>,
    checkpoints: Vec<Option<Position>>,
    page_max: usize,
    until: Until,
    cancel: Option<&'a AtomicBool>,
    read_health: Option<(&'a ProjectionsHealth, &'a [usize])>,
}

impl Reader<'_> {
    /// Sends folded pages until the end of the log (with [`Until::EndOfLog`]), until `cancel`
    /// is set or the receiver is dropped, or after sending an error.
    async fn run(self, pages: mpsc::Sender<PageResult>) {
        let mut after = self.checkpoints.iter().copied().min().flatten();
        // Each projection's checkpoint before its next batch: the batch commits only if the
        // stored one is still that (its pages commit in order, and the fold ends at a failure).
        let mut expected = self.checkpoints.clone();
        let mut head = self.event_store.head();
        let mut failures = 0;
        loop {
            if self.cancel.is_some_and(|cancel| cancel.load(Ordering::Relaxed)) {
                return;
            }
            // Mark the head as seen before reading, so an append during the read wakes us.
            head.borrow_and_update();
            let read = tokio::select! {
                read = read_page(self.event_store, after, self.page_max) => read,
                () = pages.closed() => return,
            };
            let mut last_page = false;
            let page = match read {
                Ok(mut page) => {
                    if let Until::Before(before) = self.until
                        && let Some(cut) = page.iter().position(|event| event.position >= before)
                    {
                        page.truncate(cut);
                        last_page = true;
                    }
                    page
                }
                Err(source) if self.until == Until::Forever => {
                    // Following the log, a store that cannot be read is waited out: every
                    // projection reports stalled until a read succeeds again.
                    failures += 1;
                    log_retry(self.name(), failures, &source);
                    if failures >= STORE_ATTEMPTS_MAX
                        && let Some((health, indexes)) = self.read_health
                    {
                        let error = format!("cannot read the event log: {}", error_chain(&source));
                        for index in indexes {
                            let summary = "cannot read the event log".to_owned();
                            health.stall(*index, None, error.clone(), summary, failures as u64);
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(retry_backoff(failures)) => continue,
                        () = pages.closed() => return,
                    }
                }
                Err(source) => {
                    failures += 1;
                    if failures >= STORE_ATTEMPTS_MAX {
                        tracing::error!(error = %source, attempts = failures, "event store keeps failing, projections stop");
                        let error = RunnerError::EventStore {
                            projection: self.name(),
                            attempts: failures,
                            source,
                        };
                        let _ = pages.send(Err(error)).await;
                        return;
                    }
                    log_retry(self.name(), failures, &source);
                    tokio::select! {
                        () = tokio::time::sleep(backoff(failures)) => continue,
                        () = pages.closed() => return,
                    }
                }
            };
            if failures >= STORE_ATTEMPTS_MAX
                && let Some((health, indexes)) = self.read_health
            {
                for index in indexes {
                    health.unstall(*index);
                }
            }
            failures = 0;
            let (Some(first), Some(last)) = (page.first(), page.last()) else {
                match self.until {
                    Until::EndOfLog | Until::Through(_) | Until::Before(_) => return,
                    Until::Forever => {
                        tokio::select! {
                            changed = tokio::time::timeout(RECHECK_INTERVAL, head.changed()) => {
                                if let Ok(Err(_)) = changed {
                                    tracing::info!("event store closed, projections stop");
                                    return;
                                }
                            }
                            () = pages.closed() => return,
                        }
                        continue;
                    }
                }
            };
            let positions = (first.position, last.position);
            let projections = self.projections.clone();
            let checkpoints = self.checkpoints.clone();
            let guards = (expected.clone(), self.lease.clone());
            // Decoding and folding a page is a few milliseconds of CPU per thousand events:
            // off the async workers, beside the committer's blocking writes.
            let folded =
                tokio::task::spawn_blocking(move || fold_page(&projections, &checkpoints, &guards, &page, positions))
                    .await
                    .unwrap_or_else(|source| Err(RunnerError::FoldTask { source }));
            if let Ok(folded) = &folded {
                for (slot, batch) in folded.batches.iter().enumerate() {
                    if let (SlotBatch::Batch(batch), Some(expected)) = (batch, expected.get_mut(slot)) {
                        *expected = Some(batch.checkpoint);
                    }
                }
            }
            let failed = folded.is_err();
            if pages.send(folded).await.is_err() || failed {
                return;
            }
            after = Some(positions.1);
            let through = matches!(self.until, Until::Through(through) if positions.1 >= through);
            if last_page || through {
                return;
            }
        }
    }

    /// The name errors of the shared reader carry.
    fn name(&self) -> &'static str {
        match self.projections.as_slice() {
            [only] => only.name(),
            _ => "projections",
        }
    }
}

/// Reads up to `page_max` events after `after`, in reads of at most the store's limit.
async fn read_page(
    event_store: &dyn EventStore,
    after: Option<Position>,
    page_max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut page = Vec::new();
    let mut after = after;
    while page.len() < page_max {
        let limit = (page_max - page.len()).min(READ_BATCH_MAX);
        let read = event_store.read_all(after, limit).await?;
        let Some(last) = read.last() else { break };
        after = Some(last.position);
        let short = read.len() < limit;
        if page.is_empty() {
            page = read;
        } else {
            page.extend(read);
        }
        if short {
            break;
        }
    }
    Ok(page)
}

/// What a page is folding into for one projection.
enum SlotOut {
    Skip,
    Folding(BatchStatements),
    Failed(SlotFailure),
}

/// Decodes a page once and folds it into one batch per projection that is not past it yet. A
/// projection that cannot decode or apply an event gets that failure instead of a batch; the
/// others fold the whole page.
fn fold_page(
    projections: &[Arc<dyn Projection>],
    checkpoints: &[Option<Position>],
    (expected, lease): &(Vec<Option<Position>>, Option<LeaseTerm>),
    page: &[RecordedEvent],
    (first_position, last_position): (Position, Position),
) -> PageResult {
    let needs = |checkpoint: &Option<Position>, position: Position| checkpoint.is_none_or(|seen| position > seen);
    let mut outs: Vec<SlotOut> = checkpoints
        .iter()
        .map(|checkpoint| {
            if needs(checkpoint, last_position) {
                SlotOut::Folding(BatchStatements::new())
            } else {
                SlotOut::Skip
            }
        })
        .collect();
    for event in page {
        let folding = |out: &SlotOut, checkpoint: &Option<Position>| {
            matches!(out, SlotOut::Folding(_)) && needs(checkpoint, event.position)
        };
        if !outs
            .iter()
            .zip(checkpoints)
            .any(|(out, checkpoint)| folding(out, checkpoint))
        {
            continue;
        }
        let failing = || FailingEvent {
            position: event.position,
            stream_id: event.stream_id.to_string(),
            event_type: event.event_type.clone(),
        };
        let decoded = match event.decode() {
            Ok(decoded) => decoded,
            Err(source) => {
                tracing::error!(error = %source, position = %event.position, "projection stopped on an event it cannot decode");
                for (slot, (out, checkpoint)) in outs.iter_mut().zip(checkpoints).enumerate() {
                    if !folding(out, checkpoint) {
                        continue;
                    }
                    let Some(projection) = projections.get(slot) else {
                        continue;
                    };
                    // Decoding is deterministic: each projection gets its own copy of the error.
                    let Err(source) = event.decode() else { continue };
                    *out = SlotOut::Failed(SlotFailure {
                        slot,
                        event: Some(failing()),
                        error: RunnerError::Undecodable {
                            projection: projection.name(),
                            position: event.position,
                            event_type: event.event_type.clone(),
                            source,
                        },
                        deterministic: true,
                        page_last: last_position,
                    });
                }
                continue;
            }
        };
        for (slot, ((projection, checkpoint), out)) in projections.iter().zip(checkpoints).zip(&mut outs).enumerate() {
            let SlotOut::Folding(batch) = out else { continue };
            if !needs(checkpoint, event.position) {
                continue;
            }
            if let Err(source) = projection.apply(event, &decoded, batch) {
                tracing::error!(projection.name = projection.name(), error = %source, position = %event.position, "projection cannot apply an event");
                *out = SlotOut::Failed(SlotFailure {
                    slot,
                    event: Some(failing()),
                    error: RunnerError::Apply {
                        projection: projection.name(),
                        position: event.position,
                        source,
                    },
                    deterministic: true,
                    page_last: last_position,
                });
            }
        }
    }
    let batches = projections
        .iter()
        .zip(outs)
        .zip(expected)
        .map(|((projection, out), after)| match out {
            SlotOut::Skip => SlotBatch::Skip,
            SlotOut::Failed(failure) => SlotBatch::Failed(failure),
            SlotOut::Folding(out) => SlotBatch::Batch(Arc::new(
                ProjectionBatch::new(projection.name(), out.into_statements(), last_position)
                    .after(*after)
                    .fenced(lease.clone()),
            )),
        })
        .collect();
    let first_event = page.first().map_or_else(
        || FailingEvent {
            position: first_position,
            stream_id: String::new(),
            event_type: String::new(),
        },
        |event| FailingEvent {
            position: event.position,
            stream_id: event.stream_id.to_string(),
            event_type: event.event_type.clone(),
        },
    );
    Ok(FoldedPage {
        batches,
        first_position,
        last_position,
        first_event,
        events: page.len(),
    })
}

/// The name a page's batches go by in logs and errors: the projection's, or "projections"
/// when the page has batches of several.
fn page_names(projections: &[Arc<dyn Projection>], page: &FoldedPage) -> &'static str {
    let mut names = projections
        .iter()
        .zip(&page.batches)
        .filter(|(_, batch)| matches!(batch, SlotBatch::Batch(_)))
        .map(|(projection, _)| projection.name());
    match (names.next(), names.next()) {
        (Some(only), None) => only,
        _ => "projections",
    }
}

/// Commits a page's batches in one transaction, retrying a failing store with backoff; the
/// batches are shared, not copied.
async fn commit(
    read_models: &dyn ReadModelStore,
    projection: &'static str,
    batches: &[Arc<ProjectionBatch>],
) -> Result<(), RunnerError> {
    if batches.is_empty() {
        return Ok(());
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        match read_models.apply_together(batches).await {
            Ok(()) => return Ok(()),
            Err(source) if source.is_refusal() => {
                tracing::warn!(projection.name = projection, error = %source, "projection batch refused");
                return Err(RunnerError::ReadModel {
                    projection,
                    attempts,
                    source,
                });
            }
            Err(source) if attempts >= STORE_ATTEMPTS_MAX => {
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

/// Commits a page's batches in one transaction; if that fails, each alone, so one projection
/// whose statements fail (a dropped table, a violated constraint) does not hold up the others.
/// No retries here: a projection whose batch fails leaves the fold and is retried alone.
async fn commit_isolated(
    read_models: &dyn ReadModelStore,
    batches: &[Arc<ProjectionBatch>],
) -> Vec<Result<(), ReadModelError>> {
    if batches.is_empty() {
        return Vec::new();
    }
    let joint = read_models.apply_together(batches).await;
    let error = match joint {
        Ok(()) => return batches.iter().map(|_| Ok(())).collect(),
        Err(error) => error,
    };
    if batches.len() == 1 {
        return vec![Err(error)];
    }
    tracing::warn!(error = %error, "a page's joint commit failed; committing each projection's batch alone");
    let mut results = Vec::with_capacity(batches.len());
    for batch in batches {
        results.push(read_models.apply(Arc::clone(batch)).await);
    }
    results
}

/// The pause before attempt `attempt + 1` at something that may fail for long: doubling from
/// [`BACKOFF_INITIAL`] up to [`STALLED_RETRY_MAX`].
pub(crate) fn retry_backoff(attempt: usize) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    BACKOFF_INITIAL.saturating_mul(1 << exponent).min(STALLED_RETRY_MAX)
}

/// The pause before attempt `attempt + 1`.
pub(crate) fn backoff(attempt: usize) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    BACKOFF_INITIAL.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

pub(crate) fn log_retry(projection: &'static str, attempt: usize, error: &dyn std::fmt::Display) {
    tracing::warn!(projection.name = projection, attempt, error = %error, "store call failed, retrying");
}
