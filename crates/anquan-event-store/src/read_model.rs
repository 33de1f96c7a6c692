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

use crate::runs::Footprint;
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
    /// The rows it touches, when declared: a backend may then run it together with others of
    /// the same SQL text ([`crate::runs`]). Without one it runs alone, in its place.
    pub footprint: Option<Footprint>,
}

impl Statement {
    /// Builds a statement.
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<SqlValue>) -> Self {
        Self {
            sql: sql.into(),
            params,
            footprint: None,
        }
    }

    /// Declares the rows the statement touches (see [`Footprint`] for what that promises).
    #[must_use]
    pub fn with_footprint(mut self, footprint: Footprint) -> Self {
        self.footprint = Some(footprint);
        self
    }
}

/// The statements of one projection batch and the checkpoint to commit with them.
///
/// A batch commits only if its projection's stored checkpoint is still the one it was folded
/// after ([`ProjectionBatch::after`]) and, when it carries a [`LeaseTerm`], only while that term
/// is its group's current one: a compare-and-set on (projection, term, expected position), so
/// a batch that lost a race (a deposed leader's late batch, a retry of a batch that did commit)
/// fails with [`ReadModelError::CheckpointMoved`] or [`ReadModelError::Fenced`] and changes
/// nothing, and no checkpoint ever moves backwards or applies an event twice.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionBatch {
    pub projection: String,
    pub statements: Vec<Statement>,
    pub checkpoint: Position,
    /// The checkpoint the batch was folded after.
    pub after: CheckpointExpected,
    /// The leadership term the batch was folded under, if its group is led.
    pub lease: Option<LeaseTerm>,
}

impl ProjectionBatch {
    /// A batch that commits whatever the stored checkpoint is (tools that own their table:
    /// snapshots, tests).
    pub fn new(projection: impl Into<String>, statements: Vec<Statement>, checkpoint: Position) -> Self {
        Self {
            projection: projection.into(),
            statements,
            checkpoint,
            after: CheckpointExpected::Any,
            lease: None,
        }
    }

    /// The batch commits only if the stored checkpoint is `after` (none: no checkpoint yet).
    pub fn after(mut self, after: Option<Position>) -> Self {
        self.after = match after {
            Some(position) => CheckpointExpected::At(position),
            None => CheckpointExpected::Absent,
        };
        self
    }

    /// The batch commits only while `lease` is its group's current term.
    pub fn fenced(mut self, lease: Option<LeaseTerm>) -> Self {
        self.lease = lease;
        self
    }
}

/// What a batch expects its projection's stored checkpoint to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointExpected {
    /// Anything: the batch overwrites it.
    Any,
    /// No checkpoint yet.
    Absent,
    /// This position.
    At(Position),
}

/// One leadership term of a projection group: the term number the store handed out when this
/// holder took the group's lease. Terms only grow; a batch carrying an older term is fenced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseTerm {
    pub group: String,
    pub term: i64,
}

impl std::fmt::Display for LeaseTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} term {}", self.group, self.term)
    }
}

/// A request to take or renew a projection group's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseClaim {
    pub group: String,
    /// Who asks: a node id with a per-process nonce, so a restarted node never renews the term
    /// of its previous life.
    pub holder: String,
    /// The term this holder holds and renews; `None` to take the lease when it is free
    /// (expired or released), as a new term.
    pub renewing: Option<i64>,
    /// How long the lease lasts from now, by the store's clock.
    pub duration_ms: i64,
    /// Take it even from a live holder, as a new term (an operator's rebuild taking over from
    /// the nodes): the holder's next batch is fenced and its next renewal refused.
    pub force: bool,
}

/// Who holds a projection group's lease, as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub group: String,
    pub term: i64,
    /// Empty when released.
    pub holder: String,
    /// Milliseconds until it expires, by the store's clock; zero or less when expired.
    pub expires_in_ms: i64,
}

impl LeaseHolder {
    /// Whether someone holds it now.
    pub fn is_held(&self) -> bool {
        !self.holder.is_empty() && self.expires_in_ms > 0
    }
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
    /// A batch's projection checkpoint is not the one it was folded after: another writer moved
    /// it, or this batch already committed and is being retried. Nothing was changed.
    #[error("projection {projection}'s checkpoint is {found:?}, not {expected:?}: another writer moved it")]
    CheckpointMoved {
        projection: String,
        expected: CheckpointExpected,
        found: Option<Position>,
    },
    /// A batch's leadership term is no longer its group's: another holder took the lease.
    /// Nothing was changed.
    #[error("{lease} is over: {group} is now at term {current:?}", group = lease.group)]
    Fenced { lease: LeaseTerm, current: Option<i64> },
    #[error("column {column} holds {found}, not {expected}")]
    Type {
        column: usize,
        expected: &'static str,
        found: String,
    },
}

impl ReadModelError {
    /// A batch refused by its guards (its checkpoint moved, or its term ended): trying the same
    /// batch again cannot succeed, so it is not retried.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ReadModelError::CheckpointMoved { .. } | ReadModelError::Fenced { .. }
        )
    }

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

    /// Writes what was overwritten out of any place that still holds an older copy, after an
    /// erasure was applied (SQLite: fold the WAL into the file, so the file's stale pages are
    /// replaced; ARCHITECTURE.md, "Erasable personal data"). The default does nothing.
    async fn settle_erasure(&self) -> Result<(), ReadModelError> {
        Ok(())
    }

    /// Returns a projection's checkpoint: the position of the last event it applied.
    async fn checkpoint(&self, projection: &str) -> Result<Option<Position>, ReadModelError>;

    /// Runs statements (e.g. `DELETE FROM …`) and removes a projection's checkpoint in one
    /// transaction, so it rebuilds from the start.
    async fn reset(&self, projection: &str, statements: Vec<Statement>) -> Result<(), ReadModelError>;

    /// Runs a query and returns its rows.
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, ReadModelError>;

    /// Every projection's checkpoint, by name (one read, for followers of the shared
    /// checkpoints).
    async fn checkpoints(&self) -> Result<Vec<(String, Position)>, ReadModelError>;

    /// Takes or renews a projection group's lease, atomically, by the store's clock: granted
    /// (with its term) when the claim renews the current term of the same holder, or the lease
    /// is free (never taken, expired or released), which starts a new, higher term; `None`
    /// when another holder has it.
    async fn claim_lease(&self, claim: &LeaseClaim) -> Result<Option<LeaseTerm>, ReadModelError>;

    /// Releases a lease this holder has at this term (so another node takes it at once instead
    /// of when it expires); does nothing otherwise.
    async fn release_lease(&self, lease: &LeaseTerm, holder: &str) -> Result<(), ReadModelError>;

    /// Every lease the store has.
    async fn leases(&self) -> Result<Vec<LeaseHolder>, ReadModelError>;

    /// A receiver that changes when a checkpoint may have moved: at once for commits through
    /// this store, and for other processes where the backend can tell (PostgreSQL's `NOTIFY`).
    /// Followers also poll, so a missed change is late, never lost.
    fn checkpoint_moves(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// The table of projection-group leases, in portable SQL: its expiry is milliseconds since the
/// Unix epoch by the store's clock, so nodes' clocks do not matter.
pub const LEASES_DDL: &str = "CREATE TABLE IF NOT EXISTS projection_leases (
    lease_group TEXT PRIMARY KEY,
    term BIGINT NOT NULL,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
)";

/// Takes or renews a lease: `$1` group, `$2` holder, `$3` the term renewed (-1 for none), `$4`
/// the lease's duration in milliseconds, `$5` 1 to take it from a live holder (else 0);
/// `{now_ms}` is the backend's clock in milliseconds.
/// Returns the term when granted, no row otherwise.
pub fn claim_lease_sql(now_ms: &str) -> String {
    format!(
        "INSERT INTO projection_leases (lease_group, term, holder, expires_ms) VALUES ($1, 1, $2, {now_ms} + $4) \
         ON CONFLICT (lease_group) DO UPDATE SET \
         term = CASE WHEN projection_leases.holder = $2 AND projection_leases.term = $3 \
                THEN projection_leases.term ELSE projection_leases.term + 1 END, \
         holder = $2, expires_ms = {now_ms} + $4 \
         WHERE (projection_leases.holder = $2 AND projection_leases.term = $3) \
            OR projection_leases.holder = '' OR projection_leases.expires_ms <= {now_ms} OR CAST($5 AS BIGINT) <> 0 \
         RETURNING term"
    )
}

/// Renews the term a holder holds, whether or not it has expired meanwhile (no other holder
/// took it, or the term would differ), as [`claim_lease_sql`] does: `$1` group, `$2` holder,
/// `$3` the term, `$4` the lease's duration in milliseconds; `{now_ms}` is the backend's clock
/// in milliseconds. Returns the term when renewed, no row otherwise (then a claim may take it as
/// a new term). It changes no key column, so on PostgreSQL it does not wait for the term's
/// batches in flight.
pub fn renew_lease_sql(now_ms: &str) -> String {
    format!(
        "UPDATE projection_leases SET expires_ms = {now_ms} + $4 \
         WHERE lease_group = $1 AND holder = $2 AND term = $3 RETURNING term"
    )
}

/// Releases a lease: `$1` group, `$2` holder, `$3` term.
pub const RELEASE_LEASE_SQL: &str =
    "UPDATE projection_leases SET holder = '', expires_ms = 0 WHERE lease_group = $1 AND holder = $2 AND term = $3";

/// Reads every lease; `{now_ms}` is the backend's clock in milliseconds.
pub fn leases_sql(now_ms: &str) -> String {
    format!("SELECT lease_group, term, holder, expires_ms - {now_ms} FROM projection_leases ORDER BY lease_group")
}

/// The current term of a group, read under a share lock where the backend has one, first in a
/// fenced batch's transaction: `$1` group.
pub const LEASE_TERM_SQL: &str = "SELECT term FROM projection_leases WHERE lease_group = $1";

/// Checks a fenced batch's term against the group's current one.
pub fn check_fence(lease: &LeaseTerm, current: Option<i64>) -> Result<(), ReadModelError> {
    if current == Some(lease.term) {
        Ok(())
    } else {
        Err(ReadModelError::Fenced {
            lease: lease.clone(),
            current,
        })
    }
}

/// Checks a batch's expected checkpoint against the stored one.
pub fn check_expected(batch: &ProjectionBatch, found: Option<Position>) -> Result<(), ReadModelError> {
    let matches = match batch.after {
        CheckpointExpected::Any => true,
        CheckpointExpected::Absent => found.is_none(),
        CheckpointExpected::At(position) => found == Some(position),
    };
    if matches {
        Ok(())
    } else {
        Err(ReadModelError::CheckpointMoved {
            projection: batch.projection.clone(),
            expected: batch.after,
            found,
        })
    }
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

    /// Reads a nullable boolean column.
    pub fn opt_bool(&self, column: usize) -> Result<Option<bool>, ReadModelError> {
        match self.value(column) {
            SqlValue::Null => Ok(None),
            _ => self.bool(column).map(Some),
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
    let stored = text_as_stored(text);
    if let std::borrow::Cow::Owned(_) = stored {
        tracing::warn!("an event's text holds a NUL character; the read model stores U+FFFD instead");
    }
    stored
}

/// [`storable_text`] without the warning, for code that only compares values as the read
/// models will hold them (the run planner's keys).
pub(crate) fn text_as_stored(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
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
