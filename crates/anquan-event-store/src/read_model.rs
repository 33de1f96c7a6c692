//! The read-model storage boundary. Projection logic is written once as portable SQL
//! statements with typed parameters; each backend executes them, together with the
//! projection's checkpoint, in one transaction (exactly-once effect).
//!
//! Portable SQL here means: `$1, $2, …` placeholders in order of first use (SQLite reads them
//! as numbered parameters), `INSERT … ON CONFLICT … DO UPDATE`, and no backend-specific
//! functions. Only table definitions differ per backend (see [`Dialect`]).

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::stream::Position;

/// The SQL dialect a read-model store speaks; selects the table definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A typed SQL parameter or result value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
    /// Stored as `timestamptz` in PostgreSQL and as RFC 3339 text (UTC, microseconds) in SQLite.
    Timestamp(DateTime<Utc>),
    /// JSON text; `jsonb` in PostgreSQL, text in SQLite.
    Json(String),
}

/// One SQL statement with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: Cow<'static, str>,
    pub params: Vec<SqlValue>,
}

impl Statement {
    /// Builds a statement.
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<SqlValue>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// The statements of one projection batch and the checkpoint to commit with them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionBatch {
    pub projection: String,
    pub statements: Vec<Statement>,
    pub checkpoint: Position,
}

/// A result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<SqlValue>);

/// A read-model storage failure.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("read-model store failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("column {column} holds {found}, not {expected}")]
    Type {
        column: usize,
        expected: &'static str,
        found: String,
    },
}

impl ReadModelError {
    /// Wraps a backend error with what was being done.
    pub fn backend(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ReadModelError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Where read models live: tables a projector writes and queries read.
#[async_trait]
pub trait ReadModelStore: Send + Sync + 'static {
    /// Returns the dialect, to pick table definitions.
    fn dialect(&self) -> Dialect;

    /// Runs schema statements (idempotent `CREATE … IF NOT EXISTS`), separated by `;`.
    async fn migrate(&self, ddl: &str) -> Result<(), ReadModelError>;

    /// Executes a batch's statements and moves its checkpoint, all in one transaction.
    ///
    /// The batch is shared, so a caller retrying after a failure sends the same batch again
    /// without copying its statements.
    async fn apply(&self, batch: Arc<ProjectionBatch>) -> Result<(), ReadModelError>;

    /// Executes several projections' batches, each moving its own checkpoint, all in one
    /// transaction: one commit (one fsync) for a page of the log folded into every projection.
    /// The default applies them one by one, each in its own transaction.
    async fn apply_together(&self, batches: &[Arc<ProjectionBatch>]) -> Result<(), ReadModelError> {
        for batch in batches {
            self.apply(Arc::clone(batch)).await?;
        }
        Ok(())
    }

    /// Returns a projection's checkpoint: the position of the last event it applied.
    async fn checkpoint(&self, projection: &str) -> Result<Option<Position>, ReadModelError>;

    /// Runs statements (e.g. `DELETE FROM …`) and removes a projection's checkpoint in one
    /// transaction, so it rebuilds from the start.
    async fn reset(&self, projection: &str, statements: Vec<Statement>) -> Result<(), ReadModelError>;

    /// Runs a query and returns its rows.
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, ReadModelError>;
}

impl Row {
    fn value(&self, column: usize) -> &SqlValue {
        self.0.get(column).unwrap_or(&SqlValue::Null)
    }

    fn type_error(&self, column: usize, expected: &'static str) -> ReadModelError {
        ReadModelError::Type {
            column,
            expected,
            found: format!("{:?}", self.value(column)),
        }
    }

    /// Reads a text column.
    pub fn text(&self, column: usize) -> Result<String, ReadModelError> {
        match self.value(column) {
            SqlValue::Text(text) | SqlValue::Json(text) => Ok(text.clone()),
            _ => Err(self.type_error(column, "text")),
        }
    }

    /// Reads a nullable text column.
    pub fn opt_text(&self, column: usize) -> Result<Option<String>, ReadModelError> {
        match self.value(column) {
            SqlValue::Null => Ok(None),
            _ => self.text(column).map(Some),
        }
    }

    /// Reads an integer column.
    pub fn int(&self, column: usize) -> Result<i64, ReadModelError> {
        match self.value(column) {
            SqlValue::Int(value) => Ok(*value),
            _ => Err(self.type_error(column, "integer")),
        }
    }

    /// Reads a nullable integer column.
    pub fn opt_int(&self, column: usize) -> Result<Option<i64>, ReadModelError> {
        match self.value(column) {
            SqlValue::Null => Ok(None),
            _ => self.int(column).map(Some),
        }
    }

    /// Reads a boolean column (an integer 0/1 in SQLite).
    pub fn bool(&self, column: usize) -> Result<bool, ReadModelError> {
        match self.value(column) {
            SqlValue::Bool(value) => Ok(*value),
            SqlValue::Int(value) => Ok(*value != 0),
            _ => Err(self.type_error(column, "boolean")),
        }
    }

    /// Reads a timestamp column (RFC 3339 text in SQLite).
    pub fn timestamp(&self, column: usize) -> Result<DateTime<Utc>, ReadModelError> {
        match self.value(column) {
            SqlValue::Timestamp(value) => Ok(*value),
            SqlValue::Text(text) => DateTime::parse_from_rfc3339(text)
                .map(|value| value.to_utc())
                .map_err(|_| self.type_error(column, "timestamp")),
            _ => Err(self.type_error(column, "timestamp")),
        }
    }

    /// Reads a nullable timestamp column.
    pub fn opt_timestamp(&self, column: usize) -> Result<Option<DateTime<Utc>>, ReadModelError> {
        match self.value(column) {
            SqlValue::Null => Ok(None),
            _ => self.timestamp(column).map(Some),
        }
    }
}

/// The instant a read model stores for `instant`: itself inside the platform's window
/// (`anquan_domain::bounds`), else the nearest instant inside it. `decide` refuses instants
/// outside the window, so only an event decided before the window was enforced reaches the
/// clamp; it is logged, and the projection goes on instead of failing on a value SQLite could
/// not read back (years past 9999) or PostgreSQL could not store (before 4713 BC). Both
/// backends bind every `SqlValue::Timestamp` through here, so they store the same rows.
pub fn storable_instant(instant: &DateTime<Utc>) -> DateTime<Utc> {
    let (stored, clamped) = anquan_domain::bounds::clamp_instant(*instant);
    if clamped {
        tracing::warn!(
            recorded = %instant.to_rfc3339(),
            stored = %stored.to_rfc3339(),
            "an event's instant is outside the platform's window; the read model stores the nearest instant inside it"
        );
    }
    stored
}

/// The text a read model stores for `text`: itself, or with each NUL character (which
/// PostgreSQL cannot store in `text` or `jsonb`) replaced by U+FFFD. `decide` refuses NUL in
/// any event (`anquan_domain::bounds::check_events`), so only an event decided before that
/// reaches the replacement; it is logged. Both backends bind text through here and store the
/// same rows.
pub fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\0') {
        return std::borrow::Cow::Borrowed(text);
    }
    tracing::warn!("an event's text holds a NUL character; the read model stores U+FFFD instead");
    std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
}

/// [`storable_text`] for JSON text, whose NUL characters are escaped (`\u0000`).
pub fn storable_json(json: &str) -> std::borrow::Cow<'_, str> {
    fn replace(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) if text.contains('\0') => {
                *text = text.replace('\0', "\u{FFFD}");
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(replace),
            serde_json::Value::Object(fields) => {
                let entries = std::mem::take(fields);
                for (key, mut field) in entries {
                    replace(&mut field);
                    fields.insert(key.replace('\0', "\u{FFFD}"), field);
                }
            }
            _ => {}
        }
    }
    if !json.contains("\\u0000") {
        return std::borrow::Cow::Borrowed(json);
    }
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else {
        return std::borrow::Cow::Borrowed(json);
    };
    replace(&mut value);
    tracing::warn!("an event's JSON holds a NUL character; the read model stores U+FFFD instead");
    std::borrow::Cow::Owned(value.to_string())
}

/// Formats a timestamp the way SQLite stores it: RFC 3339, UTC, microseconds, `Z`.
///
/// Every timestamp a projection writes goes through here, so the usual case (years 0 to 9999,
/// no leap second) is written digit by digit instead of through chrono's format parser; the
/// rest takes chrono's path, which gives the same text for the usual case too (tested).
pub fn sqlite_timestamp(instant: &DateTime<Utc>) -> String {
    let year = instant.year();
    let nanosecond = instant.nanosecond();
    if !(0..=9999).contains(&year) || nanosecond >= 1_000_000_000 {
        return instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    let mut text = String::with_capacity(27);
    // `year` is within 0..=9999 here, so it is non-negative and four digits at most.
    let year = year.unsigned_abs();
    push_digits(&mut text, year / 100, 2);
    push_digits(&mut text, year % 100, 2);
    text.push('-');
    push_digits(&mut text, instant.month(), 2);
    text.push('-');
    push_digits(&mut text, instant.day(), 2);
    text.push('T');
    push_digits(&mut text, instant.hour(), 2);
    text.push(':');
    push_digits(&mut text, instant.minute(), 2);
    text.push(':');
    push_digits(&mut text, instant.second(), 2);
    text.push('.');
    push_digits(&mut text, nanosecond / 1_000, 6);
    text.push('Z');
    text
}

/// Appends the last `width` decimal digits of `value`, zero-padded.
fn push_digits(text: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn chrono_format(instant: &DateTime<Utc>) -> String {
        instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    #[test]
    fn sqlite_timestamps_read_as_chrono_formats_them() {
        let mut instants = vec![
            Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 34, 56).unwrap() + chrono::Duration::microseconds(7),
        ];
        // A walk over many instants with every field changing, fractions included.
        let mut instant = Utc.with_ymd_and_hms(1899, 3, 4, 5, 6, 7).unwrap();
        for step in 0..20_000_i64 {
            instant += chrono::Duration::nanoseconds(7_919_000_013 * 1_013 + step * 104_729);
            instants.push(instant);
        }
        for instant in instants {
            assert_eq!(sqlite_timestamp(&instant), chrono_format(&instant), "{instant:?}");
        }
    }
}
