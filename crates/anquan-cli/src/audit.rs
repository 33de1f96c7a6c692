//! Auditors' commands: `replay enterprise`, `verify`, `export enterprise` and `verify-export`.
//! They read the event store directly (never a read model): the hash chain is over the stored
//! events.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use anquan_domain::EnterpriseId;
use anquan_event_store::{EventStore, StreamId};
use anquan_projections::audit::{self, HistoryLine, StreamVerification};

use crate::rulesets::{StoreArgs, registry};

/// Arguments of `anquan replay enterprise`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// `enterprise`: the only kind of history replayed so far.
    pub kind: EntityKind,
    /// The enterprise id.
    pub id: String,
    /// Print the status at this instant instead of the events: only the events recorded at
    /// or before it are folded (RFC 3339, e.g. 2026-03-01T00:00:00Z).
    #[arg(long)]
    pub as_of: Option<DateTime<Utc>>,
    /// Evaluate `--as-of` with this rule-set version (default: the live one).
    #[arg(long)]
    pub rule_set: Option<String>,
    /// Cut the log by the instant events say they happened (`occurred_at`) instead of when
    /// they were recorded: for histories loaded after the fact, such as the demo dataset.
    #[arg(long)]
    pub by_occurred: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What a history belongs to.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EntityKind {
    Enterprise,
}

/// Arguments of `anquan verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Verify only this stream (e.g. `enterprise-<id>`); default: every stream of the log.
    #[arg(long)]
    pub stream: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `anquan export enterprise`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    pub kind: EntityKind,
    /// The enterprise id.
    pub id: String,
    /// The directory to write `events.jsonl`, `files.txt` and `manifest.json` into.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `anquan verify-export`.
#[derive(Debug, clap::Args)]
pub struct VerifyExportArgs {
    /// A directory written by `anquan export`.
    pub dir: PathBuf,
}

fn enterprise_stream(id: &str) -> anyhow::Result<StreamId> {
    let enterprise_id: EnterpriseId = id.parse().with_context(|| format!("{id} is not an enterprise id"))?;
    Ok(StreamId::parse(&anquan_domain::enterprise::stream_name(enterprise_id))?)
}

fn write_line(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value).context("cannot encode a line")?;
    out.write_all(b"\n").context("cannot write")?;
    Ok(())
}

/// `anquan replay enterprise <id> [--as-of T]`.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let EntityKind::Enterprise = args.kind;
    let stream = enterprise_stream(&args.id)?;
    let (event_store, read_models) = args.store.open().await?;
    let events = audit::read_stream_all(event_store.as_ref(), &stream).await?;
    anyhow::ensure!(!events.is_empty(), "enterprise {} has no events", args.id);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.as_of {
        None => {
            for line in audit::history_lines(&events) {
                write_line(&mut out, &line)?;
            }
        }
        Some(at) => {
            let registry = registry(&args.store, event_store.as_ref()).await?;
            let rules = match &args.rule_set {
                Some(version) => registry
                    .get(version)
                    .map(|loaded| loaded.rules.clone())
                    .with_context(|| format!("rule set {version} is not loaded"))?,
                None => registry.active(),
            };
            let status = if args.by_occurred {
                audit::status_as_of_occurred(&events, &rules, at)
            } else {
                audit::status_as_of(&events, &rules, at)
            };
            let value = serde_json::json!({
                "enterprise_id": args.id,
                "at": at,
                "rule_set": rules.version,
                "events_recorded_by_then": status.events,
                "compliance": status.report,
                "risk": status.risk,
            });
            write_line(&mut out, &value)?;
        }
    }
    drop(read_models);
    out.flush().context("cannot write")?;
    Ok(())
}

fn report_stream(verification: &StreamVerification) {
    for chain_break in &verification.breaks {
        eprintln!(
            "BROKEN {} version {}: {} ({})",
            verification.stream_id,
            chain_break.version,
            chain_break.kind.name(),
            chain_break.detail
        );
    }
}

/// `anquan verify [--stream S]`: recomputes every stream's chain; fails when one is broken.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let (event_store, _read_models) = args.store.open().await?;
    let started = std::time::Instant::now();
    let mut broken = 0usize;
    let mut events = 0u64;
    let streams = match &args.stream {
        Some(stream) => vec![(StreamId::parse(stream)?, 0)],
        None => {
            let (streams, gaps) = audit::list_streams(event_store.as_ref(), |read| {
                if read % 100_000 == 0 {
                    eprintln!("listing streams: {read} events read");
                }
            })
            .await?;
            for (from, to) in &gaps {
                broken += 1;
                eprintln!("BROKEN log: positions {from} to {to} are absent (missing events)");
            }
            streams
        }
    };
    let total = streams.len();
    for (index, (stream, _)) in streams.iter().enumerate() {
        let verification = audit::verify_stream_in(event_store.as_ref(), stream).await?;
        events += verification.events_checked;
        if !verification.intact() {
            broken += 1;
            report_stream(&verification);
        }
        if (index + 1) % 1_000 == 0 {
            let rate = events as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON);
            eprintln!(
                "verified {} of {total} streams, {events} events ({rate:.0} events/s)",
                index + 1
            );
        }
    }
    let summary = serde_json::json!({
        "streams": total, "events": events, "broken": broken,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let stdout = std::io::stdout();
    write_line(&mut stdout.lock(), &summary)?;
    anyhow::ensure!(broken == 0, "{broken} broken chain(s) or gap(s) found");
    Ok(())
}

/// `anquan export enterprise <id> --out DIR`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let EntityKind::Enterprise = args.kind;
    let stream = enterprise_stream(&args.id)?;
    let (event_store, _read_models) = args.store.open().await?;
    let events = audit::read_stream_all(event_store.as_ref(), &stream).await?;
    anyhow::ensure!(!events.is_empty(), "enterprise {} has no events", args.id);
    let verification = audit::verify_events(&stream, &events);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let lines = audit::history_lines(&events);
    let mut file = std::io::BufWriter::new(create(&args.out.join("events.jsonl"))?);
    for line in &lines {
        write_line(&mut file, line)?;
    }
    file.flush().context("cannot write events.jsonl")?;
    let mut files = std::io::BufWriter::new(create(&args.out.join("files.txt"))?);
    for reference in audit::referenced_files(&lines) {
        writeln!(
            files,
            "{}  {}  {}  {}",
            reference.sha256, reference.size_bytes, reference.media_type, reference.file_name
        )
        .context("cannot write files.txt")?;
    }
    files.flush().context("cannot write files.txt")?;
    let manifest = serde_json::json!({
        "stream_id": stream.to_string(),
        "events": events.len(),
        "head_hash": verification.head,
        "intact_when_exported": verification.intact(),
        "exported_at": Utc::now(),
        "hash_algorithm": "anquan hash chain v1: see README.md, 'Verifying an export offline'",
    });
    let mut manifest_file = create(&args.out.join("manifest.json"))?;
    write_line(&mut manifest_file, &manifest)?;
    eprintln!(
        "exported {} events of {stream} to {} (head {})",
        events.len(),
        args.out.display(),
        verification.head.unwrap_or_default()
    );
    Ok(())
}

fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Verifies an export directory: the chain of `events.jsonl`, the head against the manifest,
/// and `files.txt` against the files the events reference. Returns the verification.
pub fn verify_export_dir(dir: &Path) -> anyhow::Result<StreamVerification> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).context("cannot read events.jsonl")?;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line: HistoryLine =
            serde_json::from_str(line).with_context(|| format!("events.jsonl line {} is malformed", number + 1))?;
        lines.push(line);
    }
    let events: Vec<_> = lines.iter().map(|line| line.event.clone()).collect();
    let stream = events
        .first()
        .map(|event| event.stream_id.clone())
        .context("the export is empty")?;
    let mut verification = audit::verify_events(&stream, &events);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).context("cannot read manifest.json")?)
            .context("manifest.json is malformed")?;
    if manifest["head_hash"].as_str() != verification.head.as_deref() {
        verification.breaks.push(audit::ChainBreakReport {
            version: events.len() as u64,
            kind: audit::BreakKind::Missing,
            detail: format!(
                "the manifest's head hash {} is not the last event's {}",
                manifest["head_hash"],
                verification.head.clone().unwrap_or_default()
            ),
        });
    }
    let listed: std::collections::BTreeSet<String> = std::fs::read_to_string(dir.join("files.txt"))
        .context("cannot read files.txt")?
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    let decoded: Vec<_> = events.iter().filter_map(|event| event.decode().ok()).collect();
    let referenced: std::collections::BTreeSet<String> = decoded
        .iter()
        .flat_map(audit::file_refs)
        .map(|file| file.sha256)
        .collect();
    anyhow::ensure!(
        listed == referenced,
        "files.txt does not list exactly the files the events reference"
    );
    Ok(verification)
}

/// `anquan verify-export DIR`.
pub fn verify_export(args: &VerifyExportArgs) -> anyhow::Result<()> {
    let verification = verify_export_dir(&args.dir)?;
    report_stream(&verification);
    let stdout = std::io::stdout();
    write_line(
        &mut stdout.lock(),
        &serde_json::json!({
            "stream": verification.stream_id, "events": verification.events_checked,
            "intact": verification.intact(), "head": verification.head,
        }),
    )?;
    anyhow::ensure!(verification.intact(), "the export's chain is broken");
    Ok(())
}

/// Reads one enterprise's stream and verifies it (for callers holding a store).
pub async fn verify_enterprise(store: &dyn EventStore, id: &str) -> anyhow::Result<StreamVerification> {
    Ok(audit::verify_stream_in(store, &enterprise_stream(id)?).await?)
}
