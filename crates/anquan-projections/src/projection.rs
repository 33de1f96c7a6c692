//! The `Projection` trait: how one read model is defined, created and folded.

use anquan_domain::Event;
use anquan_event_store::{Dialect, RecordedEvent, Statement};

use crate::error::ProjectionError;

/// One read model: its tables and how each event changes them.
///
/// `apply` is a pure function of the event: it never reads the clock, a random source, the
/// read model itself or hash-map iteration order, so the same log always yields the same rows.
pub trait Projection: Send + Sync + 'static {
    /// Returns the projection's stable name; it keys the checkpoint.
    fn name(&self) -> &'static str;

    /// Returns the idempotent table definitions (`CREATE … IF NOT EXISTS`) for a dialect.
    fn schema(&self, dialect: Dialect) -> &'static str;

    /// Returns the tables the projection owns, in creation order; reset deletes them in reverse.
    fn tables(&self) -> &'static [&'static str];

    /// Appends the statements that fold one event into the read model.
    fn apply(&self, event: &RecordedEvent, decoded: &Event, out: &mut Vec<Statement>) -> Result<(), ProjectionError>;
}
