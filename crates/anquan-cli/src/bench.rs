//! `anquan bench store`: the shared event-store workload (`shared/bench/WORKLOAD.md`, v1) run
//! through the [`EventStore`] trait on SQLite or PostgreSQL, one JSON line per timed run.
//!
//! The five phases follow the workload exactly:
//!
//! - **A** one append per event in file order, with the expected version the writer tracks
//!   itself from the previous append's outcome (no reads before writing);
//! - **B** one append of a stream's events per stream (expected: no stream);
//! - **C** eight async tasks (`--writers`) sharing one store, writer *w* owning the streams
//!   whose number (order of first appearance, which is the number in the name for the
//!   generated workload) is *w* modulo the writers, one event per append with the expected
//!   version, timed from the common start to the last finish;
//! - **D** the whole log in pages of 1,000 through the library's reader of the log
//!   ([`LogPages`]: `read_all`, the next page read while this one is decoded), every body
//!   decoded into a `serde_json::Value` (`--decode value`, the default) or into the workload's
//!   body type, every field owned (`--decode typed`, as the service decodes its events);
//! - **E** as D, folding every event into a map keyed by (enterprise, indicator).
//!
//! The workload is parsed before the clock; each event's body is encoded to JSON inside the
//! timed loop (`serde_json::to_string` of a struct with the workload's fields in their order,
//! which is how the service encodes its domain events; the load checks that this encoding is
//! byte for byte the workload's `data`). Every append carries the metadata of a fixed system
//! actor (`CityAdmin`, user `bench`), `occurred_at = now` and a fresh correlation id, and no
//! command id (the service takes one only when the client sends it).
//!
//! Each repetition uses a fresh database per group: one for A, then D, then E (D and E read
//! what A wrote), one for B and one for C. SQLite gets a new file in a temporary directory,
//! PostgreSQL a new database in the cluster given by the admin URL, dropped after the group.
//! The store is closed and opened again between the phases of a group, as a fresh process
//! would. When D or E is asked for without A, phase A runs untimed to fill the database (the
//! `settings.fill` field says so).
//!
//! Checks, after the clock: appends leave exactly the workload's events in the store, each
//! stream's versions contiguous and in global order (A, B, C); reads return every event once,
//! in strictly increasing positions, with its own stream (D, E); phase E's digest equals the
//! workload's (WORKLOAD.md for the official file, else its `.meta.json`). A failed check or
//! an error is reported in the run's line (`checks.passed = false`), and the command exits
//! with an error after all runs.
//!
//! Peak RSS is the process's `VmHWM`, reset through `/proc/self/clear_refs` before each run and
//! read when the clock stops: the peak resident size of the whole process during the timed
//! loop, the parsed workload included (it stays resident; `settings` gives its size and the
//! size at the start of the run). File pages a store maps (SQLite's readers use `mmap`) count.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use anquan_domain::{Actor, Role, UserId};
use anquan_event_store::{
    AppendMetadata, AppendRequest, EventStore, LogPages, NewEvent, Position, READ_BATCH_MAX, StreamId, StreamState,
    StreamVersion,
};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};

/// sha256 of the official `workload.jsonl` (WORKLOAD.md, "Identity check").
pub const WORKLOAD_SHA256: &str = "fb34678927bc077b36c8b3eb4b2e50f04364fd0fcf5f9215331d22c050dc057f";
/// Phase E's digest for the official workload (WORKLOAD.md, "Verification").
pub const WORKLOAD_DIGEST: &str = "59585439f9e0f05d0932c9f48f2514aa4fba466b6d81c4f0bda837b2a5d79b2c";
/// Events per `read_all` page in phases D and E.
const PAGE: usize = 1_000;
/// Concurrent writers in phase C, as the workload defines it.
const WRITERS: u32 = 8;

/// Arguments of `anquan bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// What to benchmark.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// Runs the shared event-store workload (WORKLOAD.md) through the EventStore trait and
    /// prints one JSON line per timed run.
    Store(StoreArgs),
}

/// Arguments of `anquan bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The workload file made by gen_workload.py (its `.meta.json` is read from beside it).
    #[arg(long)]
    pub workload: PathBuf,
    /// The store to measure.
    #[arg(long, value_enum)]
    pub backend: BenchBackend,
    /// PostgreSQL: the admin URL of the cluster; a fresh database is created per group and
    /// dropped afterwards.
    #[arg(long)]
    pub database: Option<String>,
    /// Phases to run (A, B, C, D, E or all), repeated or separated by commas; D and E alone
    /// fill their database with an untimed phase A first.
    #[arg(long, value_enum, value_delimiter = ',', ignore_case = true, default_value = "all")]
    pub phase: Vec<PhaseArg>,
    /// Concurrent writers in phase C (the workload's phase C has 8; other counts are for
    /// comparison and say so in `settings.writers`).
    #[arg(long, default_value_t = WRITERS, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub writers: u32,
    /// Repetitions, each on fresh databases.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
    /// SQLite: the directory to make the database files in (a fresh subdirectory, removed
    /// afterwards). It must be on the disk being measured, not a tmpfs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// SQLite: `full` (the shipped default: an acknowledged append survives a power loss) or
    /// `normal` (opt-in, for comparison only: it may lose acknowledged appends).
    #[arg(long, value_enum, default_value = "full")]
    pub sqlite_synchronous: SqliteSynchronous,
    /// Phases D and E: how each body is JSON-decoded: `value` (a `serde_json::Value`, a map of
    /// every field, as a dynamic client does) or `typed` (the workload's body type, every field
    /// decoded and owned, as the service decodes its domain events).
    #[arg(long, value_enum, default_value = "value")]
    pub decode: BodyDecode,
}

/// How phases D and E decode each event's body (WORKLOAD.md: "JSON-decode every body").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BodyDecode {
    /// Into a `serde_json::Value`.
    Value,
    /// Into `DocumentData`, the type the timed appends encode from.
    Typed,
}

impl BodyDecode {
    fn name(self) -> &'static str {
        match self {
            BodyDecode::Value => "serde_json::Value",
            BodyDecode::Typed => "the workload's body type, every field owned",
        }
    }
}

/// The backend of a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchBackend {
    Sqlite,
    Postgres,
}

impl BenchBackend {
    fn name(self) -> &'static str {
        match self {
            BenchBackend::Sqlite => "sqlite",
            BenchBackend::Postgres => "postgres",
        }
    }
}

/// A phase on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    #[value(name = "A")]
    A,
    #[value(name = "B")]
    B,
    #[value(name = "C")]
    C,
    #[value(name = "D")]
    D,
    #[value(name = "E")]
    E,
    #[value(name = "all")]
    All,
}

/// SQLite's `synchronous` level for the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    A,
    B,
    C,
    D,
    E,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::A => "A",
            Phase::B => "B",
            Phase::C => "C",
            Phase::D => "D",
            Phase::E => "E",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The workload.

/// An event body, fields in the workload's order, so encoding it gives the workload's bytes.
#[derive(Debug, Serialize, Deserialize)]
struct DocumentData {
    enterprise_id: String,
    document_id: String,
    indicator: String,
    title: String,
    valid_from: String,
    valid_until: String,
    sha256: String,
    uploaded_by: String,
    uploaded_at: String,
    seq: u64,
    comment: String,
}

#[derive(Deserialize)]
struct Line<'a> {
    stream: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

struct WorkloadEvent {
    /// Index into [`Workload::streams`].
    stream: usize,
    event_type: String,
    data: DocumentData,
}

/// The parsed workload, with what the checks compare against.
struct Workload {
    events: Vec<WorkloadEvent>,
    /// Streams in order of first appearance.
    streams: Vec<StreamId>,
    stream_index: HashMap<StreamId, usize>,
    /// Events per stream.
    per_stream: Vec<u64>,
    sha256: String,
    expected_digest: String,
    digest_source: String,
}

#[derive(Deserialize)]
struct Meta {
    events: u64,
    workload_sha256: String,
    projection_digest: String,
}

fn load_workload(path: &Path) -> anyhow::Result<Workload> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the workload {}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    let mut events = Vec::new();
    let mut streams = Vec::new();
    let mut stream_index = HashMap::new();
    let mut per_stream = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.is_empty()) {
        let at = || format!("{} line {}", path.display(), number + 1);
        let parsed: Line<'_> = serde_json::from_str(line).with_context(at)?;
        let data: DocumentData = serde_json::from_str(parsed.data.get()).with_context(at)?;
        // The body encoded in the timed loop must be the workload's body, byte for byte.
        if serde_json::to_string(&data).with_context(at)? != parsed.data.get() {
            bail!("{}: the data does not re-encode to the same bytes", at());
        }
        if data.seq != events.len() as u64 {
            bail!("{}: seq {} is not the event's number {}", at(), data.seq, events.len());
        }
        let stream_id = StreamId::parse(&parsed.stream).with_context(at)?;
        let stream = match stream_index.get(&stream_id) {
            Some(&index) => index,
            None => {
                let index = streams.len();
                streams.push(stream_id.clone());
                stream_index.insert(stream_id, index);
                per_stream.push(0);
                index
            }
        };
        per_stream[stream] += 1;
        events.push(WorkloadEvent {
            stream,
            event_type: parsed.event_type,
            data,
        });
    }
    if events.is_empty() {
        bail!("the workload {} holds no events", path.display());
    }
    let meta_path = PathBuf::from(format!("{}.meta.json", path.display()));
    let (expected_digest, digest_source) = if sha256 == WORKLOAD_SHA256 {
        (WORKLOAD_DIGEST.to_owned(), "WORKLOAD.md".to_owned())
    } else if meta_path.exists() {
        let meta: Meta = serde_json::from_slice(&std::fs::read(&meta_path)?)
            .with_context(|| format!("cannot parse {}", meta_path.display()))?;
        if meta.workload_sha256 != sha256 || meta.events != events.len() as u64 {
            bail!(
                "{} does not describe {} (sha256 {sha256}, {} events)",
                meta_path.display(),
                path.display(),
                events.len()
            );
        }
        (meta.projection_digest, meta_path.display().to_string())
    } else {
        bail!(
            "{} is not the official workload (sha256 {sha256}) and has no {} to check it against",
            path.display(),
            meta_path.display()
        );
    };
    Ok(Workload {
        events,
        streams,
        stream_index,
        per_stream,
        sha256,
        expected_digest,
        digest_source,
    })
}

// ---------------------------------------------------------------------------------------------
// Databases.

/// Where the fresh databases of a benchmark are made.
enum Cluster {
    Sqlite {
        dir: PathBuf,
        synchronous: Synchronous,
    },
    Postgres {
        admin_url: String,
        admin: tokio_postgres::Client,
    },
}

/// One fresh database.
enum Database {
    Sqlite(PathBuf),
    Postgres { name: String, url: String },
}

/// An open store: the trait object the phases use, and the concrete SQLite store for its
/// writer statistics.
struct Opened {
    store: Arc<dyn EventStore>,
    sqlite: Option<Arc<SqliteEventStore>>,
    postgres: Option<Arc<PostgresEventStore>>,
}

impl Cluster {
    async fn new(args: &StoreArgs) -> anyhow::Result<Cluster> {
        match args.backend {
            BenchBackend::Sqlite => {
                let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
                let dir = base.join(format!("anquan-bench-{}", Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                let synchronous = match args.sqlite_synchronous {
                    SqliteSynchronous::Full => Synchronous::Full,
                    SqliteSynchronous::Normal => Synchronous::Normal,
                };
                Ok(Cluster::Sqlite { dir, synchronous })
            }
            BenchBackend::Postgres => {
                let Some(admin_url) = args.database.clone() else {
                    bail!("--backend postgres needs --database <admin URL>");
                };
                let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                    .await
                    .context("cannot connect to the PostgreSQL admin URL")?;
                tokio::spawn(connection);
                Ok(Cluster::Postgres { admin_url, admin })
            }
        }
    }

    async fn create(&self, label: &str) -> anyhow::Result<Database> {
        match self {
            Cluster::Sqlite { dir, .. } => Ok(Database::Sqlite(dir.join(format!("{label}.sqlite")))),
            Cluster::Postgres { admin_url, admin } => {
                let name = format!("anquan_bench_{}", Uuid::now_v7().simple());
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| format!("cannot create the database {name}"))?;
                let url = with_database(admin_url, &name);
                Ok(Database::Postgres { name, url })
            }
        }
    }

    async fn open(&self, database: &Database) -> anyhow::Result<Opened> {
        match (self, database) {
            (Cluster::Sqlite { synchronous, .. }, Database::Sqlite(path)) => {
                let options = SqliteOptions {
                    synchronous: *synchronous,
                    ..SqliteOptions::default()
                };
                let store = Arc::new(
                    SqliteEventStore::open(path, options).with_context(|| format!("cannot open {}", path.display()))?,
                );
                Ok(Opened {
                    store: store.clone(),
                    sqlite: Some(store),
                    postgres: None,
                })
            }
            (Cluster::Postgres { .. }, Database::Postgres { name, url }) => {
                let store = Arc::new(
                    PostgresEventStore::connect(url, PostgresOptions::default())
                        .await
                        .with_context(|| format!("cannot open the store in {name}"))?,
                );
                Ok(Opened {
                    store: store.clone(),
                    sqlite: None,
                    postgres: Some(store),
                })
            }
            _ => bail!("a database of another backend"),
        }
    }

    async fn remove(&self, database: Database) -> anyhow::Result<()> {
        match (self, database) {
            (Cluster::Sqlite { .. }, Database::Sqlite(path)) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let file = PathBuf::from(format!("{}{suffix}", path.display()));
                    if file.exists() {
                        std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
                    }
                }
                Ok(())
            }
            (Cluster::Postgres { admin, .. }, Database::Postgres { name, .. }) => admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .with_context(|| format!("cannot drop the database {name}")),
            _ => bail!("a database of another backend"),
        }
    }

    fn finish(&self) {
        if let Cluster::Sqlite { dir, .. } = self {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// The durability settings in force, and whether an acknowledged append is durable.
    async fn settings(&self, opened: &Opened) -> anyhow::Result<(Map<String, Value>, bool)> {
        let mut settings = Map::new();
        match self {
            Cluster::Sqlite { dir, synchronous } => {
                let (level, durable) = match synchronous {
                    Synchronous::Full => ("FULL", true),
                    Synchronous::Normal => ("NORMAL", false),
                };
                settings.insert("journal_mode".into(), json!("WAL"));
                settings.insert("synchronous".into(), json!(level));
                settings.insert(
                    "group_commit".into(),
                    json!("one writer thread; concurrent appends share one transaction and one fsync"),
                );
                settings.insert("dir".into(), json!(dir.display().to_string()));
                Ok((settings, durable))
            }
            Cluster::Postgres { .. } => {
                let Some(store) = &opened.postgres else {
                    bail!("a PostgreSQL cluster without a PostgreSQL store");
                };
                // Asked on a connection of the store's own pool: the settings its appends ran under.
                let client = store.pool().get().await.context("cannot get a PostgreSQL connection")?;
                for name in [
                    "fsync",
                    "synchronous_commit",
                    "full_page_writes",
                    "wal_sync_method",
                    "shared_buffers",
                    "server_version",
                ] {
                    let row = client
                        .query_one(&format!("SHOW {name}"), &[])
                        .await
                        .with_context(|| format!("cannot SHOW {name}"))?;
                    let value: String = row.try_get(0).with_context(|| format!("cannot read {name}"))?;
                    settings.insert(name.into(), json!(value));
                }
                settings.insert("pool_size".into(), json!(PostgresOptions::default().pool_size));
                let durable = settings.get("fsync") == Some(&json!("on"))
                    && settings.get("synchronous_commit") != Some(&json!("off"));
                Ok((settings, durable))
            }
        }
    }
}

/// Returns `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Runs.

/// What one timed phase produced.
struct Run {
    events: u64,
    seconds: Option<f64>,
    /// Peak RSS when the clock stopped (before the checks read the store again).
    peak_rss_mb: Option<f64>,
    checks: Map<String, Value>,
    failures: Vec<String>,
}

/// The actor every benchmark append is made by.
fn bench_actor() -> anyhow::Result<Actor> {
    Ok(Actor {
        user_id: UserId::parse("bench")?,
        role: Role::CityAdmin,
    })
}

/// Builds one append; called inside the timed loops, so the encoding is timed.
fn append_request(
    workload: &Workload,
    actor: &Actor,
    stream: usize,
    expected: StreamState,
    events: impl Iterator<Item = usize>,
) -> anyhow::Result<AppendRequest> {
    let events = events
        .map(|index| {
            let event = &workload.events[index];
            Ok(NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event.event_type.clone(),
                schema_version: 1,
                data: serde_json::to_string(&event.data)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(AppendRequest {
        stream_id: workload.streams[stream].clone(),
        expected,
        command: None,
        metadata: AppendMetadata {
            occurred_at: Utc::now(),
            actor: actor.clone(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        },
        events,
    })
}

/// Phase A: one append per event in file order, the writer tracking each stream's version.
async fn phase_a(store: &dyn EventStore, workload: &Workload, actor: &Actor) -> anyhow::Result<f64> {
    let mut versions: Vec<Option<StreamVersion>> = vec![None; workload.streams.len()];
    let start = Instant::now();
    for (index, event) in workload.events.iter().enumerate() {
        let expected = StreamState::from_actual(versions[event.stream]);
        let request = append_request(workload, actor, event.stream, expected, std::iter::once(index))?;
        let outcome = store
            .append(request)
            .await
            .with_context(|| format!("appending event {index}"))?;
        versions[event.stream] = Some(outcome.last_version);
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Phase B: per stream in order of first appearance, all its events in one append.
async fn phase_b(store: &dyn EventStore, workload: &Workload, actor: &Actor) -> anyhow::Result<f64> {
    let mut by_stream: Vec<Vec<usize>> = vec![Vec::new(); workload.streams.len()];
    for (index, event) in workload.events.iter().enumerate() {
        by_stream[event.stream].push(index);
    }
    let start = Instant::now();
    for (stream, indices) in by_stream.iter().enumerate() {
        let request = append_request(workload, actor, stream, StreamState::NoStream, indices.iter().copied())?;
        store
            .append(request)
            .await
            .with_context(|| format!("appending stream {}", workload.streams[stream]))?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Phase C: the writers start together, writer w owning the streams numbered w modulo their
/// count.
async fn phase_c(
    store: Arc<dyn EventStore>,
    workload: Arc<Workload>,
    actor: &Actor,
    writer_count: usize,
) -> anyhow::Result<f64> {
    let mut owned: Vec<Vec<usize>> = vec![Vec::new(); writer_count];
    for (index, event) in workload.events.iter().enumerate() {
        owned[event.stream % writer_count].push(index);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(writer_count + 1));
    let mut writers = Vec::with_capacity(writer_count);
    for indices in owned {
        let (store, workload, actor, barrier) = (store.clone(), workload.clone(), actor.clone(), barrier.clone());
        writers.push(tokio::spawn(async move {
            let mut versions: Vec<Option<StreamVersion>> = vec![None; workload.streams.len()];
            barrier.wait().await;
            for index in indices {
                let stream = workload.events[index].stream;
                let expected = StreamState::from_actual(versions[stream]);
                let request = append_request(&workload, &actor, stream, expected, std::iter::once(index))?;
                let outcome = store
                    .append(request)
                    .await
                    .with_context(|| format!("appending event {index}"))?;
                versions[stream] = Some(outcome.last_version);
            }
            anyhow::Ok(())
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut first_error = None;
    for writer in writers {
        let result = writer.await.context("a writer task failed").and_then(|result| result);
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    match first_error {
        Some(error) => Err(error),
        None => Ok(seconds),
    }
}

/// Phase E's map: (enterprise, indicator) to the event count and the latest `valid_until`.
type Fold = BTreeMap<(String, String), (u64, String)>;

/// What a read phase saw; checked after the clock.
struct ReadTally {
    events: u64,
    pages: u64,
    ordered: bool,
    seen: Vec<bool>,
    /// Events whose `seq` was missing, out of range, seen before, or in another stream.
    strays: u64,
    /// Events of phase E without the three fields the fold needs.
    malformed: u64,
}

/// Phases D and E: the whole log in pages through the library's reader of the log
/// ([`LogPages`], which reads the next page while this one is decoded), every body decoded; E
/// folds.
async fn phase_read(
    store: &Arc<dyn EventStore>,
    workload: &Workload,
    decode: BodyDecode,
    fold: Option<&mut Fold>,
) -> anyhow::Result<(f64, ReadTally)> {
    let mut tally = ReadTally {
        events: 0,
        pages: 0,
        ordered: true,
        seen: vec![false; workload.events.len()],
        strays: 0,
        malformed: 0,
    };
    let mut fold = fold;
    let mut after: Option<Position> = None;
    let start = Instant::now();
    let mut pages = LogPages::new(Arc::clone(store), None, PAGE);
    while let Some(page) = pages.next_page().await.context("read_all")? {
        tally.pages += 1;
        for event in page {
            if after.is_some_and(|last| event.position <= last) {
                tally.ordered = false;
            }
            after = Some(event.position);
            tally.events += 1;
            let body = ReadBody::decode(&event.data, decode, fold.is_some())
                .with_context(|| format!("decoding the event at position {}", event.position))?;
            let seq = body.seq.and_then(|seq| usize::try_from(seq).ok());
            match seq {
                Some(seq)
                    if seq < tally.seen.len()
                        && !tally.seen[seq]
                        && workload.streams[workload.events[seq].stream] == event.stream_id =>
                {
                    tally.seen[seq] = true;
                }
                _ => tally.strays += 1,
            }
            if let Some(fold) = fold.as_deref_mut() {
                match body.fold {
                    Some((enterprise, indicator, until)) => {
                        let entry = fold.entry((enterprise, indicator)).or_insert((0, String::new()));
                        entry.0 += 1;
                        entry.1 = until;
                    }
                    None => tally.malformed += 1,
                }
            }
        }
    }
    Ok((start.elapsed().as_secs_f64(), tally))
}

/// What the checks and phase E's fold take from a decoded body.
struct ReadBody {
    seq: Option<u64>,
    /// `enterprise_id`, `indicator`, `valid_until`, when E asks and the body has them.
    fold: Option<(String, String, String)>,
}

impl ReadBody {
    /// Decodes the whole body as `decode` says, then takes what the checks (and E's fold, when
    /// `for_fold`) need.
    fn decode(data: &str, decode: BodyDecode, for_fold: bool) -> serde_json::Result<ReadBody> {
        match decode {
            BodyDecode::Value => {
                let body: Value = serde_json::from_str(data)?;
                let seq = body.get("seq").and_then(Value::as_u64);
                let fold = match body {
                    Value::Object(mut body) if for_fold => match (
                        body.remove("enterprise_id"),
                        body.remove("indicator"),
                        body.remove("valid_until"),
                    ) {
                        (
                            Some(Value::String(enterprise)),
                            Some(Value::String(indicator)),
                            Some(Value::String(until)),
                        ) => Some((enterprise, indicator, until)),
                        _ => None,
                    },
                    _ => None,
                };
                Ok(ReadBody { seq, fold })
            }
            BodyDecode::Typed => {
                let body: DocumentData = serde_json::from_str(data)?;
                Ok(ReadBody {
                    seq: Some(body.seq),
                    fold: for_fold.then_some((body.enterprise_id, body.indicator, body.valid_until)),
                })
            }
        }
    }
}

/// The digest of phase E: sha256 over the sorted lines `stream|indicator|count|valid_until\n`.
fn projection_digest(fold: &Fold) -> String {
    let mut hasher = Sha256::new();
    for ((stream, indicator), (count, until)) in fold {
        hasher.update(format!("{stream}|{indicator}|{count}|{until}\n").as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// After an append phase: the store holds exactly the workload's events, each stream's
/// versions contiguous in global order, positions strictly increasing. Read through the trait
/// in pages of [`READ_BATCH_MAX`], untimed.
async fn check_appended(store: &Arc<dyn EventStore>, workload: &Workload, run: &mut Run) -> anyhow::Result<()> {
    let mut counts = vec![0_u64; workload.streams.len()];
    let (mut total, mut ordered, mut contiguous, mut unknown) = (0_u64, true, true, 0_u64);
    let mut after: Option<Position> = None;
    let mut pages = LogPages::new(Arc::clone(store), None, READ_BATCH_MAX);
    while let Some(page) = pages.next_page().await.context("read_all")? {
        for event in page {
            if after.is_some_and(|last| event.position <= last) {
                ordered = false;
            }
            after = Some(event.position);
            total += 1;
            match workload.stream_index.get(&event.stream_id) {
                Some(&stream) => {
                    if event.version != StreamVersion(counts[stream]) {
                        contiguous = false;
                    }
                    counts[stream] += 1;
                }
                None => unknown += 1,
            }
        }
    }
    let expected = workload.events.len() as u64;
    let per_stream = counts == workload.per_stream;
    run.checks.insert("events_in_store".into(), json!(total));
    run.checks.insert("events_expected".into(), json!(expected));
    run.checks
        .insert("events_per_stream_as_expected".into(), json!(per_stream));
    run.checks.insert("versions_contiguous".into(), json!(contiguous));
    run.checks.insert("positions_increasing".into(), json!(ordered));
    if total != expected {
        run.failures
            .push(format!("{total} events in the store, expected {expected}"));
    }
    if !per_stream || unknown > 0 {
        run.failures.push(format!(
            "events per stream differ from the workload ({unknown} in unknown streams)"
        ));
    }
    if !contiguous {
        run.failures
            .push("stream versions are not contiguous in global order".into());
    }
    if !ordered {
        run.failures.push("positions are not strictly increasing".into());
    }
    Ok(())
}

fn check_read(tally: &ReadTally, workload: &Workload, run: &mut Run) {
    let expected = workload.events.len() as u64;
    let once = tally.seen.iter().all(|&seen| seen) && tally.strays == 0 && tally.events == expected;
    run.checks.insert("events_read".into(), json!(tally.events));
    run.checks.insert("events_expected".into(), json!(expected));
    run.checks.insert("pages".into(), json!(tally.pages));
    run.checks.insert("every_event_once".into(), json!(once));
    run.checks.insert("positions_increasing".into(), json!(tally.ordered));
    if !once {
        let missing = tally.seen.iter().filter(|&&seen| !seen).count();
        run.failures.push(format!(
            "read {} events, expected {expected} once each ({missing} missing, {} strays)",
            tally.events, tally.strays
        ));
    }
    if !tally.ordered {
        run.failures.push("positions are not strictly increasing".into());
    }
}

/// Runs one phase on an open store, timed, then checks it.
async fn run_phase(
    phase: Phase,
    opened: &Opened,
    workload: &Arc<Workload>,
    actor: &Actor,
    writers: usize,
    decode: BodyDecode,
) -> Run {
    let store = opened.store.as_ref();
    let mut run = Run {
        events: workload.events.len() as u64,
        seconds: None,
        peak_rss_mb: None,
        checks: Map::new(),
        failures: Vec::new(),
    };
    let result: anyhow::Result<()> = async {
        match phase {
            Phase::A | Phase::B | Phase::C => {
                let seconds = match phase {
                    Phase::A => phase_a(store, workload, actor).await?,
                    Phase::B => phase_b(store, workload, actor).await?,
                    _ => phase_c(opened.store.clone(), workload.clone(), actor, writers).await?,
                };
                run.seconds = Some(seconds);
                run.peak_rss_mb = peak_rss_mb();
                check_appended(&opened.store, workload, &mut run).await?;
            }
            Phase::D => {
                let (seconds, tally) = phase_read(&opened.store, workload, decode, None).await?;
                run.seconds = Some(seconds);
                run.peak_rss_mb = peak_rss_mb();
                check_read(&tally, workload, &mut run);
            }
            Phase::E => {
                let mut fold = Fold::new();
                let (seconds, tally) = phase_read(&opened.store, workload, decode, Some(&mut fold)).await?;
                run.seconds = Some(seconds);
                run.peak_rss_mb = peak_rss_mb();
                check_read(&tally, workload, &mut run);
                let digest = projection_digest(&fold);
                let matches = digest == workload.expected_digest;
                run.checks.insert("projection_keys".into(), json!(fold.len()));
                run.checks.insert("digest".into(), json!(digest));
                run.checks
                    .insert("digest_expected".into(), json!(workload.expected_digest));
                run.checks.insert("digest_source".into(), json!(workload.digest_source));
                run.checks.insert("digest_matches".into(), json!(matches));
                if tally.malformed > 0 {
                    run.failures
                        .push(format!("{} bodies lack the fold's fields", tally.malformed));
                }
                if !matches {
                    run.failures.push("the projection digest differs".into());
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        run.failures.push(format!("{error:#}"));
    }
    run
}

// ---------------------------------------------------------------------------------------------
// Peak RSS.

/// Resets the process's peak resident set size (Linux 4.0+); false when it cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set size in MiB (`VmHWM`), if the platform tells.
fn peak_rss_mb() -> Option<f64> {
    proc_status_mb("VmHWM:")
}

/// The process's resident set size in MiB now (`VmRSS`).
fn rss_mb() -> Option<f64> {
    proc_status_mb("VmRSS:")
}

/// A size field of `/proc/self/status`, in MiB to one decimal.
fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

// ---------------------------------------------------------------------------------------------
// The command.

/// One printed result, kept for the summary.
struct RunSummary {
    phase: Phase,
    events_per_s: Option<f64>,
    peak_rss_mb: Option<f64>,
    passed: bool,
}

struct Bench {
    args: StoreArgs,
    workload: Arc<Workload>,
    /// Resident size right after parsing the workload: the part of every run's peak that is
    /// the workload itself.
    workload_rss_mb: Option<f64>,
    cluster: Cluster,
    actor: Actor,
    results: Vec<RunSummary>,
}

impl Bench {
    /// Opens the database, runs the phase timed, checks it, prints its line.
    async fn measure(&mut self, phase: Phase, rep: u32, database: &Database, fill: bool) -> anyhow::Result<()> {
        let opened = self.cluster.open(database).await?;
        let (mut settings, durable) = self.cluster.settings(&opened).await?;
        if !durable {
            writeln!(
                std::io::stderr(),
                "warning: these settings do not make an acknowledged append durable: {}",
                Value::Object(settings.clone())
            )?;
        }
        settings.insert("acknowledged_is_durable".into(), json!(durable));
        settings.insert(
            "database".into(),
            json!(match phase {
                Phase::A | Phase::D | Phase::E => "fresh per repetition for A, then D, then E",
                Phase::B => "fresh per repetition for B",
                Phase::C => "fresh per repetition for C",
            }),
        );
        if fill {
            settings.insert("fill".into(), json!("phase A ran untimed into this database first"));
        }
        if matches!(phase, Phase::C) {
            settings.insert("writers".into(), json!(self.args.writers));
        }
        if matches!(phase, Phase::D | Phase::E) {
            settings.insert("page".into(), json!(PAGE));
            settings.insert("decode".into(), json!(self.args.decode.name()));
        }
        let rss_scope = if reset_peak_rss() {
            "VmHWM of the bench process from just before the clock until it stops; the parsed workload stays resident and counts"
        } else {
            "VmHWM of the bench process since it started (resetting it failed)"
        };
        settings.insert("peak_rss".into(), json!(rss_scope));
        settings.insert("rss_after_loading_workload_mb".into(), json!(self.workload_rss_mb));
        settings.insert("rss_at_start_mb".into(), json!(rss_mb()));
        let writers = usize::try_from(self.args.writers).unwrap_or(1);
        let run = run_phase(phase, &opened, &self.workload, &self.actor, writers, self.args.decode).await;
        let peak = run.peak_rss_mb;
        // What the store's committer did: transactions against appends shows how many
        // appends shared each commit.
        let store_stats = match (&opened.sqlite, &opened.postgres) {
            (Some(store), _) => {
                let stats = store.stats();
                Some(json!({
                    "transactions": stats.transactions,
                    "appends": stats.appends,
                    "events": stats.events,
                }))
            }
            (None, Some(store)) => {
                let stats = store.group_commit_stats();
                Some(json!({
                    "transactions": stats.transactions,
                    "appends": stats.appends,
                    "events": stats.events,
                    "from_memory": stats.from_memory,
                }))
            }
            (None, None) => None,
        };
        drop(opened);
        let passed = run.failures.is_empty();
        let events_per_s = run
            .seconds
            .filter(|_| passed)
            .map(|seconds| (run.events as f64 / seconds).round());
        let mut checks = run.checks;
        checks.insert("passed".into(), json!(passed));
        checks.insert("failures".into(), json!(run.failures));
        let mut line = json!({
            "key": format!("anquan-{}", self.args.backend.name()),
            "backend": self.args.backend.name(),
            "phase": phase.name(),
            "rep": rep,
            "events": run.events,
            "seconds": run.seconds,
            "events_per_s": events_per_s,
            "peak_rss_mb": peak,
            "checks": checks,
            "settings": settings,
            "workload_sha256": self.workload.sha256,
        });
        if let (Some(stats), Value::Object(line)) = (store_stats, &mut line) {
            line.insert("store_stats".into(), stats);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        self.results.push(RunSummary {
            phase,
            events_per_s,
            peak_rss_mb: peak,
            passed,
        });
        Ok(())
    }

    /// Phase A untimed, so that D or E alone has something to read.
    async fn fill(&self, database: &Database) -> anyhow::Result<()> {
        let opened = self.cluster.open(database).await?;
        phase_a(opened.store.as_ref(), &self.workload, &self.actor).await?;
        Ok(())
    }

    async fn repetition(&mut self, rep: u32, phases: &[Phase]) -> anyhow::Result<()> {
        let wants = |phase| phases.contains(&phase);
        if wants(Phase::A) || wants(Phase::D) || wants(Phase::E) {
            let database = self.cluster.create(&format!("rep{rep}-ade")).await?;
            let result = async {
                let fill = !wants(Phase::A);
                if fill {
                    self.fill(&database)
                        .await
                        .context("filling the database (untimed phase A)")?;
                }
                for phase in [Phase::A, Phase::D, Phase::E] {
                    if wants(phase) {
                        self.measure(phase, rep, &database, fill && phase != Phase::A).await?;
                    }
                }
                anyhow::Ok(())
            }
            .await;
            self.cluster.remove(database).await?;
            result?;
        }
        for (phase, label) in [(Phase::B, "b"), (Phase::C, "c")] {
            if wants(phase) {
                let database = self.cluster.create(&format!("rep{rep}-{label}")).await?;
                let result = self.measure(phase, rep, &database, false).await;
                self.cluster.remove(database).await?;
                result?;
            }
        }
        Ok(())
    }

    fn summary(&self, phases: &[Phase]) -> anyhow::Result<()> {
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "anquan-{} on {} events ({} repetitions):",
            self.args.backend.name(),
            self.workload.events.len(),
            self.args.reps
        )?;
        for &phase in phases {
            let runs: Vec<&RunSummary> = self.results.iter().filter(|result| result.phase == phase).collect();
            let mut rates: Vec<f64> = runs.iter().filter_map(|result| result.events_per_s).collect();
            rates.sort_by(f64::total_cmp);
            let failed = runs.iter().filter(|result| !result.passed).count();
            let peak = runs
                .iter()
                .filter_map(|result| result.peak_rss_mb)
                .fold(0.0_f64, f64::max);
            match (rates.first(), rates.last()) {
                (Some(min), Some(max)) => {
                    let median = if rates.len() % 2 == 1 {
                        rates[rates.len() / 2]
                    } else {
                        (rates[rates.len() / 2 - 1] + rates[rates.len() / 2]) / 2.0
                    };
                    writeln!(
                        err,
                        "  {}: median {median:.0} events/s (min {min:.0}, max {max:.0}), peak RSS {peak:.1} MiB, {failed} failed",
                        phase.name()
                    )?;
                }
                _ => writeln!(err, "  {}: no passing run, {failed} failed", phase.name())?,
            }
        }
        Ok(())
    }
}

/// Runs `anquan bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        BenchTarget::Store(args) => run_store(args).await,
    }
}

async fn run_store(args: StoreArgs) -> anyhow::Result<()> {
    let mut phases: Vec<Phase> = Vec::new();
    for phase in &args.phase {
        match phase {
            PhaseArg::A => phases.push(Phase::A),
            PhaseArg::B => phases.push(Phase::B),
            PhaseArg::C => phases.push(Phase::C),
            PhaseArg::D => phases.push(Phase::D),
            PhaseArg::E => phases.push(Phase::E),
            PhaseArg::All => phases.extend([Phase::A, Phase::B, Phase::C, Phase::D, Phase::E]),
        }
    }
    phases.sort();
    phases.dedup();
    if args.backend == BenchBackend::Sqlite && args.database.is_some() {
        bail!("--database is for --backend postgres; SQLite files go to --dir");
    }
    let workload = Arc::new(load_workload(&args.workload)?);
    let workload_rss_mb = rss_mb();
    let cluster = Cluster::new(&args).await?;
    let mut bench = Bench {
        workload,
        workload_rss_mb,
        cluster,
        actor: bench_actor()?,
        results: Vec::new(),
        args,
    };
    let mut outcome = Ok(());
    for rep in 1..=bench.args.reps {
        if let Err(error) = bench.repetition(rep, &phases).await {
            outcome = Err(error);
            break;
        }
    }
    bench.cluster.finish();
    outcome?;
    bench.summary(&phases)?;
    let failed = bench.results.iter().filter(|result| !result.passed).count();
    if failed > 0 {
        bail!("{failed} of {} runs failed their checks", bench.results.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{BodyDecode, ReadBody, projection_digest, with_database};

    const BODY: &str = r#"{"enterprise_id":"enterprise-0000","document_id":"0b8e90e9-f646-6d5f-dae8-5d0928398f9f","indicator":"R01","title":"Safety production responsibility system (2025)","valid_from":"2025-03-11","valid_until":"2026-03-11","sha256":"a02bff2f31bfa6af28b58ab4d47a9a78c4e08e67b822b63b4e6980ee651011cb","uploaded_by":"user-0218","uploaded_at":"2025-03-11T02:30:09Z","seq":7,"comment":"blocked forklift"}"#;

    #[test]
    fn both_decodes_take_the_same_sequence_and_fold_fields() {
        for decode in [BodyDecode::Value, BodyDecode::Typed] {
            let body = ReadBody::decode(BODY, decode, true).expect("a workload body decodes");
            assert_eq!(body.seq, Some(7), "{decode:?}");
            assert_eq!(
                body.fold,
                Some(("enterprise-0000".to_owned(), "R01".to_owned(), "2026-03-11".to_owned())),
                "{decode:?}"
            );
            let without_fold = ReadBody::decode(BODY, decode, false).expect("a workload body decodes");
            assert_eq!((without_fold.seq, without_fold.fold), (Some(7), None), "{decode:?}");
        }
    }

    #[test]
    fn a_body_without_a_field_is_malformed_or_refused_never_folded() {
        let without_indicator = BODY.replace(r#""indicator":"R01","#, "");
        let value = ReadBody::decode(&without_indicator, BodyDecode::Value, true).expect("still JSON");
        assert_eq!(value.fold, None);
        assert!(ReadBody::decode(&without_indicator, BodyDecode::Typed, true).is_err());
        assert!(ReadBody::decode("{not json", BodyDecode::Value, false).is_err());
    }

    #[test]
    fn the_digest_hashes_sorted_lines() {
        let mut fold = BTreeMap::new();
        fold.insert(("s-1".to_owned(), "R02".to_owned()), (2, "2025-01-01".to_owned()));
        fold.insert(("s-1".to_owned(), "R01".to_owned()), (1, "2024-01-01".to_owned()));
        // sha256("s-1|R01|1|2024-01-01\ns-1|R02|2|2025-01-01\n")
        let expected = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(b"s-1|R01|1|2024-01-01\ns-1|R02|2|2025-01-01\n"))
        };
        assert_eq!(projection_digest(&fold), expected);
    }

    #[test]
    fn with_database_replaces_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
