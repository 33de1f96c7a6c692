//! Auditors' commands: `replay`, `verify`, `export` and `verify-export`, over any audited
//! stream: an enterprise's, an agency's or the rule-set log (one path, [`StreamKind`] says
//! which). They read the event store directly (never a read model): the hash chain is over the
//! stored events.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use anquan_domain::rules::log::RULE_SET_STREAM;
use anquan_domain::{AgencyId, EnterpriseId};
use anquan_event_store::{EventStore, RecordedEvent, StreamId};
use anquan_projections::audit::{self, Cut, HistoryLine, StreamVerification};

use crate::progress::Progress;
use crate::rulesets::{StoreArgs, registry};

/// Arguments of `anquan replay enterprise|agency <id>` and `anquan replay rule-set`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Whose history: `enterprise`, `agency` or `rule-set` (the rule-set log).
    pub kind: StreamKind,
    /// The enterprise's or agency's id; none for `rule-set` (there is one rule-set log).
    pub id: Option<String>,
    /// Print the state at this instant instead of the events, from the events recorded at or
    /// before it (RFC 3339, e.g. 2026-03-01T00:00:00Z): an enterprise's status, an agency's
    /// state as its aggregate folds it, or the rule-set versions published and the live one.
    #[arg(long)]
    pub as_of: Option<DateTime<Utc>>,
    /// Evaluate an enterprise's `--as-of` with this rule-set version (default: the one in force
    /// at that instant by the rule-set log, loaded from the log's publication when no folder
    /// holds it).
    #[arg(long)]
    pub rule_set: Option<String>,
    /// Cut the log by the instant events say they happened (`occurred_at`) instead of when
    /// they were recorded: for histories loaded after the fact, such as the demo dataset.
    #[arg(long)]
    pub by_occurred: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Which audited stream a history is: each kind names its streams the way its aggregate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamKind {
    /// An enterprise's stream, `enterprise-<id>`.
    Enterprise,
    /// An agency's stream, `agency-<id>`.
    Agency,
    /// The rule-set log, `rulesets`: every publication and promotion.
    RuleSet,
}

impl StreamKind {
    /// The stream of `id`: an enterprise or agency needs its id; the rule-set log is one stream
    /// and takes none.
    pub fn stream(self, id: Option<&str>) -> anyhow::Result<StreamId> {
        let name = match (self, id) {
            (StreamKind::Enterprise, Some(id)) => {
                let enterprise_id: EnterpriseId =
                    id.parse().with_context(|| format!("{id} is not an enterprise id"))?;
                anquan_domain::enterprise::stream_name(enterprise_id)
            }
            (StreamKind::Agency, Some(id)) => {
                let agency_id: AgencyId = id.parse().with_context(|| format!("{id} is not an agency id"))?;
                anquan_domain::agency::stream_name(agency_id)
            }
            (StreamKind::RuleSet, None) => RULE_SET_STREAM.to_owned(),
            (StreamKind::Enterprise | StreamKind::Agency, None) => {
                anyhow::bail!("{} needs the {}'s id", self.name(), self.name())
            }
            (StreamKind::RuleSet, Some(id)) => {
                anyhow::bail!("rule-set takes no id (there is one rule-set log), got {id}")
            }
        };
        Ok(StreamId::parse(&name)?)
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Enterprise => "enterprise",
            StreamKind::Agency => "agency",
            StreamKind::RuleSet => "rule-set",
        }
    }

    /// Reads the whole stream in version order; an empty stream is an error naming it.
    async fn read_history(
        self,
        store: &dyn EventStore,
        id: Option<&str>,
    ) -> anyhow::Result<(StreamId, Vec<RecordedEvent>)> {
        let stream = self.stream(id)?;
        let events = audit::read_stream_all(store, &stream)
            .await
            .with_context(|| format!("cannot read stream {stream}"))?;
        match (self, id) {
            (StreamKind::RuleSet, _) | (_, None) => {
                anyhow::ensure!(!events.is_empty(), "the rule-set log has no events")
            }
            (_, Some(id)) => anyhow::ensure!(!events.is_empty(), "{} {id} has no events", self.name()),
        }
        Ok((stream, events))
    }
}

/// Arguments of `anquan verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Verify only this stream (e.g. `enterprise-<id>`, `agency-<id>`, `rulesets`); default:
    /// every stream of the log.
    #[arg(long)]
    pub stream: Option<String>,
    /// Also check the whole log against anchors kept elsewhere: a file saved from
    /// `GET /anchors` (or an export's `anchors.json`), or that `http://` URL. Every anchor's
    /// signature must verify with its document's keys, its root must be the log's and every
    /// stream head it recorded must still be in the log.
    #[arg(long)]
    pub anchors: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `anquan export enterprise|agency <id>` and `anquan export rule-set`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Whose history: `enterprise`, `agency` or `rule-set`.
    pub kind: StreamKind,
    /// The enterprise's or agency's id; none for `rule-set`.
    pub id: Option<String>,
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

fn write_line(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value).context("cannot encode a line")?;
    out.write_all(b"\n").context("cannot write")?;
    Ok(())
}

/// `anquan replay enterprise|agency <id> [--as-of T]`, `anquan replay rule-set [--as-of T]`.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rule_set.is_none() || args.kind == StreamKind::Enterprise,
        "--rule-set evaluates an enterprise's status; {} has no status to evaluate",
        args.kind.name()
    );
    let (event_store, _read_models) = args.store.open().await?;
    let (_, events) = args.kind.read_history(event_store.as_ref(), args.id.as_deref()).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.as_of {
        None => {
            for line in audit::history_lines(&events) {
                write_line(&mut out, &line)?;
            }
        }
        Some(at) => {
            let value = as_of(&args, event_store.as_ref(), &events, at).await?;
            write_line(&mut out, &value)?;
        }
    }
    out.flush().context("cannot write")?;
    Ok(())
}

/// The state of a history at `at`, as one JSON object.
async fn as_of(
    args: &ReplayArgs,
    event_store: &dyn EventStore,
    events: &[RecordedEvent],
    at: DateTime<Utc>,
) -> anyhow::Result<serde_json::Value> {
    let cut = if args.by_occurred { Cut::Occurred } else { Cut::Recorded };
    Ok(match args.kind {
        StreamKind::Enterprise => {
            let registry = registry(&args.store, event_store).await?;
            let loaded = match &args.rule_set {
                Some(version) => registry
                    .get(version)
                    .with_context(|| format!("rule set {version} is not loaded"))?,
                None => registry.in_force_at(at).with_context(|| {
                    format!(
                        "the rule set in force at {at} is neither under the rules root nor carried by the rule-set log"
                    )
                })?,
            };
            let rules = loaded.rules.clone();
            let status = match cut {
                Cut::Recorded => audit::status_as_of(events, &rules, at),
                Cut::Occurred => audit::status_as_of_occurred(events, &rules, at),
            };
            serde_json::json!({
                "enterprise_id": args.id,
                "at": at,
                "rule_set": rules.version,
                "rule_set_digest": loaded.digest,
                "events_recorded_by_then": status.events,
                "compliance": status.report,
                "risk": status.risk,
            })
        }
        StreamKind::Agency => {
            let agency = audit::agency_as_of(events, at, cut);
            serde_json::json!({
                "agency_id": args.id,
                "at": at,
                "events_recorded_by_then": agency.events,
                "registered": agency.state.registration.is_some(),
                "agency": agency.state,
            })
        }
        StreamKind::RuleSet => {
            let log = audit::rule_sets_as_of(events, at, cut);
            serde_json::json!({
                "stream_id": RULE_SET_STREAM,
                "at": at,
                "events_recorded_by_then": log.events,
                "published": log.published,
                "promotions": log.promotions,
                "live": log.live,
            })
        }
    })
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
/// Shows its progress (reading the log, then verifying the streams) on stderr.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let (event_store, _read_models) = args.store.open().await?;
    let started = std::time::Instant::now();
    let mut broken = 0usize;
    let mut events = 0u64;
    // Commit positions read against the head's: events on a backend with dense positions.
    let head = || event_store.head().borrow().map_or(0, |head| head.commit);
    let display = Progress::new("list streams", "positions", head());
    let streams = match &args.stream {
        Some(stream) => vec![(StreamId::parse(stream)?, 0)],
        None => {
            let (streams, gaps) = audit::list_streams(&event_store, |read| display.update(read, head())).await?;
            match gaps {
                Some(gaps) => {
                    for (from, to) in &gaps {
                        broken += 1;
                        eprintln!("BROKEN log: positions {from} to {to} are absent (missing events)");
                    }
                }
                None => eprintln!(
                    "log gaps not checked: the {} backend does not promise dense positions, so a \
                     skipped position is not a missing event",
                    event_store.backend_name()
                ),
            }
            streams
        }
    };
    let total = streams.len();
    display.phase("verify", "streams", total as u64);
    for (stream, _) in &streams {
        let verification = audit::verify_stream_in(event_store.as_ref(), stream).await?;
        events += verification.events_checked;
        if !verification.intact() {
            broken += 1;
            report_stream(&verification);
        }
        display.message(format!("{events} events"));
        display.advance(1);
    }
    display.finish();
    let mut anchors_checked = None;
    if let Some(source) = &args.anchors {
        let document = crate::anchors::load_document(source).await?;
        let leaves = anquan_projections::anchors::read_leaves(&event_store, None).await?;
        let findings = anquan_projections::anchors::check_log(&document, &leaves);
        for finding in &findings {
            eprintln!("BROKEN {finding}");
        }
        broken += findings.len();
        anchors_checked = Some(document.anchors.len());
    }
    let summary = serde_json::json!({
        "streams": total, "events": events, "broken": broken,
        "anchors": anchors_checked,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let stdout = std::io::stdout();
    write_line(&mut stdout.lock(), &summary)?;
    anyhow::ensure!(
        broken == 0,
        "{broken} broken chain(s), gap(s) or disagreement(s) with the anchors found"
    );
    Ok(())
}

/// `anquan export enterprise|agency <id> --out DIR`, `anquan export rule-set --out DIR`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let (event_store, _read_models) = args.store.open().await?;
    let (stream, events) = args.kind.read_history(event_store.as_ref(), args.id.as_deref()).await?;
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
    // The anchors (all of them: they are public) and, for every event the latest anchor
    // covers, its inclusion proof against that anchor.
    let anchors = anquan_projections::anchors::read_anchors(event_store.as_ref()).await?;
    let mut proofs = std::io::BufWriter::new(create(&args.out.join("proofs.jsonl"))?);
    let mut proven = 0usize;
    if let Some(latest) = anchors.iter().max_by_key(|anchor| anchor.log_size) {
        let leaves = anquan_projections::anchors::read_leaves(&event_store, Some(latest.position)).await?;
        match anquan_projections::anchors::AnchoredTree::new(latest, &leaves) {
            Some(tree) => {
                for event in &events {
                    if let Some(proof) = tree.proof(stream.as_str(), event.version.0) {
                        write_line(&mut proofs, &proof)?;
                        proven += 1;
                    }
                }
            }
            None => eprintln!(
                "the log does not match anchor {} (run `anquan verify --anchors`): the export has no inclusion proofs",
                latest.sequence
            ),
        }
    }
    proofs.flush().context("cannot write proofs.jsonl")?;
    let document = anquan_projections::anchors::AnchorsDocument::of(anchors);
    let mut anchors_file = create(&args.out.join("anchors.json"))?;
    write_line(&mut anchors_file, &document)?;
    let manifest = serde_json::json!({
        "stream_id": stream.to_string(),
        "events": events.len(),
        "head_hash": verification.head,
        "intact_when_exported": verification.intact(),
        "anchors": document.anchors.len(),
        "events_with_inclusion_proofs": proven,
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
