//! The progress display of the long operator commands (`anquan demo`, `projections rebuild`,
//! `verify`): an `indicatif` bar on stderr when stderr is a terminal, and otherwise a plain line
//! on stderr at the first update, every [`PLAIN_LINE_INTERVAL`] after it and at the end, so a
//! log file or a CI job shows how far a command is without a bar's control characters. The plain
//! lines' rate and estimate come from [`CatchUpMeter`], the arithmetic `anquan serve` logs its
//! own catch-up with.

use std::io::IsTerminal as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use anquan_projections::CatchUpMeter;

/// How often a plain progress line is written at most.
pub const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(2);

/// One command's progress: a bar or plain lines, with a label, a count of `unit`s done out of a
/// total that may move (a log that grows), and a free message (e.g. events appended).
pub struct Progress {
    /// The bar on a terminal; `None` writes plain lines.
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

struct State {
    label: String,
    unit: &'static str,
    done: u64,
    total: u64,
    message: String,
    meter: CatchUpMeter,
    /// When the phase started: the rate until the meter has two samples apart.
    started: Instant,
    /// When the last plain line was written, and what it said about how far.
    last_line: Option<(Instant, u64, u64)>,
}

impl Progress {
    /// A bar when stderr is a terminal, else plain lines.
    pub fn new(label: &str, unit: &'static str, total: u64) -> Self {
        Self::with_bar(std::io::stderr().is_terminal(), label, unit, total)
    }

    /// A bar (`bar`) or plain lines.
    pub fn with_bar(bar: bool, label: &str, unit: &'static str, total: u64) -> Self {
        let bar = bar.then(|| {
            let bar = ProgressBar::new(total);
            // The template is a constant; were it refused, the bar would keep indicatif's default.
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>12} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} · {per_sec} · ETA {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_owned());
            bar
        });
        Progress {
            bar,
            state: Mutex::new(State::new(label, unit, total)),
        }
    }

    /// Starts a new phase: another label and total, nothing done yet.
    pub fn phase(&self, label: &str, unit: &'static str, total: u64) {
        let mut state = self.lock();
        if self.bar.is_none() && state.last_line.is_some() {
            // The phase that ends gets its last line, so the plain output shows where it stopped.
            state.write_line_if_new();
        }
        *state = State::new(label, unit, total);
        if let Some(bar) = &self.bar {
            bar.set_prefix(label.to_owned());
            bar.set_length(total);
            bar.set_position(0);
            bar.set_message(String::new());
        }
    }

    /// Sets how many are done and of how many (a total that moved, e.g. a log that grew).
    pub fn update(&self, done: u64, total: u64) {
        let mut state = self.lock();
        state.done = done;
        state.total = total.max(done);
        if let Some(bar) = &self.bar {
            bar.set_length(state.total);
            bar.set_position(done);
        }
        self.maybe_line(&mut state);
    }

    /// Counts `delta` more done.
    pub fn advance(&self, delta: u64) {
        let mut state = self.lock();
        state.done = state.done.saturating_add(delta);
        state.total = state.total.max(state.done);
        if let Some(bar) = &self.bar {
            bar.inc(delta);
        }
        self.maybe_line(&mut state);
    }

    /// Sets the message shown after the figures (e.g. "12,345 events").
    pub fn message(&self, message: String) {
        let mut state = self.lock();
        if let Some(bar) = &self.bar {
            bar.set_message(message.clone());
        }
        state.message = message;
    }

    /// Ends the display: clears the bar, or writes the last plain line.
    pub fn finish(&self) {
        let mut state = self.lock();
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => state.write_line_if_new(),
        }
    }

    fn maybe_line(&self, state: &mut State) {
        let now = Instant::now();
        state.meter.record(now, state.done, state.total);
        if self.bar.is_some() {
            return;
        }
        if state
            .last_line
            .is_none_or(|(last, _, _)| now.duration_since(last) >= PLAIN_LINE_INTERVAL)
        {
            state.write_line_if_new();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every write under this lock replaces whole fields, so a poisoned lock holds no torn state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// A phase with nothing done yet.
    fn new(label: &str, unit: &'static str, total: u64) -> Self {
        State {
            label: label.to_owned(),
            unit,
            done: 0,
            total,
            message: String::new(),
            meter: CatchUpMeter::new(),
            started: Instant::now(),
            last_line: None,
        }
    }

    /// Writes a plain line unless the last one said as much.
    fn write_line_if_new(&mut self) {
        if self
            .last_line
            .is_some_and(|(_, done, total)| (done, total) == (self.done, self.total))
        {
            return;
        }
        self.last_line = Some((Instant::now(), self.done, self.total));
        eprintln!("{}", self.line());
    }

    /// `label: 1200 of 5000 unit (24%), 300 unit/s, ETA 13s · message`.
    fn line(&self) -> String {
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let percent = if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        };
        // The meter's pace and estimate once it has measured one; until then the phase's average.
        let seconds = self.started.elapsed().as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let (average, remaining) = (
            if seconds > 0.0 { self.done as f64 / seconds } else { 0.0 },
            self.total.saturating_sub(self.done) as f64,
        );
        let (rate, eta) = match self.meter.estimate() {
            Some(estimate) if estimate.per_second > 0.0 => (estimate.per_second, estimate.eta),
            _ if remaining == 0.0 => (average, Some(Duration::ZERO)),
            _ if average > 0.0 => (average, Duration::try_from_secs_f64(remaining / average).ok()),
            _ => (average, None),
        };
        let eta = eta.map_or_else(|| "unknown".to_owned(), |eta| format!("{}s", eta.as_secs_f64().ceil()));
        let message = if self.message.is_empty() {
            String::new()
        } else {
            format!(" · {}", self.message)
        };
        format!(
            "{}: {} of {} {} ({percent:.0}%), {rate:.0} {}/s, ETA {eta}{message}",
            self.label, self.done, self.total, self.unit, self.unit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_says_how_far_of_what_with_no_division_by_zero_on_an_empty_total() {
        let progress = Progress::with_bar(false, "verify", "streams", 0);
        let line = progress.lock().line();
        assert_eq!(line, "verify: 0 of 0 streams (100%), 0 streams/s, ETA 0s");
        progress.update(3, 12);
        progress.message("7 events".to_owned());
        let line = progress.lock().line();
        assert!(line.starts_with("verify: 3 of 12 streams (25%), "), "{line}");
        assert!(
            line.contains(" streams/s, ETA ") && line.ends_with(" · 7 events"),
            "{line}"
        );
    }

    #[test]
    fn a_total_below_what_is_done_is_raised_to_it() {
        let progress = Progress::with_bar(false, "read models", "events", 10);
        progress.advance(15);
        let state = progress.lock();
        assert_eq!((state.done, state.total), (15, 15));
    }
}
