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
//! # Appends: group commit
//!
//! Every append of a store goes through one committer task (`group_commit`), which commits
//! the appends that arrive together as a group: the first append waiting starts a group, the
//! appends queued behind it join (up to 64 appends, as many subtransactions as PostgreSQL
//! caches per backend, or 10,000 events), and those arriving while it commits form the next.
//! An append alone goes at once; nothing waits for company.
//! A group is one transaction in three pipelined round trips:
//!
//! 1. `BEGIN`, take the `event_log_head` row with `SELECT … FOR UPDATE`, read the last version
//!    and hash of every stream of the group and the recorded outcome of every command id;
//! 2. each append is decided in arrival order against what was read and what the group's
//!    earlier appends did (a known command id answers its first outcome with `duplicate =
//!    true`, or is refused as `CommandIdReused`; an expectation the stream does not meet is a
//!    conflict; otherwise the events are sealed from the stream's last hash and take the next
//!    positions), then every accepted append is written as `SAVEPOINT append; INSERT …
//!    (events and command row, one statement); RELEASE SAVEPOINT append`, and the head row is
//!    moved to the group's last position with one `pg_notify`;
//! 3. `COMMIT`: one WAL flush for the whole group.
//!
//! Because every event insert of every node happens under the head row's lock, the reads of
//! step 1 are the truth until the group commits: a decision in step 2 is final, and no append
//! re-reads or retries. A second append to a stream in the same group sees the first one's
//! events (it is decided after it, inside the same transaction). An insert the database
//! refuses (an event id already stored) is rolled back to its savepoint and fails alone; the
//! appends after it are decided again without it and written, at the positions it would have
//! taken. Each caller hears of its own append only after the commit, and a failed commit fails
//! every append of the group, none acknowledged.
//!
//! **One round trip from memory.** The committer remembers the head row's position after its
//! last commit and the last version and hash of every stream it has read or written (up to
//! 100,000 streams). A group whose streams are all remembered skips step 1's reads: it is
//! decided against memory and sent as one statement, its own transaction: the head row's
//! move from the remembered position (an `UPDATE … WHERE position = $remembered`, which fails
//! the statement, by a division by the rows it moved, when the row holds another position), the
//! group's events and command rows as two multi-row inserts over arrays, and one
//! `pg_notify`. Another node's append makes the memory stale, and always moves the head row,
//! so the guarded move fails; a stale stream head would also fail its insert on `UNIQUE
//! (stream_id, version)`. Any refusal fails the whole statement, which rolls back, and the
//! group goes again through steps 1–3, which refuse or accept each append on what the
//! database holds: memory never refuses an append (a conflict seen on a remembered head sends
//! the group down the path that reads, without sending anything), and a command id is taken as
//! new (a recorded one fails its insert on `event_commands`' key). The proof below holds
//! unchanged: the statement holds the head row's lock from its move until its commit, it
//! commits only if the row held the remembered position (so its positions follow the last
//! committed ones), and nothing of it is visible before that commit, in whatever order it runs
//! its parts.
//!
//! # No skipped events
//!
//! The classic bug: positions taken from a sequence at insert become visible at commit, in a
//! different order, so a reader that checkpoints "the highest position seen" skips a lower
//! position whose transaction commits later. Here positions are not taken from a sequence but
//! from the `event_log_head` row, whose row lock a group holds from taking its positions until
//! its commit. Another group (of this node or another) waits on that lock, which PostgreSQL
//! releases only after the first transaction is visible to new snapshots (or rolled back,
//! which restores the head, so a rolled-back group leaves no gap and its positions are
//! reused). Inside a group, positions are handed out in order to the appends that are
//! written; a refused append gets none. Hence commit order equals position order, and a
//! group's positions are contiguous after the previous group's: whenever a snapshot sees
//! position `p`, it already sees every committed position below `p`, and no transaction can
//! later commit a position below one a reader has seen. `read_all` is therefore a plain
//! `position > after ORDER BY position` range read, with no visibility horizon that an
//! unrelated long transaction could hold back. (A visibility horizon alone — `xid <
//! pg_snapshot_xmin(pg_current_snapshot())` — is not enough when positions come from a
//! sequence: a transaction with a lower xid may take a higher position, commit first and pass
//! the horizon while a higher-xid, lower-position one is still in flight.) Commits are still
//! serialised, but one commit now carries a whole group. The proof tests: `tests/gap_free.rs`
//! (32 concurrent writers with random rollbacks under a live subscriber), `tests/group_commit.rs`
//! (a refused append fails alone, a failed commit fails its group, two nodes writing at once)
//! and `tests/crash.rs` (SIGKILL of a writer process and of the server during grouped appends).
//!
//! # Live tail
//!
//! A dedicated connection runs `LISTEN anquan_events`; every group's `pg_notify` carries its
//! last position, which feeds [`EventStore::head`](anquan_event_store::EventStore::head). The
//! listener reconnects with backoff and re-reads the head after each (re)connection.

mod group_commit;
mod keys;
mod listener;
mod read_model;
mod schema;
mod store;
#[cfg(feature = "test-support")]
pub mod testing;
mod unnest;

pub use group_commit::GroupCommitStats;
pub use keys::PostgresSubjectKeys;
pub use read_model::PostgresReadModelStore;
pub use schema::SCHEMA_VERSION;
pub use store::{PostgresEventStore, PostgresOptions};
