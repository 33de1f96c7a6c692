//! Signed anchors from the command line: `anquan anchor` takes one now (and `--rotate-key`
//! first replaces the signing key), and the service takes them periodically while it leads.
//! The anchors themselves are `anquan_projections::anchors`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use anquan_domain::{Actor, Role, UserId};
use anquan_event_store::EventStore;
use anquan_projections::anchors::{self, AnchorKeyFile, AnchorsDocument};

use crate::rulesets::StoreArgs;

/// The signing key's file name in the data directory.
pub const KEY_FILE_NAME: &str = "anchor-signing-key";

/// The default of `--anchor-interval-seconds`: one hour.
pub const INTERVAL_SECONDS_DEFAULT: u64 = 3600;

/// Where the anchors' signing key is.
#[derive(Debug, Clone, clap::Args)]
pub struct AnchorKeyArgs {
    /// The Ed25519 signing key of anchors: a file holding its 32-byte seed as 64 hex digits,
    /// created with a random key when absent. Default: `anchor-signing-key` in the data
    /// directory.
    #[arg(long, env = "ANQUAN_ANCHOR_KEY_FILE")]
    pub anchor_key_file: Option<PathBuf>,
}

impl AnchorKeyArgs {
    /// The key file: the one given, else the data directory's.
    pub fn key_file(&self, data_dir: &Path) -> AnchorKeyFile {
        AnchorKeyFile::new(
            self.anchor_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join(KEY_FILE_NAME)),
        )
    }
}

/// Arguments of `anquan anchor`.
#[derive(Debug, clap::Args)]
pub struct AnchorArgs {
    /// Replace the signing key with a new one first (the old file is kept as
    /// `<file>.<key id>.retired`); the anchor taken then publishes the new public key, and
    /// the old anchors keep the old one.
    #[arg(long)]
    pub rotate_key: bool,
    #[command(flatten)]
    pub key: AnchorKeyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The actor anchors are recorded by.
fn anchor_actor(who: &str) -> anyhow::Result<Actor> {
    Ok(Actor {
        user_id: UserId::parse(who)?,
        role: Role::CityAdmin,
    })
}

/// `anquan anchor [--rotate-key]`: takes an anchor now and prints it as JSON.
pub async fn run(args: AnchorArgs) -> anyhow::Result<()> {
    let data_dir = args.store.data_dir.clone().unwrap_or_else(crate::default_data_dir);
    let key_file = args.key.key_file(&data_dir);
    if args.rotate_key {
        let (old, new) = key_file.rotate()?;
        eprintln!(
            "anchor signing key rotated: {} -> {new} ({})",
            old.as_deref().unwrap_or("none"),
            key_file.path.display()
        );
    }
    let signer = key_file.load_or_create()?;
    let (event_store, _read_models) = args.store.open().await?;
    let actor = anchor_actor(&format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".to_owned())
    ))?;
    let anchor = anchors::take_anchor(&event_store, &signer, &actor, chrono::Utc::now(), false)
        .await?
        .context("no anchor was taken")?;
    let mut line = serde_json::to_vec(&anchor).context("cannot encode the anchor")?;
    line.push(b'\n');
    std::io::Write::write_all(&mut std::io::stdout(), &line).context("cannot write the anchor")?;
    Ok(())
}

/// Takes an anchor every `interval` while this node leads the projections (one leader per
/// cluster, so one anchor per interval), skipping an idle log. Never returns.
pub async fn periodic(
    event_store: Arc<dyn EventStore>,
    health: anquan_projections::ProjectionsHealth,
    key_file: AnchorKeyFile,
    interval: Duration,
    clock: anquan_api::Clock,
) {
    let Ok(actor) = anchor_actor("service:anchors") else {
        tracing::error!("the anchor actor's id is invalid; no periodic anchors");
        return std::future::pending().await;
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if health.leading().is_none() {
            continue;
        }
        let taken = match key_file.load_or_create() {
            Ok(signer) => anchors::take_anchor(&event_store, &signer, &actor, clock(), true).await,
            Err(error) => Err(error),
        };
        if let Err(error) = taken {
            tracing::error!(%error, "cannot take the periodic anchor");
        }
    }
}

/// Reads an anchors document from a file or an `http://` URL (`GET /anchors`).
pub async fn load_document(source: &str) -> anyhow::Result<AnchorsDocument> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let response = reqwest::get(source)
            .await
            .with_context(|| format!("cannot fetch {source}"))?
            .error_for_status()
            .with_context(|| format!("cannot fetch {source}"))?;
        response.text().await.with_context(|| format!("cannot read {source}"))?
    } else {
        std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{source} is not an anchors document"))
}
