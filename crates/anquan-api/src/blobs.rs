//! The content-addressed blob store for uploaded files: bytes are stored under their SHA-256,
//! events hold only the hash, size and media type.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use anquan_domain::enterprise::FileRef;

/// Why a file could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store failed")]
    Store(#[from] object_store::Error),
}

/// Stores files by content hash in any `object_store` backend (local directory by default).
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Wraps an object store.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
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

    /// Stores the bytes (idempotently: the same content lands at the same place) and returns
    /// the reference events keep.
    pub async fn put(&self, bytes: bytes::Bytes, media_type: &str, file_name: &str) -> Result<FileRef, BlobError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size_bytes = bytes.len() as u64;
        self.store
            .put(&location(&sha256), PutPayload::from_bytes(bytes))
            .await?;
        Ok(FileRef {
            sha256,
            size_bytes,
            media_type: media_type.to_owned(),
            file_name: file_name.to_owned(),
        })
    }

    /// Reads a file by its hash.
    pub async fn get(&self, sha256: &str) -> Result<bytes::Bytes, BlobError> {
        Ok(self.store.get(&location(sha256)).await?.bytes().await?)
    }
}

fn location(sha256: &str) -> Path {
    let prefix = sha256.get(..2).unwrap_or("xx");
    Path::from(format!("sha256/{prefix}/{sha256}"))
}
