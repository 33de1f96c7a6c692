//! Monthly town reports (月度工作落实情况报告): the 78 metrics of every town and the city frozen
//! at a month's end, as one document per month on a stream of its own. The event is data only:
//! the figures are computed from the read models by `anquan_api::reports`; this crate names the
//! month, its instants and the document's shape.

use chrono::{Datelike, FixedOffset, NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::bounds::{PERIOD_YEAR_MAX, PERIOD_YEAR_MIN};

/// A calendar month in the rule set's time zone, `YYYY-MM`, between the period years
/// [`PERIOD_YEAR_MIN`] and [`PERIOD_YEAR_MAX`] (so its end and a year before it are instants
/// inside the bounds window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportMonth {
    year: i32,
    month: u32,
}

/// Why a month could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a month YYYY-MM between {PERIOD_YEAR_MIN} and {PERIOD_YEAR_MAX}")]
pub struct ReportMonthError(pub String);

impl ReportMonth {
    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self, ReportMonthError> {
        let error = || ReportMonthError(text.chars().take(20).collect());
        let (year, month) = text.split_once('-').ok_or_else(error)?;
        if year.len() != 4 || month.len() != 2 || !year.bytes().chain(month.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        let year: i32 = year.parse().map_err(|_| error())?;
        let month: u32 = month.parse().map_err(|_| error())?;
        Self::new(year, month).ok_or_else(error)
    }

    /// The month, when it is inside the bounds.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((PERIOD_YEAR_MIN..=PERIOD_YEAR_MAX).contains(&year) && (1..=12).contains(&month))
            .then_some(ReportMonth { year, month })
    }

    /// The month an instant falls in, in `time_zone`.
    pub fn of(instant: Instant, time_zone: FixedOffset) -> Option<Self> {
        let local = instant.with_timezone(&time_zone);
        Self::new(local.year(), local.month())
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// The month after this one, when inside the bounds.
    pub fn next(self) -> Option<Self> {
        if self.month == 12 {
            Self::new(self.year + 1, 1)
        } else {
            Self::new(self.year, self.month + 1)
        }
    }

    /// The month before this one, when inside the bounds.
    pub fn previous(self) -> Option<Self> {
        if self.month == 1 {
            Self::new(self.year - 1, 12)
        } else {
            Self::new(self.year, self.month - 1)
        }
    }

    /// The same month a year earlier, when inside the bounds.
    pub fn year_before(self) -> Option<Self> {
        Self::new(self.year - 1, self.month)
    }

    /// The month's first instant, local midnight of its first day.
    pub fn start(self, time_zone: FixedOffset) -> Instant {
        // A valid month's first day exists, and a fixed offset maps every local time to one
        // instant; the fallback is never taken.
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .and_then(|midnight| time_zone.from_local_datetime(&midnight).single())
            .map_or(crate::bounds::INSTANT_MIN, |local| local.to_utc())
    }

    /// The instant the month's report is taken at: the first instant of the next month (an
    /// exclusive end). Metric windows close a period at its end (`Window`): an instant on local
    /// 1 January 00:00 reads the year before it, so December's report reads the whole year.
    pub fn end(self, time_zone: FixedOffset) -> Instant {
        let (year, month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        ReportMonth { year, month }.start(time_zone)
    }

    /// The stream of this month's reports: `monthly-report-YYYY-MM`.
    pub fn stream_name(self) -> String {
        format!("{MONTHLY_REPORT_STREAM_PREFIX}{self}")
    }
}

impl std::fmt::Display for ReportMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Every month's reports live on a stream named by this prefix and the month.
pub const MONTHLY_REPORT_STREAM_PREFIX: &str = "monthly-report-";

/// The longest reason a correction may give, in characters.
pub const REPORT_REASON_CHARS_MAX: usize = 500;

/// One metric of one scope as the report froze it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFigure {
    /// The metric's code (A01…I06).
    pub code: String,
    pub numerator: i64,
    pub denominator: i64,
    /// The value as the metric reads it (none: a ratio over nothing, or a city-wide metric of
    /// a town).
    pub value: Option<f64>,
    /// The value at the previous month's end: the previous month's report's figure when it was
    /// issued, else computed at that instant.
    pub previous_value: Option<f64>,
    /// The value at the same month's end a year earlier, taken the same way.
    pub year_ago_value: Option<f64>,
}

/// How many enterprises of a scope had each risk colour at the month's end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColourCounts {
    pub red: u32,
    pub orange: u32,
    pub yellow: u32,
    pub blue: u32,
}

/// The figures of one town (or the city, `town: None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportScope {
    pub town: Option<String>,
    /// Every metric, in catalogue order.
    pub figures: Vec<ReportFigure>,
    pub colours: ColourCounts,
}

/// One town's place in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedTown {
    pub town: String,
    /// 1 for the highest value, equal values share a rank; none: no value, listed last.
    pub rank: Option<u32>,
    pub value: Option<f64>,
}

/// The towns ordered by one headline metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRanking {
    pub code: String,
    pub towns: Vec<RankedTown>,
}

/// A month's report of every town and the city was issued (version 1 by the service after the
/// month ended, or late by the city admin), or corrected (a later version, with a reason).
/// Version `n` is the stream's `n`-th event; a correction never edits an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyReportIssued {
    /// `YYYY-MM`.
    pub month: String,
    /// 1 for the first report of the month, one more for each correction.
    pub version: u32,
    /// Why this version was issued: none for the scheduled first version.
    pub reason: Option<String>,
    /// The instant the figures are taken at: the month's exclusive end.
    pub at: Instant,
    /// When it was issued (the service's clock).
    pub issued_at: Instant,
    /// The rule set in force at `at` and the digest of its files.
    pub rule_set: String,
    pub rule_set_digest: String,
    /// The city first, then every town in the catalogue's order.
    pub scopes: Vec<ReportScope>,
    /// The towns ranked by each headline metric.
    pub rankings: Vec<ReportRanking>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn a_month_ends_at_local_midnight_of_the_next_months_first_day() {
        let december = ReportMonth::parse("2026-12").unwrap();
        assert_eq!(december.end(shanghai()).to_rfc3339(), "2026-12-31T16:00:00+00:00");
        assert_eq!(december.to_string(), "2026-12");
        assert_eq!(december.next().unwrap().to_string(), "2027-01");
        assert_eq!(december.year_before().unwrap().to_string(), "2025-12");
        assert_eq!(ReportMonth::parse("2027-01").unwrap().previous(), Some(december));
        assert_eq!(december.stream_name(), "monthly-report-2026-12");
    }

    #[test]
    fn a_malformed_or_out_of_range_month_is_refused() {
        for text in [
            "2026-13",
            "2026-00",
            "1969-12",
            "2199-01",
            "2026-1",
            "+026-01",
            "2026",
            "二〇二六-01",
            "",
        ] {
            assert!(ReportMonth::parse(text).is_err(), "{text}");
        }
        assert!(ReportMonth::new(1970, 1).unwrap().previous().is_none());
    }
}
