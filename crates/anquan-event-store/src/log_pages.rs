//! The global log in pages, each page read while the caller works on the one before.
//!
//! Reading a page is the store's work (SQLite on a blocking thread, PostgreSQL on the server
//! and the connection's task); what the caller does with a page (decoding bodies, folding,
//! hashing) is its own. Done one after the other, each waits for the other; [`LogPages`] starts
//! reading the next page on its own task as soon as it hands out a full one, so on a runtime
//! with more than one worker the two overlap. It holds at most one page beyond the caller's.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::store::EventStore;
use crate::stream::Position;

/// One page being read.
type PageRead = JoinHandle<Result<Vec<RecordedEvent>, StoreError>>;

/// Reads the global log after a position to its end, in pages of a fixed size, one page ahead
/// of the caller. The end is the first page shorter than the size: events appended after that
/// read are not returned (as with a loop of [`EventStore::read_all`] that stops there).
pub struct LogPages {
    store: Arc<dyn EventStore>,
    page: usize,
    /// The read of the page the next call returns; `None` once the end was returned.
    reading: Option<PageRead>,
}

impl LogPages {
    /// Starts reading the first page after `after`. `page` is the events per page, at most
    /// [`crate::READ_BATCH_MAX`] (the store refuses more, and that error is the first page's).
    pub fn new(store: Arc<dyn EventStore>, after: Option<Position>, page: usize) -> Self {
        let reading = Some(read(&store, after, page));
        LogPages { store, page, reading }
    }

    /// The next page, or `None` after the last one. A full page is returned with the read of
    /// the page after it already started.
    pub async fn next_page(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let Some(reading) = self.reading.take() else {
            return Ok(None);
        };
        let page = reading
            .await
            .map_err(|error| StoreError::backend("read a page of the log", error))??;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        if page.len() >= self.page {
            self.reading = Some(read(&self.store, Some(last.position), self.page));
        }
        Ok(Some(page))
    }
}

impl Drop for LogPages {
    /// A caller that stops early leaves no read running behind it.
    fn drop(&mut self) {
        if let Some(reading) = self.reading.take() {
            reading.abort();
        }
    }
}

fn read(store: &Arc<dyn EventStore>, after: Option<Position>, page: usize) -> PageRead {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.read_all(after, page).await })
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
        let after = Some(Position::from_sequence(5));
        assert_eq!(positions(Arc::clone(&store), after, 3).await, vec![vec![6, 7]]);
        assert!(positions(store, Some(Position::from_sequence(7)), 3).await.is_empty());
    }

    #[tokio::test]
    async fn a_page_larger_than_the_store_reads_is_the_first_page_error() {
        let store = store_with(1).await;
        let mut pages = LogPages::new(store, None, crate::READ_BATCH_MAX + 1);
        assert!(matches!(pages.next_page().await, Err(StoreError::InvalidLimit { .. })));
        assert!(pages.next_page().await.unwrap().is_none());
    }
}
