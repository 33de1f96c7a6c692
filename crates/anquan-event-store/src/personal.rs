//! Erasable personal data (crypto-shredding) at the store's boundary.
//!
//! [`PersonalDataStore`] wraps any [`EventStore`]. On append it seals every personal field the
//! domain's registry (`anquan_domain::personal::personal_fields`) lists: the field's JSON value
//! becomes a [`SealedField`] object, XChaCha20-Poly1305 under a random 256-bit key of the
//! field's data subject, with associated data binding it to (subject, event id, field pointer).
//! The backend then seals the event into its hash chain, so the chain covers the ciphertext.
//! Keys live in a [`SubjectKeys`] table of their own in each backend, never in the log.
//!
//! On read it opens each sealed field with its key, or writes [`ERASED`] when the key is gone,
//! and keeps the stored text in [`RecordedEvent::stored_data`] so the chain still verifies.
//! After appending a `DataSubjectErased` event it deletes the subject's key: from then on every
//! reader (projections, rebuilds, history, exports) sees the field as erased.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use anquan_domain::CommandId;
use anquan_domain::personal::{DataSubject, ERASED, personal_fields};

use crate::envelope::{AppendOutcome, AppendRequest, RecordedCommand, RecordedEvent};
use crate::error::{AppendError, StoreError};
use crate::store::EventStore;
use crate::stream::{Position, StreamId, StreamVersion};

/// The algorithm tag of a sealed field; a sealed field is an object whose `sealed` is this.
pub const SEALED_ALGORITHM: &str = "xchacha20poly1305/v1";

/// The event type whose append deletes its subject's key.
const ERASURE_EVENT: &str = "DataSubjectErased";

/// A data subject's 256-bit data-encryption key. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey(pub [u8; 32]);

impl SubjectKey {
    /// Draws a key from the operating system's random source.
    pub fn generate() -> Result<SubjectKey, StoreError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| StoreError::Backend {
            message: format!("no random key: {error}"),
            source: None,
        })?;
        Ok(SubjectKey(bytes))
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(…)")
    }
}

/// A key with the id sealed fields name it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedSubject {
    pub key_id: Uuid,
    pub key: SubjectKey,
}

/// The table of data subjects' keys, one per backend (SQLite, PostgreSQL, memory for tests).
/// A subject has at most one live key; erasing deletes it, and a later seal creates a new one
/// under a new id, so what was sealed before stays erased.
#[async_trait]
pub trait SubjectKeys: Send + Sync + 'static {
    /// The subject's live key, created if it has none.
    async fn key_for_sealing(&self, subject: &DataSubject) -> Result<KeyedSubject, StoreError>;
    /// The keys of these ids that still exist.
    async fn keys(&self, key_ids: &[Uuid]) -> Result<HashMap<Uuid, SubjectKey>, StoreError>;
    /// Deletes every key of the subject; returns how many there were.
    async fn erase(&self, subject: &DataSubject) -> Result<u64, StoreError>;
}

/// Keys in memory (tests and the in-memory store).
#[derive(Debug, Default)]
pub struct InMemorySubjectKeys {
    keys: Mutex<BTreeMap<Uuid, (DataSubject, SubjectKey)>>,
}

#[async_trait]
impl SubjectKeys for InMemorySubjectKeys {
    async fn key_for_sealing(&self, subject: &DataSubject) -> Result<KeyedSubject, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((key_id, (_, key))) = keys.iter().find(|(_, (owner, _))| owner == subject) {
            return Ok(KeyedSubject {
                key_id: *key_id,
                key: key.clone(),
            });
        }
        let keyed = KeyedSubject {
            key_id: Uuid::now_v7(),
            key: SubjectKey::generate()?,
        };
        keys.insert(keyed.key_id, (subject.clone(), keyed.key.clone()));
        Ok(keyed)
    }

    async fn keys(&self, key_ids: &[Uuid]) -> Result<HashMap<Uuid, SubjectKey>, StoreError> {
        let keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(key_ids
            .iter()
            .filter_map(|id| keys.get(id).map(|(_, key)| (*id, key.clone())))
            .collect())
    }

    async fn erase(&self, subject: &DataSubject) -> Result<u64, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = keys.len();
        keys.retain(|_, (owner, _)| owner != subject);
        Ok((before - keys.len()) as u64)
    }
}

/// A personal field as stored: the ciphertext of the field's JSON value and what opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedField {
    /// [`SEALED_ALGORITHM`].
    pub sealed: String,
    pub subject: DataSubject,
    pub key_id: Uuid,
    /// 24 bytes, base64.
    pub nonce: String,
    /// The ciphertext with its 16-byte tag, base64.
    pub ciphertext: String,
}

/// Why a sealed field could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no random nonce: {0}")]
    Random(String),
    #[error("the sealed field at {pointer} is malformed")]
    Malformed { pointer: String },
    /// The key exists but does not open the field with this associated data: the ciphertext,
    /// its subject, its event or its place was altered.
    #[error("the sealed field at {pointer} does not open with its key (altered or moved)")]
    Unauthentic { pointer: String },
}

/// What binds a ciphertext to its place: subject, event id and field pointer.
fn associated_data(subject: &DataSubject, event_id: Uuid, pointer: &str) -> Vec<u8> {
    let mut ad = b"anquan personal v1\0".to_vec();
    ad.extend_from_slice(subject.to_string().as_bytes());
    ad.push(0);
    ad.extend_from_slice(event_id.as_bytes());
    ad.extend_from_slice(pointer.as_bytes());
    ad
}

/// Seals one field's value.
pub fn seal_value(
    keyed: &KeyedSubject,
    subject: &DataSubject,
    event_id: Uuid,
    pointer: &str,
    value: &Value,
) -> Result<SealedField, SealError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|error| SealError::Random(error.to_string()))?;
    let cipher = XChaCha20Poly1305::new((&keyed.key.0).into());
    let plaintext = value.to_string();
    let ad = associated_data(subject, event_id, pointer);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: &ad,
            },
        )
        .map_err(|_| SealError::Malformed {
            pointer: pointer.to_owned(),
        })?;
    Ok(SealedField {
        sealed: SEALED_ALGORITHM.to_owned(),
        subject: subject.clone(),
        key_id: keyed.key_id,
        nonce: BASE64.encode(nonce),
        ciphertext: BASE64.encode(ciphertext),
    })
}

/// Opens one sealed field: its value with the key, [`ERASED`] without it.
pub fn open_value(
    sealed: &SealedField,
    key: Option<&SubjectKey>,
    event_id: Uuid,
    pointer: &str,
) -> Result<Value, SealError> {
    let Some(key) = key else {
        return Ok(Value::String(ERASED.to_owned()));
    };
    let malformed = || SealError::Malformed {
        pointer: pointer.to_owned(),
    };
    let nonce = BASE64.decode(&sealed.nonce).map_err(|_| malformed())?;
    if nonce.len() != 24 {
        return Err(malformed());
    }
    let ciphertext = BASE64.decode(&sealed.ciphertext).map_err(|_| malformed())?;
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let ad = associated_data(&sealed.subject, event_id, pointer);
    let plaintext = cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &ad,
            },
        )
        .map_err(|_| SealError::Unauthentic {
            pointer: pointer.to_owned(),
        })?;
    serde_json::from_slice(&plaintext).map_err(|_| malformed())
}

/// The first bytes of a sealed file (a personal upload as the blob store holds it): this
/// line, then one line of JSON ([`SealedFileHeader`]), then the ciphertext with its tag.
pub const SEALED_FILE_MAGIC: &[u8] = b"anquan-sealed-file v1\n";

/// What opens a sealed file: its subject, the key's id and the nonce. Never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedFileHeader {
    /// [`SEALED_ALGORITHM`].
    pub sealed: String,
    pub subject: DataSubject,
    pub key_id: Uuid,
    /// 24 bytes, base64.
    pub nonce: String,
}

/// A sealed file, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenedFile {
    /// The key exists: the plaintext.
    Readable(Vec<u8>),
    /// The subject's key was erased: the file has no readable content.
    Erased { subject: DataSubject },
}

/// What binds a sealed file's ciphertext to its subject and key.
fn file_associated_data(subject: &DataSubject, key_id: Uuid) -> Vec<u8> {
    let mut ad = b"anquan personal file v1\0".to_vec();
    ad.extend_from_slice(subject.to_string().as_bytes());
    ad.push(0);
    ad.extend_from_slice(key_id.as_bytes());
    ad
}

/// Seals a file's bytes under the subject's key: [`SEALED_FILE_MAGIC`], the header line, the
/// ciphertext. The result is what the blob store keeps and what its hash is taken over.
pub fn seal_file(keyed: &KeyedSubject, subject: &DataSubject, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|error| SealError::Random(error.to_string()))?;
    let malformed = || SealError::Malformed { pointer: String::new() };
    let cipher = XChaCha20Poly1305::new((&keyed.key.0).into());
    let ad = file_associated_data(subject, keyed.key_id);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        )
        .map_err(|_| malformed())?;
    let header = SealedFileHeader {
        sealed: SEALED_ALGORITHM.to_owned(),
        subject: subject.clone(),
        key_id: keyed.key_id,
        nonce: BASE64.encode(nonce),
    };
    let header = serde_json::to_vec(&header).map_err(|_| malformed())?;
    let mut sealed = Vec::with_capacity(SEALED_FILE_MAGIC.len() + header.len() + 1 + ciphertext.len());
    sealed.extend_from_slice(SEALED_FILE_MAGIC);
    sealed.extend_from_slice(&header);
    sealed.push(b'\n');
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The header of a sealed file and where its ciphertext starts; `None` for any other bytes.
pub fn sealed_file_header(bytes: &[u8]) -> Option<(SealedFileHeader, usize)> {
    let rest = bytes.strip_prefix(SEALED_FILE_MAGIC)?;
    let end = rest.iter().position(|byte| *byte == b'\n')?;
    let header = serde_json::from_slice::<SealedFileHeader>(rest.get(..end)?).ok()?;
    (header.sealed == SEALED_ALGORITHM).then_some((header, SEALED_FILE_MAGIC.len() + end + 1))
}

/// Opens a sealed file with the key table: its plaintext, or erased when the key is gone.
/// Bytes that are not a sealed file, or a key that does not open them, are an error.
pub async fn open_file(bytes: &[u8], keys: &dyn SubjectKeys) -> Result<OpenedFile, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        location: "a sealed file".to_owned(),
        reason: reason.to_owned(),
    };
    let (header, start) = sealed_file_header(bytes).ok_or_else(|| corrupt("malformed header"))?;
    let found = keys.keys(&[header.key_id]).await?;
    let Some(key) = found.get(&header.key_id) else {
        return Ok(OpenedFile::Erased {
            subject: header.subject,
        });
    };
    let nonce = BASE64.decode(&header.nonce).map_err(|_| corrupt("malformed nonce"))?;
    if nonce.len() != 24 {
        return Err(corrupt("malformed nonce"));
    }
    let ciphertext = bytes.get(start..).ok_or_else(|| corrupt("no ciphertext"))?;
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let ad = file_associated_data(&header.subject, header.key_id);
    cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: ciphertext,
                aad: &ad,
            },
        )
        .map(OpenedFile::Readable)
        .map_err(|_| corrupt("does not open with its key (altered)"))
}

/// A sealed field with its JSON pointer.
type SealedAt = (String, SealedField);

/// The sealed fields anywhere in a value, with their pointers.
fn sealed_fields(value: &Value, pointer: String, out: &mut Vec<SealedAt>) {
    match value {
        Value::Object(map) => {
            if map.get("sealed").and_then(Value::as_str) == Some(SEALED_ALGORITHM)
                && let Ok(sealed) = serde_json::from_value::<SealedField>(value.clone())
            {
                out.push((pointer, sealed));
                return;
            }
            for (key, item) in map {
                sealed_fields(item, format!("{pointer}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                sealed_fields(item, format!("{pointer}/{index}"), out);
            }
        }
        _ => {}
    }
}

/// Seals the personal fields of one event's data on `stream`; data without any is returned
/// unchanged (byte for byte). `key_for` gives each subject's key.
pub fn seal_data(
    stream: &StreamId,
    event_type: &str,
    event_id: Uuid,
    data: &str,
    key_for: &HashMap<DataSubject, KeyedSubject>,
) -> Result<String, SealError> {
    let Ok(mut value) = serde_json::from_str::<Value>(data) else {
        return Ok(data.to_owned());
    };
    let fields = personal_fields(stream.as_str(), event_type, &value);
    if fields.is_empty() {
        return Ok(data.to_owned());
    }
    for field in fields {
        let Some(keyed) = key_for.get(&field.subject) else {
            return Err(SealError::Malformed { pointer: field.pointer });
        };
        let Some(slot) = value.pointer_mut(&field.pointer) else {
            continue;
        };
        let sealed = seal_value(keyed, &field.subject, event_id, &field.pointer, slot)?;
        *slot = serde_json::to_value(sealed).map_err(|_| SealError::Malformed {
            pointer: field.pointer.clone(),
        })?;
    }
    Ok(value.to_string())
}

/// The subjects whose keys sealing this data needs.
pub fn subjects_of(stream: &StreamId, event_type: &str, data: &str) -> BTreeSet<DataSubject> {
    serde_json::from_str::<Value>(data)
        .map(|value| {
            personal_fields(stream.as_str(), event_type, &value)
                .into_iter()
                .map(|field| field.subject)
                .collect()
        })
        .unwrap_or_default()
}

/// Opens every sealed field of a page of events with the keys that still exist; an event whose
/// data changed keeps its stored text in `stored_data`.
pub async fn open_events(
    keys: &dyn SubjectKeys,
    mut events: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    // Most events hold no personal data: the text is searched before anything is parsed.
    let marker = format!("\"{SEALED_ALGORITHM}\"");
    // (the event's index, its data, its sealed fields with their pointers)
    let mut found: Vec<(usize, Value, Vec<SealedAt>)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if event.stored_data.is_some() || !event.data.contains(&marker) {
            continue;
        }
        let Ok(value) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        let mut fields = Vec::new();
        sealed_fields(&value, String::new(), &mut fields);
        if !fields.is_empty() {
            found.push((index, value, fields));
        }
    }
    if found.is_empty() {
        return Ok(events);
    }
    let ids: BTreeSet<Uuid> = found
        .iter()
        .flat_map(|(_, _, fields)| fields.iter().map(|(_, sealed)| sealed.key_id))
        .collect();
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let key_map = keys.keys(&ids).await?;
    for (index, mut value, fields) in found {
        let event = &mut events[index];
        for (pointer, sealed) in fields {
            let opened =
                open_value(&sealed, key_map.get(&sealed.key_id), event.event_id, &pointer).map_err(|error| {
                    StoreError::Corrupt {
                        location: format!("{} version {}", event.stream_id, event.version),
                        reason: error.to_string(),
                    }
                })?;
            if let Some(slot) = value.pointer_mut(&pointer) {
                *slot = opened;
            }
        }
        let stored = std::mem::replace(&mut event.data, value.to_string());
        event.stored_data = Some(stored);
    }
    Ok(events)
}

/// An [`EventStore`] that seals personal fields on append, opens them on read, and deletes a
/// subject's key once its erasure is appended (see the module's documentation).
pub struct PersonalDataStore {
    inner: Arc<dyn EventStore>,
    keys: Arc<dyn SubjectKeys>,
}

impl PersonalDataStore {
    /// Wraps `inner`, keeping keys in `keys`.
    pub fn new(inner: Arc<dyn EventStore>, keys: Arc<dyn SubjectKeys>) -> Self {
        Self { inner, keys }
    }
}

#[async_trait]
impl EventStore for PersonalDataStore {
    async fn append(&self, mut request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let mut key_for = HashMap::new();
        for event in &request.events {
            for subject in subjects_of(&request.stream_id, &event.event_type, &event.data) {
                if let std::collections::hash_map::Entry::Vacant(slot) = key_for.entry(subject) {
                    let keyed = self.keys.key_for_sealing(slot.key()).await?;
                    slot.insert(keyed);
                }
            }
        }
        if !key_for.is_empty() {
            for event in &mut request.events {
                event.data = seal_data(
                    &request.stream_id,
                    &event.event_type,
                    event.event_id,
                    &event.data,
                    &key_for,
                )
                .map_err(|error| StoreError::Backend {
                    message: format!("cannot seal personal data: {error}"),
                    source: None,
                })?;
            }
        }
        let erased: Vec<DataSubject> = request
            .events
            .iter()
            .filter(|event| event.event_type == ERASURE_EVENT)
            .filter_map(|event| serde_json::from_str::<Value>(&event.data).ok())
            .filter_map(|data| data.get("subject").and_then(Value::as_str).map(str::to_owned))
            .filter_map(|subject| DataSubject::parse(&subject).ok())
            .collect();
        let outcome = self.inner.append(request).await?;
        // The erasure is recorded first: a failure here fails the call, and its retry (same
        // command id, answered as a duplicate) deletes the key again.
        for subject in &erased {
            let deleted = self.keys.erase(subject).await?;
            tracing::info!(%subject, keys = deleted, "erased a data subject's key");
        }
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_stream(stream_id, from, limit).await?;
        open_events(self.keys.as_ref(), events).await
    }

    async fn read_all(&self, after: Option<Position>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_all(after, limit).await?;
        open_events(self.keys.as_ref(), events).await
    }

    async fn command_outcome(
        &self,
        stream_id: &StreamId,
        command_id: CommandId,
    ) -> Result<Option<RecordedCommand>, StoreError> {
        self.inner.command_outcome(stream_id, command_id).await
    }

    fn head(&self) -> watch::Receiver<Option<Position>> {
        self.inner.head()
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn traits(&self) -> crate::store::BackendTraits {
        self.inner.traits()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn subject(staff: u128) -> DataSubject {
        DataSubject::Staff {
            agency_id: anquan_domain::AgencyId::from_uuid(Uuid::from_u128(1)),
            staff_id: anquan_domain::StaffId::from_uuid(Uuid::from_u128(staff)),
        }
    }

    fn keyed() -> KeyedSubject {
        KeyedSubject {
            key_id: Uuid::from_u128(9),
            key: SubjectKey::generate().unwrap(),
        }
    }

    #[tokio::test]
    async fn a_sealed_file_opens_with_its_key_only_and_is_erased_with_it() {
        let keys = InMemorySubjectKeys::default();
        let keyed = keys.key_for_sealing(&subject(2)).await.unwrap();
        let plaintext = "上岗证：张三".as_bytes();
        let sealed = seal_file(&keyed, &subject(2), plaintext).unwrap();
        assert!(sealed.starts_with(SEALED_FILE_MAGIC));
        assert!(!sealed.windows(6).any(|window| window == "张三".as_bytes()));
        assert_eq!(
            open_file(&sealed, &keys).await.unwrap(),
            OpenedFile::Readable(plaintext.to_vec())
        );
        // A flipped ciphertext byte, or the header moved to another subject, does not open.
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            open_file(&altered, &keys).await,
            Err(StoreError::Corrupt { .. })
        ));
        let (header, start) = sealed_file_header(&sealed).unwrap();
        let moved = SealedFileHeader {
            subject: subject(3),
            ..header
        };
        let mut moved_file = SEALED_FILE_MAGIC.to_vec();
        moved_file.extend_from_slice(&serde_json::to_vec(&moved).unwrap());
        moved_file.push(b'\n');
        moved_file.extend_from_slice(&sealed[start..]);
        assert!(matches!(
            open_file(&moved_file, &keys).await,
            Err(StoreError::Corrupt { .. })
        ));
        // Plain bytes are not a sealed file.
        assert!(sealed_file_header(b"%PDF-1.7").is_none());
        keys.erase(&subject(2)).await.unwrap();
        assert_eq!(
            open_file(&sealed, &keys).await.unwrap(),
            OpenedFile::Erased { subject: subject(2) }
        );
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_place_only() {
        let keyed = keyed();
        let event = Uuid::from_u128(7);
        let value = Value::String("张三".to_owned());
        let sealed = seal_value(&keyed, &subject(2), event, "/staff/0/name", &value).unwrap();
        assert!(!serde_json::to_string(&sealed).unwrap().contains("张三"));
        assert_eq!(
            open_value(&sealed, Some(&keyed.key), event, "/staff/0/name").unwrap(),
            value
        );
        // Another event, another place or another subject: the tag does not verify.
        assert!(matches!(
            open_value(&sealed, Some(&keyed.key), Uuid::from_u128(8), "/staff/0/name"),
            Err(SealError::Unauthentic { .. })
        ));
        assert!(matches!(
            open_value(&sealed, Some(&keyed.key), event, "/staff/1/name"),
            Err(SealError::Unauthentic { .. })
        ));
        let moved = SealedField {
            subject: subject(3),
            ..sealed.clone()
        };
        assert!(open_value(&moved, Some(&keyed.key), event, "/staff/0/name").is_err());
        // Another key does not open it; no key reads as erased.
        let other = SubjectKey::generate().unwrap();
        assert!(open_value(&sealed, Some(&other), event, "/staff/0/name").is_err());
        assert_eq!(
            open_value(&sealed, None, event, "/staff/0/name").unwrap(),
            Value::String(ERASED.to_owned())
        );
    }

    #[tokio::test]
    async fn a_store_seals_opens_and_erases_and_the_chain_holds() {
        use crate::envelope::{AppendMetadata, NewEvent};
        use crate::stream::StreamState;
        let inner: Arc<dyn EventStore> = Arc::new(crate::InMemoryEventStore::new());
        let keys = Arc::new(InMemorySubjectKeys::default());
        let store = PersonalDataStore::new(inner.clone(), keys.clone());
        let agency = Uuid::from_u128(1);
        let stream = StreamId::for_uuid("agency", agency);
        let staff = Uuid::from_u128(2);
        let data = serde_json::json!({"half_year": "2026-H1", "staff": [{"staff_id": staff, "name": "张三",
            "qualifications": [{"kind": "other", "certificate_number": "ZJ-001"}], "phone": "13800000000"}],
            "due_at": "2026-01-30T16:00:00Z", "late": false, "reported_at": "2026-01-20T03:00:00Z"});
        let metadata = AppendMetadata {
            occurred_at: chrono::Utc::now(),
            actor: anquan_domain::Actor {
                user_id: anquan_domain::UserId::parse("admin").unwrap(),
                role: anquan_domain::Role::CityAdmin,
            },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        };
        let event = |event_type: &str, data: String| NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            data,
        };
        store
            .append(AppendRequest {
                stream_id: stream.clone(),
                expected: StreamState::NoStream,
                command: None,
                metadata: metadata.clone(),
                events: vec![event("StaffReported", data.to_string())],
            })
            .await
            .unwrap();
        let raw = inner.read_stream(&stream, StreamVersion::FIRST, 10).await.unwrap();
        for secret in ["张三", "ZJ-001", "13800000000"] {
            assert!(!raw[0].data.contains(secret), "{secret} is stored in clear");
        }
        let opened = store.read_stream(&stream, StreamVersion::FIRST, 10).await.unwrap();
        assert_eq!(serde_json::from_str::<Value>(&opened[0].data).unwrap(), data);
        crate::hash_chain::verify_stream(&opened).unwrap();

        let subject = format!("agency-{agency}/staff/{staff}");
        let erasure =
            serde_json::json!({"subject": subject, "reason": "申请删除", "erased_at": "2026-03-01T00:00:00Z"});
        store
            .append(AppendRequest {
                stream_id: stream.clone(),
                expected: StreamState::At(StreamVersion::FIRST),
                command: None,
                metadata,
                events: vec![event(ERASURE_EVENT, erasure.to_string())],
            })
            .await
            .unwrap();
        let after = store.read_stream(&stream, StreamVersion::FIRST, 10).await.unwrap();
        let staff_row = &serde_json::from_str::<Value>(&after[0].data).unwrap()["staff"][0];
        assert_eq!(staff_row["name"], ERASED);
        assert_eq!(staff_row["phone"], ERASED);
        assert_eq!(staff_row["qualifications"][0]["certificate_number"], ERASED);
        assert_eq!(staff_row["qualifications"][0]["kind"], "other");
        after[0].decode().unwrap();
        crate::hash_chain::verify_stream(&after).unwrap();
        assert!(keys.keys.lock().unwrap().is_empty());
    }
}
