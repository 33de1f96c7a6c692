//! The embedded default backend: the event log and the read models in one SQLite file.
//!
//! [`SqliteEventStore`] keeps events in WAL mode with `synchronous = FULL` by default, so an
//! acknowledged append is durable. One writer thread commits concurrent appends in groups (one
//! transaction, one savepoint per append, one fsync for all); reads run on a few read-only
//! connections beside it.

mod keys;
mod row;
mod schema;
mod store;
mod writer;

pub use keys::SqliteSubjectKeys;
pub use store::{READ_CONNECTIONS_MAX, SqliteEventStore, SqliteOptions, SqliteStats, Synchronous};

mod read_model;
pub use read_model::{ReadModelDurability, SqliteReadModelStore};
