//! A deterministic text dump of a projection's tables: the basis of "drop and replay gives
//! identical rows" tests and of determinism digests.

use std::fmt::Write as _;

use anquan_event_store::read_model::sqlite_timestamp;
use anquan_event_store::{ReadModelStore, SqlValue};

use crate::error::QueryError;
use crate::projection::Projection;

/// Dumps every row of every table of a projection as text: tables in the projection's order,
/// rows sorted by their rendered text, one row per line. Timestamps render as RFC 3339 UTC
/// with microseconds, booleans as 0/1, so the dump reads the same from SQLite and PostgreSQL
/// except where a backend normalises JSON.
pub async fn dump_tables(store: &dyn ReadModelStore, projection: &dyn Projection) -> Result<String, QueryError> {
    let mut dump = String::new();
    for table in projection.tables() {
        // Table names come from the projection's static list, never from input.
        let rows = store.query(&format!("SELECT * FROM {table}"), &[]).await?;
        let mut lines: Vec<String> = rows
            .iter()
            .map(|row| row.0.iter().map(render).collect::<Vec<_>>().join("\t"))
            .collect();
        lines.sort();
        let _ = writeln!(dump, "table {table} ({} rows)", lines.len());
        for line in lines {
            let _ = writeln!(dump, "{line}");
        }
    }
    Ok(dump)
}

fn render(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".to_owned(),
        SqlValue::Bool(value) => u8::from(*value).to_string(),
        SqlValue::Int(value) => value.to_string(),
        SqlValue::Real(value) => format!("{value:?}"),
        SqlValue::Text(text) | SqlValue::Json(text) => format!("{text:?}"),
        SqlValue::Timestamp(instant) => format!("{:?}", sqlite_timestamp(instant)),
    }
}
