//! Stream names, versions, expected states and global positions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of an event stream, e.g. `enterprise-0190…`: a category, a dash, and an id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

/// Why a text is not a stream name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream id {0:?} must be 1 to 200 characters of a-z, A-Z, 0-9, '-', '_', '.', ':' and not start with '$'")]
pub struct StreamIdError(pub String);

impl StreamId {
    /// Longest stream name, in bytes.
    pub const LEN_MAX: usize = 200;

    /// Parses a stream name.
    pub fn parse(value: &str) -> Result<Self, StreamIdError> {
        let valid = !value.is_empty()
            && value.len() <= Self::LEN_MAX
            && !value.starts_with('$')
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(StreamIdError(value.to_owned()))
        }
    }

    /// Names the stream of one entity: `<category>-<uuid>`. A lower-case ASCII category and a
    /// UUID's hyphenated hex always form a valid name.
    pub fn for_uuid(category: &'static str, id: uuid::Uuid) -> Self {
        debug_assert!(!category.is_empty() && category.bytes().all(|b| b.is_ascii_lowercase()));
        Self(format!("{category}-{id}"))
    }

    /// Returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the category: the part before the first dash (`enterprise`).
    pub fn category(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StreamIdError;
    fn try_from(value: String) -> Result<Self, StreamIdError> {
        Self::parse(&value)
    }
}

impl From<StreamId> for String {
    fn from(stream: StreamId) -> String {
        stream.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 0-based number of an event within its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    /// The version of a stream's first event.
    pub const FIRST: StreamVersion = StreamVersion(0);

    /// Returns the version after this one.
    pub fn next(self) -> StreamVersion {
        StreamVersion(self.0 + 1)
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the writer expects of the stream before its append (KurrentDB's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamState {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have this version.
    At(StreamVersion),
}

impl StreamState {
    /// Tells whether a stream whose last version is `actual` meets the expectation.
    pub fn admits(self, actual: Option<StreamVersion>) -> bool {
        match self {
            StreamState::Any => true,
            StreamState::NoStream => actual.is_none(),
            StreamState::StreamExists => actual.is_some(),
            StreamState::At(version) => actual == Some(version),
        }
    }

    /// The expectation that matches a stream whose last version is `actual`.
    pub fn from_actual(actual: Option<StreamVersion>) -> StreamState {
        actual.map_or(StreamState::NoStream, StreamState::At)
    }
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamState::Any => f.write_str("any"),
            StreamState::NoStream => f.write_str("no stream"),
            StreamState::StreamExists => f.write_str("stream exists"),
            StreamState::At(version) => write!(f, "version {version}"),
        }
    }
}

/// A place in the global log. Two parts so KurrentDB's (commit, prepare) position fits; the
/// SQL backends use one sequence for both. Ordered by commit, then prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub commit: u64,
    pub prepare: u64,
}

impl Position {
    /// A position from a single global sequence number (SQLite, PostgreSQL, in-memory).
    pub const fn from_sequence(sequence: u64) -> Position {
        Position {
            commit: sequence,
            prepare: sequence,
        }
    }

    /// Returns the single sequence number of a SQL-backed position.
    pub const fn sequence(self) -> u64 {
        self.commit
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.commit == self.prepare {
            write!(f, "{}", self.commit)
        } else {
            write!(f, "{}/{}", self.commit, self.prepare)
        }
    }
}
