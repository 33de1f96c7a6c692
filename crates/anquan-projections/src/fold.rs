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

use tokio::sync::mpsc;
use tracing::Instrument;

use anquan_event_store::{
    EventStore, Position, ProjectionBatch, READ_BATCH_MAX, ReadModelStore, RecordedEvent, StoreError,
};

use crate::error::RunnerError;
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

/// Where a fold stops reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// At the end of the log as the reader finds it (a rebuild).
    EndOfLog,
    /// Never: after the end of the log, it waits for new events (the runner).
    Forever,
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
}

/// How far a fold got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Folded {
    pub(crate) events: u64,
    pub(crate) last_position: Option<Position>,
}

/// One page of the log folded for every projection.
struct FoldedPage {
    /// By projection, in the fold's order; `None` for a projection already past the page.
    batches: Vec<Option<Arc<ProjectionBatch>>>,
    first_position: Position,
    last_position: Position,
    events: usize,
}

type PageResult = Result<FoldedPage, RunnerError>;

impl Fold<'_> {
    /// Folds and commits page after page until the reader stops (see [`Until`] and `cancel`),
    /// calling `committed(projection, position)` after each projection's batch commits and
    /// `progress(folded)` after each page.
    pub(crate) async fn run(
        self,
        mut committed: impl FnMut(usize, Position),
        mut progress: impl FnMut(Folded),
    ) -> Result<Folded, RunnerError> {
        let (sender, mut pages) = mpsc::channel::<PageResult>(PREFETCH_PAGES_MAX);
        let Fold {
            event_store,
            read_models,
            projections,
            checkpoints,
            page_max,
            until,
            cancel,
        } = self;
        let reader = Reader {
            event_store,
            projections: projections.clone(),
            checkpoints,
            page_max,
            until,
            cancel,
        };
        let committer = async move {
            let mut folded = Folded::default();
            while let Some(page) = pages.recv().await {
                if cancel.is_some_and(|cancel| cancel.load(Ordering::Relaxed)) {
                    break;
                }
                let page = page?;
                let batches: Vec<Arc<ProjectionBatch>> = page.batches.iter().flatten().cloned().collect();
                let names = page_names(&projections, &page);
                let span = tracing::info_span!(
                    "projection.batch",
                    projection.name = names,
                    position.from = %page.first_position,
                    events.count = page.events
                );
                commit(read_models, names, &batches).instrument(span).await?;
                for (index, batch) in page.batches.iter().enumerate() {
                    if let Some(batch) = batch {
                        committed(index, batch.checkpoint);
                    }
                }
                folded.events += page.events as u64;
                folded.last_position = Some(page.last_position);
                progress(folded);
            }
            Ok(folded)
        };
        let ((), folded) = futures::join!(reader.run(sender), committer);
        folded
    }
}

/// Reads the log page by page and folds each page for every projection.
struct Reader<'a> {
    event_store: &'a dyn EventStore,
    projections: Vec<Arc<dyn Projection>>,
    checkpoints: Vec<Option<Position>>,
    page_max: usize,
    until: Until,
    cancel: Option<&'a AtomicBool>,
}

impl Reader<'_> {
    /// Sends folded pages until the end of the log (with [`Until::EndOfLog`]), until `cancel`
    /// is set or the receiver is dropped, or after sending an error.
    async fn run(self, pages: mpsc::Sender<PageResult>) {
        let mut after = self.checkpoints.iter().copied().min().flatten();
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
            let page = match read {
                Ok(page) => page,
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
            failures = 0;
            let (Some(first), Some(last)) = (page.first(), page.last()) else {
                match self.until {
                    Until::EndOfLog => return,
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
            // Decoding and folding a page is a few milliseconds of CPU per thousand events:
            // off the async workers, beside the committer's blocking writes.
            let folded = tokio::task::spawn_blocking(move || fold_page(&projections, &checkpoints, &page, positions))
                .await
                .unwrap_or_else(|source| Err(RunnerError::FoldTask { source }));
            let failed = folded.is_err();
            if pages.send(folded).await.is_err() || failed {
                return;
            }
            after = Some(positions.1);
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

/// Decodes a page once and folds it into one batch per projection that is not past it yet.
fn fold_page(
    projections: &[Arc<dyn Projection>],
    checkpoints: &[Option<Position>],
    page: &[RecordedEvent],
    (first_position, last_position): (Position, Position),
) -> PageResult {
    let needs = |checkpoint: &Option<Position>, position: Position| checkpoint.is_none_or(|seen| position > seen);
    let mut outs: Vec<Option<BatchStatements>> = checkpoints
        .iter()
        .map(|checkpoint| needs(checkpoint, last_position).then(BatchStatements::new))
        .collect();
    for event in page {
        let Some(first_needing) = projections
            .iter()
            .zip(checkpoints)
            .find(|(_, checkpoint)| needs(checkpoint, event.position))
        else {
            continue;
        };
        let decoded = event.decode().map_err(|source| {
            tracing::error!(error = %source, position = %event.position, "projection stopped on an event it cannot decode");
            RunnerError::Undecodable {
                projection: first_needing.0.name(),
                position: event.position,
                event_type: event.event_type.clone(),
                source,
            }
        })?;
        for ((projection, checkpoint), out) in projections.iter().zip(checkpoints).zip(&mut outs) {
            let Some(out) = out else { continue };
            if !needs(checkpoint, event.position) {
                continue;
            }
            projection
                .apply(event, &decoded, out)
                .map_err(|source| RunnerError::Apply {
                    projection: projection.name(),
                    position: event.position,
                    source,
                })?;
        }
    }
    let batches = projections
        .iter()
        .zip(outs)
        .map(|(projection, out)| {
            out.map(|out| {
                Arc::new(ProjectionBatch {
                    projection: projection.name().to_owned(),
                    statements: out.into_statements(),
                    checkpoint: last_position,
                })
            })
        })
        .collect();
    Ok(FoldedPage {
        batches,
        first_position,
        last_position,
        events: page.len(),
    })
}

/// The name a page's batches go by in logs and errors: the projection's, or "projections"
/// when the page has batches of several.
fn page_names(projections: &[Arc<dyn Projection>], page: &FoldedPage) -> &'static str {
    let mut names = projections
        .iter()
        .zip(&page.batches)
        .filter(|(_, batch)| batch.is_some())
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

/// The pause before attempt `attempt + 1`.
pub(crate) fn backoff(attempt: usize) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    BACKOFF_INITIAL.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

pub(crate) fn log_retry(projection: &'static str, attempt: usize, error: &dyn std::fmt::Display) {
    tracing::warn!(projection.name = projection, attempt, error = %error, "store call failed, retrying");
}
