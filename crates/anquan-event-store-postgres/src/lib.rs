//! The production backend: the event log and the read models in PostgreSQL, through
//! deadpool-postgres.
//!
//! # Schema
//!
//! `event_log` holds one row per event with its full envelope (`data` and `actor` as `json`,
//! which keeps the text byte for byte, as the hash chain needs; `xid` records the writing
//! transaction). `event_log_head` is a single row holding the last position handed out.
//! `event_commands` maps a command id to its append's outcome and the digest of its command. `store_schema_version` records
//! the migrations applied; [`PostgresEventStore::connect`] applies missing ones inside a
//! transaction holding `pg_advisory_xact_lock`, so nodes starting together queue and the later
//! ones find the work done.
//!
//! # Appends
//!
//! An append first reads (pipelined, outside any transaction) the command id's recorded
//! outcome and the stream's last version and hash. A known command returns its outcome with
//! `duplicate = true` when the append is on its stream with its digest, and is refused
//! (`CommandIdReused`) otherwise; an expectation the stream does not meet is a conflict. Otherwise the
//! events are sealed (hash chain) and written by *one* statement, so one implicit transaction:
//! it bumps the head row by the number of events (taking its row lock), inserts the events at
//! the positions after the old head (multi-row insert from arrays), inserts the command row and
//! calls `pg_notify`. The reads are not locked: if the stream moved in between, the statement
//! violates `UNIQUE (stream_id, version)` and the append reads again, which turns into a
//! conflict with the actual version (or, for `Any`/`StreamExists`, a bounded retry). A
//! concurrent append of the same command violates the command's primary key; the re-read then
//! returns the winner's outcome.
//!
//! # No skipped events
//!
//! The classic bug: positions taken from a sequence at insert become visible at commit, in a
//! different order, so a reader that checkpoints "the highest position seen" skips a lower
//! position whose transaction commits later. Here positions are not taken from a sequence but
//! from the `event_log_head` row, whose row lock an append holds from taking its positions
//! until its commit. A second append waits on that lock, which PostgreSQL releases only after
//! the first transaction is visible to new snapshots (or rolled back, which restores the head,
//! so a rolled-back append leaves no gap and its positions are reused). Hence commit order
//! equals position order: whenever a snapshot sees position `p`, it already sees every
//! committed position below `p`, and no transaction can later commit a position below one a
//! reader has seen. `read_all` is therefore a plain `position > after ORDER BY position`
//! range read, with no visibility horizon that an unrelated long transaction could hold back.
//! (A visibility horizon alone — `xid < pg_snapshot_xmin(pg_current_snapshot())` — is not
//! enough when positions come from a sequence: a transaction with a lower xid may take a
//! higher position, commit first and pass the horizon while a higher-xid, lower-position one
//! is still in flight.) The price is that appends commit one at a time; every append also
//! `NOTIFY`s, which PostgreSQL serialises at commit anyway, so little is lost, and batching
//! events per append is what buys throughput. The proof test (`tests/gap_free.rs`) runs 32
//! concurrent writers with random rollbacks under a live subscriber.
//!
//! # Live tail
//!
//! A dedicated connection runs `LISTEN anquan_events`; every append's `pg_notify` carries its
//! last position, which feeds [`EventStore::head`](anquan_event_store::EventStore::head). The
//! listener reconnects with backoff and re-reads the head after each (re)connection.

mod group_commit;
mod listener;
mod read_model;
mod schema;
mod store;
#[cfg(feature = "test-support")]
pub mod testing;

pub use group_commit::GroupCommitStats;
pub use read_model::PostgresReadModelStore;
pub use schema::SCHEMA_VERSION;
pub use store::{PostgresEventStore, PostgresOptions};
