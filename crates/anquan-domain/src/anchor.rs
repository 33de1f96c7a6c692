//! Anchors: signed commitments to the log up to a position, recorded as events on one system
//! stream, `anchors`. The event is data only; the Merkle tree, the signature and the checks
//! against the log are in `anquan_projections::anchors` (this crate does no cryptography and
//! no IO).

use serde::{Deserialize, Serialize};

use crate::Instant;

/// The name of the one stream of anchor events.
pub const ANCHOR_STREAM: &str = "anchors";

/// A stream's last event at an anchor's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHead {
    pub stream_id: String,
    pub version: u64,
    /// The event's chain hash, 64 hex digits.
    pub hash: String,
}

/// The service signed the log's Merkle root up to a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorTaken {
    /// The anchor's number: 0 for the first, one more for each next (its stream version).
    pub sequence: u64,
    /// The events covered: every event at a global position up to `position`, in position order.
    pub log_size: u64,
    /// The last global position covered (0 when the log was empty).
    pub position: u64,
    /// The RFC 6962 Merkle root over the covered events' chain hashes, 64 hex digits.
    pub root: String,
    /// The roots of the tree's perfect subtrees, largest first (hex): the next anchor extends
    /// the tree from them. Not signed: they follow from the log.
    pub frontier: Vec<String>,
    /// The head of every stream that gained events since the previous anchor, in stream order:
    /// what names the stream and event a rewrite changed.
    pub heads: Vec<StreamHead>,
    pub taken_at: Instant,
    /// The signing key's id: the first 16 hex digits of SHA-256 over its public key.
    pub key_id: String,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// The Ed25519 signature over the anchor's signed bytes, 128 hex digits.
    pub signature: String,
}
