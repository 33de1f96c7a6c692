//! `anquan serve`: opens the stores, starts the projection runner, the supervision watcher and
//! the HTTP server, and drains them on SIGINT or SIGTERM.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

use anquan_api::{AppState, BlobStore};
use anquan_event_store::{EventStore, ReadModelStore};
use anquan_event_store_postgres::{PostgresEventStore, PostgresOptions, PostgresReadModelStore};
use anquan_event_store_sqlite::{SqliteEventStore, SqliteOptions, SqliteReadModelStore};
use anquan_projections::{AgencyProjection, ComplianceProjection, ProjectionRunner};

use crate::config::{Blobs, Config, Storage};

/// Opens the configured stores.
pub async fn open_stores(storage: &Storage) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn ReadModelStore>)> {
    match storage {
        Storage::Embedded { database_file } => {
            let events = SqliteEventStore::open(database_file, SqliteOptions::default())
                .with_context(|| format!("cannot open the event store {}", database_file.display()))?;
            let read_models = SqliteReadModelStore::open(database_file)
                .await
                .with_context(|| format!("cannot open the read models in {}", database_file.display()))?;
            Ok((metered(Arc::new(events)), Arc::new(read_models)))
        }
        Storage::Postgres { url } => {
            let options = PostgresOptions::default();
            let pool_size = options.pool_size;
            let events = PostgresEventStore::connect(url, options)
                .await
                .context("cannot open the PostgreSQL event store")?;
            let read_models = PostgresReadModelStore::connect(url, pool_size)
                .await
                .context("cannot open the PostgreSQL read models")?;
            Ok((metered(Arc::new(events)), Arc::new(read_models)))
        }
    }
}

/// Records the store's appends as metrics (`anquan_event_store_appends_total`, …).
fn metered(event_store: Arc<dyn EventStore>) -> Arc<dyn EventStore> {
    Arc::new(anquan_event_store::metered::MeteredEventStore::new(event_store))
}

/// Runs the service until `shutdown` completes or a component stops.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (event_store, read_models) = open_stores(&config.storage).await?;
    let runner =
        ProjectionRunner::new(event_store.clone(), read_models.clone()).with_projection(Arc::new(ComplianceProjection));
    let runner = runner.with_projection(Arc::new(AgencyProjection));
    runner.prepare().await.context("cannot prepare the read models")?;
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
    let blobs = open_blobs(&config.blobs).await?.with_quota(config.upload_quota);
    let app = AppState {
        event_store,
        read_models,
        rules: rule_sets.active(),
        rule_sets: rule_sets.clone(),
        blobs,
        tokens: config.tokens,
        projected: runner.applied(),
        projections: runner.health(),
        clock: Arc::new(chrono::Utc::now),
        upload_bytes_max: config.upload_bytes_max,
        graphiql: config.graphiql,
        supervision: anquan_api::SupervisionEvents::new(),
        public_page,
        metrics: anquan_api::MetricsService::default(),
    };
    let watcher = anquan_api::SupervisionWatcher::new(app.clone());
    let metrics_watcher = anquan_api::MetricsWatcher::new(app.clone());
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
    tracing::info!(%address, storage = storage_name(&config.storage), "anquan is serving GraphQL at /graphql");
    // With connect info, so rate limits per client address know the address.
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown);
    tokio::select! {
        served = server => served.context("the HTTP server failed"),
        // A projection that fails is retried alone and reported stalled (`/readyz`, `health`);
        // the runner returns only when the event store closes.
        projected = runner.run() => match projected {
            Ok(()) => anyhow::bail!("the projection runner stopped: the event store closed"),
            Err(error) => Err(error).context("the projection runner stopped"),
        },
        () = watcher.run() => anyhow::bail!("the supervision watcher stopped"),
        () = metrics_watcher.run() => anyhow::bail!("the metrics watcher stopped"),
        followed = rule_set_follower => match followed {
            Ok(()) => anyhow::bail!("the rule-set follower stopped"),
            Err(error) => Err(error).context("the rule-set follower stopped"),
        },
    }
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
