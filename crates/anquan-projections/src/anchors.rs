//! Signed anchors: what lets an auditor detect a stream that someone with write access to the
//! database rewrote and re-hashed (which `verify` alone cannot see).
//!
//! An anchor is an [`AnchorTaken`] event on the `anchors` stream. It commits to the log up to a
//! global position: the RFC 6962 Merkle root over every covered event's chain hash in position
//! order (`anquan_event_store::merkle`), and the head (version, hash) of every stream that
//! gained events since the previous anchor. It is signed with Ed25519; the key id is the first
//! 16 hex digits of SHA-256 over the public key, and the public key travels in the anchor so
//! old keys stay published after a rotation. Copies kept outside the database (the public
//! `GET /anchors` document, the anchors in every export) are what [`check_log`] compares the
//! log with; the signature shows who issued a copy.
//!
//! The signed bytes ([`signed_bytes`]) are: the ASCII tag `anquan anchor v1`, then the
//! sequence, the log size and the position as unsigned 64-bit big-endian integers, the root's
//! 32 bytes, `taken_at` as signed 64-bit big-endian microseconds since the Unix epoch, the key
//! id as a field, the number of heads (u64) and per head its stream id as a field, its version
//! (u64) and its hash's 32 bytes; a field is its length (u64) then its UTF-8 bytes.
//! `docs/verify_anchor.py` rebuilds them without anquan.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use anquan_domain::anchor::{ANCHOR_STREAM, AnchorTaken, StreamHead};
use anquan_domain::{Actor, Event};
use anquan_event_store::hash_chain::canonical_time;
use anquan_event_store::merkle::{self, Frontier, Levels, Node};
use anquan_event_store::{
    AppendError, AppendMetadata, AppendRequest, EventHash, EventStore, LogPages, Position, READ_BATCH_MAX,
    RecordedEvent, StoreError, StreamId, StreamState, StreamVersion,
};

use crate::audit::read_stream_all;

/// The tag the signed bytes start with.
const SIGNED_TAG: &[u8] = b"anquan anchor v1";

/// How many times an anchor is retried when another node appended one at the same time.
const TAKE_ATTEMPTS: usize = 5;

/// What can go wrong taking or reading anchors.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("the anchor key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error("anchor {sequence} is malformed: {detail}")]
    Malformed { sequence: u64, detail: String },
    #[error("the anchor stream holds an event that is not an anchor: {0}")]
    NotAnAnchor(String),
    #[error("another anchor was taken at the same time {TAKE_ATTEMPTS} times in a row")]
    Contended,
}

/// Why an anchor's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("anchor {sequence} is signed by key {key_id}, which is not among the known public keys")]
    UnknownKeyId { sequence: u64, key_id: String },
    #[error("anchor {sequence} names key {key_id}, but the known key with that id is another")]
    KeyMismatch { sequence: u64, key_id: String },
    #[error("anchor {sequence} is malformed: {detail}")]
    Malformed { sequence: u64, detail: String },
    #[error("anchor {sequence}'s signature does not verify with key {key_id} (altered anchor)")]
    BadSignature { sequence: u64, key_id: String },
}

/// The key id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id_of(public_key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(public_key))[..16].to_owned()
}

/// An Ed25519 signing key and its id.
pub struct AnchorSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for AnchorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AnchorSigner {
    /// The signer of a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id_of(&key.verifying_key().to_bytes());
        AnchorSigner { key, key_id }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, 64 hex digits.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Signs an anchor in place: sets its key id, public key and signature.
    pub fn sign(&self, anchor: &mut AnchorTaken) -> Result<(), AnchorError> {
        anchor.key_id = self.key_id.clone();
        anchor.public_key = self.public_key_hex();
        let bytes = signed_bytes(anchor).map_err(|detail| AnchorError::Malformed {
            sequence: anchor.sequence,
            detail,
        })?;
        anchor.signature = hex::encode(self.key.sign(&bytes).to_bytes());
        Ok(())
    }
}

/// The file that holds the signing key: its 32-byte seed as 64 hex digits. Read for every
/// anchor, so a rotation takes effect without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorKeyFile {
    pub path: PathBuf,
}

impl AnchorKeyFile {
    /// The key file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AnchorKeyFile { path: path.into() }
    }

    fn error(&self, detail: impl std::fmt::Display) -> AnchorError {
        AnchorError::KeyFile {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    /// Loads the key, creating the file with a fresh random key (mode 0600) when it does not
    /// exist.
    pub fn load_or_create(&self) -> Result<AnchorSigner, AnchorError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                let mut seed = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut seed)
                    .map_err(|_| self.error("does not hold 64 hex digits (an Ed25519 seed)"))?;
                Ok(AnchorSigner::from_seed(&seed))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => self.create(),
            Err(error) => Err(self.error(error)),
        }
    }

    fn create(&self) -> Result<AnchorSigner, AnchorError> {
        use std::io::Write as _;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| self.error(format!("no randomness for a new key: {error}")))?;
        if let Some(parent) = self.path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| self.error(error))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(|error| self.error(error))?;
        file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|error| self.error(error))?;
        let signer = AnchorSigner::from_seed(&seed);
        tracing::info!(key_id = signer.key_id(), path = %self.path.display(), "created an anchor signing key");
        Ok(signer)
    }

    /// Replaces the key with a new one; the old file is kept beside it as
    /// `<file>.<old key id>.retired`. Returns the old and the new key id. Anchors signed with
    /// the old key keep its public key, so it stays published.
    pub fn rotate(&self) -> Result<(Option<String>, String), AnchorError> {
        let old = match std::fs::metadata(&self.path) {
            Ok(_) => {
                let old = self.load_or_create()?;
                let mut retired = self.path.clone().into_os_string();
                retired.push(format!(".{}.retired", old.key_id()));
                std::fs::rename(&self.path, Path::new(&retired)).map_err(|error| self.error(error))?;
                Some(old.key_id().to_owned())
            }
            Err(_) => None,
        };
        let new = self.create()?;
        Ok((old, new.key_id().to_owned()))
    }
}

fn put_field(bytes: &mut Vec<u8>, field: &[u8]) {
    bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
    bytes.extend_from_slice(field);
}

fn hash_bytes(text: &str) -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| format!("{text:?} is not 64 hex digits"))?;
    Ok(bytes)
}

/// The bytes an anchor's signature covers (see the module's documentation).
pub fn signed_bytes(anchor: &AnchorTaken) -> Result<Vec<u8>, String> {
    let mut bytes = SIGNED_TAG.to_vec();
    bytes.extend_from_slice(&anchor.sequence.to_be_bytes());
    bytes.extend_from_slice(&anchor.log_size.to_be_bytes());
    bytes.extend_from_slice(&anchor.position.to_be_bytes());
    bytes.extend_from_slice(&hash_bytes(&anchor.root)?);
    bytes.extend_from_slice(&anchor.taken_at.timestamp_micros().to_be_bytes());
    put_field(&mut bytes, anchor.key_id.as_bytes());
    bytes.extend_from_slice(&(anchor.heads.len() as u64).to_be_bytes());
    for head in &anchor.heads {
        put_field(&mut bytes, head.stream_id.as_bytes());
        bytes.extend_from_slice(&head.version.to_be_bytes());
        bytes.extend_from_slice(&hash_bytes(&head.hash)?);
    }
    Ok(bytes)
}

/// Checks an anchor's signature with the known public keys (key id → public key hex).
pub fn check_signature(anchor: &AnchorTaken, keys: &BTreeMap<String, String>) -> Result<(), SignatureError> {
    let sequence = anchor.sequence;
    let malformed = |detail: String| SignatureError::Malformed { sequence, detail };
    let Some(known) = keys.get(&anchor.key_id) else {
        return Err(SignatureError::UnknownKeyId {
            sequence,
            key_id: anchor.key_id.clone(),
        });
    };
    if !known.eq_ignore_ascii_case(&anchor.public_key) {
        return Err(SignatureError::KeyMismatch {
            sequence,
            key_id: anchor.key_id.clone(),
        });
    }
    let public = hash_bytes(known).map_err(malformed)?;
    if key_id_of(&public) != anchor.key_id {
        return Err(SignatureError::KeyMismatch {
            sequence,
            key_id: anchor.key_id.clone(),
        });
    }
    let key = VerifyingKey::from_bytes(&public).map_err(|error| malformed(format!("public key: {error}")))?;
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&anchor.signature, &mut signature)
        .map_err(|_| malformed("the signature is not 128 hex digits".to_owned()))?;
    let bytes = signed_bytes(anchor).map_err(malformed)?;
    key.verify_strict(&bytes, &Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::BadSignature {
            sequence,
            key_id: anchor.key_id.clone(),
        })
}

/// Every anchor on the `anchors` stream, in order.
pub async fn read_anchors(store: &dyn EventStore) -> Result<Vec<AnchorTaken>, AnchorError> {
    let events = read_stream_all(store, &anchor_stream()).await?;
    events.iter().map(anchor_of).collect()
}

fn anchor_of(event: &RecordedEvent) -> Result<AnchorTaken, AnchorError> {
    match event.decode() {
        Ok(Event::AnchorTaken(anchor)) => Ok(anchor),
        Ok(other) => Err(AnchorError::NotAnAnchor(other.event_type().to_owned())),
        Err(error) => Err(AnchorError::NotAnAnchor(error.to_string())),
    }
}

/// The `anchors` stream.
pub fn anchor_stream() -> StreamId {
    // A constant of lower-case letters, which every stream id may hold.
    StreamId::parse(ANCHOR_STREAM).unwrap_or_else(|_| unreachable!("{ANCHOR_STREAM} is a valid stream id"))
}

/// Takes an anchor of the log as it stands and appends it. With `only_when_changed`, nothing
/// is taken when no event but the previous anchor was appended since it, or the log is empty
/// (the periodic anchor of an idle service). Retries when another node appended an anchor at the same time.
pub async fn take_anchor(
    store: &Arc<dyn EventStore>,
    signer: &AnchorSigner,
    actor: &Actor,
    now: DateTime<Utc>,
    only_when_changed: bool,
) -> Result<Option<AnchorTaken>, AnchorError> {
    for _ in 0..TAKE_ATTEMPTS {
        let events = read_stream_all(store.as_ref(), &anchor_stream()).await?;
        let previous = match events.last() {
            Some(event) => Some((event.version, anchor_of(event)?)),
            None => None,
        };
        let (mut frontier, after, sequence) = match &previous {
            Some((_, anchor)) => {
                let subtrees = anchor
                    .frontier
                    .iter()
                    .map(|node| hash_bytes(node))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|detail| AnchorError::Malformed {
                        sequence: anchor.sequence,
                        detail,
                    })?;
                let frontier =
                    Frontier::from_parts(anchor.log_size, subtrees).ok_or_else(|| AnchorError::Malformed {
                        sequence: anchor.sequence,
                        detail: "its frontier does not fit its log size".to_owned(),
                    })?;
                (
                    frontier,
                    Some(Position::from_sequence(anchor.position)),
                    anchor.sequence + 1,
                )
            }
            None => (Frontier::new(), None, 0),
        };
        let mut heads: BTreeMap<String, (u64, EventHash)> = BTreeMap::new();
        let mut only_anchors = true;
        let mut position = after;
        let mut pages = LogPages::new(Arc::clone(store), after, READ_BATCH_MAX);
        while let Some(page) = pages.next_page().await? {
            for event in &page {
                position = Some(event.position);
                frontier.push(&event.hash.0);
                only_anchors &= event.stream_id.as_str() == ANCHOR_STREAM;
                heads.insert(event.stream_id.to_string(), (event.version.0, event.hash));
            }
        }
        if only_when_changed && only_anchors {
            return Ok(None);
        }
        let mut anchor = AnchorTaken {
            sequence,
            log_size: frontier.size(),
            position: position.map_or(0, |position| position.sequence()),
            root: hex::encode(frontier.root()),
            frontier: frontier.subtrees().iter().map(hex::encode).collect(),
            heads: heads
                .into_iter()
                .map(|(stream_id, (version, hash))| StreamHead {
                    stream_id,
                    version,
                    hash: hash.to_hex(),
                })
                .collect(),
            taken_at: canonical_time(now),
            key_id: String::new(),
            public_key: String::new(),
            signature: String::new(),
        };
        signer.sign(&mut anchor)?;
        let event = Event::AnchorTaken(anchor.clone());
        let request = AppendRequest {
            stream_id: anchor_stream(),
            expected: match &previous {
                Some((version, _)) => StreamState::At(*version),
                None => StreamState::NoStream,
            },
            command: None,
            metadata: AppendMetadata {
                occurred_at: anchor.taken_at,
                actor: actor.clone(),
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
            },
            events: vec![anquan_event_store::execute::new_event(&event)],
        };
        match store.append(request).await {
            Ok(_) => {
                tracing::info!(
                    sequence = anchor.sequence,
                    log_size = anchor.log_size,
                    position = anchor.position,
                    key_id = %anchor.key_id,
                    "anchor taken"
                );
                return Ok(Some(anchor));
            }
            Err(AppendError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(AnchorError::Contended)
}

/// A public key anchors were signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    pub key_id: String,
    /// Ed25519, 64 hex digits.
    pub public_key: String,
}

/// The published document (`GET /anchors`, `anchors.json` in an export): every anchor and the
/// public keys they were signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorsDocument {
    /// `anquan anchors v1`.
    pub format: String,
    pub anchors: Vec<AnchorTaken>,
    pub keys: Vec<PublishedKey>,
}

impl AnchorsDocument {
    /// The document of these anchors, with every key they name.
    pub fn of(anchors: Vec<AnchorTaken>) -> Self {
        let mut keys = BTreeMap::new();
        for anchor in &anchors {
            keys.entry(anchor.key_id.clone())
                .or_insert_with(|| anchor.public_key.clone());
        }
        AnchorsDocument {
            format: "anquan anchors v1".to_owned(),
            anchors,
            keys: keys
                .into_iter()
                .map(|(key_id, public_key)| PublishedKey { key_id, public_key })
                .collect(),
        }
    }

    /// The keys as key id → public key.
    pub fn key_map(&self) -> BTreeMap<String, String> {
        self.keys
            .iter()
            .map(|key| (key.key_id.clone(), key.public_key.clone()))
            .collect()
    }
}

/// One event as a leaf of the log's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub position: u64,
    pub stream_id: String,
    pub version: u64,
    pub event_id: uuid::Uuid,
    pub hash: EventHash,
}

/// Reads the log's leaves in position order, up to `up_to` (inclusive) or to the end.
pub async fn read_leaves(store: &Arc<dyn EventStore>, up_to: Option<u64>) -> Result<Vec<Leaf>, StoreError> {
    let mut leaves = Vec::new();
    let mut pages = LogPages::new(Arc::clone(store), None, READ_BATCH_MAX);
    while let Some(page) = pages.next_page().await? {
        for event in page {
            if up_to.is_some_and(|up_to| event.position.sequence() > up_to) {
                return Ok(leaves);
            }
            leaves.push(Leaf {
                position: event.position.sequence(),
                stream_id: event.stream_id.to_string(),
                version: event.version.0,
                event_id: event.event_id,
                hash: event.hash,
            });
        }
    }
    Ok(leaves)
}

/// What comparing the log with an anchor found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorFinding {
    /// The anchor's sequence.
    pub anchor: u64,
    /// The stream found rewritten, when a recorded head names it.
    pub stream_id: Option<String>,
    /// The first version that may differ and the version the anchor recorded: the first
    /// differing event is between them (the same version when they agree).
    pub first_version: Option<u64>,
    pub recorded_version: Option<u64>,
    /// The event the log now has at the recorded version.
    pub event_id: Option<String>,
    pub detail: String,
}

impl std::fmt::Display for AnchorFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "anchor {}: {}", self.anchor, self.detail)
    }
}

/// Compares the log (its leaves in position order) with anchors kept elsewhere and their
/// public keys: every signature must verify with a known key, every anchor's root must be
/// the root recomputed over the log's first `log_size` events, and every recorded stream head
/// must be the event the log has at that version. A rewritten stream is named with the first
/// differing event: between the last version an earlier anchor recorded that still matches
/// and the first recorded version that does not.
pub fn check_log(document: &AnchorsDocument, leaves: &[Leaf]) -> Vec<AnchorFinding> {
    let keys = document.key_map();
    let mut findings = Vec::new();
    let finding = |anchor: u64, detail: String| AnchorFinding {
        anchor,
        stream_id: None,
        first_version: None,
        recorded_version: None,
        event_id: None,
        detail,
    };
    let mut anchors: Vec<&AnchorTaken> = document.anchors.iter().collect();
    anchors.sort_by_key(|anchor| anchor.log_size);
    let by_version: HashMap<(&str, u64), &Leaf> = leaves
        .iter()
        .map(|leaf| ((leaf.stream_id.as_str(), leaf.version), leaf))
        .collect();
    // Per stream: the last version an anchor recorded that the log still agrees with, and
    // whether a mismatch was already reported.
    let mut agreed: HashMap<&str, Option<u64>> = HashMap::new();
    let mut reported: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut frontier = Frontier::new();
    let mut next_leaf = 0usize;
    for anchor in anchors {
        if let Err(error) = check_signature(anchor, &keys) {
            findings.push(finding(anchor.sequence, error.to_string()));
            continue;
        }
        let size = usize::try_from(anchor.log_size).unwrap_or(usize::MAX);
        if size > leaves.len() {
            findings.push(finding(
                anchor.sequence,
                format!(
                    "it covers {} events, but the log has only {} (events deleted)",
                    anchor.log_size,
                    leaves.len()
                ),
            ));
        } else {
            while next_leaf < size {
                frontier.push(&leaves[next_leaf].hash.0);
                next_leaf += 1;
            }
            if hex::encode(frontier.root()) != anchor.root {
                findings.push(finding(
                    anchor.sequence,
                    format!(
                        "its root {} is not the root {} of the log's first {} events (position {})",
                        anchor.root,
                        hex::encode(frontier.root()),
                        anchor.log_size,
                        anchor.position
                    ),
                ));
            }
        }
        for head in &anchor.heads {
            let stream = head.stream_id.as_str();
            if reported.contains(stream) {
                continue;
            }
            let found = by_version.get(&(stream, head.version));
            if found.is_some_and(|leaf| leaf.hash.to_hex() == head.hash) {
                agreed.insert(stream, Some(head.version));
                continue;
            }
            let first = agreed.get(stream).copied().flatten().map_or(0, |version| version + 1);
            reported.insert(stream);
            let detail = match found {
                None => format!(
                    "stream {stream}: the anchor recorded version {} (hash {}), which the log no longer has (events deleted)",
                    head.version, head.hash
                ),
                Some(leaf) => {
                    let which = if first == head.version {
                        format!("the first differing event is version {}", head.version)
                    } else {
                        format!(
                            "the first differing event is between versions {first} and {}",
                            head.version
                        )
                    };
                    format!(
                        "stream {stream} was rewritten: event at version {} (event id {}) has hash {}, the anchor recorded {}; {which}",
                        head.version, leaf.event_id, leaf.hash, head.hash
                    )
                }
            };
            findings.push(AnchorFinding {
                anchor: anchor.sequence,
                stream_id: Some(head.stream_id.clone()),
                first_version: Some(first),
                recorded_version: Some(head.version),
                event_id: found.map(|leaf| leaf.event_id.to_string()),
                detail,
            });
        }
    }
    findings
}

/// An inclusion proof: one event's chain hash is leaf `leaf_index` of the tree an anchor
/// signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub stream_id: String,
    pub version: u64,
    pub event_id: String,
    /// The event's chain hash: the leaf's data.
    pub event_hash: String,
    pub anchor: u64,
    pub log_size: u64,
    pub root: String,
    pub leaf_index: u64,
    /// The audit path from the leaf's sibling up (hex).
    pub path: Vec<String>,
}

/// The tree an anchor signed, over the log's leaves, for proofs of many events.
pub struct AnchoredTree<'a> {
    anchor: &'a AnchorTaken,
    leaves: &'a [Leaf],
    levels: Levels,
    index: HashMap<(&'a str, u64), usize>,
}

impl<'a> AnchoredTree<'a> {
    /// The tree of `anchor` over the log's first `log_size` leaves; `None` when the log is
    /// shorter or its root is not the anchor's.
    pub fn new(anchor: &'a AnchorTaken, leaves: &'a [Leaf]) -> Option<Self> {
        let size = usize::try_from(anchor.log_size).ok()?;
        let leaves = leaves.get(..size)?;
        let levels = Levels::new(leaves.iter().map(|leaf| merkle::leaf_hash(&leaf.hash.0)).collect());
        if hex::encode(levels.root()) != anchor.root {
            return None;
        }
        let index = leaves
            .iter()
            .enumerate()
            .map(|(index, leaf)| ((leaf.stream_id.as_str(), leaf.version), index))
            .collect();
        Some(AnchoredTree {
            anchor,
            leaves,
            levels,
            index,
        })
    }

    /// The proof of a stream's event, when the anchor covers it.
    pub fn proof(&self, stream_id: &str, version: u64) -> Option<InclusionProof> {
        let index = *self.index.get(&(stream_id, version))?;
        let leaf = &self.leaves[index];
        let path: Vec<Node> = self.levels.proof(index)?;
        Some(InclusionProof {
            stream_id: leaf.stream_id.clone(),
            version: leaf.version,
            event_id: leaf.event_id.to_string(),
            event_hash: leaf.hash.to_hex(),
            anchor: self.anchor.sequence,
            log_size: self.anchor.log_size,
            root: self.anchor.root.clone(),
            leaf_index: index as u64,
            path: path.iter().map(hex::encode).collect(),
        })
    }
}

/// Checks an inclusion proof against its anchor (whose signature is checked apart).
pub fn verify_proof(proof: &InclusionProof, anchor: &AnchorTaken) -> bool {
    let (Ok(leaf), Ok(root)) = (hash_bytes(&proof.event_hash), hash_bytes(&anchor.root)) else {
        return false;
    };
    let Ok(path) = proof
        .path
        .iter()
        .map(|node| hash_bytes(node))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    proof.anchor == anchor.sequence
        && proof.log_size == anchor.log_size
        && merkle::verify_inclusion(
            &merkle::leaf_hash(&leaf),
            proof.leaf_index,
            anchor.log_size,
            &path,
            &root,
        )
}

/// The latest anchor and the log's leaves it covers: what proofs are given against.
pub async fn latest_anchored(store: &Arc<dyn EventStore>) -> Result<Option<(AnchorTaken, Vec<Leaf>)>, AnchorError> {
    let anchors = read_anchors(store.as_ref()).await?;
    let Some(latest) = anchors.into_iter().max_by_key(|anchor| anchor.log_size) else {
        return Ok(None);
    };
    let leaves = read_leaves(store, Some(latest.position)).await?;
    Ok(Some((latest, leaves)))
}

/// The version a stream is at in an anchor's heads, for tests and reports.
pub fn recorded_head(anchor: &AnchorTaken, stream_id: &str) -> Option<StreamVersion> {
    anchor
        .heads
        .iter()
        .find(|head| head.stream_id == stream_id)
        .map(|head| StreamVersion(head.version))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn anchor(signer: &AnchorSigner) -> AnchorTaken {
        let mut anchor = AnchorTaken {
            sequence: 3,
            log_size: 2,
            position: 2,
            root: hex::encode(merkle::empty_root()),
            frontier: vec![],
            heads: vec![StreamHead {
                stream_id: "enterprise-1".to_owned(),
                version: 1,
                hash: "ab".repeat(32),
            }],
            taken_at: "2026-03-02T02:00:00.123456Z".parse().unwrap(),
            key_id: String::new(),
            public_key: String::new(),
            signature: String::new(),
        };
        signer.sign(&mut anchor).unwrap();
        anchor
    }

    fn keys(signer: &AnchorSigner) -> BTreeMap<String, String> {
        BTreeMap::from([(signer.key_id().to_owned(), signer.public_key_hex())])
    }

    #[test]
    fn a_signed_anchor_verifies_with_its_key() {
        let signer = AnchorSigner::from_seed(&[7; 32]);
        let anchor = anchor(&signer);
        assert_eq!(anchor.key_id.len(), 16);
        assert_eq!(check_signature(&anchor, &keys(&signer)), Ok(()));
    }

    #[test]
    fn a_tampered_root_head_or_time_fails_the_signature() {
        let signer = AnchorSigner::from_seed(&[7; 32]);
        let good = anchor(&signer);
        let mut root = good.clone();
        root.root = "00".repeat(32);
        let mut head = good.clone();
        head.heads[0].version = 2;
        let mut time = good.clone();
        time.taken_at += chrono::Duration::microseconds(1);
        let mut size = good;
        size.log_size += 1;
        for tampered in [root, head, time, size] {
            assert!(matches!(
                check_signature(&tampered, &keys(&signer)),
                Err(SignatureError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn an_unknown_or_substituted_key_is_refused() {
        let signer = AnchorSigner::from_seed(&[7; 32]);
        let other = AnchorSigner::from_seed(&[8; 32]);
        let anchor = anchor(&signer);
        assert!(matches!(
            check_signature(&anchor, &keys(&other)),
            Err(SignatureError::UnknownKeyId { .. })
        ));
        // The other key published under this key's id: not the key the id names.
        let substituted = BTreeMap::from([(signer.key_id().to_owned(), other.public_key_hex())]);
        assert!(matches!(
            check_signature(&anchor, &substituted),
            Err(SignatureError::KeyMismatch { .. })
        ));
        // Re-signed by another key that claims this key's id and public key: bad signature.
        let mut forged = anchor.clone();
        forged.signature = hex::encode(other.key.sign(&signed_bytes(&anchor).unwrap()).to_bytes());
        assert!(matches!(
            check_signature(&forged, &keys(&signer)),
            Err(SignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_key_file_is_created_once_and_rotated() {
        let directory = tempfile::tempdir().unwrap();
        let file = AnchorKeyFile::new(directory.path().join("keys/anchor-signing-key"));
        let first = file.load_or_create().unwrap();
        assert_eq!(file.load_or_create().unwrap().key_id(), first.key_id());
        let (old, new) = file.rotate().unwrap();
        assert_eq!(old.as_deref(), Some(first.key_id()));
        assert_ne!(new, first.key_id());
        assert_eq!(file.load_or_create().unwrap().key_id(), new);
        let retired = directory
            .path()
            .join(format!("keys/anchor-signing-key.{}.retired", first.key_id()));
        assert!(retired.exists());
    }

    async fn append(store: &dyn EventStore, stream: &str) {
        store
            .append(AppendRequest {
                stream_id: StreamId::parse(stream).unwrap(),
                expected: StreamState::Any,
                command: None,
                metadata: AppendMetadata {
                    occurred_at: Utc::now(),
                    actor: actor(),
                    correlation_id: uuid::Uuid::now_v7(),
                    causation_id: None,
                },
                events: vec![anquan_event_store::NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type: "Noted".to_owned(),
                    schema_version: 1,
                    data: "{}".to_owned(),
                }],
            })
            .await
            .unwrap();
    }

    fn actor() -> Actor {
        Actor {
            user_id: anquan_domain::UserId::parse("test").unwrap(),
            role: anquan_domain::Role::CityAdmin,
        }
    }

    #[tokio::test]
    async fn the_log_agrees_with_its_anchors_until_a_stream_is_rewritten() {
        let store: Arc<dyn EventStore> = Arc::new(anquan_event_store::InMemoryEventStore::new());
        let signer = AnchorSigner::from_seed(&[9; 32]);
        let actor = actor();
        let take = |changed| take_anchor(&store, &signer, &actor, Utc::now(), changed);
        assert!(
            take(true).await.unwrap().is_none(),
            "an empty log is not anchored periodically"
        );
        append(store.as_ref(), "enterprise-a").await;
        take(false).await.unwrap().unwrap();
        assert!(take(true).await.unwrap().is_none(), "only the anchor is new");
        append(store.as_ref(), "enterprise-a").await;
        append(store.as_ref(), "enterprise-b").await;
        take(false).await.unwrap().unwrap();
        append(store.as_ref(), "enterprise-a").await;
        append(store.as_ref(), "enterprise-a").await;
        let last = take(true).await.unwrap().unwrap();
        assert_eq!(recorded_head(&last, "enterprise-a"), Some(StreamVersion(3)));
        // The frontier carried from anchor to anchor gives the root of the whole log.
        let leaves = read_leaves(&store, None).await.unwrap();
        let hashed: Vec<Node> = leaves.iter().map(|leaf| merkle::leaf_hash(&leaf.hash.0)).collect();
        assert_eq!(
            last.root,
            hex::encode(merkle::root_of_leaf_hashes(&hashed[..last.log_size as usize]))
        );
        let document = AnchorsDocument::of(read_anchors(store.as_ref()).await.unwrap());
        assert_eq!(check_log(&document, &leaves), vec![]);
        // Every covered event has a proof that verifies against the last anchor.
        let tree = AnchoredTree::new(&last, &leaves).unwrap();
        for leaf in &leaves[..last.log_size as usize] {
            let proof = tree.proof(&leaf.stream_id, leaf.version).unwrap();
            assert!(verify_proof(&proof, &last));
            let mut wrong = proof.clone();
            wrong.leaf_index = (wrong.leaf_index + 1) % last.log_size;
            assert!(!verify_proof(&wrong, &last));
        }
        // enterprise-a rewritten from version 2 on: anchor 1 recorded version 1 (still
        // agreed), anchor 2 recorded version 3, so the first differing event is 2 to 3.
        let mut rewritten = leaves.clone();
        for leaf in &mut rewritten {
            if leaf.stream_id == "enterprise-a" && leaf.version >= 2 {
                leaf.hash = EventHash([leaf.version as u8; 32]);
            }
        }
        let findings = check_log(&document, &rewritten);
        let named: Vec<_> = findings.iter().filter(|finding| finding.stream_id.is_some()).collect();
        assert_eq!(named.len(), 1, "{findings:?}");
        assert_eq!(named[0].stream_id.as_deref(), Some("enterprise-a"));
        assert_eq!((named[0].first_version, named[0].recorded_version), (Some(2), Some(3)));
        assert!(
            named[0].detail.contains("between versions 2 and 3"),
            "{}",
            named[0].detail
        );
        assert!(
            findings
                .iter()
                .any(|finding| finding.detail.contains("is not the root"))
        );
        // An anchor whose root was altered in the copy fails its signature.
        let mut altered = document.clone();
        altered.anchors[0].root = "00".repeat(32);
        assert!(check_log(&altered, &leaves)[0].detail.contains("does not verify"));
    }
}
