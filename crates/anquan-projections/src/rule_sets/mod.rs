//! Versioned rule sets beside the live ones.
//!
//! The read models store facts, and status, veto and colour are computed at query time from
//! the facts, a rule set and an instant. "A complete set of read models for v2 beside the live
//! ones" is therefore two things: the fact tables, which every version shares (they do not
//! depend on rules, and `rebuild --read-models` refolds them from the log), and, per version,
//! the rule-dependent views materialised by [`snapshot::materialise`] into
//! `rule_set_snapshots` (every enterprise's status, indicators and colour at one instant) for
//! [`snapshot::diff`] and for analysts' SQL. Live queries evaluate with the active version,
//! held by the [`RuleSetRegistry`] and switched when a `RuleSetPromoted` event is read from the
//! `rulesets` stream ([`follow`]).

pub mod rebuild;
pub mod snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use anquan_domain::rules::log::{RULE_SET_STREAM, RuleSetLog};
use anquan_domain::rules::{RULE_SET_FILES, RuleSet, RuleSetError, RuleSetFiles};
use anquan_event_store::{EventStore, StoreError, StreamId, StreamVersion};

pub use snapshot::{
    BuildProgress, EnterpriseChange, SnapshotDiff, SnapshotError, SnapshotOutcome, TownChange, diff, materialise,
};

/// How often [`follow`] reads the rule-set stream when the store's head did not move: a safety
/// net only. Every backend's head watch covers appends by other processes (`anquan projections
/// promote` beside `anquan serve`): PostgreSQL by `LISTEN`/`NOTIFY`, SQLite by its head probe
/// (`PRAGMA data_version`, every 100 ms), so a promotion is read within about that time.
pub const FOLLOW_POLL: Duration = Duration::from_secs(10);

/// The digest of a rule set: SHA-256 over each file of [`RULE_SET_FILES`] in order, as its
/// name, its length (8 bytes big-endian) and its bytes. Lower-case hex.
pub fn rule_set_digest(files: &RuleSetFiles) -> String {
    let mut hasher = Sha256::new();
    for name in RULE_SET_FILES {
        let text = files.get(name).map_or("", String::as_str);
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// A parsed rule set with the digest of its files, and the files (what a publication records).
#[derive(Debug, Clone)]
pub struct LoadedRuleSet {
    pub rules: Arc<RuleSet>,
    pub digest: String,
    pub files: Arc<RuleSetFiles>,
}

/// Why the registry cannot be built or switched.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("rule set in folder {folder} is invalid")]
    Invalid {
        folder: String,
        #[source]
        source: RuleSetError,
    },
    #[error("folder {folder} holds rule set version {found}; a folder must be named after its version")]
    MisnamedFolder { folder: String, found: String },
    #[error("rule set {0} is not loaded on this node")]
    Unknown(String),
    #[error("rule set {version} was published with digest {published}; this node's files have {local}")]
    DigestMismatch {
        version: String,
        published: String,
        local: String,
    },
}

/// Every rule-set version this node knows (its folders, and every version whose files the
/// rule-set log carries), the active one that live queries use, and the log's promotions, which
/// say which version was in force at any instant ([`RuleSetRegistry::in_force_at`]).
pub struct RuleSetRegistry {
    versions: std::sync::RwLock<BTreeMap<String, LoadedRuleSet>>,
    /// The configured version: in force before the log's first promotion.
    base: String,
    /// The log's promotions in order, with their instants.
    promotions: std::sync::RwLock<Vec<(String, anquan_domain::Instant)>>,
    active: watch::Sender<(String, Arc<RuleSet>)>,
    /// Why this node does not agree with the rule-set log, if it does not: it has not read the
    /// log yet, or the live version there is one it cannot load. Commands are not decided
    /// and the node is not ready meanwhile.
    disagreement: watch::Sender<Option<String>>,
}

impl std::fmt::Debug for RuleSetRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSetRegistry")
            .field(
                "versions",
                &self
                    .versions()
                    .into_iter()
                    .map(|(version, _)| version)
                    .collect::<Vec<_>>(),
            )
            .field("active", &self.active_version())
            .finish()
    }
}

impl RuleSetRegistry {
    /// Builds a registry from the files of every version folder (name → files) and the
    /// configured rule set, which is active until the log says otherwise.
    pub fn new(folders: BTreeMap<String, RuleSetFiles>, configured: &RuleSetFiles) -> Result<Self, RegistryError> {
        let mut versions = BTreeMap::new();
        for (folder, files) in &folders {
            let loaded = load(folder, files)?;
            if &loaded.rules.version != folder {
                return Err(RegistryError::MisnamedFolder {
                    folder: folder.clone(),
                    found: loaded.rules.version.clone(),
                });
            }
            versions.insert(folder.clone(), loaded);
        }
        let configured = load("(configured)", configured)?;
        let version = configured.rules.version.clone();
        let active = (version.clone(), Arc::clone(&configured.rules));
        versions.entry(version.clone()).or_insert(configured);
        Ok(Self {
            versions: std::sync::RwLock::new(versions),
            base: version,
            promotions: std::sync::RwLock::new(Vec::new()),
            active: watch::Sender::new(active),
            disagreement: watch::Sender::new(None),
        })
    }

    /// Whether this node's live rule set is the one the rule-set log says is live: `Err` with
    /// the reason when it is not (see [`follow`]).
    pub fn agreement(&self) -> Result<(), String> {
        match &*self.disagreement.borrow() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    /// Marks the node as not yet agreeing with the log until [`follow`] has read it: a service
    /// does this before it serves, so no command is decided under rules the log replaced.
    pub fn await_log(&self) {
        self.disagreement
            .send_replace(Some("the rule-set log has not been read yet".to_owned()));
    }

    fn agree(&self, outcome: Result<bool, RegistryError>) -> Result<bool, RegistryError> {
        match &outcome {
            Ok(_) => {
                self.disagreement.send_replace(None);
            }
            Err(error) => {
                self.disagreement.send_replace(Some(format!(
                    "the live rule set was promoted, but this node cannot switch to it: {error}"
                )));
            }
        }
        outcome
    }

    /// A registry of one rule set, active (tests and tools).
    pub fn single(files: &RuleSetFiles) -> Result<Self, RegistryError> {
        Self::new(BTreeMap::new(), files)
    }

    /// Returns a version.
    pub fn get(&self, version: &str) -> Option<LoadedRuleSet> {
        self.versions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(version)
            .cloned()
    }

    /// Returns every version, ordered by name.
    pub fn versions(&self) -> Vec<(String, LoadedRuleSet)> {
        self.versions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(version, loaded)| (version.clone(), loaded.clone()))
            .collect()
    }

    /// The rule set in force at `at` by the rule-set log as last read: the last version
    /// promoted at or before `at`, or the configured version before the first promotion. `None`
    /// only when that version is not loaded (the log promoted one whose files it does not
    /// carry and this node lacks).
    pub fn in_force_at(&self, at: anquan_domain::Instant) -> Option<LoadedRuleSet> {
        let version = self
            .promotions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .rev()
            .find(|(_, promoted_at)| *promoted_at <= at)
            .map_or_else(|| self.base.clone(), |(version, _)| version.clone());
        self.get(&version)
    }

    /// Loads every version whose files the log carries and this node does not have, checked
    /// against the digest they were published with, and takes the log's promotions. A version
    /// whose carried files do not parse or do not match is logged and left out.
    fn learn(&self, log: &RuleSetLog) {
        {
            let mut versions = self.versions.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (version, files) in &log.contents {
                if versions.contains_key(version) {
                    continue;
                }
                let published = log.published.get(version);
                match load(version, files) {
                    Ok(loaded) if Some(&loaded.digest) == published && &loaded.rules.version == version => {
                        tracing::info!(rule_set.version = %version, "rule set loaded from the rule-set log");
                        versions.insert(version.clone(), loaded);
                    }
                    Ok(loaded) => tracing::error!(
                        rule_set.version = %version,
                        digest = %loaded.digest,
                        "the files the rule-set log carries for this version do not match its publication"
                    ),
                    Err(error) => {
                        tracing::error!(%error, rule_set.version = %version, "the files the rule-set log carries do not parse")
                    }
                }
            }
        }
        *self
            .promotions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = log.promotions.clone();
    }

    /// Returns the active rule set; a caller keeps it for a whole query.
    pub fn active(&self) -> Arc<RuleSet> {
        Arc::clone(&self.active.borrow().1)
    }

    /// Returns the active version's name.
    pub fn active_version(&self) -> String {
        self.active.borrow().0.clone()
    }

    /// Returns a receiver that changes at every switch.
    pub fn subscribe(&self) -> watch::Receiver<(String, Arc<RuleSet>)> {
        self.active.subscribe()
    }

    /// Makes the log's live version active, if the log names one and it differs. Returns
    /// whether it switched. Refuses a version this node does not have, or whose files differ
    /// from the published digest.
    pub fn apply_log(&self, log: &RuleSetLog) -> Result<bool, RegistryError> {
        self.learn(log);
        let Some((version, digest)) = &log.live else {
            return Ok(false);
        };
        if &self.active_version() == version {
            return Ok(false);
        }
        let loaded = self
            .get(version)
            .ok_or_else(|| RegistryError::Unknown(version.clone()))?;
        if &loaded.digest != digest {
            return Err(RegistryError::DigestMismatch {
                version: version.clone(),
                published: digest.clone(),
                local: loaded.digest.clone(),
            });
        }
        self.active.send_replace((version.clone(), Arc::clone(&loaded.rules)));
        tracing::info!(rule_set.version = %version, "rule set promoted: live queries now use it");
        Ok(true)
    }
}

fn load(folder: &str, files: &RuleSetFiles) -> Result<LoadedRuleSet, RegistryError> {
    let rules = RuleSet::from_files(files).map_err(|source| RegistryError::Invalid {
        folder: folder.to_owned(),
        source,
    })?;
    Ok(LoadedRuleSet {
        rules: Arc::new(rules),
        digest: rule_set_digest(files),
        files: Arc::new(files.clone()),
    })
}

/// The stream of rule-set events.
pub fn rule_set_stream() -> StreamId {
    // A constant, valid name.
    StreamId::parse(RULE_SET_STREAM).unwrap_or_else(|_| StreamId::for_uuid("rulesets", uuid::Uuid::nil()))
}

/// Reads the `rulesets` stream from `from` and folds it into `log`; returns the next version
/// to read.
pub async fn read_log(
    store: &dyn EventStore,
    log: &mut RuleSetLog,
    mut from: StreamVersion,
) -> Result<StreamVersion, StoreError> {
    let stream = rule_set_stream();
    loop {
        let page = store
            .read_stream(&stream, from, anquan_event_store::READ_BATCH_MAX)
            .await?;
        let Some(last) = page.last() else {
            return Ok(from);
        };
        from = last.version.next();
        for event in &page {
            match event.decode() {
                Ok(decoded) => log.apply(&decoded),
                Err(error) => tracing::error!(%error, version = %event.version, "undecodable rule-set event skipped"),
            }
        }
    }
}

/// Switches to the log's live version, or records (and logs) why this node cannot.
fn honour(registry: &RuleSetRegistry, log: &RuleSetLog) {
    if let Err(error) = registry.agree(registry.apply_log(log)) {
        tracing::error!(%error, "cannot switch to the promoted rule set: this node decides no command and is not ready until it can");
    }
}

/// Reads the `rulesets` stream once and makes its live version active (or records why this
/// node cannot), before a service serves: a node decides no command until it agrees with the
/// log, and this makes that true from its first request instead of after [`follow`]'s first
/// read. A store that cannot be read leaves the node disagreeing until `follow` reads it.
pub async fn agree_once(store: &dyn EventStore, registry: &RuleSetRegistry) {
    let mut log = RuleSetLog::default();
    match read_log(store, &mut log, StreamVersion::FIRST).await {
        Ok(_) => honour(registry, &log),
        Err(error) => tracing::warn!(%error, "cannot read the rule-set stream at start; the follower retries"),
    }
}

/// Follows the `rulesets` stream forever and switches the registry's active version at every
/// promotion, on the first read after the event is appended (woken by the store's head, which
/// moves for appends by any process; [`FOLLOW_POLL`] is a safety net). A promotion this node
/// cannot honour (it lacks the version, or its files differ from the published digest) is
/// logged and recorded in [`RuleSetRegistry::agreement`]: queries go on with the current rules,
/// but the node decides no command and is not ready until a later read agrees. Returns only if
/// the store keeps failing.
pub async fn follow(store: Arc<dyn EventStore>, registry: Arc<RuleSetRegistry>) -> Result<(), StoreError> {
    let mut log = RuleSetLog::default();
    let mut next = StreamVersion::FIRST;
    let mut head = store.head();
    let mut failures = 0;
    loop {
        match read_log(store.as_ref(), &mut log, next).await {
            Ok(version) => {
                failures = 0;
                next = version;
                honour(registry.as_ref(), &log);
            }
            Err(error) if failures >= 8 => return Err(error),
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, "cannot read the rule-set stream, retrying");
            }
        }
        tokio::select! {
            changed = head.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
            }
            () = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}
