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
    /// A TOML file with any of: listen, data_dir, database_url, rules_dir, upload_bytes_max,
    /// graphiql, graphql_body_bytes_max, request_timeout_ms, mutations_per_minute_per_token,
    /// mutations_per_minute_per_address, upload_quota_enterprise_bytes, upload_quota_agency_bytes,
    /// jwt_secret, public_base_url, town_contact_default and a `[town_contacts]` table (town =
    /// "how to reach its safety office").
    #[arg(long, env = "ANQUAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on. Default: 127.0.0.1:8080.
    #[arg(long, env = "ANQUAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PostgreSQL URL for events and read models (`postgres://…`). Default: the embedded SQLite
    /// file in the data directory.
    #[arg(long = "database", env = "ANQUAN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
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
    /// The URL the safety QR codes point at (`https://anquan.example.cn`). Default:
    /// `http://<listen address>`.
    #[arg(long, env = "ANQUAN_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    rules_dir: Option<PathBuf>,
    upload_bytes_max: Option<u64>,
    upload_quota_enterprise_bytes: Option<u64>,
    upload_quota_agency_bytes: Option<u64>,
    graphiql: Option<bool>,
    graphql_body_bytes_max: Option<usize>,
    request_timeout_ms: Option<u64>,
    mutations_per_minute_per_token: Option<u32>,
    mutations_per_minute_per_address: Option<u32>,
    jwt_secret: Option<String>,
    public_base_url: Option<String>,
    #[serde(default)]
    town_contacts: BTreeMap<String, String>,
    town_contact_default: Option<String>,
}

/// Where events and read models live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// One SQLite file in the data directory.
    Embedded { database_file: PathBuf },
    /// A PostgreSQL server.
    Postgres { url: String },
}

/// The validated configuration of `anquan serve`.
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub storage: Storage,
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
        let storage = match args.database_url.or(file.database_url) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Storage::Postgres { url }
            }
            Some(_) => anyhow::bail!("--database must be a postgres:// URL (the embedded default needs none)"),
            None => Storage::Embedded {
                database_file: data_dir.join("anquan.sqlite"),
            },
        };
        let public_base_url = args.public_base_url.or(file.public_base_url);
        if let Some(url) = &public_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            anyhow::bail!("public_base_url must start with https:// or http://, not {url:?}");
        }
        let rules = match args.rules_dir.or(file.rules_dir) {
            Some(directory) => load_rules(&directory)?,
            None => embedded_rules()?,
        };
        Ok(Config {
            listen,
            storage,
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
            data_dir,
            public_base_url,
            town_contacts: file.town_contacts,
            town_contact_default: file
                .town_contact_default
                .unwrap_or_else(|| anquan_api::public_page::DEFAULT_CONTACT.to_owned()),
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
