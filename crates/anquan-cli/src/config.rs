//! One typed configuration: defaults, then an optional TOML file, then the command line and
//! `ANQUAN_*` environment variables. The embedded default needs none of them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use anquan_api::TokenAuthority;
use anquan_domain::rules::RuleSet;

/// The default listen address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8080";

/// Where the signing secret lives, by default: in the data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct SecretArgs {
    /// Directory for the embedded database, uploaded files and the development signing secret.
    /// Default: `./anquan-data`.
    #[arg(long, env = "ANQUAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HS256 secret for bearer tokens (at least 32 bytes). Default: a random secret created in
    /// the data directory on first run.
    #[arg(long, env = "ANQUAN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// Arguments of `anquan serve`; each may also come from the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of: listen, data_dir, database_url, event_store_url, rules_dir, upload_bytes_max,
    /// graphiql, graphql_body_bytes_max, request_timeout_ms, mutations_per_minute_per_token,
    /// mutations_per_minute_per_address, trusted_proxies (a list), metrics_token,
    /// upload_quota_enterprise_bytes, upload_quota_agency_bytes, jwt_secret, public_base_url,
    /// s3_bucket, s3_endpoint, s3_region, s3_access_key_id, s3_secret_access_key, town_contact_default and a `[town_contacts]` table (town = "how to
    /// reach its safety office").
    #[arg(long, env = "ANQUAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on. Default: 127.0.0.1:8080.
    #[arg(long, env = "ANQUAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PostgreSQL URL for events and read models (`postgres://…`). Default: the embedded SQLite
    /// file in the data directory.
    #[arg(long = "database", env = "ANQUAN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A KurrentDB connection string for the events (`kurrentdb://…`, `kurrentdb+discover://…`,
    /// `esdb://…`, `esdb+discover://…`); read models then go to the PostgreSQL `--database`.
    /// Needs a build with the cargo feature `kurrentdb`. Default: events beside the read models.
    #[arg(long = "event-store", env = "ANQUAN_EVENT_STORE_URL", hide_env_values = true)]
    pub event_store_url: Option<String>,
    /// Directory of a rule set (`ruleset.toml`, `indicators.toml`). Default: rule set v1, built in.
    #[arg(long = "rules", env = "ANQUAN_RULES_DIR")]
    pub rules_dir: Option<PathBuf>,
    /// Largest accepted upload in bytes. Default: 20 MiB.
    #[arg(long, env = "ANQUAN_UPLOAD_BYTES_MAX")]
    pub upload_bytes_max: Option<u64>,
    /// Most bytes each enterprise may store through its own uploads. Default: 10 GiB.
    #[arg(long, env = "ANQUAN_UPLOAD_QUOTA_ENTERPRISE_BYTES")]
    pub upload_quota_enterprise_bytes: Option<u64>,
    /// Most bytes each agency may store through its own uploads. Default: 10 GiB.
    #[arg(long, env = "ANQUAN_UPLOAD_QUOTA_AGENCY_BYTES")]
    pub upload_quota_agency_bytes: Option<u64>,
    /// Serve GraphiQL at GET /graphql. Default: true.
    #[arg(long, env = "ANQUAN_GRAPHIQL")]
    pub graphiql: Option<bool>,
    /// Largest body of a GraphQL request that is not a multipart upload, in bytes (413
    /// `BODY_TOO_LARGE` above). Default: 1 MiB.
    #[arg(long, env = "ANQUAN_GRAPHQL_BODY_BYTES_MAX")]
    pub graphql_body_bytes_max: Option<usize>,
    /// Milliseconds a query (not a mutation) may run before it is cancelled (`TIMEOUT`). Default:
    /// 30000.
    #[arg(long, env = "ANQUAN_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Mutations and uploads per minute one caller (a token's user and role) may send, as a
    /// burst regained evenly (429 `RATE_LIMITED` above); 0 turns it off. Default: 1200.
    #[arg(long, env = "ANQUAN_MUTATIONS_PER_MINUTE_PER_TOKEN")]
    pub mutations_per_minute_per_token: Option<u32>,
    /// Mutations and uploads per minute one client address may send; 0 turns it off.
    /// Default: 3000.
    #[arg(long, env = "ANQUAN_MUTATIONS_PER_MINUTE_PER_ADDRESS")]
    pub mutations_per_minute_per_address: Option<u32>,
    /// Reverse proxies (addresses or networks, e.g. `10.0.0.0/8`) whose `X-Forwarded-For`
    /// names the client for the per-address rate limit; repeat the flag or separate with
    /// commas. Default: none (the TCP peer is the client).
    #[arg(long = "trusted-proxy", env = "ANQUAN_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// A secret (at least 24 characters) Prometheus must send as `Authorization: Bearer …` to
    /// read `/metrics`. Default: none, `/metrics` is open (keep it off the public entry).
    #[arg(long, env = "ANQUAN_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// The URL the safety QR codes point at (`https://anquan.example.cn`). Default:
    /// `http://<listen address>`.
    #[arg(long, env = "ANQUAN_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub anchor_key: crate::anchors::AnchorKeyArgs,
    /// Seconds between the signed anchors the leading node takes (none while nothing but
    /// anchors was appended); 0 takes none. Default: 3600.
    #[arg(long, env = "ANQUAN_ANCHOR_INTERVAL")]
    pub anchor_interval_seconds: Option<u64>,
}

/// This node among several on one database: who it is, how its projection lease works, when it
/// is ready and how it stops.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// This node's name in the projection lease table and the logs (a pod's name). Default:
    /// the host name and the process id.
    #[arg(long, env = "ANQUAN_NODE_ID")]
    pub node_id: Option<String>,
    /// Milliseconds a projection leader's lease lasts unless renewed (renewed every fifth of
    /// it): a leader that dies without releasing it is replaced after at most this plus one
    /// renewal. Default: 5000; at least 500.
    #[arg(long, env = "ANQUAN_LEADER_LEASE_MS")]
    pub leader_lease_ms: Option<u64>,
    /// `/readyz` answers 503 while a read model is more than this many events behind the log.
    /// Default: 10000.
    #[arg(long, env = "ANQUAN_READY_LAG_EVENTS")]
    pub ready_lag_events: Option<u64>,
    /// `/readyz` answers 503 while the oldest event a read model has not applied was recorded
    /// more than this many seconds ago. Default: 30.
    #[arg(long, env = "ANQUAN_READY_LAG_SECONDS")]
    pub ready_lag_seconds: Option<f64>,
    /// Seconds SIGTERM waits for requests in flight (and subscriptions) before it closes them.
    /// Default: 20.
    #[arg(long, env = "ANQUAN_DRAIN_SECONDS")]
    pub drain_seconds: Option<u64>,
}

/// The validated [`NodeArgs`].
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub node_id: String,
    pub leader_lease: std::time::Duration,
    pub drain: std::time::Duration,
}

/// The default of `--drain-seconds`.
pub const DRAIN_SECONDS_DEFAULT: u64 = 20;

/// Where uploaded files go when not into the data directory: an S3-compatible bucket, which
/// every API node of a cluster shares. Set the bucket to use it; the others then apply.
#[derive(Clone, clap::Args)]
pub struct S3Args {
    /// The S3 bucket for uploaded files (it must exist). Default: none, files go to
    /// `<data dir>/blobs`.
    #[arg(long, env = "ANQUAN_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// The S3-compatible service's URL (`https://…`, or `http://…` for a server on a trusted
    /// network). Default: AWS S3 in the region.
    #[arg(long, env = "ANQUAN_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The region requests are signed for. Default: us-east-1.
    #[arg(long, env = "ANQUAN_S3_REGION")]
    pub s3_region: Option<String>,
    /// The access key id (required with a bucket).
    #[arg(long, env = "ANQUAN_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    /// The secret access key (required with a bucket). Prefer the variable or the config file
    /// to the flag, which other users of the host can see.
    #[arg(long, env = "ANQUAN_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Args {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("S3Args")
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &self.s3_secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Args {
    /// The bucket's settings when a bucket is set, each value from the arguments or else the
    /// config file; an S3 setting without a bucket is an error rather than silently unused.
    fn settings(self, file: S3Args) -> anyhow::Result<Option<anquan_api::S3Settings>> {
        let bucket = self.s3_bucket.or(file.s3_bucket);
        let endpoint = self.s3_endpoint.or(file.s3_endpoint);
        let region = self.s3_region.or(file.s3_region);
        let access_key_id = self.s3_access_key_id.or(file.s3_access_key_id);
        let secret_access_key = self.s3_secret_access_key.or(file.s3_secret_access_key);
        let Some(bucket) = bucket.filter(|bucket| !bucket.is_empty()) else {
            if endpoint.is_some() || region.is_some() || access_key_id.is_some() || secret_access_key.is_some() {
                anyhow::bail!("an S3 setting is given without s3_bucket (ANQUAN_S3_BUCKET, --s3-bucket)");
            }
            return Ok(None);
        };
        let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key) else {
            anyhow::bail!(
                "s3_bucket needs s3_access_key_id and s3_secret_access_key \
                 (ANQUAN_S3_ACCESS_KEY_ID, ANQUAN_S3_SECRET_ACCESS_KEY)"
            );
        };
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            anyhow::bail!("s3_endpoint must start with https:// or http://, not {endpoint:?}");
        }
        Ok(Some(anquan_api::S3Settings {
            bucket,
            endpoint,
            region: region.unwrap_or_else(|| S3_REGION_DEFAULT.to_owned()),
            access_key_id,
            secret_access_key,
        }))
    }
}

/// The region S3 requests are signed for when none is configured.
pub const S3_REGION_DEFAULT: &str = "us-east-1";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    event_store_url: Option<String>,
    rules_dir: Option<PathBuf>,
    upload_bytes_max: Option<u64>,
    upload_quota_enterprise_bytes: Option<u64>,
    upload_quota_agency_bytes: Option<u64>,
    graphiql: Option<bool>,
    graphql_body_bytes_max: Option<usize>,
    request_timeout_ms: Option<u64>,
    mutations_per_minute_per_token: Option<u32>,
    mutations_per_minute_per_address: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
    metrics_token: Option<String>,
    jwt_secret: Option<String>,
    public_base_url: Option<String>,
    s3_bucket: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    #[serde(default)]
    town_contacts: BTreeMap<String, String>,
    town_contact_default: Option<String>,
    node_id: Option<String>,
    leader_lease_ms: Option<u64>,
    ready_lag_events: Option<u64>,
    ready_lag_seconds: Option<f64>,
    drain_seconds: Option<u64>,
}

/// Where events and read models live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// One SQLite file in the data directory.
    Embedded { database_file: PathBuf },
    /// A PostgreSQL server.
    Postgres { url: String },
    /// Events in KurrentDB, read models in PostgreSQL.
    KurrentDb {
        /// The KurrentDB connection string.
        event_store_url: String,
        /// The PostgreSQL URL of the read models.
        read_models_url: String,
    },
}

/// The connection-string schemes of KurrentDB (and of EventStoreDB before it).
pub const KURRENTDB_SCHEMES: &[&str] = &[
    "kurrentdb://",
    "kurrentdb+discover://",
    "kurrent://",
    "kurrent+discover://",
    "kdb://",
    "kdb+discover://",
    "esdb://",
    "esdb+discover://",
];

/// Tells whether this binary was built with the KurrentDB backend (cargo feature `kurrentdb`).
pub const KURRENTDB_BUILT_IN: bool = cfg!(feature = "kurrentdb");

/// Picks where events and read models live from `--database` and `--event-store`.
pub(crate) fn storage(
    database_url: Option<String>,
    event_store_url: Option<String>,
    data_dir: &Path,
) -> anyhow::Result<Storage> {
    let is_postgres = |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
    match (database_url, event_store_url) {
        (database, Some(events)) => {
            if !KURRENTDB_SCHEMES.iter().any(|scheme| events.starts_with(scheme)) {
                anyhow::bail!(
                    "--event-store must be a KurrentDB connection string ({}); events in SQLite or PostgreSQL need no --event-store",
                    KURRENTDB_SCHEMES.join(", ")
                );
            }
            if !KURRENTDB_BUILT_IN {
                anyhow::bail!(
                    "this anquan was built without KurrentDB support; rebuild it with `cargo build --release -p anquan-cli --features kurrentdb`"
                );
            }
            match database {
                Some(url) if is_postgres(&url) => Ok(Storage::KurrentDb {
                    event_store_url: events,
                    read_models_url: url,
                }),
                _ => anyhow::bail!(
                    "--event-store kurrentdb://… keeps the read models in PostgreSQL: give --database postgres://…"
                ),
            }
        }
        (Some(url), None) if is_postgres(&url) => Ok(Storage::Postgres { url }),
        (Some(_), None) => anyhow::bail!("--database must be a postgres:// URL (the embedded default needs none)"),
        (None, None) => Ok(Storage::Embedded {
            database_file: data_dir.join("anquan.sqlite"),
        }),
    }
}

/// Where uploaded files are stored.
#[derive(Debug, Clone)]
pub enum Blobs {
    /// A directory (`<data dir>/blobs`), the embedded default.
    Local { directory: PathBuf },
    /// An S3-compatible bucket, shared by every node.
    S3(anquan_api::S3Settings),
}

/// The validated configuration of `anquan serve`.
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The anchors' signing key.
    pub anchor_key: anquan_projections::anchors::AnchorKeyFile,
    /// How often the leading node takes an anchor; `None`: never.
    pub anchor_interval: Option<std::time::Duration>,
    pub storage: Storage,
    pub blobs: Blobs,
    pub rules: RuleSet,
    pub upload_bytes_max: u64,
    /// Most bytes each enterprise and each agency may store through their own uploads.
    pub upload_quota: anquan_api::UploadQuota,
    pub graphiql: bool,
    /// Limits of the HTTP transport.
    pub http_limits: anquan_api::HttpLimits,
    /// How long a query may run.
    pub request_timeout: std::time::Duration,
    /// Mutation and upload rate limits.
    pub rate_limits: anquan_api::RateLimitSettings,
    pub tokens: TokenAuthority,
    /// The public QR pages' base URL; `None` means `http://<bound address>`.
    pub public_base_url: Option<String>,
    /// Town → how to reach its safety office, shown on the public pages.
    pub town_contacts: BTreeMap<String, String>,
    /// Shown for a town without an entry.
    pub town_contact_default: String,
    /// This node among several.
    pub node: NodeSettings,
}

impl Config {
    /// Merges defaults, the config file and the arguments, and validates the result.
    pub fn load(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<ConfigFile>(&text)
                    .with_context(|| format!("config file {} is invalid", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let listen = match args.listen.or(file.listen) {
            Some(listen) => listen,
            None => LISTEN_DEFAULT.parse().context("default listen address")?,
        };
        let secret = SecretArgs {
            data_dir: args.secret.data_dir.or(file.data_dir),
            jwt_secret: args.secret.jwt_secret.or(file.jwt_secret),
        };
        let data_dir = secret.data_dir();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let storage = storage(
            args.database_url.or(file.database_url),
            args.event_store_url.or(file.event_store_url),
            &data_dir,
        )?;
        let public_base_url = args.public_base_url.or(file.public_base_url);
        if let Some(url) = &public_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            anyhow::bail!("public_base_url must start with https:// or http://, not {url:?}");
        }
        let file_s3 = S3Args {
            s3_bucket: file.s3_bucket,
            s3_endpoint: file.s3_endpoint,
            s3_region: file.s3_region,
            s3_access_key_id: file.s3_access_key_id,
            s3_secret_access_key: file.s3_secret_access_key,
        };
        let blobs = match args.s3.settings(file_s3)? {
            Some(settings) => Blobs::S3(settings),
            None => Blobs::Local {
                directory: data_dir.join("blobs"),
            },
        };
        let rules = match args.rules_dir.or(file.rules_dir) {
            Some(directory) => load_rules(&directory)?,
            None => embedded_rules()?,
        };
        Ok(Config {
            listen,
            storage,
            blobs,
            rules,
            upload_bytes_max: args
                .upload_bytes_max
                .or(file.upload_bytes_max)
                .unwrap_or(anquan_api::UPLOAD_BYTES_MAX_DEFAULT),
            upload_quota: anquan_api::UploadQuota {
                enterprise_bytes: Some(
                    args.upload_quota_enterprise_bytes
                        .or(file.upload_quota_enterprise_bytes)
                        .unwrap_or(anquan_api::UPLOAD_QUOTA_BYTES_DEFAULT),
                ),
                agency_bytes: Some(
                    args.upload_quota_agency_bytes
                        .or(file.upload_quota_agency_bytes)
                        .unwrap_or(anquan_api::UPLOAD_QUOTA_BYTES_DEFAULT),
                ),
            },
            graphiql: args.graphiql.or(file.graphiql).unwrap_or(true),
            http_limits: anquan_api::HttpLimits {
                rate: std::sync::Arc::default(),
                graphql_body_bytes_max: args
                    .graphql_body_bytes_max
                    .or(file.graphql_body_bytes_max)
                    .unwrap_or(anquan_api::GRAPHQL_BODY_BYTES_MAX_DEFAULT),
                readiness: anquan_api::Readiness {
                    lag_events: args
                        .node
                        .ready_lag_events
                        .or(file.ready_lag_events)
                        .unwrap_or(anquan_api::READY_LAG_EVENTS_DEFAULT),
                    lag_seconds: match args.node.ready_lag_seconds.or(file.ready_lag_seconds) {
                        Some(seconds) if !(seconds.is_finite() && seconds > 0.0) => {
                            anyhow::bail!("ready_lag_seconds must be a number above 0, not {seconds}")
                        }
                        Some(seconds) => seconds,
                        None => anquan_api::READY_LAG_SECONDS_DEFAULT,
                    },
                },
                trusted_proxies: {
                    let entries = if args.trusted_proxies.is_empty() {
                        file.trusted_proxies.unwrap_or_default()
                    } else {
                        args.trusted_proxies
                    };
                    anquan_api::TrustedProxies::parse(entries.iter().map(String::as_str))?
                },
                metrics_token: args
                    .metrics_token
                    .or(file.metrics_token)
                    .map(|token| anquan_api::MetricsToken::new(&token))
                    .transpose()?,
            },
            rate_limits: anquan_api::RateLimitSettings {
                mutations_per_minute_per_token: args
                    .mutations_per_minute_per_token
                    .or(file.mutations_per_minute_per_token)
                    .unwrap_or(anquan_api::rate_limit::MUTATIONS_PER_MINUTE_PER_TOKEN_DEFAULT),
                mutations_per_minute_per_address: args
                    .mutations_per_minute_per_address
                    .or(file.mutations_per_minute_per_address)
                    .unwrap_or(anquan_api::rate_limit::MUTATIONS_PER_MINUTE_PER_ADDRESS_DEFAULT),
            },
            request_timeout: match args.request_timeout_ms.or(file.request_timeout_ms) {
                Some(0) => anyhow::bail!("request_timeout_ms must be above 0"),
                Some(milliseconds) => std::time::Duration::from_millis(milliseconds),
                None => anquan_api::graphql::limits::REQUEST_TIMEOUT_DEFAULT,
            },
            tokens: secret.authority()?,
            anchor_key: args.anchor_key.key_file(&data_dir),
            anchor_interval: match args
                .anchor_interval_seconds
                .unwrap_or(crate::anchors::INTERVAL_SECONDS_DEFAULT)
            {
                0 => None,
                seconds => Some(std::time::Duration::from_secs(seconds)),
            },
            data_dir,
            public_base_url,
            town_contacts: file.town_contacts,
            town_contact_default: file
                .town_contact_default
                .unwrap_or_else(|| anquan_api::public_page::DEFAULT_CONTACT.to_owned()),
            node: NodeSettings {
                node_id: match args.node.node_id.or(file.node_id) {
                    Some(id) if id.trim().is_empty() || id.len() > 200 => {
                        anyhow::bail!("node_id must be 1 to 200 characters")
                    }
                    Some(id) => id,
                    None => default_node_id(),
                },
                leader_lease: match args.node.leader_lease_ms.or(file.leader_lease_ms) {
                    Some(milliseconds) if milliseconds < 500 => {
                        anyhow::bail!("leader_lease_ms must be at least 500, not {milliseconds}")
                    }
                    Some(milliseconds) => std::time::Duration::from_millis(milliseconds),
                    None => anquan_projections::leadership::LEASE_DEFAULT,
                },
                drain: std::time::Duration::from_secs(
                    args.node
                        .drain_seconds
                        .or(file.drain_seconds)
                        .unwrap_or(DRAIN_SECONDS_DEFAULT),
                ),
            },
        })
    }
}

impl SecretArgs {
    /// Returns the data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(crate::default_data_dir)
    }

    /// Builds the token authority from the configured secret, or from the data directory's
    /// secret file, creating it with a random secret on first use.
    pub fn authority(&self) -> anyhow::Result<TokenAuthority> {
        if let Some(secret) = &self.jwt_secret {
            return TokenAuthority::new(secret.as_bytes()).context("ANQUAN_JWT_SECRET is unusable");
        }
        let data_dir = self.data_dir();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join("jwt-secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(secret) => secret,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
                write_private(&path, &secret)?;
                secret
            }
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
        };
        TokenAuthority::new(secret.trim().as_bytes())
            .with_context(|| format!("secret in {} is unusable", path.display()))
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Loads a rule set from a directory of rule files.
pub fn load_rules(directory: &Path) -> anyhow::Result<RuleSet> {
    let mut files = anquan_domain::rules::RuleSetFiles::new();
    for name in anquan_domain::rules::RULE_SET_FILES {
        let path = directory.join(name);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read rule file {}", path.display()))?;
        files.insert(name.to_owned(), text);
    }
    RuleSet::from_files(&files).with_context(|| format!("rule set in {} is invalid", directory.display()))
}

/// Rule set v1 as built into the binary.
pub fn embedded_rules() -> anyhow::Result<RuleSet> {
    Ok(anquan_domain::rules::builtin_v1()?)
}

/// The host's name and this process's id: unique among the nodes of one database unless two
/// hosts share a name.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "anquan".to_owned());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests abort on failure")]
mod tests {
    use super::S3Args;

    mod storage {
        use std::path::Path;

        use super::super::{KURRENTDB_BUILT_IN, Storage, storage};

        const PG: &str = "postgres://postgres@127.0.0.1:5432/anquan";

        fn pick(database: Option<&str>, events: Option<&str>) -> anyhow::Result<Storage> {
            storage(
                database.map(str::to_owned),
                events.map(str::to_owned),
                Path::new("/data"),
            )
        }

        #[test]
        fn sqlite_and_postgres_need_no_event_store() {
            assert!(
                matches!(pick(None, None).unwrap(), Storage::Embedded { database_file } if database_file == Path::new("/data/anquan.sqlite"))
            );
            assert!(matches!(pick(Some(PG), None).unwrap(), Storage::Postgres { url } if url == PG));
            assert!(pick(Some("mysql://x"), None).is_err());
        }

        #[test]
        fn an_event_store_must_be_a_kurrentdb_connection_string() {
            let error = pick(Some(PG), Some("postgres://other")).unwrap_err().to_string();
            assert!(error.contains("KurrentDB connection string"), "{error}");
        }

        #[test]
        fn kurrentdb_events_take_postgres_read_models_in_a_build_with_the_feature() {
            for url in [
                "kurrentdb://admin:changeit@127.0.0.1:2113?tls=false",
                "kurrentdb+discover://cluster.example:2113",
                "esdb://127.0.0.1:2113?tls=false",
                "esdb+discover://cluster.example:2113",
            ] {
                let picked = pick(Some(PG), Some(url));
                if KURRENTDB_BUILT_IN {
                    assert!(matches!(
                        picked.unwrap(),
                        Storage::KurrentDb { event_store_url, read_models_url }
                            if event_store_url == url && read_models_url == PG
                    ));
                    let error = pick(None, Some(url)).unwrap_err().to_string();
                    assert!(error.contains("give --database postgres://"), "{error}");
                } else {
                    let error = picked.unwrap_err().to_string();
                    assert!(error.contains("built without KurrentDB support"), "{error}");
                }
            }
        }
    }

    fn args(bucket: Option<&str>, endpoint: Option<&str>, key: Option<&str>, secret: Option<&str>) -> S3Args {
        S3Args {
            s3_bucket: bucket.map(str::to_owned),
            s3_endpoint: endpoint.map(str::to_owned),
            s3_region: None,
            s3_access_key_id: key.map(str::to_owned),
            s3_secret_access_key: secret.map(str::to_owned),
        }
    }

    fn none() -> S3Args {
        args(None, None, None, None)
    }

    #[test]
    fn no_bucket_is_the_local_directory_and_a_lone_s3_setting_is_an_error() {
        assert!(none().settings(none()).unwrap().is_none());
        assert!(
            args(None, Some("http://127.0.0.1:9000"), None, None)
                .settings(none())
                .is_err()
        );
        assert!(none().settings(args(None, None, Some("k"), Some("s"))).is_err());
    }

    #[test]
    fn a_bucket_needs_both_keys_and_an_http_endpoint() {
        assert!(args(Some("b"), None, Some("k"), None).settings(none()).is_err());
        assert!(args(Some("b"), None, None, Some("s")).settings(none()).is_err());
        assert!(
            args(Some("b"), Some("s3.example.cn"), Some("k"), Some("s"))
                .settings(none())
                .is_err()
        );
        let settings = args(Some("b"), Some("http://127.0.0.1:9000"), Some("k"), Some("s"))
            .settings(none())
            .unwrap()
            .unwrap();
        assert_eq!(settings.region, super::S3_REGION_DEFAULT);
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn flags_and_variables_win_over_the_file_setting_by_setting() {
        let file = args(
            Some("from-file"),
            Some("https://file.example.cn"),
            Some("file-key"),
            Some("file-secret"),
        );
        let settings = args(Some("from-flag"), None, None, Some("flag-secret"))
            .settings(file)
            .unwrap()
            .unwrap();
        assert_eq!(settings.bucket, "from-flag");
        assert_eq!(settings.endpoint.as_deref(), Some("https://file.example.cn"));
        assert_eq!(settings.access_key_id, "file-key");
        assert_eq!(settings.secret_access_key, "flag-secret");
        assert!(!format!("{settings:?}").contains("flag-secret"));
        let debug = format!("{:?}", args(Some("b"), None, None, Some("flag-secret")));
        assert!(!debug.contains("flag-secret"), "{debug}");
    }
}
