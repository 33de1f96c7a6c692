//! The `anquan` binary's library: configuration, wiring of the concrete stores, the
//! projection runner and the HTTP server, and the operator commands.
//!
//! This is the only crate that knows a concrete backend or reads configuration.

pub mod config;
pub mod serve;
pub mod telemetry;

use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand};

use anquan_domain::{Actor, EnterpriseId, Role, Town, UserId};

pub use config::Config;

/// The work-safety supervision platform.
#[derive(Debug, Parser)]
#[command(name = "anquan", version, about)]
pub struct Cli {
    /// Log format: `pretty` for people, `json` for log collectors.
    #[arg(long, global = true, default_value = "pretty", env = "ANQUAN_LOG_FORMAT")]
    pub log_format: telemetry::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the service: GraphQL API, projections, health endpoints.
    Serve(config::ServeArgs),
    /// Prints the GraphQL schema (SDL).
    ExportSchema,
    /// Mints a bearer token for development and operations.
    Token(TokenArgs),
}

/// Arguments of `anquan token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// city_admin, town_officer or enterprise.
    #[arg(long)]
    pub role: String,
    /// The town of a town_officer, e.g. 许村.
    #[arg(long)]
    pub town: Option<String>,
    /// The enterprise id of an enterprise user.
    #[arg(long)]
    pub enterprise: Option<String>,
    /// The user id the token names (default: the role name).
    #[arg(long)]
    pub user: Option<String>,
    /// Hours the token is valid.
    #[arg(long, default_value_t = 24)]
    pub hours: i64,
    #[command(flatten)]
    pub secret: config::SecretArgs,
}

/// Runs a command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(args)?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            serve::run(config, listener, serve::shutdown_signal()).await
        }
        Command::ExportSchema => {
            let sdl = serve::schema_sdl();
            std::io::Write::write_all(&mut std::io::stdout(), sdl.as_bytes()).context("cannot write the schema")?;
            Ok(())
        }
        Command::Token(args) => {
            let token = mint_token(&args)?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{token}\n").as_bytes())
                .context("cannot write the token")?;
            Ok(())
        }
    }
}

fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
    let role = match args.role.as_str() {
        "city_admin" => Role::CityAdmin,
        "town_officer" => {
            let town = args.town.as_deref().context("a town_officer token needs --town")?;
            Role::TownOfficer {
                town: Town::parse(town)?,
            }
        }
        "enterprise" => {
            let id = args
                .enterprise
                .as_deref()
                .context("an enterprise token needs --enterprise <id>")?;
            Role::Enterprise {
                enterprise_id: id.parse::<EnterpriseId>()?,
            }
        }
        other => anyhow::bail!("unknown role {other:?}; roles are city_admin, town_officer, enterprise"),
    };
    let user_id = UserId::parse(args.user.as_deref().unwrap_or(role.name()))?;
    let authority = args.secret.authority()?;
    let now = Utc::now();
    Ok(authority.mint(&Actor { user_id, role }, now, now + chrono::Duration::hours(args.hours))?)
}

/// The default data directory: `./anquan-data`.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("anquan-data")
}
