//! Turning `event_log` rows into [`RecordedEvent`]s, and the reads that return them.
//!
//! Reading the log is the projections' hot path, so a row is decoded from borrowed column
//! values: the stream id and actor are parsed once per run of equal values, not once per row.

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row};
use uuid::Uuid;

use anquan_domain::CommandId;
use anquan_event_store::{
    AppendOutcome, CommandDigest, EventHash, EventMetadata, Position, RecordedCommand, RecordedEvent, RepeatedColumns,
    StoreError, StreamId, StreamVersion,
};

use crate::schema::{sql_error, sql_error_with};

/// Every event read selects the columns in the order [`Decoder::decode`] expects.
const READ_ALL_SQL: &str = "SELECT position, stream_id, version, event_id, event_type, schema_version, data, \
     occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash \
     FROM event_log WHERE position > ?1 ORDER BY position LIMIT ?2";
const READ_STREAM_SQL: &str = "SELECT position, stream_id, version, event_id, event_type, schema_version, data, \
     occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash \
     FROM event_log WHERE stream_id = ?1 AND version >= ?2 ORDER BY version LIMIT ?3";
pub(crate) const COMMAND_SQL: &str =
    "SELECT stream_id, first_version, last_version, last_position, digest FROM event_commands WHERE command_id = ?1";

/// Reads up to `limit` events after `after`.
pub(crate) fn read_all(connection: &Connection, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut statement = connection
        .prepare_cached(READ_ALL_SQL)
        .map_err(sql_error("prepare read_all"))?;
    let after = to_i64(after, "position")?;
    let mut rows = statement
        .query((after, to_i64(limit as u64, "limit")?))
        .map_err(sql_error_with(|| format!("read the log after position {after}")))?;
    decode_rows(&mut rows, limit)
}

/// Reads up to `limit` events of one stream from version `from`.
pub(crate) fn read_stream(
    connection: &Connection,
    stream_id: &StreamId,
    from: StreamVersion,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut statement = connection
        .prepare_cached(READ_STREAM_SQL)
        .map_err(sql_error("prepare read_stream"))?;
    // Versions beyond i64 cannot exist: reading from there returns nothing.
    let Ok(from) = i64::try_from(from.0) else {
        return Ok(Vec::new());
    };
    let mut rows = statement
        .query((stream_id.as_str(), from, to_i64(limit as u64, "limit")?))
        .map_err(sql_error_with(|| format!("read stream {stream_id}")))?;
    decode_rows(&mut rows, limit)
}

/// Looks up the outcome of the append that carried a command id (marked as a duplicate) and
/// the command's digest (none for a command recorded before digests were kept).
pub(crate) fn command_outcome(
    connection: &Connection,
    command_id: CommandId,
) -> Result<Option<RecordedCommand>, StoreError> {
    let mut statement = connection
        .prepare_cached(COMMAND_SQL)
        .map_err(sql_error("prepare the command lookup"))?;
    let row = statement
        .query_row([command_id.0.as_bytes()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })
        .optional()
        .map_err(sql_error_with(|| format!("look up command {command_id}")))?;
    let Some((stream_id, first_version, last_version, last_position, digest)) = row else {
        return Ok(None);
    };
    let location = || format!("event_commands {command_id}");
    let digest = match digest {
        None => None,
        Some(bytes) => Some(CommandDigest(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            StoreError::Corrupt {
                location: location(),
                reason: format!("a command digest has {} bytes, not 32", bytes.len()),
            }
        })?)),
    };
    Ok(Some(RecordedCommand {
        outcome: AppendOutcome {
            stream_id: StreamId::parse(&stream_id).map_err(|error| corrupt(location(), error))?,
            first_version: StreamVersion(to_u64(first_version, location)?),
            last_version: StreamVersion(to_u64(last_version, location)?),
            last_position: Position::from_sequence(to_u64(last_position, location)?),
            duplicate: true,
        },
        digest,
    }))
}

fn decode_rows(rows: &mut rusqlite::Rows<'_>, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut decoder = Decoder::default();
    let mut events = Vec::with_capacity(limit.min(1_024));
    while let Some(row) = rows.next().map_err(sql_error("step through events"))? {
        events.push(decoder.decode(row)?);
    }
    Ok(events)
}

/// Decodes rows, reusing the last stream id and actor when the next row repeats them.
#[derive(Default)]
struct Decoder(RepeatedColumns);

impl Decoder {
    fn decode(&mut self, row: &Row<'_>) -> Result<RecordedEvent, StoreError> {
        let position = to_u64(column(row, 0)?.as_i64().map_err(bad_type(0))?, || {
            "event_log".to_owned()
        })?;
        let location = || format!("event_log position {position}");
        let text = |index: usize| -> Result<&str, StoreError> {
            match column(row, index)? {
                // The data is mostly CJK JSON; std's check is the read's largest cost there.
                ValueRef::Text(bytes) => simdutf8::basic::from_utf8(bytes)
                    .map_err(|error| corrupt(location(), format!("column {index}: {error}"))),
                other => Err(corrupt(
                    location(),
                    format!("column {index}: {:?} is not text", other.data_type()),
                )),
            }
        };
        let integer = |index: usize| -> Result<i64, StoreError> {
            column(row, index)?
                .as_i64()
                .map_err(|error| corrupt(location(), format!("column {index}: {error}")))
        };
        let blob = |index: usize| -> Result<Option<&[u8]>, StoreError> {
            column(row, index)?
                .as_blob_or_null()
                .map_err(|error| corrupt(location(), format!("column {index}: {error}")))
        };
        let uuid = |index: usize| -> Result<Option<Uuid>, StoreError> {
            blob(index)?
                .map(|bytes| Uuid::from_slice(bytes).map_err(|error| corrupt(location(), error)))
                .transpose()
        };
        let time = |index: usize| -> Result<DateTime<Utc>, StoreError> {
            let micros = integer(index)?;
            DateTime::from_timestamp_micros(micros)
                .ok_or_else(|| corrupt(location(), format!("column {index}: {micros} is out of range")))
        };

        let stream_id = self.0.stream(text(1)?).map_err(|error| corrupt(location(), error))?;
        let actor = self.0.actor(text(9)?).map_err(|error| corrupt(location(), error))?;
        let hash_bytes = blob(13)?.ok_or_else(|| corrupt(location(), "hash is null"))?;
        let hash = EventHash(
            hash_bytes
                .try_into()
                .map_err(|_| corrupt(location(), format!("hash has {} bytes, not 32", hash_bytes.len())))?,
        );
        Ok(RecordedEvent {
            event_id: uuid(3)?.ok_or_else(|| corrupt(location(), "event id is null"))?,
            stream_id,
            version: StreamVersion(to_u64(integer(2)?, location)?),
            position: Position::from_sequence(position),
            event_type: text(4)?.to_owned(),
            schema_version: u32::try_from(integer(5)?).map_err(|error| corrupt(location(), error))?,
            data: text(6)?.to_owned(),
            stored_data: None,
            metadata: EventMetadata {
                occurred_at: time(7)?,
                actor,
                correlation_id: uuid(10)?.ok_or_else(|| corrupt(location(), "correlation id is null"))?,
                causation_id: uuid(11)?,
                command_id: uuid(12)?.map(CommandId::from_uuid),
            },
            recorded_at: time(8)?,
            hash,
        })
    }
}

fn column<'row>(row: &'row Row<'_>, index: usize) -> Result<ValueRef<'row>, StoreError> {
    row.get_ref(index)
        .map_err(sql_error_with(|| format!("read column {index}")))
}

fn bad_type(index: usize) -> impl FnOnce(rusqlite::types::FromSqlError) -> StoreError {
    move |error| corrupt("event_log".to_owned(), format!("column {index}: {error}"))
}

pub(crate) fn corrupt(location: String, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        location,
        reason: reason.to_string(),
    }
}

/// Converts a stored integer that must not be negative.
pub(crate) fn to_u64(value: i64, location: impl FnOnce() -> String) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(location(), format!("{value} is negative")))
}

/// Converts a number to SQLite's integer type.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend {
        message: format!("{what} {value} does not fit in a sqlite integer"),
        source: None,
    })
}
