//! The per-stream SHA-256 hash chain that makes tampering evident.
//!
//! Each event's hash covers the previous event's hash (zeros for a stream's first event) and
//! the event's canonical bytes: every envelope field except the global position, which some
//! backends assign only at commit. Every backend seals events with [`seal`], and auditors
//! check a stream with [`verify_stream`].

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::{AppendRequest, EventMetadata, RecordedEvent};
use crate::stream::{Position, StreamVersion};

/// A SHA-256 digest, shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventHash(pub [u8; 32]);

impl EventHash {
    /// The "previous hash" of a stream's first event.
    pub const GENESIS: EventHash = EventHash([0; 32]);

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<EventHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(EventHash(bytes))
    }

    /// Returns the hash as lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl TryFrom<String> for EventHash {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        EventHash::from_hex(&text).ok_or_else(|| format!("{text:?} is not a 64-digit hex hash"))
    }
}

impl From<EventHash> for String {
    fn from(hash: EventHash) -> String {
        hash.to_hex()
    }
}

/// Truncates an instant to the microsecond, the precision every backend stores.
pub fn canonical_time(instant: DateTime<Utc>) -> DateTime<Utc> {
    instant.trunc_subsecs(6)
}

/// Computes an event's hash from the previous hash and the event's envelope.
pub fn event_hash(previous: &EventHash, event: &RecordedEvent) -> EventHash {
    let mut hasher = Sha256::new();
    hasher.update(previous.0);
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(event.stream_id.as_str().as_bytes());
    field(&event.version.0.to_be_bytes());
    field(event.event_id.as_bytes());
    field(event.event_type.as_bytes());
    field(&event.schema_version.to_be_bytes());
    field(event.stored_data().as_bytes());
    field(&event.recorded_at.timestamp_micros().to_be_bytes());
    let metadata = &event.metadata;
    field(&metadata.occurred_at.timestamp_micros().to_be_bytes());
    // An actor is a struct of strings and ids; serde_json writes its fields in declaration
    // order, so the bytes are canonical.
    field(serde_json::to_string(&metadata.actor).unwrap_or_default().as_bytes());
    field(metadata.correlation_id.as_bytes());
    field(metadata.causation_id.as_ref().map_or(&[][..], |id| id.as_bytes()));
    field(metadata.command_id.as_ref().map_or(&[][..], |id| id.0.as_bytes()));
    EventHash(hasher.finalize().into())
}

/// Turns an append request into stored events: versions after `last`, hashes chained from the
/// stream's last hash, times truncated to microseconds, positions left for the backend to set
/// (they start as 0).
pub fn seal(
    request: &AppendRequest,
    last: Option<(StreamVersion, EventHash)>,
    recorded_at: DateTime<Utc>,
) -> Vec<RecordedEvent> {
    let recorded_at = canonical_time(recorded_at);
    let metadata = EventMetadata {
        occurred_at: canonical_time(request.metadata.occurred_at),
        actor: request.metadata.actor.clone(),
        correlation_id: request.metadata.correlation_id,
        causation_id: request.metadata.causation_id,
        command_id: request.command.map(|key| key.id),
    };
    let (mut version, mut previous) = match last {
        Some((version, hash)) => (version.next(), hash),
        None => (StreamVersion::FIRST, EventHash::GENESIS),
    };
    let mut sealed = Vec::with_capacity(request.events.len());
    for event in &request.events {
        let mut recorded = RecordedEvent {
            event_id: event.event_id,
            stream_id: request.stream_id.clone(),
            version,
            // A placeholder: the backend sets the position it hands out when it writes.
            position: Position { commit: 0, prepare: 0 },
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data: event.data.clone(),
            stored_data: None,
            metadata: metadata.clone(),
            recorded_at,
            hash: EventHash::GENESIS,
        };
        recorded.hash = event_hash(&previous, &recorded);
        previous = recorded.hash;
        version = version.next();
        sealed.push(recorded);
    }
    sealed
}

/// Where a stream's chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event at version {found} is where version {expected} should be (missing, inserted or reordered event)")]
    VersionGap {
        expected: StreamVersion,
        found: StreamVersion,
    },
    #[error("event at version {version} does not match its hash (altered event or altered predecessor)")]
    HashMismatch { version: StreamVersion },
    #[error("event at version {version} belongs to stream {found}, not {expected}")]
    WrongStream {
        version: StreamVersion,
        expected: String,
        found: String,
    },
}

/// Recomputes a whole stream's chain, given its events from version 0 in order.
pub fn verify_stream(events: &[RecordedEvent]) -> Result<(), ChainBreak> {
    let mut previous = EventHash::GENESIS;
    let Some(first) = events.first() else { return Ok(()) };
    for (index, event) in events.iter().enumerate() {
        let expected = StreamVersion(index as u64);
        if event.version != expected {
            return Err(ChainBreak::VersionGap {
                expected,
                found: event.version,
            });
        }
        if event.stream_id != first.stream_id {
            return Err(ChainBreak::WrongStream {
                version: event.version,
                expected: first.stream_id.to_string(),
                found: event.stream_id.to_string(),
            });
        }
        if event_hash(&previous, event) != event.hash {
            return Err(ChainBreak::HashMismatch { version: event.version });
        }
        previous = event.hash;
    }
    Ok(())
}
