//! Events of the enterprise stream.

use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::credit_code::UnifiedSocialCreditCode;
use crate::ids::{DocumentId, EnterpriseId, RequirementCode, Town};
use crate::period::Period;
use crate::rules::EnterpriseProfile;

/// An enterprise joined the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseRegistered {
    pub enterprise_id: EnterpriseId,
    pub name: String,
    pub credit_code: UnifiedSocialCreditCode,
    pub town: Town,
    pub industry: String,
    pub profile: EnterpriseProfile,
    pub registered_at: Instant,
}

/// An enterprise's name, town, industry or profile changed; the event holds the new values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseProfileChanged {
    pub name: String,
    pub town: Town,
    pub industry: String,
    pub profile: EnterpriseProfile,
    pub changed_at: Instant,
}

/// A stored file: content-addressed by its SHA-256; the bytes live in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub size_bytes: u64,
    pub media_type: String,
    pub file_name: String,
}

/// What time a record speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Coverage {
    /// A record with no period or validity (e.g. an appointment document).
    Once,
    /// A certificate, plan or test valid from `valid_from` until just before `valid_until`.
    Validity { valid_from: Instant, valid_until: Instant },
    /// A periodic record (a drill, a report) for one period.
    Period { period: Period },
}

/// An enterprise uploaded a record for a requirement; it awaits review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentUploaded {
    pub document_id: DocumentId,
    pub requirement: RequirementCode,
    pub title: String,
    pub file: FileRef,
    pub coverage: Coverage,
    pub uploaded_at: Instant,
}

/// A reviewer approved a record (审核通过).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentApproved {
    pub document_id: DocumentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub reviewed_at: Instant,
}

/// A reviewer returned a record with feedback (退回); the enterprise uploads a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentReturned {
    pub document_id: DocumentId,
    pub feedback: String,
    pub reviewed_at: Instant,
}
