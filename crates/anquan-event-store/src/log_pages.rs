//! The global log in pages, each page read while the caller works on the one before, and the
//! page after it read at the same time.
//!
//! Reading a page is the store's work (SQLite on a blocking thread, PostgreSQL on the server
//! and the connection's task); what the caller does with a page (decoding bodies, folding,
//! hashing) is its own. Done one after the other, each waits for the other; [`LogPages`] starts
//! reading the next page on its own task as soon as it hands out a full one, so on a runtime
//! with more than one worker the two overlap.
//!
//! Where the store's positions are dense (`BackendTraits::dense_positions`: SQLite, PostgreSQL
//! and the in-memory store number the log 1, 2, 3, …), the page after the next one starts where
//! the next one will end, so it is read at the same time, on a connection of its own: two reads
//! run beside the caller, which matters once the store's read of a page takes longer than the
//! caller's work on it. That read is a guess, used only when the page before it ends exactly
//! where it began; a miss discards it and reads on from where the page ended, and no further
//! guess is made. A store without dense positions (KurrentDB) is read one page ahead. It holds
//! at most two pages beyond the caller's.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::store::EventStore;
use crate::stream::Position;

/// One page being read, and the position it is read after.
struct PageRead {
    after: Option<Position>,
    events: JoinHandle<Result<Vec<RecordedEvent>, StoreError>>,
}

/// Reads the global log after a position to its end, in pages of a fixed size, one page ahead
/// of the caller and, where positions are dense, two. The end is the first page shorter
/// than the size: events appended after that read are not returned (as with a loop of
/// [`EventStore::read_all`] that stops there).
pub struct LogPages {
    store: Arc<dyn EventStore>,
    page: usize,
    /// The reads under way, in log order: the front one is the page the next call returns.
    /// Empty once the end was returned.
    reading: VecDeque<PageRead>,
    /// Whether the page after the next one is read at the same time: where positions are dense,
    /// until a guess misses.
    guessing: bool,
}

impl LogPages {
    /// Starts reading the first page after `after` (and the page after it). `page` is the
    /// events per page, at most [`crate::READ_BATCH_MAX`] (the store refuses more, and that
    /// error is the first page's).
    pub fn new(store: Arc<dyn EventStore>, after: Option<Position>, page: usize) -> Self {
        let guessing = store.traits().dense_positions;
        let mut pages = LogPages {
            store,
            page,
            reading: VecDeque::with_capacity(2),
            guessing,
        };
        pages.start(after);
        pages.guess();
        pages
    }

    /// The next page, or `None` after the last one. A full page is returned with the read of
    /// the page after it already started.
    pub async fn next_page(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let Some(reading) = self.reading.pop_front() else {
            return Ok(None);
        };
        let page = match reading.events.await {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => {
                self.stop();
                return Err(error);
            }
            Err(error) => {
                self.stop();
                return Err(StoreError::backend("read a page of the log", error));
            }
        };
        let Some(last) = page.last().map(|event| event.position) else {
            self.stop();
            return Ok(None);
        };
        if page.len() < self.page {
            self.stop();
            return Ok(Some(page));
        }
        if self.reading.front().is_some_and(|next| next.after != Some(last)) {
            // The guess missed: the positions were not dense after all.
            self.stop();
            self.guessing = false;
        }
        if self.reading.is_empty() {
            self.start(Some(last));
        }
        self.guess();
        Ok(Some(page))
    }

    /// Starts reading the page after `after`.
    fn start(&mut self, after: Option<Position>) {
        let store = Arc::clone(&self.store);
        let page = self.page;
        let events = tokio::spawn(async move { store.read_all(after, page).await });
        self.reading.push_back(PageRead { after, events });
    }

    /// While guessing, starts reading the page after the one last started, from where that one
    /// ends if it is full and the positions are dense.
    fn guess(&mut self) {
        if !self.guessing || self.reading.len() != 1 {
            return;
        }
        let Some(reading) = self.reading.back() else {
            return;
        };
        let from = reading.after.map_or(0, Position::sequence);
        let Some(end) = u64::try_from(self.page).ok().and_then(|page| from.checked_add(page)) else {
            return;
        };
        self.start(Some(Position::from_sequence(end)));
    }

    /// Stops every read under way.
    fn stop(&mut self) {
        for reading in self.reading.drain(..) {
            reading.events.abort();
        }
    }
}

impl Drop for LogPages {
    /// A caller that stops early leaves no read running behind it.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppendMetadata, AppendRequest, InMemoryEventStore, NewEvent, StreamId, StreamState};
    use anquan_domain::{Actor, Role, UserId};
    use uuid::Uuid;

    async fn store_with(events: usize) -> Arc<dyn EventStore> {
        let store = InMemoryEventStore::new();
        for index in 0..events {
            let request = AppendRequest {
                stream_id: StreamId::parse(&format!("pages-{}", index % 3)).unwrap(),
                expected: StreamState::Any,
                command: None,
                metadata: AppendMetadata {
                    occurred_at: chrono::Utc::now(),
                    actor: Actor {
                        user_id: UserId::parse("pages-user").unwrap(),
                        role: Role::CityAdmin,
                    },
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                },
                events: vec![NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "PageRead".to_owned(),
                    schema_version: 1,
                    data: format!(r#"{{"seq":{index}}}"#),
                }],
            };
            store.append(request).await.unwrap();
        }
        Arc::new(store)
    }

    async fn positions(store: Arc<dyn EventStore>, after: Option<Position>, page: usize) -> Vec<Vec<u64>> {
        let mut pages = LogPages::new(store, after, page);
        let mut read = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            read.push(page.iter().map(|event| event.position.sequence()).collect());
        }
        assert!(pages.next_page().await.unwrap().is_none(), "the end stays the end");
        read
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_event_once_in_order_in_pages_of_the_size_asked() {
        let store = store_with(7).await;
        assert_eq!(
            positions(Arc::clone(&store), None, 3).await,
            vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]
        );
        // A log that ends on a page boundary ends with the empty read after it.
        assert_eq!(
            positions(Arc::clone(&store), None, 7).await,
            vec![vec![1, 2, 3, 4, 5, 6, 7]]
        );
        assert_eq!(
            positions(Arc::clone(&store), None, 2).await,
            vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7]]
        );
        assert_eq!(
            positions(Arc::clone(&store), None, 1).await,
            (1..=7).map(|sequence| vec![sequence]).collect::<Vec<_>>()
        );
        let after = Some(Position::from_sequence(5));
        assert_eq!(positions(Arc::clone(&store), after, 3).await, vec![vec![6, 7]]);
        assert!(positions(store, Some(Position::from_sequence(7)), 3).await.is_empty());
    }

    /// The in-memory store with its positions spread out (sequence `n` at `10 n`), claiming
    /// dense positions or not: the guess of where a page ends misses on every page.
    struct Spread {
        inner: Arc<dyn EventStore>,
        claims_dense: bool,
    }

    #[async_trait::async_trait]
    impl EventStore for Spread {
        async fn append(&self, request: AppendRequest) -> Result<crate::AppendOutcome, crate::AppendError> {
            self.inner.append(request).await
        }

        async fn read_stream(
            &self,
            stream_id: &StreamId,
            from: crate::StreamVersion,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.inner.read_stream(stream_id, from, limit).await
        }

        async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
            // A position between two events reads on from the earlier one.
            let after = after.map(|position| Position::from_sequence(position.sequence() / 10));
            let mut events = self.inner.read_all(after, limit).await?;
            for event in &mut events {
                event.position = Position::from_sequence(event.position.sequence() * 10);
            }
            Ok(events)
        }

        async fn command_outcome(
            &self,
            stream_id: &StreamId,
            command_id: anquan_domain::CommandId,
        ) -> Result<Option<crate::RecordedCommand>, StoreError> {
            self.inner.command_outcome(stream_id, command_id).await
        }

        fn head(&self) -> tokio::sync::watch::Receiver<Option<Position>> {
            self.inner.head()
        }

        fn backend_name(&self) -> &'static str {
            "spread"
        }

        fn traits(&self) -> crate::BackendTraits {
            crate::BackendTraits {
                dense_positions: self.claims_dense,
                ..crate::BackendTraits::default()
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn positions_that_are_not_dense_read_every_event_once_in_order() {
        let inner = store_with(7).await;
        for claims_dense in [false, true] {
            let store: Arc<dyn EventStore> = Arc::new(Spread {
                inner: Arc::clone(&inner),
                claims_dense,
            });
            assert_eq!(
                positions(Arc::clone(&store), None, 3).await,
                vec![vec![10, 20, 30], vec![40, 50, 60], vec![70]],
                "claims dense positions: {claims_dense}"
            );
            assert_eq!(
                positions(store, Some(Position::from_sequence(20)), 2).await,
                vec![vec![30, 40], vec![50, 60], vec![70]],
                "claims dense positions: {claims_dense}"
            );
        }
    }

    #[tokio::test]
    async fn a_page_larger_than_the_store_reads_is_the_first_page_error() {
        let store = store_with(1).await;
        let mut pages = LogPages::new(store, None, crate::READ_BATCH_MAX + 1);
        assert!(matches!(pages.next_page().await, Err(StoreError::InvalidLimit { .. })));
        assert!(pages.next_page().await.unwrap().is_none());
    }
}
