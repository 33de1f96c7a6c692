//! One active projector per projection group, elected through the read-model store.
//!
//! A group's lease is a row (`projection_leases`: group, term, holder, expiry by the store's
//! clock). A node takes it when it is free (never taken, expired or released), which starts a
//! new, higher term, and renews it every [`Leadership::renew_interval`]; the store grants both
//! in one atomic statement, so two nodes never hold one term. Every batch the leader commits
//! carries its term and commits only while that term is the group's current one and its
//! projection's checkpoint is the one it was folded after (see
//! [`anquan_event_store::ProjectionBatch`]): a deposed leader's late batch fails instead of
//! landing, and no checkpoint moves backwards or applies an event twice, whatever the clocks or
//! the network do. Safety rests on that fence; the lease only decides who should be working.
//!
//! A leader that cannot renew steps down once its lease may have expired (another node may
//! then take it), and a node that stops releases its lease, so another leads at once instead
//! of after the lease runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anquan_event_store::{LeaseClaim, LeaseTerm, ReadModelError, ReadModelStore};

/// The group of the fact read models (compliance and agency), folded by one runner.
pub const READ_MODELS_GROUP: &str = "read_models";
/// How long a lease lasts unless renewed: failover takes at most this plus one renewal
/// interval after a leader dies without releasing it.
pub const LEASE_DEFAULT: Duration = Duration::from_secs(5);
/// The shortest lease accepted: renewals every fifth of it must stay well above a store's
/// round trip.
pub const LEASE_MIN: Duration = Duration::from_millis(500);

/// This node's claim on one projection group's lease.
#[derive(Clone)]
pub struct Leadership {
    read_models: Arc<dyn ReadModelStore>,
    group: String,
    holder: String,
    lease: Duration,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("group", &self.group)
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// A claim on `group` by node `node_id`; the holder is the node id with a nonce of this
    /// process, so a node that restarts under the same id starts a new term instead of renewing
    /// the term of its previous life.
    pub fn new(read_models: Arc<dyn ReadModelStore>, group: &str, node_id: &str, lease: Duration) -> Self {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        Self {
            read_models,
            group: group.to_owned(),
            holder: format!("{node_id}/{}", &nonce[..8]),
            lease: lease.max(LEASE_MIN),
        }
    }

    /// Who this node is in the lease table.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// How often a leader renews, and a follower tries to take, the lease.
    pub fn renew_interval(&self) -> Duration {
        (self.lease / 5).max(Duration::from_millis(100))
    }

    fn claim(&self, renewing: Option<i64>) -> LeaseClaim {
        LeaseClaim {
            group: self.group.clone(),
            holder: self.holder.clone(),
            renewing,
            duration_ms: i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX),
            force: false,
        }
    }

    /// Takes the lease even from a live holder, as a new term: the holder's next batch is
    /// fenced and its next renewal refused, so it steps down within one renewal interval. For
    /// an operator's rebuild of the live read models.
    pub async fn take_over(&self) -> Result<LeaseTerm, ReadModelError> {
        let claim = LeaseClaim {
            force: true,
            ..self.claim(None)
        };
        let term = self
            .read_models
            .claim_lease(&claim)
            .await?
            .ok_or_else(|| ReadModelError::Backend {
                message: format!("the store did not grant a forced claim of {}", self.group),
                source: None,
            })?;
        tracing::info!(lease.group = %self.group, lease.term = term.term, holder = %self.holder, "took the projection lease over");
        Ok(term)
    }

    /// Takes the lease if it is free; `None` when another holder has it.
    pub async fn try_acquire(&self) -> Result<Option<LeaseTerm>, ReadModelError> {
        let term = self.read_models.claim_lease(&self.claim(None)).await?;
        if let Some(term) = &term {
            tracing::info!(lease.group = %self.group, lease.term = term.term, holder = %self.holder, "this node leads the projection group");
        }
        Ok(term)
    }

    /// Waits until this node holds the lease, trying every [`Self::renew_interval`].
    pub async fn acquire(&self) -> LeaseTerm {
        let mut failures: u32 = 0;
        loop {
            match self.try_acquire().await {
                Ok(Some(term)) => return term,
                Ok(None) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!(lease.group = %self.group, %error, failures, "cannot claim the projection lease");
                    }
                }
            }
            tokio::time::sleep(self.renew_interval()).await;
        }
    }

    /// Renews `term` every [`Self::renew_interval`] and returns when it is lost: the store
    /// refused a renewal (another holder took it), or no renewal succeeded for a whole lease,
    /// so it may have expired and been taken.
    pub async fn hold(&self, term: &LeaseTerm) {
        let mut valid_until = Instant::now() + self.lease;
        loop {
            tokio::time::sleep(self.renew_interval()).await;
            let sent = Instant::now();
            match self.read_models.claim_lease(&self.claim(Some(term.term))).await {
                Ok(Some(renewed)) if renewed.term == term.term => valid_until = sent + self.lease,
                Ok(_) => {
                    tracing::warn!(lease.group = %self.group, lease.term = term.term, "projection lease lost to another node");
                    break;
                }
                Err(error) if Instant::now() >= valid_until => {
                    tracing::warn!(lease.group = %self.group, lease.term = term.term, %error, "cannot renew the projection lease before it expires; stepping down");
                    break;
                }
                Err(error) => {
                    tracing::warn!(lease.group = %self.group, lease.term = term.term, %error, "cannot renew the projection lease; retrying");
                }
            }
        }
    }

    /// Gives the lease up, so another node takes it at once.
    pub async fn release(&self, term: &LeaseTerm) {
        match self.read_models.release_lease(term, &self.holder).await {
            Ok(()) => tracing::info!(lease.group = %self.group, lease.term = term.term, "projection lease released"),
            Err(error) => {
                tracing::warn!(lease.group = %self.group, lease.term = term.term, %error, "cannot release the projection lease; it expires by itself");
            }
        }
    }
}
