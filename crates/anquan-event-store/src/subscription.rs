//! Catch-up subscriptions over any store: read pages from a position, then follow the live
//! tail, woken by the store's head watch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, Stream};

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::store::EventStore;
use crate::stream::Position;

/// Events read per page while catching up.
const SUBSCRIPTION_PAGE_MAX: usize = 1_000;
/// A safety net: re-check the log this often even without a head change.
const SUBSCRIPTION_RECHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Follows the global log after `after`: every event once, in position order, forever.
/// The stream ends only after yielding an error.
pub fn subscribe_all(
    store: Arc<dyn EventStore>,
    after: Option<Position>,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send {
    struct State {
        store: Arc<dyn EventStore>,
        after: Option<Position>,
        buffer: VecDeque<RecordedEvent>,
        head: tokio::sync::watch::Receiver<Option<Position>>,
        failed: bool,
    }
    let head = store.head();
    let state = State {
        store,
        after,
        buffer: VecDeque::new(),
        head,
        failed: false,
    };
    stream::unfold(state, |mut state| async move {
        if state.failed {
            return None;
        }
        loop {
            if let Some(event) = state.buffer.pop_front() {
                state.after = Some(event.position);
                return Some((Ok(event), state));
            }
            // Mark the head as seen before reading, so a change during the read wakes us.
            state.head.borrow_and_update();
            match state.store.read_all(state.after, SUBSCRIPTION_PAGE_MAX).await {
                Ok(page) if !page.is_empty() => state.buffer.extend(page),
                Ok(_) => {
                    let changed = tokio::time::timeout(SUBSCRIPTION_RECHECK_INTERVAL, state.head.changed()).await;
                    if let Ok(Err(_)) = changed {
                        // The store was dropped: nothing more will come.
                        return None;
                    }
                }
                Err(error) => {
                    state.failed = true;
                    return Some((Err(error), state));
                }
            }
        }
    })
}
