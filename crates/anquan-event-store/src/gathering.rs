//! How a store's committer gathers the appends that share one commit (group commit).
//!
//! A committer takes the first append waiting and everything queued behind it. Taking only
//! what is queued at that instant halves the groups under a steady load: the appenders of the
//! group just committed hear of it together, and while they prepare their next appends the
//! committer has already begun the next group with the first to come back, so two half groups
//! alternate (8 writers made groups of 4.0 on both backends). A committer therefore waits, a
//! little, for as many appends as it has just answered: until the group holds that many, or
//! until none has arrived for [`GATHER_QUIET`]. An append after a group of one (a single
//! writer, a quiet service) never waits, and a group whose appenders do not come back (each
//! was one HTTP request) waits [`GATHER_QUIET`] once and then expects fewer.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TryRecvError};

/// How long a committer keeps gathering after the last append arrived, while the group holds
/// fewer appends than the one before. A few times the delay between waking a task and its
/// running on a busy two-core machine, and a fraction of a commit's flush on most disks.
pub const GATHER_QUIET: Duration = Duration::from_micros(200);

/// The most one group may hold.
#[derive(Debug, Clone, Copy)]
pub struct GroupBounds {
    /// Appends in one group.
    pub appends: usize,
    /// Events in one group: it stops taking appends once it holds this many.
    pub events: usize,
}

/// Gathers groups from a committer's queue, remembering how many appends it last answered.
#[derive(Debug)]
pub struct Gathering {
    bounds: GroupBounds,
    answered: usize,
    quiet: Duration,
}

impl Gathering {
    pub fn new(bounds: GroupBounds) -> Self {
        Gathering {
            bounds,
            answered: 1,
            quiet: GATHER_QUIET,
        }
    }

    /// Waits for the next append, then fills `group` (empty on entry) as the module says;
    /// `pause` gives other tasks or threads the processor between looks at the queue.
    /// `events_of` counts an append's events. Returns false when every sender is gone and the
    /// queue is empty.
    pub async fn next_group<T, P, F>(
        &mut self,
        queue: &mut mpsc::Receiver<T>,
        group: &mut Vec<T>,
        events_of: impl Fn(&T) -> usize,
        mut pause: P,
    ) -> bool
    where
        P: FnMut() -> F,
        F: Future<Output = ()>,
    {
        let Some(first) = queue.recv().await else {
            return false;
        };
        let mut events = events_of(&first);
        group.push(first);
        let mut last_arrival = Instant::now();
        while group.len() < self.bounds.appends && events < self.bounds.events {
            match queue.try_recv() {
                Ok(next) => {
                    events += events_of(&next);
                    group.push(next);
                    last_arrival = Instant::now();
                }
                Err(TryRecvError::Empty) if group.len() < self.answered && last_arrival.elapsed() < self.quiet => {
                    pause().await;
                }
                Err(_) => break,
            }
        }
        self.answered = group.len();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: GroupBounds = GroupBounds {
        appends: 4,
        events: 100,
    };

    /// The next group, each append standing for its count of events; None once the queue is
    /// closed and empty.
    async fn next(gathering: &mut Gathering, queue: &mut mpsc::Receiver<usize>) -> Option<Vec<usize>> {
        let mut group = Vec::new();
        let open = gathering
            .next_group(queue, &mut group, |events| *events, tokio::task::yield_now)
            .await;
        open.then_some(group)
    }

    #[tokio::test]
    async fn a_group_takes_what_is_queued_up_to_its_bounds() {
        let (sender, mut queue) = mpsc::channel(16);
        for events in [1, 1, 1, 1, 1, 1] {
            sender.send(events).await.unwrap();
        }
        let mut gathering = Gathering::new(BOUNDS);
        assert_eq!(
            next(&mut gathering, &mut queue).await,
            Some(vec![1; 4]),
            "at most four appends"
        );

        let mut gathering = Gathering::new(GroupBounds {
            appends: 64,
            events: 100,
        });
        for events in [60, 50, 1] {
            sender.send(events).await.unwrap();
        }
        let group = next(&mut gathering, &mut queue).await;
        assert_eq!(group, Some(vec![1, 1, 60, 50]), "it stops once it holds 100 events");
    }

    #[tokio::test]
    async fn after_a_group_of_one_an_append_goes_alone_at_once() {
        let (sender, mut queue) = mpsc::channel(16);
        let mut gathering = Gathering::new(BOUNDS);
        sender.send(1).await.unwrap();
        let pauses = std::cell::Cell::new(0);
        let pause = || {
            pauses.set(pauses.get() + 1);
            tokio::task::yield_now()
        };
        let mut group = Vec::new();
        assert!(gathering.next_group(&mut queue, &mut group, |e| *e, pause).await);
        assert_eq!((group.len(), pauses.get()), (1, 0));
    }

    #[tokio::test]
    async fn after_a_larger_group_it_waits_for_as_many_while_they_keep_coming() {
        let (sender, mut queue) = mpsc::channel(16);
        let mut gathering = Gathering::new(BOUNDS);
        for _ in 0..3 {
            sender.send(1).await.unwrap();
        }
        assert_eq!(next(&mut gathering, &mut queue).await, Some(vec![1; 3]));

        // The three appenders come back one after another, each a little later (the quiet
        // time is long here so a slow machine cannot cut the wait short).
        gathering.quiet = Duration::from_secs(60);
        let late = tokio::spawn(async move {
            for _ in 0..3 {
                sender.send(1).await.unwrap();
                tokio::task::yield_now().await;
            }
            sender
        });
        let group = next(&mut gathering, &mut queue).await;
        assert_eq!(group, Some(vec![1; 3]), "the group waited for all three");

        // Only one comes back: the group waits for the quiet time, then goes with one.
        gathering.quiet = GATHER_QUIET;
        let sender = late.await.unwrap();
        sender.send(1).await.unwrap();
        let started = Instant::now();
        assert_eq!(next(&mut gathering, &mut queue).await, Some(vec![1]));
        assert!(started.elapsed() >= GATHER_QUIET);

        // And the next one, after a group of one, does not wait.
        sender.send(1).await.unwrap();
        assert_eq!(next(&mut gathering, &mut queue).await, Some(vec![1]));
        drop(sender);
        assert_eq!(next(&mut gathering, &mut queue).await, None);
    }
}
