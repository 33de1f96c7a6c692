//! The `anquan` binary's library: configuration, wiring of the concrete stores, the
//! projection runner and the HTTP server, and the operator commands.
//!
//! This is the only crate that knows a concrete backend or reads configuration.

pub mod anchors;
pub mod audit;
pub mod bench;
pub mod config;
pub mod demo;
pub mod load;
pub mod progress;
pub mod rulesets;
pub mod serve;
pub mod telemetry;
pub mod test_clock;

use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand};

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
    /// Benchmarks: `bench store` runs the shared event-store workload.
    Bench(bench::BenchArgs),
    /// Generates the demo dataset (Haining 2019; `--scale 100` for a province) through the
    /// command path into a fresh data directory or database.
    Demo(demo::DemoArgs),
    /// Sends GraphQL or public-page requests at a fixed rate to a local service and prints
    /// p50/p99 latency (loopback only).
    Load(load::LoadArgs),
    /// Prints the complete history of an enterprise, an agency or the rule-set log as JSON
    /// lines, or how it stood `--as-of` an instant.
    Replay(audit::ReplayArgs),
    /// Recomputes every stream's hash chain and reports altered, missing, inserted or
    /// reordered events; exits non-zero on a break.
    Verify(audit::VerifyArgs),
    /// Exports the history of an enterprise, an agency or the rule-set log (`events.jsonl`,
    /// `files.txt`, `manifest.json`).
    Export(audit::ExportArgs),
    /// Verifies an export offline.
    VerifyExport(audit::VerifyExportArgs),
    /// Takes a signed anchor of the log now (`--rotate-key` first replaces the signing key).
    Anchor(anchors::AnchorArgs),
    /// Rule-set versions and read models: list, publish, rebuild, diff, promote.
    Projections(rulesets::ProjectionsArgs),
}

/// Arguments of `anquan token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// city_admin, town_officer, enterprise, city_inspector, town_inspector, agency, auditor
    /// (read-only; city-wide, or one town with --town) or analyst (read-only statistics and
    /// rule sets, city-wide).
    #[arg(long)]
    pub role: String,
    /// The town of a town_officer or town_inspector (required) or of an auditor (optional),
    /// e.g. 许村.
    #[arg(long)]
    pub town: Option<String>,
    /// The enterprise id of an enterprise user.
    #[arg(long)]
    pub enterprise: Option<String>,
    /// The agency id of an agency user.
    #[arg(long)]
    pub agency: Option<String>,
    /// The user id the token names (default: the role name).
    #[arg(long)]
    pub user: Option<String>,
    /// Hours the token is valid.
    #[arg(long, default_value_t = 24)]
    pub hours: i64,
    /// Seconds the token is valid, instead of `--hours` (short-lived tokens, tests).
    #[arg(long, conflicts_with = "hours")]
    pub seconds: Option<i64>,
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
        Command::Bench(args) => bench::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Replay(args) => audit::replay(args).await,
        Command::Verify(args) => audit::verify(args).await,
        Command::Export(args) => audit::export(args).await,
        Command::VerifyExport(args) => audit::verify_export(&args),
        Command::Anchor(args) => anchors::run(args).await,
        Command::Projections(args) => rulesets::run(args).await,
        Command::Token(args) => {
            let token = mint_token(&args)?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{token}\n").as_bytes())
                .context("cannot write the token")?;
            Ok(())
        }
    }
}

fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
    let now = Utc::now();
    let lifetime = match args.seconds {
        Some(seconds) => chrono::Duration::try_seconds(seconds),
        None => chrono::Duration::try_hours(args.hours),
    }
    .context("the token's lifetime is out of range")?;
    let expires_at = now
        .checked_add_signed(lifetime)
        .context("the token's lifetime is out of range")?;
    // The token's claims go through the same parser the service verifies them with, so a
    // token minted here is one the service accepts.
    let claims = anquan_api::auth::Claims {
        sub: args.user.clone().unwrap_or_else(|| args.role.clone()),
        role: args.role.clone(),
        town: args.town.clone(),
        enterprise_id: args.enterprise.clone(),
        agency_id: args.agency.clone(),
        exp: expires_at.timestamp(),
        iat: now.timestamp(),
    };
    let actor = anquan_api::auth::actor_from_claims(&claims)?;
    Ok(args.secret.authority()?.mint(&actor, now, expires_at)?)
}

/// The default data directory: `./anquan-data`.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("anquan-data")
}
