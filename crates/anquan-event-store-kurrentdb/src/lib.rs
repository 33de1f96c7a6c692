//! The KurrentDB (EventStoreDB) event-store backend, on the official `kurrentdb` gRPC client.
//!
//! Cities that run KurrentDB keep their events there; read models stay in PostgreSQL
//! (`anquan serve --event-store kurrentdb://… --database postgres://…`).
//!
//! How anquan's log lives in KurrentDB:
//! - one KurrentDB stream per anquan stream, under the same name; an event's version is its
//!   KurrentDB revision, its global position KurrentDB's `$all` position, both parts kept
//!   whole (`Position { commit, prepare }`);
//! - the event id is our UUID v7, the type ours, the data our JSON bytes unchanged; the rest of
//!   the envelope (schema version, times, actor, correlation, causation, command id and digest,
//!   hash and previous hash) is the event's custom metadata ([`mapping::StoredMetadata`]);
//! - an append reads the stream's last event, seals the events from its hash
//!   (`hash_chain::seal`) and writes expecting exactly that revision, so a concurrent writer
//!   makes KurrentDB refuse the write and the append is decided again; a gRPC retry of the same
//!   write (same event ids, same expected revision) is deduplicated by the server;
//! - a command id is found by reading its target stream backwards
//!   ([`KurrentEventStore::command_outcome_in_stream`]); there is no global command index;
//! - `read_all` reads `$all` forwards without KurrentDB's system events (types or streams
//!   starting with `$`); the head watch follows a filtered `$all` subscription and resubscribes
//!   with a growing pause when it drops.
//!
//! What a KurrentDB user gives up is in `docs/kurrentdb.md`: positions are not dense (no gap
//! check, lag in positions rather than events), and server-side scavenging, stream deletion,
//! `$maxAge`/`$maxCount`/`$tb` must never touch these streams (the chain and replay need every
//! event).
//!
//! The mapping is pure and unit-tested ([`mapping`]); the conformance suite runs against a
//! real server when `ANQUAN_TEST_KURRENTDB_URL` is set (`tests/conformance.rs`).

pub mod mapping;
mod store;

pub use store::{ConnectError, KurrentEventStore};
