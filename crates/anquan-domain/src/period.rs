//! Reporting periods (month, quarter, half-year, year) in the rule set's local calendar.

use std::fmt;
use std::str::FromStr;

use chrono::{FixedOffset, NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};

use crate::Instant;

/// How often a periodic record is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Monthly,
    Quarterly,
    HalfYearly,
    Yearly,
}

/// One reporting period. Written `2019`, `2019-H1`, `2019-Q3` or `2019-07`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period {
    cadence: Cadence,
    year: i32,
    /// 1-based index of the period within its year (month 1-12, quarter 1-4, half 1-2, 1).
    index: u32,
}

/// Why a text is not a period. Its `Display` is the sentence a person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "报告期“{}”的格式不正确，应写作年度（2019）、半年度（2019-H1）、季度（2019-Q3）或月份（2019-07），年份在1970至9999之间",
    self.0.escape_debug()
)]
pub struct PeriodParseError(pub String);

impl Cadence {
    /// Returns how often, as a person reads it (月度, 季度, 半年度, 年度).
    pub fn label(self) -> &'static str {
        match self {
            Cadence::Monthly => "月度",
            Cadence::Quarterly => "季度",
            Cadence::HalfYearly => "半年度",
            Cadence::Yearly => "年度",
        }
    }

    /// Returns the stable name programs see (`MONTHLY`, …), as the GraphQL enum spells it.
    pub fn name(self) -> &'static str {
        match self {
            Cadence::Monthly => "MONTHLY",
            Cadence::Quarterly => "QUARTERLY",
            Cadence::HalfYearly => "HALF_YEARLY",
            Cadence::Yearly => "YEARLY",
        }
    }

    fn periods_per_year(self) -> u32 {
        match self {
            Cadence::Monthly => 12,
            Cadence::Quarterly => 4,
            Cadence::HalfYearly => 2,
            Cadence::Yearly => 1,
        }
    }

    fn months_per_period(self) -> u32 {
        12 / self.periods_per_year()
    }

    /// Returns the period of this cadence that contains `instant` in the local calendar.
    pub fn period_containing(self, instant: Instant, offset: FixedOffset) -> Period {
        use chrono::Datelike;
        let local = instant.with_timezone(&offset).date_naive();
        Period {
            cadence: self,
            year: local.year(),
            index: (local.month() - 1) / self.months_per_period() + 1,
        }
    }
}

impl Period {
    /// Builds a period, checking the index fits the cadence.
    pub fn new(cadence: Cadence, year: i32, index: u32) -> Result<Self, PeriodParseError> {
        if !(1970..=9999).contains(&year) || index == 0 || index > cadence.periods_per_year() {
            return Err(PeriodParseError(format!("{cadence:?} {year} #{index}")));
        }
        Ok(Self { cadence, year, index })
    }

    /// Returns the period's cadence.
    pub fn cadence(&self) -> Cadence {
        self.cadence
    }

    /// Returns the period's year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// Returns the 1-based index of the period within its year (month, quarter, half).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Returns the period right after this one.
    pub fn next(&self) -> Period {
        if self.index == self.cadence.periods_per_year() {
            Period {
                cadence: self.cadence,
                year: self.year + 1,
                index: 1,
            }
        } else {
            Period {
                index: self.index + 1,
                ..*self
            }
        }
    }

    /// Returns the period right before this one.
    pub fn previous(&self) -> Period {
        if self.index == 1 {
            Period {
                cadence: self.cadence,
                year: self.year - 1,
                index: self.cadence.periods_per_year(),
            }
        } else {
            Period {
                index: self.index - 1,
                ..*self
            }
        }
    }

    /// Returns the first instant of the period: local midnight of its first day.
    pub fn start(&self, offset: FixedOffset) -> Instant {
        let month = (self.index - 1) * self.cadence.months_per_period() + 1;
        local_midnight(self.year, month, offset)
    }

    /// Returns the first instant after the period (the start of the next one).
    pub fn end(&self, offset: FixedOffset) -> Instant {
        self.next().start(offset)
    }
}

fn local_midnight(year: i32, month: u32, offset: FixedOffset) -> Instant {
    // Year (1970..=10000) and month (1..=12) are checked by `Period::new`, so the date exists,
    // and a fixed offset has no gaps or folds, so the local midnight is unique.
    let date = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default();
    offset
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|local| local.to_utc())
        .unwrap_or_default()
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cadence {
            Cadence::Yearly => write!(f, "{}", self.year),
            Cadence::HalfYearly => write!(f, "{}-H{}", self.year, self.index),
            Cadence::Quarterly => write!(f, "{}-Q{}", self.year, self.index),
            Cadence::Monthly => write!(f, "{}-{:02}", self.year, self.index),
        }
    }
}

impl FromStr for Period {
    type Err = PeriodParseError;
    fn from_str(text: &str) -> Result<Self, PeriodParseError> {
        let error = || PeriodParseError(text.to_owned());
        let (year_text, rest) = match text.split_once('-') {
            Some((year, rest)) => (year, Some(rest)),
            None => (text, None),
        };
        if year_text.len() != 4 {
            return Err(error());
        }
        let year: i32 = year_text.parse().map_err(|_| error())?;
        let (cadence, index_text) = match rest {
            None => (Cadence::Yearly, "1"),
            Some(rest) if rest.starts_with('H') => (Cadence::HalfYearly, &rest[1..]),
            Some(rest) if rest.starts_with('Q') => (Cadence::Quarterly, &rest[1..]),
            Some(rest) if rest.len() == 2 => (Cadence::Monthly, rest),
            Some(_) => return Err(error()),
        };
        if index_text.is_empty() || !index_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        let index: u32 = index_text.parse().map_err(|_| error())?;
        Period::new(cadence, year, index).map_err(|_| error())
    }
}

impl TryFrom<String> for Period {
    type Error = PeriodParseError;
    fn try_from(value: String) -> Result<Self, PeriodParseError> {
        value.parse()
    }
}

impl From<Period> for String {
    fn from(period: Period) -> String {
        period.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn china() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn periods_round_trip_through_text() {
        for text in ["2019", "2019-H2", "2019-Q1", "2019-12"] {
            assert_eq!(text.parse::<Period>().unwrap().to_string(), text);
        }
        for bad in ["19", "2019-Q5", "2019-13", "2019-H0", "2019-X1", "2019-Q", "2019-+1"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_quarter_starts_at_local_midnight() {
        let q2: Period = "2019-Q2".parse().unwrap();
        assert_eq!(q2.start(china()).to_rfc3339(), "2019-03-31T16:00:00+00:00");
        assert_eq!(q2.end(china()).to_rfc3339(), "2019-06-30T16:00:00+00:00");
        assert_eq!(q2.previous().to_string(), "2019-Q1");
        assert_eq!("2019-Q4".parse::<Period>().unwrap().next().to_string(), "2020-Q1");
    }

    #[test]
    fn the_containing_period_uses_the_local_calendar() {
        // 2019-03-31T17:00Z is already 1 April in China.
        let instant = "2019-03-31T17:00:00Z".parse().unwrap();
        assert_eq!(
            Cadence::Quarterly.period_containing(instant, china()).to_string(),
            "2019-Q2"
        );
        assert_eq!(
            Cadence::Monthly.period_containing(instant, china()).to_string(),
            "2019-04"
        );
    }
}
