//! Analysts' commands: `anquan projections list | publish | rebuild | diff | promote | status`, and the
//! loading of every rule-set folder under the rules root (`projections/` by default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use chrono::{DateTime, Utc};

use anquan_domain::Actor;
use anquan_domain::rules::log::RuleSetLog;
use anquan_domain::rules::{RULE_SET_FILES, RuleSetFiles};
use anquan_event_store::{
    AppendMetadata, AppendRequest, EventStore, LeaseTerm, LogDistance, NewEvent, ReadModelStore, StreamState,
    StreamVersion,
};
use anquan_event_store_sqlite::{ReadModelDurability, SqliteReadModelStore};
use anquan_projections::leadership::{self, Leadership};
use anquan_projections::rule_sets::rebuild::fold_to_end;
use anquan_projections::rule_sets::snapshot::{self, SnapshotOutcome};
use anquan_projections::rule_sets::{RuleSetRegistry, read_log, rule_set_stream};
use anquan_projections::{AgencyProjection, ComplianceProjection, LogTallyProjection, Projection};

use crate::config::Storage;
use crate::progress::Progress;

/// Where the stores and the rule-set folders are, for the operator commands.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Data directory of the embedded store. Default: `./anquan-data`.
    #[arg(long, global = true, env = "ANQUAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://…`); default: the embedded SQLite file.
    #[arg(
        long = "database",
        global = true,
        env = "ANQUAN_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// A KurrentDB connection string for the events (`kurrentdb://…`); read models then go to
    /// the PostgreSQL `--database`. Needs a build with the cargo feature `kurrentdb`.
    #[arg(
        long = "event-store",
        global = true,
        env = "ANQUAN_EVENT_STORE_URL",
        hide_env_values = true
    )]
    pub event_store_url: Option<String>,
    /// The folder holding one sub-folder per rule-set version (`v1/`, `v2/`, …). Default:
    /// `./projections` when it exists; rule set v1 is always built in.
    #[arg(long, global = true, env = "ANQUAN_RULES_ROOT")]
    pub rules_root: Option<PathBuf>,
}

impl StoreArgs {
    fn storage(&self) -> anyhow::Result<Storage> {
        let data_dir = self.data_dir.clone().unwrap_or_else(crate::default_data_dir);
        let storage = crate::config::storage(self.database_url.clone(), self.event_store_url.clone(), &data_dir)?;
        if let Storage::Embedded { .. } = storage {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        }
        Ok(storage)
    }

    /// Opens the configured stores.
    pub async fn open(&self) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn ReadModelStore>)> {
        crate::serve::open_stores(&self.storage()?).await
    }
}

/// Reads the files of one rule-set folder.
pub fn read_rule_set_files(directory: &Path) -> anyhow::Result<RuleSetFiles> {
    let mut files = RuleSetFiles::new();
    for name in RULE_SET_FILES {
        let path = directory.join(name);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read rule file {}", path.display()))?;
        files.insert(name.to_owned(), text);
    }
    Ok(files)
}

/// Reads every version folder (a sub-folder with a `ruleset.toml`) under `root`, by name.
pub fn read_rule_set_folders(root: Option<&Path>) -> anyhow::Result<BTreeMap<String, RuleSetFiles>> {
    let root = match root {
        Some(root) => root.to_path_buf(),
        None if Path::new("projections").is_dir() => PathBuf::from("projections"),
        None => return Ok(BTreeMap::new()),
    };
    let mut folders = BTreeMap::new();
    let entries = std::fs::read_dir(&root).with_context(|| format!("cannot read rules root {}", root.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read rules root {}", root.display()))?
            .path();
        if !path.join("ruleset.toml").is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        folders.insert(name.to_owned(), read_rule_set_files(&path)?);
    }
    Ok(folders)
}

/// The registry of every folder plus the built-in v1, switched to the version the log says is
/// live.
pub async fn registry(args: &StoreArgs, store: &dyn EventStore) -> anyhow::Result<RuleSetRegistry> {
    let registry = RuleSetRegistry::new(
        read_rule_set_folders(args.rules_root.as_deref())?,
        &anquan_domain::rules::builtin_v1_files(),
    )?;
    let mut log = RuleSetLog::default();
    read_log(store, &mut log, StreamVersion::FIRST).await?;
    registry.apply_log(&log)?;
    Ok(registry)
}

/// The registry `anquan serve` starts with: every folder under `ANQUAN_RULES_ROOT` (default
/// `./projections`), the built-in v1, and the configured rule set active until the log names
/// a promoted one (the follower switches it then).
pub fn serve_registry(configured: &anquan_domain::rules::RuleSet) -> anyhow::Result<RuleSetRegistry> {
    let root = std::env::var_os("ANQUAN_RULES_ROOT").map(PathBuf::from);
    let folders = read_rule_set_folders(root.as_deref())?;
    let builtin = anquan_domain::rules::builtin_v1_files();
    let files = [folders.get(&configured.version), Some(&builtin)]
        .into_iter()
        .flatten()
        .find(|files| anquan_domain::rules::RuleSet::from_files(files).is_ok_and(|rules| &rules == configured))
        .cloned()
        .context(
            "the rule set given by --rules must also be a version folder under the rules root (ANQUAN_RULES_ROOT)",
        )?;
    Ok(RuleSetRegistry::new(folders, &files)?)
}

/// `anquan projections …`.
#[derive(Debug, clap::Args)]
pub struct ProjectionsArgs {
    #[command(subcommand)]
    pub command: ProjectionsCommand,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What to do with rule sets and read models.
#[derive(Debug, clap::Subcommand)]
pub enum ProjectionsCommand {
    /// Lists the rule-set versions, with the live one and the snapshots built.
    List,
    /// Publishes a version: records its files and their digest in the log (once; a version's
    /// files can never change afterwards), so the log alone reproduces any status evaluated
    /// under it. A version published before files were recorded is published again with them.
    Publish { version: String },
    /// Builds a version's rule-dependent views beside the live ones (publishing it if needed),
    /// and the live version's at the same instant, so they can be diffed. With
    /// `--read-models`, also refolds the fact read models from the log (into `--into`, a
    /// fresh SQLite file, when given), reporting events/s. Ctrl-C stops between batches; the
    /// same command resumes.
    Rebuild {
        /// The version to build (default: the live one).
        #[arg(long = "rules")]
        version: Option<String>,
        /// The instant to evaluate at (default: now).
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// Also refold the fact read models from the log.
        #[arg(long)]
        read_models: bool,
        /// With `--read-models`: a SQLite file to rebuild into instead of the live database.
        #[arg(long)]
        into: Option<PathBuf>,
        /// Folding into the live database takes the read models' projection lease, and is
        /// refused while a running node holds it; with this flag it takes the lease from the
        /// node (which follows until the rebuild releases it).
        #[arg(long)]
        take_over: bool,
    },
    /// Reports the enterprises whose status, indicators or colour change from `a` to `b`, and
    /// the town metrics that move.
    Diff {
        a: String,
        b: String,
        /// Print the diff as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Makes a published version the live one: appends `RuleSetPromoted`; running services
    /// switch on their next read of the rule-set stream, without a restart.
    Promote { version: String },
    /// Shows each projection's checkpoint, how far behind the log's head it is and the next
    /// event it folds (the failing one when it is stalled). Whether a projection is stalled,
    /// its error and since when are known only to a running service (`/readyz`, `health`).
    Status,
}

/// `anquan projections status`: one line per projection, from the store alone.
async fn status(event_store: &dyn EventStore, read_models: &dyn ReadModelStore) -> anyhow::Result<()> {
    let head = *event_store.head().borrow();
    println_out(&format!(
        "log head: {}",
        head.map_or_else(|| "empty".to_owned(), |head| head.to_string())
    ))?;
    for name in [
        ComplianceProjection::NAME,
        AgencyProjection::NAME,
        LogTallyProjection::NAME,
    ] {
        let checkpoint = read_models
            .checkpoint(name)
            .await
            .with_context(|| format!("cannot read the checkpoint of projection {name}"))?;
        let behind = match event_store.traits().distance(checkpoint, head) {
            LogDistance::Events(events) => format!("{events} events"),
            LogDistance::Positions(positions) => format!("{positions} positions"),
        };
        let next = event_store
            .read_all(checkpoint, 1)
            .await
            .context("cannot read the event log")?
            .into_iter()
            .next();
        let next = next.map_or_else(
            || "caught up".to_owned(),
            |event| {
                format!(
                    "{behind} events behind; next event {} {} {}",
                    event.position, event.stream_id, event.event_type
                )
            },
        );
        let checkpoint = checkpoint.map_or_else(|| "none".to_owned(), |checkpoint| checkpoint.to_string());
        println_out(&format!("{name}  checkpoint {checkpoint}  {next}"))?;
    }
    for lease in read_models
        .leases()
        .await
        .context("cannot read the projection leases")?
    {
        let state = if lease.is_held() {
            format!("held by {} for {} ms more", lease.holder, lease.expires_in_ms)
        } else if lease.holder.is_empty() {
            "released".to_owned()
        } else {
            format!("expired (last held by {})", lease.holder)
        };
        println_out(&format!("lease {}  term {}  {state}", lease.group, lease.term))?;
    }
    println_out("stalled or not, the error and since when: ask a running service (/readyz, GraphQL health)")?;
    Ok(())
}

/// Runs `anquan projections …`.
pub async fn run(args: ProjectionsArgs) -> anyhow::Result<()> {
    let (event_store, read_models) = args.store.open().await?;
    let registry = registry(&args.store, event_store.as_ref()).await?;
    match args.command {
        ProjectionsCommand::List => {
            for (version, loaded) in registry.versions() {
                let built = snapshot::snapshot_instant(read_models.as_ref(), &version).await?;
                let live = if version == registry.active_version() {
                    " (live)"
                } else {
                    ""
                };
                let built = built.map_or_else(|| "no snapshot".to_owned(), |at| format!("snapshot at {at}"));
                println_out(&format!(
                    "{version}{live}  {}  {}  {built}",
                    loaded.digest, loaded.rules.title
                ))?;
            }
            Ok(())
        }
        ProjectionsCommand::Publish { version } => publish(event_store.as_ref(), &registry, &version).await,
        ProjectionsCommand::Status => status(event_store.as_ref(), read_models.as_ref()).await,
        ProjectionsCommand::Promote { version } => {
            publish(event_store.as_ref(), &registry, &version).await?;
            append_rule_set_event(event_store.as_ref(), |log, now| log.promote(&version, now)).await?;
            eprintln!("{version} promoted: services switch on their next read of the rule-set stream");
            Ok(())
        }
        ProjectionsCommand::Rebuild {
            version,
            at,
            read_models: refold,
            into,
            take_over,
        } => {
            let cancel = cancel_on_ctrl_c();
            // With `--into`, the whole set (facts and snapshots) goes to the fresh database,
            // written without fsyncs until the facts are folded: the log can always rebuild it.
            let into = match (into, refold) {
                (Some(path), true) => Some(SqliteReadModelStore::open_with(path, ReadModelDurability::Rebuild).await?),
                (Some(_), false) => anyhow::bail!("--into needs --read-models"),
                (None, _) => None,
            };
            let read_models: Arc<dyn ReadModelStore> = match &into {
                Some(into) => Arc::new(into.clone()),
                None => read_models,
            };
            // Into the live database, the fold holds the projection lease like a node's runner.
            let live = into.is_none();
            // Without `--read-models`, the facts are folded only where no service has folded the
            // log into this database yet: the snapshots need them.
            if refold || read_models.checkpoint(ComplianceProjection::NAME).await?.is_none() {
                let now_metrics = NowMetrics::live(&registry)?;
                rebuild_read_models(
                    event_store.as_ref(),
                    &read_models,
                    &now_metrics,
                    live,
                    take_over,
                    &cancel,
                )
                .await?;
            }
            if refold {
                if let Some(into) = &into {
                    into.make_durable().await?;
                }
                if cancel.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            let version = version.unwrap_or_else(|| registry.active_version());
            let at = at.unwrap_or_else(|| anquan_event_store::hash_chain::canonical_time(Utc::now()));
            publish(event_store.as_ref(), &registry, &version).await?;
            let live = registry.active_version();
            let mut versions = vec![version.clone()];
            if live != version {
                versions.push(live);
            }
            for version in versions {
                let loaded = registry
                    .get(&version)
                    .with_context(|| format!("rule set {version} is not loaded"))?;
                let display = Progress::new(&format!("{version} snapshot"), "enterprises", 0);
                let outcome = snapshot::materialise(
                    read_models.as_ref(),
                    &loaded.rules,
                    &loaded.digest,
                    at,
                    cancel.clone(),
                    |progress| display.update(progress.done, progress.total),
                )
                .await?;
                display.finish();
                match outcome {
                    SnapshotOutcome::Complete { enterprises, elapsed } => {
                        eprintln!(
                            "{version}: snapshot at {at} complete, {enterprises} enterprises in {:.2}s",
                            elapsed.as_secs_f64()
                        );
                    }
                    SnapshotOutcome::Cancelled {
                        last_enterprise,
                        enterprises,
                    } => {
                        eprintln!(
                            "{version}: cancelled after {enterprises} enterprises (last {last_enterprise}); run the same command to resume"
                        );
                        return Ok(());
                    }
                }
            }
            Ok(())
        }
        ProjectionsCommand::Diff { a, b, json } => {
            let diff = snapshot::diff(read_models.as_ref(), &a, &b).await?;
            if json {
                println_out(&serde_json::to_string_pretty(&diff)?)?;
                return Ok(());
            }
            println_out(&format!(
                "{a} → {b} at {}: {} of {} enterprises change",
                diff.at,
                diff.enterprises.len(),
                diff.enterprises_compared
            ))?;
            for change in &diff.enterprises {
                let mut parts = Vec::new();
                if let Some((x, y)) = change.responsibility {
                    parts.push(format!("responsibility {x} → {y}"));
                }
                if let Some((x, y)) = &change.colour {
                    parts.push(format!("colour {x} → {y}"));
                }
                for (code, (x, y)) in &change.indicators {
                    parts.push(format!("{code} {x} → {y}"));
                }
                println_out(&format!(
                    "  {} ({}): {}",
                    change.enterprise_id,
                    change.town,
                    parts.join(", ")
                ))?;
            }
            for town in &diff.towns {
                println_out(&format!(
                    "  town {} {}: {} → {}",
                    town.town, town.metric, town.a, town.b
                ))?;
            }
            Ok(())
        }
    }
}

fn println_out(line: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(line.as_bytes()).context("cannot write")?;
    out.write_all(b"\n").context("cannot write")?;
    Ok(())
}

fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cancelling after the current batch…");
            flag.store(true, Ordering::Relaxed);
        }
    });
    cancel
}

/// The rule set a rebuild computes the metrics for "now" with, and its clock: what a service
/// starting on the rebuilt read models would use.
pub struct NowMetrics {
    rules: Arc<anquan_domain::rules::RuleSet>,
    digest: String,
    clock: anquan_api::Clock,
}

impl NowMetrics {
    /// The live rule set by the log (the configured one before any promotion) and the clock
    /// `serve` reads.
    pub fn live(registry: &RuleSetRegistry) -> anyhow::Result<NowMetrics> {
        let version = registry.active_version();
        let loaded = registry
            .get(&version)
            .with_context(|| format!("the live rule set {version} is not loaded"))?;
        Ok(NowMetrics {
            rules: loaded.rules,
            digest: loaded.digest,
            clock: crate::test_clock::from_env()?,
        })
    }
}

/// Refolds the fact read models (compliance, agency) from the log into `target`, from its
/// checkpoints, printing events/s, then computes the metrics for "now" from them and persists
/// them with their position ([`anquan_projections::metrics::persist`]), so the first service to
/// start on the rebuilt read models answers at once instead of computing them (one pass over
/// every file: minutes in a province). Returns the number of events folded. Into live read
/// models (`lead`) it holds the projection lease for the whole fold and computation, each batch
/// fenced by its term, so it never races a node's runner: it refuses while a node holds the
/// lease, unless `take_over`, and releases it at the end so a node resumes from the new
/// checkpoints.
pub async fn rebuild_read_models(
    event_store: &dyn EventStore,
    target: &Arc<dyn ReadModelStore>,
    now_metrics: &NowMetrics,
    lead: bool,
    take_over: bool,
    cancel: &AtomicBool,
) -> anyhow::Result<u64> {
    if !lead {
        return fold_read_models(event_store, target.as_ref(), now_metrics, None, cancel).await;
    }
    let leadership = Leadership::new(
        Arc::clone(target),
        leadership::READ_MODELS_GROUP,
        &format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "operator".to_owned())
        ),
        leadership::LEASE_DEFAULT,
    );
    let term = if take_over {
        leadership.take_over().await?
    } else {
        match leadership.try_acquire().await? {
            Some(term) => term,
            None => {
                let holder = target
                    .leases()
                    .await?
                    .into_iter()
                    .find(|lease| lease.group == leadership::READ_MODELS_GROUP);
                let holder = holder.map_or_else(
                    || "another process".to_owned(),
                    |lease| format!("{} (term {})", lease.holder, lease.term),
                );
                anyhow::bail!(
                    "the live read models are folded by {holder}: a rebuild beside it would race it. \
                     Stop the nodes, or pass --take-over to take the projection lease from them \
                     (they serve and follow until the rebuild ends), or rebuild --into a fresh file"
                );
            }
        }
    };
    eprintln!("holding the read models' projection lease ({term})");
    let folded = tokio::select! {
        folded = fold_read_models(event_store, target.as_ref(), now_metrics, Some(&term), cancel) => folded,
        () = leadership.hold(&term) => Err(anyhow::anyhow!("lost the projection lease ({term}) during the rebuild; run it again")),
    };
    leadership.release(&term).await;
    folded
}

async fn fold_read_models(
    event_store: &dyn EventStore,
    target: &dyn ReadModelStore,
    now_metrics: &NowMetrics,
    lease: Option<&LeaseTerm>,
    cancel: &AtomicBool,
) -> anyhow::Result<u64> {
    let projections: Vec<Arc<dyn Projection>> = vec![
        Arc::new(ComplianceProjection),
        Arc::new(AgencyProjection),
        Arc::new(LogTallyProjection),
    ];
    // The metrics for "now" and their history a service persisted were computed from the read
    // models before the rebuild: no service may load them after it. "Now" is computed again
    // below once the fold ends; the history is walked again by the first service that leads.
    anquan_projections::metrics::persist::clear(target)
        .await
        .context("cannot clear the persisted metrics")?;
    anquan_projections::metrics::history::clear(target)
        .await
        .context("cannot clear the metrics history")?;
    // Commit positions against the log's head (events on a backend with dense positions): a
    // rebuild that resumes starts part of the way.
    let head = || event_store.head().borrow().map_or(0, |head| head.commit);
    let display = Progress::new("read models", "positions", head());
    let report = fold_to_end(event_store, target, &projections, lease, cancel, |progress| {
        display.message(format!("{} events folded", progress.events));
        display.update(progress.position.commit, head());
    })
    .await?;
    display.finish();
    let rate = report.events as f64 / report.elapsed.as_secs_f64().max(f64::EPSILON);
    eprintln!(
        "read models {}: {} events in {:.2}s ({rate:.0} events/s){}",
        if report.cancelled { "cancelled" } else { "rebuilt" },
        report.events,
        report.elapsed.as_secs_f64(),
        if report.cancelled {
            "; run the same command to resume"
        } else {
            ""
        }
    );
    if let (false, Some(position)) = (report.cancelled, report.last_position) {
        let started = std::time::Instant::now();
        let at = anquan_event_store::hash_chain::canonical_time((now_metrics.clock)());
        let enterprises = anquan_projections::metrics::persist::compute_and_save(
            target,
            now_metrics.rules.clone(),
            &now_metrics.digest,
            at,
            position,
            lease.cloned(),
        )
        .await
        .context("cannot compute the metrics for now")?;
        eprintln!(
            "metrics for now computed under {} at {at}: {enterprises} enterprises in {:.2}s",
            now_metrics.rules.version,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(report.events)
}

async fn publish(store: &dyn EventStore, registry: &RuleSetRegistry, version: &str) -> anyhow::Result<()> {
    let loaded = registry.get(version).with_context(|| {
        format!("rule set {version} is not loaded: is there a folder {version}/ under the rules root?")
    })?;
    let (digest, title) = (loaded.digest.clone(), loaded.rules.title.clone());
    append_rule_set_event(store, |log, now| {
        log.publish(version, &digest, &title, &loaded.files, now)
    })
    .await
}

/// Decides against the rule-set stream and appends with its expected version.
pub async fn append_rule_set_event(
    store: &dyn EventStore,
    decide: impl Fn(
        &RuleSetLog,
        DateTime<Utc>,
    ) -> Result<Vec<anquan_domain::Event>, anquan_domain::rules::log::RuleSetLogRejection>,
) -> anyhow::Result<()> {
    let mut log = RuleSetLog::default();
    let next = read_log(store, &mut log, StreamVersion::FIRST).await?;
    let now = anquan_event_store::hash_chain::canonical_time(Utc::now());
    let events = decide(&log, now).map_err(|rejection| anyhow::anyhow!("{} ({})", rejection, rejection.code()))?;
    if events.is_empty() {
        return Ok(());
    }
    let expected = match next.0 {
        0 => StreamState::NoStream,
        n => StreamState::At(StreamVersion(n - 1)),
    };
    let request = AppendRequest {
        stream_id: rule_set_stream(),
        expected,
        command: None,
        metadata: AppendMetadata {
            occurred_at: now,
            actor: Actor {
                user_id: anquan_domain::UserId::parse(&format!(
                    "cli:{}",
                    std::env::var("USER").unwrap_or_else(|_| "operator".to_owned())
                ))?,
                role: anquan_domain::Role::CityAdmin,
            },
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
        },
        events: events
            .iter()
            .map(|event| NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                data: event.encode_data(),
            })
            .collect(),
    };
    store
        .append(request)
        .await
        .context("cannot append to the rule-set stream")?;
    Ok(())
}
