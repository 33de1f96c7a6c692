//! The pure mapping between anquan's envelope and KurrentDB's events, expectations, positions
//! and errors: no IO, so every rule here is unit-tested without a server.
//!
//! An event is stored as KurrentDB event data (our data bytes, byte for byte) with our UUID v7
//! as its event id, our event type as its type, and the rest of the envelope as its custom
//! metadata: one JSON object, [`StoredMetadata`]. KurrentDB's own revision and `$all` position
//! are the version and position. The correlation and causation ids use KurrentDB's
//! `$correlationId` and `$causationId` keys, so its system projections (`$by_correlation_id`)
//! read them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anquan_domain::{Actor, CommandId};
use anquan_event_store::{
    CommandDigest, EventHash, EventMetadata, Position, RecordedEvent, StoreError, StreamId, StreamState, StreamVersion,
};

/// The custom metadata of every event anquan writes to KurrentDB: the envelope fields KurrentDB
/// has no place for. `hash` and `previousHash` are the chain link, kept beside the event so a
/// reader of the raw stream sees it; `recordedAt` is ours (the hash covers it), not the server's
/// `created` time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMetadata {
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    #[serde(rename = "$correlationId")]
    pub correlation_id: Uuid,
    #[serde(rename = "$causationId", default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    /// The command's digest (hex), on every event of an append that carried a command id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_digest: Option<String>,
    pub hash: EventHash,
    pub previous_hash: EventHash,
}

/// An event ready to be sent: what `kurrentdb::EventData` is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub event_id: Uuid,
    pub event_type: String,
    pub data: Bytes,
    /// True when the data can be sent as KurrentDB JSON content byte for byte (it has no
    /// surrounding whitespace, which a JSON payload would lose); else it is sent as binary
    /// content with the same bytes.
    pub json: bool,
    pub metadata: Bytes,
}

/// What an event read from KurrentDB is made of (a view of `kurrentdb::RecordedEvent`, whose
/// stream name is not constructible outside the client, so tests build this instead).
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    pub event_id: Uuid,
    pub stream: &'a str,
    pub revision: u64,
    pub position: kurrentdb::Position,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub metadata: &'a [u8],
}

impl<'a> StoredEvent<'a> {
    /// Views a client event.
    pub fn of(event: &'a kurrentdb::RecordedEvent) -> Self {
        StoredEvent {
            event_id: event.id,
            stream: event.stream_id(),
            revision: event.revision,
            position: event.position,
            event_type: &event.event_type,
            data: &event.data,
            metadata: &event.custom_metadata,
        }
    }

    /// Where the event is, for error messages: `stream@revision (commit/prepare)`.
    pub fn location(&self) -> String {
        format!("{}@{} ({})", self.stream, self.revision, position(self.position))
    }
}

/// A decoded event with the command digest its append carried, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub event: RecordedEvent,
    pub command_digest: Option<CommandDigest>,
    pub previous_hash: EventHash,
}

/// Why a stored event cannot be read as one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("stream name is not an anquan stream id: {0}")]
    StreamId(#[from] anquan_event_store::StreamIdError),
    #[error("event data is not UTF-8")]
    DataNotUtf8,
    #[error("event metadata is not anquan's envelope: {0}")]
    Metadata(String),
    #[error("command digest {0:?} is not 64 hex digits")]
    CommandDigest(String),
    #[error("event data is not valid JSON: {0}")]
    DataNotJson(String),
}

impl MappingError {
    /// The store error for an event at `location` that cannot be read.
    pub fn corrupt(self, location: String) -> StoreError {
        StoreError::Corrupt {
            location,
            reason: self.to_string(),
        }
    }
}

/// Encodes a sealed event (its version, hash and times set by `hash_chain::seal`).
pub fn encode(
    event: &RecordedEvent,
    previous_hash: EventHash,
    command_digest: Option<CommandDigest>,
) -> Result<Encoded, MappingError> {
    let metadata = StoredMetadata {
        schema_version: event.schema_version,
        occurred_at: event.metadata.occurred_at,
        recorded_at: event.recorded_at,
        actor: event.metadata.actor.clone(),
        correlation_id: event.metadata.correlation_id,
        causation_id: event.metadata.causation_id,
        command_id: event.metadata.command_id,
        command_digest: command_digest.map(|digest| hex::encode(digest.0)),
        hash: event.hash,
        previous_hash,
    };
    let metadata = serde_json::to_vec(&metadata).map_err(|error| MappingError::Metadata(error.to_string()))?;
    Ok(Encoded {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        data: Bytes::copy_from_slice(event.data.as_bytes()),
        json: event.data.trim() == event.data,
        metadata: Bytes::from(metadata),
    })
}

impl Encoded {
    /// Builds the client's event data.
    pub fn into_event_data(self) -> Result<kurrentdb::EventData, MappingError> {
        let event = if self.json {
            let text = std::str::from_utf8(&self.data).map_err(|_| MappingError::DataNotUtf8)?;
            // A borrowed raw value keeps the text verbatim (it has no surrounding whitespace,
            // checked in `encode`), and serialising it writes exactly that text.
            let raw: &serde_json::value::RawValue =
                serde_json::from_str(text).map_err(|error| MappingError::DataNotJson(error.to_string()))?;
            kurrentdb::EventData::json(&self.event_type, &raw)
                .map_err(|error| MappingError::DataNotJson(error.to_string()))?
        } else {
            kurrentdb::EventData::binary(&self.event_type, self.data)
        };
        Ok(event.id(self.event_id).metadata(self.metadata))
    }
}

/// Decodes an event read from KurrentDB.
pub fn decode(stored: &StoredEvent<'_>) -> Result<Decoded, MappingError> {
    let stream_id = StreamId::parse(stored.stream)?;
    let data = std::str::from_utf8(stored.data).map_err(|_| MappingError::DataNotUtf8)?;
    let metadata: StoredMetadata =
        serde_json::from_slice(stored.metadata).map_err(|error| MappingError::Metadata(error.to_string()))?;
    let command_digest = match &metadata.command_digest {
        None => None,
        Some(text) => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(text, &mut bytes).map_err(|_| MappingError::CommandDigest(text.clone()))?;
            Some(CommandDigest(bytes))
        }
    };
    let event = RecordedEvent {
        event_id: stored.event_id,
        stream_id,
        version: StreamVersion(stored.revision),
        position: position(stored.position),
        event_type: stored.event_type.to_owned(),
        schema_version: metadata.schema_version,
        data: data.to_owned(),
        stored_data: None,
        metadata: EventMetadata {
            occurred_at: metadata.occurred_at,
            actor: metadata.actor,
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            command_id: metadata.command_id,
        },
        recorded_at: metadata.recorded_at,
        hash: metadata.hash,
    };
    Ok(Decoded {
        event,
        command_digest,
        previous_hash: metadata.previous_hash,
    })
}

/// Tells whether an event read from `$all` is KurrentDB's own (a `$`-prefixed stream or type:
/// stream metadata, links, statistics), which anquan never reads.
pub fn is_system(stream: &str, event_type: &str) -> bool {
    stream.starts_with('$') || event_type.starts_with('$')
}

/// A KurrentDB `$all` position as ours: both parts kept whole.
pub fn position(position: kurrentdb::Position) -> Position {
    Position {
        commit: position.commit,
        prepare: position.prepare,
    }
}

/// Our position as KurrentDB's.
pub fn kurrent_position(position: Position) -> kurrentdb::Position {
    kurrentdb::Position {
        commit: position.commit,
        prepare: position.prepare,
    }
}

/// Our expectation of a stream as KurrentDB's.
pub fn stream_state(expected: StreamState) -> kurrentdb::StreamState {
    match expected {
        StreamState::Any => kurrentdb::StreamState::Any,
        StreamState::NoStream => kurrentdb::StreamState::NoStream,
        StreamState::StreamExists => kurrentdb::StreamState::StreamExists,
        StreamState::At(version) => kurrentdb::StreamState::StreamRevision(version.0),
    }
}

/// A stream's actual revision, as KurrentDB reports it in a conflict, as our last version.
pub fn actual_version(current: kurrentdb::CurrentRevision) -> Option<StreamVersion> {
    match current {
        kurrentdb::CurrentRevision::Current(revision) => Some(StreamVersion(revision)),
        kurrentdb::CurrentRevision::NoStream => None,
    }
}

/// What a failed client call means to the store.
#[derive(Debug)]
pub enum Failure {
    /// The stream was not at the revision the append was sealed against: it moved between our
    /// read and our write.
    Conflict { actual: Option<StreamVersion> },
    /// The stream does not exist (a read of a stream never written).
    NoStream,
    /// Anything else: the operator's concern, with the client's error as the cause.
    Store(StoreError),
}

/// Classifies a client error from the operation `doing` (e.g. "append to enterprise-…").
pub fn failure(error: kurrentdb::Error, doing: &str) -> Failure {
    match error {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => Failure::Conflict {
            actual: actual_version(current),
        },
        kurrentdb::Error::ResourceNotFound => Failure::NoStream,
        kurrentdb::Error::ResourceDeleted => Failure::Store(StoreError::Corrupt {
            location: doing.to_owned(),
            reason: "the stream was deleted in KurrentDB; anquan's streams are never deleted".to_owned(),
        }),
        kurrentdb::Error::AccessDenied => Failure::Store(StoreError::backend(
            format!("KurrentDB refused to {doing}: its user needs to read $all and to read and write anquan's streams"),
            kurrentdb::Error::AccessDenied,
        )),
        error @ (kurrentdb::Error::ServerError(_)
        | kurrentdb::Error::ConnectionClosed
        | kurrentdb::Error::GrpcConnectionError(_)
        | kurrentdb::Error::DeadlineExceeded
        | kurrentdb::Error::NotLeaderException(_)) => Failure::Store(StoreError::backend(
            format!("KurrentDB is unavailable to {doing}"),
            error,
        )),
        error => Failure::Store(StoreError::backend(format!("KurrentDB failed to {doing}"), error)),
    }
}

/// A client error that must not be a conflict or a missing stream, as a store error.
pub fn store_error(error: kurrentdb::Error, doing: &str) -> StoreError {
    match failure(error, doing) {
        Failure::Store(error) => error,
        Failure::Conflict { actual } => StoreError::Backend {
            message: format!(
                "KurrentDB reported a version conflict (stream at {}) where none can happen, to {doing}",
                actual.map_or_else(|| "no stream".to_owned(), |version| version.to_string())
            ),
            source: None,
        },
        Failure::NoStream => StoreError::Backend {
            message: format!("KurrentDB reported a missing stream where none can be, to {doing}"),
            source: None,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    use anquan_domain::{Role, Town, UserId};
    use anquan_event_store::hash_chain::{seal, verify_stream};
    use anquan_event_store::{AppendMetadata, AppendRequest, CommandKey, NewEvent};
    use chrono::TimeZone;

    fn request(command: Option<CommandKey>, causation: Option<Uuid>, data: &str) -> AppendRequest {
        AppendRequest {
            stream_id: StreamId::parse("enterprise-0190a1b2-0000-7000-8000-000000000001").unwrap(),
            expected: StreamState::NoStream,
            command,
            metadata: AppendMetadata {
                occurred_at: Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
                    + chrono::Duration::nanoseconds(123_456_789),
                actor: anquan_domain::Actor {
                    user_id: UserId::parse("officer-许村-1").unwrap(),
                    role: Role::TownOfficer {
                        town: Town::parse("许村").unwrap(),
                    },
                },
                correlation_id: Uuid::now_v7(),
                causation_id: causation,
            },
            events: vec![
                NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "DocumentUploaded".to_owned(),
                    schema_version: 3,
                    data: data.to_owned(),
                },
                NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "ReviewRequested".to_owned(),
                    schema_version: u32::MAX,
                    data: "{}".to_owned(),
                },
            ],
        }
    }

    fn stored<'a>(
        encoded: &'a Encoded,
        stream: &'a str,
        revision: u64,
        position: kurrentdb::Position,
    ) -> StoredEvent<'a> {
        StoredEvent {
            event_id: encoded.event_id,
            stream,
            revision,
            position,
            event_type: &encoded.event_type,
            data: &encoded.data,
            metadata: &encoded.metadata,
        }
    }

    /// Seals a request, encodes every event, reads each back as KurrentDB would hand it over,
    /// and requires the same events, the digest and a chain that verifies.
    fn round_trip(request: &AppendRequest, first_position: u64) -> Vec<Decoded> {
        let sealed = seal(request, None, Utc::now());
        let digest = request.command.map(|key| key.digest);
        let mut previous = EventHash::GENESIS;
        let mut decoded = Vec::new();
        for (index, event) in sealed.iter().enumerate() {
            let encoded = encode(event, previous, digest).unwrap();
            previous = event.hash;
            assert_eq!(
                encoded.event_id, event.event_id,
                "our UUID v7 is the KurrentDB event id"
            );
            let position = kurrentdb::Position {
                commit: first_position + 1000,
                prepare: first_position + index as u64,
            };
            let back = decode(&stored(&encoded, request.stream_id.as_str(), event.version.0, position)).unwrap();
            let mut expected = event.clone();
            expected.position = Position {
                commit: position.commit,
                prepare: position.prepare,
            };
            assert_eq!(back.event, expected);
            assert_eq!(back.command_digest, digest);
            decoded.push(back);
        }
        let events: Vec<RecordedEvent> = decoded.iter().map(|decoded| decoded.event.clone()).collect();
        verify_stream(&events).unwrap();
        assert_eq!(decoded[0].previous_hash, EventHash::GENESIS);
        assert_eq!(decoded[1].previous_hash, decoded[0].event.hash);
        decoded
    }

    #[test]
    fn the_envelope_round_trips_with_every_field_set() {
        let key = CommandKey {
            id: CommandId::from_uuid(Uuid::now_v7()),
            digest: CommandDigest::of_bytes(b"upload"),
        };
        let decoded = round_trip(
            &request(Some(key), Some(Uuid::now_v7()), r#"{"title":"安全生产责任制 ✓","n":1}"#),
            u64::MAX - 2000,
        );
        assert_eq!(decoded[0].event.metadata.command_id, Some(key.id));
        assert_eq!(decoded[1].event.schema_version, u32::MAX);
    }

    #[test]
    fn the_envelope_round_trips_without_the_optional_fields() {
        let decoded = round_trip(&request(None, None, r#"{"a":[1,2,{"b":null}]}"#), 0);
        assert_eq!(decoded[0].event.metadata.command_id, None);
        assert_eq!(decoded[0].event.metadata.causation_id, None);
        assert_eq!(decoded[0].command_digest, None);
    }

    #[test]
    fn optional_fields_are_left_out_of_the_metadata_and_ids_use_kurrentdb_keys() {
        let request = request(None, None, "{}");
        let sealed = seal(&request, None, Utc::now());
        let encoded = encode(&sealed[0], EventHash::GENESIS, None).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&encoded.metadata).unwrap();
        let object = json.as_object().unwrap();
        assert!(object.contains_key("$correlationId"));
        for absent in ["$causationId", "commandId", "commandDigest"] {
            assert!(!object.contains_key(absent), "{absent} is left out when absent");
        }
        assert_eq!(object["schemaVersion"], 3);
        assert_eq!(object["hash"], sealed[0].hash.to_hex());
        assert_eq!(object["previousHash"], EventHash::GENESIS.to_hex());
    }

    #[test]
    fn data_is_kept_byte_for_byte_and_sent_as_json_only_when_json_keeps_it() {
        let spaced = request(None, None, " { \"a\" : 1 }\n");
        let sealed = seal(&spaced, None, Utc::now());
        let encoded = encode(&sealed[0], EventHash::GENESIS, None).unwrap();
        assert!(!encoded.json, "surrounding whitespace would be lost as JSON content");
        assert_eq!(&encoded.data[..], " { \"a\" : 1 }\n".as_bytes());
        round_trip(&spaced, 7);

        let inner = request(None, None, "{ \"a\" : \"\\u00e9\" }");
        let sealed = seal(&inner, None, Utc::now());
        let encoded = encode(&sealed[0], EventHash::GENESIS, None).unwrap();
        assert!(encoded.json);
        encoded.into_event_data().unwrap();
    }

    #[test]
    fn extreme_versions_and_positions_map_whole() {
        let request = request(None, None, "{}");
        let sealed = seal(&request, None, Utc::now());
        let encoded = encode(&sealed[0], EventHash::GENESIS, None).unwrap();
        let far = kurrentdb::Position {
            commit: u64::MAX,
            prepare: u64::MAX - 1,
        };
        let back = decode(&stored(&encoded, request.stream_id.as_str(), u64::MAX, far)).unwrap();
        assert_eq!(back.event.version, StreamVersion(u64::MAX));
        assert_eq!(
            back.event.position,
            Position {
                commit: u64::MAX,
                prepare: u64::MAX - 1
            }
        );
        for (commit, prepare) in [(0, 0), (1, 0), (7, 3), (u64::MAX, 0), (0, u64::MAX)] {
            let ours = Position { commit, prepare };
            assert_eq!(position(kurrent_position(ours)), ours);
        }
        // Our order is KurrentDB's: commit, then prepare.
        let a = kurrentdb::Position { commit: 5, prepare: 9 };
        let b = kurrentdb::Position { commit: 6, prepare: 1 };
        assert_eq!(a.cmp(&b), position(a).cmp(&position(b)));
    }

    #[test]
    fn corrupt_events_are_typed_errors() {
        let request = request(None, None, "{}");
        let sealed = seal(&request, None, Utc::now());
        let encoded = encode(&sealed[0], EventHash::GENESIS, None).unwrap();
        let at = kurrentdb::Position { commit: 1, prepare: 1 };
        let good = stored(&encoded, request.stream_id.as_str(), 0, at);

        let foreign = StoredEvent {
            stream: "$ce-enterprise",
            ..good
        };
        assert!(matches!(decode(&foreign), Err(MappingError::StreamId(_))));
        let not_utf8 = StoredEvent {
            data: &[0xff, 0xfe],
            ..good
        };
        assert_eq!(decode(&not_utf8), Err(MappingError::DataNotUtf8));
        for metadata in [&b""[..], b"{}", b"not json", br#"{"schemaVersion":-1}"#] {
            let broken = StoredEvent { metadata, ..good };
            assert!(
                matches!(decode(&broken), Err(MappingError::Metadata(_))),
                "{metadata:?}"
            );
        }
        let mut json: serde_json::Value = serde_json::from_slice(&encoded.metadata).unwrap();
        json["hash"] = "abc".into();
        let bad_hash = serde_json::to_vec(&json).unwrap();
        assert!(matches!(
            decode(&StoredEvent {
                metadata: &bad_hash,
                ..good
            }),
            Err(MappingError::Metadata(_))
        ));
        json["hash"] = sealed[0].hash.to_hex().into();
        json["commandDigest"] = "zz".into();
        let bad_digest = serde_json::to_vec(&json).unwrap();
        assert_eq!(
            decode(&StoredEvent {
                metadata: &bad_digest,
                ..good
            }),
            Err(MappingError::CommandDigest("zz".to_owned()))
        );
        let error = MappingError::DataNotUtf8.corrupt(good.location());
        match error {
            StoreError::Corrupt { location, .. } => {
                assert_eq!(location, format!("{}@0 (1)", request.stream_id));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_metadata_fields_are_ignored() {
        let request = request(None, None, "{}");
        let sealed = seal(&request, None, Utc::now());
        let encoded = encode(&sealed[0], EventHash::GENESIS, None).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&encoded.metadata).unwrap();
        json["addedLater"] = "x".into();
        let metadata = serde_json::to_vec(&json).unwrap();
        let at = kurrentdb::Position { commit: 1, prepare: 1 };
        let stored = StoredEvent {
            metadata: &metadata,
            ..stored(&encoded, request.stream_id.as_str(), 0, at)
        };
        assert_eq!(decode(&stored).unwrap().event.hash, sealed[0].hash);
    }

    #[test]
    fn system_events_are_recognised_by_stream_or_type() {
        assert!(is_system("$stats-127.0.0.1:2113", "$statsCollected"));
        assert!(is_system("$$enterprise-1", "$metadata"));
        assert!(is_system("$ce-enterprise", "$>"));
        assert!(is_system("enterprise-1", "$>"));
        assert!(!is_system("enterprise-1", "DocumentUploaded"));
    }

    #[test]
    fn expectations_map_to_kurrentdb_stream_states() {
        assert_eq!(stream_state(StreamState::Any), kurrentdb::StreamState::Any);
        assert_eq!(stream_state(StreamState::NoStream), kurrentdb::StreamState::NoStream);
        assert_eq!(
            stream_state(StreamState::StreamExists),
            kurrentdb::StreamState::StreamExists
        );
        assert_eq!(
            stream_state(StreamState::At(StreamVersion(0))),
            kurrentdb::StreamState::StreamRevision(0)
        );
        assert_eq!(
            stream_state(StreamState::At(StreamVersion(u64::MAX))),
            kurrentdb::StreamState::StreamRevision(u64::MAX)
        );
        assert_eq!(
            stream_state(StreamState::from_actual(None)),
            kurrentdb::StreamState::NoStream
        );
        assert_eq!(actual_version(kurrentdb::CurrentRevision::NoStream), None);
        assert_eq!(
            actual_version(kurrentdb::CurrentRevision::Current(41)),
            Some(StreamVersion(41))
        );
    }

    #[test]
    fn client_errors_map_to_conflicts_missing_streams_and_store_errors() {
        let conflict = kurrentdb::Error::WrongExpectedVersion {
            expected: kurrentdb::StreamState::StreamRevision(3),
            current: kurrentdb::CurrentRevision::Current(5),
        };
        assert!(matches!(
            failure(conflict, "append"),
            Failure::Conflict {
                actual: Some(StreamVersion(5))
            }
        ));
        let created = kurrentdb::Error::WrongExpectedVersion {
            expected: kurrentdb::StreamState::StreamExists,
            current: kurrentdb::CurrentRevision::NoStream,
        };
        assert!(matches!(failure(created, "append"), Failure::Conflict { actual: None }));
        assert!(matches!(
            failure(kurrentdb::Error::ResourceNotFound, "read"),
            Failure::NoStream
        ));
        for unavailable in [
            kurrentdb::Error::ServerError("Unavailable".to_owned()),
            kurrentdb::Error::ConnectionClosed,
            kurrentdb::Error::DeadlineExceeded,
            kurrentdb::Error::GrpcConnectionError(kurrentdb::GrpcConnectionError::MaxDiscoveryAttemptReached(3)),
        ] {
            match failure(unavailable, "read $all") {
                Failure::Store(StoreError::Backend { message, source }) => {
                    assert_eq!(message, "KurrentDB is unavailable to read $all");
                    assert!(source.is_some(), "the client's error is kept as the cause");
                }
                other => panic!("{other:?}"),
            }
        }
        match failure(kurrentdb::Error::AccessDenied, "read $all") {
            Failure::Store(StoreError::Backend { message, .. }) => assert!(message.contains("needs to read $all")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            failure(kurrentdb::Error::ResourceDeleted, "read enterprise-1"),
            Failure::Store(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store_error(kurrentdb::Error::ResourceNotFound, "read $all"),
            StoreError::Backend { .. }
        ));
        assert!(matches!(
            store_error(kurrentdb::Error::UnsupportedFeature, "subscribe"),
            StoreError::Backend { .. }
        ));
    }
}
