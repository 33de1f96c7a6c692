//! `LogTallyProjection`: how many events of each type the log holds, counted one by one as
//! they are folded. Operators read it to see what the log is made of; and because every row
//! is an increment, not an overwrite, it is the read model that shows an event applied twice
//! or skipped: its total must equal the log's length (the multi-node test checks it after a
//! leader is killed mid-batch).

use anquan_domain::Event;
use anquan_event_store::{Dialect, Footprint, RecordedEvent, SqlValue, Statement};

use crate::error::ProjectionError;
use crate::projection::{BatchStatements, Projection};

/// One table, the same in both dialects.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS log_tally (
    event_type TEXT PRIMARY KEY,
    events BIGINT NOT NULL
)";

/// Adds `$2` events of type `$1`; a batch adds up its events of each type first
/// (`BatchStatements::push_increment`).
const COUNT: &str = "INSERT INTO log_tally (event_type, events) VALUES ($1, $2) \
    ON CONFLICT (event_type) DO UPDATE SET events = log_tally.events + excluded.events";
const COUNT_ROWS: Footprint = Footprint::writes("log_tally", &[0]);

/// Counts the log's events by type.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogTallyProjection;

impl LogTallyProjection {
    pub const NAME: &'static str = "log_tally";
    pub const TABLES: &'static [&'static str] = &["log_tally"];
}

impl Projection for LogTallyProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn schema(&self, _: Dialect) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        Self::TABLES
    }

    fn apply(&self, event: &RecordedEvent, _: &Event, out: &mut BatchStatements) -> Result<(), ProjectionError> {
        out.push_increment(
            "log_tally.events",
            event.event_type.clone(),
            1,
            Statement::new(COUNT, vec![SqlValue::Text(event.event_type.clone()), SqlValue::Int(1)])
                .with_footprint(COUNT_ROWS),
        );
        Ok(())
    }
}

/// The tally's rows: (event type, events), by type.
pub async fn tally(store: &dyn anquan_event_store::ReadModelStore) -> Result<Vec<(String, i64)>, crate::QueryError> {
    let rows = store
        .query("SELECT event_type, events FROM log_tally ORDER BY event_type", &[])
        .await?;
    rows.iter().map(|row| Ok((row.text(0)?, row.int(1)?))).collect()
}
