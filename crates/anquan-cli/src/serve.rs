//! `anquan serve`: opens the stores, starts the projection runner, the supervision watcher and
//! the HTTP server, and drains them on SIGINT or SIGTERM.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

use anquan_api::{AppState, BlobStore};
use anquan_event_store::personal::{PersonalDataStore, SubjectKeys};
use anquan_event_store::{EventStore, ReadModelStore};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions, PostgresReadModelStore, PostgresSubjectKeys};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions, SqliteReadModelStore, SqliteSubjectKeys};
use anquan_projections::leadership::{self, Leadership};
use anquan_projections::{AgencyProjection, ComplianceProjection, LogTallyProjection, ProjectionRunner};

use crate::config::{Blobs, Config, Storage};

/// Opens the configured stores.
pub async fn open_stores(storage: &Storage) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn ReadModelStore>)> {
    let (events, read_models, _keys) = open_stores_with_keys(storage).await?;
    Ok((events, read_models))
}

/// Opens the configured stores and the personal-data key table the event store seals with (on
/// KurrentDB, in the read-model database).
pub async fn open_stores_with_keys(
    storage: &Storage,
) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn ReadModelStore>, Arc<dyn SubjectKeys>)> {
    match storage {
        Storage::Embedded { database_file } => {
            let events = SqliteEventStore::open(database_file, SqliteOptions::default())
                .with_context(|| format!("cannot open the event store {}", database_file.display()))?;
            let read_models = SqliteReadModelStore::open(database_file)
                .await
                .with_context(|| format!("cannot open the read models in {}", database_file.display()))?;
            let keys: Arc<dyn SubjectKeys> = Arc::new(
                SqliteSubjectKeys::open(database_file)
                    .with_context(|| format!("cannot open the personal data keys in {}", database_file.display()))?,
            );
            Ok((
                metered(personal(Arc::new(events), keys.clone())),
                Arc::new(read_models),
                keys,
            ))
        }
        Storage::KurrentDb {
            event_store_url,
            read_models_url,
        } => {
            let events = open_kurrentdb(event_store_url).await?;
            let pool_size = pool_size()?;
            let read_models = PostgresReadModelStore::connect(read_models_url, pool_size)
                .await
                .context("cannot open the PostgreSQL read models")?;
            // The keys never go into the log, so not into KurrentDB: they live beside the read
            // models, and erasing a subject deletes its row there.
            let keys: Arc<dyn SubjectKeys> = Arc::new(
                PostgresSubjectKeys::connect(read_models_url, pool_size)
                    .await
                    .context("cannot open the personal data keys in the read-model database")?,
            );
            Ok((metered(personal(events, keys.clone())), Arc::new(read_models), keys))
        }
        Storage::Postgres { url } => {
            // Each of the two pools (events, read models) holds up to this many connections, and
            // each store one more to listen: N nodes need N x (2 x pool + 2) within the server's
            // max_connections.
            let options = PostgresOptions {
                pool_size: pool_size()?,
            };
            let pool_size = options.pool_size;
            let events = PostgresEventStore::connect(url, options)
                .await
                .context("cannot open the PostgreSQL event store")?;
            let read_models = PostgresReadModelStore::connect(url, pool_size)
                .await
                .context("cannot open the PostgreSQL read models")?;
            let keys: Arc<dyn SubjectKeys> = Arc::new(PostgresSubjectKeys::new(events.pool().clone()));
            Ok((
                metered(personal(Arc::new(events), keys.clone())),
                Arc::new(read_models),
                keys,
            ))
        }
    }
}

/// The size of each PostgreSQL pool: `ANQUAN_DATABASE_POOL_SIZE`, 1 to 1000, or the default.
fn pool_size() -> anyhow::Result<usize> {
    match std::env::var("ANQUAN_DATABASE_POOL_SIZE")
        .ok()
        .filter(|size| !size.is_empty())
    {
        Some(size) => size
            .parse::<usize>()
            .ok()
            .filter(|size| (1..=1000).contains(size))
            .with_context(|| format!("ANQUAN_DATABASE_POOL_SIZE must be 1 to 1000, not {size:?}")),
        None => Ok(PostgresOptions::default().pool_size),
    }
}

/// Connects to KurrentDB (cargo feature `kurrentdb`).
#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    let store = anquan_event_store_kurrentdb::KurrentEventStore::connect(url)
        .await
        .context("cannot open the KurrentDB event store")?;
    Ok(Arc::new(store))
}

/// Refuses: this build has no KurrentDB client (`Config::load` refuses first; this is the
/// second line for callers that build a `Storage` themselves).
#[cfg(not(feature = "kurrentdb"))]
async fn open_kurrentdb(_url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    anyhow::bail!(
        "this anquan was built without KurrentDB support; rebuild it with `cargo build --release -p anquan-cli --features kurrentdb`"
    )
}

/// Seals personal fields on append, opens them on read, and deletes a subject's key once its
/// erasure is appended (`anquan_event_store::personal`).
fn personal(event_store: Arc<dyn EventStore>, keys: Arc<dyn SubjectKeys>) -> Arc<dyn EventStore> {
    Arc::new(PersonalDataStore::new(event_store, keys))
}

/// Records the store's appends as metrics (`anquan_event_store_appends_total`, …).
fn metered(event_store: Arc<dyn EventStore>) -> Arc<dyn EventStore> {
    Arc::new(anquan_event_store::metered::MeteredEventStore::new(event_store))
}

/// The longest SIGTERM waits for the projection batch in flight and the lease's release after
/// the HTTP server has drained: a store that hangs must not keep the process alive.
const PROJECTIONS_STOP_MAX: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs the service until `shutdown` completes or a component stops. On shutdown it stops
/// accepting connections and drains the requests in flight (at most `--drain-seconds`), while
/// the projection runner, if this node leads, commits the batch in flight and releases the
/// lease so another node leads at once; then it returns.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The one clock of this service: commands' instants, the watchers' and metrics' "now",
    // credit periods and anchors all read it (a controllable one only in test mode).
    let clock = crate::test_clock::from_env()?;
    // The stores stamp `recorded_at` with the same clock (installed once per process).
    if !anquan_event_store::clock::install(clock.clone()) {
        tracing::debug!("a recording clock was installed already in this process");
    }
    let (event_store, read_models, subject_keys) = open_stores_with_keys(&config.storage).await?;
    let runner =
        ProjectionRunner::new(event_store.clone(), read_models.clone()).with_projection(Arc::new(ComplianceProjection));
    let runner = runner
        .with_projection(Arc::new(AgencyProjection))
        .with_projection(Arc::new(LogTallyProjection));
    runner.prepare().await.context("cannot prepare the read models")?;
    let leadership = Leadership::new(
        read_models.clone(),
        leadership::READ_MODELS_GROUP,
        &config.node.node_id,
        config.node.leader_lease,
    );
    let address = listener.local_addr().context("listener has no address")?;
    let mut public_page = anquan_api::PublicPageSettings::new(
        config
            .public_base_url
            .as_deref()
            .unwrap_or(&format!("http://{address}")),
    );
    public_page.town_contacts = config.town_contacts.clone();
    public_page.default_contact = config.town_contact_default.clone();
    let rule_sets = Arc::new(crate::rulesets::serve_registry(&config.rules)?);
    // No command is decided until the rule-set log has been read: it may have promoted a
    // version since this node's configured one.
    rule_sets.await_log();
    let blobs = open_blobs(&config.blobs)
        .await?
        .with_quota(config.upload_quota)
        .with_subject_keys(subject_keys);
    let app = AppState {
        event_store,
        read_models,
        rules: rule_sets.active(),
        rule_sets: rule_sets.clone(),
        blobs,
        rules_pinned: false,
        tokens: config.tokens,
        projected: runner.applied(),
        projections: runner.health(),
        clock: clock.clone(),
        upload_bytes_max: config.upload_bytes_max,
        graphiql: config.graphiql,
        supervision: anquan_api::SupervisionEvents::new(),
        public_page,
        metrics: anquan_api::MetricsService::default(),
        anchor_key: Some(config.anchor_key.clone()),
    };
    // The key is created (or read) at start, so a bad key file stops the start, not an anchor.
    let anchor_signer = config
        .anchor_key
        .load_or_create()
        .context("cannot load the anchor signing key")?;
    tracing::info!(key_id = anchor_signer.key_id(), "anchors are signed with this key");
    let periodic_anchors = {
        let (event_store, health, key_file) = (
            app.event_store.clone(),
            app.projections.clone(),
            config.anchor_key.clone(),
        );
        async move {
            match config.anchor_interval {
                Some(interval) => crate::anchors::periodic(event_store, health, key_file, interval, clock).await,
                None => std::future::pending().await,
            }
        }
    };
    let watcher = anquan_api::SupervisionWatcher::new(app.clone());
    let metrics_watcher = anquan_api::MetricsWatcher::new(app.clone());
    let report_scheduler =
        anquan_api::reports::MonthlyReportScheduler::new(app.clone(), anquan_api::reports::REPORT_CHECK_EVERY);
    anquan_projections::rule_sets::agree_once(app.event_store.as_ref(), &rule_sets).await;
    let rule_set_follower = anquan_projections::rule_sets::follow(app.event_store.clone(), rule_sets);
    // One set of rate limiters for the schema (mutations) and the router (uploads).
    let rate = Arc::new(anquan_api::RateLimiters::new(config.rate_limits));
    let http_limits = anquan_api::HttpLimits {
        rate: rate.clone(),
        ..config.http_limits.clone()
    };
    let router = anquan_api::router_with(
        anquan_api::schema_with(app.clone(), config.request_timeout, rate),
        app,
        http_limits,
    );
    tracing::info!(
        %address,
        storage = storage_name(&config.storage),
        node = %config.node.node_id,
        lease.holder = leadership.holder(),
        "anquan is serving GraphQL at /graphql"
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop_on_signal.send_replace(true);
    });
    let mut drained = stopping.clone();
    // With connect info, so rate limits per client address know the address.
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = drained.wait_for(|stop| *stop).await;
    });
    let drain = config.node.drain;
    let mut drain_started = stopping.clone();
    let serving = async move {
        let server = std::future::IntoFuture::into_future(server);
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => served.context("the HTTP server failed"),
            () = async {
                let _ = drain_started.wait_for(|stop| *stop).await;
                tokio::time::sleep(drain).await;
            } => {
                tracing::warn!(drain_seconds = drain.as_secs(), "requests still open after the drain; closing them");
                Ok(())
            }
        }
    };
    let work = async {
        let outcome = tokio::select! {
            served = serving => served,
            () = runner.follow_shared_checkpoints() => Err(anyhow::anyhow!("the shared-checkpoint follower stopped")),
            () = watcher.run() => Err(anyhow::anyhow!("the supervision watcher stopped")),
            () = metrics_watcher.run() => Err(anyhow::anyhow!("the metrics watcher stopped")),
            () = report_scheduler.run() => Err(anyhow::anyhow!("the monthly report scheduler stopped")),
            () = periodic_anchors => Err(anyhow::anyhow!("the periodic anchors stopped")),
            followed = rule_set_follower => match followed {
                Ok(()) => Err(anyhow::anyhow!("the rule-set follower stopped")),
                Err(error) => Err(error).context("the rule-set follower stopped"),
            },
        };
        // Whatever ended the service, the projections stop after their batch in flight and the
        // lease is released.
        stop.send_replace(true);
        outcome
    };
    let leading = async {
        // A projection that fails is retried alone and reported stalled (`/readyz`,
        // `health`); `lead` returns only once shutdown is asked for.
        runner.lead(&leadership, stopping.clone()).await;
    };
    let (outcome, ()) = tokio::join!(work, async {
        let mut stopped = stopping.clone();
        tokio::pin!(leading);
        tokio::select! {
            () = &mut leading => {}
            () = async {
                // The guard `wait_for` returns must not live on: `work` writes the same watch.
                let _ = stopped.wait_for(|stop| *stop).await;
            } => {
                if tokio::time::timeout(PROJECTIONS_STOP_MAX, leading).await.is_err() {
                    tracing::warn!("the projection runner did not stop in time; its lease expires by itself");
                }
            }
        }
    });
    outcome
}

/// Opens the configured blob store; a bucket is listed once, so a wrong endpoint, bucket or key
/// stops the start instead of the first upload. The secret is never logged.
pub async fn open_blobs(blobs: &Blobs) -> anyhow::Result<BlobStore> {
    match blobs {
        Blobs::Local { directory } => BlobStore::local(directory)
            .with_context(|| format!("cannot open the blob store in {}", directory.display())),
        Blobs::S3(settings) => {
            let store = BlobStore::s3(settings).context("cannot open the S3 blob store")?;
            store.check().await.with_context(|| {
                format!(
                    "cannot list S3 bucket {:?} at {}",
                    settings.bucket,
                    settings.endpoint.as_deref().unwrap_or("AWS S3")
                )
            })?;
            tracing::info!(
                bucket = %settings.bucket,
                endpoint = settings.endpoint.as_deref().unwrap_or("AWS S3"),
                region = %settings.region,
                "uploaded files go to an S3 bucket"
            );
            Ok(store)
        }
    }
}

fn storage_name(storage: &Storage) -> &'static str {
    match storage {
        Storage::Embedded { .. } => "sqlite",
        Storage::Postgres { .. } => "postgres",
        Storage::KurrentDb { .. } => "kurrentdb+postgres",
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// The API's schema in SDL.
pub fn schema_sdl() -> String {
    anquan_api::sdl()
}
