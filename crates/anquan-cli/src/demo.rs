//! `anquan demo`: generates the demo dataset (Haining 2019 at scale 1, a province at scale 100)
//! into the configured event store through the command path, with a progress bar on stderr
//! (plain progress lines when stderr is not a terminal), then prints what it generated and the
//! headline rates.
//! `anquan serve` on the same data directory builds the read models from the log on start.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

use anquan_demo::{DemoOptions, DemoSummary, Tuning};

use crate::config::{Config, ServeArgs};
use crate::progress::Progress;

/// Arguments of `anquan demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// 1 = Haining (3,212 enterprises, 38 agencies); 100 = a province of 100 such counties.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Simulated years, ending with --year (2: enterprises join in the first, so their annual
    /// duties are due, and can fail, when the headline rates are taken at the end of the last).
    #[arg(long, default_value_t = 2)]
    pub years: u32,
    /// The last simulated year.
    #[arg(long, default_value_t = 2019)]
    pub year: i32,
    /// The random seed: the same seed gives the same history.
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
    /// Overrides the number of enterprises the scale gives.
    #[arg(long)]
    pub enterprises: Option<u64>,
    /// Enterprise histories in flight at once.
    #[arg(long, default_value_t = anquan_demo::ENTERPRISES_IN_FLIGHT)]
    pub in_flight: usize,
    /// Where to write (the data directory or --database), as for `anquan serve`.
    #[command(flatten)]
    pub store: ServeArgs,
}

/// The demo's phases (enterprises, then agencies) on the shared progress display, with the
/// events appended so far as its message.
struct DemoProgress {
    progress: Progress,
    events: AtomicU64,
}

impl anquan_demo::Progress for DemoProgress {
    fn phase(&self, name: &'static str, total: u64) {
        self.progress.phase(name, "histories", total);
    }

    fn advance(&self, events: u64) {
        let events = self.events.fetch_add(events, Ordering::Relaxed) + events;
        self.progress.message(format!("{events} events"));
        self.progress.advance(1);
    }
}

/// Runs `anquan demo`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = Config::load(args.store.clone())?;
    let (events, _read_models) = crate::serve::open_stores(&config.storage).await?;
    let existing = events.read_all(None, 1).await.context("cannot read the event store")?;
    if !existing.is_empty() {
        anyhow::bail!(
            "the event store already holds events: the demo goes into a fresh data directory \
             (--data-dir) or database (--database)"
        );
    }
    let options = DemoOptions {
        scale: args.scale,
        years: args.years,
        last_year: args.year,
        seed: args.seed,
        enterprises: args.enterprises,
        in_flight: args.in_flight,
    };
    let progress = Arc::new(DemoProgress {
        progress: Progress::new("demo", "histories", 0),
        events: AtomicU64::new(0),
    });
    let rules = Arc::new(config.rules.clone());
    let summary = anquan_demo::generate(events, rules, &options, Tuning::default(), progress.clone()).await?;
    progress.progress.finish();
    let report = render(&summary, &options);
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes()).context("cannot write the summary")?;
    Ok(())
}

fn render(summary: &DemoSummary, options: &DemoOptions) -> String {
    let seconds = summary.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        summary.events as f64 / seconds
    } else {
        0.0
    };
    let mut text = format!(
        "demo: scale {} · {} year(s) to {} · seed {}\n\
         generated {} events in {} appends in {seconds:.1} s ({rate:.0} events/s), peak resident memory {}\n\
         enterprises {} · records uploaded {} · reviewed {} (returned {}, feedback {})\n\
         inspections {} · hazards {} (major {}, overdue at year end {})\n\
         agencies {} · staff {} · contracts {} · service reports {} · ratings {} · grades A/B/C/D/not graded {}/{}/{}/{}/{} · blacklisted {}\n\
         headline rates at the end of {}:\n",
        options.scale,
        options.years,
        options.last_year,
        options.seed,
        summary.events,
        summary.appends,
        peak_rss().unwrap_or_else(|| "unknown".to_owned()),
        summary.enterprises,
        summary.uploads,
        summary.reviews,
        summary.returned,
        summary.feedback,
        summary.inspections,
        summary.hazards,
        summary.major_hazards,
        summary.overdue_hazards_at_end,
        summary.agencies,
        summary.agency_staff,
        summary.contracts,
        summary.service_reports,
        summary.ratings,
        summary.grades[0],
        summary.grades[1],
        summary.grades[2],
        summary.grades[3],
        summary.grades[4],
        summary.blacklisted,
        options.last_year,
    );
    for ((code, ours), (_, article)) in summary
        .rates
        .pairs()
        .iter()
        .zip(anquan_demo::HeadlineRates::ARTICLE.pairs())
    {
        text.push_str(&format!("  {code} {ours:5.1} %  (article {article} %)\n"));
    }
    if let (Some(id), Some(token)) = (
        anquan_demo::enterprise_id(0),
        anquan_demo::public_token(options.seed, 0),
    ) {
        text.push_str(&format!(
            "sample: enterprise {id} · its public page /p/{}\n",
            token.as_str()
        ));
    }
    text
}

/// Peak resident memory of this process (VmHWM), on Linux.
pub fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(key))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
    };
    // RssFile is mostly SQLite's memory-mapped window of the database file (reclaimable).
    Some(format!(
        "{} MiB (at the end: heap {} MiB, mapped files {} MiB)",
        mib("VmHWM:")?,
        mib("RssAnon:")?,
        mib("RssFile:")?
    ))
}
