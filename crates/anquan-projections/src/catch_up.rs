//! How fast something catches up with a moving target and when it will have: the projection
//! runner with the head of the log (`anquan serve`'s catch-up log lines and `/readyz`), and the
//! operator commands' plain progress lines (`anquan verify`, `projections rebuild`, `demo`).
//!
//! A [`CatchUpMeter`] keeps samples of (instant, position reached, head) over the last
//! [`CATCH_UP_WINDOW`]; the rate is the position's progress over that window, and the estimate
//! divides what is left by how fast the gap closes (the position's rate minus the head's), so a
//! head that moves as fast as the position is an unknown estimate, not a wrong one. The caller
//! passes the instant, so the arithmetic is tested without a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The span the rate is measured over: long enough to smooth one page's commit, short enough
/// to follow a change of pace.
pub const CATCH_UP_WINDOW: Duration = Duration::from_secs(10);
/// Most samples kept; a sample closer than `SAMPLE_SPACING_MIN` to the one before the last
/// replaces the last, so a caller that records on every batch keeps at most this many.
pub const CATCH_UP_SAMPLES_MAX: usize = 64;
/// The closest two kept samples may be (except the newest).
const SAMPLE_SPACING_MIN: Duration = Duration::from_millis(150);

/// Where a catch-up stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatchUp {
    /// How far it has got (a log position's sequence, or items done).
    pub position: u64,
    /// Where the target is (never below `position`).
    pub head: u64,
    /// Items per second over the window; 0 until two samples are apart.
    pub per_second: f64,
    /// Time left at the current pace: zero when caught up, `None` while unknown (no rate yet, or
    /// the head moves at least as fast as the position).
    pub eta: Option<Duration>,
}

impl CatchUp {
    /// Items between the position and the head.
    pub fn remaining(&self) -> u64 {
        self.head.saturating_sub(self.position)
    }

    /// Tells whether the position has reached the head.
    pub fn caught_up(&self) -> bool {
        self.remaining() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: Instant,
    position: u64,
    head: u64,
}

/// Samples of a catch-up's progress, and the rate and estimate they give.
#[derive(Debug, Clone, Default)]
pub struct CatchUpMeter {
    samples: VecDeque<Sample>,
}

impl CatchUpMeter {
    /// A meter with no samples.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the position and head at `at` (a head below the position counts as the position:
    /// a head read a moment before the position moved past it).
    pub fn record(&mut self, at: Instant, position: u64, head: u64) {
        let sample = Sample {
            at,
            position,
            head: head.max(position),
        };
        let went_back = self
            .samples
            .back()
            .is_some_and(|last| position < last.position || at < last.at);
        if went_back {
            // The position was reset (a rebuild starts again) or the clock is not monotonic:
            // what came before says nothing about the pace from here.
            self.samples.clear();
        }
        let crowded = self.samples.len() >= 2
            && self
                .samples
                .get(self.samples.len() - 2)
                .is_some_and(|before_last| at.saturating_duration_since(before_last.at) < SAMPLE_SPACING_MIN);
        if crowded {
            self.samples.pop_back();
        }
        if self.samples.len() >= CATCH_UP_SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        // Keep the newest sample older than the window as the anchor the rate is measured from.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|second| at.saturating_duration_since(second.at) >= CATCH_UP_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Where the catch-up stands by the last sample; `None` before the first.
    pub fn estimate(&self) -> Option<CatchUp> {
        let last = *self.samples.back()?;
        let first = *self.samples.front()?;
        let seconds = last.at.saturating_duration_since(first.at).as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "positions and counts are far below 2^52")]
        let (per_second, head_per_second) = if seconds > 0.0 {
            (
                last.position.saturating_sub(first.position) as f64 / seconds,
                last.head.saturating_sub(first.head) as f64 / seconds,
            )
        } else {
            (0.0, 0.0)
        };
        let remaining = last.head.saturating_sub(last.position);
        let closing = per_second - head_per_second;
        let eta = if remaining == 0 {
            Some(Duration::ZERO)
        } else if closing > 0.0 {
            #[expect(clippy::cast_precision_loss, reason = "positions and counts are far below 2^52")]
            let left = remaining as f64 / closing;
            Duration::try_from_secs_f64(left).ok()
        } else {
            None
        };
        Some(CatchUp {
            position: last.position,
            head: last.head,
            per_second,
            eta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(start: Instant, seconds: f64) -> Instant {
        start + Duration::from_secs_f64(seconds)
    }

    #[test]
    fn no_sample_is_no_estimate_and_one_sample_has_no_rate_and_no_division_by_zero() {
        let start = Instant::now();
        let mut meter = CatchUpMeter::new();
        assert_eq!(meter.estimate(), None);
        meter.record(start, 100, 1_100);
        let one = meter.estimate().unwrap();
        assert_eq!((one.position, one.head, one.remaining()), (100, 1_100, 1_000));
        assert!(one.per_second == 0.0 && one.per_second.is_finite());
        assert_eq!(
            one.eta, None,
            "a rate of zero is an unknown estimate, not an infinite one"
        );
        // Two samples at the same instant: still no rate, no NaN.
        meter.record(start, 200, 1_100);
        let same_instant = meter.estimate().unwrap();
        assert!(same_instant.per_second == 0.0, "{same_instant:?}");
        assert_eq!(same_instant.eta, None);
    }

    #[test]
    fn the_rate_is_the_positions_progress_over_time_and_the_estimate_what_is_left_at_that_rate() {
        let start = Instant::now();
        let mut meter = CatchUpMeter::new();
        meter.record(start, 0, 10_000);
        meter.record(seconds(start, 1.0), 1_000, 10_000);
        meter.record(seconds(start, 2.0), 2_000, 10_000);
        let estimate = meter.estimate().unwrap();
        assert!((estimate.per_second - 1_000.0).abs() < 1e-6, "{estimate:?}");
        let eta = estimate.eta.unwrap().as_secs_f64();
        assert!((eta - 8.0).abs() < 1e-6, "8,000 left at 1,000/s: {eta}");
    }

    #[test]
    fn a_head_that_moves_slows_the_estimate_and_one_that_outruns_the_position_makes_it_unknown() {
        let start = Instant::now();
        let mut meter = CatchUpMeter::new();
        meter.record(start, 0, 10_000);
        // The position gains 1,000/s while appends move the head 500/s: the gap closes at 500/s.
        meter.record(seconds(start, 2.0), 2_000, 11_000);
        let estimate = meter.estimate().unwrap();
        assert!((estimate.per_second - 1_000.0).abs() < 1e-6, "{estimate:?}");
        let eta = estimate.eta.unwrap().as_secs_f64();
        assert!((eta - 18.0).abs() < 1e-6, "9,000 left closing at 500/s: {eta}");

        let mut outrun = CatchUpMeter::new();
        outrun.record(start, 0, 10_000);
        outrun.record(seconds(start, 2.0), 2_000, 14_000);
        let estimate = outrun.estimate().unwrap();
        assert!(estimate.per_second > 0.0);
        assert_eq!(estimate.eta, None, "the gap grows: no time would be right");
    }

    #[test]
    fn caught_up_is_an_estimate_of_zero_and_a_head_read_behind_the_position_counts_as_the_position() {
        let start = Instant::now();
        let mut meter = CatchUpMeter::new();
        meter.record(start, 500, 400);
        let estimate = meter.estimate().unwrap();
        assert_eq!((estimate.position, estimate.head), (500, 500));
        assert!(estimate.caught_up());
        assert_eq!(estimate.eta, Some(Duration::ZERO));
    }

    #[test]
    fn the_rate_follows_the_last_window_and_the_samples_stay_bounded() {
        let start = Instant::now();
        let mut meter = CatchUpMeter::new();
        // A minute at 100/s, then 10 s at 1,000/s, recorded every 10 ms.
        let mut position = 0u64;
        for tick in 0..6_000u32 {
            position += 1;
            meter.record(seconds(start, f64::from(tick) * 0.01), position, 1_000_000);
            assert!(meter.samples.len() <= CATCH_UP_SAMPLES_MAX);
        }
        for tick in 6_000..7_000u32 {
            position += 10;
            meter.record(seconds(start, f64::from(tick) * 0.01), position, 1_000_000);
            assert!(meter.samples.len() <= CATCH_UP_SAMPLES_MAX);
        }
        let estimate = meter.estimate().unwrap();
        assert!(
            estimate.per_second > 800.0 && estimate.per_second < 1_100.0,
            "the last window's pace, not the average of the whole run: {estimate:?}"
        );
    }

    #[test]
    fn a_position_that_goes_back_starts_the_measurement_again() {
        let start = Instant::now();
        let mut meter = CatchUpMeter::new();
        meter.record(start, 5_000, 10_000);
        meter.record(seconds(start, 1.0), 6_000, 10_000);
        meter.record(seconds(start, 2.0), 0, 10_000);
        let estimate = meter.estimate().unwrap();
        assert_eq!(estimate.position, 0);
        assert!(estimate.per_second == 0.0, "{estimate:?}");
        assert_eq!(estimate.eta, None);
    }
}
