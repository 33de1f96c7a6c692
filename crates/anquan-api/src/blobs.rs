//! The content-addressed blob store for uploaded files: bytes are stored under their SHA-256,
//! events hold only the hash, size and media type.
//!
//! Uploads are counted against the enterprise or agency that sent them: beside the bytes, a
//! marker `owners/<owner>/<sha256>.<size>` (empty) records that the owner stored that content,
//! so an owner's usage is a listing of its markers (the same content twice counts once) and
//! works on any `object_store` backend. The API checks an owner's quota before it stores.
//!
//! Two backends: a local directory (the embedded default, [`BlobStore::local`]) and an
//! S3-compatible bucket ([`BlobStore::s3`]), which several API nodes share. The layout is the
//! same on both: `sha256/<first two hex digits>/<sha256>` and the `owners/` markers.
//!
//! A personal upload (one that names a person) is sealed before it is stored: the blob is
//! `anquan_event_store::personal::seal_file` of the content, XChaCha20-Poly1305 under the data
//! subject's key from the same key table as sealed event fields, and its hash, the one events
//! name, is the hash of those sealed bytes. Erasing the subject deletes the key, so the blob
//! keeps its hash (an auditor can still check it against the event) and loses its content.

use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use anquan_domain::enterprise::FileRef;
use anquan_domain::personal::DataSubject;
use anquan_event_store::StoreError;
use anquan_event_store::personal::{OpenedFile, SubjectKeys, open_file, seal_file, sealed_file_header};

/// Why a file could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store failed")]
    Store(#[from] object_store::Error),
    /// The S3 settings cannot work; the message names the setting.
    #[error("the S3 settings are invalid: {0}")]
    S3Settings(String),
    /// The personal-data key table failed, or a sealed file does not open with its key.
    #[error("personal file keys failed")]
    Keys(#[from] StoreError),
    /// This blob store was opened without the key table, so it cannot seal a personal file.
    #[error("the blob store has no personal-data keys (the KurrentDB backend keeps none)")]
    NoKeys,
    #[error("a personal file could not be sealed: {0}")]
    Seal(String),
}

/// A stored file as a download: its content, or that its data subject was erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// The content: as uploaded, or a personal file opened with its subject's key.
    Content { bytes: bytes::Bytes, personal: bool },
    /// A personal file whose subject was erased: no readable content remains.
    Erased,
}

/// Where an S3-compatible bucket is and how to sign requests to it. `Debug` never shows the
/// secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket; it must exist (object stores do not create buckets).
    pub bucket: String,
    /// The service's URL (`https://s3.example.cn`, or `http://127.0.0.1:9000` for a local
    /// server); `None` is AWS S3 in `region`. Requests name the bucket in the path.
    pub endpoint: Option<String>,
    /// The region to sign for (`us-east-1` when the server does not care).
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The most bytes each enterprise and each agency may store; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadQuota {
    pub enterprise_bytes: Option<u64>,
    pub agency_bytes: Option<u64>,
}

/// Whose storage an upload counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOwner {
    Enterprise(anquan_domain::EnterpriseId),
    Agency(anquan_domain::AgencyId),
}

impl BlobOwner {
    fn prefix(&self) -> String {
        match self {
            BlobOwner::Enterprise(id) => format!("owners/enterprise-{id}"),
            BlobOwner::Agency(id) => format!("owners/agency-{id}"),
        }
    }
}

/// A file read from a request and checked, not yet stored: its reference is final (the hash is
/// of these bytes), so a command can be decided on it before anything is written.
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub file: FileRef,
    bytes: bytes::Bytes,
}

impl StagedFile {
    /// Hashes the bytes; nothing is stored.
    pub fn new(bytes: bytes::Bytes, media_type: &str, file_name: &str) -> Self {
        let file = FileRef {
            sha256: hex::encode(Sha256::digest(&bytes)),
            size_bytes: bytes.len() as u64,
            media_type: media_type.to_owned(),
            file_name: file_name.to_owned(),
        };
        Self { file, bytes }
    }

    /// Whether these bytes look like a sealed file; such an upload is refused, so no plain
    /// upload can pass for a personal one.
    pub fn looks_sealed(&self) -> bool {
        sealed_file_header(&self.bytes).is_some()
    }
}

/// Stores files by content hash in any `object_store` backend (local directory by default).
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    quota: UploadQuota,
    keys: Option<Arc<dyn SubjectKeys>>,
}

impl BlobStore {
    /// Wraps an object store, with no quota.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            quota: UploadQuota::default(),
            keys: None,
        }
    }

    /// Seals personal files under the data subjects' keys of this table (the event store's).
    #[must_use]
    pub fn with_subject_keys(self, keys: Arc<dyn SubjectKeys>) -> Self {
        Self {
            keys: Some(keys),
            ..self
        }
    }

    /// Whether this store can seal personal files (it has the key table).
    pub fn seals_personal_files(&self) -> bool {
        self.keys.is_some()
    }

    /// Seals a staged file under the subject's key: the result is staged like any file, and its
    /// reference carries the sealed bytes' hash and size (the media type and name are kept).
    /// Nothing is stored.
    pub async fn seal(&self, staged: &StagedFile, subject: &DataSubject) -> Result<StagedFile, BlobError> {
        let keys = self.keys.as_ref().ok_or(BlobError::NoKeys)?;
        let keyed = keys.key_for_sealing(subject).await?;
        let sealed = seal_file(&keyed, subject, &staged.bytes).map_err(|error| BlobError::Seal(error.to_string()))?;
        Ok(StagedFile::new(
            bytes::Bytes::from(sealed),
            &staged.file.media_type,
            &staged.file.file_name,
        ))
    }

    /// A stored file for download by its hash: `None` when no file has that hash, the content,
    /// or [`Download::Erased`] for a personal file whose subject's key is gone.
    pub async fn download(&self, sha256: &str) -> Result<Option<Download>, BlobError> {
        if self.size(sha256).await?.is_none() {
            return Ok(None);
        }
        let bytes = self.get(sha256).await?;
        if sealed_file_header(&bytes).is_none() {
            return Ok(Some(Download::Content { bytes, personal: false }));
        }
        let keys = self.keys.as_ref().ok_or(BlobError::NoKeys)?;
        Ok(Some(match open_file(&bytes, keys.as_ref()).await? {
            OpenedFile::Readable(plain) => Download::Content {
                bytes: bytes::Bytes::from(plain),
                personal: true,
            },
            OpenedFile::Erased { .. } => Download::Erased,
        }))
    }

    /// Whether the owner stored the file of this hash and size (its marker exists).
    pub async fn stored_by(&self, owner: BlobOwner, sha256: &str, size: u64) -> Result<bool, BlobError> {
        let marker = Path::from(format!("{}/{sha256}.{size}", owner.prefix()));
        match self.store.head(&marker).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Sets the quota per enterprise and per agency.
    #[must_use]
    pub fn with_quota(self, quota: UploadQuota) -> Self {
        Self { quota, ..self }
    }

    /// The quota of an owner, if it has one.
    pub fn quota_of(&self, owner: BlobOwner) -> Option<u64> {
        match owner {
            BlobOwner::Enterprise(_) => self.quota.enterprise_bytes,
            BlobOwner::Agency(_) => self.quota.agency_bytes,
        }
    }

    /// The bytes an owner has stored, each distinct content once, and the hashes of that
    /// content (uploading it again costs nothing).
    pub async fn usage(&self, owner: BlobOwner) -> Result<(u64, std::collections::HashSet<String>), BlobError> {
        let prefix = Path::from(owner.prefix());
        let mut listing = self.store.list(Some(&prefix));
        let (mut bytes, mut hashes) = (0u64, std::collections::HashSet::new());
        while let Some(meta) = listing.try_next().await? {
            let Some(name) = meta.location.filename() else { continue };
            let Some((sha256, size)) = name.split_once('.') else {
                continue;
            };
            let Ok(size) = size.parse::<u64>() else { continue };
            if hashes.insert(sha256.to_owned()) {
                bytes = bytes.saturating_add(size);
            }
        }
        Ok((bytes, hashes))
    }

    /// Stores staged files and, when there is an owner, the markers that count them against
    /// it. Call it only once the command that names the files is authorised and decided.
    pub async fn store(&self, files: &[StagedFile], owner: Option<BlobOwner>) -> Result<(), BlobError> {
        for staged in files {
            self.store
                .put(
                    &location(&staged.file.sha256),
                    PutPayload::from_bytes(staged.bytes.clone()),
                )
                .await?;
            if let Some(owner) = owner {
                let marker = Path::from(format!(
                    "{}/{}.{}",
                    owner.prefix(),
                    staged.file.sha256,
                    staged.file.size_bytes
                ));
                self.store.put(&marker, PutPayload::new()).await?;
            }
        }
        Ok(())
    }

    /// Opens (creating it if needed) a local directory as the blob store.
    pub fn local(directory: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(directory).map_err(|error| object_store::Error::Generic {
            store: "local",
            source: Box::new(error),
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(directory)?;
        Ok(Self::new(Arc::new(store)))
    }

    /// Opens an S3-compatible bucket as the blob store. Plain `http://` endpoints are allowed
    /// (a server on the same host or network); nothing is sent until the first request, so
    /// call [`BlobStore::check`] to find out whether the bucket answers.
    pub fn s3(settings: &S3Settings) -> Result<Self, BlobError> {
        if settings.bucket.is_empty() {
            return Err(BlobError::S3Settings("the bucket is empty".to_owned()));
        }
        if settings.access_key_id.is_empty() || settings.secret_access_key.is_empty() {
            return Err(BlobError::S3Settings(
                "both the access key id and the secret access key are required".to_owned(),
            ));
        }
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key);
        if let Some(endpoint) = &settings.endpoint {
            let plain = endpoint.starts_with("http://");
            if !plain && !endpoint.starts_with("https://") {
                return Err(BlobError::S3Settings(format!(
                    "the endpoint must start with https:// or http://, not {endpoint:?}"
                )));
            }
            builder = builder.with_endpoint(endpoint).with_allow_http(plain);
        }
        Ok(Self::new(Arc::new(builder.build()?)))
    }

    /// Lists the owners' markers once: an error when the store cannot be reached, the bucket
    /// does not exist or the credentials are refused. Nothing is written.
    pub async fn check(&self) -> Result<(), BlobError> {
        self.store.list_with_delimiter(Some(&Path::from("owners"))).await?;
        Ok(())
    }

    /// Reads a file by its hash.
    pub async fn get(&self, sha256: &str) -> Result<bytes::Bytes, BlobError> {
        Ok(self.store.get(&location(sha256)).await?.bytes().await?)
    }

    /// The size of a stored file, `None` when no file has that hash; reads no bytes.
    /// Anything but 64 lower-case hex digits names no file (and is never sent to the store).
    pub async fn size(&self, sha256: &str) -> Result<Option<u64>, BlobError> {
        let well_formed = sha256.len() == 64
            && sha256
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !well_formed {
            return Ok(None);
        }
        match self.store.head(&location(sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

fn location(sha256: &str) -> Path {
    let prefix = sha256.get(..2).unwrap_or("xx");
    Path::from(format!("sha256/{prefix}/{sha256}"))
}
