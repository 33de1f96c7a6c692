//! The envelope every event is stored in (DESIGN.md §2).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use anquan_domain::{Actor, CommandId};

use crate::hash_chain::EventHash;
use crate::stream::{Position, StreamId, StreamState, StreamVersion};

/// An event to append: its id, type, schema version and JSON data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// A UUID v7, chosen by the writer so a retried append can be recognised.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// The event's data as compact JSON text; stored and hashed byte for byte.
    pub data: String,
}

/// What every event of one append shares: when it happened, who did it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendMetadata {
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

/// The SHA-256 of a command's canonical form and its actor (see `execute::command_digest`):
/// what a repeated command id must match to count as the same command.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandDigest(pub [u8; 32]);

impl CommandDigest {
    /// Hashes arbitrary bytes (tests and tools that have no domain command).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        CommandDigest(Sha256::digest(bytes).into())
    }
}

impl std::fmt::Debug for CommandDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommandDigest({})", hex::encode(self.0))
    }
}

/// The idempotency key of an append: the client's command id and the digest of the command it
/// was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandKey {
    pub id: CommandId,
    pub digest: CommandDigest,
}

/// What the store remembers of an append that carried a command id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCommand {
    /// The first append's outcome, marked `duplicate`; its `stream_id` is the stream the
    /// command id belongs to.
    pub outcome: AppendOutcome,
    /// `None` for a command recorded before digests were kept (a store made by an older build).
    pub digest: Option<CommandDigest>,
}

impl RecordedCommand {
    /// Tells whether `key` on `stream_id` is a retry of this command: the same stream and the
    /// same digest. A command recorded without a digest matches on its stream alone.
    pub fn is_retry_of(&self, stream_id: &StreamId, key: &CommandKey) -> bool {
        self.outcome.stream_id == *stream_id && self.digest.is_none_or(|digest| digest == key.digest)
    }
}

/// One append: events for one stream, with the writer's expectation of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    pub stream_id: StreamId,
    pub expected: StreamState,
    /// Makes the append idempotent: a second append with the same id, stream and digest appends
    /// nothing and returns the first one's outcome; the same id on the stream with another
    /// digest is `AppendError::CommandIdReused`, and so is the same id on another stream where
    /// the backend keeps command ids store-wide (`BackendTraits::store_wide_command_ids`).
    pub command: Option<CommandKey>,
    pub metadata: AppendMetadata,
    pub events: Vec<NewEvent>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub stream_id: StreamId,
    pub first_version: StreamVersion,
    pub last_version: StreamVersion,
    pub last_position: Position,
    /// True when the command id had been seen: this is the first append's outcome and
    /// nothing new was written.
    pub duplicate: bool,
}

/// The metadata part of a stored event's envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub command_id: Option<CommandId>,
}

/// A stored event with its full envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub version: StreamVersion,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    /// The event's data as readers use it: personal fields opened, or erased
    /// (`personal::PersonalDataStore`).
    pub data: String,
    /// The data as stored and hashed, when `data` shows it opened; `None` when they are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_data: Option<String>,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 over the previous event's hash and this event's canonical bytes.
    pub hash: EventHash,
}

impl RecordedEvent {
    /// The data as stored: what the hash chain covers.
    pub fn stored_data(&self) -> &str {
        self.stored_data.as_deref().unwrap_or(&self.data)
    }

    /// Decodes the data into a domain event (upcasting old schema versions).
    pub fn decode(&self) -> Result<anquan_domain::Event, anquan_domain::EventDecodeError> {
        anquan_domain::Event::decode(&self.event_type, self.schema_version, &self.data)
    }
}
