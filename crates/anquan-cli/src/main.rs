//! The `anquan` binary: parses the command line and hands over to `anquan_cli`.

use clap::Parser;

/// jemalloc instead of the system allocator: see the note on the dependency in Cargo.toml
/// (glibc's arenas kept ten times the live heap resident under `serve`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS crypto provider for every client in the process (see the note on `rustls` in
    // Cargo.toml). `Err` means one is installed already, which can only be this same one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = anquan_cli::Cli::parse();
    anquan_cli::telemetry::init(cli.log_format);
    anquan_cli::run(cli).await
}
