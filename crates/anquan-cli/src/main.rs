//! The `anquan` binary: parses the command line and hands over to `anquan_cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = anquan_cli::Cli::parse();
    anquan_cli::telemetry::init(cli.log_format);
    anquan_cli::run(cli).await
}
