//! Listeners on PostgreSQL channels, reconnecting when the connection drops: the store's head
//! watch from `LISTEN anquan_events`, and the read models' checkpoint moves from
//! `LISTEN anquan_checkpoints`. No polling: a task sleeps until PostgreSQL delivers a
//! notification.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use anquan_event_store::Position;

/// The channel every append notifies, with its last position as payload.
pub(crate) const CHANNEL: &str = "anquan_events";
/// The first wait before reconnecting a dropped listener; doubles up to the maximum.
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(100);
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5);

/// Raises the head to `position` if it is further along.
pub(crate) fn advance(head: &watch::Sender<Option<Position>>, position: Position) {
    head.send_if_modified(|current| {
        if Some(position) > *current {
            *current = Some(position);
            true
        } else {
            false
        }
    });
}

/// Aborts the listener task when the store is dropped.
pub(crate) struct ListenerTask(pub(crate) JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a listener does with its channel.
pub(crate) trait Listening: Send + Sync + 'static {
    /// The channel it listens on.
    const CHANNEL: &'static str;
    /// After (re)connecting, before the first notification: catch up with what was missed
    /// while no one listened.
    fn caught_up(
        &self,
        client: &tokio_postgres::Client,
    ) -> impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send;
    /// A notification's payload.
    fn notified(&self, payload: &str);
}

/// The event log's head: every append notifies its last position.
pub(crate) struct Head(pub(crate) Arc<watch::Sender<Option<Position>>>);

impl Listening for Head {
    const CHANNEL: &'static str = CHANNEL;

    async fn caught_up(&self, client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
        let row = client
            .query_one("SELECT COALESCE(MAX(position), 0) FROM event_log", &[])
            .await?;
        let last: i64 = row.try_get(0)?;
        if let Ok(last) = u64::try_from(last)
            && last > 0
        {
            advance(&self.0, Position::from_sequence(last));
        }
        Ok(())
    }

    fn notified(&self, payload: &str) {
        match payload.parse::<u64>() {
            Ok(sequence) => advance(&self.0, Position::from_sequence(sequence)),
            Err(_) => tracing::warn!(payload, "ignoring malformed event notification"),
        }
    }
}

/// Starts the event log's listener task.
pub(crate) fn spawn(config: tokio_postgres::Config, head: Arc<watch::Sender<Option<Position>>>) -> ListenerTask {
    spawn_listener(config, Head(head))
}

/// Starts a listener task, reconnecting with backoff whenever its connection drops.
pub(crate) fn spawn_listener<L: Listening>(config: tokio_postgres::Config, listening: L) -> ListenerTask {
    ListenerTask(tokio::spawn(async move {
        let mut delay = RECONNECT_DELAY_MIN;
        loop {
            match listen(&config, &listening).await {
                Ok(()) => {
                    tracing::warn!(channel = L::CHANNEL, "listener connection closed; reconnecting");
                    delay = RECONNECT_DELAY_MIN;
                }
                Err(error) => {
                    tracing::warn!(channel = L::CHANNEL, %error, ?delay, "listener failed; reconnecting");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_DELAY_MAX);
        }
    }))
}

/// Listens on one connection until it ends.
async fn listen<L: Listening>(config: &tokio_postgres::Config, listening: &L) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, mut notifications) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if sender.send(Ok(notification)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = sender.send(Err(error));
                    break;
                }
            }
        }
    });
    let _abort_driver = ListenerTask(driver);
    client.batch_execute(&format!("LISTEN {}", L::CHANNEL)).await?;
    listening.caught_up(&client).await?;
    while let Some(notification) = notifications.recv().await {
        let notification = notification?;
        if notification.channel() == L::CHANNEL {
            listening.notified(notification.payload());
        }
    }
    Ok(())
}
